//! The Redis store: the same folding as the embedded store, shared by replicas, and ranking that
//! keeps flowing (degraded) while Redis is down. Every test starts its own redis-server on a free
//! port (common::redis).

mod common;

use std::sync::Arc;

use common::redis::RedisServer;
use fitrank::domain::{
    AgeBand, Category, Event, EventKind, Gender, LiveSession, PriceBand, SessionStatus, TargetAudience, UserProfile,
};
use fitrank::store::redis::Target;
use fitrank::store::{
    CatalogFilter, EmbeddedStore, EmbeddedStoreConfig, EventStatus, RedisStore, RedisStoreConfig, Store,
};
use rand::{Rng, SeedableRng};

fn session(id: &str, category: Category, start: i64) -> LiveSession {
    LiveSession {
        session_id: id.into(),
        host_id: format!("h-{id}"),
        category,
        price_band: PriceBand::Mid,
        language: "en".into(),
        region: "US".into(),
        start_time_ms: start,
        status: SessionStatus::Live,
        end_time_ms: 0,
        target: TargetAudience { genders: vec![Gender::Female], min_age: 18, max_age: 34, ..Default::default() },
    }
}

fn profile(age: AgeBand, gender: Gender) -> UserProfile {
    UserProfile { age_band: age, gender, region: "US".into(), language: "en".into(), interests: vec![] }
}

async fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    connect(&server.url(), prefix).await
}

async fn connect(url: &str, prefix: &str) -> RedisStore {
    let config = RedisStoreConfig { key_prefix: prefix.into(), ..Default::default() };
    RedisStore::connect(&Target::parse(url).unwrap(), config, 86_400_000).await.unwrap()
}

/// An embedded store in `dir` with the same de-duplication window as the Redis stores here.
fn embedded_store(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(&EmbeddedStoreConfig { data_dir: dir.into(), fsync: false, dedup_window_ms: 86_400_000 })
        .unwrap()
}

/// Random events over a few sessions and users, with a share `resend` of re-sent events (earlier
/// ones again, as a client retry sends them), unknown sessions and times out of order.
fn random_events(rng: &mut rand::rngs::StdRng, n: usize, t0: i64, sent: &mut Vec<Event>, resend: f64) -> Vec<Event> {
    let kinds = [
        EventKind::Impression,
        EventKind::View,
        EventKind::Watch,
        EventKind::Like,
        EventKind::Follow,
        EventKind::AddToCart,
        EventKind::Purchase,
        EventKind::Return,
        EventKind::Hide,
    ];
    (0..n)
        .map(|_| {
            if !sent.is_empty() && rng.gen_bool(resend) {
                return sent[rng.gen_range(0..sent.len())].clone();
            }
            let event = Event {
                event_id: format!("e{}", sent.len()),
                kind: kinds[rng.gen_range(0..kinds.len())],
                user_id: format!("u{}", rng.gen_range(0..6)),
                session_id: if rng.gen_bool(0.05) { "nope".into() } else { format!("s{}", rng.gen_range(0..3)) },
                time_ms: t0 + rng.gen_range(0..3_600_000),
                ranking_id: String::new(),
                position: 0,
                watch_seconds: rng.gen_range(1.0..600.0),
                amount: rng.gen_range(5.0..80.0),
                order_id: String::new(),
            };
            sent.push(event.clone());
            event
        })
        .collect()
}

#[tokio::test]
async fn redis_folds_events_exactly_like_the_embedded_store() {
    let server = RedisServer::start();
    folds_like_the_embedded_store(redis_store(&server, "parity").await, 0.1).await;
}

