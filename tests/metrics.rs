//! The HTTP port: `/metrics` counts what the service did, passes `promtool check metrics`, and a
//! real Prometheus server scrapes it; `/healthz` and `/readyz` answer, and `/readyz` turns 503 as
//! shutdown begins.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestServer, event, http_get, session};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// Runs a few calls of every kind.
async fn traffic(server: &TestServer) {
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s1", None), session("s2", None)] })
        .await
        .unwrap();
    let mut ranking = RankingServiceClient::new(server.channel().await);
    for _ in 0..3 {
        let request = pb::RankRequest {
            user_id: "u".into(),
            candidate_session_ids: vec!["s1".into(), "s2".into(), "ghost".into()],
            ..Default::default()
        };
        ranking.rank(request).await.unwrap();
    }
    assert!(ranking.rank(pb::RankRequest::default()).await.is_err(), "no user id");
    let mut bad = event("e3", pb::EventType::View, "u", "s1");
    bad.watch_seconds = f64::NAN;
    bad.r#type = pb::EventType::Watch as i32;
    let events = vec![
        event("e1", pb::EventType::View, "u", "s1"),
        event("e1", pb::EventType::View, "u", "s1"),
        event("e2", pb::EventType::View, "u", "nope"),
        bad,
    ];
    EventServiceClient::new(server.channel().await).ingest_batch(pb::IngestBatchRequest { events }).await.unwrap();
}

/// Installs Prometheus and promtool (scripts/install-prometheus.sh) when they are missing, as the
/// Redis tests install redis-server.
fn ensure_prometheus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Found on the PATH (running them to ask could fail for other reasons under load).
        let on_path = |tool: &str| {
            std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        };
        if on_path("promtool") && on_path("prometheus") {
            return;
        }
        let script = common::workspace_root().join("scripts/install-prometheus.sh");
        let status = Command::new("bash").arg(script).status().expect("run scripts/install-prometheus.sh");
        assert!(status.success(), "prometheus is missing and scripts/install-prometheus.sh failed");
    });
}

fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happened_and_promtool_finds_no_problem() {
    let server = TestServer::start().await;
    traffic(&server).await;
    let (status, text) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let expect = [
        ("fitrank_grpc_requests_total{method=\"/fitrank.v1.RankingService/Rank\",code=\"OK\"}", 3.0),
        ("fitrank_grpc_requests_total{method=\"/fitrank.v1.RankingService/Rank\",code=\"INVALID_ARGUMENT\"}", 1.0),
        ("fitrank_grpc_request_duration_seconds_count{method=\"/fitrank.v1.RankingService/Rank\"}", 4.0),
        ("fitrank_rank_candidates_count", 3.0),
        ("fitrank_rank_unranked_candidates_total{reason=\"not_found\"}", 3.0),
        ("fitrank_events_ingested_total{type=\"view\"}", 1.0),
        ("fitrank_events_duplicates_total", 1.0),
        ("fitrank_events_rejected_total{reason=\"unknown_session\"}", 1.0),
        ("fitrank_events_rejected_total{reason=\"invalid\"}", 1.0),
        ("fitrank_store_up{backend=\"embedded\"}", 1.0),
        ("fitrank_feature_log_rankings_total", 3.0),
    ];
    for (series, want) in expect {
        assert_eq!(line_value(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(text.contains("fitrank_model_info{name=\"default\""), "{text}");
    // Store latency, the breaker, the feature log's queue and bytes, model swaps and refusals.
    let positive = [
        "fitrank_store_operation_duration_seconds_count{operation=\"log_append\"}",
        "fitrank_feature_log_written_bytes_total{stream=\"outcomes\"}",
    ];
    for series in positive {
        assert!(line_value(&text, series).is_some_and(|v| v > 0.0), "{series} in\n{text}");
    }
    for series in ["fitrank_store_breaker_open", "fitrank_model_swaps_total", "fitrank_model_refusals_total"] {
        assert_eq!(line_value(&text, series), Some(0.0), "{series} in\n{text}");
    }
    assert!(line_value(&text, "fitrank_feature_log_queue_depth").is_some(), "{text}");
    let refused = fitrank::proto::v1::admin_service_client::AdminServiceClient::new(server.channel().await)
        .load_model(pb::LoadModelRequest { name: String::new(), version: "0000-missing".into() })
        .await;
    assert!(refused.is_err());
    let (_, text) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(line_value(&text, "fitrank_model_refusals_total"), Some(1.0), "{text}");
    assert!(text.contains("# TYPE fitrank_events_duplicates_total counter"), "{text}");

    ensure_prometheus();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps.sh installs it)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}");
}

/// The shipped alerting rules load, and their unit tests (series in, alerts out) pass.
#[test]
fn the_alerting_rules_pass_promtool() {
    ensure_prometheus();
    let dir = common::workspace_root().join("docs/deploy");
    for args in [["check", "rules", "fitrank-alerts.yml"], ["test", "rules", "fitrank-alerts.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}:\n{said}");
    }
}

/// The sample configuration for a networked replica is one the server accepts.
#[test]
fn the_sample_deployment_config_loads() {
    let path = common::workspace_root().join("docs/deploy/fitrank.toml");
    let config = fitrank::config::Config::load(Some(&path), Default::default()).unwrap();
    assert!(config.tls.enabled() && config.access.file.is_some() && config.tls.client_ca.is_some());
}

#[tokio::test]
async fn health_and_readiness_and_not_ready_while_draining() {
    let mut server = TestServer::start_with(|c| c.shutdown_drain_ms = 1_000).await;
    assert_eq!(http_get(server.http_addr, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(http_get(server.http_addr, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(http_get(server.http_addr, "/nope").await.0, 404);
    server.begin_shutdown();
    let mut drained = false;
    for _ in 0..50 {
        let (status, body) = http_get(server.http_addr, "/readyz").await;
        if status == 503 {
            assert!(body.contains("shutting down"), "{body}");
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(drained, "/readyz did not turn 503 during the drain");
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_metrics() {
    let server = TestServer::start().await;
    traffic(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fitrank\n    static_configs:\n      - targets: ['{}']\n",
            server.http_addr
        ),
    )
    .unwrap();
    ensure_prometheus();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package; scripts/install-deps.sh installs it)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let query = "/api/v1/query?query=fitrank_grpc_requests_total%7Bcode%3D%22OK%22%2Cmethod%3D%22%2Ffitrank.v1.RankingService%2FRank%22%7D";
    let mut answer = String::new();
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            continue;
        }
        answer = http_get(addr, query).await.1;
        if answer.contains("\"value\"") {
            break;
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let parsed: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let value = &parsed["data"]["result"][0]["value"][1];
    assert_eq!(value.as_str(), Some("3"), "Prometheus answered: {answer}");
}

#[tokio::test]
async fn json_logs_carry_the_callers_trace_id() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fitrank"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--http-addr", "127.0.0.1:0", "--log-format", "json"])
        .arg("--models")
        .arg(common::shipped_models())
        .arg("--data-dir")
        .arg(tmp.path())
        .env("FITRANK_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut channel = None;
    for _ in 0..500 {
        if let Ok(c) = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut request =
        tonic::Request::new(pb::LoadModelRequest { name: String::new(), version: "no-such-version".into() });
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    request.metadata_mut().insert("traceparent", format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap());
    let status = pb::admin_service_client::AdminServiceClient::new(channel.expect("binary started"))
        .load_model(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let refused = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains("model change refused")))
        .unwrap_or_else(|| panic!("no JSON line for the refusal in:\n{logs}"));
    assert_eq!(refused["span"]["trace_id"].as_str(), Some(trace), "{refused}");
    assert_eq!(refused["level"].as_str(), Some("WARN"));
}
