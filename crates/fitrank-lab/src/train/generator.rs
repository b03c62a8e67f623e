//! A small synthetic world for training the default model: users, live sessions with declared
//! target audiences, and impressions with outcomes drawn from a hidden ground truth.
//!
//! The truth is not the model's feature set. Each category has a core buying audience (an age
//! centre and width and a gender lean), and each session's own buyers are that core shifted (a
//! sportswear stream may sell to young women or to older men); sellers declare a target that is
//! usually near their session's buyers but sometimes off or missing. Separately, some off-target segments like to *watch* some
//! categories without ever buying (the failure mode of watch-time ranking). Purchases also depend
//! on language and region match, price band versus age, and a hidden host quality. Impressions
//! are replayed in time order and each session's live stats are folded with [`LiveStats::apply`]
//! *after* its row is taken, so a row never sees its own outcome.
//!
//! The full simulator with its scorecard is a separate component; this one only has to make data
//! on which "who buys what" is learnable.

use rand::{Rng, SeedableRng, rngs::StdRng};

use fitrank::domain::{
    AgeBand, Category, Event, EventKind, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SessionStatus,
    Surface, TargetAudience, UserActivity, UserProfile, Viewer, audience,
};
use fitrank::features::FeatureInput;

use super::Dataset;
use crate::worlds::{Declaration, Family, ShopperTruth, WorldSpec};

/// Size of the generated world.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorConfig {
    pub users: usize,
    pub sessions: usize,
    pub impressions: usize,
    pub seed: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig { users: 5_000, sessions: 600, impressions: 120_000, seed: 7 }
    }
}

/// Markets: (region, language).
const MARKETS: &[(&str, &str)] = &[("US", "en"), ("GB", "en"), ("DE", "de")];
const SUBREGIONS: &[&str] = &["", "-A", "-B"];
/// Start of the simulated day: 2026-01-05T00:00:00Z. Sessions start in its first 20 hours and
/// run one to four hours.
pub const DAY_START_MS: i64 = 1_767_571_200_000;
pub const HOUR: i64 = 3_600_000;

/// Hidden buying audience of a category.
#[derive(Debug, Clone, Copy)]
struct Core {
    age_centre: f32,
    age_width: f32,
    /// +1 women, −1 men, 0 anyone.
    gender_lean: f32,
    base_buy: f32,
    /// An off-target segment that watches but does not buy: (age band, gender).
    watchers: (AgeBand, Gender),
}

