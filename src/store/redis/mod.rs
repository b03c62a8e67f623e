//! The scale-out store: all shared online state in Redis (standalone or Redis Cluster), so that
//! any number of stateless replicas serve the same catalog, users, live counters, event
//! de-duplication and experiments.
//!
//! - **Layout**: [`keys`] names every key and its TTL; [`codec`] lays out stats and activity.
//! - **Reads** on the ranking path: one `MGET` of the user's profile and activity, and, at the
//!   same time, one `MGET` of the stats of candidates whose local copy is older than
//!   `stats_ttl_ms`, plus attributes older than `cache_ttl_ms` ([`cache`]); on a cluster each
//!   `MGET` is a pipeline of `GET`s per node ([`slots`]).
//! - **Writes** of events are Lua scripts that check each event id against the de-duplication
//!   sets and append the event's records to its blobs atomically, so counters are exact whichever
//!   replica received the event, and a retried batch never counts twice. A record lists only the
//!   counters the event changes; readers fold records into the blob's base ([`codec`]), and blobs
//!   past their compaction size come back from the script to be folded here and written back
//!   ([`script::COMPACT`]). On standalone Redis a replica's [`writer`] applies the batches queued
//!   since its last call together in one call (group commit, up to `events_per_call` events),
//!   writing each session's and user's blob once per call, with one set of de-duplication buckets
//!   for all: [`script::APPLY_FRESH`] with each blob's records joined by the replica when every
//!   event is new, else [`script::APPLY_EVENTS`], which decides event by event. On a cluster a
//!   session's and a user's keys live on different nodes, so [`script::APPLY_GROUP`] runs once
//!   per session and per user, each blob with its own marker per event, and each node gets its
//!   share of a batch's calls as one pipeline ([`slots`]).
//! - **Two connections**: ranking reads have their own, so that they never queue behind writes
//!   pipelined on the writers' connection.
//! - **Faults**: reads have a short deadline (`read_timeout_ms`). A failed or late read is
//!   answered from the local cache and marked degraded. After a failed read, or reads late for
//!   two deadlines with no answer between, reads skip Redis for `breaker_first_ms`, then try
//!   again; each further failure before a read answers doubles the skip, up to `breaker_ms`. An
//!   outage costs a deadline per skip, not one per request, and a passing stall (a busy host) costs
//!   a tenth of a second of rankings, not a second; a read late behind a burst of writes costs its
//!   own ranking only. Writes have their own deadline and fail with
//!   [`StoreError::Unavailable`] (`UNAVAILABLE`): nothing is acknowledged that Redis did not
//!   store. The connection reconnects by itself.
//! - **Durability** of an acknowledged write is Redis's: run it with AOF (`appendonly yes`;
//!   `appendfsync always` to survive power loss) — see docs/DEPLOYMENT.md.

mod cache;
pub mod codec;
mod conn;
pub mod keys;
mod renew;
mod script;
mod slots;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::AsyncCommands;

pub use conn::Target;

use super::{
    CatalogFilter, EventStatus, Fetched, IngestOutcome, SessionSnapshot, Store, StoreError, StoreStatus, UserRecord,
};
use crate::domain::{
    Event, LiveSession, LiveStats, SessionStatus, UnixMs, UserActivity, UserProfile, Viewer, audience, now_ms,
};
use cache::Cache;
use conn::Conn;
use keys::Keys;

/// Settings of the Redis store (`[redis]` in the config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisStoreConfig {
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Deadline of a read on the ranking path; past it the read is served degraded.
    pub read_timeout_ms: u64,
    /// Deadline of a write; past it the call fails with UNAVAILABLE (the client retries).
    pub write_timeout_ms: u64,
    /// After a failed read, reads skip Redis (serving degraded) for this long at first; each
    /// further failure before a read answers doubles it, up to `breaker_ms`.
    pub breaker_first_ms: u64,
    /// The longest reads skip Redis after failures.
    pub breaker_ms: u64,
    /// How long session attributes and the live listing are reused before they are read again.
    pub cache_ttl_ms: u64,
    /// How long live stats read for a ranking are reused (0 = read on every ranking).
    pub stats_ttl_ms: u64,
    /// Most sessions and users kept in the local cache.
    pub cache_max_sessions: usize,
    pub cache_max_users: usize,
    /// How long an ended session (attributes and stats) stays in Redis.
    pub session_retention_secs: u64,
    /// How long a user's activity stays after their last event (at least; up to an hour more,
    /// as replicas renew its TTL at most hourly).
    pub activity_retention_secs: u64,
    /// Most events one apply call carries on standalone Redis: batches queued behind each other
    /// are applied together up to this many (see `writer`). Larger calls cost Redis less per
    /// event and hold rankings' reads queued behind them longer.
    pub events_per_call: usize,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        RedisStoreConfig {
            key_prefix: "fr".into(),
            read_timeout_ms: 25,
            write_timeout_ms: 2_000,
            breaker_first_ms: 100,
            breaker_ms: 1_000,
            cache_ttl_ms: 1_000,
            stats_ttl_ms: 100,
            cache_max_sessions: 200_000,
            cache_max_users: 200_000,
            session_retention_secs: 7 * 86_400,
            activity_retention_secs: 30 * 86_400,
            events_per_call: 1_024,
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    /// Reads skip Redis until this time (ms since the Unix epoch).
    skip_reads_until_ms: AtomicI64,
    /// Failed reads since the last answered one: each doubles the next skip.
    failed_reads_in_a_row: AtomicU32,
    reachable: AtomicBool,
    /// Since when (ms since the Unix epoch) reads have missed their deadline with no answer in
    /// between; 0 while they answer.
    late_since_ms: AtomicI64,
    degraded_reads: AtomicU64,
    failures: AtomicU64,
    /// Times of Redis calls by operation, answered or not.
    timings: crate::telemetry::Timings,
}

