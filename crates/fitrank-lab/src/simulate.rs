//! A live-commerce simulator: the generator's world (users, live sessions, hidden truth) driving
//! a running fitrank **only through its gRPC API**, in simulated time.
//!
//! Time. A simulated clock starts at [`SimOptions::start_ms`] (by default four hours into the
//! world's day) and advances by 1 / [`SimOptions::rate`] seconds per feed request. Every `Rank`
//! call carries the clock as its context time and every event as its own time, so the service's
//! windowed statistics, minutes-live and hour-of-day features and the users' decaying activity
//! see the world's time, whatever the speed of the machine running it; the world's sessions go
//! live (`UpsertSessions`) and end (`EndSession`) as the clock reaches their start and end times.
//! The same seeds give the same calls, so a run is reproducible.
//!
//! Setup upserts the world's users and the sessions live at the start. Each simulated feed
//! request picks a user, calls `Rank` on the live catalog, and plays the user's behaviour on the
//! returned slots under the hidden truth: slot `p` is looked at with probability 1 / (1 + p)
//! (time-poor shoppers), a looked-at slot is an impression, viewed with the truth's P(view),
//! bought with P(buy | view). The events go back through `IngestBatch`, so live statistics, the
//! feature log and experiments see them as they would see a real feed service.
//!
//! Requests go round-robin to ranking policies: fitrank (the service's `Rank`), and baselines the
//! simulator orders itself over the same eligible live sessions — random, popularity (views in
//! the last 500 requests) and the oracle (true expected purchases). Baseline events carry ranking
//! ids the service never issued, so they update live statistics but the export's join counts
//! them as unknown instead of attributing them to fitrank's rankings.
//!
//! The scorecard, per policy and per experiment arm, per 1,000 impressions: purchases, net
//! purchases after returns, views; the on-target share of impressions (of sessions that declared
//! a target); wasted exposure (views by off-target users that did not buy); and NDCG@slots of the
//! shown order against the truth's expected purchases.
//!
//! Cold start: a fresh service keeps nothing about hosts, so every session going live during the
//! run is a new host's session to it. Per policy, for those whose first
//! [`SimOptions::cold_minutes`] fit in the run: impressions through the policy's placements in
//! that window, how many sold in it, and the simulated minutes from going live to their first
//! purchase through that policy. Many new sessions do not sell in the window, so that time is
//! censored; the scorecard gives the restricted mean (unsold sessions counted at the horizon,
//! which bounds it and so understates differences) and the censored-data estimate of the mean
//! under a constant first-purchase rate: minutes at risk (each session's time to its first
//! purchase, or to the end of its window) divided by the first purchases — the standard
//! maximum-likelihood estimate for right-censored waiting times — and the median (the time by
//! which half the new sessions had sold; beyond the horizon when fewer than half did, which makes
//! "at least horizon / median as fast" a safe comparison).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tonic::transport::Channel;

use crate::posterior::{Outcome, Posterior};
use crate::train::generator::{DAY_START_MS, HOUR, World};
use crate::worlds::Declaration;
use fitrank::domain::{LiveSession, SEGMENTS, UserProfile, segment};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Feed requests to simulate.
    pub requests: usize,
    /// Slots shown per request.
    pub slots: u32,
    /// Seed of the users' behaviour (the world has its own).
    pub seed: u64,
    /// Simulated time of the first request, ms since the Unix epoch (see [`default_start_ms`]).
    pub start_ms: i64,
    /// Feed requests per simulated second: the simulated clock advances 1 / rate per request.
    pub rate: f64,
    /// Cold start is scored over each new session's first this many simulated minutes.
    pub cold_minutes: u32,
    /// Added to the true expected purchases of a session whose declared target contains the
    /// user when the oracle orders them: 0 is the unconstrained upper bound; a positive weight
    /// gives the best purchases any policy can reach at the oracle's (higher) on-target share.
    pub oracle_on_target_weight: f64,
    /// Where the posterior oracle's state is read from at the start (when the file exists) and
    /// written to at the end, so that it continues across runs as the service's store does.
    pub posterior_state: Option<std::path::PathBuf>,
}

impl SimOptions {
    /// `requests` requests of `slots` slots with behaviour seed `seed`, from [`default_start_ms`]
    /// at [`DEFAULT_RATE`], cold start over the first [`DEFAULT_COLD_MINUTES`].
    pub fn new(requests: usize, slots: u32, seed: u64) -> Self {
        SimOptions {
            requests,
            slots,
            seed,
            start_ms: default_start_ms(),
            rate: DEFAULT_RATE,
            cold_minutes: DEFAULT_COLD_MINUTES,
            oracle_on_target_weight: 0.0,
            posterior_state: None,
        }
    }

    /// Simulated time of request `n`.
    pub fn time_of(&self, n: usize) -> i64 {
        self.start_ms + (n as f64 * 1000.0 / self.rate).round() as i64
    }

    /// Simulated time just after the last request.
    pub fn end_ms(&self) -> i64 {
        self.time_of(self.requests)
    }
}

