//! Identity features end to end: a model trained with `--identity-buckets` learns which host
//! sells, and the running server ranks a new session of that host above an otherwise identical
//! one, after a hot load and without a restart.

mod common;

use common::{TestServer, fitrank, session};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// 2,000 impressions whose raw inputs are all alike but for the user and the host: the shows of
/// `host-good` are viewed 60% and bought 20% of the time, those of `host-poor` 20% and 2%.
fn write_table(path: &std::path::Path) {
    let mut csv = String::from("user_id,session.host_id,label_engage,label_purchase\n");
    for i in 0..2_000 {
        let good = i % 2 == 0;
        let k = (i / 2) % 50;
        let (engaged, bought) = if good { (k < 30, k < 10) } else { (k < 10, k < 1) };
        let host = if good { "host-good" } else { "host-poor" };
        csv.push_str(&format!("u-{},{host},{},{}\n", i % 100, u8::from(engaged), u8::from(bought)));
    }
    std::fs::write(path, csv).unwrap();
}

#[tokio::test]
async fn a_host_that_sells_ranks_first_through_its_identity_weight() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("rows.csv");
    write_table(&table);
    let models = server.models_dir.to_str().unwrap().to_owned();
    for (version, buckets) in [("29991231-000000", "0"), ("29991231-000001", "1024")] {
        fitrank(&[
            "train",
            "--data",
            table.to_str().unwrap(),
            "--recompute",
            "--split",
            "random",
            "--alphas",
            "1",
            "--identity-buckets",
            buckets,
            "--models",
            &models,
            "--version",
            version,
        ]);
    }
    let weights: serde_json::Value =
        serde_json::from_slice(&std::fs::read(server.models_dir.join("default/29991231-000001/weights.json")).unwrap())
            .unwrap();
    assert_eq!(weights["purchase"]["identity"].as_array().unwrap().len(), 2048);

    // Offline, side by side on the same rows: only the identity model tells the hosts apart.
    let printed = fitrank(&[
        "evaluate",
        "--data",
        table.to_str().unwrap(),
        "--recompute",
        "--models-dir",
        &models,
        "--model",
        "default/29991231-000000",
        "--model",
        "default/29991231-000001",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let auc = |m: usize| report["models"][m]["purchase"]["auc"].as_f64().unwrap();
    // Purchases: 20% for the good host, 2% for the poor one, so the best AUC is about 0.77.
    assert!((auc(0) - 0.5).abs() < 1e-9, "without ids every row scores the same: {}", auc(0));
    assert!(auc(1) > 0.7, "the identity model separates the hosts: {}", auc(1));

    let mut catalog = CatalogServiceClient::new(server.channel().await);
    // Two new sessions alike in every attribute; the poor host's has the smaller id, so it wins
    // every tie.
    let mut poor = session("s1", None);
    poor.host_id = "host-poor".into();
    let mut good = session("s2", None);
    good.host_id = "host-good".into();
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![poor, good] }).await.unwrap();

    let mut admin = AdminServiceClient::new(server.channel().await);
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let rank = |ranking: &mut RankingServiceClient<_>| {
        let mut ranking = ranking.clone();
        async move {
            ranking
                .rank(pb::RankRequest {
                    user_id: "someone-new".into(),
                    candidate_session_ids: vec!["s1".into(), "s2".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // Without the block the two sessions score the same.
    // An explicit version is pinned: the models-folder watcher does not move off it.
    let pin = |version: &str| pb::LoadModelRequest { version: version.into(), ..Default::default() };
    let loaded = admin.load_model(pin("29991231-000000")).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.identity_buckets, 0);
    let r = rank(&mut ranking).await;
    assert_eq!(r.items[0].p_purchase, r.items[1].p_purchase, "{r:?}");
    assert_eq!(r.items[0].session_id, "s1");

    // With it, the good host's new session comes first, by what its earlier shows sold.
    let loaded = admin.load_model(pin("29991231-000001")).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.identity_buckets, 1024);
    let r = rank(&mut ranking).await;
    assert_eq!(r.model_version, "default/29991231-000001");
    assert_eq!(r.items[0].session_id, "s2", "{r:?}");
    assert!(r.items[0].p_purchase > 2.0 * r.items[1].p_purchase, "{r:?}");
    assert!(r.items[0].p_engage > r.items[1].p_engage, "{r:?}");
}
