//! Experiments through the real server: created over admin gRPC, applied to rankings, exposed in
//! responses and the feature log, ramped without reassignment, persisted across a restart.

mod common;

use std::collections::HashMap;

use common::{TestServer, attrs, session, target};
use fitrank::featurelog::read_served;
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, Gender};
use tonic::Code;

const USERS: usize = 400;

fn experiment(name: &str, layer: &str, coverage: f64, range: (u32, u32)) -> pb::Experiment {
    pb::Experiment {
        name: name.into(),
        layer: layer.into(),
        coverage,
        range_start: range.0,
        range_end: range.1,
        arms: vec![
            pb::ExperimentArm { name: "control".into(), weight: 1.0, ..Default::default() },
            pb::ExperimentArm {
                name: "fit".into(),
                weight: 1.0,
                model: "default/20261206-090000".into(),
                policy: Some(pb::PolicyOverride { audience_fit_weight: Some(5.0), ..Default::default() }),
            },
        ],
        ..Default::default()
    }
}

async fn create(server: &TestServer, e: pb::Experiment) -> Result<pb::Experiment, tonic::Status> {
    let r = AdminServiceClient::new(server.channel().await)
        .create_experiment(pb::CreateExperimentRequest { experiment: Some(e) })
        .await?;
    Ok(r.into_inner().experiment.unwrap())
}