#[derive(Debug)]
struct Truth {
    /// Per category.
    cores: Vec<Core>,
    /// Per session: its own buyers, a shifted copy of its category's core.
    session_cores: Vec<Core>,
    host_quality: Vec<f32>,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

fn age_mid(band: AgeBand) -> Option<f32> {
    band.range().map(|(lo, hi)| (lo + hi) as f32 / 2.0)
}

/// How much a segment belongs to a category's buying core, in [0, 1].
fn core_affinity(core: &Core, user: &UserProfile) -> f32 {
    let age = age_mid(user.age_band).map_or(0.4, |m| (-((m - core.age_centre) / core.age_width).powi(2)).exp());
    let gender = match user.gender {
        Gender::Female => 0.5 + 0.45 * core.gender_lean,
        Gender::Male => 0.5 - 0.45 * core.gender_lean,
        Gender::Other | Gender::Unknown => 0.5,
    };
    age * gender * 2.0
}

fn make_truth(rng: &mut StdRng, sessions: usize) -> Truth {
    let cores = Category::ALL
        .iter()
        .map(|_| Core {
            age_centre: rng.gen_range(20.0..60.0),
            age_width: rng.gen_range(6.0..14.0),
            gender_lean: pick(rng, &[-0.9, -0.5, 0.0, 0.5, 0.9]),
            base_buy: rng.gen_range(-3.2..-2.0),
            watchers: (pick(rng, &AgeBand::ALL[4..]), pick(rng, &[Gender::Male, Gender::Female])),
        })
        .collect();
    let host_quality = (0..sessions).map(|_| rng.gen_range(-0.6..0.6)).collect();
    Truth { cores, session_cores: Vec::with_capacity(sessions), host_quality }
}

fn make_user(rng: &mut StdRng) -> UserProfile {
    let (region, language) = pick(rng, MARKETS);
    let age_band = if rng.gen_bool(0.08) { AgeBand::Unknown } else { pick(rng, &AgeBand::ALL[1..]) };
    let gender = match rng.gen_range(0..100) {
        0..=45 => Gender::Female,
        46..=91 => Gender::Male,
        92..=94 => Gender::Other,
        _ => Gender::Unknown,
    };
    let interests = (0..rng.gen_range(0..3)).map(|_| pick(rng, Category::ALL).name().to_owned()).collect();
    UserProfile {
        age_band,
        gender,
        region: format!("{region}{}", pick(rng, SUBREGIONS)).into(),
        language: if rng.gen_bool(0.1) { "".into() } else { language.into() },
        interests,
    }
}

/// A declared target: usually the category's true core, sometimes shifted (wrong when by more
/// than 10 years), sometimes absent.
fn make_target(rng: &mut StdRng, core: &Core, region: &str) -> (TargetAudience, Declaration) {
    if rng.gen_bool(0.15) {
        return (TargetAudience::default(), Declaration::Absent);
    }
    let shift: f32 = if rng.gen_bool(0.2) { rng.gen_range(-20.0..20.0) } else { rng.gen_range(-3.0..3.0) };
    let kind = if shift.abs() > 10.0 { Declaration::Wrong } else { Declaration::Accurate };
    let centre: f32 = core.age_centre + shift;
    let half = core.age_width.max(5.0);
    let genders = match core.gender_lean {
        l if l >= 0.5 => vec![Gender::Female],
        l if l <= -0.5 => vec![Gender::Male],
        _ => vec![],
    };
    let target = TargetAudience {
        min_age: (centre - half).clamp(13.0, 90.0) as u32,
        max_age: (centre + half).clamp(14.0, 90.0) as u32,
        genders,
        regions: if rng.gen_bool(0.7) { vec![region.to_owned()] } else { vec![] },
        interests: vec![],
    };
    (target, kind)
}

fn make_session(rng: &mut StdRng, i: usize, truth: &mut Truth) -> (LiveSession, Declaration) {
    let category = pick(rng, Category::ALL);
    let base = truth.cores[category.index()];
    let core = Core {
        age_centre: (base.age_centre + rng.gen_range(-15.0..15.0)).clamp(18.0, 70.0),
        gender_lean: if rng.gen_bool(0.5) { base.gender_lean } else { pick(rng, &[-0.9, 0.0, 0.9]) },
        ..base
    };
    truth.session_cores.push(core);
    let (region, language) = pick(rng, MARKETS);
    let start = DAY_START_MS + rng.gen_range(0..20 * HOUR);
    let session = LiveSession {
        session_id: format!("s{i}"),
        host_id: format!("h{}", i / 2),
        category,
        price_band: pick(rng, PriceBand::ALL),
        language: language.to_owned(),
        region: region.to_owned(),
        start_time_ms: start,
        status: SessionStatus::Live,
        end_time_ms: start + rng.gen_range(HOUR..4 * HOUR),
        target: TargetAudience::default(),
    };
    let (target, kind) = make_target(rng, &core, region);
    (LiveSession { target, ..session }, kind)
}

/// (P(view | shown), P(buy | viewed)) under the hidden truth.
fn truth_probs(truth: &Truth, s_index: usize, user: &UserProfile, session: &LiveSession) -> (f32, f32) {
    let core = &truth.session_cores[s_index];
    let affinity = core_affinity(core, user);
    let watcher = (user.age_band, user.gender) == core.watchers;
    let lang_ok = user.language.is_empty() || *user.language == *session.language;
    let region_ok = audience::region_contains(&session.region, &user.region) || user.region.is_empty();
    let interested = user.interests.iter().any(|i| i == session.category.name());
    let quality = truth.host_quality[s_index];

    let mut z_view = -2.2 + 1.2 * affinity + quality + if interested { 0.6 } else { 0.0 };
    if watcher {
        z_view += 1.6;
    }
    if !lang_ok {
        z_view -= 1.5;
    }
    let young = matches!(user.age_band, AgeBand::A13To17 | AgeBand::A18To24);
    let price = match (session.price_band, young) {
        (PriceBand::Luxury, true) => -1.2,
        (PriceBand::Luxury, false) => -0.4,
        (PriceBand::Premium, true) => -0.5,
        (PriceBand::Budget, _) => 0.3,
        _ => 0.0,
    };
    let mut z_buy = core.base_buy + 2.4 * affinity - 1.0 + price + 0.8 * quality + if interested { 0.5 } else { 0.0 };
    if watcher {
        z_buy = -9.0;
    }
    if !region_ok {
        z_buy -= 3.0;
    }
    if !lang_ok {
        z_buy -= 1.0;
    }
    (sigmoid(z_view), sigmoid(z_buy))
}

/// One shown impression and what came of it.
struct Shown {
    user: usize,
    session: usize,
    time_ms: i64,
    surface: Surface,
}

/// Probability that a purchase in the generator's world is returned.
const RETURN_RATE: f64 = 0.12;

/// A simulated world without its impressions: users, live sessions, each session's kind of
/// declaration, and the hidden truth, for driving a running service ([`crate::simulate`]). The
/// `default` family with a given seed is the world [`generate`] draws its rows from, so the
/// shipped model (trained with seed 7) knows its patterns; other families ([`crate::worlds`]) are
/// worlds it was not fitted to.
#[derive(Debug)]
pub struct World {
    pub users: Vec<UserProfile>,
    pub sessions: Vec<LiveSession>,
    pub declarations: Vec<Declaration>,
    truth: WorldTruth,
}

#[derive(Debug)]
enum WorldTruth {
    Generator(Truth),
    Shoppers(ShopperTruth),
}

impl World {
    /// The `default` family's world of `config` (its `impressions` are not drawn).
    pub fn new(config: GeneratorConfig) -> Self {
        Self::with_rng(config, &mut StdRng::seed_from_u64(config.seed))
    }

