//! Group commit of events on standalone Redis.
//!
//! Every `Ingest` call on a replica hands its events to one writer, which applies whatever has
//! queued since its last call in one [`script::APPLY_EVENTS`] call. A blob is written once per
//! call with the records of all its events in it, so under load, when many batches queue behind
//! each other, events that share a session or a user share its write, and Redis's cost per event
//! falls; when a replica is idle a batch goes alone and waits for nobody.
//!
//! - **Atomic per call**: a call applies each of its events to both blobs or to neither, checked
//!   against the de-duplication sets, so a group fails or succeeds as a whole and a retry of any
//!   of its batches counts nothing twice.
//! - **Bounded**: a call carries at most `events_per_call` events, so that Redis holds rankings'
//!   reads queued behind it for a few milliseconds at most; a batch larger than that is split.
//! - **Fresh first**: a group whose ids are distinct goes as [`script::APPLY_FRESH`], with each
//!   blob's records joined here, so that Redis does no work per event beyond the de-duplication
//!   sets; when Redis finds an id it has seen or a session without stats, that call writes nothing
//!   and the group goes again as [`script::APPLY_EVENTS`], which decides event by event.
//! - **Pipelined**: up to [`IN_FLIGHT`] calls are on the wire at once, so the next group is built
//!   while Redis runs the previous one.
//! - **Compaction** of blobs a call grew past their size happens after the call's batches are
//!   answered and its slot is free (`COMPACT`); the events are stored either way.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::conn::Conn;
use super::keys::Keys;
use super::renew::Renewals;
use super::{Answer, Big, Buckets, apply_answer, big_blobs, codec, compact, script, unavailable};
use crate::domain::now_ms;
use crate::store::StoreError;

/// Calls on the wire at once.
const IN_FLIGHT: usize = 2;

/// Most batches queued for the writer; further `Ingest` calls wait for room.
const QUEUE: usize = 1024;

/// An event to apply: its id, session, user and the records it appends to their blobs.
pub(super) struct EventWrite {
    pub event_id: String,
    pub session_id: String,
    pub user_id: String,
    pub stats: Vec<u8>,
    pub activity: Vec<u8>,
}

/// Apply calls sent and the events they carried (for `StoreStatus`).
#[derive(Debug, Default)]
pub(super) struct Counts {
    calls: AtomicU64,
    events: AtomicU64,
    /// Calls sent again: on standalone Redis those [`script::APPLY_FRESH`] declined, sent to
    /// [`script::APPLY_EVENTS`]; on a cluster those a node did not run (`slots::Router`).
    redone: AtomicU64,
}

impl Counts {
    /// Counts one call carrying `events` events.
    pub fn add(&self, events: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts `calls` sent again.
    pub fn redo(&self, calls: usize) {
        self.redone.fetch_add(calls as u64, Ordering::Relaxed);
    }

    /// Calls sent again so far.
    pub fn redone(&self) -> u64 {
        self.redone.load(Ordering::Relaxed)
    }

    /// (calls, events) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.calls.load(Ordering::Relaxed), self.events.load(Ordering::Relaxed))
    }
}

/// What a call needs besides its events.
#[derive(Clone)]
pub(super) struct Settings {
    pub keys: Keys,
    pub dedup_window_ms: i64,
    /// When users' activity TTLs were renewed, and to what.
    pub renewals: Arc<Renewals>,
    pub events_per_call: usize,
    pub counts: Arc<Counts>,
}

type Reply = oneshot::Sender<Result<Vec<i64>, StoreError>>;

struct Batch {
    events: Vec<EventWrite>,
    reply: Reply,
}

/// The handle `Ingest` calls hand their events to.
pub(super) struct Writer {
    queue: mpsc::Sender<Batch>,
    events_per_call: usize,
}

impl Writer {
    /// Starts the writer on `conn`. It stops when the handle is dropped.
    pub fn start(conn: Conn, mut settings: Settings) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE);
        settings.events_per_call = settings.events_per_call.max(1);
        let events_per_call = settings.events_per_call;
        tokio::spawn(run(conn, Arc::new(settings), rx));
        Writer { queue, events_per_call }
    }

    /// Applies `events`: one code per event (1 applied now, 0 applied before, -1 its session's
    /// attributes are missing).
    pub async fn apply(&self, mut events: Vec<EventWrite>) -> Result<Vec<i64>, StoreError> {
        let mut replies = Vec::new();
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(self.events_per_call));
            let (reply, answer) = oneshot::channel();
            self.queue
                .send(Batch { events: std::mem::replace(&mut events, rest), reply })
                .await
                .map_err(|_| stopped())?;
            replies.push(answer);
        }
        let mut codes = Vec::new();
        for answer in replies {
            let part = answer.await.map_err(|_| stopped())?;
            codes.extend(part?);
        }
        Ok(codes)
    }
}