/// Default feed requests per simulated second. With about 2.3 impressions per request and 75
/// sessions live at a time, the default world's sessions then see about 330 impressions per live
/// hour, the density of the generated rows the shipped model was trained on (480,000 impressions
/// over 600 sessions of 2.5 hours on average).
pub const DEFAULT_RATE: f64 = 3.0;
/// Default length of the cold-start window, in simulated minutes.
pub const DEFAULT_COLD_MINUTES: u32 = 60;

/// Default start of the simulated clock, in hours into the world's day: when the sessions live at
/// a time (started in the first 20 hours, running one to four) have reached their steady number.
pub const DEFAULT_START_HOUR: f64 = 4.0;

/// The simulated time `hour` hours into the world's day.
pub fn world_time_ms(hour: f64) -> i64 {
    DAY_START_MS + (hour * HOUR as f64).round() as i64
}

/// Default start of the simulated clock: [`DEFAULT_START_HOUR`] into the world's day.
pub fn default_start_ms() -> i64 {
    world_time_ms(DEFAULT_START_HOUR)
}

/// The chance that the user looks at position `p` of a feed (position bias: the top always).
fn seen(p: usize) -> f64 {
    1.0 / (1.0 + p as f64)
}

/// Whether `session` is live at simulated time `t`.
fn live_at(session: &LiveSession, t: i64) -> bool {
    session.start_time_ms <= t && t < session.end_time_ms
}

/// Totals of one policy or experiment arm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmScore {
    pub rankings: u64,
    pub impressions: u64,
    pub views: u64,
    pub purchases: u64,
    pub returns: u64,
    /// Impressions of sessions that declared a target audience / of those, to users inside it.
    pub targeted_impressions: u64,
    pub on_target_impressions: u64,
    /// Views by users outside the session's declared target that did not buy.
    pub wasted_views: u64,
    /// Impressions to users inside the session's *true* audience (the top quarter, by true
    /// expected purchases of that session, of the users it can be offered to), and impressions whose true expected
    /// purchase was below [`WASTED_BELOW`].
    pub true_audience_impressions: u64,
    pub wasted_impressions: u64,
    /// Sum of the true expected purchases of the impressions (less noisy than the draws).
    pub expected_purchases: f64,
    /// Per position of the shown order: the sum over rankings of the true expected purchases at
    /// that position (the chance the user sees it, 1 / (1 + position), times the pair's expected
    /// purchase), whether or not the draw showed it; and at the top, the sum of their squares.
    /// The truth an off-policy estimate of this policy is judged against, without the outcome
    /// draws' noise.
    #[serde(skip)]
    expected_at_position_sums: Vec<f64>,
    #[serde(skip)]
    expected_top_squares: f64,
    /// By the kind of declaration of the session shown.
    pub by_declaration: BTreeMap<Declaration, DeclarationScore>,
    #[serde(skip)]
    ndcg_sum: f64,
    #[serde(skip)]
    ndcg_requests: u64,
    pub purchases_per_1000_impressions: f64,
    pub net_purchases_per_1000_impressions: f64,
    pub views_per_1000_impressions: f64,
    pub on_target_share: f64,
    pub wasted_views_per_1000_impressions: f64,
    /// Mean NDCG@slots of the shown order against the truth's expected purchases.
    pub ndcg: f64,
    pub true_audience_share: f64,
    pub wasted_impression_share: f64,
    pub expected_purchases_per_1000_impressions: f64,
    /// Per position, the true expected purchases there per ranking (position 0 is the top slot).
    pub expected_purchases_per_ranking_at_position: Vec<f64>,
    /// The standard error of the top slot's mean over these rankings.
    pub expected_top_purchases_standard_error: f64,
}

/// Impressions of sessions with one kind of declaration, under one policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeclarationScore {
    pub impressions: u64,
    pub expected_purchases: f64,
    /// Their share of all the policy's impressions.
    pub exposure_share: f64,
    /// True expected purchases per 1,000 of their impressions.
    pub expected_purchases_per_1000_impressions: f64,
}

/// An impression whose true expected purchase is below this is wasted exposure.
pub const WASTED_BELOW: f64 = 0.001;

impl ArmScore {
    fn add(&mut self, t: &ArmScore) {
        self.rankings += t.rankings;
        self.impressions += t.impressions;
        self.views += t.views;
        self.purchases += t.purchases;
        self.returns += t.returns;
        self.targeted_impressions += t.targeted_impressions;
        self.on_target_impressions += t.on_target_impressions;
        self.wasted_views += t.wasted_views;
        self.true_audience_impressions += t.true_audience_impressions;
        self.wasted_impressions += t.wasted_impressions;
        self.expected_purchases += t.expected_purchases;
        for (kind, d) in &t.by_declaration {
            let mine = self.by_declaration.entry(*kind).or_default();
            mine.impressions += d.impressions;
            mine.expected_purchases += d.expected_purchases;
        }
        self.ndcg_sum += t.ndcg_sum;
        self.ndcg_requests += t.ndcg_requests;
        if self.expected_at_position_sums.len() < t.expected_at_position_sums.len() {
            self.expected_at_position_sums.resize(t.expected_at_position_sums.len(), 0.0);
        }
        for (mine, theirs) in self.expected_at_position_sums.iter_mut().zip(&t.expected_at_position_sums) {
            *mine += theirs;
        }
        self.expected_top_squares += t.expected_top_squares;
    }

