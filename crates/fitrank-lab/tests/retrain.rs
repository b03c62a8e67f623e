//! The retraining loop end to end: serve → log → export → train from the export → load the new
//! version into the running server without a restart.

mod common;

use common::{TestServer, attrs, event, fitrank, session, target};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};
use fitrank_lab::export::Table;
use fitrank_lab::train::table::{TableSource, dataset};
use pb::{AgeBand, EventType as T, Gender};

#[tokio::test]
async fn a_model_trained_on_the_export_serves_without_a_restart() {
    let server = TestServer::start_with(|c| c.feature_log.flush_interval_ms = 10).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let users: Vec<pb::User> = (0..40)
        .map(|i| {
            let (age, gender) =
                if i % 2 == 0 { (AgeBand::AgeBand2534, Gender::Female) } else { (AgeBand::AgeBand5564, Gender::Male) };
            pb::User { user_id: format!("u{i}"), attributes: Some(attrs(age, gender, "US", "en")) }
        })
        .collect();
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
    let sessions = vec![
        session("A", Some(target(20, 30, &[Gender::Female], &[]))),
        session("B", Some(target(55, 64, &[Gender::Male], &[]))),
        session("C", None),
    ];
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();

    let mut ranking = RankingServiceClient::new(server.channel().await);
    let mut events = EventServiceClient::new(server.channel().await);
    let mut n = 0;
    for round in 0..6 {
        for i in 0..40 {
            let user = format!("u{i}");
            let r =
                ranking.rank(pb::RankRequest { user_id: user.clone(), limit: 3, ..Default::default() }).await.unwrap();
            let r = r.into_inner();
            let mut batch = Vec::new();
            for item in &r.items {
                n += 1;
                let mut imp = event(&format!("i{n}"), T::Impression, &user, &item.session_id);
                imp.ranking_id = r.ranking_id.clone();
                batch.push(imp);
                // women view A and buy there every other round; men view B
                let likes = (i % 2 == 0 && item.session_id == "A") || (i % 2 == 1 && item.session_id == "B");
                if likes {
                    batch.push(event(&format!("v{n}"), T::View, &user, &item.session_id));
                    if round % 2 == 0 {
                        batch.push(event(&format!("p{n}"), T::Purchase, &user, &item.session_id));
                    }
                }
            }
            events.ingest_batch(pb::IngestBatchRequest { events: batch }).await.unwrap();
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // > flush interval

    let dir = tempfile::tempdir().unwrap();
    let log_dir = server.data_dir.join("featurelog");
    let parquet = dir.path().join("train.parquet");
    let csv = dir.path().join("train.csv");
    // Everything was ranked a moment ago: the attribution windows are open, keep those rows.
    let export = |out: &std::path::Path| {
        fitrank(&["export", "--log-dir", log_dir.to_str().unwrap(), "--include-open", "--out", out.to_str().unwrap()])
    };
    let printed = export(&parquet);
    assert!(printed.contains("\"skewed_rows\": 0"), "{printed}");
    export(&csv);

    // The served rows and the recomputed rows are the same training matrix.
    let mut from_parquet = Table::read_parquet(&parquet).unwrap();
    let mut from_csv = Table::read_csv(&csv).unwrap();
    assert_eq!(from_parquet.rows(), 6 * 40 * 3);
    let served = dataset(&mut from_parquet, &TableSource::default()).unwrap();
    let recomputed = dataset(&mut from_csv, &TableSource { recompute: true, ..Default::default() }).unwrap();
    assert_eq!(served.x, recomputed.x);
    assert_eq!(served.purchased, recomputed.purchased);
    assert!(served.purchased.iter().any(|p| *p) && served.engaged.iter().any(|e| *e));

    // Train a new version from the export into the running server's models folder.
    let models = server.models_dir.to_str().unwrap().to_owned();
    let printed = fitrank(&[
        "train",
        "--data",
        parquet.to_str().unwrap(),
        "--alphas",
        "0.1,1",
        "--split",
        "random",
        "--seed",
        "3",
        "--models",
        &models,
        "--version",
        "29991231-000000",
    ]);
    assert!(printed.contains("purchase_auc"), "{printed}");

    // Every row of the export is training data of the new version: by default evaluate refuses
    // to score versions on rows one of them learned from.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_fitrank-lab"))
        .args(["evaluate", "--data", parquet.to_str().unwrap(), "--models-dir", &models])
        .args(["--model", "default/20261206-090000", "--model", "default/29991231-000000"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("--include-training-rows"), "{said}");

    // Both versions side by side on the export, with plots.
    let plots = dir.path().join("plots");
    let printed = fitrank(&[
        "evaluate",
        "--include-training-rows",
        "--data",
        parquet.to_str().unwrap(),
        "--models-dir",
        &models,
        "--model",
        "default/20261206-090000",
        "--model",
        "default/29991231-000000",
        "--plots",
        plots.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(report["rows"], 720);
    assert_eq!(report["models"].as_array().unwrap().len(), 2);
    let retrained = &report["models"][1];
    assert!(retrained["purchase"]["auc"].as_f64().unwrap() > 0.9, "{retrained}");
    assert!(retrained["ndcg_purchase"].as_f64().unwrap() > 0.9, "{retrained}");
    assert!(report["served_ndcg_purchase"].as_f64().is_some());
    for plot in ["roc_engage.svg", "roc_purchase.svg", "calibration_engage.svg", "calibration_purchase.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("29991231-000000"), "{plot}");
    }

    let mut admin = AdminServiceClient::new(server.channel().await);
    let loaded = admin.load_model(pb::LoadModelRequest::default()).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.version, "29991231-000000");
    assert_eq!(loaded.metrics["holdout_rows"], 72.0);
    // The manifest says which rows its metrics come from, and the training data's time range.
    assert_eq!(loaded.metrics_rows, 72);
    assert!(loaded.metrics_data.contains("random 10% (seed 3)") && loaded.metrics_data.contains("train.parquet"));
    assert!(loaded.metrics_from_unix_ms > 0 && loaded.metrics_from_unix_ms <= loaded.metrics_to_unix_ms);
    assert!(loaded.training_to_unix_ms >= loaded.metrics_to_unix_ms);
    let r = ranking.rank(pb::RankRequest { user_id: "u0".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(r.model_version, "default/29991231-000000");
    assert_eq!(r.items[0].session_id, "A", "the retrained model learned that women buy in A: {r:?}");
}