    /// The world of family `spec.family` with the size and seed of `config`.
    pub fn of(spec: &WorldSpec, config: GeneratorConfig) -> Self {
        match spec.family {
            Family::Default => Self::new(config),
            Family::Shoppers => {
                // Another stream than the default family's, so that the same seed is another world.
                let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5b0e_5b0e_5b0e_5b0e);
                let mut discarded = make_truth(&mut rng, config.sessions);
                let users: Vec<UserProfile> = (0..config.users).map(|_| make_user(&mut rng)).collect();
                let mut sessions: Vec<LiveSession> =
                    (0..config.sessions).map(|i| make_session(&mut rng, i, &mut discarded).0).collect();
                let (truth, declarations) = ShopperTruth::new(spec, &mut rng, &users, &mut sessions);
                World { users, sessions, declarations, truth: WorldTruth::Shoppers(truth) }
            }
        }
    }

    fn with_rng(config: GeneratorConfig, rng: &mut StdRng) -> Self {
        let mut truth = make_truth(rng, config.sessions);
        let users: Vec<UserProfile> = (0..config.users).map(|_| make_user(rng)).collect();
        let (sessions, declarations) = (0..config.sessions).map(|i| make_session(rng, i, &mut truth)).unzip();
        World { users, sessions, declarations, truth: WorldTruth::Generator(truth) }
    }

    /// (P(view | shown), P(buy | viewed)) of session `session` for user `user` at simulated time
    /// `t_ms`, under the truth.
    pub fn probs(&self, session: usize, user: usize, t_ms: i64) -> (f32, f32) {
        match &self.truth {
            WorldTruth::Generator(t) => truth_probs(t, session, &self.users[user], &self.sessions[session]),
            WorldTruth::Shoppers(t) => t.probs(session, &self.sessions[session], user, &self.users[user], t_ms),
        }
    }

    /// The hidden truth of a `shoppers` world; `None` in the `default` family.
    pub fn shopper_truth(&self) -> Option<&ShopperTruth> {
        match &self.truth {
            WorldTruth::Generator(_) => None,
            WorldTruth::Shoppers(t) => Some(t),
        }
    }

    /// Probability that `user` returns a purchase.
    pub fn return_rate(&self, user: usize) -> f64 {
        match &self.truth {
            WorldTruth::Generator(_) => RETURN_RATE,
            WorldTruth::Shoppers(t) => t.return_rate(user),
        }
    }