/// Without re-sent events, every batch after the sessions' first goes to Redis as one fast call
/// (each blob's records joined by the replica), and folds the same as event by event.
#[tokio::test]
async fn new_events_on_the_fast_call_fold_exactly_like_the_embedded_store() {
    let server = RedisServer::start();
    let redis = redis_store(&server, "fresh").await;
    folds_like_the_embedded_store(redis.clone(), 0.0).await;
    let status = redis.status();
    assert_eq!(status.ingest_calls, 8, "one call per batch");
    assert_eq!(status.ingest_calls_redone, 1, "only the first, which creates the sessions' stats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_folds_events_exactly_like_the_embedded_store() {
    let nodes = common::redis::start_cluster();
    let url = common::redis::cluster_url(&nodes);
    folds_like_the_embedded_store(connect(&url, "parity").await, 0.1).await;
}

/// A replica sends each node its calls as one pipeline, by a map of slots it read earlier. When
/// slots move to another node mid-run, the old owner answers `MOVED` without running those
/// calls; they go again through the cluster client, and nothing is lost or counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_folds_events_exactly_while_slots_move() {
    let nodes = common::redis::start_cluster();
    let url = common::redis::cluster_url(&nodes);
    let redis = connect(&url, "moving").await;
    let keys = fitrank::store::redis::keys::Keys::new("moving");
    let reshard = |batch: i64| {
        if batch == 3 {
            common::redis::move_slot_of(&nodes, &keys.session_stats("s0"));
            common::redis::move_slot_of(&nodes, &keys.user_activity("u1"));
        }
    };
    folds_like_the_embedded_store_with(redis.clone(), 0.1, reshard).await;
    assert!(redis.status().ingest_calls_redone > 0, "the old owners answered MOVED, and the calls went again");
}

/// Batches of 450 random events (several apply calls each on standalone Redis, a call per
/// session and per user on a cluster), with retries, unknown sessions and times out of order
/// over an hour (so blobs are both patched in place and re-based), fold to the same stats and
/// activity as on the embedded store.
async fn folds_like_the_embedded_store(redis: RedisStore, resend: f64) {
    folds_like_the_embedded_store_with(redis, resend, |_| {}).await;
}

