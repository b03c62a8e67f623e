//! Scale-out through Redis: separate fitrank processes on one Redis share the catalog, exact
//! counters and experiments; their feature logs together hold every ranking and outcome; and a Redis outage mid-load
//! costs no crash, no acknowledged event, and no ranking (they flow degraded), with recovery
//! when Redis returns. Each test starts its own redis-server (common::redis).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{TestServer, attrs, copy_dir, session, shipped_models, target};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, EventType as T, Gender};
use tonic::transport::Channel;

/// A `fitrank serve` process.
struct Replica {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Replica {
    async fn spawn(store: &str) -> Replica {
        let tmp = tempfile::tempdir().unwrap();
        let models = tmp.path().join("models");
        copy_dir(&shipped_models(), &models);
        let data_dir = tmp.path().join("data");
        let config = tmp.path().join("fitrank.toml");
        std::fs::write(
            &config,
            "shutdown_drain_ms = 50\nexperiments_refresh_ms = 200\n[feature_log]\nflush_interval_ms = 100\n",
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_fitrank"))
            .arg("serve")
            .args(["--addr", &format!("127.0.0.1:{port}"), "--http-addr", "127.0.0.1:0", "--store", store])
            .arg("--config")
            .arg(&config)
            .arg("--models")
            .arg(&models)
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start fitrank");
        let replica = Replica { child, port, data_dir, _tmp: tmp };
        let start = Instant::now();
        while Channel::from_shared(replica.url()).unwrap().connect().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "replica did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replica
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.unwrap()
    }

    fn log_dir(&self) -> PathBuf {
        self.data_dir.join("featurelog")
    }

    /// SIGTERM, then waits: the process drains and closes its feature log.
    fn stop(&mut self) {
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "replica exited with {status}");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event of `kind` by `user` on `session`, attributed to `ranking` (may be empty).
fn ev(kind: T, id: &str, user: &str, session: &str, ranking: &str) -> pb::Event {
    pb::Event { ranking_id: ranking.into(), ..common::event(id, kind, user, session) }
}

fn view(id: &str, user: &str, session: &str) -> pb::Event {
    ev(T::View, id, user, session, "")
}

async fn setup_catalog(channel: Channel) {
    let mut catalog = CatalogServiceClient::new(channel);
    catalog
        .upsert_users(pb::UpsertUsersRequest {
            users: vec![
                pb::User {
                    user_id: "w".into(),
                    attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US", "en")),
                },
                pb::User {
                    user_id: "m".into(),
                    attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US", "en")),
                },
            ],
        })
        .await
        .unwrap();
    catalog
        .upsert_sessions(pb::UpsertSessionsRequest {
            sessions: vec![
                session("s1", Some(target(18, 34, &[Gender::Female], &[]))),
                session("s2", Some(target(45, 70, &[Gender::Male], &[]))),
            ],
        })
        .await
        .unwrap();
}

async fn stats(channel: Channel, id: &str) -> pb::GetSessionResponse {
    CatalogServiceClient::new(channel)
        .get_session(pb::GetSessionRequest { session_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_catalog_counters_experiments_and_logs() {
    let redis = RedisServer::start();
    let mut a = Replica::spawn(&redis.url()).await;
    let mut b = Replica::spawn(&redis.url()).await;

    // A session upserted through A is ranked by B, named or listed.
    setup_catalog(a.channel().await).await;
    let mut rank_b = RankingServiceClient::new(b.channel().await);
    let named = rank_b
        .rank(pb::RankRequest {
            user_id: "w".into(),
            candidate_session_ids: vec!["s1".into(), "s2".into()],
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(named.unranked.is_empty() && !named.degraded);
    assert_eq!(named.items[0].session_id, "s1", "the woman's stream first: B knows both sessions' targets");
    // B lists a session upserted through A within its cache's `cache_ttl_ms` (1 s): B may have
    // listed the catalog before (its console samples it), and reuses that listing until then.
    let started = std::time::Instant::now();
    loop {
        let listed =
            rank_b.rank(pb::RankRequest { user_id: "m".into(), ..Default::default() }).await.unwrap().into_inner();
        let mut ids: Vec<String> = listed.items.into_iter().map(|i| i.session_id).collect();
        ids.sort();
        if ids == ["s1", "s2"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "B still lists {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Events sent to both, with every 5th one re-sent to the other replica: exact counters.
    let events: Vec<pb::Event> = (0..400)
        .map(|i| view(&format!("v{i}"), if i % 3 == 0 { "m" } else { "w" }, if i % 4 == 0 { "s2" } else { "s1" }))
        .collect();
    let (to_a, to_b): (Vec<_>, Vec<_>) = events.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let resent: Vec<(usize, pb::Event)> = events.iter().cloned().enumerate().filter(|(i, _)| i % 5 == 0).collect();
    let send = |channel: Channel, batch: Vec<(usize, pb::Event)>| async move {
        let mut client = EventServiceClient::new(channel);
        let mut total = (0, 0);
        for chunk in batch.chunks(37) {
            let r = client
                .ingest_batch(pb::IngestBatchRequest { events: chunk.iter().map(|(_, e)| e.clone()).collect() })
                .await
                .unwrap()
                .into_inner();
            assert!(r.rejected.is_empty());
            total = (total.0 + r.accepted, total.1 + r.duplicates);
        }
        total
    };
    let (ra, rb) = tokio::join!(send(a.channel().await, to_a), send(b.channel().await, to_b));
    let (accepted, duplicates) = (ra.0 + rb.0, ra.1 + rb.1);
    assert_eq!((accepted, duplicates), (400, 0));
    let (_, a_resent) = send(a.channel().await, resent.iter().filter(|(i, _)| i % 2 == 1).cloned().collect()).await;
    let (_, b_resent) = send(b.channel().await, resent.iter().filter(|(i, _)| i % 2 == 0).cloned().collect()).await;
    assert_eq!(a_resent + b_resent, 80, "a re-sent event is a duplicate whichever replica first stored it");
    // Replicas reuse live stats they read for up to `redis.stats_ttl_ms` (100 ms).
    tokio::time::sleep(Duration::from_millis(150)).await;
    for replica in [&a, &b] {
        let s1 = stats(replica.channel().await, "s1").await.stats.unwrap();
        let s2 = stats(replica.channel().await, "s2").await.stats.unwrap();
        assert_eq!((s1.views, s2.views), (300, 100));
        // Views by users inside each session's target: the woman's on s1, the man's on s2.
        let woman_on_s1 = (0..400).filter(|i| i % 4 != 0 && i % 3 != 0).count() as u64;
        let man_on_s2 = (0..400).filter(|i| i % 4 == 0 && i % 3 == 0).count() as u64;
        assert_eq!((s1.on_target_views, s1.known_views), (woman_on_s1, 300));
        assert_eq!((s2.on_target_views, s2.known_views), (man_on_s2, 100));
    }

    // Rankings served by either replica, outcomes sent to the other: one export joins them.
    let mut rank_a = RankingServiceClient::new(a.channel().await);
    let ranked_a = rank_a
        .rank(pb::RankRequest { user_id: "w".into(), candidate_session_ids: vec!["s1".into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let ranked_b = rank_b
        .rank(pb::RankRequest { user_id: "m".into(), candidate_session_ids: vec!["s2".into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut events_a = EventServiceClient::new(a.channel().await);
    let mut events_b = EventServiceClient::new(b.channel().await);
    events_b
        .ingest_batch(pb::IngestBatchRequest {
            events: vec![
                ev(T::Impression, "ia", "w", "s1", &ranked_a.ranking_id),
                ev(T::Purchase, "pa", "w", "s1", &ranked_a.ranking_id),
            ],
        })
        .await
        .unwrap();
    events_a
        .ingest_batch(pb::IngestBatchRequest {
            events: vec![
                ev(T::Impression, "ib", "m", "s2", &ranked_b.ranking_id),
                ev(T::Purchase, "pb", "m", "s2", &ranked_b.ranking_id),
            ],
        })
        .await
        .unwrap();

    // An experiment created through A assigns on B too.
    AdminServiceClient::new(a.channel().await)
        .create_experiment(pb::CreateExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "shared".into(),
                layer: "policy".into(),
                coverage: 1.0,
                arms: vec![
                    pb::ExperimentArm { name: "control".into(), weight: 1.0, ..Default::default() },
                    pb::ExperimentArm { name: "other".into(), weight: 1.0, ..Default::default() },
                ],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let r = rank_b
            .rank(pb::RankRequest {
                user_id: "w".into(),
                candidate_session_ids: vec!["s1".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if r.experiments.iter().any(|e| e.experiment == "shared") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "B never saw the experiment created through A");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = AdminServiceClient::new(b.channel().await)
        .list_experiments(pb::ListExperimentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.experiments.iter().any(|e| e.name == "shared"));

    a.stop();
    b.stop();
    // Each replica logged its own ranking and the outcomes it acknowledged: the purchase of A's
    // ranking is in B's log, so only both logs together join it (the lab's export reads them so).
    let served = |dir: std::path::PathBuf| {
        let mut ids = Vec::new();
        fitrank::featurelog::read_served(&[dir], |r| ids.push(r.ranking_id)).unwrap();
        ids
    };
    let bought = |dir: std::path::PathBuf| {
        let mut ids = Vec::new();
        fitrank::featurelog::read_outcomes(&[dir], |e| {
            if e.kind == fitrank::domain::EventKind::Purchase {
                ids.push(e.ranking_id.to_string())
            }
        })
        .unwrap();
        ids
    };
    assert!(served(a.log_dir()).contains(&ranked_a.ranking_id));
    assert!(served(b.log_dir()).contains(&ranked_b.ranking_id));
    assert_eq!(bought(a.log_dir()), std::slice::from_ref(&ranked_b.ranking_id));
    assert_eq!(bought(b.log_dir()), std::slice::from_ref(&ranked_a.ranking_id));
}

/// Sends View events in batches until told to stop; remembers which batches were acknowledged.
struct Load {
    acked: Vec<Vec<pb::Event>>,
    failed: Vec<Vec<pb::Event>>,
    other_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_mid_load_loses_no_acknowledged_event_and_rankings_keep_flowing() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let server = TestServer::start_with(move |c| {
        c.store = url;
        c.redis.breaker_ms = 200;
        c.redis.read_timeout_ms = 50;
        c.redis.write_timeout_ms = 500;
    })
    .await;
    setup_catalog(server.channel().await).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rankings = Arc::new(Mutex::new(Vec::<(Instant, Result<bool, String>)>::new()));
    let ranker = {
        let (stop, rankings, channel) = (stop.clone(), rankings.clone(), server.channel().await);
        tokio::spawn(async move {
            let mut client = RankingServiceClient::new(channel);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Stamped when sent: a ranking sent after the kill cannot have read Redis.
                let sent = Instant::now();
                let r = client
                    .rank(pb::RankRequest {
                        user_id: "w".into(),
                        candidate_session_ids: vec!["s1".into(), "s2".into()],
                        ..Default::default()
                    })
                    .await;
                let outcome = r.map(|r| r.into_inner()).map_err(|s| s.to_string()).map(|r| {
                    assert_eq!(r.items.len(), 2, "both sessions ranked, from cache when degraded");
                    r.degraded
                });
                rankings.lock().unwrap().push((sent, outcome));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let acked_batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ingester = {
        let (stop, channel, acked_batches) = (stop.clone(), server.channel().await, acked_batches.clone());
        tokio::spawn(async move {
            let mut client = EventServiceClient::new(channel);
            let mut load = Load { acked: vec![], failed: vec![], other_errors: vec![] };
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<pb::Event> = (0..20).map(|i| view(&format!("x{}", n + i), "w", "s1")).collect();
                n += 20;
                match client.ingest_batch(pb::IngestBatchRequest { events: batch.clone() }).await {
                    Ok(r) => {
                        assert_eq!(r.into_inner().accepted, 20);
                        load.acked.push(batch);
                        acked_batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => load.failed.push(batch),
                    Err(s) => load.other_errors.push(s.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            load
        })
    };

    // Kill Redis only once some load has been acknowledged (a fixed wait was too short when the
    // whole test suite shares two cores).
    let started = Instant::now();
    while acked_batches.load(std::sync::atomic::Ordering::Relaxed) < 20 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Instant::now();
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let restarted = Instant::now();
    redis.restart();
    // Recovery is the service's own: wait (up to 20 s, for a loaded CI machine) until ten
    // rankings in a row are fresh, without touching the service.
    let fresh_run = || {
        let r = rankings.lock().unwrap();
        r.len() >= 10 && r[r.len() - 10..].iter().all(|(t, r)| *t > restarted && *r == Ok(false))
    };
    while !fresh_run() && restarted.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ranker.await.unwrap();
    let load = ingester.await.unwrap();

    let rankings = rankings.lock().unwrap().clone();
    let errors: Vec<&String> = rankings.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "rankings failed: {errors:?}");
    let degraded_during = rankings.iter().filter(|(t, r)| *t > killed && *t < restarted && *r == Ok(true)).count();
    let during = rankings.iter().filter(|(t, _)| *t > killed && *t < restarted).count();
    assert!(during > 5 && degraded_during == during, "{degraded_during} of {during} degraded while Redis was down");
    let last = &rankings[rankings.len() - 10..];
    assert!(last.iter().all(|(_, r)| *r == Ok(false)), "rankings are fresh again after recovery: {last:?}");
    assert!(load.other_errors.is_empty(), "{:?}", load.other_errors);
    assert!(!load.failed.is_empty(), "some batches failed with UNAVAILABLE during the outage");
    assert!(load.acked.len() >= 20, "{} batches acknowledged", load.acked.len());

    // The client retries what failed; then every event is counted exactly once.
    let mut client = EventServiceClient::new(server.channel().await);
    for batch in &load.failed {
        ingest_until_acknowledged(&mut client, batch.clone()).await;
    }
    let sent = 20 * (load.acked.len() + load.failed.len()) as u64;
    tokio::time::sleep(Duration::from_millis(150)).await; // past the stats TTL of the last rankings
    let s1 = stats(server.channel().await, "s1").await;
    assert!(!s1.degraded);
    assert_eq!(s1.stats.unwrap().views, sent, "acknowledged events survived the kill; retries counted once");

    let status = AdminServiceClient::new(server.channel().await)
        .get_store_status(pb::GetStoreStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.backend, "redis");
    assert!(status.reachable && status.degraded_reads > 0 && status.failures > 0, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_costs_a_ranking_no_more_than_the_callers_deadline() {
    let redis = RedisServer::start();
    let url = redis.url();
    let server = TestServer::start_with(move |c| {
        c.store = url;
        c.redis.read_timeout_ms = 10_000; // the caller's deadline is what bounds the wait
        c.redis.write_timeout_ms = 1_000;
        c.redis.breaker_ms = 100;
    })
    .await;
    setup_catalog(server.channel().await).await;
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let rank = |ranking: &mut RankingServiceClient<Channel>| {
        let mut request = tonic::Request::new(pb::RankRequest {
            user_id: "w".into(),
            candidate_session_ids: vec!["s1".into(), "s2".into()],
            ..Default::default()
        });
        request.set_timeout(Duration::from_millis(200));
        let mut ranking = ranking.clone();
        async move { ranking.rank(request).await.map(|r| r.into_inner()) }
    };
    assert!(!rank(&mut ranking).await.unwrap().degraded);

    redis.pause();
    for _ in 0..5 {
        // A late answer would be DEADLINE_EXCEEDED: the caller's 200 ms bound the wait, not
        // the configured 10 s.
        let r = rank(&mut ranking).await.expect("answered within the caller's deadline");
        assert!(r.degraded && r.items.len() == 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let err = EventServiceClient::new(server.channel().await)
        .ingest_batch(pb::IngestBatchRequest { events: vec![view("stalled", "w", "s1")] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);

    redis.resume();
    let start = Instant::now();
    while rank(&mut ranking).await.unwrap().degraded {
        assert!(start.elapsed() < Duration::from_secs(5), "rankings stay degraded after Redis resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The write that timed out may have landed before the stall ended; its retry counts once.
    let mut events = EventServiceClient::new(server.channel().await);
    let r = ingest_until_acknowledged(&mut events, vec![view("stalled", "w", "s1")]).await;
    assert_eq!(r.accepted + r.duplicates, 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(stats(server.channel().await, "s1").await.stats.unwrap().views, 1);
}

/// Sends a batch the way a caller told UNAVAILABLE does: again, until it is acknowledged (for at
/// most 10 s; a Redis just back from an outage on a loaded machine may need more than one write
/// deadline to drain what queued up).
async fn ingest_until_acknowledged(
    client: &mut EventServiceClient<Channel>,
    events: Vec<pb::Event>,
) -> pb::IngestResponse {
    let start = Instant::now();
    loop {
        match client.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await {
            Ok(r) => return r.into_inner(),
            Err(e) if e.code() == tonic::Code::Unavailable && start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the retried batch was never acknowledged: {e}"),
        }
    }
}

fn keys_on(node: &RedisServer) -> usize {
    node.cli(&["DBSIZE"]).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_holds_the_state_across_its_nodes() {
    let nodes = common::redis::start_cluster();
    let store = common::redis::cluster_url(&nodes);
    let server = TestServer::start_with(move |c| c.store = store).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let sessions: Vec<pb::LiveSession> = (0..30).map(|i| session(&format!("c{i}"), None)).collect();
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
    setup_catalog(server.channel().await).await;
    let events: Vec<pb::Event> = (0..600).map(|i| view(&format!("e{i}"), "w", &format!("c{}", i % 30))).collect();
    let mut client = EventServiceClient::new(server.channel().await);
    let r = client.ingest_batch(pb::IngestBatchRequest { events: events.clone() }).await.unwrap().into_inner();
    assert_eq!(r.accepted, 600);
    let again = client.ingest_batch(pb::IngestBatchRequest { events }).await.unwrap().into_inner();
    assert_eq!(again.duplicates, 600);
    for i in [0, 13, 29] {
        assert_eq!(stats(server.channel().await, &format!("c{i}")).await.stats.unwrap().views, 20);
    }
    let ranked = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest { user_id: "w".into(), limit: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ranked.items.len(), 32, "every live session listed and ranked");
    assert!(!ranked.degraded);
    let spread: Vec<usize> = nodes.iter().map(keys_on).collect();
    assert!(spread.iter().all(|n| *n > 50), "keys spread over the three nodes: {spread:?}");
}