/// The error of a call the writer can no longer answer (its task ended).
fn stopped() -> StoreError {
    StoreError::Unavailable("redis writer stopped".into())
}

/// Takes what has queued (at most `events_per_call` events, and at least one batch) whenever
/// fewer than [`IN_FLIGHT`] calls are on the wire, and sends it as one call.
async fn run(conn: Conn, settings: Arc<Settings>, mut rx: mpsc::Receiver<Batch>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut held: Option<Batch> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let first = match held.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => b,
                None => return,
            },
        };
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while let Ok(next) = rx.try_recv() {
            if events + next.events.len() > settings.events_per_call {
                held = Some(next);
                break;
            }
            events += next.events.len();
            group.push(next);
        }
        let (conn, settings) = (conn.clone(), settings.clone());
        tokio::spawn(async move {
            let big = commit(conn.clone(), &settings, group).await;
            drop(slot);
            compact(conn, big).await;
        });
    }
}

/// Sends one group and answers its batches; returns the blobs the call grew past their size.
async fn commit(mut conn: Conn, settings: &Settings, group: Vec<Batch>) -> Vec<Big> {
    let events: Vec<&EventWrite> = group.iter().flat_map(|b| &b.events).collect();
    let plan = Plan::new(&settings.keys, &events);
    settings.counts.add(events.len());
    let answer = apply(&mut conn, settings, &plan, &events).await;
    let blobs = plan.blobs;
    drop(events);
    let big = match answer {
        Ok((codes, big)) => {
            let mut codes = codes.into_iter();
            for batch in group {
                let _ = batch.reply.send(Ok(codes.by_ref().take(batch.events.len()).collect()));
            }
            big
        }
        Err(e) => {
            let message = match e {
                StoreError::Unavailable(m) => m,
                other => other.to_string(),
            };
            for batch in group {
                let _ = batch.reply.send(Err(StoreError::Unavailable(message.clone())));
            }
            return Vec::new();
        }
    };
    big.into_iter()
        .filter_map(|i| {
            let (key, kind) = blobs.get(i.checked_sub(1)?)?;
            Some(Big { key: key.clone(), kind: *kind })
        })
        .collect()
}

/// Applies a group: first as [`script::APPLY_FRESH`] when its ids are distinct, and as
/// [`script::APPLY_EVENTS`] when that is not possible or the fresh call declines (it then wrote
/// nothing).
async fn apply(
    conn: &mut Conn,
    settings: &Settings,
    plan: &Plan<'_>,
    events: &[&EventWrite],
) -> Result<Answer, StoreError> {
    let now = now_ms();
    let buckets = Buckets::at(now, settings.dedup_window_ms);
    if distinct_ids(events) {
        let renew = settings.renewals.due(&plan.users, now);
        let value = plan
            .fresh(settings, &buckets, &renew, events)
            .invoke_async::<redis::Value>(conn)
            .await
            .map_err(|e| unavailable("apply events", e))?;
        if let Some(answer) = fresh_answer(value, events.len())? {
            settings.renewals.renewed(&plan.users, &renew, now);
            return Ok(answer);
        }
        settings.counts.redo(1);
    }
    let value = plan
        .one_by_one(settings, &buckets, events)
        .invoke_async::<redis::Value>(conn)
        .await
        .map_err(|e| unavailable("apply events", e))?;
    apply_answer(value, events.len())
}

/// [`script::APPLY_FRESH`]'s answer: every event applied and the blobs past their size, or `None`
/// when it declined.
fn fresh_answer(value: redis::Value, events: usize) -> Result<Option<Answer>, StoreError> {
    let bad = |e: &dyn std::fmt::Display| unavailable("apply events", e);
    let parts: Vec<redis::Value> = redis::from_redis_value(value).map_err(|e| bad(&e))?;
    let mut parts = parts.into_iter();
    let applied: i64 =
        redis::from_redis_value(parts.next().ok_or_else(|| bad(&"an empty answer"))?).map_err(|e| bad(&e))?;
    if applied != 1 {
        return Ok(None);
    }
    let big = parts.next().ok_or_else(|| bad(&"no blobs in the answer"))?;
    Ok(Some((vec![1; events], big_blobs(big)?)))
}

