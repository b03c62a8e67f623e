//! Access control on the real server: roles by bearer token, the audit log, token rotation, and
//! the refusal to serve an open `AdminService` on the network.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use fitrank::cli::connect::{Conn, ConnectArgs, connect};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};
use tonic::Code;

/// Writes an access file granting each `(name, roles, token)`.
fn write_access(path: &Path, grants: &[(&str, &[&str], &str)]) {
    let mut text = String::new();
    for (name, roles, token) in grants {
        let hash: String = fitrank::access::hash_token(token).iter().map(|b| format!("{b:02x}")).collect();
        let roles = roles.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
        text.push_str(&format!("[[token]]\nname = \"{name}\"\nroles = [{roles}]\nsha256 = \"{hash}\"\n\n"));
    }
    std::fs::write(path, text).unwrap();
}

async fn client(server: &TestServer, token: Option<&str>) -> Conn {
    let args = ConnectArgs { token: token.map(str::to_owned), ..ConnectArgs::plain(server.url()) };
    connect(&args).await.unwrap()
}

fn takeover() -> pb::Experiment {
    // The takeover the issue reported: coverage 1, every policy weight 0.
    let zero = pb::PolicyOverride {
        engage_weight: Some(0.0),
        purchase_weight: Some(0.0),
        audience_fit_weight: Some(0.0),
        ..Default::default()
    };
    pb::Experiment {
        name: "takeover".into(),
        layer: "policy".into(),
        salt: "s".into(),
        coverage: 1.0,
        range_start: 0,
        range_end: 10_000,
        arms: vec![
            pb::ExperimentArm { name: "control".into(), weight: 1.0, ..Default::default() },
            pb::ExperimentArm { name: "zero".into(), weight: 1.0, policy: Some(zero), ..Default::default() },
        ],
        ..Default::default()
    }
}

