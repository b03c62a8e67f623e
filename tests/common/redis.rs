//! A redis-server of the test's own, on a free port, with its data in a temporary folder and the
//! append-only file on (`appendfsync always`), so that a killed server restarts with every write
//! it acknowledged. Installs redis-server (scripts/install-redis.sh) when it is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped, restartable) redis-server.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

fn redis_server_binary() -> PathBuf {
    let found = |p: &Path| p.is_file();
    let on_path = || {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).map(|d| d.join("redis-server")).find(|p| found(p)))
            .unwrap_or(None)
    };
    if let Some(p) = on_path() {
        return p;
    }
    let script = super::workspace_root().join("scripts/install-redis.sh");
    let status = Command::new("bash").arg(script).status().expect("run scripts/install-redis.sh");
    assert!(status.success(), "redis-server is missing and scripts/install-redis.sh failed");
    on_path().expect("redis-server installed")
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a standalone server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `--cluster-enabled yes`).
    ///
    /// The port is free when chosen but may be taken before redis-server binds it (tests run in
    /// parallel processes): then redis-server exits, and the start is retried on another port.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..5 {
            if server.try_start() {
                return server;
            }
            server.port = free_port();
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process again on the same port and folder (after [`Self::kill`]).
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server did not start on port {}", self.port);
    }

    /// Starts the process; false when it exited before answering (its port was taken).
    fn try_start(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let Some(child) = self.child.as_mut() else { return false };
            if !matches!(child.try_wait(), Ok(None)) {
                self.child = None;
                return false;
            }
            // Ready when the server on the port is ours: another one may own the port.
            let ours = format!("process_id:{}", child.id());
            if self.cli(&["INFO", "server"]).is_some_and(|info| info.lines().any(|l| l.trim() == ours)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Runs redis-cli against this server; its output, or `None` when it failed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// Freezes the process (SIGSTOP): connections stay open and nothing answers — a slow Redis.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Unfreezes the process (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Kills the process (SIGKILL: no shutdown save; the append-only file keeps what it acknowledged).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process by its pid (a paused one must run to die).
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a Redis Cluster of three primaries.
pub fn start_cluster() -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]))
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let start = Instant::now();
    while !nodes.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))) {
        assert!(start.elapsed() < Duration::from_secs(20), "cluster did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes
}

/// The `--store` value of a cluster's nodes.
pub fn cluster_url(nodes: &[RedisServer]) -> String {
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    format!("redis+cluster://{}", addrs.join(","))
}

/// Moves the hash slot of `key`, with its keys, from the primary of `nodes` holding it to the
/// next one, as `redis-cli --cluster reshard` does: the slot is marked importing and migrating,
/// its keys are `MIGRATE`d, and every node is told its new owner. Clients that still send the
/// slot to the old owner are answered `MOVED`.
pub fn move_slot_of(nodes: &[RedisServer], key: &str) {
    let slot: u16 = nodes[0].cli(&["CLUSTER", "KEYSLOT", key]).unwrap().trim().parse().unwrap();
    let listing = nodes[0].cli(&["CLUSTER", "NODES"]).unwrap();
    // Per node line: id, address (host:port@bus), flags, master, ping, pong, epoch, link, slots...
    let owns = |ranges: &[&str]| {
        ranges.iter().any(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse::<u16>().unwrap()..=b.parse().unwrap()).contains(&slot),
            None => r.parse::<u16>().is_ok_and(|s| s == slot),
        })
    };
    let mut ids = std::collections::HashMap::new();
    let mut owner = None;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
        ids.insert(port, fields[0].to_owned());
        if owns(&fields[8..]) {
            owner = Some(port);
        }
    }
    let from = nodes.iter().position(|n| Some(n.port) == owner).expect("the slot's owner");
    let (src, dst) = (&nodes[from], &nodes[(from + 1) % nodes.len()]);
    let slot = slot.to_string();
    let ok = |n: &RedisServer, args: &[&str]| assert!(n.cli(args).is_some_and(|o| o.trim() == "OK"), "{args:?}");
    ok(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &ids[&src.port]]);
    ok(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &ids[&dst.port]]);
    loop {
        let keys = src.cli(&["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]).unwrap();
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = dst.port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys);
        ok(src, &args);
    }
    for n in nodes {
        ok(n, &["CLUSTER", "SETSLOT", &slot, "NODE", &ids[&dst.port]]);
    }
}
