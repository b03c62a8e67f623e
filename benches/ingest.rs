//! Ingest throughput into the embedded store: the store alone, and the full server-side path
//! (outcome log write + store), in batches of 1,000 events with unique ids.
//!
//! `cargo bench --bench ingest`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fitrank::domain::{Category, Event, EventKind, LiveSession, PriceBand, SessionStatus, TargetAudience, UserProfile};
use fitrank::featurelog::{FeatureLog, FeatureLogConfig};
use fitrank::store::{EmbeddedStore, EmbeddedStoreConfig, Store};

const BATCH: usize = 1_000;
const SESSIONS: usize = 1_000;
const USERS: usize = 10_000;

fn setup(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> EmbeddedStore {
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        data_dir: dir.to_owned(),
        fsync: false,
        dedup_window_ms: 86_400_000,
    })
    .unwrap();
    rt.block_on(async {
        let users = (0..USERS).map(|i| (format!("u{i}"), UserProfile::default())).collect();
        store.upsert_users(users).await.unwrap();
        let sessions = (0..SESSIONS)
            .map(|i| LiveSession {
                session_id: format!("s{i}"),
                host_id: format!("h{i}"),
                category: Category::ALL[i % Category::COUNT],
                price_band: PriceBand::Mid,
                language: "en".into(),
                region: "US".into(),
                start_time_ms: 1,
                status: SessionStatus::Live,
                end_time_ms: 0,
                target: TargetAudience::default(),
            })
            .collect();
        store.upsert_sessions(sessions).await.unwrap();
    });
    store
}

fn batch(next: &mut u64) -> Vec<Event> {
    let kinds = [EventKind::Impression, EventKind::View, EventKind::Watch, EventKind::Like, EventKind::Purchase];
    (0..BATCH)
        .map(|_| {
            *next += 1;
            let n = *next as usize;
            Event {
                event_id: format!("e{n}"),
                kind: kinds[n % kinds.len()],
                user_id: format!("u{}", n % USERS),
                session_id: format!("s{}", n % SESSIONS),
                time_ms: 1_700_000_000_000 + n as i64,
                ranking_id: String::new(),
                position: 0,
                watch_seconds: 12.5,
                amount: 20.0,
                order_id: String::new(),
            }
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BATCH as u64));

    let dir = tempfile::tempdir().unwrap();
    let store = setup(&rt, dir.path());
    let mut next = 0;
    group.bench_function("store_batch_1000", |b| {
        b.iter_batched(
            || batch(&mut next),
            |events| rt.block_on(store.ingest(events)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });

    let dir = tempfile::tempdir().unwrap();
    let store = setup(&rt, dir.path());
    let log: Arc<FeatureLog> = FeatureLog::open(dir.path().join("featurelog"), &FeatureLogConfig::default()).unwrap();
    group.bench_function("outcome_log_and_store_batch_1000", |b| {
        b.iter_batched(
            || batch(&mut next),
            |events| {
                log.log_outcomes(&events).unwrap();
                rt.block_on(store.ingest(events)).unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
