//! Which node of a Redis Cluster holds a key, so that a replica sends each node its share of a
//! batch's calls, or of a read's keys, as one pipeline.
//!
//! redis-rs' cluster client routes every command by itself, and that routing costs the replica
//! far more than the command: a batch spread over sessions and users makes two script calls per
//! event, and a ranking's read of 500 candidates' stats 500 `GET`s (it splits an `MGET` by
//! slot), each its own request through the client. Grouped by node, they are one pipeline per
//! node, on a connection of the [`Router`]'s own to that node. (Not through the cluster client:
//! it answers a pipeline holding one redirection by sending the whole pipeline again, calls that
//! already ran included.) The map is only a hint: a call sent to a node that no longer holds its
//! slot is answered `MOVED` and not run, and goes again on its own through the cluster client,
//! which follows the redirection; the map is then read again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{RedisResult, ScriptInvocation, ServerErrorKind, Value};

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// How long a map is trusted before it is read again, even without a redirection.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// How long opening a connection to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The slot of `key`: CRC16 (XMODEM) of its hash tag (the first non-empty `{...}`), or of the
/// whole key without one, modulo [`SLOTS`].
pub fn slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).unwrap_or(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

/// A primary: its address and node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    pub id: String,
}

/// The primary of each slot range, as `CLUSTER SLOTS` answered at `read_at`.
#[derive(Debug, Clone)]
pub struct SlotMap {
    /// (first slot, last slot, index into `nodes`), sorted by first slot.
    ranges: Vec<(u16, u16, usize)>,
    pub nodes: Vec<Node>,
    pub read_at: Instant,
}

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply: per range its first and last slot, then its primary's
    /// host, port and node id (then its replicas, ignored). An empty host means the address the
    /// question was sent to (Redis's answer on a cluster that never met another node): `asked`.
    pub fn parse(reply: &Value, asked: &str, read_at: Instant) -> Option<SlotMap> {
        let Value::Array(entries) = reply else { return None };
        let mut ranges = Vec::with_capacity(entries.len());
        let mut nodes: Vec<Node> = Vec::new();
        for entry in entries {
            let Value::Array(fields) = entry else { return None };
            let [Value::Int(first), Value::Int(last), Value::Array(primary), ..] = fields.as_slice() else {
                return None;
            };
            let [host, Value::Int(port), id, ..] = primary.as_slice() else { return None };
            let (host, id) = (text(host)?, text(id)?);
            let host = if host.is_empty() { asked.to_owned() } else { host };
            let (first, last, port) =
                (u16::try_from(*first).ok()?, u16::try_from(*last).ok()?, u16::try_from(*port).ok()?);
            if id.is_empty() || first > last || last >= SLOTS {
                return None;
            }
            let node = Node { host, port, id };
            let index = nodes.iter().position(|n| *n == node).unwrap_or_else(|| {
                nodes.push(node);
                nodes.len() - 1
            });
            ranges.push((first, last, index));
        }
        ranges.sort_by_key(|r| r.0);
        Some(SlotMap { ranges, nodes, read_at })
    }

    /// The index in `nodes` of the primary holding `slot`, if the map knows it.
    pub fn node(&self, slot: u16) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.0 <= slot).checked_sub(1)?;
        let (_, last, node) = self.ranges[i];
        (slot <= last).then_some(node)
    }

    /// Whether the map is old enough to be read again.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.read_at) >= MAX_AGE
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// A command of one key's slot, sent in its node's pipeline or alone through the cluster client.
pub trait Call: Sync {
    /// Adds the command to `pipe`.
    fn add_to(&self, pipe: &mut redis::Pipeline);
    /// Runs the command alone on `cluster`, which follows redirections.
    fn alone(&self, cluster: ClusterConnection) -> impl Future<Output = RedisResult<Value>> + Send;
}

/// A script call (its keys share one hash tag); alone it reloads the script when a node lacks it.
impl Call for ScriptInvocation<'_> {
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        pipe.invoke_script(self);
    }

    async fn alone(&self, mut cluster: ClusterConnection) -> RedisResult<Value> {
        self.invoke_async(&mut cluster).await
    }
}

/// A `GET` of one key.
pub struct Get<'a>(pub &'a str);

impl Call for Get<'_> {
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("GET").arg(self.0);
    }

    async fn alone(&self, mut cluster: ClusterConnection) -> RedisResult<Value> {
        redis::cmd("GET").arg(self.0).query_async(&mut cluster).await
    }
}

/// A map and a connection to each of its primaries.
struct Routes {
    map: SlotMap,
    /// Per node of `map.nodes`, its connection (`None`: it could not be opened).
    conns: Vec<Option<MultiplexedConnection>>,
    /// Per node, set when a pipeline on its connection failed: the connection is opened again
    /// (a multiplexed connection does not reconnect by itself).
    broken: Vec<AtomicBool>,
    /// Set when a node answered a redirection or a pipeline failed: the map is read again.
    stale: AtomicBool,
}

