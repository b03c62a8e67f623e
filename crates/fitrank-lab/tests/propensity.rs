//! Logged propensities are the true probabilities of what was shown: a frozen service (no events,
//! no model changes, one fixed request time) serves the same request thousands of times, with
//! exploration and with team-draft interleaving, and each placement's logged probability, given
//! the items placed before it, is compared with how often that placement happened (chi-square).

mod common;

use std::collections::BTreeMap;

use common::{TestServer, attrs, event, session, target};
use fitrank::featurelog::read_served;
use fitrank::proto::v1::{
    self as pb, AgeBand, Gender, admin_service_client::AdminServiceClient,
    catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// Rankings served per test.
const RANKINGS: usize = 3_000;

/// A catalog with warm and cold sessions, in and out of the user's target; returns the ids.
async fn world(server: &TestServer) -> Vec<String> {
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let user =
        |id: &str, age, gender| pb::User { user_id: id.into(), attributes: Some(attrs(age, gender, "US", "en")) };
    let users = vec![user("w", AgeBand::AgeBand2534, Gender::Female), user("m", AgeBand::AgeBand5564, Gender::Male)];
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
    let women = target(20, 30, &[Gender::Female], &["US"]);
    let men = target(55, 64, &[Gender::Male], &[]);
    let sessions = vec![
        session("warm-in", Some(women.clone())),
        session("warm-out", Some(men.clone())),
        session("warm-open", None),
        session("cold-in-1", Some(women.clone())),
        session("cold-in-2", Some(women)),
        session("cold-out", Some(men)),
        session("cold-open", None),
    ];
    let ids = sessions.iter().map(|s| s.session_id.clone()).collect();
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
    // Three warm sessions: past the 200 impressions that make a session cold, with a few views.
    let mut events = Vec::new();
    for s in ["warm-in", "warm-out", "warm-open"] {
        for n in 0..220 {
            events.push(event(&format!("{s}-imp-{n}"), pb::EventType::Impression, "m", s));
        }
        for n in 0..20 {
            events.push(event(&format!("{s}-view-{n}"), pb::EventType::View, "m", s));
        }
    }
    let r = EventServiceClient::new(server.channel().await)
        .ingest_batch(pb::IngestBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    ids
}

/// Serves `RANKINGS` identical requests for user `w`.
async fn serve(server: &TestServer, candidates: &[String]) {
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let time_unix_ms = fitrank::domain::now_ms() - 60_000;
    for _ in 0..RANKINGS {
        let request = pb::RankRequest {
            user_id: "w".into(),
            context: Some(pb::RequestContext { time_unix_ms, surface: pb::Surface::HomeFeed as i32 }),
            candidate_session_ids: candidates.to_vec(),
            limit: 3,
            ..Default::default()
        };
        ranking.rank(request).await.unwrap();
    }
}

/// What happened at one slot after one prefix of placed sessions.
#[derive(Default, Debug)]
struct Slot {
    rankings: u64,
    /// Per session placed there: times, and the propensities logged for it.
    placed: BTreeMap<String, (u64, Vec<f32>)>,
}

/// The logged rankings of user `w`, as placements per (slot, prefix of sessions before it).
fn placements(server: &TestServer, slots: usize) -> BTreeMap<(usize, Vec<String>), Slot> {
    let mut out: BTreeMap<(usize, Vec<String>), Slot> = BTreeMap::new();
    let mut seen = 0;
    read_served(&[server.data_dir.join("featurelog")], |r| {
        if r.user_id != "w" {
            return;
        }
        seen += 1;
        let returned: Vec<_> = r.items.iter().filter(|i| i.propensity > 0.0).collect();
        for slot in 0..slots.min(returned.len()) {
            let prefix = returned[..slot].iter().map(|i| i.session.session_id.clone()).collect();
            let entry = out.entry((slot, prefix)).or_default();
            entry.rankings += 1;
            let item = returned[slot];
            assert_eq!(item.position as usize, slot);
            let cell = entry.placed.entry(item.session.session_id.clone()).or_default();
            cell.0 += 1;
            cell.1.push(item.propensity);
        }
    })
    .unwrap();
    assert_eq!(seen, RANKINGS, "every ranking logged");
    out
}

/// Each session's count and logged propensity at one slot.
fn summary(slot: &Slot) -> String {
    let cells: Vec<String> = slot.placed.iter().map(|(s, (n, p))| format!("{s}: {n} at {}", p[0])).collect();
    format!("{} rankings; {}", slot.rankings, cells.join(", "))
}

/// Checks every placement: one propensity per (slot, prefix, session) on a frozen service, and
/// the chi-square of observed counts against logged probabilities over prefixes with at least 100
/// rankings. Returns (statistic, degrees of freedom, p-value, cells compared).
fn chi_square(placements: &BTreeMap<(usize, Vec<String>), Slot>) -> (f64, f64, f64, usize) {
    let (mut stat, mut df, mut cells) = (0.0, 0.0, 0);
    for ((slot, prefix), s) in placements {
        for (session, (_, logged)) in &s.placed {
            let (lo, hi) = logged.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
            assert!(hi - lo < 1e-5, "slot {slot} after {prefix:?}: {session} logged with {lo} and {hi}");
        }
        if s.rankings < 100 {
            continue;
        }
        let n = s.rankings as f64;
        // Cells with an expected count of 5 or more; the rest (and outcomes never seen) pooled.
        let (mut rest_observed, mut rest_expected, mut k) = (n, n, 0);
        for (count, logged) in s.placed.values() {
            let expected = n * f64::from(logged[0]);
            if expected >= 5.0 {
                stat += (*count as f64 - expected).powi(2) / expected;
                rest_observed -= *count as f64;
                rest_expected -= expected;
                k += 1;
            }
        }
        if rest_expected >= 5.0 {
            stat += (rest_observed - rest_expected).powi(2) / rest_expected;
            k += 1;
        } else {
            assert!(rest_observed <= 10.0, "slot {slot} after {prefix:?}: {rest_observed} placements unaccounted for");
        }
        if k > 1 {
            df += (k - 1) as f64;
            cells += k;
        }
    }
    assert!(df >= 3.0, "too few placements to compare ({df} degrees of freedom)");
    let p = fitrank::experiment::stats::chi_square_sf(stat, df);
    (stat, df, p, cells)
}

/// Serves rankings on a frozen service with `policy` applied and checks that each placement
/// happens as often as its logged probability.
async fn explored_placements_match_their_logged_probability(
    label: &str,
    policy: impl Fn(&mut fitrank::policy::Policy),
) {
    let mut server = TestServer::start_with(|c| {
        policy(&mut c.policy);
        c.model_poll_ms = 0;
        c.feature_log.flush_interval_ms = 20;
        c.feature_log.unreturned_candidates = 0;
    })
    .await;
    let ids = world(&server).await;
    serve(&server, &ids).await;
    server.stop().await.unwrap();
    let placements = placements(&server, 3);
    // Exploration happened: more than one session was placed first.
    assert!(placements[&(0, vec![])].placed.len() >= 2, "{}", summary(&placements[&(0, vec![])]));
    for ((slot, prefix), s) in placements.iter().filter(|(_, s)| s.rankings >= 100) {
        eprintln!("{label}, slot {slot} after {prefix:?}: {}", summary(s));
    }
    let (stat, df, p, cells) = chi_square(&placements);
    eprintln!("{label}: chi-square {stat:.1} on {df} degrees of freedom over {cells} cells, p = {p:.3}");
    // p > 0.01 is the goal; the assertion leaves room for chance (a correct service fails it in
    // 1 run of 1,000).
    assert!(p > 0.001, "logged propensities do not match observed frequencies: chi-square {stat:.1}, df {df}, p {p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explored_placements_happen_as_often_as_their_logged_probability() {
    explored_placements_match_their_logged_probability("exploration", |p| p.exploration_share = 0.2).await;
}

/// Cold sessions drawn partly evenly, and other slots drawn from the head of the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_uniform_draws_happen_as_often_as_their_logged_probability() {
    explored_placements_match_their_logged_probability("head and uniform draws", |p| {
        p.exploration_share = 0.2;
        p.exploration_uniform_share = 0.3;
        p.exploration_head_share = 0.3;
        p.exploration_head_size = 3;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_placements_happen_as_often_as_their_logged_probability() {
    let mut server = TestServer::start_with(|c| {
        c.model_poll_ms = 0;
        c.feature_log.flush_interval_ms = 20;
        c.feature_log.unreturned_candidates = 0;
    })
    .await;
    let ids = world(&server).await;
    // Two arms that order differently: the model alone, and the declared audience alone.
    let arm = |name: &str, policy: pb::PolicyOverride| pb::ExperimentArm {
        name: name.into(),
        weight: 1.0,
        policy: Some(policy),
        ..Default::default()
    };
    let experiment = pb::Experiment {
        name: "draft".into(),
        layer: "ranking".into(),
        coverage: 1.0,
        kind: "interleave".into(),
        arms: vec![
            arm("model", pb::PolicyOverride::default()),
            arm(
                "audience",
                pb::PolicyOverride {
                    purchase_weight: Some(0.0),
                    engage_weight: Some(0.0),
                    audience_fit_weight: Some(1.0),
                    ..Default::default()
                },
            ),
        ],
        ..Default::default()
    };
    AdminServiceClient::new(server.channel().await)
        .create_experiment(pb::CreateExperimentRequest { experiment: Some(experiment) })
        .await
        .unwrap();
    serve(&server, &ids).await;
    server.stop().await.unwrap();
    let placements = placements(&server, 3);
    assert!(
        placements[&(0, vec![])].placed.len() >= 2,
        "the coin decides the first item: {}",
        summary(&placements[&(0, vec![])])
    );
    for ((slot, prefix), s) in placements.iter().filter(|(_, s)| s.rankings >= 100) {
        eprintln!("interleaving, slot {slot} after {prefix:?}: {}", summary(s));
    }
    let (stat, df, p, cells) = chi_square(&placements);
    eprintln!("interleaving: chi-square {stat:.1} on {df} degrees of freedom over {cells} cells, p = {p:.3}");
    assert!(p > 0.001, "logged propensities do not match observed frequencies: chi-square {stat:.1}, df {df}, p {p}");
}
