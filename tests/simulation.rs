//! The whole A/B loop on the simulator: the synthetic world drives the real server over gRPC, the
//! feature log is exported, and the report must find a truly better arm and flag nothing in an A/A
//! experiment running on the same traffic. Also: the trained policy against the baselines, and
//! targeted exploration against none for new hosts' sessions.

mod common;

use std::collections::BTreeMap;

use common::TestServer;
use fitrank::experiment::report;
use fitrank::export;
use fitrank::proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use fitrank::simulate::{self, SimOptions, SimPolicy};
use fitrank::train::generator::{GeneratorConfig, World};

fn arm(name: &str, policy: Option<pb::PolicyOverride>) -> pb::ExperimentArm {
    pb::ExperimentArm { name: name.into(), weight: 1.0, model: String::new(), policy }
}

#[tokio::test]
async fn the_report_detects_a_better_arm_and_not_an_a_a_difference() {
    let mut server = TestServer::start_with(|c| c.feature_log.flush_interval_ms = 20).await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    // "control" ranks with every weight 0 (the catalog's id order); "model" with the model.
    let unranked = pb::PolicyOverride {
        purchase_weight: Some(0.0),
        engage_weight: Some(0.0),
        audience_fit_weight: Some(0.0),
        exploration_share: None,
    };
    for e in [
        pb::Experiment {
            name: "better".into(),
            layer: "policy".into(),
            coverage: 1.0,
            arms: vec![arm("control", Some(unranked)), arm("model", None)],
            ..Default::default()
        },
        pb::Experiment {
            name: "aa".into(),
            layer: "aa".into(),
            coverage: 1.0,
            arms: vec![arm("a", None), arm("b", None)],
            ..Default::default()
        },
    ] {
        admin.create_experiment(pb::CreateExperimentRequest { experiment: Some(e) }).await.unwrap();
    }

    let config = GeneratorConfig { users: 5_000, sessions: 600, impressions: 0, seed: 7 };
    let world = World::new(config);
    simulate::setup(server.channel().await, &world, 0).await.unwrap();
    let options = SimOptions { requests: 3_000, slots: 5, seed: 11, new_every: 0 };
    let card = simulate::run(server.channel().await, &world, &options, &[SimPolicy::Fitrank]).await.unwrap();
    assert_eq!(card.requests, 3_000);
    assert!(
        card.arms["fitrank better/model"].purchases > 2 * card.arms["fitrank better/control"].purchases,
        "{}",
        card.to_text()
    );

    let data_dir = server.data_dir.clone();
    server.stop().await.unwrap();
    let (table, stats) = export::export(&[data_dir.join("featurelog")], &export::JoinOptions::default()).unwrap();
    assert!(table.rows() > 5_000, "{stats:?}");

    let weights = |a: &str, b: &str| BTreeMap::from([(a.to_owned(), 1.0), (b.to_owned(), 1.0)]);
    let better = report::report(&table, "better", "control", &weights("control", "model")).unwrap();
    let primary = better.lifts.iter().find(|l| l.metric == "purchases_per_1000_impressions").unwrap();
    assert!(primary.comparison.ci_low > 0.0 && primary.comparison.p_value < 0.001, "{}", better.to_text());
    assert!(!better.srm.unwrap().alert);

    let aa = report::report(&table, "aa", "a", &weights("a", "b")).unwrap();
    for metric in ["purchases_per_1000_impressions", "conversion"] {
        let l = aa.lifts.iter().find(|l| l.metric == metric).unwrap();
        assert!(l.comparison.p_value > 0.05, "A/A flagged on {metric}: {}", aa.to_text());
    }
    assert!(!aa.srm.unwrap().alert);
}

