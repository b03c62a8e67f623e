//! This replica's copies of shared state: fresh enough to skip Redis for slowly changing data,
//! and the fallback for everything while Redis cannot be read.
//!
//! - Session attributes (category, target audience, status…) are reused for `ttl` after they
//!   were read: a change made through another replica is seen within `ttl`. Changes made through
//!   this replica update the copy at once.
//! - The list of live session ids is reused for `ttl` likewise (a new session is listed by other
//!   replicas within `ttl`).
//! - Live stats are reused for `stats_ttl` (default 100 ms) after they were read: rankings on one
//!   replica see another replica's events that much later. Live sessions are few and shared by
//!   every user's ranking, so this removes most of the ranking path's Redis traffic.
//! - User records are read from Redis on every ranking; the copies kept here are only served,
//!   marked degraded, while Redis is unreachable. A degraded ranking uses everything as last read.
//! - User profiles (age band, gender: whom an event counts as inside a session's target) are
//!   reused by ingest for `ttl` after ingest read them: a profile changed
//!   through another replica counts for events ingested here within `ttl`. Changes made through
//!   this replica update the copy at once. Ingest touches a user every few seconds on a busy
//!   platform, and reading the profile of each event's user was Redis's largest cost besides the
//!   writes themselves.
//!
//! Sizes are bounded: when a map is full, an arbitrary entry makes room.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::domain::{LiveSession, LiveStats, UserProfile};
use crate::store::{SessionSnapshot, UserRecord};

#[derive(Debug, Clone)]
struct CachedSession {
    session: Arc<LiveSession>,
    attrs_read: Instant,
    stats: Arc<LiveStats>,
    /// When `stats` was read from Redis; `None` for stats not read yet (a session written here).
    stats_read: Option<Instant>,
}

/// A user's profile (or its absence) as read at `read`.
#[derive(Debug, Clone)]
struct CachedProfile {
    profile: Option<Arc<UserProfile>>,
    read: Instant,
}

/// The local copies.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    stats_ttl: Duration,
    max_sessions: usize,
    max_users: usize,
    sessions: RwLock<HashMap<String, CachedSession>>,
    users: RwLock<HashMap<String, UserRecord>>,
    profiles: RwLock<HashMap<String, CachedProfile>>,
    live: RwLock<Option<(Instant, Arc<Vec<String>>)>>,
}

fn insert_bounded<V>(map: &mut HashMap<String, V>, max: usize, key: &str, value: V) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
        return;
    }
    if map.len() >= max
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
    map.insert(key.to_owned(), value);
}

impl Cache {
    pub fn new(ttl: Duration, stats_ttl: Duration, max_sessions: usize, max_users: usize) -> Self {
        Cache {
            ttl,
            stats_ttl,
            max_sessions: max_sessions.max(1),
            max_users: max_users.max(1),
            sessions: RwLock::default(),
            users: RwLock::default(),
            profiles: RwLock::default(),
            live: RwLock::default(),
        }
    }

    /// The attributes of `id` if read within the TTL.
    pub fn fresh_attrs(&self, id: &str, now: Instant) -> Option<Arc<LiveSession>> {
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        sessions.get(id).filter(|c| now.duration_since(c.attrs_read) < self.ttl).map(|c| c.session.clone())
    }