struct Inner {
    /// Writes (ingest, catalog, documents).
    conn: Conn,
    /// Applies events on standalone Redis (group commit); `None` on a cluster.
    writer: Option<writer::Writer>,
    /// Apply calls and the events they carried, on either deployment.
    ingest_counts: Arc<writer::Counts>,
    /// Reads on the ranking path, on a connection of their own: on a shared multiplexed
    /// connection they would wait behind every write pipelined before them.
    reader: Conn,
    keys: Keys,
    config: RedisStoreConfig,
    dedup_window_ms: i64,
    cache: Cache,
    health: Health,
    /// Which node holds which key, on a cluster: for writes (and ingest's reads), and for the
    /// ranking path's reads, each on connections of its own.
    router: slots::Router,
    read_router: slots::Router,
}

/// Which connections a read goes on.
#[derive(Clone, Copy)]
enum Side {
    /// The ranking path's.
    Read,
    /// The writers' (ingest's reads of what it needs).
    Write,
}

/// Shared state in Redis with a local cache. Cheap to clone (shared).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("backend", &self.inner.conn.backend()).finish_non_exhaustive()
    }
}

/// How long reads skip Redis after the failed read that follows `in_a_row` others (with no
/// answered read between): `breaker_first_ms` doubled for each, at most `breaker_ms`.
fn breaker_skip_ms(config: &RedisStoreConfig, in_a_row: u32) -> u64 {
    let first = config.breaker_first_ms.min(config.breaker_ms);
    first.saturating_mul(1u64 << in_a_row.min(32)).min(config.breaker_ms)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: {e}"))
}

/// `f`, or [`StoreError::Unavailable`] when it has not answered within `deadline`.
async fn within<T>(
    what: &str,
    deadline: Duration,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, f)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("redis {what}: no answer within {deadline:?}"))))
}

/// Rewrites blobs past their compaction size as one state each ([`script::COMPACT`]): reads them
/// (one `MGET` on standalone Redis), folds them, and writes them back in one call on standalone
/// Redis, a call per blob on a cluster. The events are stored either way, so a failure only leaves
/// a blob larger, until a later call grows it past four times its compaction size. `COMPACT`
/// replaces only the bytes read, when they are still the blob's start: what was appended after the
/// read stays, and a blob another replica compacted first is left alone.
async fn compact(conn: Conn, big: Vec<Big>) {
    if big.is_empty() {
        return;
    }
    let groups: Vec<&[Big]> = match conn {
        Conn::Standalone(_) => vec![&big],
        Conn::Cluster(_) => big.chunks(1).collect(),
    };
    let calls = groups.into_iter().map(|group| {
        let mut c = conn.clone();
        async move {
            let mut read = redis::cmd("MGET");
            for b in group {
                read.arg(&b.key);
            }
            let bytes: Vec<Option<Vec<u8>>> = match read.query_async(&mut c).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::debug!(error = %e, "reading blobs to compact failed; left to a later call");
                    return;
                }
            };
            let mut inv = script::COMPACT.prepare_invoke();
            let mut folded = 0;
            for (b, bytes) in group.iter().zip(bytes) {
                let Some(bytes) = bytes else { continue };
                match b.kind.compacted(&bytes) {
                    Ok(state) => {
                        inv.key(&b.key).arg(bytes).arg(state);
                        folded += 1;
                    }
                    Err(e) => tracing::warn!(key = %b.key, error = %e, "cannot compact a corrupt blob"),
                }
            }
            if folded > 0
                && let Err(e) = inv.invoke_async::<i64>(&mut c).await
            {
                tracing::debug!(error = %e, "compaction failed; left to a later call");
            }
        }
    });
    join_all(calls).await;
}

/// How long a user's activity stays after their last event, ms.
fn activity_ttl_ms(config: &RedisStoreConfig) -> i64 {
    (config.activity_retention_secs as i64).saturating_mul(1000).max(1)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encodes domain types")
}

/// An event of a batch whose session is known, with the records it appends to its session's stats
/// and its user's activity (`codec::Kind::record`).
struct Applied<'a> {
    /// Position in the batch.
    position: usize,
    event: &'a Event,
    stats: Vec<u8>,
    activity: Vec<u8>,
}

impl Applied<'_> {
    /// What the writer needs of the event: its ids, and its records moved.
    fn into_write(self) -> writer::EventWrite {
        writer::EventWrite {
            event_id: self.event.event_id.clone(),
            session_id: self.event.session_id.clone(),
            user_id: self.event.user_id.clone(),
            stats: self.stats,
            activity: self.activity,
        }
    }
}

/// A blob events apply to on a cluster.
struct Blob {
    key: String,
    /// The key that must exist for the blob to be created (a session's attributes).
    must_exist: Option<String>,
    kind: codec::Kind,
    /// TTL set on each write, ms (0 = keep the key's).
    ttl_ms: i64,
}