    fn finish(&mut self) {
        let per_1000 = |x: u64| 1000.0 * x as f64 / self.impressions.max(1) as f64;
        self.purchases_per_1000_impressions = per_1000(self.purchases);
        self.net_purchases_per_1000_impressions = per_1000(self.purchases - self.returns);
        self.views_per_1000_impressions = per_1000(self.views);
        self.wasted_views_per_1000_impressions = per_1000(self.wasted_views);
        self.on_target_share = self.on_target_impressions as f64 / self.targeted_impressions.max(1) as f64;
        self.ndcg = self.ndcg_sum / self.ndcg_requests.max(1) as f64;
        let impressions = self.impressions.max(1) as f64;
        self.true_audience_share = self.true_audience_impressions as f64 / impressions;
        self.wasted_impression_share = self.wasted_impressions as f64 / impressions;
        self.expected_purchases_per_1000_impressions = 1000.0 * self.expected_purchases / impressions;
        let rankings = self.rankings.max(1) as f64;
        self.expected_purchases_per_ranking_at_position =
            self.expected_at_position_sums.iter().map(|sum| sum / rankings).collect();
        let top = self.expected_purchases_per_ranking_at_position.first().copied().unwrap_or(0.0);
        let variance = (self.expected_top_squares / rankings - top * top).max(0.0);
        self.expected_top_purchases_standard_error = (variance / rankings).sqrt();
        for d in self.by_declaration.values_mut() {
            d.exposure_share = d.impressions as f64 / impressions;
            d.expected_purchases_per_1000_impressions = 1000.0 * d.expected_purchases / d.impressions.max(1) as f64;
        }
    }
}

/// What a simulation measured, by policy and "policy experiment/arm".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scorecard {
    pub requests: u64,
    /// Simulated time of the first request and just after the last, ms since the Unix epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub arms: BTreeMap<String, ArmScore>,
    /// Per policy: how the sessions that went live during the run fared in their first minutes.
    pub cold_start: BTreeMap<String, ColdStart>,
    /// The highest on-target share any policy that fills every slot could expect on these
    /// requests: per request, the user's on-target candidates first, then those without a
    /// declared target, off-target ones last (see [`TargetSupply::ceiling`]). When it is below a
    /// goal, the world's supply of on-target sessions limits the share, whatever the ranking.
    pub on_target_ceiling: f64,
    #[serde(skip)]
    ceiling_sums: (f64, f64),
}

/// How many of one request's candidates have the user inside their declared target, declare no
/// target, or declare one the user is outside of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TargetSupply {
    pub inside: usize,
    pub undeclared: usize,
    pub outside: usize,
}

impl TargetSupply {
    /// Expected (on-target impressions, impressions of sessions with a declared target) when
    /// `slots` slots are filled inside-first, undeclared next and outside last, and slot `p` is
    /// looked at with probability 1/(1+p) as in [`run`].
    pub fn ceiling(&self, slots: usize) -> (f64, f64) {
        let shown = slots.min(self.inside + self.undeclared + self.outside);
        let inside = self.inside.min(shown);
        let on: f64 = (0..inside).map(seen).sum();
        let outside: f64 = ((self.inside + self.undeclared).min(shown)..shown).map(seen).sum();
        (on, on + outside)
    }
}

/// Cold start under one policy: the sessions that went live during the run (a fresh service
/// knows nothing of their hosts), over their first `horizon_minutes` of simulated time.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub new_sessions: usize,
    /// New sessions that sold at least once through this policy's placements in the window.
    pub with_a_purchase: usize,
    /// Impressions per new session through this policy in the window.
    pub impressions_per_new_session: f64,
    /// Mean over new sessions of the simulated minutes from going live to the first purchase
    /// through this policy, sessions without one counted at `horizon_minutes` (a restricted mean:
    /// lower is faster).
    pub mean_minutes_to_first_purchase: f64,
    /// Sum over new sessions of the minutes from going live to the first purchase through this
    /// policy, or to the end of the window for those without one.
    pub minutes_at_risk: f64,
    /// `minutes_at_risk / with_a_purchase`: the maximum-likelihood mean time to a first purchase
    /// for censored waiting times at a constant rate; `None` when no new session sold.
    pub estimated_mean_minutes_to_first_purchase: Option<f64>,
    /// Median minutes to the first purchase (the Kaplan–Meier median: every censoring is at the
    /// horizon, so it is the time by which half the new sessions had sold); `None` when fewer than
    /// half sold, i.e. the median is beyond the horizon.
    pub median_minutes_to_first_purchase: Option<f64>,
    /// Length of the window: the first this many minutes of each new session.
    pub horizon_minutes: f64,
}