/// Whether no id appears twice among `events` (a batch re-sent while its first copy queued).
fn distinct_ids(events: &[&EventWrite]) -> bool {
    let mut ids = HashSet::with_capacity(events.len());
    events.iter().all(|e| ids.insert(e.event_id.as_str()))
}

/// A group's blobs, numbered as both apply scripts number them: sessions' stats, then users'
/// activity (each once, in order of first appearance).
struct Plan<'a> {
    sessions: Vec<&'a str>,
    users: Vec<&'a str>,
    /// Per event, the positions in `blobs` of its session's stats and its user's activity.
    placed: Vec<(usize, usize)>,
    blobs: Vec<(String, codec::Kind)>,
}

impl<'a> Plan<'a> {
    fn new(keys: &Keys, events: &[&'a EventWrite]) -> Plan<'a> {
        let mut sessions: Vec<&str> = Vec::new();
        let mut users: Vec<&str> = Vec::new();
        let mut numbers: HashMap<(bool, &str), usize> = HashMap::with_capacity(2 * events.len());
        let mut place = |user: bool, id: &'a str, list: &mut Vec<&'a str>| {
            *numbers.entry((user, id)).or_insert_with(|| {
                list.push(id);
                list.len() - 1
            })
        };
        let per_event: Vec<(usize, usize)> = events
            .iter()
            .map(|e| (place(false, &e.session_id, &mut sessions), place(true, &e.user_id, &mut users)))
            .collect();
        let placed = per_event.into_iter().map(|(s, u)| (s, sessions.len() + u)).collect();
        let blobs = sessions
            .iter()
            .map(|id| (keys.session_stats(id), codec::Kind::Stats))
            .chain(users.iter().map(|id| (keys.user_activity(id), codec::Kind::Activity)))
            .collect();
        Plan { sessions, users, placed, blobs }
    }

    /// ARGV 1..6, shared by both scripts, after the buckets' keys.
    fn common_args(&self, settings: &Settings, inv: &mut redis::ScriptInvocation<'static>) {
        inv.arg(self.sessions.len()).arg(self.users.len()).arg(codec::Kind::Stats.compact_at());
        inv.arg(settings.renewals.ttl_ms()).arg(codec::Kind::Activity.compact_at());
    }

    /// The call of [`script::APPLY_FRESH`]: each blob's records joined in event order, and
    /// `renew`'s flag per user.
    fn fresh(
        &self,
        settings: &Settings,
        buckets: &Buckets,
        renew: &[u8],
        events: &[&EventWrite],
    ) -> redis::ScriptInvocation<'static> {
        let mut records: Vec<Vec<u8>> = vec![Vec::new(); self.blobs.len()];
        for (e, &(session, user)) in events.iter().zip(&self.placed) {
            records[session].extend_from_slice(&e.stats);
            records[user].extend_from_slice(&e.activity);
        }
        let mut inv = script::APPLY_FRESH.prepare_invoke();
        buckets.add_to(&mut inv, |b| settings.keys.dedup(b));
        for (key, _) in &self.blobs {
            inv.key(key);
        }
        self.common_args(settings, &mut inv);
        inv.arg(events.len()).arg(renew);
        for e in events {
            inv.arg(&e.event_id);
        }
        for r in records {
            inv.arg(r);
        }
        inv
    }

    /// The call of [`script::APPLY_EVENTS`]: each event's records on their own.
    fn one_by_one(
        &self,
        settings: &Settings,
        buckets: &Buckets,
        events: &[&EventWrite],
    ) -> redis::ScriptInvocation<'static> {
        let keys = &settings.keys;
        let mut inv = script::APPLY_EVENTS.prepare_invoke();
        buckets.add_to(&mut inv, |b| keys.dedup(b));
        for ((key, _), id) in self.blobs.iter().zip(&self.sessions) {
            inv.key(key).key(keys.session_attrs(id));
        }
        for (key, _) in &self.blobs[self.sessions.len()..] {
            inv.key(key);
        }
        self.common_args(settings, &mut inv);
        // Per event its session's and its user's numbers, 1-based, u16 little-endian each.
        let number = |n: usize| (n as u16 + 1).to_le_bytes();
        let index: Vec<u8> =
            self.placed.iter().flat_map(|&(s, u)| [number(s), number(u - self.sessions.len())]).flatten().collect();
        inv.arg(index);
        for e in events {
            inv.arg(&e.event_id).arg(e.stats.as_slice()).arg(e.activity.as_slice());
        }
        inv
    }
}
