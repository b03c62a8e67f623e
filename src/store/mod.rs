//! Online state: the catalog (users, live sessions), live statistics and event de-duplication.
//!
//! Ranking and ingestion talk to the [`Store`] trait only. Reads are batched (one call fetches every
//! candidate of a ranking) so that a networked implementation (Redis) needs one round trip per
//! request. The embedded default, [`EmbeddedStore`], keeps state in memory and makes every
//! acknowledged write durable in an append-only log ([`wal`]) that is replayed at start. The
//! scale-out implementation, [`RedisStore`], keeps the same state in Redis (standalone or Redis
//! Cluster) so that several replicas share it, with a local cache that answers reads, marked
//! degraded ([`Fetched::degraded`]), while Redis is unreachable.

mod embedded;
pub mod redis;
mod users;
pub mod wal;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

pub use embedded::{EmbeddedStore, EmbeddedStoreConfig};
pub use redis::{RedisStore, RedisStoreConfig};

use crate::domain::{Event, LiveSession, LiveStats, UnixMs, UserActivity, UserProfile};

/// A session as read for ranking: its attributes and its live stats at the time of the read, both
/// shared (cheap to clone; the store copies stats on write when a reader still holds them).
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub session: Arc<LiveSession>,
    pub stats: Arc<LiveStats>,
}

/// Which live sessions to list when a ranking names no candidates.
#[derive(Debug, Clone, Default)]
pub struct CatalogFilter {
    /// Only sessions in this language (case-insensitive); empty = any.
    pub language: String,
    /// Only sessions whose region contains this region; empty = any.
    pub region: String,
    /// At most this many sessions, the most recently started first.
    pub limit: usize,
}

/// A user as read for ranking: the stored profile (if any) and recent activity (kept for every
/// user id that sent events, stored or not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRecord {
    pub profile: Option<UserProfile>,
    pub activity: UserActivity,
}

/// A read and where it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched<T> {
    pub value: T,
    /// Served from this replica's last-known copy because the shared store could not be read in
    /// time; a missing entry then means "not cached here", not "does not exist".
    pub degraded: bool,
}

impl<T> Fetched<T> {
    /// A read from the store itself.
    pub fn fresh(value: T) -> Self {
        Fetched { value, degraded: false }
    }
}

/// Health and counters of a store, for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// "embedded", "redis" or "redis-cluster".
    pub backend: &'static str,
    /// Whether the last call to the shared store succeeded (always true for the embedded store).
    pub reachable: bool,
    /// Reads answered from the local cache because the shared store failed or was slow.
    pub degraded_reads: u64,
    /// Reads or writes of the shared store that failed or timed out.
    pub failures: u64,
    /// Sessions and users held in the local cache.
    pub cached_sessions: u64,
    pub cached_users: u64,
    /// Whether reads skip the shared store after a recent failure (the circuit breaker is open).
    pub breaker_open: bool,
    /// Calls that applied events to the shared store (Redis scripts; 0 on the embedded store),
    /// answered or not.
    pub ingest_calls: u64,
    /// Events those calls carried: divided by `ingest_calls`, how well batches are grouped.
    pub ingest_call_events: u64,
    /// Of those calls, the ones whose events went to Redis a second time, one by one, because the
    /// fast call declined them (an id sent before, or a session's first events: see the Redis
    /// store's `writer`).
    pub ingest_calls_redone: u64,
}

/// What the store did with one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Stored for the first time.
    Accepted,
    /// Its id was already stored (earlier, or earlier in the same batch).
    Duplicate,
    /// It names a session the catalog does not have; not stored.
    UnknownSession,
}

/// What happened to a batch of events, one status per event in batch order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub statuses: Vec<EventStatus>,
}

impl IngestOutcome {
    /// How many events had `status`.
    pub fn count(&self, status: EventStatus) -> u32 {
        self.statuses.iter().filter(|s| **s == status).count() as u32
    }
}

/// Why the store failed. Mapped to gRPC statuses in `crate::api::status`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("store is unavailable: {0}")]
    Unavailable(String),
    /// Out of space (a full disk, a quota, a file size limit): nothing was stored.
    #[error("store is out of space: {0}")]
    Exhausted(String),
}

/// Online state shared by ranking and ingestion.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces users, atomically and durably.
    async fn upsert_users(&self, users: Vec<(String, UserProfile)>) -> Result<usize, StoreError>;
    /// Creates or replaces sessions (keeping live stats of existing ones), atomically and durably.
    async fn upsert_sessions(&self, sessions: Vec<LiveSession>) -> Result<usize, StoreError>;
    /// Marks a session ended at `end_ms`; `None` when the session is unknown.
    async fn end_session(&self, session_id: &str, end_ms: UnixMs) -> Result<Option<LiveSession>, StoreError>;
    /// Reads users (profile and activity) by id, in order.
    ///
    /// `deadline` is the request's, if the caller set one: a networked store gives up on the read
    /// early enough (half of the time left) to answer from its local copies in time, degraded.
    async fn get_users(&self, ids: &[&str], deadline: Option<Instant>) -> Result<Fetched<Vec<UserRecord>>, StoreError>;
    /// Reads sessions with their stats by id, in order (`deadline` as for [`Store::get_users`]).
    async fn get_sessions(
        &self,
        ids: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Fetched<Vec<Option<SessionSnapshot>>>, StoreError>;
    /// Lists live sessions matching `filter` (`deadline` as for [`Store::get_users`]).
    async fn live_sessions(
        &self,
        filter: &CatalogFilter,
        deadline: Option<Instant>,
    ) -> Result<Fetched<Vec<SessionSnapshot>>, StoreError>;
    /// Stores events, each id once, and folds them into live stats. Returns only after the
    /// accepted events are durable.
    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError>;
    /// Health and counters.
    fn status(&self) -> StoreStatus;

    /// Times of the store's operations (log appends and fsyncs; Redis calls), if it keeps them.
    fn timings(&self) -> Option<crate::telemetry::Timings> {
        None
    }
}