impl ColdStart {
    /// Summarises the new sessions' (impressions, minutes from going live to the first purchase,
    /// if any before `horizon`).
    pub fn of(sessions: &[(u64, Option<f64>)], horizon: f64) -> ColdStart {
        let n = sessions.len();
        let mut sold: Vec<f64> = sessions.iter().filter_map(|(_, first)| *first).collect();
        sold.sort_unstable_by(f64::total_cmp);
        let at_risk: f64 = sessions.iter().map(|(_, first)| first.unwrap_or(horizon)).sum();
        let impressions: u64 = sessions.iter().map(|(i, _)| *i).sum();
        ColdStart {
            new_sessions: n,
            with_a_purchase: sold.len(),
            impressions_per_new_session: impressions as f64 / n.max(1) as f64,
            mean_minutes_to_first_purchase: at_risk / n.max(1) as f64,
            minutes_at_risk: at_risk,
            estimated_mean_minutes_to_first_purchase: (!sold.is_empty()).then(|| at_risk / sold.len() as f64),
            // The ceil(n/2)-th first purchase: survival drops to one half there.
            median_minutes_to_first_purchase: sold.get(n.div_ceil(2).max(1) - 1).copied(),
            horizon_minutes: horizon,
        }
    }
}

type SimResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Upserts the world's users and the sessions live at simulated time `at_ms` ([`run`] starts and
/// ends the others as its clock reaches their start and end times).
pub async fn setup(channel: Channel, world: &World, at_ms: i64) -> SimResult<()> {
    let mut catalog = CatalogServiceClient::new(channel);
    for (k, chunk) in world.users.chunks(500).enumerate() {
        let users = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| pb::User {
                user_id: format!("sim-u{}", k * 500 + i),
                attributes: Some(pb::UserAttributes {
                    age_band: pb::AgeBand::from(u.age_band) as i32,
                    gender: pb::Gender::from(u.gender) as i32,
                    region: u.region.to_string(),
                    language: u.language.to_string(),
                    interests: u.interests.clone(),
                }),
            })
            .collect();
        catalog.upsert_users(pb::UpsertUsersRequest { users }).await?;
    }
    let early: Vec<pb::LiveSession> =
        world.sessions.iter().filter(|s| live_at(s, at_ms)).map(pb::LiveSession::from).collect();
    for chunk in early.chunks(500) {
        catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: chunk.to_vec() }).await?;
    }
    Ok(())
}

/// Who orders the slots of a simulated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimPolicy {
    /// The service's `Rank` (its model, policy and any experiment arm).
    Fitrank,
    /// A shuffle of the eligible live sessions.
    Random,
    /// Most views in the last 500 requests first (what platforms do today).
    Popularity,
    /// Highest true expected purchases first: the upper bound.
    Oracle,
    /// Highest true expected purchases averaged over the world's users of the same age band ×
    /// gender first: the best any ranker can do that sees only those two demographics.
    Demographic,
    /// Highest posterior mean of the true expected purchases first, given everything each user
    /// did so far: a bound on what any learner can do from the same traffic (`shoppers` worlds
    /// only; see [`crate::posterior`]).
    Posterior,
}

impl SimPolicy {
    /// The policy's name in the scorecard.
    pub fn name(self) -> &'static str {
        match self {
            SimPolicy::Fitrank => "fitrank",
            SimPolicy::Random => "random",
            SimPolicy::Popularity => "popularity",
            SimPolicy::Oracle => "oracle",
            SimPolicy::Demographic => "demographic-oracle",
            SimPolicy::Posterior => "posterior-oracle",
        }
    }
}

/// Whether the service's live catalog offers `session` to `user`: its language and region filter.
fn offered(user: &UserProfile, session: &LiveSession) -> bool {
    (user.language.is_empty() || session.language.eq_ignore_ascii_case(&user.language))
        && (user.region.is_empty() || fitrank::domain::audience::region_contains(&session.region, &user.region))
}

/// Sessions the service's live catalog would offer `user` now.
fn eligible(world: &World, user: usize, live: &[bool]) -> Vec<usize> {
    let u = &world.users[user];
    (0..world.sessions.len()).filter(|&s| live[s] && offered(u, &world.sessions[s])).collect()
}

/// The oracle's order of `candidates`: by true expected purchases `ev`, plus `on_target_weight`
/// for those the user is inside of (`inside`, in the candidates' order); ties keep their order.
fn oracle_order(candidates: &[usize], inside: &[bool], ev: impl Fn(usize) -> f64, on_target_weight: f64) -> Vec<usize> {
    let bonus = |on: bool| if on { on_target_weight } else { 0.0 };
    let mut keyed: Vec<(f64, usize)> = candidates.iter().zip(inside).map(|(&s, &on)| (ev(s) + bonus(on), s)).collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, s)| s).collect()
}

/// What the truth says of each session's audience, computed once per run over the world's users
/// (at the run's start: drifting tastes change who is in a quarter, not its statistics).
struct TrueAudiences {
    /// Per session: the true expected purchase at the top quarter of the users it can be offered to.
    threshold: Vec<f64>,
    /// Per session and age band × gender: the mean true expected purchase of those users it can be
    /// offered to.
    by_segment: Vec<[f64; SEGMENTS]>,
}