    /// Attributes and stats of `id` if both are within their TTLs.
    pub fn fresh_session(&self, id: &str, now: Instant) -> Option<SessionSnapshot> {
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|c| now.duration_since(c.attrs_read) < self.ttl)
            .filter(|c| c.stats_read.is_some_and(|t| now.duration_since(t) < self.stats_ttl))
            .map(|c| SessionSnapshot { session: c.session.clone(), stats: c.stats.clone() })
    }

    /// Any copy of `id`, however old.
    pub fn last_session(&self, id: &str) -> Option<SessionSnapshot> {
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        sessions.get(id).map(|c| SessionSnapshot { session: c.session.clone(), stats: c.stats.clone() })
    }

    /// Records session attributes read from Redis (or written through this replica) at
    /// `attrs_read`; a session already cached keeps its stats.
    pub fn put_attrs(&self, sessions: impl IntoIterator<Item = Arc<LiveSession>>, attrs_read: Instant) {
        let mut cached = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        for session in sessions {
            let id = session.session_id.clone();
            let (stats, stats_read) = match cached.get(&id) {
                Some(old) => (old.stats.clone(), old.stats_read),
                None => (Arc::default(), None),
            };
            insert_bounded(
                &mut cached,
                self.max_sessions,
                &id,
                CachedSession { session, attrs_read, stats, stats_read },
            );
        }
    }

    /// Keeps the attributes, replaces the stats of sessions read at `now`.
    pub fn put_stats(&self, read: impl IntoIterator<Item = (String, Arc<LiveStats>)>, now: Instant) {
        let mut sessions = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        for (id, stats) in read {
            if let Some(c) = sessions.get_mut(&id) {
                c.stats = stats;
                c.stats_read = Some(now);
            }
        }
    }

    /// Forgets a session that Redis no longer has.
    pub fn forget_session(&self, id: &str) {
        self.sessions.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    pub fn last_user(&self, id: &str) -> Option<UserRecord> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    pub fn put_users(&self, read: impl IntoIterator<Item = (String, UserRecord)>) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        for (id, record) in read {
            insert_bounded(&mut users, self.max_users, &id, record);
        }
    }

    /// The profile of user `id` if read within the TTL: `Some(None)` for a user known to have
    /// none, `None` when it must be read.
    pub fn fresh_profile(&self, id: &str, now: Instant) -> Option<Option<Arc<UserProfile>>> {
        let profiles = self.profiles.read().unwrap_or_else(|e| e.into_inner());
        profiles.get(id).filter(|c| now.duration_since(c.read) < self.ttl).map(|c| c.profile.clone())
    }

    /// Records profiles (or their absence) read from Redis, or written through this replica, at
    /// `read` (for a read, when it was sent). A copy from later stays: a read sent before this
    /// replica wrote a profile does not bring the old one back.
    pub fn put_profiles<'a>(
        &self,
        profiles: impl IntoIterator<Item = (&'a str, Option<Arc<UserProfile>>)>,
        read: Instant,
    ) {
        let mut cached = self.profiles.write().unwrap_or_else(|e| e.into_inner());
        for (id, profile) in profiles {
            if cached.get(id).is_some_and(|c| c.read > read) {
                continue;
            }
            insert_bounded(&mut cached, self.max_users, id, CachedProfile { profile, read });
        }
    }

    /// Live session ids (newest first) if listed within the TTL.
    pub fn fresh_live(&self, now: Instant) -> Option<Arc<Vec<String>>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.as_ref().filter(|(at, _)| now.duration_since(*at) < self.ttl).map(|(_, ids)| ids.clone())
    }

    /// The last listing of live session ids, however old.
    pub fn last_live(&self) -> Option<Arc<Vec<String>>> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, ids)| ids.clone())
    }

    /// Records a listing read at `at`; returns it shared.
    pub fn put_live(&self, ids: Vec<String>, at: Instant) -> Arc<Vec<String>> {
        let ids = Arc::new(ids);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some((at, ids.clone()));
        ids
    }

    /// Makes the next listing read Redis (after this replica changed the catalog).
    pub fn invalidate_live(&self) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn sizes(&self) -> (u64, u64) {
        let s = self.sessions.read().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let u = self.users.read().unwrap_or_else(|e| e.into_inner()).len() as u64;
        (s, u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_maps_make_room() {
        let mut m = HashMap::default();
        for i in 0..10 {
            insert_bounded(&mut m, 3, &i.to_string(), i);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("9"), Some(&9));
        insert_bounded(&mut m, 3, "9", 90);
        assert_eq!((m.len(), m.get("9")), (3, Some(&90)));
    }

    #[test]
    fn profiles_are_fresh_for_the_ttl_absent_ones_included() {
        let cache = Cache::new(Duration::from_millis(100), Duration::from_millis(100), 10, 2);
        let t = Instant::now();
        let p = Arc::new(UserProfile::default());
        cache.put_profiles([("a", Some(p.clone())), ("b", None)], t);
        assert!(cache.fresh_profile("a", t).is_some_and(|got| got.is_some_and(|got| *got == *p)));
        assert!(cache.fresh_profile("b", t).is_some_and(|got| got.is_none()), "known to have none");
        assert!(cache.fresh_profile("c", t).is_none(), "never read");
        assert!(cache.fresh_profile("a", t + Duration::from_millis(100)).is_none(), "past the TTL");
        let later = t + Duration::from_millis(10);
        cache.put_profiles([("a", None)], later);
        cache.put_profiles([("a", Some(p.clone()))], t);
        assert!(cache.fresh_profile("a", later).is_some_and(|got| got.is_none()), "an older read stays out");
        cache.put_profiles([("c", None)], t);
        assert_eq!(cache.profiles.read().unwrap().len(), 2, "bounded by max_users");
    }
}
