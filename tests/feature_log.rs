//! Closing the loop: the feature log records exactly what was served, outcomes join to it, the
//! export recomputes to the same features, and real-time features move within a second.

mod common;

use common::{TestServer, attrs, event, session, target};
use fitrank::domain::now_ms;
use fitrank::export::{self, JoinOptions, Table, columns};
use fitrank::featurelog::{ServedRanking, read_outcomes, read_served};
use fitrank::features::{NUM_FEATURES, extract, feature_names};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, EventType as T, Gender};

async fn start() -> TestServer {
    TestServer::start_with(|c| c.feature_log.flush_interval_ms = 20).await
}

async fn catalog(server: &TestServer) {
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let users = vec![
        pb::User { user_id: "w1".into(), attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US", "en")) },
        pb::User { user_id: "w2".into(), attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-NY", "en")) },
        pb::User { user_id: "w3".into(), attributes: Some(attrs(AgeBand::AgeBand1824, Gender::Female, "US", "en")) },
        pb::User { user_id: "m1".into(), attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US", "en")) },
    ];
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
    let sessions = vec![
        session("A", Some(target(20, 30, &[Gender::Female], &["US"]))),
        session("B", Some(target(55, 64, &[Gender::Male], &[]))),
        session("C", None),
    ];
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
}

async fn rank_at(server: &TestServer, user: &str, time_ms: i64) -> pb::RankResponse {
    RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest {
            user_id: user.into(),
            context: Some(pb::RequestContext { time_unix_ms: time_ms, surface: pb::Surface::HomeFeed as i32 }),
            candidate_session_ids: vec!["A".into(), "B".into(), "C".into()],
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn timed(mut e: pb::Event, ranking: &str, time_ms: i64) -> pb::Event {
    e.ranking_id = ranking.into();
    e.time_unix_ms = time_ms;
    e
}

async fn send(server: &TestServer, events: Vec<pb::Event>) -> pb::IngestResponse {
    EventServiceClient::new(server.channel().await)
        .ingest_batch(pb::IngestBatchRequest { events })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn the_export_joins_outcomes_and_recomputes_the_served_features_exactly() {
    let mut server = start().await;
    catalog(&server).await;
    let now = now_ms();
    let t0 = now - 2 * 3_600_000; // two hours ago, so that a "late" event can exist

    let r1 = rank_at(&server, "w1", t0).await;
    let r2 = rank_at(&server, "m1", t0 + 1_000).await;
    let r3 = rank_at(&server, "w2", now - 60_000).await;
    let (id1, id2, id3) = (r1.ranking_id.clone(), r2.ranking_id.clone(), r3.ranking_id.clone());

    let mut events = Vec::new();
    for (n, item) in r1.items.iter().enumerate() {
        events.push(timed(event(&format!("imp1-{n}"), T::Impression, "w1", &item.session_id), &id1, t0 + 10));
    }
    for (n, item) in r2.items.iter().take(2).enumerate() {
        events.push(timed(event(&format!("imp2-{n}"), T::Impression, "m1", &item.session_id), &id2, t0 + 1_010));
    }
    events.push(timed(event("imp3", T::Impression, "w2", "A"), &id3, now - 59_000));
    // w1 views and buys A (attributed by ranking id), and returns it days... well, an hour later.
    events.push(timed(event("v1", T::View, "w1", "A"), &id1, t0 + 20_000));
    events.push(timed(event("p1", T::Purchase, "w1", "A"), &id1, t0 + 60_000));
    events.push(timed(event("ret1", T::Return, "w1", "A"), "", t0 + 3_600_000));
    // m1 watches B without a ranking id: last-touch attribution.
    events.push(timed(event("w-m1", T::Watch, "m1", "B"), "", t0 + 30_000));
    // w2 buys A without a ranking id.
    events.push(timed(event("p3", T::Purchase, "w2", "A"), "", now - 30_000));
    // late: a purchase naming ranking 2, 40 minutes after it
    events.push(timed(event("late", T::Purchase, "m1", "C"), &id2, t0 + 1_000 + 40 * 60_000));
    // unknown ranking id
    events.push(timed(event("ghost", T::View, "w1", "C"), "no-such-ranking", now - 10_000));
    let first = send(&server, events.clone()).await;
    assert_eq!(first.accepted as usize, events.len());
    // a redelivered batch: duplicates, counted once
    let again = send(&server, events[..3].to_vec()).await;
    assert_eq!(again.duplicates, 3);

    let log_dir = server.data_dir.join("featurelog");
    server.stop().await.unwrap();

    let (table, stats) = export::export(std::slice::from_ref(&log_dir), &JoinOptions::default()).unwrap();
    assert_eq!(stats.rankings, 3);
    assert_eq!(stats.served_items, 9);
    assert_eq!(stats.rows, 3 + 2 + 1, "only items with impressions");
    assert_eq!(stats.not_shown_items, 3);
    assert_eq!(stats.duplicate_events, 3);
    assert_eq!(stats.late_events, 1);
    assert_eq!(stats.unknown_ranking_events, 1);
    assert_eq!(stats.skewed_rows, 0);
    assert_eq!((stats.purchased_rows, stats.returned_rows), (2, 1));

    let find = |ranking: &str, session: &str| {
        (0..table.rows())
            .find(|&r| {
                table.text("ranking_id", r).unwrap() == ranking && table.text("session_id", r).unwrap() == session
            })
            .unwrap_or_else(|| panic!("no row for {ranking}/{session}"))
    };
    let a1 = find(&id1, "A");
    assert_eq!(table.i64("label_engage", a1).unwrap(), 1);
    assert_eq!(table.i64("label_purchase", a1).unwrap(), 1);
    assert_eq!(table.f64("purchase_amount", a1).unwrap(), 25.0);
    assert_eq!(table.i64("label_return", a1).unwrap(), 1);
    let b2 = find(&id2, "B");
    assert_eq!(table.i64("label_engage", b2).unwrap(), 1);
    assert_eq!(table.f64("watch_seconds", b2).unwrap(), 30.0);
    assert_eq!(table.i64("label_purchase", b2).unwrap(), 0);
    let a3 = find(&id3, "A");
    assert_eq!(table.i64("label_purchase", a3).unwrap(), 1, "last-touch attribution");

    // Written as CSV and read back: features recomputed from the raw columns equal the served ones,
    // bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    export::write(&table, &csv).unwrap();
    let back = Table::read_csv(&csv).unwrap();
    assert_eq!(back.rows(), 6);
    let mut row = [0f32; NUM_FEATURES];
    for r in 0..back.rows() {
        let inputs = columns::inputs_from_row(&back, r).unwrap();
        extract(&inputs.input(), &mut row);
        let served = columns::features_from_row(&back, r).unwrap();
        for (i, (a, b)) in row.iter().zip(served.iter()).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "row {r} feature {}", feature_names()[i]);
        }
    }

    // Parquet: readable, with every column and row.
    let parquet_path = dir.path().join("train.parquet");
    export::write(&table, &parquet_path).unwrap();
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(&parquet_path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 6);
    assert_eq!(meta.file_metadata().schema_descr().num_columns(), table.columns.len());
}

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