impl TrueAudiences {
    fn of(world: &World, at_ms: i64) -> TrueAudiences {
        let segments: Vec<usize> = world.users.iter().map(segment).collect();
        let (mut threshold, mut by_segment) = (Vec::new(), Vec::new());
        for s in 0..world.sessions.len() {
            let (mut sums, mut counts) = ([0.0; SEGMENTS], [0u32; SEGMENTS]);
            let mut values = Vec::new();
            for (u, &g) in segments.iter().enumerate() {
                if offered(&world.users[u], &world.sessions[s]) {
                    let v = world.expected_purchase(s, u, at_ms);
                    sums[g] += v;
                    counts[g] += 1;
                    values.push(v);
                }
            }
            by_segment.push(std::array::from_fn(|g| sums[g] / f64::from(counts[g].max(1))));
            let (n, quarter) = (values.len(), values.len() * 3 / 4);
            threshold.push(if n == 0 {
                f64::INFINITY
            } else {
                *values.select_nth_unstable_by(quarter.min(n - 1), f64::total_cmp).1
            });
        }
        TrueAudiences { threshold, by_segment }
    }
}
/// Requests over which popularity counts views.
const POPULARITY_WINDOW: usize = 500;

/// Simulates `options.requests` feed requests, round-robin over `policies`, against the service
/// behind `channel`, in simulated time: request `n` happens at [`SimOptions::time_of`]`(n)`, which
/// it sends as the request's context time and as the time of the events it causes. Sessions go
/// live (upsert) and end (`EndSession`) as the clock reaches their start and end times; those live
/// at the first request are expected to be stored already ([`setup`]).
pub async fn run(
    channel: Channel,
    world: &World,
    options: &SimOptions,
    policies: &[SimPolicy],
) -> SimResult<Scorecard> {
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return Err(format!("rate must be a positive number of requests per second, got {}", options.rate).into());
    }
    if !(options.oracle_on_target_weight.is_finite() && options.oracle_on_target_weight >= 0.0) {
        return Err(format!(
            "the oracle's on-target weight must be a finite number >= 0, got {}",
            options.oracle_on_target_weight
        )
        .into());
    }
    let audiences = TrueAudiences::of(world, options.start_ms);
    let mut posterior = match &options.posterior_state {
        Some(path) if path.exists() => Some(Posterior::load(world, path)?),
        Some(_) => Some(Posterior::new(world)?),
        None if policies.contains(&SimPolicy::Posterior) => Some(Posterior::new(world)?),
        None => None,
    };
    let index: std::collections::HashMap<&str, usize> =
        world.sessions.iter().enumerate().map(|(i, s)| (s.session_id.as_str(), i)).collect();
    let mut ranking = RankingServiceClient::new(channel.clone());
    let mut catalog = CatalogServiceClient::new(channel.clone());
    let mut events_client = EventServiceClient::new(channel);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (start_ms, end_ms) = (options.start_ms, options.end_ms());
    let mut card = Scorecard { start_ms, end_ms, ..Scorecard::default() };
    let mut next_event = 0u64;
    let mut recent_views: std::collections::VecDeque<Vec<usize>> = std::collections::VecDeque::new();
    let mut popularity = vec![0u32; world.sessions.len()];
    let sessions = &world.sessions;
    let mut live: Vec<bool> = sessions.iter().map(|s| live_at(s, start_ms)).collect();
    // Sessions still to start, and live ones still to end, in time order (popped from the back).
    let mut to_start: Vec<usize> = (0..sessions.len()).filter(|&i| sessions[i].start_time_ms > start_ms).collect();
    to_start.sort_by_key(|&i| std::cmp::Reverse(sessions[i].start_time_ms));
    let mut to_end: Vec<usize> = (0..sessions.len()).filter(|&i| sessions[i].end_time_ms > start_ms).collect();
    to_end.sort_by_key(|&i| std::cmp::Reverse(sessions[i].end_time_ms));
    // Cold start is scored on the sessions going live during the run whose whole window fits in it.
    let window_ms = i64::from(options.cold_minutes) * 60_000;
    let scored = |s: usize| sessions[s].start_time_ms > start_ms && sessions[s].start_time_ms + window_ms <= end_ms;
    // Per policy name: per session, (impressions in its window, minutes to its first purchase).
    let mut cold: BTreeMap<String, Vec<(u64, Option<f64>)>> =
        policies.iter().map(|p| (p.name().to_owned(), vec![(0, None); sessions.len()])).collect();
    let surfaces = [pb::Surface::HomeFeed, pb::Surface::Search, pb::Surface::Following, pb::Surface::Notification];
    let progress = crate::progress::bar(options.requests as u64, "requests");
    for n in 0..options.requests {
        progress.inc(1);
        let now = options.time_of(n);
        let mut starting = Vec::new();
        while to_start.last().is_some_and(|&i| sessions[i].start_time_ms <= now) {
            let i = to_start.pop().expect("checked");
            if sessions[i].end_time_ms > now {
                starting.push(pb::LiveSession::from(&sessions[i]));
                live[i] = true;
            }
        }
        if !starting.is_empty() {
            catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: starting }).await?;
        }
        while to_end.last().is_some_and(|&i| sessions[i].end_time_ms <= now) {
            let i = to_end.pop().expect("checked");
            if std::mem::take(&mut live[i]) {
                let request = pb::EndSessionRequest {
                    session_id: sessions[i].session_id.clone(),
                    end_time_unix_ms: sessions[i].end_time_ms,
                };
                match catalog.end_session(request).await {
                    // A session the store never had (a run without setup) has nothing to end.
                    Err(status) if status.code() != tonic::Code::NotFound => return Err(status.into()),
                    _ => {}
                }
            }
        }

        let policy = policies[n % policies.len()];
        let user = rng.gen_range(0..world.users.len());
        let user_id = format!("sim-u{user}");
        let slots = options.slots as usize;
        let surface = surfaces[rng.gen_range(0..surfaces.len())];
        let candidates = eligible(world, user, &live);
        // Per candidate (in `candidates`' order): whether the user is inside its declared target.
        let mut inside = Vec::with_capacity(candidates.len());
        let mut supply = TargetSupply::default();
        for &s in &candidates {
            let fit = fitrank::domain::audience::fit(&world.users[user], &sessions[s].target);
            let on = fit.in_target() == Some(true);
            inside.push(on);
            match (fit.declared > 0, on) {
                (false, _) => supply.undeclared += 1,
                (true, true) => supply.inside += 1,
                (true, false) => supply.outside += 1,
            }
        }
        let (on, targeted) = supply.ceiling(options.slots as usize);
        card.ceiling_sums.0 += on;
        card.ceiling_sums.1 += targeted;
        let ev = |s: usize| {
            let (v, b) = world.probs(s, user, now);
            f64::from(v) * f64::from(b)
        };
        let (ranking_id, order, keys): (String, Vec<usize>, Vec<String>) = match policy {
            SimPolicy::Fitrank => {
                let context = pb::RequestContext { time_unix_ms: now, surface: surface as i32 };
                let request = pb::RankRequest {
                    user_id: user_id.clone(),
                    limit: options.slots,
                    context: Some(context),
                    ..Default::default()
                };
                let r = ranking.rank(request).await?.into_inner();
                let mut keys = vec![policy.name().to_owned()];
                keys.extend(
                    r.experiments
                        .iter()
                        .map(|e| format!("fitrank {}/{}", e.experiment, fitrank::experiment::arm_group(&e.arm))),
                );
                let order = r.items.iter().filter_map(|i| index.get(i.session_id.as_str()).copied()).collect();
                (r.ranking_id, order, keys)
            }
            other => {
                let mut order = candidates.clone();
                match other {
                    SimPolicy::Random => rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng),
                    SimPolicy::Popularity => order.sort_by_key(|s| std::cmp::Reverse(popularity[*s])),
                    SimPolicy::Demographic => {
                        let g = segment(&world.users[user]);
                        order = oracle_order(&candidates, &inside, |s| audiences.by_segment[s][g], 0.0);
                    }
                    SimPolicy::Posterior => {
                        let expected = posterior.as_ref().expect("built for this arm").expected(user, &candidates);
                        let mean = |s: usize| expected[candidates.iter().position(|c| *c == s).expect("a candidate")];
                        order = oracle_order(&candidates, &inside, mean, 0.0);
                    }
                    _ => order = oracle_order(&candidates, &inside, ev, options.oracle_on_target_weight),
                }
                order.truncate(slots);
                // The simulated feed reports what it showed like any feed service, with an id of
                // the service's form (events must name one; see fitrank::ranking::id).
                (fitrank::ranking::new_ranking_id(), order, vec![other.name().to_owned()])
            }
        };
        card.requests += 1;
        let mut tally = ArmScore { rankings: 1, ..Default::default() };
        // NDCG@slots of the shown order against the truth's expected purchases over the candidates.
        let mut ideal: Vec<f64> = candidates.iter().map(|s| ev(*s)).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let dcg = |gains: &mut dyn Iterator<Item = f64>| {
            gains.enumerate().map(|(p, g)| g / (p as f64 + 2.0).log2()).sum::<f64>()
        };
        let idcg = dcg(&mut ideal.iter().take(slots).copied());
        if idcg > 0.0 {
            tally.ndcg_sum = dcg(&mut order.iter().map(|s| ev(*s))) / idcg;
            tally.ndcg_requests = 1;
        }
        tally.expected_at_position_sums = order.iter().enumerate().map(|(p, s)| ev(*s) * seen(p)).collect();
        tally.expected_top_squares = order.first().map_or(0.0, |s| ev(*s) * ev(*s));
        let mut events = Vec::new();
        let mut viewed_now = Vec::new();
        for (p, &s) in order.iter().enumerate() {
            if !rng.gen_bool(seen(p)) {
                continue;
            }
            let session = &sessions[s];
            let (p_view, p_buy) = world.probs(s, user, now);
            let fit = fitrank::domain::audience::fit(&world.users[user], &session.target);
            let in_target = fit.in_target();
            let event = |kind: pb::EventType, amount: f64, next_event: &mut u64| {
                *next_event += 1;
                pb::Event {
                    event_id: format!("sim-{}-{}", options.seed, *next_event),
                    r#type: kind as i32,
                    user_id: user_id.clone(),
                    session_id: session.session_id.clone(),
                    ranking_id: ranking_id.clone(),
                    position: p as u32,
                    amount,
                    time_unix_ms: now,
                    ..Default::default()
                }
            };
            tally.impressions += 1;
            let expected = f64::from(p_view) * f64::from(p_buy);
            tally.expected_purchases += expected;
            tally.true_audience_impressions += u64::from(expected >= audiences.threshold[s]);
            tally.wasted_impressions += u64::from(expected < WASTED_BELOW);
            let by_kind = tally.by_declaration.entry(world.declarations[s]).or_default();
            by_kind.impressions += 1;
            by_kind.expected_purchases += expected;
            let in_window = scored(s) && now < session.start_time_ms + window_ms;
            if in_window {
                cold.get_mut(&keys[0]).expect("one entry per policy")[s].0 += 1;
            }
            let declared = fit.declared > 0;
            if declared {
                tally.targeted_impressions += 1;
                tally.on_target_impressions += u64::from(in_target == Some(true));
            }
            events.push(event(pb::EventType::Impression, 0.0, &mut next_event));
            let mut outcome = Outcome { viewed: false, bought: false, returned: false };
            if rng.gen_bool(f64::from(p_view)) {
                outcome.viewed = true;
                tally.views += 1;
                viewed_now.push(s);
                events.push(event(pb::EventType::View, 0.0, &mut next_event));
                let bought = rng.gen_bool(f64::from(p_buy));
                outcome.bought = bought;
                if bought {
                    tally.purchases += 1;
                    if in_window {
                        let minutes = (now - session.start_time_ms) as f64 / 60_000.0;
                        let entry = cold.get_mut(&keys[0]).expect("one entry per policy");
                        entry[s].1.get_or_insert(minutes);
                    }
                    // The purchase's order, which a return names.
                    let purchase = event(pb::EventType::Purchase, 25.0, &mut next_event);
                    let order_id = format!("order-{}", purchase.event_id);
                    events.push(pb::Event { order_id: order_id.clone(), ..purchase });
                    if rng.gen_bool(world.return_rate(user)) {
                        outcome.returned = true;
                        tally.returns += 1;
                        events.push(pb::Event { order_id, ..event(pb::EventType::Return, 25.0, &mut next_event) });
                    }
                } else if declared && in_target == Some(false) {
                    tally.wasted_views += 1;
                }
            }
            if let Some(posterior) = posterior.as_mut() {
                posterior.observe(user, s, outcome);
            }
        }
        for &s in &viewed_now {
            popularity[s] += 1;
        }
        recent_views.push_back(viewed_now);
        if recent_views.len() > POPULARITY_WINDOW {
            for s in recent_views.pop_front().unwrap_or_default() {
                popularity[s] -= 1;
            }
        }
        if !events.is_empty() {
            events_client.ingest_batch(pb::IngestBatchRequest { events }).await?;
        }
        for key in keys {
            card.arms.entry(key).or_default().add(&tally);
        }
    }
    if let (Some(posterior), Some(path)) = (&posterior, &options.posterior_state) {
        posterior.save(path)?;
    }
    for a in card.arms.values_mut() {
        a.finish();
    }
    progress.finish_and_clear();
    card.on_target_ceiling = card.ceiling_sums.0 / card.ceiling_sums.1.max(f64::MIN_POSITIVE);
    let horizon = f64::from(options.cold_minutes);
    for (policy, per_session) in cold {
        let new: Vec<(u64, Option<f64>)> =
            per_session.iter().enumerate().filter(|(s, _)| scored(*s)).map(|(_, c)| *c).collect();
        if !new.is_empty() {
            card.cold_start.insert(policy, ColdStart::of(&new, horizon));
        }
    }
    Ok(card)
}

