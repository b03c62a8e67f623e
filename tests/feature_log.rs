//! Closing the loop: the feature log records exactly what was served and every acknowledged
//! outcome, and real-time features move within a second. (The export that joins them is the lab's:
//! `crates/fitrank-lab/tests/export.rs`.)

mod common;

use common::event;
use common::served::{catalog, rank_at, send, start, timed};
use fitrank::domain::now_ms;
use fitrank::featurelog::{ServedRanking, read_outcomes, read_served};
use fitrank::features::feature_names;
use fitrank::proto::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use pb::{AgeBand, EventType as T, Gender};

/// The served log of `dir`, by ranking id.
fn served(dir: &std::path::Path) -> Vec<ServedRanking> {
    let mut out = Vec::new();
    read_served(&[dir.to_owned()], |r| out.push(r)).unwrap();
    out
}

fn feature(r: &ServedRanking, session: &str, name: &str) -> f32 {
    let item = r.items.iter().find(|i| i.session.session_id == session).unwrap();
    let i = feature_names().iter().position(|n| n == name).unwrap();
    item.features.to_dense().unwrap()[i]
}

#[tokio::test]
async fn a_purchase_moves_its_sessions_purchase_rates_at_once() {
    let mut server = start().await;
    catalog(&server).await;
    let now = now_ms();
    let before = rank_at(&server, "w1", now).await;
    send(&server, vec![timed(event("buy", T::Purchase, "w3", "A"), "", now)]).await;
    // no sleep: the next ranking must already see it
    let after = rank_at(&server, "w1", now).await;
    let log_dir = server.data_dir.join("featurelog");
    server.stop().await.unwrap();

    let log = served(&log_dir);
    let get = |id: &str| log.iter().find(|r| r.ranking_id == id).unwrap().clone();
    let (b, a) = (get(&before.ranking_id), get(&after.ranking_id));
    for name in ["live.log_purchase_rate_5m", "live.log_purchase_rate_1h", "live.log_purchase_per_view"] {
        assert!(feature(&a, "A", name) > feature(&b, "A", name), "{name} did not move");
        assert_eq!(feature(&a, "C", name), feature(&b, "C", name), "{name} of another session moved");
    }
    let pa = |r: &pb::RankResponse| r.items.iter().find(|i| i.session_id == "A").unwrap().p_purchase;
    assert_ne!(pa(&after), pa(&before));
}

#[tokio::test]
async fn audience_composition_reflects_who_watched() {
    let mut server = start().await;
    catalog(&server).await;
    let views =
        ["w1", "w2", "w3", "m1", "anonymous"].iter().map(|u| event(&format!("view-{u}"), T::View, u, "A")).collect();
    send(&server, views).await;
    let stats = CatalogServiceClient::new(server.channel().await)
        .get_session(pb::GetSessionRequest { session_id: "A".into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let seg = |a: AgeBand, g: Gender| {
        stats.audience.iter().find(|s| s.age_band == a as i32 && s.gender == g as i32).map_or(0, |s| s.views)
    };
    assert_eq!(seg(AgeBand::AgeBand2534, Gender::Female), 2);
    assert_eq!(seg(AgeBand::AgeBand1824, Gender::Female), 1);
    assert_eq!(seg(AgeBand::AgeBand5564, Gender::Male), 1);
    assert_eq!(stats.audience.iter().map(|s| s.views).sum::<u64>(), 4, "the anonymous viewer has no segment");
    assert_eq!((stats.on_target_views, stats.known_views), (3, 4));
    let five = stats.windows.iter().find(|w| w.window == "5m").unwrap();
    assert!((five.views - 5.0).abs() < 0.01, "{five:?}");

    // The segment lift feature of a ranking for a 25-34 woman sees her segment over-represented.
    let r = rank_at(&server, "w1", now_ms()).await;
    let log_dir = server.data_dir.join("featurelog");
    server.stop().await.unwrap();
    let log = served(&log_dir);
    let ranking = log.iter().find(|x| x.ranking_id == r.ranking_id).unwrap();
    assert!(feature(ranking, "A", "live.segment_view_lift") > 0.0);
    assert_eq!(feature(ranking, "C", "live.segment_view_lift"), 0.0);
}

#[tokio::test]
async fn acknowledged_outcomes_are_in_the_log_before_the_answer() {
    let server = start().await;
    catalog(&server).await;
    send(&server, vec![event("o1", T::View, "w1", "A"), event("o2", T::Like, "w1", "C")]).await;
    // read while the server is still running: outcomes are written through, not buffered
    let mut ids = Vec::new();
    read_outcomes(&[server.data_dir.join("featurelog")], |e| ids.push(e.event_id)).unwrap();
    assert_eq!(ids, vec!["o1", "o2"]);
}

#[tokio::test]
async fn the_logged_rows_are_the_rows_that_were_scored() {
    // The writer thread computes the logged rows from the record's inputs; the model must give each
    // of them exactly the probabilities the ranker computed on the request thread from its own row.
    let mut server = start().await;
    catalog(&server).await;
    let now = now_ms();
    let responses = [rank_at(&server, "w1", now).await, rank_at(&server, "m1", now - 3_600_000).await];
    let models_dir = server.models_dir.join("default");
    let log_dir = server.data_dir.join("featurelog");
    server.stop().await.unwrap();

    let mut versions: Vec<_> = std::fs::read_dir(&models_dir).unwrap().map(|e| e.unwrap().path()).collect();
    versions.sort();
    let model = fitrank::model::ModelArtifact::load(versions.last().unwrap()).unwrap();
    let log = served(&log_dir);
    assert_eq!(log.len(), responses.len());
    for response in &responses {
        assert_eq!(response.model_version, model.id());
        let record = log.iter().find(|r| r.ranking_id == response.ranking_id).unwrap();
        assert_eq!(record.items.len(), response.items.len());
        for (logged, item) in record.items.iter().zip(&response.items) {
            assert_eq!(logged.session.session_id, item.session_id);
            let row = logged.features.to_dense().unwrap();
            assert!(row.iter().any(|v| *v != 0.0), "an empty row was logged");
            let (e, p) = (model.heads.engage.predict(&row), model.heads.purchase.predict(&row));
            assert_eq!(e.to_bits(), logged.p_engage.to_bits(), "{}: P(view)", item.session_id);
            assert_eq!(p.to_bits(), logged.p_purchase.to_bits(), "{}: P(purchase)", item.session_id);
            assert_eq!(f64::from(e), item.p_engage);
            assert_eq!(f64::from(p), item.p_purchase);
        }
    }
}