    /// True expected purchases per impression of `session` for `user` at simulated time `t_ms`.
    pub fn expected_purchase(&self, session: usize, user: usize, t_ms: i64) -> f64 {
        let (view, buy) = self.probs(session, user, t_ms);
        f64::from(view) * f64::from(buy)
    }
}

/// Generates the world and its impressions, and returns the training matrix.
pub fn generate(config: GeneratorConfig) -> Dataset {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let World { users, sessions, truth, .. } = World::with_rng(config, &mut rng);
    let WorldTruth::Generator(truth) = truth else { unreachable!("with_rng builds the generator's truth") };

    let mut shown: Vec<Shown> = (0..config.impressions)
        .map(|_| {
            let session = rng.gen_range(0..sessions.len());
            let s = &sessions[session];
            Shown {
                user: rng.gen_range(0..users.len()),
                session,
                time_ms: rng.gen_range(s.start_time_ms..s.end_time_ms),
                surface: pick(&mut rng, &Surface::ALL[1..]),
            }
        })
        .collect();
    shown.sort_by_key(|s| s.time_ms);

    // Replay in time order: the row sees the stats and activity from before its own outcome.
    let mut stats = vec![LiveStats::default(); sessions.len()];
    let mut activity = vec![UserActivity::default(); users.len()];
    let mut contexts = Vec::with_capacity(shown.len());
    let mut snapshots = Vec::with_capacity(shown.len());
    let mut labels = Vec::with_capacity(shown.len());
    for imp in &shown {
        let (user, session) = (&users[imp.user], &sessions[imp.session]);
        snapshots.push((stats[imp.session], activity[imp.user]));
        contexts.push(RequestContext { time_ms: imp.time_ms, surface: imp.surface });
        let (p_view, p_buy) = truth_probs(&truth, imp.session, user, session);
        let viewed = rng.gen_bool(f64::from(p_view));
        let bought = viewed && rng.gen_bool(f64::from(p_buy));
        labels.push((viewed, bought));

        let viewer = Viewer::of(Some(user), &session.target);
        let mut event = |kind: EventKind, watch_seconds: f64, amount: f64| {
            let e = Event {
                event_id: String::new(),
                kind,
                user_id: String::new(),
                session_id: String::new(),
                time_ms: imp.time_ms,
                ranking_id: String::new(),
                position: 0,
                watch_seconds,
                amount,
                order_id: String::new(),
            };
            stats[imp.session].apply(&e, viewer);
            activity[imp.user].apply(session.category, session.price_band, &e);
        };
        event(EventKind::Impression, 0.0, 0.0);
        if viewed {
            event(EventKind::View, 0.0, 0.0);
            let watcher = (user.age_band, user.gender) == truth.session_cores[imp.session].watchers;
            let watch = if watcher { rng.gen_range(300.0..1200.0) } else { rng.gen_range(20.0..400.0) };
            event(EventKind::Watch, watch, 0.0);
            if rng.gen_bool(0.15) {
                event(EventKind::Like, 0.0, 0.0);
            }
        }
        if bought {
            let amount = 20.0 * (1 + session.price_band.index()) as f64;
            event(EventKind::Purchase, 0.0, amount);
            if rng.gen_bool(RETURN_RATE) {
                event(EventKind::Return, 0.0, amount);
            }
        }
    }

    Dataset::from_inputs(shown.iter().zip(snapshots.iter().zip(contexts.iter())).zip(labels).map(
        |((imp, ((stats, activity), context)), (viewed, bought))| {
            let input =
                FeatureInput { user: &users[imp.user], activity, session: &sessions[imp.session], stats, context };
            (input, viewed, bought)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_learnable_rates() {
        let config = GeneratorConfig { users: 300, sessions: 40, impressions: 5_000, seed: 3 };
        let a = generate(config);
        let b = generate(config);
        assert_eq!(a.x, b.x);
        assert_eq!(a.purchased, b.purchased);
        let views = a.engaged.iter().filter(|v| **v).count() as f64 / a.len() as f64;
        let buys = a.purchased.iter().filter(|v| **v).count() as f64 / a.len() as f64;
        assert!((0.05..0.6).contains(&views), "view rate {views}");
        assert!((0.002..0.1).contains(&buys), "purchase rate {buys}");
    }
}
