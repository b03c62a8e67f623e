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
//! - User records are read from Redis on every request; the copies kept here are only served,
//!   marked degraded, while Redis is unreachable. A degraded ranking uses everything as last read.
//!
//! Sizes are bounded: when a map is full, an arbitrary entry makes room.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::domain::{LiveSession, LiveStats};
use crate::store::{SessionSnapshot, UserRecord};

#[derive(Debug, Clone)]
struct CachedSession {
    session: Arc<LiveSession>,
    attrs_read: Instant,
    stats: Arc<LiveStats>,
    /// When `stats` was read from Redis; `None` for stats not read yet (a session written here).
    stats_read: Option<Instant>,
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
}