impl Routes {
    /// Node `i`'s connection, unless it failed.
    fn usable(&self, i: usize) -> Option<&MultiplexedConnection> {
        self.conns[i].as_ref().filter(|_| !self.broken[i].load(Ordering::Relaxed))
    }
}

/// Sends calls to a cluster's nodes, one pipeline per node, on connections of its own.
pub struct Router {
    /// The cluster's seed nodes (`host:port`), asked for the map in turn.
    seeds: Vec<String>,
    routes: RwLock<Option<Arc<Routes>>>,
}

impl Router {
    /// A router for the cluster of `seeds` (`redis://host:port` or `host:port`); it reads the map
    /// at its first call.
    pub fn new(seeds: &[String]) -> Router {
        let seeds = seeds.iter().map(|s| s.trim_start_matches("redis://").to_owned()).collect();
        Router { seeds, routes: RwLock::new(None) }
    }

    /// Runs `calls` (each on keys of one hash tag, named by `key_of`) on the cluster's nodes, and
    /// answers in their order, with the number of calls that went again after their node did not
    /// run them. Each node gets its calls as one pipeline; a call the map cannot place, or that
    /// its node did not run (a redirection, a missing script, a node not ready), or whose
    /// pipeline failed, goes again on its own through `cluster` ([`Call::alone`]). A call may
    /// thus run twice (its pipeline's answer lost): the calls must be idempotent, as reads are and
    /// as the apply scripts' per-event markers make them.
    pub async fn run<'k, C: Call>(
        &self,
        cluster: &ClusterConnection,
        calls: &[C],
        key_of: impl Fn(usize) -> &'k [u8],
    ) -> RedisResult<(Vec<Value>, usize)> {
        let routes = self.routes().await;
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut alone = Vec::new();
        for i in 0..calls.len() {
            let node = routes.as_deref().and_then(|r| r.map.node(slot(key_of(i))).filter(|&n| r.usable(n).is_some()));
            match node {
                Some(node) => by_node.entry(node).or_default().push(i),
                None => alone.push(i),
            }
        }
        let unmapped = alone.len();
        let mut answers: Vec<Option<Value>> = vec![None; calls.len()];
        let pipelines = by_node.into_iter().map(|(node, members)| {
            let mut pipe = redis::pipe();
            for &i in &members {
                calls[i].add_to(&mut pipe);
            }
            let mut conn = routes.as_ref().and_then(|r| r.usable(node).cloned());
            async move {
                let answer = match conn.as_mut() {
                    Some(c) => c.req_packed_commands(&pipe, 0, members.len()).await,
                    None => Err(redis::RedisError::from((redis::ErrorKind::Io, "no connection"))),
                };
                (node, members, answer)
            }
        });
        let mut stale = false;
        for (node, members, answer) in join_all(pipelines).await {
            match answer {
                Ok(values) if values.len() == members.len() => {
                    for (i, value) in members.into_iter().zip(values) {
                        match not_run(&value) {
                            Some(redirected) => {
                                stale |= redirected;
                                alone.push(i);
                            }
                            None => answers[i] = Some(value),
                        }
                    }
                }
                _ => {
                    if let Some(routes) = &routes {
                        routes.broken[node].store(true, Ordering::Relaxed);
                    }
                    stale = true;
                    alone.extend(members);
                }
            }
        }
        let redone = alone.len() - unmapped;
        tracing::trace!(calls = calls.len(), unmapped, redone, stale, "cluster calls by node");
        if let Some(routes) = routes.as_ref().filter(|_| stale) {
            routes.stale.store(true, Ordering::Relaxed);
        }
        let singles = alone.into_iter().map(|i| {
            let c = cluster.clone();
            async move { (i, calls[i].alone(c).await) }
        });
        for (i, answer) in join_all(singles).await {
            answers[i] = Some(answer?);
        }
        Ok((answers.into_iter().map(|a| a.unwrap_or(Value::Nil)).collect(), redone))
    }

    /// The routes, read again when there are none or they are stale or expired; `None` when no
    /// node answers.
    async fn routes(&self) -> Option<Arc<Routes>> {
        let now = Instant::now();
        let old = self.routes.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(routes) = old.as_ref().filter(|r| !r.map.expired(now) && !r.stale.load(Ordering::Relaxed)) {
            return Some(routes.clone());
        }
        let routes = self.read_routes(old.as_deref(), now).await.map(Arc::new);
        routes.clone_into(&mut self.routes.write().unwrap_or_else(|e| e.into_inner()));
        routes
    }

    /// Asks for the map the nodes `old` is connected to, then the seeds, in turn, and connects to
    /// its primaries, keeping the connections of `old` to the nodes that did not change.
    async fn read_routes(&self, old: Option<&Routes>, now: Instant) -> Option<Routes> {
        let known = old
            .into_iter()
            .flat_map(|o| (0..o.conns.len()).filter_map(|i| Some((o.map.nodes[i].host.clone(), o.usable(i)?.clone()))));
        let mut map = None;
        for (host, conn) in known {
            map = ask_slots(conn, &host, now).await;
            if map.is_some() {
                break;
            }
        }
        if map.is_none() {
            for seed in &self.seeds {
                let Some(conn) = connect(seed).await else { continue };
                let host = seed.rsplit_once(':').map_or(seed.as_str(), |(h, _)| h);
                map = ask_slots(conn, host, now).await;
                if map.is_some() {
                    break;
                }
            }
        }
        let map = map?;
        let mut conns = Vec::with_capacity(map.nodes.len());
        for node in &map.nodes {
            let kept = old.and_then(|o| o.map.nodes.iter().position(|n| n == node).and_then(|i| o.usable(i).cloned()));
            conns.push(match kept {
                Some(c) => Some(c),
                None => connect(&format!("{}:{}", node.host, node.port)).await,
            });
        }
        let broken = conns.iter().map(|_| AtomicBool::new(false)).collect();
        Some(Routes { map, conns, broken, stale: AtomicBool::new(false) })
    }
}

