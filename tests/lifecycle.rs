//! Health, reflection, graceful shutdown, model refusal, and the real process (kill -9, a full
//! disk).

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, event, session};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

async fn health(server: &TestServer, service: &str) -> i32 {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn health_and_both_reflection_versions() {
    let server = TestServer::start().await;
    assert_eq!(health(&server, "").await, ServingStatus::Serving as i32);
    assert_eq!(health(&server, "fitrank.v1.RankingService").await, ServingStatus::Serving as i32);

    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(server.channel().await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["fitrank.v1.RankingService", "fitrank.v1.CatalogService", "fitrank.v1.EventService", "grpc.health.v1.Health"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "fitrank.v1.RankingService".into(),
        )),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    assert!(matches!(
        response.message_response,
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
    ));
}

/// `RankingService` answers a method it does not have with UNIMPLEMENTED, and `Rank` with a
/// ranking.
#[tokio::test]
async fn the_ranking_service_answers_an_unknown_method_with_unimplemented() {
    let server = TestServer::start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<pb::RankRequest, pb::RankResponse, _>(
            tonic::Request::new(pb::RankRequest { user_id: "u".into(), ..Default::default() }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/fitrank.v1.RankingService/Score"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    let ranked = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest { user_id: "u".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(!ranked.ranking_id.is_empty());
}

#[tokio::test]
async fn graceful_shutdown_answers_in_flight_calls() {
    let mut server = TestServer::start().await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();

    // An ingest stream that is open when shutdown begins.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::Event>(16);
    let mut events = EventServiceClient::new(server.channel().await);
    let call = tokio::spawn(async move { events.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    tx.send(event("before", pb::EventType::View, "u", "s")).await.unwrap();
    let mut health_client = HealthClient::new(server.channel().await);

    server.begin_shutdown();
    // Health turns NOT_SERVING first...
    let mut not_serving = false;
    for _ in 0..100 {
        let status = health_client.check(HealthCheckRequest { service: String::new() }).await;
        if status.ok().map(|s| s.into_inner().status) == Some(ServingStatus::NotServing as i32) {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(not_serving, "health did not report NOT_SERVING during the drain");
    // ...and the in-flight stream is still answered completely.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(event("during", pb::EventType::View, "u", "s")).await.unwrap();
    drop(tx);
    let response = call.await.unwrap().expect("in-flight call answered").into_inner();
    assert_eq!(response.accepted, 2);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_model_with_another_schema_is_refused_and_the_current_one_keeps_serving() {
    let server = TestServer::start().await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let before = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner().model.unwrap();
    assert!(
        before.excluded_features.iter().any(|f| f == "fit.overall"),
        "the shipped model says what it was fitted without: {:?}",
        before.excluded_features
    );

    // A newer version trained on another feature schema.
    let shipped = server.models_dir.join("default").join(&before.version);
    let other = server.models_dir.join("default").join("29990101-000000");
    common::copy_dir(&shipped, &other);
    let manifest_path = other.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["version"] = "29990101-000000".into();
    manifest["schema_hash"] = "0123456789abcdef".into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    let status = admin.load_model(pb::LoadModelRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("feature schema 0123456789abcdef"), "{}", status.message());
    assert!(status.message().contains("retrain"), "{}", status.message());

    // A corrupt artifact is refused too.
    let corrupt = server.models_dir.join("default").join("29990102-000000");
    common::copy_dir(&shipped, &corrupt);
    std::fs::write(corrupt.join("weights.json"), b"{\"engage\": [1, 2").unwrap();
    let status = admin
        .load_model(pb::LoadModelRequest { name: String::new(), version: "29990102-000000".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("corrupt model artifact"), "{}", status.message());

    let bad_name =
        admin.load_model(pb::LoadModelRequest { name: "../etc".into(), version: String::new() }).await.unwrap_err();
    assert_eq!(bad_name.code(), tonic::Code::InvalidArgument);

    let after = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner().model.unwrap();
    assert_eq!(after, before);
    let ranked = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest { user_id: "u".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ranked.model_version, format!("default/{}", before.version));

    // The valid version loads explicitly.
    let reloaded = admin
        .load_model(pb::LoadModelRequest { name: String::new(), version: before.version.clone() })
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(reloaded.version, before.version);
}

#[tokio::test]
async fn the_server_refuses_to_start_on_a_mismatched_model() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    common::copy_dir(&common::shipped_models(), &models);
    // Every shipped version, so that none is left to fall back on.
    for version in std::fs::read_dir(models.join("default")).unwrap() {
        let manifest_path = version.unwrap().path().join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).unwrap();
        let hash = fitrank::features::schema_hash();
        std::fs::write(&manifest_path, text.replace(hash, "ffffffffffffffff")).unwrap();
    }
    let config =
        fitrank::config::Config { models_dir: models, data_dir: tmp.path().join("data"), ..Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = fitrank::server::run(config, listener, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("feature schema ffffffffffffffff"), "{err}");
}

/// A child process killed when dropped, so a failed test leaves none behind.
struct Process(std::process::Child);

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary and returns it with its address.
fn spawn_binary(data_dir: &std::path::Path) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fitrank"))
        .args(["serve", "--addr", &addr, "--http-addr", "127.0.0.1:0", "--models"])
        .arg(common::shipped_models())
        .arg("--data-dir")
        .arg(data_dir)
        .env("FITRANK_LOG", "warn")
        .spawn()
        .unwrap();
    (Process(child), format!("http://{addr}"))
}

async fn connect(url: &str) -> tonic::transport::Channel {
    for _ in 0..500 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(url.to_owned()).unwrap().connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("binary did not start at {url}");
}

#[tokio::test]
async fn the_binary_stops_on_sigterm_and_keeps_acknowledged_writes_across_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_binary(tmp.path());
    let channel = connect(&url).await;
    CatalogServiceClient::new(channel.clone())
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("kept", None)] })
        .await
        .unwrap();
    let acked = EventServiceClient::new(channel)
        .ingest_batch(pb::IngestBatchRequest { events: vec![event("p", pb::EventType::Purchase, "u", "kept")] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.accepted, 1);
    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();

    let (mut child, url) = spawn_binary(tmp.path());
    let channel = connect(&url).await;
    let got = CatalogServiceClient::new(channel)
        .get_session(pb::GetSessionRequest { session_id: "kept".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.stats.unwrap().purchases, 1);

    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "graceful exit expected, got {status:?}");
}

/// Sets the soft limit on the size of any file `pid` writes (`None`: unlimited). A write past it
/// fails with `EFBIG` after writing what fits, as a write to a full disk fails with `ENOSPC`.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit reads `new` and writes `old`, both valid for the call.
    let got = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, std::ptr::null(), &mut now) };
    assert_eq!(got, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit { rlim_cur: bytes.unwrap_or(now.rlim_max).min(now.rlim_max), rlim_max: now.rlim_max };
    // SAFETY: as above.
    let set = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit set: {}", std::io::Error::last_os_error());
}

async fn views(url: &str) -> u64 {
    CatalogServiceClient::new(connect(url).await)
        .get_session(pb::GetSessionRequest { session_id: "s".into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
        .views
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_binary(tmp.path());
    let channel = connect(&url).await;
    CatalogServiceClient::new(channel.clone())
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();
    let log_len = std::fs::metadata(tmp.path().join("state.log")).unwrap().len();
    limit_file_size(child.id(), Some(log_len + 50_000));

    let mut events = EventServiceClient::new(channel);
    let batch = |b: usize| -> Vec<pb::Event> {
        (0..100).map(|i| event(&format!("e{b}-{i}"), pb::EventType::View, &format!("u{i}"), "s")).collect()
    };
    let (mut acked, mut failed, mut log_refusals) = (0, Vec::new(), 0);
    for b in 0..12 {
        match events.ingest_batch(pb::IngestBatchRequest { events: batch(b) }).await {
            Ok(r) => acked += r.into_inner().accepted,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                log_refusals += usize::from(status.message().contains("state.log"));
                failed.push(b);
            }
        }
    }
    assert!(acked > 0 && log_refusals > 0, "acknowledged {acked}, store log refusals {log_refusals}");

    // Space returns: the refused batches were not half kept, so retried they count in full.
    limit_file_size(child.id(), None);
    for b in failed.iter().copied().chain(12..15) {
        let r = events.ingest_batch(pb::IngestBatchRequest { events: batch(b) }).await.unwrap().into_inner();
        assert_eq!((r.accepted, r.duplicates), (100, 0), "batch {b}");
        acked += r.accepted;
    }
    assert_eq!(acked, 1_500);
    assert_eq!(views(&url).await, 1_500);
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, url) = spawn_binary(tmp.path());
    assert_eq!(views(&url).await, 1_500, "every acknowledged event survived the restart");
    let damaged: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("corrupt"))
        .collect();
    assert!(damaged.is_empty(), "the log was left as it was before each failed write: {damaged:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_ends_two_thousand_idle_streams_and_exits_zero_within_the_drain() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_binary(tmp.path());
    let mut streams = Vec::new();
    for c in 0..4 {
        let channel = connect(&url).await;
        if c == 0 {
            CatalogServiceClient::new(channel.clone())
                .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
                .await
                .unwrap();
        }
        for _ in 0..500 {
            let mut client = EventServiceClient::new(channel.clone());
            // An open stream that sends nothing.
            streams.push(tokio::spawn(async move {
                client.ingest(futures_util::stream::pending::<pb::Event>()).await.map(drop)
            }));
        }
    }
    // One stream that sent an event before going quiet: the event is stored, not lost.
    let mut sender = EventServiceClient::new(connect(&url).await);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(event("before-term", pb::EventType::View, "u", "s")).await.unwrap();
    let sending = tokio::spawn(async move { sender.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let term = Instant::now();
    // SAFETY: kill(2) with a child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        (status, child)
    })
    .await
    .unwrap()
    .0;
    let took = term.elapsed();
    assert!(status.success(), "graceful exit expected, got {status:?}");
    // The drain is 500 ms by default; the goal is the drain plus 5 s.
    assert!(took < Duration::from_millis(5_500), "took {took:?}");
    let mut unavailable = 0;
    for s in streams {
        if s.await.unwrap().is_err_and(|e| e.code() == tonic::Code::Unavailable) {
            unavailable += 1;
        }
    }
    assert_eq!(unavailable, 2_000, "every idle stream was ended UNAVAILABLE (retry elsewhere)");
    assert_eq!(sending.await.unwrap().unwrap_err().code(), tonic::Code::Unavailable);
    drop(tx);

    let (_child, url) = spawn_binary(tmp.path());
    assert_eq!(views(&url).await, 1, "the event received before the shutdown was stored");
}
