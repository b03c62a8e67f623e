//! The whole A/B loop on the simulator: the synthetic world drives the real server over gRPC, the
//! feature log is exported, and the report must find a truly better arm and flag nothing in an A/A
//! experiment running on the same traffic. Also: the trained policy against the baselines, and
//! targeted exploration for new hosts' sessions against popularity and against none.

mod common;

use std::collections::BTreeMap;

use common::TestServer;
use fitrank::proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use fitrank_lab::export;
use fitrank_lab::report;
use fitrank_lab::simulate::{self, SimOptions, SimPolicy};
use fitrank_lab::train::generator::{GeneratorConfig, World};

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
        on_target_weight: Some(0.0),
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
    // Behaviour seed 12. The A/A check below is a 5% test on one deterministic run: with the
    // shipped model of 2026-12-02, seed 11 (used before) drew an A/A difference with p = 0.0047 on
    // purchases per 1,000 impressions, while seeds 1-10 and 12 gave p from 0.23 to 0.93 (measured
    // with the same flow through the CLI), so the arms' assignment is not at fault.
    let options = SimOptions::new(3_000, 5, 12);
    simulate::setup(server.channel().await, &world, options.start_ms).await.unwrap();
    let card = simulate::run(server.channel().await, &world, &options, &[SimPolicy::Fitrank]).await.unwrap();
    assert_eq!(card.requests, 3_000);
    assert!(
        card.arms["fitrank better/model"].purchases > 2 * card.arms["fitrank better/control"].purchases,
        "{}",
        card.to_text()
    );

    let data_dir = server.data_dir.clone();
    server.stop().await.unwrap();
    // 3,000 requests are 17 simulated minutes: every attribution window is still open.
    let options = export::JoinOptions { include_open: true, ..Default::default() };
    let (table, stats) = export::export(&[data_dir.join("featurelog")], &options).unwrap();
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
    // Half a request per simulated second: 100 simulated minutes, in which sessions go live.
    let options = SimOptions { rate: 0.5, cold_minutes: 30, ..SimOptions::new(3_000, 5, 5) };
    simulate::setup(server.channel().await, &world, options.start_ms).await.unwrap();
    let policies = [SimPolicy::Fitrank, SimPolicy::Popularity, SimPolicy::Random, SimPolicy::Oracle];
    let card = simulate::run(server.channel().await, &world, &options, &policies).await.unwrap();
    let buys = |p: &str| card.arms[p].purchases_per_1000_impressions;
    assert!(buys("fitrank") > 2.0 * buys("popularity"), "{}", card.to_text());
    assert!(buys("fitrank") > buys("random"), "{}", card.to_text());
    // The oracle is the upper bound in expectation; on 750 rankings each, the realised rates
    // differ by chance with a standard error near 10 per 1,000, so the check allows three.
    let rate = |p: &str| card.arms[p].purchases_per_1000_impressions / 1000.0;
    let variance = |p: &str| rate(p) * (1.0 - rate(p)) / card.arms[p].impressions as f64;
    let se = 1000.0 * (variance("oracle") + variance("fitrank")).sqrt();
    assert!(buys("oracle") >= buys("fitrank") - 3.0 * se, "the oracle is the upper bound: {}", card.to_text());
    assert!((card.arms["oracle"].ndcg - 1.0).abs() < 1e-9);
    assert!(card.arms["fitrank"].on_target_share > card.arms["popularity"].on_target_share);
    // Sessions going live during the run with their first 30 minutes inside it are scored per policy.
    let window = 30 * 60_000;
    let new = world
        .sessions
        .iter()
        .filter(|s| s.start_time_ms > options.start_ms && s.start_time_ms + window <= options.end_ms())
        .count();
    assert!(new >= 10, "the world starts sessions during the run: {new}");
    let cold = &card.cold_start["fitrank"];
    assert_eq!((cold.new_sessions, cold.horizon_minutes), (new, 30.0));
    assert!(cold.with_a_purchase <= new && cold.mean_minutes_to_first_purchase <= 30.0);
    assert!(card.cold_start["oracle"].with_a_purchase > 0, "the oracle sells new sessions that fit");
}