/// A blob an apply script found past its compaction size.
struct Big {
    key: String,
    kind: codec::Kind,
}

/// The de-duplication buckets at one time: sets of event ids, each of half the window
/// (`script::DEDUP`).
struct Buckets {
    /// Number of the current bucket (time / bucket length).
    current: i64,
    /// When the current bucket's set expires (ms since the epoch): after the last check that
    /// can still find its ids.
    expire_at_ms: i64,
}

impl Buckets {
    pub(super) fn at(now_ms: UnixMs, window_ms: i64) -> Buckets {
        let len = (window_ms / 2).max(1);
        let current = now_ms.div_euclid(len);
        Buckets { current, expire_at_ms: (current + 4).saturating_mul(len) }
    }

    /// Adds KEYS 1..5 (current, the two before, the next, the one to unlink) named by `name`,
    /// and ARGV expiry.
    pub(super) fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>, name: impl Fn(i64) -> String) {
        let b = self.current;
        for k in [b, b - 2, b - 1, b + 1, b - 3] {
            inv.key(name(k));
        }
        inv.arg(self.expire_at_ms);
    }
}

/// An apply script's answer: a code per event, and the numbers (from 1) of the blobs past their
/// compaction size.
type Answer = (Vec<i64>, Vec<usize>);

fn apply_answer(value: redis::Value, events: usize) -> Result<Answer, StoreError> {
    let bad = |e: &dyn std::fmt::Display| unavailable("apply events", e);
    let (codes, big): (Vec<i64>, redis::Value) = redis::from_redis_value(value).map_err(|e| bad(&e))?;
    if codes.len() != events {
        return Err(bad(&format!("{} results for {events} events", codes.len())));
    }
    Ok((codes, big_blobs(big)?))
}

/// The numbers of the blobs an apply script found past their compaction size.
fn big_blobs(big: redis::Value) -> Result<Vec<usize>, StoreError> {
    redis::from_redis_value(big).map_err(|e| unavailable("apply events", e))
}