/// Ranks A and B for every user; returns each user's arm (None = not in the experiment) and the
/// responses.
async fn rank_all(server: &TestServer) -> (HashMap<String, Option<String>>, Vec<pb::RankResponse>) {
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let (mut arms, mut responses) = (HashMap::new(), Vec::new());
    for u in 0..USERS {
        let user_id = format!("user-{u}");
        let r = ranking
            .rank(pb::RankRequest {
                user_id: user_id.clone(),
                user: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
                candidate_session_ids: vec!["A".into(), "B".into()],
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.experiments.len() <= 1);
        arms.insert(user_id, r.experiments.first().map(|e| e.arm.clone()));
        responses.push(r);
    }
    (arms, responses)
}

#[tokio::test]
async fn experiments_assign_apply_ramp_persist_and_stop() {
    let mut server = TestServer::start_with(|c| c.feature_log.flush_interval_ms = 20).await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest {
            sessions: vec![session("A", Some(target(20, 30, &[Gender::Female], &["US"]))), session("B", None)],
        })
        .await
        .unwrap();

    // Bad definitions are refused naming the field; nothing is created.
    let mut bad = experiment("bad", "policy", 0.5, (0, 10_000));
    bad.arms[1].model = "default/19990101-000000".into();
    let err = create(&server, bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("experiment.arms.model"), "{}", err.message());
    let err = create(&server, experiment("bad", "policy", 1.5, (0, 10_000))).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "experiment.coverage: 1.5 is not between 0 and 1"));

    let created = create(&server, experiment("fit-weight", "policy", 0.5, (0, 10_000))).await.unwrap();
    assert_eq!(
        (created.control.as_str(), created.salt.as_str(), created.status.as_str()),
        ("control", "fit-weight", "running")
    );
    let err = create(&server, experiment("same-layer", "policy", 1.0, (9_000, 10_000))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert_eq!(
        create(&server, experiment("fit-weight", "other", 1.0, (0, 10_000))).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    // Half the users are in, split between the arms; each ranking says which arm made it.
    let (arms, responses) = rank_all(&server).await;
    let count = |arm: &str| arms.values().filter(|a| a.as_deref() == Some(arm)).count();
    let (control, fit) = (count("control"), count("fit"));
    assert!((150..250).contains(&(control + fit)), "{} of {USERS} users at 50% coverage", control + fit);
    assert!(control > 50 && fit > 50, "control {control}, fit {fit}");
    // The arm's policy is what scored: score = p_purchase + 0.01 p_engage + 5 fit in "fit", the
    // default policy's weights of the fit and of the earned targeting credit in "control".
    let default = fitrank::policy::Policy::default();
    let default_fit = f64::from(default.audience_fit_weight);
    let on_target = |i: &pb::RankedItem| f64::from(default.on_target_weight) * f64::from(i.targeting_credit);
    let mut inside = 0;
    for r in &responses {
        let w_fit = if r.experiments.first().is_some_and(|e| e.arm == "fit") { 5.0 } else { default_fit };
        for i in &r.items {
            inside += usize::from(i.in_target);
            assert_eq!(i.in_target, i.audience_fit >= 0.5, "every declared dimension is known here");
            let expected = i.p_purchase + 0.01 * i.p_engage + w_fit * i.audience_fit + on_target(i);
            assert!((i.score - expected).abs() < 1e-4, "{} vs {expected}", i.score);
        }
    }
    // The users (25-34, female, US-CA) are inside A's target (20-30, female, US) and B declares none.
    assert_eq!(inside, responses.iter().map(|r| r.items.len()).sum::<usize>());
    // Ranking again changes nobody's arm.
    assert_eq!(rank_all(&server).await.0, arms);

    // Ramping to 100% admits everyone and moves nobody.
    AdminServiceClient::new(server.channel().await)
        .set_experiment_coverage(pb::SetExperimentCoverageRequest { name: "fit-weight".into(), coverage: 1.0 })
        .await
        .unwrap();
    let (ramped, _) = rank_all(&server).await;
    assert!(ramped.values().all(Option::is_some));
    for (user, arm) in &arms {
        if arm.is_some() {
            assert_eq!(&ramped[user], arm, "{user} moved when coverage grew");
        }
    }

    // What this process served for the experiment: its definition and its arms' guardrails.
    let served = AdminServiceClient::new(server.channel().await)
        .get_experiment_status(pb::GetExperimentStatusRequest { name: "fit-weight".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.experiment.unwrap().name, "fit-weight");
    let arms: Vec<&str> = served.guardrails.iter().map(|g| g.arm.as_str()).collect();
    assert_eq!(arms, ["control", "fit"]);
    assert!(served.guardrails.iter().all(|g| g.requests > 0 && g.errors == 0 && g.p99_us >= g.p50_us));
    let missing = AdminServiceClient::new(server.channel().await)
        .get_experiment_status(pb::GetExperimentStatusRequest { name: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // The feature log has the experiment and arm of every ranking.
    let (data_dir, models_dir) = (server.data_dir.clone(), server.models_dir.clone());
    server.stop().await.unwrap();
    let mut logged = HashMap::new();
    read_served(&[data_dir.join("featurelog")], |r| {
        logged.insert(r.ranking_id.clone(), (r.experiment.clone(), r.arm.clone()));
    })
    .unwrap();
    for r in &responses {
        let want = r.experiments.first().map(|e| (e.experiment.clone(), e.arm.clone())).unwrap_or_default();
        assert_eq!(logged[&r.ranking_id], want);
    }

    // A restart on the same data resumes the experiment at 100%, with the same arms.
    let server = TestServer::start_with(|c| {
        c.data_dir = data_dir.clone();
        c.models_dir = models_dir.clone();
    })
    .await;
    let listed = AdminServiceClient::new(server.channel().await)
        .list_experiments(pb::ListExperimentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.experiments.len(), 1);
    assert_eq!(listed.experiments[0].coverage, 1.0);
    assert_eq!(rank_all(&server).await.0, ramped);

    // Stopped: nobody is assigned, the experiment stays listed.
    let stopped = AdminServiceClient::new(server.channel().await)
        .stop_experiment(pb::StopExperimentRequest { name: "fit-weight".into() })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    assert_eq!(stopped.status, "stopped");
    assert!(rank_all(&server).await.0.values().all(Option::is_none));
}

#[tokio::test]
async fn interleaving_merges_both_arms_into_every_ranking() {
    let server = TestServer::start().await;
    let sessions: Vec<pb::LiveSession> = (0..8)
        .map(|i| {
            let t = if i % 2 == 0 {
                Some(target(20, 30, &[Gender::Female], &["US"]))
            } else {
                Some(target(55, 64, &[Gender::Male], &[]))
            };
            session(&format!("S{i}"), t)
        })
        .collect();
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions })
        .await
        .unwrap();
    let mut e = experiment("il", "interleave", 1.0, (0, 10_000));
    e.kind = "interleave".into();
    e.arms[1].model = String::new();
    let created = create(&server, e.clone()).await.unwrap();
    assert_eq!(created.kind, "interleave");
    e.name = "three".into();
    e.layer = "x".into();
    e.arms.push(pb::ExperimentArm { name: "third".into(), weight: 1.0, ..Default::default() });
    let err = create(&server, e).await.unwrap_err();
    assert!(err.message().starts_with("experiment.arms:"), "{}", err.message());

    let mut ranking = RankingServiceClient::new(server.channel().await);
    let mut seen = std::collections::HashSet::new();
    for u in 0..40 {
        let r = ranking
            .rank(pb::RankRequest {
                user_id: format!("u{u}"),
                user: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
                candidate_session_ids: (0..8).map(|i| format!("S{i}")).collect(),
                limit: 6,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.experiments.len(), 1);
        let teams = r.experiments[0].arm.strip_prefix("team-draft:").expect("team-draft exposure");
        assert_eq!(teams.len(), r.items.len());
        assert_eq!(r.items.len(), 6);
        let (a, b) = (teams.matches('a').count(), teams.matches('b').count());
        assert!(a.abs_diff(b) <= 1, "{teams}");
        seen.insert(teams.to_owned());
        // Each item carries the score of the arm that picked it.
        for (item, team) in r.items.iter().zip(teams.chars()) {
            let default = fitrank::policy::Policy::default();
            let (w_fit, w_on) = if team == 'b' {
                (5.0, default.on_target_weight)
            } else {
                (default.audience_fit_weight, default.on_target_weight)
            };
            let on_target = f64::from(w_on) * f64::from(item.targeting_credit);
            let expected = item.p_purchase + 0.01 * item.p_engage + f64::from(w_fit) * item.audience_fit + on_target;
            assert!((item.score - expected).abs() < 1e-4, "{team}: {} vs {expected}", item.score);
        }
        let ids: std::collections::HashSet<_> = r.items.iter().map(|i| i.session_id.as_str()).collect();
        assert_eq!(ids.len(), r.items.len(), "no session twice");
    }
    assert!(seen.len() > 1, "the coin varies between rankings");
}

#[tokio::test]
async fn exploration_places_cold_sessions_and_logs_their_probability() {
    let mut server = TestServer::start_with(|c| {
        c.policy.exploration_share = 0.2;
        c.feature_log.flush_interval_ms = 20;
    })
    .await;
    let sessions: Vec<pb::LiveSession> = (0..30).map(|i| session(&format!("S{i:02}"), None)).collect();
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions })
        .await
        .unwrap();
    let mut ranking = RankingServiceClient::new(server.channel().await);
    for u in 0..100 {
        let r = ranking
            .rank(pb::RankRequest {
                user_id: format!("u{u}"),
                user: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.items.len(), 5);
        let ids: std::collections::HashSet<_> = r.items.iter().map(|i| i.session_id.as_str()).collect();
        assert_eq!(ids.len(), 5);
    }
    let data_dir = server.data_dir.clone();
    server.stop().await.unwrap();
    let (mut explored, mut slots) = (0, 0);
    read_served(&[data_dir.join("featurelog")], |r| {
        // The returned items, then the best unreturned candidates (propensity 0) after them.
        let returned = r.items.iter().take_while(|i| i.propensity > 0.0).count();
        assert_eq!(returned, 5);
        assert!(r.items[returned..].iter().all(|i| i.propensity == 0.0));
        let positions: Vec<u32> = r.items.iter().map(|i| i.position).collect();
        assert_eq!(positions, (0..r.items.len() as u32).collect::<Vec<_>>());
        for item in &r.items[..returned] {
            slots += 1;
            if item.propensity < 0.5 {
                explored += 1;
                // share 0.2 over at most 30 open cold sessions
                assert!(item.propensity >= 0.2 / 30.0 - 1e-6, "{}", item.propensity);
            } else {
                assert!(item.propensity <= 1.0);
            }
        }
    })
    .unwrap();
    assert_eq!(slots, 500);
    assert!((60..=140).contains(&explored), "{explored} of 500 slots explored at share 0.2");
}