/// As [`folds_like_the_embedded_store`], calling `between(batch)` before each batch.
async fn folds_like_the_embedded_store_with(redis: RedisStore, resend: f64, between: impl Fn(i64)) {
    let dir = tempfile::tempdir().unwrap();
    let embedded = embedded_store(dir.path());
    let stores: [&dyn Store; 2] = [&embedded, &redis];
    let t0 = 1_800_000_000_000;
    for store in stores {
        let users = vec![
            ("u0".to_owned(), profile(AgeBand::A25To34, Gender::Female)),
            ("u1".to_owned(), profile(AgeBand::A55To64, Gender::Male)),
            ("u2".to_owned(), profile(AgeBand::Unknown, Gender::Unknown)),
        ];
        store.upsert_users(users).await.unwrap();
        let sessions = vec![
            session("s0", Category::Beauty, t0),
            session("s1", Category::Home, t0 + 1),
            session("s2", Category::Sportswear, t0 + 2),
        ];
        store.upsert_sessions(sessions).await.unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut sent = Vec::new();
    for batch in 0..8 {
        between(batch);
        let events = random_events(&mut rng, 450, t0 + batch * 600_000, &mut sent, resend);
        let a = embedded.ingest(events.clone()).await.unwrap();
        let b = redis.ingest(events).await.unwrap();
        assert_eq!(a.statuses, b.statuses, "batch {batch}: same accepted / duplicate / unknown decisions");
        assert!(a.count(EventStatus::Accepted) > 0 && (a.count(EventStatus::Duplicate) > 0) == (resend > 0.0));
    }
    let ids = ["s0", "s1", "s2"];
    let (a, b) = (embedded.get_sessions(&ids, None).await.unwrap(), redis.get_sessions(&ids, None).await.unwrap());
    assert!(!b.degraded);
    let t_read = t0 + 9 * 600_000;
    for (x, y) in a.value.iter().zip(&b.value) {
        let (x, y) = (&x.as_ref().unwrap().stats, &y.as_ref().unwrap().stats);
        assert_eq!(
            (x.impressions, x.views, x.purchases, x.returns, x.interactions, x.on_target_views, x.known_views),
            (y.impressions, y.views, y.purchases, y.returns, y.interactions, y.on_target_views, y.known_views)
        );
        assert_eq!(x.segment_views, y.segment_views);
        assert!((x.revenue - y.revenue).abs() < 1e-6 && (x.watch_seconds - y.watch_seconds).abs() < 1e-6);
        let (wx, wy) = (x.windows.at(t_read), y.windows.at(t_read));
        for (cx, cy) in wx.iter().zip(&wy) {
            for (vx, vy) in cx.iter().zip(cy) {
                assert!((vx - vy).abs() <= 1e-3 * vx.abs().max(1.0), "windows {wx:?} vs {wy:?}");
            }
        }
    }
    let users = ["u0", "u1", "u2", "u3", "u4", "u5", "nobody"];
    let (a, b) = (embedded.get_users(&users, None).await.unwrap(), redis.get_users(&users, None).await.unwrap());
    for (x, y) in a.value.iter().zip(&b.value) {
        assert_eq!(x.profile, y.profile);
        assert_eq!(x.activity.at_ms, y.activity.at_ms);
        let close = |p: f32, q: f32| (p - q).abs() <= 1e-3 * p.abs().max(1.0);
        assert!(close(x.activity.impressions, y.activity.impressions) && close(x.activity.views, y.activity.views));
        for (p, q) in x.activity.by_category.iter().zip(&y.activity.by_category) {
            assert!(close(*p, *q), "{:?} vs {:?}", x.activity, y.activity);
        }
    }

    // Ending, listing and re-sending after the fact behave the same too.
    for store in stores {
        store.end_session("s1", t0 + 5).await.unwrap().unwrap();
        assert!(store.end_session("zz", t0).await.unwrap().is_none());
    }
    let filter = CatalogFilter { limit: 10, ..Default::default() };
    let ids = |v: Vec<fitrank::store::SessionSnapshot>| -> Vec<String> {
        v.into_iter().map(|s| s.session.session_id.clone()).collect()
    };
    let (a, b) =
        (embedded.live_sessions(&filter, None).await.unwrap(), redis.live_sessions(&filter, None).await.unwrap());
    assert_eq!(ids(a.value), ids(b.value));
    assert_eq!(ids(redis.live_sessions(&filter, None).await.unwrap().value), vec!["s2", "s0"]);
}

#[tokio::test]
async fn the_store_serves_degraded_while_redis_is_down_and_recovers() {
    let mut server = RedisServer::start();
    let redis = Arc::new(
        RedisStore::connect(
            &Target::parse(&server.url()).unwrap(),
            RedisStoreConfig { breaker_first_ms: 200, breaker_ms: 200, ..Default::default() },
            86_400_000,
        )
        .await
        .unwrap(),
    );
    redis.upsert_sessions(vec![session("a", Category::Beauty, 1)]).await.unwrap();
    redis.upsert_users(vec![("w".into(), profile(AgeBand::A25To34, Gender::Female))]).await.unwrap();
    let one = |id: &str| view(id, "a", "w", 1_000);
    redis.ingest(vec![one("v1")]).await.unwrap();
    assert_eq!(redis.get_sessions(&["a"], None).await.unwrap().value[0].as_ref().unwrap().stats.views, 1);
    redis.get_users(&["w"], None).await.unwrap();
    redis.live_sessions(&CatalogFilter { limit: 5, ..Default::default() }, None).await.unwrap();

    server.kill();
    let read = redis.get_sessions(&["a", "unseen"], None).await.unwrap();
    assert!(read.degraded);
    assert_eq!(read.value[0].as_ref().unwrap().stats.views, 1, "last-known stats");
    assert!(read.value[1].is_none());
    let users = redis.get_users(&["w"], None).await.unwrap();
    assert!(users.degraded && users.value[0].profile.is_some(), "cached profile");
    let live = redis.live_sessions(&CatalogFilter { limit: 5, ..Default::default() }, None).await.unwrap();
    assert!(live.degraded && live.value.len() == 1);
    let err = redis.ingest(vec![one("v2")]).await.unwrap_err();
    assert!(matches!(err, fitrank::store::StoreError::Unavailable(_)), "{err}");
    let status = redis.status();
    assert!(!status.reachable && status.degraded_reads >= 3 && status.failures >= 1);
    assert!(status.breaker_open, "reads skip Redis right after a failure");

    server.restart();
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(out) = redis.ingest(vec![one("v2")]).await {
            assert_eq!(out.statuses, vec![EventStatus::Accepted]);
            recovered = true;
            break;
        }
    }
    assert!(recovered, "writes succeed again after redis restarts");
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let read = redis.get_sessions(&["a"], None).await.unwrap();
    assert!(!read.degraded);
    assert_eq!(read.value[0].as_ref().unwrap().stats.views, 2, "the acknowledged view survived the kill");
    assert!(redis.status().reachable);
    assert!(!redis.status().breaker_open);
}