/// The map as the node on `conn` (at `host`) answers it, or `None`.
async fn ask_slots(mut conn: MultiplexedConnection, host: &str, now: Instant) -> Option<SlotMap> {
    match redis::cmd("CLUSTER").arg("SLOTS").query_async::<Value>(&mut conn).await {
        Ok(reply) => SlotMap::parse(&reply, host, now),
        Err(e) => {
            tracing::debug!(host, error = %e, "CLUSTER SLOTS failed");
            None
        }
    }
}

/// A connection to `addr` (`host:port`), or `None` when it cannot be opened now.
async fn connect(addr: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::debug!(addr, error = %e, "cannot connect to a cluster node");
            None
        }
        Err(_) => None,
    }
}

/// Whether a node answered `value` without running the call: `Some(true)` for a redirection
/// (the map is stale), `Some(false)` for a node that could not run it now or lacked the script.
fn not_run(value: &Value) -> Option<bool> {
    let Value::ServerError(e) = value else { return None };
    match e.kind()? {
        ServerErrorKind::Moved | ServerErrorKind::Ask => Some(true),
        ServerErrorKind::NoScript
        | ServerErrorKind::TryAgain
        | ServerErrorKind::ClusterDown
        | ServerErrorKind::MasterDown
        | ServerErrorKind::BusyLoading => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(first: i64, last: i64, host: &str, id: &str) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![bulk(host), Value::Int(7000), bulk(id)]),
            Value::Array(vec![bulk("10.0.0.9"), Value::Int(7000), bulk("replica")]),
        ])
    }

    #[test]
    fn slots_follow_the_hash_tag_as_redis_computes_them() {
        // Values from `CLUSTER KEYSLOT` (Redis 7.0).
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"user:{42}:profile"), slot(b"42"));
        assert_eq!(slot(b"user:{42}:profile"), 8_000);
        assert_eq!((slot(b"{}x"), slot(b"{}a")), (10_595, 10_875), "an empty tag: the whole key");
        assert_eq!(slot(b"foo{}{bar}"), 8_363, "only the first braces count, even empty");
        assert_eq!(slot(b"foo{{bar}}zap"), 4_015, "the tag runs to the first closing brace");
        assert_eq!((slot(b"a{b"), slot(b"a}b{c}")), (13_340, 7_365), "no closing brace after the opening one");
    }

    #[test]
    fn the_map_finds_each_slot_primary() {
        let reply = Value::Array(vec![
            range(5_461, 10_922, "10.0.0.2", "b"),
            range(0, 5_000, "10.0.0.1", "a"),
            range(5_001, 5_460, "10.0.0.1", "a"),
            range(12_000, 16_383, "", "c"),
        ]);
        let map = SlotMap::parse(&reply, "10.0.0.3", Instant::now()).unwrap();
        let node = |s| map.node(s).map(|n| map.nodes[n].id.as_str());
        assert_eq!((node(0), node(5_460), node(5_461), node(10_922)), (Some("a"), Some("a"), Some("b"), Some("b")));
        assert_eq!(node(10_923), None, "a slot no node serves");
        assert_eq!(map.nodes.len(), 3, "a node with two ranges is one node");
        assert_eq!(node(16_383), Some("c"));
        assert_eq!(map.nodes[map.node(16_383).unwrap()].host, "10.0.0.3", "an empty host: the address asked");
        assert!(SlotMap::parse(&Value::Int(1), "h", Instant::now()).is_none());
        assert!(SlotMap::parse(&Value::Array(vec![Value::Array(vec![Value::Int(0)])]), "h", Instant::now()).is_none());
    }
}
