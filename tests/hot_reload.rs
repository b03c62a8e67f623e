//! Models change without a restart: the watcher follows new versions, refuses broken ones, and
//! operators pin, roll back and unpin; no request fails during swaps.

mod common;

use std::time::Duration;

use common::{TestServer, copy_dir, session};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// Copies the shipped version as `version`, with its manifest renamed (and `tweak` applied).
fn add_version(server: &TestServer, version: &str, tweak: impl FnOnce(&mut serde_json::Value)) {
    let base = server.models_dir.join("default");
    let shipped = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let staging = server.models_dir.join(format!(".staging-{version}"));
    copy_dir(&shipped, &staging);
    let path = staging.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["version"] = version.into();
    tweak(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::rename(staging, base.join(version)).unwrap(); // appears atomically, like `fitrank train`
}

async fn serving(server: &TestServer) -> String {
    let r = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest { user_id: "u".into(), candidate_session_ids: vec!["s".into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    r.model_version
}

async fn wait_for(server: &TestServer, want: &str) -> bool {
    for _ in 0..100 {
        if serving(server).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn the_watcher_follows_new_versions_and_refuses_broken_ones() {
    let server = TestServer::start_with(|c| c.model_poll_ms = 20).await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();
    let shipped = serving(&server).await;

    // Rankings keep flowing while versions change underneath.
    let url = server.url();
    let load = tokio::spawn(async move {
        let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
        let mut client = RankingServiceClient::new(channel);
        let mut n = 0;
        for _ in 0..300 {
            client
                .rank(pb::RankRequest {
                    user_id: "u".into(),
                    candidate_session_ids: vec!["s".into()],
                    ..Default::default()
                })
                .await
                .expect("no request fails during a swap");
            n += 1;
        }
        n
    });

    add_version(&server, "29990101-000000", |_| {});
    assert!(wait_for(&server, "default/29990101-000000").await, "new version not picked up");

    // A newer version from another feature schema is refused; the current keeps serving.
    add_version(&server, "29990202-000000", |m| m["schema_hash"] = "0000000000000000".into());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(serving(&server).await, "default/29990101-000000");

    let mut admin = AdminServiceClient::new(server.channel().await);
    let listed = admin.list_models(pb::ListModelsRequest::default()).await.unwrap().into_inner().versions;
    let versions: Vec<(String, bool, bool)> =
        listed.iter().map(|v| (v.model.clone().unwrap().version, v.serving, !v.error.is_empty())).collect();
    assert_eq!(versions[0], ("29990202-000000".into(), false, true), "{listed:?}");
    assert_eq!(versions[1], ("29990101-000000".into(), true, false));
    assert!(listed[0].error.contains("feature schema 0000000000000000"));

    // Roll back to the version before, pinned: the watcher no longer follows.
    let back = admin.rollback_model(pb::RollbackModelRequest {}).await.unwrap().into_inner().model.unwrap();
    assert_eq!(format!("default/{}", back.version), shipped);
    add_version(&server, "29990303-000000", |_| {});
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(serving(&server).await, shipped, "pinned model must not change");
    let state = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner();
    assert!(state.pinned);
    assert_eq!(state.previous, "default/29990101-000000");

    // Unpin: follow the newest again.
    let newest = admin.unpin_model(pb::UnpinModelRequest {}).await.unwrap().into_inner().model.unwrap();
    assert_eq!(newest.version, "29990303-000000");
    assert!(!admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner().pinned);

    assert_eq!(load.await.unwrap(), 300);
}

#[tokio::test]
async fn rollback_without_history_is_refused() {
    let server = TestServer::start_with(|c| c.model_poll_ms = 0).await;
    let status =
        AdminServiceClient::new(server.channel().await).rollback_model(pb::RollbackModelRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
}

/// The served shipped version's folder (the newest) and its version name.
fn shipped_version() -> (std::path::PathBuf, String) {
    let base = common::shipped_models().join("default");
    let path = common::newest_version(&base);
    let version = path.file_name().unwrap().to_str().unwrap().to_owned();
    (path, version)
}

/// Writes `manifest.json` for `version` (the shipped one's, renamed) into `dir`.
fn write_manifest(dir: &std::path::Path, version: &str) {
    let (shipped, _) = shipped_version();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped.join("manifest.json")).unwrap()).unwrap();
    manifest["version"] = version.into();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[tokio::test]
async fn a_corrupt_newest_version_does_not_stop_a_start() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    copy_dir(&common::shipped_models(), &models);
    let corrupt = models.join("default/29990101-000000");
    write_manifest(&corrupt, "29990101-000000");
    std::fs::write(corrupt.join("weights.json"), b"{\"engage\": {\"intercept\": 0.1, \"weig").unwrap();
    let server = TestServer::start_with(|c| {
        c.models_dir = models.clone();
        c.model_poll_ms = 0;
    })
    .await;
    let (_, shipped) = shipped_version();
    assert_eq!(serving(&server).await, format!("default/{shipped}"), "the newest valid version serves");
}

#[tokio::test]
async fn a_version_is_adopted_once_complete_whatever_order_its_files_land_in() {
    let server = TestServer::start_with(|c| c.model_poll_ms = 20).await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();
    let (shipped, shipped_version) = shipped_version();
    let base = server.models_dir.join("default");

    // The manifest lands first: refused (no weights yet), then adopted when the weights arrive.
    let late = base.join("29990101-000000");
    write_manifest(&late, "29990101-000000");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(serving(&server).await, format!("default/{shipped_version}"));
    std::fs::copy(shipped.join("weights.json"), late.join("weights.json")).unwrap();
    assert!(wait_for(&server, "default/29990101-000000").await, "the completed version was not adopted");

    // A corrupt newest beside a valid newer one: the valid one is adopted.
    add_version(&server, "29990202-000000", |_| {});
    let corrupt = base.join("29990303-000000");
    write_manifest(&corrupt, "29990303-000000");
    std::fs::write(corrupt.join("weights.json"), b"not json").unwrap();
    assert!(wait_for(&server, "default/29990202-000000").await, "the valid newer version was not adopted");
}
