//! Test harness: the real server on an ephemeral port, with its own data and models folders.

#![allow(dead_code)]

pub mod redis;
pub mod served;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use fitrank::config::Config;
use fitrank::proto::v1 as pb;
use fitrank::server::{self, ServeError};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP port (`/metrics`, `/healthz`, `/readyz`).
    pub http_addr: SocketAddr,
    pub models_dir: PathBuf,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServeError>>>,
    _tmp: tempfile::TempDir,
}

/// The workspace's root folder (this harness also serves the lab's tests, in `crates/`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().find(|p| p.join("models/default").is_dir()).unwrap_or(here).to_path_buf()
}

/// The shipped models folder.
pub fn shipped_models() -> PathBuf {
    workspace_root().join("models")
}

/// The newest version folder (one with a manifest) of a model name's folder `base`: the one a
/// server starting on it serves.
pub fn newest_version(base: &Path) -> PathBuf {
    std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").is_file())
        .max()
        .unwrap()
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl TestServer {
    /// Starts a server with the shipped models (copied) and a fresh store.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let models_dir = tmp.path().join("models");
        copy_dir(&shipped_models(), &models_dir);
        let data_dir = tmp.path().join("data");
        let mut config = Config {
            models_dir: models_dir.clone(),
            data_dir: data_dir.clone(),
            shutdown_drain_ms: 200,
            shutdown_timeout_secs: 10,
            ..Config::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run_with_http(config, listener, Some(http), async move {
            let _ = rx.await;
        }));
        let server =
            TestServer { addr, http_addr, models_dir, data_dir, shutdown: Some(tx), handle: Some(handle), _tmp: tmp };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            // A TCP connection, not a gRPC one: the port may speak TLS.
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("server did not start on {}", self.addr);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.unwrap()
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for the server to finish; its folders stay until it is dropped.
    pub async fn stop(&mut self) -> Result<(), ServeError> {
        self.begin_shutdown();
        self.handle.take().expect("server running").await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// A user attributes message.
pub fn attrs(age: pb::AgeBand, gender: pb::Gender, region: &str, language: &str) -> pb::UserAttributes {
    pb::UserAttributes {
        age_band: age as i32,
        gender: gender as i32,
        region: region.into(),
        language: language.into(),
        interests: vec![],
    }
}

/// A live sportswear session in US/en with the given target.
pub fn session(id: &str, target: Option<pb::TargetAudience>) -> pb::LiveSession {
    pb::LiveSession {
        session_id: id.into(),
        host_id: format!("host-{id}"),
        category: pb::Category::Sportswear as i32,
        price_band: pb::PriceBand::Mid as i32,
        language: "en".into(),
        region: "US".into(),
        start_time_unix_ms: fitrank::domain::now_ms() - 10 * 60_000,
        status: pb::SessionStatus::Live as i32,
        target,
    }
}

/// A target audience.
pub fn target(min_age: u32, max_age: u32, genders: &[pb::Gender], regions: &[&str]) -> pb::TargetAudience {
    pb::TargetAudience {
        min_age,
        max_age,
        genders: genders.iter().map(|g| *g as i32).collect(),
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        interests: vec![],
    }
}

/// An event message.
pub fn event(id: &str, kind: pb::EventType, user: &str, session: &str) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        r#type: kind as i32,
        user_id: user.into(),
        session_id: session.into(),
        time_unix_ms: 0,
        ranking_id: if kind == pb::EventType::Impression { fitrank::ranking::new_ranking_id() } else { String::new() },
        position: 0,
        watch_seconds: if kind == pb::EventType::Watch { 30.0 } else { 0.0 },
        amount: if matches!(kind, pb::EventType::Purchase | pb::EventType::Return) { 25.0 } else { 0.0 },
        order_id: String::new(),
    }
}

/// `GET path` on an HTTP/1.1 server: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(body) } else { body.to_owned() };
    (status, body)
}

/// The payload of a chunked HTTP/1.1 body.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `binary` with `args` (logging at warn) and returns its standard output; panics with its
/// standard error when it fails.
pub fn run(binary: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(binary).args(args).env("FITRANK_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{binary} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
