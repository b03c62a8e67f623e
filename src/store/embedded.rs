//! The embedded default store: in-memory maps made durable by the write-ahead log.
//!
//! Every mutation is (1) checked against current state, (2) appended to the log, (3) applied to
//! memory, all under one writer lock, so the log order is the apply order and replay rebuilds
//! exactly the acknowledged state. Reads take a shared lock and copy out what they need. Writes run
//! on tokio's blocking pool because they do file I/O.

use std::{
    collections::{BTreeSet, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use async_trait::async_trait;
use foldhash::{HashMap, HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

use super::{
    CatalogFilter, EventStatus, Fetched, IngestOutcome, SessionSnapshot, Store, StoreError, StoreStatus, UserRecord,
    users::UserTable, wal,
};
use crate::domain::{Event, LiveSession, LiveStats, SessionStatus, UnixMs, UserProfile, audience, now_ms};

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedStoreConfig {
    /// Folder of the log; created when missing.
    pub data_dir: PathBuf,
    /// `fdatasync` after every write batch (survives power loss, not only process death).
    pub fsync: bool,
    /// How long an event id is remembered for de-duplication, in ms.
    pub dedup_window_ms: i64,
}

/// One logged mutation.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Users(Vec<(String, UserProfile)>),
    Sessions(Vec<LiveSession>),
    End {
        session_id: String,
        end_ms: UnixMs,
    },
    /// Accepted events with the time they were stored (for de-duplication expiry).
    Events {
        stored_ms: UnixMs,
        events: Vec<Event>,
    },
}

#[derive(Debug)]
struct SessionEntry {
    session: Arc<LiveSession>,
    /// Copied on write when a ranking still holds the previous version.
    stats: Arc<LiveStats>,
}

#[derive(Debug, Default)]
struct State {
    /// Profile and recent activity per user id (activity also for ids without a profile).
    users: UserTable,
    sessions: HashMap<String, SessionEntry>,
    /// Ids of live sessions ordered by (start time, id), newest last.
    live: BTreeSet<(UnixMs, String)>,
    seen: HashSet<String>,
    /// Event ids in storage order, for expiry.
    seen_order: VecDeque<(UnixMs, String)>,
}

impl State {
    fn apply(&mut self, record: Record, dedup_window_ms: i64) {
        match record {
            Record::Users(users) => {
                for (id, profile) in users {
                    self.users.upsert(id, &profile);
                }
            }
            Record::Sessions(sessions) => {
                for session in sessions {
                    self.put_session(session);
                }
            }
            Record::End { session_id, end_ms } => {
                if let Some(entry) = self.sessions.get(&session_id) {
                    let mut session = (*entry.session).clone();
                    session.status = SessionStatus::Ended;
                    session.end_time_ms = end_ms;
                    self.put_session(session);
                }
            }
            Record::Events { stored_ms, events } => {
                for event in events {
                    self.apply_event(&event);
                    self.seen.insert(event.event_id.clone());
                    self.seen_order.push_back((stored_ms, event.event_id));
                }
                self.expire(stored_ms - dedup_window_ms);
            }
        }
    }

    fn put_session(&mut self, session: LiveSession) {
        let stats = match self.sessions.remove(&session.session_id) {
            Some(old) => {
                self.live.remove(&(old.session.start_time_ms, old.session.session_id.clone()));
                old.stats
            }
            None => Arc::default(),
        };
        if session.status == SessionStatus::Live {
            self.live.insert((session.start_time_ms, session.session_id.clone()));
        }
        self.sessions.insert(session.session_id.clone(), SessionEntry { session: Arc::new(session), stats });
    }

    fn apply_event(&mut self, event: &Event) {
        let Some(entry) = self.sessions.get_mut(&event.session_id) else { return };
        let viewer = self.users.viewer(&event.user_id, &entry.session.target);
        Arc::make_mut(&mut entry.stats).apply(event, viewer);
        // Every event kind changes the user's activity (impressions and views are counted too), as
        // in the trainer's replay.
        self.users.activity_mut(&event.user_id).apply(entry.session.category, entry.session.price_band, event);
    }

    fn expire(&mut self, before_ms: UnixMs) {
        while let Some((at, _)) = self.seen_order.front() {
            if *at >= before_ms {
                break;
            }
            let (_, id) = self.seen_order.pop_front().expect("front exists");
            self.seen.remove(&id);
        }
    }

    fn snapshot(&self, id: &str) -> Option<SessionSnapshot> {
        self.sessions.get(id).map(|e| SessionSnapshot { session: e.session.clone(), stats: e.stats.clone() })
    }
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    wal: Mutex<wal::WalWriter>,
    dedup_window_ms: i64,
    /// The log's append and fsync times.
    timings: crate::telemetry::Timings,
}

/// In-memory state with a durable log. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl EmbeddedStore {
    /// Opens the store in `config.data_dir`, replaying its log.
    pub fn open(config: &EmbeddedStoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut state = State::default();
        let window = config.dedup_window_ms;
        let (writer, replay) =
            wal::open::<Record>(&config.data_dir.join("state.log"), config.fsync, |r| state.apply(r, window))?;
        state.expire(now_ms() - window);
        tracing::info!(
            records = replay.records,
            users = state.users.len(),
            sessions = state.sessions.len(),
            live = state.live.len(),
            "embedded store opened"
        );
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                timings: writer.timings.clone(),
                wal: Mutex::new(writer),
                dedup_window_ms: window,
            }),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.inner.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the blocking pool with the writer lock held: `f` decides from current state
    /// what to log and returns the record (or nothing), which is appended and then applied.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&State) -> (Option<Record>, T) + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut wal = inner.wal.lock().unwrap_or_else(|e| e.into_inner());
            let (record, out) = f(&inner.state.read().unwrap_or_else(|e| e.into_inner()));
            if let Some(record) = record {
                wal.append(&record)?;
                inner.state.write().unwrap_or_else(|e| e.into_inner()).apply(record, inner.dedup_window_ms);
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store writer failed: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn upsert_users(&self, users: Vec<(String, UserProfile)>) -> Result<usize, StoreError> {
        let n = users.len();
        self.write(move |_| (Some(Record::Users(users)), n)).await
    }

    async fn upsert_sessions(&self, sessions: Vec<LiveSession>) -> Result<usize, StoreError> {
        let n = sessions.len();
        self.write(move |_| (Some(Record::Sessions(sessions)), n)).await
    }

    async fn end_session(&self, session_id: &str, end_ms: UnixMs) -> Result<Option<LiveSession>, StoreError> {
        let id = session_id.to_owned();
        let found = self
            .write(move |state| match state.sessions.get(&id) {
                Some(_) => (Some(Record::End { session_id: id, end_ms }), true),
                None => (None, false),
            })
            .await?;
        Ok(if found { self.read(|s| s.sessions.get(session_id).map(|e| (*e.session).clone())) } else { None })
    }

    async fn get_users(&self, ids: &[&str], _: Option<Instant>) -> Result<Fetched<Vec<UserRecord>>, StoreError> {
        Ok(Fetched::fresh(self.read(|s| {
            ids.iter()
                .map(|id| UserRecord {
                    profile: s.users.profile(id),
                    activity: s.users.activity(id).copied().unwrap_or_default(),
                })
                .collect()
        })))
    }

    async fn get_sessions(
        &self,
        ids: &[&str],
        _: Option<Instant>,
    ) -> Result<Fetched<Vec<Option<SessionSnapshot>>>, StoreError> {
        Ok(Fetched::fresh(self.read(|s| ids.iter().map(|id| s.snapshot(id)).collect())))
    }

    async fn live_sessions(
        &self,
        filter: &CatalogFilter,
        _: Option<Instant>,
    ) -> Result<Fetched<Vec<SessionSnapshot>>, StoreError> {
        Ok(Fetched::fresh(self.read(|s| {
            s.live
                .iter()
                .rev()
                .filter_map(|(_, id)| s.sessions.get(id))
                .filter(|e| filter.language.is_empty() || e.session.language.eq_ignore_ascii_case(&filter.language))
                .filter(|e| filter.region.is_empty() || audience::region_contains(&e.session.region, &filter.region))
                .take(filter.limit)
                .map(|e| SessionSnapshot { session: e.session.clone(), stats: e.stats.clone() })
                .collect()
        })))
    }

    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        self.write(move |state| {
            let mut outcome = IngestOutcome { statuses: Vec::with_capacity(events.len()) };
            let mut batch_ids = HashSet::new();
            let mut accepted = Vec::with_capacity(events.len());
            for event in events {
                let status = if state.seen.contains(&event.event_id) || batch_ids.contains(&event.event_id) {
                    EventStatus::Duplicate
                } else if !state.sessions.contains_key(&event.session_id) {
                    EventStatus::UnknownSession
                } else {
                    batch_ids.insert(event.event_id.clone());
                    accepted.push(event);
                    EventStatus::Accepted
                };
                outcome.statuses.push(status);
            }
            let record = (!accepted.is_empty()).then(|| Record::Events { stored_ms: now_ms(), events: accepted });
            (record, outcome)
        })
        .await
    }

    fn status(&self) -> StoreStatus {
        let (sessions, users) = self.read(|s| (s.sessions.len() as u64, s.users.len() as u64));
        StoreStatus {
            backend: "embedded",
            reachable: true,
            cached_sessions: sessions,
            cached_users: users,
            ..Default::default()
        }
    }

    fn timings(&self) -> Option<crate::telemetry::Timings> {
        Some(self.inner.timings.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgeBand, Category, EventKind, Gender, PriceBand, TargetAudience};

    fn config(dir: &std::path::Path) -> EmbeddedStoreConfig {
        EmbeddedStoreConfig { data_dir: dir.to_owned(), fsync: false, dedup_window_ms: 86_400_000 }
    }

    fn session(id: &str, start: UnixMs) -> LiveSession {
        LiveSession {
            session_id: id.into(),
            host_id: "h".into(),
            category: Category::Beauty,
            price_band: PriceBand::Mid,
            language: "en".into(),
            region: "US".into(),
            start_time_ms: start,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience { genders: vec![Gender::Female], ..Default::default() },
        }
    }

    fn event(id: &str, kind: EventKind, user: &str, session: &str) -> Event {
        Event {
            event_id: id.into(),
            kind,
            user_id: user.into(),
            session_id: session.into(),
            time_ms: 1,
            ranking_id: String::new(),
            position: 0,
            watch_seconds: 0.0,
            amount: 9.5,
            order_id: String::new(),
        }
    }

    #[tokio::test]
    async fn state_survives_reopen_and_duplicates_count_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(&config(dir.path())).unwrap();
            let woman = UserProfile { age_band: AgeBand::A25To34, gender: Gender::Female, ..Default::default() };
            store.upsert_users(vec![("u1".into(), woman)]).await.unwrap();
            store.upsert_sessions(vec![session("a", 10), session("b", 20)]).await.unwrap();
            let out = store
                .ingest(vec![
                    event("e1", EventKind::View, "u1", "a"),
                    event("e1", EventKind::View, "u1", "a"),
                    event("e2", EventKind::Purchase, "u1", "a"),
                    event("e3", EventKind::View, "u1", "nope"),
                ])
                .await
                .unwrap();
            use EventStatus::*;
            assert_eq!(out.statuses, vec![Accepted, Duplicate, Accepted, UnknownSession]);
            let again = store.ingest(vec![event("e2", EventKind::Purchase, "u1", "a")]).await.unwrap();
            assert_eq!(again.statuses, vec![Duplicate]);
            store.end_session("b", 99).await.unwrap().unwrap();
        }
        let store = EmbeddedStore::open(&config(dir.path())).unwrap();
        let got = store.get_sessions(&["a", "b", "zz"], None).await.unwrap().value;
        let a = got[0].as_ref().unwrap();
        assert_eq!((a.stats.views, a.stats.purchases, a.stats.on_target_views), (1, 1, 1));
        assert_eq!(a.stats.revenue, 9.5);
        assert_eq!(got[1].as_ref().unwrap().session.status, SessionStatus::Ended);
        assert!(got[2].is_none());
        let live = store.live_sessions(&CatalogFilter { limit: 10, ..Default::default() }, None).await.unwrap().value;
        assert_eq!(live.iter().map(|s| s.session.session_id.as_str()).collect::<Vec<_>>(), vec!["a"]);
        let dup = store.ingest(vec![event("e1", EventKind::View, "u1", "a")]).await.unwrap();
        assert_eq!(dup.statuses, vec![EventStatus::Duplicate], "dedup survives restart");
        let users = store.get_users(&["u1"], None).await.unwrap().value;
        assert!(users[0].activity.affinity(Category::Beauty, 1) > 5.0, "view + purchase count toward beauty");
    }
}