/// Every `AdminService` method, called once; its code.
async fn every_admin_call(conn: Conn) -> Vec<(&'static str, Code)> {
    let mut a = AdminServiceClient::new(conn);
    let code = |r: Result<tonic::Response<_>, tonic::Status>| r.map_or_else(|s: tonic::Status| s.code(), |_| Code::Ok);
    vec![
        ("LoadModel", code(a.load_model(pb::LoadModelRequest::default()).await.map(|_| tonic::Response::new(())))),
        (
            "GetActiveModel",
            code(a.get_active_model(pb::GetActiveModelRequest {}).await.map(|_| tonic::Response::new(()))),
        ),
        ("ListModels", code(a.list_models(pb::ListModelsRequest::default()).await.map(|_| tonic::Response::new(())))),
        ("RollbackModel", code(a.rollback_model(pb::RollbackModelRequest {}).await.map(|_| tonic::Response::new(())))),
        ("UnpinModel", code(a.unpin_model(pb::UnpinModelRequest {}).await.map(|_| tonic::Response::new(())))),
        (
            "CreateExperiment",
            code(
                a.create_experiment(pb::CreateExperimentRequest { experiment: Some(takeover()) })
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "SetExperimentCoverage",
            code(
                a.set_experiment_coverage(pb::SetExperimentCoverageRequest { name: "takeover".into(), coverage: 0.5 })
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "StopExperiment",
            code(
                a.stop_experiment(pb::StopExperimentRequest { name: "takeover".into() })
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "ListExperiments",
            code(a.list_experiments(pb::ListExperimentsRequest {}).await.map(|_| tonic::Response::new(()))),
        ),
        (
            "GetExperimentStatus",
            code(
                a.get_experiment_status(pb::GetExperimentStatusRequest { name: "takeover".into() })
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "GetStoreStatus",
            code(a.get_store_status(pb::GetStoreStatusRequest {}).await.map(|_| tonic::Response::new(()))),
        ),
        (
            "GetRankLatency",
            code(a.get_rank_latency(pb::GetRankLatencyRequest { reset: true }).await.map(|_| tonic::Response::new(()))),
        ),
        (
            "ListAuditLog",
            code(a.list_audit_log(pb::ListAuditLogRequest::default()).await.map(|_| tonic::Response::new(()))),
        ),
    ]
}

async fn rank_code(conn: Conn) -> Code {
    let request = pb::RankRequest { user_id: "u1".into(), limit: 5, ..Default::default() };
    RankingServiceClient::new(conn).rank(request).await.map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test]
async fn roles_decide_every_call_and_every_change_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.toml");
    write_access(
        &access,
        &[
            ("feed-web", &["feed"], "feed-secret"),
            ("alice", &["operator"], "operator-secret"),
            ("dashboard", &["viewer"], "viewer-secret"),
        ],
    );
    let server = TestServer::start_with(|c| c.access.file = Some(access.clone())).await;

    // Anonymous: the takeover and everything else is UNAUTHENTICATED; health stays open.
    for (method, code) in every_admin_call(client(&server, None).await).await {
        assert_eq!(code, Code::Unauthenticated, "anonymous {method}");
    }
    assert_eq!(rank_code(client(&server, None).await).await, Code::Unauthenticated);
    assert_eq!(rank_code(client(&server, Some("guess")).await).await, Code::Unauthenticated);
    let health = tonic_health::pb::health_client::HealthClient::new(server.channel().await)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // feed: ranking and catalog, and PERMISSION_DENIED on every admin call.
    let feed = client(&server, Some("feed-secret")).await;
    assert_eq!(rank_code(feed.clone()).await, Code::Ok);
    CatalogServiceClient::new(feed.clone())
        .upsert_users(pb::UpsertUsersRequest { users: vec![pb::User { user_id: "u1".into(), attributes: None }] })
        .await
        .unwrap();
    for (method, code) in every_admin_call(feed).await {
        assert_eq!(code, Code::PermissionDenied, "feed {method}");
    }

    // viewer: the read-only calls only (GetRankLatency with reset is a change).
    let viewer: Vec<_> = every_admin_call(client(&server, Some("viewer-secret")).await).await;
    for (method, code) in &viewer {
        let reads = ["GetActiveModel", "ListModels", "ListExperiments", "GetStoreStatus", "ListAuditLog"];
        let expected = if reads.contains(method) {
            Code::Ok
        } else if *method == "GetExperimentStatus" {
            Code::NotFound
        } else {
            Code::PermissionDenied
        };
        assert_eq!(*code, expected, "viewer {method}");
    }
    assert_eq!(rank_code(client(&server, Some("viewer-secret")).await).await, Code::PermissionDenied);

    // operator: the changes go through and are audited, newest first, with before and after.
    let operator: Vec<_> = every_admin_call(client(&server, Some("operator-secret")).await).await;
    for (method, code) in &operator {
        assert!(![Code::Unauthenticated, Code::PermissionDenied].contains(code), "operator {method}: {code:?}");
    }
    let entries = AdminServiceClient::new(client(&server, Some("dashboard-unknown")).await)
        .list_audit_log(pb::ListAuditLogRequest::default())
        .await
        .unwrap_err();
    assert_eq!(entries.code(), Code::Unauthenticated);
    let entries = AdminServiceClient::new(client(&server, Some("viewer-secret")).await)
        .list_audit_log(pb::ListAuditLogRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    let changes =
        ["LoadModel", "RollbackModel", "UnpinModel", "CreateExperiment", "SetExperimentCoverage", "StopExperiment"];
    let made: Vec<_> =
        operator.iter().rev().filter(|(m, code)| changes.contains(m) && *code == Code::Ok).map(|(m, _)| *m).collect();
    assert_eq!(actions, made);
    assert_eq!(&actions[..3], ["StopExperiment", "SetExperimentCoverage", "CreateExperiment"]);
    assert_eq!(actions.last(), Some(&"LoadModel"));
    assert!(entries.iter().all(|e| e.actor == "alice" && e.via == "token" && e.peer.starts_with("127.0.0.1:")));
    let (stop, create, load) = (&entries[0], &entries[2], entries.last().unwrap());
    assert_eq!(create.target, "takeover");
    assert_eq!(create.before_json, "null");
    let after: serde_json::Value = serde_json::from_str(&create.after_json).unwrap();
    assert_eq!(after["coverage"], 1.0);
    let (before, after): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&stop.before_json).unwrap(), serde_json::from_str(&stop.after_json).unwrap());
    assert_eq!((before["coverage"].as_f64(), before["status"].as_str()), (Some(0.5), Some("running")));
    assert_eq!(after["status"], "stopped");
    let load: serde_json::Value = serde_json::from_str(&load.after_json).unwrap();
    assert!(load["serving"].as_str().unwrap().starts_with("default/"), "{load}");
    // The file the embedded store keeps holds the same entries.
    let lines = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), entries.len());
}

#[tokio::test]
async fn a_rotated_token_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.toml");
    write_access(&access, &[("feed-web", &["feed"], "old-token")]);
    let server = TestServer::start_with(|c| {
        c.access.file = Some(access.clone());
        c.access.reload_ms = 100;
    })
    .await;
    assert_eq!(rank_code(client(&server, Some("old-token")).await).await, Code::Ok);

    // Both tokens during the move, then only the new one.
    write_access(&access, &[("feed-web", &["feed"], "old-token"), ("feed-web-2", &["feed"], "new-token")]);
    wait_for(|| async { rank_code(client(&server, Some("new-token")).await).await == Code::Ok }).await;
    assert_eq!(rank_code(client(&server, Some("old-token")).await).await, Code::Ok);
    write_access(&access, &[("feed-web-2", &["feed"], "new-token")]);
    wait_for(|| async { rank_code(client(&server, Some("old-token")).await).await == Code::Unauthenticated }).await;

    // A broken file leaves the rules in force.
    std::fs::write(&access, "[[token]]\nname = \"x\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rank_code(client(&server, Some("new-token")).await).await, Code::Ok);
}

async fn wait_for<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn an_open_admin_service_is_not_served_on_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fitrank::config::Config {
        models_dir: common::shipped_models(),
        data_dir: tmp.path().join("data"),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let result = fitrank::server::run(config.clone(), listener, async {}).await;
    let message = result.unwrap_err().to_string();
    assert!(message.contains("without access control"), "{message}");

    // Said explicitly, it starts (and stops at once here).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let allowed = fitrank::config::Config {
        access: fitrank::config::AccessConfig { allow_open_admin: true, ..Default::default() },
        shutdown_drain_ms: 0,
        ..config
    };
    fitrank::server::run(allowed, listener, async {}).await.unwrap();
}