/// Each run on its own service: one policy alone runs the platform for 200 simulated minutes, in
/// which new hosts' sessions go live.
async fn cold_start_run(policy: SimPolicy, exploration_share: f32, seed: u64) -> simulate::Scorecard {
    let server = TestServer::start_with(move |c| {
        c.policy.exploration_share = exploration_share;
        c.policy.cold_impressions = 10;
    })
    .await;
    let world = World::new(GeneratorConfig { users: 2_000, sessions: 300, impressions: 0, seed: 7 });
    let options = SimOptions { rate: 0.5, ..SimOptions::new(6_000, 5, seed) };
    simulate::setup(server.channel().await, &world, options.start_ms).await.unwrap();
    simulate::run(server.channel().await, &world, &options, &[policy]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exploration_new_hosts_sell_twice_as_fast_as_under_popularity() {
    // The goal of the simulator's issue at the default exploration share, on a small world:
    // docs/PERFORMANCE.md measures the default world (scripts/sim-cold-start.sh).
    let (off, on, popular) = tokio::join!(
        cold_start_run(SimPolicy::Fitrank, 0.0, 22),
        cold_start_run(SimPolicy::Fitrank, 0.05, 22),
        cold_start_run(SimPolicy::Popularity, 0.0, 22)
    );
    let (cold_on, cold_popular) = (&on.cold_start["fitrank"], &popular.cold_start["popularity"]);
    assert_eq!(cold_on.new_sessions, cold_popular.new_sessions);
    assert!(cold_on.new_sessions >= 20, "{}", on.to_text());
    let text = format!(
        "exploration off:\n{}\nexploration on:\n{}\npopularity:\n{}",
        off.to_text(),
        on.to_text(),
        popular.to_text()
    );
    eprintln!("{text}");
    // Time to the first purchase, censored at the end of each new session's first hour: the
    // maximum-likelihood mean and the restricted mean (which the horizon caps, so it understates
    // the difference) both at least halve.
    let fast = |c: &simulate::ColdStart| c.estimated_mean_minutes_to_first_purchase.unwrap_or(f64::INFINITY);
    assert!(2.0 * fast(cold_on) <= fast(cold_popular), "{text}");
    assert!(cold_on.mean_minutes_to_first_purchase < cold_popular.mean_minutes_to_first_purchase, "{text}");
    assert!(cold_on.with_a_purchase > cold_popular.with_a_purchase, "{text}");
    // Exploration costs little: the goal's 2% is measured at scale; one small run's purchases per
    // 1,000 impressions have a standard error near 4%, so the margin here is 10%.
    let buys = |c: &simulate::Scorecard| c.arms["fitrank"].purchases_per_1000_impressions;
    assert!(buys(&on) >= 0.9 * buys(&off), "{text}");
}

#[tokio::test]
async fn the_shoppers_world_scores_policies_by_the_truth_and_by_declaration() {
    let server = TestServer::start().await;
    let spec = fitrank_lab::worlds::WorldSpec::load("shoppers").unwrap();
    let world = World::of(&spec, GeneratorConfig { users: 2_000, sessions: 300, impressions: 0, seed: 21 });
    let kinds: std::collections::BTreeSet<_> = world.declarations.iter().collect();
    assert_eq!(kinds.len(), 4, "every kind of declaration occurs: {kinds:?}");
    let options = SimOptions::new(2_000, 5, 4);
    simulate::setup(server.channel().await, &world, options.start_ms).await.unwrap();
    let policies = [SimPolicy::Fitrank, SimPolicy::Random, SimPolicy::Oracle, SimPolicy::Demographic];
    let card = simulate::run(server.channel().await, &world, &options, &policies).await.unwrap();
    let arm = |name: &str| &card.arms[name];
    let text = card.to_text();
    // The truth's own order beats the demographic ceiling, which beats a shuffle.
    let expected = |name: &str| arm(name).expected_purchases_per_1000_impressions;
    assert!(expected("oracle") > expected("demographic-oracle"), "{text}");
    assert!(expected("demographic-oracle") > 1.5 * expected("random"), "{text}");
    assert!(arm("oracle").true_audience_share > 2.0 * arm("random").true_audience_share, "{text}");
    assert!(arm("oracle").wasted_impression_share < arm("random").wasted_impression_share, "{text}");
    for a in card.arms.values() {
        let shares: f64 = a.by_declaration.values().map(|d| d.exposure_share).sum();
        assert!((shares - 1.0).abs() < 1e-9, "{text}");
        let impressions: u64 = a.by_declaration.values().map(|d| d.impressions).sum();
        assert_eq!(impressions, a.impressions);
        // The per-position truth is the expectation of what the draws showed: summed over
        // positions it matches the expected purchases of the impressions shown, within their noise
        // (which of 500 rankings' slots are seen is a draw; a few sessions carry most of the
        // expectation, so the two differed by up to 13% between runs).
        let by_position = &a.expected_purchases_per_ranking_at_position;
        assert!(by_position.len() <= 5 && a.expected_top_purchases_standard_error > 0.0, "{a:?}");
        let per_ranking = a.expected_purchases / a.rankings as f64;
        let total: f64 = by_position.iter().sum();
        assert!((total - per_ranking).abs() < 0.25 * per_ranking, "{total} against {per_ranking}: {text}");
    }
    // The oracle puts the best pair first: its top slot's truth beats a shuffle's by far.
    let top = |name: &str| arm(name).expected_purchases_per_ranking_at_position[0];
    assert!(top("oracle") > 3.0 * top("random"), "{} against {}", top("oracle"), top("random"));
    assert!(top("oracle") > top("demographic-oracle"), "{} against {}", top("oracle"), top("demographic-oracle"));
    assert!(text.contains("too_broad") && text.contains("demographic-oracle"), "{text}");
}

#[tokio::test]
async fn the_posterior_oracle_learns_users_from_a_warm_up_it_carries_over() {
    let server = TestServer::start().await;
    let spec = fitrank_lab::worlds::WorldSpec::load("shoppers").unwrap();
    let world = World::of(&spec, GeneratorConfig { users: 200, sessions: 300, impressions: 0, seed: 23 });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("posterior.bin");
    // A warm-up served by fitrank alone: about 20 feed requests per user, which the posterior
    // follows and saves.
    let warm_up = SimOptions { posterior_state: Some(state.clone()), ..SimOptions::new(4_000, 8, 5) };
    simulate::setup(server.channel().await, &world, warm_up.start_ms).await.unwrap();
    simulate::run(server.channel().await, &world, &warm_up, &[SimPolicy::Fitrank]).await.unwrap();
    let saved = std::fs::read(&state).expect("the warm-up saves the posterior");
    let measured = SimOptions { start_ms: warm_up.end_ms(), seed: 6, ..warm_up.clone() };
    let policies = [SimPolicy::Random, SimPolicy::Oracle, SimPolicy::Demographic, SimPolicy::Posterior];
    let card = simulate::run(server.channel().await, &world, &measured, &policies).await.unwrap();
    let text = card.to_text();
    let expected = |name: &str| card.arms[name].expected_purchases_per_1000_impressions;
    // Knowing each user's hidden type and tastes beats inferring them. (That inferring them beats
    // demographics alone is checked paired in `posterior`'s unit tests: here, with 200 users, the
    // demographic oracle's averages over six users a segment already know them in part.)
    assert!(expected("oracle") > expected("posterior-oracle"), "{text}");
    assert!(expected("posterior-oracle") > 1.5 * expected("random"), "{text}");
    let resaved = std::fs::read(&state).unwrap();
    assert_eq!(resaved.len(), saved.len());
    assert_ne!(resaved, saved, "the measured run continued the warm-up's posterior and saved it");
    // Outside its model it refuses rather than give a wrong bound.
    let default = World::of(
        &fitrank_lab::worlds::WorldSpec::default(),
        GeneratorConfig { users: 50, sessions: 40, impressions: 0, seed: 3 },
    );
    let short = SimOptions::new(10, 5, 1);
    let refused = simulate::run(server.channel().await, &default, &short, &[SimPolicy::Posterior]).await;
    assert!(refused.unwrap_err().to_string().contains("shoppers"));
}