#[tokio::test]
async fn the_trained_policy_beats_popularity_and_random_on_purchases() {
    let server = TestServer::start().await;
    let config = GeneratorConfig { users: 2_000, sessions: 300, impressions: 0, seed: 7 };
    let world = World::new(config);
    simulate::setup(server.channel().await, &world, 5).await.unwrap();
    let options = SimOptions { requests: 3_000, slots: 5, seed: 5, new_every: 5 };
    let policies = [SimPolicy::Fitrank, SimPolicy::Popularity, SimPolicy::Random, SimPolicy::Oracle];
    let card = simulate::run(server.channel().await, &world, &options, &policies).await.unwrap();
    let buys = |p: &str| card.arms[p].purchases_per_1000_impressions;
    assert!(buys("fitrank") > 2.0 * buys("popularity"), "{}", card.to_text());
    assert!(buys("fitrank") > buys("random"), "{}", card.to_text());
    assert!(buys("oracle") >= buys("fitrank") * 0.95, "the oracle is the upper bound: {}", card.to_text());
    assert!((card.arms["oracle"].ndcg - 1.0).abs() < 1e-9);
    assert!(card.arms["fitrank"].on_target_share > card.arms["popularity"].on_target_share);
    // New hosts' sessions (every 5th, launched at request 1,500) are scored per policy.
    let cold = &card.cold_start["fitrank"];
    assert_eq!((cold.new_sessions, cold.horizon), (60, 1_500));
    assert!(cold.with_a_purchase <= 60 && cold.mean_requests_to_first_purchase <= 1_500.0);
    assert!(card.cold_start["oracle"].with_a_purchase > 0, "the oracle sells new sessions that fit");
}

/// Each run on its own service: fitrank alone runs the platform, new hosts' sessions launch halfway.
async fn cold_start_run(exploration_share: f32, seed: u64) -> simulate::Scorecard {
    let server = TestServer::start_with(move |c| {
        c.policy.exploration_share = exploration_share;
        c.policy.cold_impressions = 10;
    })
    .await;
    let world = World::new(GeneratorConfig { users: 2_000, sessions: 300, impressions: 0, seed: 7 });
    simulate::setup(server.channel().await, &world, 5).await.unwrap();
    let options = SimOptions { requests: 6_000, slots: 5, seed, new_every: 5 };
    simulate::run(server.channel().await, &world, &options, &[SimPolicy::Fitrank]).await.unwrap()
}

#[tokio::test]
async fn targeted_exploration_gets_new_hosts_their_first_purchases() {
    // The largest share, so that a small world shows the effect; docs/BENCHMARKS.md measures the
    // default-world runs at 0.05 (scripts/sim-cold-start.sh).
    let (off, on) = tokio::join!(cold_start_run(0.0, 22), cold_start_run(0.2, 22));
    let (cold_off, cold_on) = (&off.cold_start["fitrank"], &on.cold_start["fitrank"]);
    assert_eq!((cold_on.new_sessions, cold_on.horizon), (60, 3_000));
    eprintln!(
        "impressions per new session {} / {}, sold {} / {}, mean requests to first purchase {} / {} (on / off)",
        cold_on.impressions_per_new_session,
        cold_off.impressions_per_new_session,
        cold_on.with_a_purchase,
        cold_off.with_a_purchase,
        cold_on.mean_requests_to_first_purchase,
        cold_off.mean_requests_to_first_purchase
    );
    // Without exploration the model rarely shows a session it has no data on. The simulation runs
    // in wall-clock time, so the real-time window features (and with them this ratio) depend on
    // the machine's speed: the test passed at 1.5 on the faster build machines; on the slowest one
    // measured (2026-12-01) eight runs gave 1.23 to 2.03. The margin asserted is below all of them.
    assert!(
        cold_on.impressions_per_new_session > 1.15 * cold_off.impressions_per_new_session,
        "impressions per new session: {} with exploration, {} without",
        cold_on.impressions_per_new_session,
        cold_off.impressions_per_new_session
    );
    assert!(
        cold_on.with_a_purchase > cold_off.with_a_purchase,
        "new sessions sold: {} with exploration, {} without\n{}\n{}",
        cold_on.with_a_purchase,
        cold_off.with_a_purchase,
        off.to_text(),
        on.to_text()
    );
    assert!(cold_on.mean_requests_to_first_purchase < cold_off.mean_requests_to_first_purchase);
}
