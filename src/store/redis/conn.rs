//! One connection type over standalone Redis and Redis Cluster.
//!
//! Standalone uses redis-rs' `ConnectionManager` (one multiplexed connection that reconnects by
//! itself); Cluster uses its cluster client, which routes each command to the node of its key
//! and splits multi-key reads (`MGET`) by slot. Both are cheap to clone; clones share the
//! connection, and concurrent commands on it are pipelined on the wire.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Where the shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `redis://HOST:PORT[/DB]`.
    Standalone(String),
    /// `redis+cluster://HOST:PORT,HOST:PORT,...`: seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

impl Target {
    /// Parses a `--store` value naming Redis; `None` when it names no Redis.
    pub fn parse(spec: &str) -> Option<Target> {
        if let Some(nodes) = spec.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> =
                nodes.split(',').filter(|n| !n.is_empty()).map(|n| format!("redis://{n}")).collect();
            return (!nodes.is_empty()).then_some(Target::Cluster(nodes));
        }
        (spec.starts_with("redis://") || spec.starts_with("rediss://")).then(|| Target::Standalone(spec.to_owned()))
    }
}

/// A connection to either deployment.
#[derive(Clone)]
pub enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects (fails when Redis cannot be reached now; later outages are survived).
    pub async fn open(target: &Target) -> redis::RedisResult<Conn> {
        match target {
            Target::Standalone(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(3)
                    .set_max_delay(std::time::Duration::from_millis(500))
                    .set_connection_timeout(Some(std::time::Duration::from_secs(2)));
                Ok(Conn::Standalone(ConnectionManager::new_with_config(client, config).await?))
            }
            Target::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(std::time::Duration::from_secs(2))
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// "redis" or "redis-cluster".
    pub fn backend(&self) -> &'static str {
        match self {
            Conn::Standalone(_) => "redis",
            Conn::Cluster(_) => "redis-cluster",
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(Target::parse("redis://127.0.0.1:6379"), Some(Target::Standalone("redis://127.0.0.1:6379".into())));
        assert_eq!(
            Target::parse("redis+cluster://a:1,b:2"),
            Some(Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()]))
        );
        assert_eq!(Target::parse("embedded"), None);
        assert_eq!(Target::parse("redis+cluster://"), None);
    }
}