/// A session's stats written by the previous release (without the latest event time at the end
/// of the blob) keep their counts when the new apply script adds to them.
#[tokio::test]
async fn stats_of_the_previous_blob_layout_keep_their_counts() {
    use fitrank::domain::{LiveStats, Viewer};
    use fitrank::store::redis::{codec, keys::Keys};
    use redis::AsyncCommands;

    let server = RedisServer::start();
    let store = redis_store(&server, "old").await;
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s", Category::Beauty, t0)]).await.unwrap();
    let at = |id: &str, t: i64| view(id, "s", "nobody", t);
    let viewer = Viewer::of(None, &session("s", Category::Beauty, t0).target);
    let mut expected = LiveStats::default();
    for (id, t) in [("a", t0 + 1_000), ("b", t0 + 90_000)] {
        expected.apply(&at(id, t), viewer);
    }
    let mut old = codec::stats_values(&expected);
    old.pop();
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = c.set(Keys::new("old").session_stats("s"), codec::pack(&old)).await.unwrap();

    let third = at("c", t0 + 150_000);
    assert_eq!(store.ingest(vec![third.clone()]).await.unwrap().statuses, vec![EventStatus::Accepted]);
    expected.apply(&third, viewer);
    let got = store.get_sessions(&["s"], None).await.unwrap().value[0].clone().unwrap().stats;
    assert_eq!((got.views, got.windows.at_ms), (3, t0 + 150_000));
    let t_read = t0 + 200_000;
    let (a, b) = (expected.windows.at(t_read), got.windows.at(t_read));
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

/// A read late behind a short stall (a burst of writes) degrades its own answer only; reads late
/// for longer than two deadlines open the breaker, and the next answered read after it closes.
#[tokio::test]
async fn one_late_read_degrades_one_answer_and_a_stall_opens_the_breaker() {
    let server = RedisServer::start();
    // Every read goes to Redis (no reuse of fresh local copies).
    let config = RedisStoreConfig { key_prefix: "late".into(), stats_ttl_ms: 0, cache_ttl_ms: 0, ..Default::default() };
    let store = RedisStore::connect(&Target::parse(&server.url()).unwrap(), config, 86_400_000).await.unwrap();
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s", Category::Beauty, t0)]).await.unwrap();
    assert!(!store.get_sessions(&["s"], None).await.unwrap().degraded);

    server.pause();
    let late = store.get_sessions(&["s"], None).await.unwrap();
    server.resume();
    assert!(late.degraded, "a read past read_timeout_ms is answered from the local copy");
    assert!(!store.status().breaker_open, "one late read does not open the breaker");
    assert!(!store.get_sessions(&["s"], None).await.unwrap().degraded);

    server.pause();
    let started = std::time::Instant::now();
    while !store.status().breaker_open {
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "reads late for long open the breaker");
        assert!(store.get_sessions(&["s"], None).await.unwrap().degraded);
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(50), "{:?}", started.elapsed());
    server.resume();
}