impl RedisStore {
    /// Connects to `target`. Fails when Redis cannot be reached now.
    pub async fn connect(
        target: &Target,
        config: RedisStoreConfig,
        dedup_window_ms: i64,
    ) -> Result<RedisStore, StoreError> {
        let conn = Conn::open(target).await.map_err(|e| unavailable("connect", e))?;
        let reader = Conn::open(target).await.map_err(|e| unavailable("connect", e))?;
        let mut probe = conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut probe).await.map_err(|e| unavailable("ping", e))?;
        // Loaded now so that the first concurrent batches do not all miss (NOSCRIPT) and load them;
        // after a Redis restart the invocations reload them by themselves.
        for s in [
            &*script::APPLY_EVENTS,
            &*script::APPLY_FRESH,
            &*script::APPLY_GROUP,
            &*script::COMPACT,
            &*script::CAS_DOC,
            &*script::PUT_SESSION,
        ] {
            s.load_async(&mut probe).await.map_err(|e| unavailable("load scripts", e))?;
        }
        tracing::info!(backend = conn.backend(), ?target, "redis store connected");
        let cache = Cache::new(
            Duration::from_millis(config.cache_ttl_ms),
            Duration::from_millis(config.stats_ttl_ms),
            config.cache_max_sessions,
            config.cache_max_users,
        );
        let health = Health::default();
        health.reachable.store(true, Ordering::Relaxed);
        let keys = Keys::new(&config.key_prefix);
        let seeds: &[String] = match target {
            Target::Cluster(nodes) => nodes,
            Target::Standalone(_) => &[],
        };
        let (router, read_router) = (slots::Router::new(seeds), slots::Router::new(seeds));
        let ingest_counts = Arc::new(writer::Counts::default());
        let writer = matches!(conn, Conn::Standalone(_)).then(|| {
            writer::Writer::start(
                conn.clone(),
                writer::Settings {
                    keys: keys.clone(),
                    dedup_window_ms,
                    renewals: Arc::new(renew::Renewals::new(activity_ttl_ms(&config))),
                    events_per_call: config.events_per_call,
                    counts: ingest_counts.clone(),
                },
            )
        });
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                writer,
                ingest_counts,
                reader,
                keys,
                config,
                dedup_window_ms,
                cache,
                health,
                router,
                read_router,
            }),
        })
    }

    fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    fn reader(&self) -> Conn {
        self.inner.reader.clone()
    }

    fn succeeded(&self) {
        self.inner.health.reachable.store(true, Ordering::Relaxed);
    }

    /// Counts a failed call. A write's failure leaves reads alone: they have a connection of
    /// their own, and find an outage by themselves within one deadline.
    fn failed(&self, what: &str, e: &StoreError) {
        let h = &self.inner.health;
        h.failures.fetch_add(1, Ordering::Relaxed);
        if h.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, what, "redis failed; reads are served degraded from the local cache");
        }
    }

    /// Counts a failed read and makes reads skip Redis: `breaker_first_ms`, doubled for each
    /// failed read before it since one answered, at most `breaker_ms`.
    fn read_failed(&self, what: &str, e: &StoreError) {
        self.failed(what, e);
        let h = &self.inner.health;
        let in_a_row = h.failed_reads_in_a_row.fetch_add(1, Ordering::Relaxed);
        let skip_ms = breaker_skip_ms(&self.inner.config, in_a_row);
        h.skip_reads_until_ms.store(now_ms() + skip_ms as i64, Ordering::Relaxed);
    }

    /// Runs a call that has no local fallback (writes, and reads of shared documents) with the
    /// write deadline; a failure or a late answer is [`StoreError::Unavailable`].
    async fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = within(what, Duration::from_millis(self.inner.config.write_timeout_ms), f).await;
        self.inner.health.timings.observe(what, started.elapsed());
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(what, e),
        }
        result
    }

    /// Runs a read with the read deadline. `Ok(None)` (after recording the failure) when Redis
    /// failed, timed out, or is being skipped after a recent failure: the caller serves its local
    /// copy, degraded. A corrupt value is an error, not an outage: it fails the call.
    async fn read<T>(
        &self,
        what: &str,
        request_deadline: Option<Instant>,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<Option<T>, StoreError> {
        let h = &self.inner.health;
        if now_ms() < h.skip_reads_until_ms.load(Ordering::Relaxed) {
            h.degraded_reads.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let mut deadline = Duration::from_millis(self.inner.config.read_timeout_ms);
        if let Some(request) = request_deadline {
            let half_left = request.saturating_duration_since(Instant::now()) / 2;
            deadline = deadline.min(half_left.max(Duration::from_millis(1)));
        }
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, f).await;
        h.timings.observe(what, started.elapsed());
        match result {
            Ok(Ok(v)) => {
                h.late_since_ms.store(0, Ordering::Relaxed);
                h.failed_reads_in_a_row.store(0, Ordering::Relaxed);
                self.succeeded();
                Ok(Some(v))
            }
            Ok(Err(e @ StoreError::Corrupt(_))) => {
                tracing::error!(what, error = %e, "corrupt value in redis");
                Err(e)
            }
            Ok(Err(e)) => {
                self.read_failed(what, &e);
                h.degraded_reads.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(_) => {
                // A late read degrades its ranking only (it may have queued behind a burst of
                // writes); reads late for longer than two deadlines with no answer in between
                // open the breaker (a stalled Redis), so that rankings stop paying the deadline.
                let now = now_ms();
                let since = match h.late_since_ms.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => now,
                    Err(since) => since,
                };
                if now - since >= 2 * self.inner.config.read_timeout_ms.max(1) as i64 {
                    h.late_since_ms.store(0, Ordering::Relaxed);
                    let e = StoreError::Unavailable(format!("redis {what}: reads late for {} ms", now - since));
                    self.read_failed(what, &e);
                }
                h.degraded_reads.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// `MGET` on `side`'s connection (the reader's on the ranking path, the writer's for ingest);
    /// on a cluster, a pipeline of `GET`s per node through that side's router.
    async fn mget(&self, side: Side, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (mut c, router) = match side {
            Side::Read => (self.reader(), &self.inner.read_router),
            Side::Write => (self.conn(), &self.inner.router),
        };
        let Conn::Cluster(cluster) = &c else {
            return c.mget(keys).await.map_err(|e| unavailable("MGET", e));
        };
        let gets: Vec<slots::Get> = keys.iter().map(|k| slots::Get(k)).collect();
        let (values, _) =
            router.run(cluster, &gets, |i| keys[i].as_bytes()).await.map_err(|e| unavailable("MGET", e))?;
        values
            .into_iter()
            .map(|v| match v {
                redis::Value::Nil => Ok(None),
                redis::Value::BulkString(bytes) => Ok(Some(bytes)),
                other => Err(unavailable("MGET", format!("unexpected reply {other:?}"))),
            })
            .collect()
    }

    /// Reads sessions: those with fresh local copies (attributes and stats within their TTLs)
    /// from the cache; for the others one MGET of their stats, and of the attributes that are not
    /// fresh either.
    async fn fetch_sessions(&self, ids: &[&str]) -> Result<Vec<Option<SessionSnapshot>>, StoreError> {
        let now = Instant::now();
        let cache = &self.inner.cache;
        let mut out: Vec<Option<SessionSnapshot>> = ids.iter().map(|id| cache.fresh_session(id, now)).collect();
        let wanted: Vec<&str> = ids.iter().zip(&out).filter(|(_, o)| o.is_none()).map(|(id, _)| *id).collect();
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut attrs: Vec<Option<Arc<LiveSession>>> = wanted.iter().map(|id| cache.fresh_attrs(id, now)).collect();
        let stale: Vec<&str> = wanted.iter().zip(&attrs).filter(|(_, a)| a.is_none()).map(|(id, _)| *id).collect();
        let keys = &self.inner.keys;
        let names: Vec<String> = wanted
            .iter()
            .map(|id| keys.session_stats(id))
            .chain(stale.iter().map(|id| keys.session_attrs(id)))
            .collect();
        let mut values = self.mget(Side::Read, &names).await?;
        let mut read = self.cache_attrs(&stale, values.split_off(wanted.len()), now)?.into_iter();
        for a in attrs.iter_mut().filter(|a| a.is_none()) {
            *a = read.next().flatten();
        }
        let mut read_stats = Vec::with_capacity(wanted.len());
        let mut slots = out.iter_mut().filter(|o| o.is_none());
        for ((id, session), stats) in wanted.iter().zip(attrs).zip(values) {
            let slot = slots.next().expect("one slot per wanted session");
            let Some(session) = session else { continue };
            let stats = Arc::new(match stats {
                Some(b) => {
                    codec::stats_from_bytes(&b).map_err(|e| StoreError::Corrupt(format!("session stats: {e}")))?
                }
                None => LiveStats::default(),
            });
            read_stats.push((id.to_string(), stats.clone()));
            *slot = Some(SessionSnapshot { session, stats });
        }
        cache.put_stats(read_stats, now);
        Ok(out)
    }

    /// Decodes attributes read for `ids` (in order), caches them as read at `now` and forgets the
    /// sessions Redis no longer has.
    fn cache_attrs(
        &self,
        ids: &[&str],
        values: Vec<Option<Vec<u8>>>,
        now: Instant,
    ) -> Result<Vec<Option<Arc<LiveSession>>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for (id, bytes) in ids.iter().zip(values) {
            match bytes {
                Some(b) => out.push(Some(Arc::new(decode::<LiveSession>("session attributes", &b)?))),
                None => {
                    self.inner.cache.forget_session(id);
                    out.push(None);
                }
            }
        }
        self.inner.cache.put_attrs(out.iter().flatten().cloned(), now);
        Ok(out)
    }

    /// Reads the live listing (newest first), reusing a fresh local copy.
    async fn fetch_live_ids(&self) -> Result<Arc<Vec<String>>, StoreError> {
        let now = Instant::now();
        if let Some(ids) = self.inner.cache.fresh_live(now) {
            return Ok(ids);
        }
        let mut c = self.reader();
        let ids: Vec<String> =
            c.zrevrange(self.inner.keys.live(), 0, -1).await.map_err(|e| unavailable("ZREVRANGE", e))?;
        Ok(self.inner.cache.put_live(ids, now))
    }

    /// Makes sure attributes of `ids` are cached fresh (one MGET for the missing ones).
    async fn refresh_attrs(&self, ids: &[String]) -> Result<(), StoreError> {
        let now = Instant::now();
        let missing: Vec<&str> =
            ids.iter().map(String::as_str).filter(|id| self.inner.cache.fresh_attrs(id, now).is_none()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|id| self.inner.keys.session_attrs(id)).collect();
        let values = self.mget(Side::Read, &names).await?;
        self.cache_attrs(&missing, values, now)?;
        Ok(())
    }

    fn select_live(
        &self,
        ids: &[String],
        filter: &CatalogFilter,
        snapshot: impl Fn(&str) -> Option<SessionSnapshot>,
    ) -> Vec<SessionSnapshot> {
        ids.iter()
            .filter_map(|id| snapshot(id))
            .filter(|s| s.session.status == SessionStatus::Live)
            .filter(|s| filter.language.is_empty() || s.session.language.eq_ignore_ascii_case(&filter.language))
            .filter(|s| filter.region.is_empty() || audience::region_contains(&s.session.region, &filter.region))
            .take(filter.limit)
            .collect()
    }

    async fn fetch_live(&self, filter: &CatalogFilter) -> Result<Vec<SessionSnapshot>, StoreError> {
        let ids = self.fetch_live_ids().await?;
        self.refresh_attrs(&ids).await?;
        let chosen = self.select_live(&ids, filter, |id| self.inner.cache.last_session(id));
        let chosen_ids: Vec<&str> = chosen.iter().map(|s| s.session.session_id.as_str()).collect();
        Ok(self.fetch_sessions(&chosen_ids).await?.into_iter().flatten().collect())
    }

    async fn fetch_users(&self, ids: &[&str]) -> Result<Vec<UserRecord>, StoreError> {
        let keys = &self.inner.keys;
        let names: Vec<String> = ids.iter().flat_map(|id| [keys.user_profile(id), keys.user_activity(id)]).collect();
        let values = self.mget(Side::Read, &names).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut values = values.into_iter();
        for _ in ids {
            let profile = values.next().flatten();
            let activity = values.next().flatten();
            out.push(UserRecord {
                profile: profile.map(|b| decode::<UserProfile>("user profile", &b)).transpose()?,
                activity: match activity {
                    Some(b) => codec::activity_from_bytes(&b)
                        .map_err(|e| StoreError::Corrupt(format!("user activity: {e}")))?,
                    None => UserActivity::default(),
                },
            });
        }
        self.inner.cache.put_users(ids.iter().map(|id| id.to_string()).zip(out.iter().cloned()));
        Ok(out)
    }

    /// Stores sessions (attributes; stats kept) and updates the live listing.
    async fn put_sessions(&self, sessions: &[LiveSession]) -> Result<(), StoreError> {
        let keys = &self.inner.keys;
        let retention = (self.inner.config.session_retention_secs as i64).saturating_mul(1000);
        let calls = sessions.iter().map(|s| {
            let mut c = self.conn();
            let ms = if s.status == SessionStatus::Ended { retention } else { 0 };
            let mut inv = script::PUT_SESSION.key(keys.session_attrs(&s.session_id));
            inv.key(keys.session_stats(&s.session_id)).arg(encode(s)).arg(ms);
            async move { inv.invoke_async::<i64>(&mut c).await }
        });
        for r in join_all(calls).await {
            r.map_err(|e| unavailable("store session", e))?;
        }
        let (live, gone): (Vec<&LiveSession>, Vec<&LiveSession>) =
            sessions.iter().partition(|s| s.status == SessionStatus::Live);
        let mut c = self.conn();
        if !live.is_empty() {
            let items: Vec<(i64, &str)> = live.iter().map(|s| (s.start_time_ms, s.session_id.as_str())).collect();
            let _: i64 = c.zadd_multiple(keys.live(), &items).await.map_err(|e| unavailable("ZADD", e))?;
        }
        if !gone.is_empty() {
            let ids: Vec<&str> = gone.iter().map(|s| s.session_id.as_str()).collect();
            let _: i64 = c.zrem(keys.live(), ids).await.map_err(|e| unavailable("ZREM", e))?;
        }
        self.inner.cache.put_attrs(sessions.iter().map(|s| Arc::new(s.clone())), Instant::now());
        self.inner.cache.invalidate_live();
        Ok(())
    }

    /// A session's stats, created only while its attributes exist.
    fn session_blob(&self, id: &str) -> Blob {
        let keys = &self.inner.keys;
        Blob {
            key: keys.session_stats(id),
            must_exist: Some(keys.session_attrs(id)),
            kind: codec::Kind::Stats,
            ttl_ms: 0,
        }
    }

    /// A user's activity, kept `activity_retention_secs` after its last event.
    fn user_blob(&self, id: &str) -> Blob {
        let ttl_ms = activity_ttl_ms(&self.inner.config);
        Blob { key: self.inner.keys.user_activity(id), must_exist: None, kind: codec::Kind::Activity, ttl_ms }
    }

    /// Redis Cluster: one [`script::APPLY_GROUP`] call per session and per user (their keys
    /// share a hash tag, so each call runs on one node), each blob with its own markers; each
    /// node gets its calls as one pipeline ([`slots::Router`]). Codes in the events' order, from
    /// the sessions' calls, and the blobs to compact.
    async fn apply_by_blob(&self, applied: &[Applied<'_>]) -> Result<(Vec<i64>, Vec<Big>), StoreError> {
        let Conn::Cluster(cluster) = &self.inner.conn else {
            return Err(StoreError::Unavailable("redis: blob calls are a cluster's".into()));
        };
        let keys = &self.inner.keys;
        let mut by_session: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut by_user: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, a) in applied.iter().enumerate() {
            by_session.entry(&a.event.session_id).or_default().push(i);
            by_user.entry(&a.event.user_id).or_default().push(i);
        }
        let sessions = by_session.into_iter().map(|(id, members)| (self.session_blob(id), id, members, true));
        let users = by_user.into_iter().map(|(id, members)| (self.user_blob(id), id, members, false));
        let mut calls = Vec::new();
        let mut invocations = Vec::new();
        for (blob, id, members, session) in sessions.chain(users) {
            let mut inv = script::APPLY_GROUP.prepare_invoke();
            inv.key(&blob.key).key(blob.must_exist.as_deref().unwrap_or(&blob.key));
            for &i in &members {
                let event_id = &applied[i].event.event_id;
                inv.key(if session { keys.session_event(id, event_id) } else { keys.user_event(id, event_id) });
            }
            let flag = |on: bool| if on { "1" } else { "0" };
            inv.arg(self.inner.dedup_window_ms.max(1)).arg(blob.ttl_ms).arg(flag(blob.must_exist.is_some()));
            inv.arg(blob.kind.compact_at());
            for &i in &members {
                let a = &applied[i];
                inv.arg(if session { a.stats.as_slice() } else { a.activity.as_slice() });
            }
            self.inner.ingest_counts.add(members.len());
            invocations.push(inv);
            calls.push((blob, members, session));
        }
        let (answers, redone) = self
            .inner
            .router
            .run(cluster, &invocations, |i| calls[i].0.key.as_bytes())
            .await
            .map_err(|e| unavailable("apply events", e))?;
        self.inner.ingest_counts.redo(redone);
        let mut codes = vec![-1; applied.len()];
        let mut all_big = Vec::new();
        for ((blob, members, session), value) in calls.into_iter().zip(answers) {
            let (r, big) = apply_answer(value, members.len())?;
            all_big.extend(big.into_iter().map(|_| Big { key: blob.key.clone(), kind: blob.kind }));
            if session {
                for (i, code) in members.into_iter().zip(r) {
                    codes[i] = code;
                }
            }
        }
        Ok((codes, all_big))
    }

    async fn ingest_inner(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        // 1. The sessions (category, target) and profiles (inside the target?) the events need.
        let mut session_ids: Vec<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        session_ids.sort_unstable();
        session_ids.dedup();
        let mut user_ids: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let now = Instant::now();
        let keys = &self.inner.keys;
        let cache = &self.inner.cache;
        let stale: Vec<&str> = session_ids.iter().copied().filter(|id| cache.fresh_attrs(id, now).is_none()).collect();
        let mut profiles: foldhash::HashMap<&str, Arc<UserProfile>> =
            foldhash::HashMap::with_capacity_and_hasher(user_ids.len(), Default::default());
        let mut unread_users = Vec::new();
        for id in &user_ids {
            match cache.fresh_profile(id, now) {
                Some(Some(profile)) => {
                    profiles.insert(*id, profile);
                }
                Some(None) => {}
                None => unread_users.push(*id),
            }
        }
        let mut names: Vec<String> = unread_users.iter().map(|id| keys.user_profile(id)).collect();
        names.extend(stale.iter().map(|id| keys.session_attrs(id)));
        let mut values = self.mget(Side::Write, &names).await?;
        let attrs = values.split_off(unread_users.len());
        let mut read = Vec::with_capacity(unread_users.len());
        for (id, bytes) in unread_users.iter().zip(values) {
            let profile = bytes.map(|b| decode::<UserProfile>("user profile", &b).map(Arc::new)).transpose()?;
            if let Some(p) = &profile {
                profiles.insert(*id, p.clone());
            }
            read.push((*id, profile));
        }
        cache.put_profiles(read, now);
        let mut sessions: foldhash::HashMap<&str, Arc<LiveSession>> =
            foldhash::HashMap::with_capacity_and_hasher(session_ids.len(), Default::default());
        for (id, session) in stale.iter().zip(self.cache_attrs(&stale, attrs, now)?) {
            if let Some(session) = session {
                sessions.insert(*id, session);
            }
        }
        for id in &session_ids {
            if !sessions.contains_key(id)
                && let Some(s) = self.inner.cache.fresh_attrs(id, now)
            {
                sessions.insert(*id, s);
            }
        }

        // 2. Each event's deltas to its session's stats and its user's activity, decided by the
        //    domain's own folding code.
        let mut statuses = vec![EventStatus::UnknownSession; events.len()];
        let applied: Vec<Applied> = events
            .iter()
            .enumerate()
            .filter_map(|(position, e)| {
                let session = sessions.get(e.session_id.as_str())?;
                let viewer = Viewer::of(profiles.get(e.user_id.as_str()).map(|p| &**p), &session.target);
                Some(Applied {
                    position,
                    event: e,
                    stats: codec::Kind::Stats.record(&codec::stats_delta(e, viewer)),
                    activity: codec::Kind::Activity.record(&codec::activity_delta(
                        session.category,
                        session.price_band,
                        e,
                    )),
                })
            })
            .collect();

        // 3. Applied in Redis, each event once.
        let positions: Vec<usize> = applied.iter().map(|a| a.position).collect();
        let codes = match &self.inner.writer {
            Some(writer) => writer.apply(applied.into_iter().map(Applied::into_write).collect()).await?,
            None => {
                let (codes, big) = self.apply_by_blob(&applied).await?;
                compact(self.conn(), big).await;
                codes
            }
        };
        for (position, code) in positions.into_iter().zip(codes) {
            statuses[position] = match code {
                1 => EventStatus::Accepted,
                0 => EventStatus::Duplicate,
                _ => EventStatus::UnknownSession,
            };
        }
        // A second copy of an id within the batch shows as applied-before in the script.
        Ok(IngestOutcome { statuses })
    }

    /// A handle on a versioned document in Redis (the experiments).
    pub fn shared_doc(&self) -> SharedDoc {
        SharedDoc { store: self.clone(), key: self.inner.keys.experiments() }
    }
}

impl RedisStore {
    /// A handle on the list every replica appends its audit log entries to.
    pub fn shared_list(&self) -> SharedList {
        SharedList { store: self.clone(), key: self.inner.keys.audit() }
    }
}

/// A list shared by every replica: entries appended at its end, the newest read back.
#[derive(Clone, Debug)]
pub struct SharedList {
    store: RedisStore,
    key: String,
}

impl SharedList {
    /// Most entries kept; older ones are dropped as new ones arrive.
    pub const KEEP: i64 = 1_000_000;

    /// Appends `entry`.
    pub async fn push(&self, entry: &[u8]) -> Result<(), StoreError> {
        self.store
            .call("append to list", async {
                let mut c = self.store.conn();
                let _: () = redis::pipe()
                    .atomic()
                    .rpush(&self.key, entry)
                    .ignore()
                    .ltrim(&self.key, -(Self::KEEP as isize), -1)
                    .ignore()
                    .query_async(&mut c)
                    .await
                    .map_err(|e| unavailable("RPUSH", e))?;
                Ok(())
            })
            .await
    }

    /// The newest `n` entries, oldest first.
    pub async fn tail(&self, n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.store
            .call("read list", async {
                let mut c = self.store.conn();
                c.lrange(&self.key, -(n.min(isize::MAX as usize) as isize), -1)
                    .await
                    .map_err(|e| unavailable("LRANGE", e))
            })
            .await
    }
}

/// A JSON document shared by every replica, replaced by compare-and-set on its version.
#[derive(Clone, Debug)]
pub struct SharedDoc {
    store: RedisStore,
    key: String,
}

impl SharedDoc {
    /// The document and its version (0 and `None` when absent).
    pub async fn get(&self) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        self.store
            .call("read document", async {
                let mut c = self.store.conn();
                let (v, doc): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
                    .arg(&self.key)
                    .arg("v")
                    .arg("doc")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| unavailable("HMGET", e))?;
                Ok((v.unwrap_or(0), doc))
            })
            .await
    }

    /// Stores `doc` if the version is still `expected`; the new version, or `None` on conflict.
    pub async fn replace(&self, expected: u64, doc: &[u8]) -> Result<Option<u64>, StoreError> {
        self.store
            .call("replace document", async {
                let mut c = self.store.conn();
                let mut inv = script::CAS_DOC.key(&self.key);
                inv.arg(expected).arg(doc);
                let v: i64 = inv.invoke_async(&mut c).await.map_err(|e| unavailable("replace document", e))?;
                Ok((v >= 0).then_some(v as u64))
            })
            .await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn upsert_users(&self, users: Vec<(String, UserProfile)>) -> Result<usize, StoreError> {
        let n = users.len();
        if n == 0 {
            return Ok(0);
        }
        self.call("store users", async {
            let items: Vec<(String, Vec<u8>)> =
                users.iter().map(|(id, p)| (self.inner.keys.user_profile(id), encode(p))).collect();
            let mut c = self.conn();
            let _: () = c.mset(&items).await.map_err(|e| unavailable("MSET", e))?;
            Ok(())
        })
        .await?;
        self.inner
            .cache
            .put_profiles(users.iter().map(|(id, p)| (id.as_str(), Some(Arc::new(p.clone())))), Instant::now());
        // Local copies keep their activity until the next read.
        let updated = users.into_iter().map(|(id, profile)| {
            let activity = self.inner.cache.last_user(&id).map(|u| u.activity).unwrap_or_default();
            (id, UserRecord { profile: Some(profile), activity })
        });
        self.inner.cache.put_users(updated.collect::<Vec<_>>());
        Ok(n)
    }

    async fn upsert_sessions(&self, sessions: Vec<LiveSession>) -> Result<usize, StoreError> {
        let n = sessions.len();
        self.call("store sessions", self.put_sessions(&sessions)).await?;
        Ok(n)
    }

    async fn end_session(&self, session_id: &str, end_ms: UnixMs) -> Result<Option<LiveSession>, StoreError> {
        self.call("end session", async {
            let mut c = self.conn();
            let bytes: Option<Vec<u8>> =
                c.get(self.inner.keys.session_attrs(session_id)).await.map_err(|e| unavailable("GET", e))?;
            let Some(bytes) = bytes else { return Ok(None) };
            let mut session: LiveSession = decode("session attributes", &bytes)?;
            session.status = SessionStatus::Ended;
            session.end_time_ms = end_ms;
            self.put_sessions(std::slice::from_ref(&session)).await?;
            Ok(Some(session))
        })
        .await
    }

    async fn get_users(&self, ids: &[&str], deadline: Option<Instant>) -> Result<Fetched<Vec<UserRecord>>, StoreError> {
        match self.read("read users", deadline, self.fetch_users(ids)).await? {
            Some(users) => Ok(Fetched::fresh(users)),
            None => Ok(Fetched {
                value: ids.iter().map(|id| self.inner.cache.last_user(id).unwrap_or_default()).collect(),
                degraded: true,
            }),
        }
    }

    async fn get_sessions(
        &self,
        ids: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Fetched<Vec<Option<SessionSnapshot>>>, StoreError> {
        match self.read("read sessions", deadline, self.fetch_sessions(ids)).await? {
            Some(sessions) => Ok(Fetched::fresh(sessions)),
            None => {
                Ok(Fetched { value: ids.iter().map(|id| self.inner.cache.last_session(id)).collect(), degraded: true })
            }
        }
    }

    async fn live_sessions(
        &self,
        filter: &CatalogFilter,
        deadline: Option<Instant>,
    ) -> Result<Fetched<Vec<SessionSnapshot>>, StoreError> {
        match self.read("list live sessions", deadline, self.fetch_live(filter)).await? {
            Some(sessions) => Ok(Fetched::fresh(sessions)),
            None => {
                let ids = self.inner.cache.last_live().unwrap_or_default();
                Ok(Fetched {
                    value: self.select_live(&ids, filter, |id| self.inner.cache.last_session(id)),
                    degraded: true,
                })
            }
        }
    }

    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        self.call("store events", self.ingest_inner(events)).await
    }

    fn status(&self) -> StoreStatus {
        let h = &self.inner.health;
        let (cached_sessions, cached_users) = self.inner.cache.sizes();
        let (ingest_calls, ingest_call_events) = self.inner.ingest_counts.get();
        let ingest_calls_redone = self.inner.ingest_counts.redone();
        StoreStatus {
            backend: self.inner.conn.backend(),
            reachable: h.reachable.load(Ordering::Relaxed),
            degraded_reads: h.degraded_reads.load(Ordering::Relaxed),
            failures: h.failures.load(Ordering::Relaxed),
            cached_sessions,
            cached_users,
            breaker_open: now_ms() < h.skip_reads_until_ms.load(Ordering::Relaxed),
            ingest_calls,
            ingest_call_events,
            ingest_calls_redone,
        }
    }

    fn timings(&self) -> Option<crate::telemetry::Timings> {
        Some(self.inner.health.timings.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_skips_briefly_at_first_and_doubles_up_to_its_longest() {
        let config = RedisStoreConfig::default();
        let skips: Vec<u64> = (0..7).map(|n| breaker_skip_ms(&config, n)).collect();
        assert_eq!(skips, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(breaker_skip_ms(&config, u32::MAX), 1_000, "no overflow");
        let short = RedisStoreConfig { breaker_ms: 50, ..Default::default() };
        assert_eq!(breaker_skip_ms(&short, 0), 50, "never longer than breaker_ms");
    }
}
