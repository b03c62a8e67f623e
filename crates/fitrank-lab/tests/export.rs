//! The export joins what the product's feature log recorded: outcomes to the rankings that served
//! them, and features recomputed from the raw columns equal the served ones.

mod common;

use common::event;
use common::served::{catalog, rank_at, send, start, timed};
use fitrank::domain::now_ms;
use fitrank::features::{NUM_FEATURES, extract, feature_names};
use fitrank::proto::v1::EventType as T;
use fitrank_lab::export::{self, JoinOptions, Table, columns};

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
    // w2 buys A twice without a ranking id, and returns the first order (naming it, and no session
    // the order could be confused with): still a net purchase.
    let order = |e: fitrank::proto::v1::Event, id: &str| fitrank::proto::v1::Event { order_id: id.into(), ..e };
    events.push(timed(order(event("p3", T::Purchase, "w2", "A"), "o-1"), "", now - 30_000));
    events.push(timed(order(event("p3b", T::Purchase, "w2", "A"), "o-2"), "", now - 29_000));
    events.push(timed(order(event("ret3", T::Return, "w2", "A"), "o-1"), "", now - 20_000));
    // late: a purchase naming ranking 2, 40 minutes after it
    events.push(timed(event("late", T::Purchase, "m1", "C"), &id2, t0 + 1_000 + 40 * 60_000));
    // a ranking id of the service's form that no logged ranking has
    events.push(timed(event("ghost", T::View, "w1", "C"), &fitrank::ranking::new_ranking_id(), now - 10_000));
    let first = send(&server, events.clone()).await;
    assert_eq!(first.accepted as usize, events.len());
    // a redelivered batch: duplicates, counted once
    let again = send(&server, events[..3].to_vec()).await;
    assert_eq!(again.duplicates, 3);

    let log_dir = server.data_dir.join("featurelog");
    server.stop().await.unwrap();

    // By default the newest ranking's row is left out: its attribution window (30 minutes) was
    // still open at the log's end (the last event, 10 s before now).
    let (_, open) = export::export(std::slice::from_ref(&log_dir), &JoinOptions::default()).unwrap();
    assert_eq!((open.rows, open.open_window_rows), (5, 1));
    assert_eq!(open.log_end_ms, now - 10_000);
    let options = JoinOptions { include_open: true, ..Default::default() };
    let (table, stats) = export::export(std::slice::from_ref(&log_dir), &options).unwrap();
    assert_eq!(stats.rankings, 3);
    assert_eq!(stats.served_items, 9);
    assert_eq!(stats.rows, 3 + 2 + 1, "only items with impressions");
    assert_eq!(stats.not_shown_items, 3);
    assert_eq!(stats.duplicate_events, 3);
    assert_eq!(stats.late_events, 1);
    assert_eq!(stats.unknown_ranking_events, 1);
    assert_eq!(stats.skewed_rows, 0);
    assert_eq!((stats.purchased_rows, stats.returned_rows, stats.net_purchased_rows), (2, 2, 1));
    assert_eq!(stats.order_returns, 1);
    // With the candidates, every returned item is a row, shown or not: a candidate policy
    // re-ranks the whole list the logging policy chose from.
    let options = JoinOptions { include_open: true, include_candidates: true, ..Default::default() };
    let (_, all) = export::export(std::slice::from_ref(&log_dir), &options).unwrap();
    assert_eq!((all.rows, all.not_shown_items), (9 + all.unreturned_candidates, 0));

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
    assert_eq!(table.i64("label_net_purchase", a1).unwrap(), 0, "its one purchase was returned");
    let b2 = find(&id2, "B");
    assert_eq!(table.i64("label_engage", b2).unwrap(), 1);
    assert_eq!(table.f64("watch_seconds", b2).unwrap(), 30.0);
    assert_eq!(table.i64("label_purchase", b2).unwrap(), 0);
    // The audience A had reached when ranked (every ranking came before the events): nobody yet.
    let a3 = find(&id3, "A");
    assert!(table.f64("observed.buyers_inside_share", a3).unwrap().is_nan());
    assert_eq!(table.text("observed.mismatch", a3).unwrap(), "");
    assert_eq!(table.i64("label_purchase", a3).unwrap(), 1, "last-touch attribution");
    assert_eq!(table.i64("label_return", a3).unwrap(), 1, "the return of order o-1 finds its purchase");
    assert_eq!(table.i64("label_net_purchase", a3).unwrap(), 1, "one of two orders returned");

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