/// Event ids are remembered for at least the de-duplication window, then forgotten (their
/// time-bucketed sets are unlinked), so that Redis's memory for them stays bounded.
#[tokio::test]
async fn event_ids_are_remembered_for_the_window_then_forgotten() {
    let server = RedisServer::start();
    let window_ms = 1_000;
    let config = RedisStoreConfig { key_prefix: "dd".into(), ..Default::default() };
    let store = RedisStore::connect(&Target::parse(&server.url()).unwrap(), config, window_ms).await.unwrap();
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s", Category::Beauty, t0)]).await.unwrap();
    let one = |id: &str| view(id, "s", "u", t0);
    let statuses = |events: Vec<Event>| {
        let store = store.clone();
        async move { store.ingest(events).await.unwrap().statuses }
    };
    let start = std::time::Instant::now();
    assert_eq!(statuses(vec![one("a"), one("a")]).await, vec![EventStatus::Accepted, EventStatus::Duplicate]);
    // Re-sent within the window, whichever bucket the clock is in now: still a duplicate (half a
    // window of slack for a slow machine).
    while start.elapsed() < std::time::Duration::from_millis(window_ms as u64 / 2) {
        assert_eq!(statuses(vec![one("a")]).await, vec![EventStatus::Duplicate]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Past twice the window (and a batch that moves the buckets on), the id is forgotten.
    tokio::time::sleep(std::time::Duration::from_millis(2 * window_ms as u64)).await;
    assert_eq!(statuses(vec![one("b")]).await, vec![EventStatus::Accepted]);
    assert_eq!(statuses(vec![one("a")]).await, vec![EventStatus::Accepted]);
    let got = store.get_sessions(&["s"], None).await.unwrap().value[0].clone().unwrap().stats;
    assert_eq!(got.views, 3, "a, b, and a again once forgotten");
}

fn view(id: &str, session: &str, user: &str, t: i64) -> Event {
    Event {
        event_id: id.into(),
        kind: EventKind::View,
        user_id: user.into(),
        session_id: session.into(),
        time_ms: t,
        ranking_id: String::new(),
        position: 0,
        watch_seconds: 0.0,
        amount: 0.0,
        order_id: String::new(),
    }
}

/// Batches sent at once are applied together (group commit: fewer script calls than batches),
/// and still each event once: batches that re-send each other's events, over few sessions and
/// users, end with the embedded store's counters, and every id is accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_sent_at_once_are_applied_together_each_event_once() {
    let server = RedisServer::start();
    let redis = redis_store(&server, "group").await;
    let dir = tempfile::tempdir().unwrap();
    let embedded = embedded_store(dir.path());
    let t0 = 1_800_000_000_000;
    let sessions: Vec<LiveSession> = (0..4).map(|i| session(&format!("s{i}"), Category::Beauty, t0 + i)).collect();
    for store in [&embedded as &dyn Store, &redis] {
        store.upsert_sessions(sessions.clone()).await.unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let batches: Vec<Vec<Event>> = (0..32)
        .map(|_| {
            (0..200)
                .map(|_| {
                    let n = rng.gen_range(0..4_000);
                    view(&format!("e{n}"), &format!("s{}", n % 4), &format!("u{}", n % 50), t0 + n)
                })
                .collect()
        })
        .collect();
    server.cli(&["CONFIG", "RESETSTAT"]).unwrap();
    let calls = batches.iter().cloned().map(|b| {
        let redis = redis.clone();
        tokio::spawn(async move { redis.ingest(b).await.unwrap().statuses })
    });
    let statuses: Vec<EventStatus> =
        futures_util::future::join_all(calls).await.into_iter().flat_map(|r| r.unwrap()).collect();
    let stats = server.cli(&["INFO", "commandstats"]).unwrap();
    let smismember: usize = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_smismember:calls="))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("SMISMEMBER ran");
    // Alone, each batch would make its own call with 4 SMISMEMBER (one per bucket).
    assert!(smismember < 4 * batches.len(), "{smismember} SMISMEMBER calls for {} batches", batches.len());
    let status = redis.status();
    assert_eq!(status.ingest_call_events, 6_400, "every event sent once to Redis");
    assert!(status.ingest_calls < batches.len() as u64, "{} calls for {} batches", status.ingest_calls, batches.len());

    let mut distinct: Vec<&str> = batches.iter().flatten().map(|e| e.event_id.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let accepted = statuses.iter().filter(|s| **s == EventStatus::Accepted).count();
    assert_eq!(accepted, distinct.len(), "each id accepted once");
    assert_eq!(statuses.len() - accepted, statuses.iter().filter(|s| **s == EventStatus::Duplicate).count());
    for b in &batches {
        embedded.ingest(b.clone()).await.unwrap();
    }
    let ids = ["s0", "s1", "s2", "s3"];
    let (a, b) = (embedded.get_sessions(&ids, None).await.unwrap(), redis.get_sessions(&ids, None).await.unwrap());
    for (x, y) in a.value.iter().zip(&b.value) {
        let (x, y) = (&x.as_ref().unwrap().stats, &y.as_ref().unwrap().stats);
        assert_eq!((x.views, x.on_target_views, x.known_views), (y.views, y.on_target_views, y.known_views));
    }
    let users: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let (a, b) = (embedded.get_users(&users, None).await.unwrap(), redis.get_users(&users, None).await.unwrap());
    for (x, y) in a.value.iter().zip(&b.value) {
        assert!((x.activity.views - y.activity.views).abs() <= 1e-3 * x.activity.views.max(1.0));
    }
}

/// An event whose session's attributes vanish between the replica's check and the write applies
/// nowhere (neither to the session nor to its user) and is not remembered, while the other
/// events of its call apply.
#[tokio::test]
async fn events_of_a_session_whose_attributes_vanished_apply_nowhere() {
    let server = RedisServer::start();
    let store = redis_store(&server, "gone").await;
    let t0 = 1_800_000_000_000;
    let sessions = vec![session("s0", Category::Beauty, t0), session("s9", Category::Home, t0)];
    store.upsert_sessions(sessions.clone()).await.unwrap();
    // The replica's copy of s9's attributes is fresh; Redis's is gone.
    let cli = |args: &[&str]| server.cli(args).unwrap().trim().to_owned();
    assert_eq!(cli(&["DEL", "gone:{s:2:s9}:a"]), "1");
    let events =
        vec![view("a", "s9", "u", t0), view("a", "s9", "u", t0), view("b", "s0", "w", t0), view("c", "s0", "u", t0)];
    let statuses = store.ingest(events).await.unwrap().statuses;
    use EventStatus::{Accepted, UnknownSession};
    assert_eq!(statuses, [UnknownSession, UnknownSession, Accepted, Accepted]);
    assert_eq!(cli(&["EXISTS", "gone:{s:2:s9}:st"]), "0", "no stats without attributes");
    let users = store.get_users(&["u", "w"], None).await.unwrap().value;
    assert!(users[0].activity.views > 0.0);
    assert_eq!(users[0].activity.views, users[1].activity.views, "only c reached u, as b reached w");

    store.upsert_sessions(sessions).await.unwrap();
    let statuses = store.ingest(vec![view("a", "s9", "u", t0)]).await.unwrap().statuses;
    assert_eq!(statuses, [EventStatus::Accepted], "a was not remembered");
    let got = store.get_sessions(&["s9"], None).await.unwrap().value[0].clone().unwrap().stats;
    assert_eq!(got.views, 1);
}

/// A fast call (every id distinct) that meets an id Redis has seen declines before it writes
/// anything, and the group, redone event by event, counts its new events once and the old one
/// not at all.
#[tokio::test]
async fn a_fast_call_meeting_a_seen_id_writes_nothing_and_is_redone() {
    let server = RedisServer::start();
    let store = redis_store(&server, "redo").await;
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s0", Category::Beauty, t0)]).await.unwrap();
    let ingest = |events: Vec<Event>| {
        let store = store.clone();
        async move { store.ingest(events).await.unwrap().statuses }
    };
    use EventStatus::{Accepted, Duplicate};
    assert_eq!(ingest(vec![view("a", "s0", "u", t0)]).await, [Accepted]);
    assert_eq!(ingest(vec![view("b", "s0", "u", t0), view("c", "s0", "w", t0)]).await, [Accepted, Accepted]);
    assert_eq!(store.status().ingest_calls_redone, 1, "the first call created the stats; the second was fast");
    assert_eq!(ingest(vec![view("d", "s0", "w", t0), view("a", "s0", "w", t0)]).await, [Accepted, Duplicate]);
    let status = store.status();
    assert_eq!((status.ingest_calls, status.ingest_calls_redone), (3, 2));
    let got = store.get_sessions(&["s0"], None).await.unwrap().value[0].clone().unwrap().stats;
    assert_eq!(got.views, 4, "a, b, c and d once each");
    let users = store.get_users(&["u", "w"], None).await.unwrap().value;
    assert!(users[0].activity.views > 0.0);
    assert_eq!(users[0].activity.views, users[1].activity.views, "u saw a and b; w saw c and d");
}

/// A replica renews a user's activity TTL, to the retention and an hour, at most once an hour:
/// a user it renewed minutes ago keeps the TTL it has, another replica renews it, and a blob a
/// fast call creates always gets one.
#[tokio::test]
async fn a_replica_renews_a_users_activity_ttl_at_most_hourly() {
    let server = RedisServer::start();
    let store = redis_store(&server, "ttl").await;
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s0", Category::Beauty, t0)]).await.unwrap();
    let key = "ttl:{u:1:u}:act";
    let pttl = || server.cli(&["PTTL", key]).unwrap().trim().parse::<i64>().unwrap();
    let (retention, hour) = (30 * 86_400_000, 3_600_000);
    let renewed = |ttl: i64| ttl > retention + hour - 60_000 && ttl <= retention + hour;
    let ingest = |store: &RedisStore, id: &str| {
        let (store, event) = (store.clone(), view(id, "s0", "u", t0));
        async move { assert_eq!(store.ingest(vec![event]).await.unwrap().statuses, [EventStatus::Accepted]) }
    };
    ingest(&store, "a").await;
    ingest(&store, "b").await;
    assert!(renewed(pttl()), "{}", pttl());
    server.cli(&["PEXPIRE", key, "1000000"]).unwrap();
    ingest(&store, "c").await;
    assert!(pttl() <= 1_000_000, "renewed by this replica within the hour: {}", pttl());
    let other = redis_store(&server, "ttl").await;
    ingest(&other, "d").await;
    assert!(renewed(pttl()), "another replica renews: {}", pttl());
    server.cli(&["DEL", key]).unwrap();
    ingest(&store, "e").await;
    assert!(renewed(pttl()), "a created blob gets its TTL: {}", pttl());
    assert_eq!(store.status().ingest_calls_redone + other.status().ingest_calls_redone, 1, "c, d, e were fast");
}

/// A session's stats and a user's activity that take event after event stay small: a call that
/// grows a blob past its compaction size names it, the replica reads and folds it and writes the
/// state back, and the counts stay exact.
#[tokio::test]
async fn hot_blobs_are_compacted_and_keep_their_counts() {
    let server = RedisServer::start();
    let store = redis_store(&server, "hot").await;
    let t0 = 1_800_000_000_000;
    store.upsert_sessions(vec![session("s0", Category::Beauty, t0)]).await.unwrap();
    let (batches, per_batch) = (20, 100);
    for b in 0..batches {
        let events: Vec<Event> =
            (0..per_batch).map(|i| view(&format!("e{b}-{i}"), "s0", "u", t0 + b * 1_000 + i)).collect();
        let outcome = store.ingest(events).await.unwrap();
        assert_eq!(outcome.count(EventStatus::Accepted), per_batch as u32);
    }
    let len = |key: &str| server.cli(&["STRLEN", key]).unwrap().trim().parse::<usize>().unwrap();
    let (stats_key, activity_key) = ("hot:{s:2:s0}:st", "hot:{u:1:u}:act");
    // Compaction follows the answer: wait for the last one. Uncompacted, the 2,000 records take
    // tens of KB.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (len(stats_key) >= 4096 || len(activity_key) >= 2048) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(len(stats_key) < 4096, "stats blob of {} bytes", len(stats_key));
    assert!(len(activity_key) < 2048, "activity blob of {} bytes", len(activity_key));
    let sessions = store.get_sessions(&["s0"], None).await.unwrap();
    assert_eq!(sessions.value[0].as_ref().unwrap().stats.views, (batches * per_batch) as u64);
    let users = store.get_users(&["u"], None).await.unwrap();
    let views = users.value[0].activity.views;
    assert!((views - (batches * per_batch) as f32).abs() < 1.0, "{views} decayed views");
}