impl Scorecard {
    /// The table of what the truth says: true expected purchases, the share of impressions inside
    /// the sessions' true audiences and wasted on them, and exposure and expected purchases by
    /// kind of declaration.
    fn truth_text(&self) -> String {
        let mut out = format!(
            "\nby the truth; expected buys per 1,000 impressions, and per kind of declaration: exposure share / expected buys per 1,000\n{:<30} {:>8} {:>9} {:>8}",
            "policy / arm", "E[buys]", "true-aud", "wasted"
        );
        for kind in Declaration::ALL {
            out += &format!(" {:>16}", kind.name());
        }
        out.push('\n');
        for (arm, a) in &self.arms {
            out += &format!(
                "{arm:<30} {:>8.2} {:>9.3} {:>8.3}",
                a.expected_purchases_per_1000_impressions, a.true_audience_share, a.wasted_impression_share
            );
            for kind in Declaration::ALL {
                let d = a.by_declaration.get(&kind).cloned().unwrap_or_default();
                out += &format!(" {:>7.3} / {:>6.1}", d.exposure_share, d.expected_purchases_per_1000_impressions);
            }
            out.push('\n');
        }
        out
    }

    /// A readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} feed requests; per 1,000 impressions\n{:<30} {:>8} {:>11} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}\n",
            self.requests,
            "policy / arm",
            "rankings",
            "impressions",
            "buys",
            "net",
            "views",
            "on-target",
            "wasted",
            "NDCG"
        );
        for (arm, a) in &self.arms {
            out += &format!(
                "{arm:<30} {:>8} {:>11} {:>8.2} {:>8.2} {:>8.1} {:>9.3} {:>8.1} {:>7.3}\n",
                a.rankings,
                a.impressions,
                a.purchases_per_1000_impressions,
                a.net_purchases_per_1000_impressions,
                a.views_per_1000_impressions,
                a.on_target_share,
                a.wasted_views_per_1000_impressions,
                a.ndcg
            );
        }
        out += &self.truth_text();
        let hours = (self.end_ms - self.start_ms) as f64 / 3_600_000.0;
        out += &format!("simulated time: {} + {hours:.2} h\n", fitrank::domain::rfc3339(self.start_ms));
        out += &format!(
            "on-target ceiling (every slot filled, on-target sessions first): {:.3}\n",
            self.on_target_ceiling
        );
        if !self.cold_start.is_empty() {
            out += &format!(
                "\nsessions going live during the run, over their first {} minutes; minutes to the first purchase\n{:<30} {:>12} {:>16} {:>10} {:>15} {:>18}\n",
                self.cold_start.values().next().map_or(0.0, |c| c.horizon_minutes),
                "policy",
                "sold",
                "impressions each",
                "median",
                "restricted mean",
                "censored-data mean"
            );
            for (policy, c) in &self.cold_start {
                let estimated = c
                    .estimated_mean_minutes_to_first_purchase
                    .map_or_else(|| "none sold".to_owned(), |m| format!("{m:.1}"));
                let median = c
                    .median_minutes_to_first_purchase
                    .map_or_else(|| format!(">{}", c.horizon_minutes), |m| format!("{m:.1}"));
                out += &format!(
                    "{policy:<30} {:>5} of {:<4} {:>16.1} {:>10} {:>15.1} {:>18}\n",
                    c.with_a_purchase,
                    c.new_sessions,
                    c.impressions_per_new_session,
                    median,
                    c.mean_minutes_to_first_purchase,
                    estimated
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_orders_by_true_value_and_its_weight_lifts_on_target_sessions() {
        let candidates = [10, 11, 12, 13];
        let inside = [false, true, false, true];
        let ev = |s: usize| [0.30, 0.10, 0.20, 0.10][s - 10];
        assert_eq!(oracle_order(&candidates, &inside, ev, 0.0), vec![10, 12, 11, 13]);
        // 0.15 lifts 11 and 13 to 0.25: above 12 (0.20), below 10 (0.30); tied ones keep their order.
        assert_eq!(oracle_order(&candidates, &inside, ev, 0.15), vec![10, 11, 13, 12]);
        assert_eq!(oracle_order(&candidates, &inside, ev, 1.0), vec![11, 13, 10, 12]);
    }

    #[test]
    fn on_target_ceiling_matches_hand_computed_values() {
        let supply = |inside, undeclared, outside| TargetSupply { inside, undeclared, outside };
        // Enough on-target sessions for every slot: all targeted impressions are on target.
        let (on, targeted) = supply(7, 0, 9).ceiling(5);
        assert!((on - 137.0 / 60.0).abs() < 1e-12 && on == targeted, "{on} {targeted}");
        // Two inside (1 + 1/2), one undeclared (slot 2, not counted), two outside (1/4 + 1/5).
        let (on, targeted) = supply(2, 1, 9).ceiling(5);
        assert!((on - 1.5).abs() < 1e-12 && (targeted - 1.95).abs() < 1e-12, "{on} {targeted}");
        // Fewer candidates than slots: only those are shown.
        let (on, targeted) = supply(1, 0, 1).ceiling(5);
        assert!((on - 1.0).abs() < 1e-12 && (targeted - 1.5).abs() < 1e-12);
        assert_eq!(supply(0, 3, 0).ceiling(5), (0.0, 0.0));
    }

    #[test]
    fn cold_start_summary_matches_hand_computed_values() {
        // Four new sessions, a 100-minute window: two sold at 10 and 30 minutes, two never did.
        let c = ColdStart::of(&[(5, Some(30.0)), (1, None), (2, Some(10.0)), (0, None)], 100.0);
        assert_eq!((c.new_sessions, c.with_a_purchase, c.horizon_minutes), (4, 2, 100.0));
        assert_eq!(c.impressions_per_new_session, 2.0);
        assert_eq!(c.minutes_at_risk, 30.0 + 100.0 + 10.0 + 100.0);
        assert_eq!(c.mean_minutes_to_first_purchase, 60.0);
        assert_eq!(c.estimated_mean_minutes_to_first_purchase, Some(120.0));
        // Half (2 of 4) had sold by 30.
        assert_eq!(c.median_minutes_to_first_purchase, Some(30.0));

        // One of three sold: the median is beyond the horizon.
        let c = ColdStart::of(&[(1, Some(7.0)), (1, None), (1, None)], 50.0);
        assert_eq!(c.median_minutes_to_first_purchase, None);
        assert_eq!(c.estimated_mean_minutes_to_first_purchase, Some(107.0));

        // None sold: no estimate, restricted mean at the horizon.
        let c = ColdStart::of(&[(3, None), (0, None)], 50.0);
        assert_eq!((c.with_a_purchase, c.estimated_mean_minutes_to_first_purchase), (0, None));
        assert_eq!(c.mean_minutes_to_first_purchase, 50.0);
    }

    #[test]
    fn the_clock_advances_one_over_the_rate_per_request() {
        let o = SimOptions { rate: 4.0, ..SimOptions::new(10, 5, 1) };
        assert_eq!(o.time_of(0), default_start_ms());
        assert_eq!(o.time_of(3), default_start_ms() + 750);
        assert_eq!(o.end_ms(), default_start_ms() + 2_500);
    }
}
