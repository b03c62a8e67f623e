//! World families: simulated platforms that differ in *structure*, not only in seed, so that a
//! model or policy is judged in worlds it was not fitted to.
//!
//! - `default`: the built-in generator's world ([`crate::train::generator`]), the one the shipped
//!   model was trained on. Buyers are a shifted copy of their category's demographic core; 15% of
//!   sellers declare nothing, 20% a target shifted by up to 20 years.
//! - `shoppers`: hidden shopper types that demographics only hint at. A user is a *browser*
//!   (watches, never buys; likelier among men 45+), a *bargain hunter* (buys budget, returns
//!   often) or a *buyer*, and has two favourite categories of their own. Each host has a hidden
//!   quality, and each session's true buyers combine a demographic core with those tastes.
//!   Sellers' declarations are accurate, too broad, wrong (the opposite gender, 25 years off) or
//!   absent, in shares the world file sets. With `taste_drift_hours` > 0, each user's favourite
//!   categories are drawn anew every that many simulated hours (at a phase of the user's own), so
//!   what a user was into an hour ago can stop being true during a run.
//!
//! A world file (TOML, `fitrank simulate --world FILE`) names a family and overrides its
//! parameters; `--world shoppers` takes the family's defaults.

use std::path::Path;

use rand::{Rng, rngs::StdRng};
use serde::Deserialize;

use fitrank::domain::{AgeBand, Category, Gender, LiveSession, PriceBand, TargetAudience, UserProfile, audience};

/// What a seller's declaration is, measured against the session's true buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Declaration {
    /// Near the session's true buyers.
    Accurate,
    /// Everyone, or nearly: true but useless.
    TooBroad,
    /// Another audience than the one that buys.
    Wrong,
    /// No target declared.
    Absent,
}

impl Declaration {
    pub const ALL: [Declaration; 4] =
        [Declaration::Accurate, Declaration::TooBroad, Declaration::Wrong, Declaration::Absent];

    pub fn name(self) -> &'static str {
        match self {
            Declaration::Accurate => "accurate",
            Declaration::TooBroad => "too_broad",
            Declaration::Wrong => "wrong",
            Declaration::Absent => "absent",
        }
    }
}

/// The family of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Default,
    Shoppers,
}

/// Shares of the kinds of declaration (normalised to sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclarationShares {
    pub accurate: f64,
    pub too_broad: f64,
    pub wrong: f64,
    pub absent: f64,
}

impl Default for DeclarationShares {
    fn default() -> Self {
        DeclarationShares { accurate: 0.55, too_broad: 0.20, wrong: 0.10, absent: 0.15 }
    }
}

/// A world: its family and the parameters of the `shoppers` family (the `default` family has
/// none: it is the generator's world).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldSpec {
    pub family: Family,
    pub declarations: DeclarationShares,
    /// Share of browsers among men aged 45 and over, and among everyone else.
    pub browsers_older_men: f64,
    pub browsers_others: f64,
    /// Share of bargain hunters among those who are not browsers.
    pub bargain_hunters: f64,
    /// Return probability of a bargain hunter's purchase, and of anyone else's.
    pub bargain_return_rate: f64,
    pub return_rate: f64,
    /// Weight of a user's own favourite categories in the buying logit, against 2.0 for the
    /// session's demographic core: the larger, the less demographics tell.
    pub taste_weight: f32,
    /// Each user's favourite categories change every this many simulated hours (0: never).
    pub taste_drift_hours: f64,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec {
            family: Family::Default,
            declarations: DeclarationShares::default(),
            browsers_older_men: 0.40,
            browsers_others: 0.08,
            bargain_hunters: 0.25,
            bargain_return_rate: 0.30,
            return_rate: 0.10,
            taste_weight: 2.0,
            taste_drift_hours: 0.0,
        }
    }
}

impl WorldSpec {
    /// `default`, `shoppers`, or the path of a world file.
    pub fn load(name: &str) -> Result<WorldSpec, String> {
        match name {
            "default" => Ok(WorldSpec::default()),
            "shoppers" => Ok(WorldSpec { family: Family::Shoppers, ..WorldSpec::default() }),
            path => {
                let text = std::fs::read_to_string(Path::new(path))
                    .map_err(|e| format!("--world {path:?} is neither default, shoppers nor a readable file: {e}"))?;
                let spec: WorldSpec = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
                spec.validate().map_err(|e| format!("{path}: {e}"))?;
                Ok(spec)
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        let d = &self.declarations;
        let shares = [("accurate", d.accurate), ("too_broad", d.too_broad), ("wrong", d.wrong), ("absent", d.absent)];
        if shares.iter().any(|(_, v)| !(v.is_finite() && *v >= 0.0))
            || shares.iter().map(|(_, v)| v).sum::<f64>() <= 0.0
        {
            return Err("declarations: shares must be finite, >= 0, and not all 0".into());
        }
        for (name, p) in [
            ("browsers_older_men", self.browsers_older_men),
            ("browsers_others", self.browsers_others),
            ("bargain_hunters", self.bargain_hunters),
            ("bargain_return_rate", self.bargain_return_rate),
            ("return_rate", self.return_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be between 0 and 1, got {p}"));
            }
        }
        if !(self.taste_weight.is_finite() && self.taste_weight >= 0.0) {
            return Err(format!("taste_weight must be a finite number >= 0, got {}", self.taste_weight));
        }
        if !(self.taste_drift_hours.is_finite() && self.taste_drift_hours >= 0.0) {
            return Err(format!("taste_drift_hours must be a finite number >= 0, got {}", self.taste_drift_hours));
        }
        Ok(())
    }

    /// A declaration kind drawn by the shares.
    fn draw_declaration(&self, rng: &mut StdRng) -> Declaration {
        let d = &self.declarations;
        let total = d.accurate + d.too_broad + d.wrong + d.absent;
        let mut x = rng.gen_range(0.0..total);
        for (kind, share) in Declaration::ALL.into_iter().zip([d.accurate, d.too_broad, d.wrong, d.absent]) {
            if x < share {
                return kind;
            }
            x -= share;
        }
        Declaration::Absent
    }
}

/// A user's hidden shopping behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shopper {
    Buyer,
    Bargain,
    Browser,
}

impl Shopper {
    pub const ALL: [Shopper; 3] = [Shopper::Buyer, Shopper::Bargain, Shopper::Browser];
}

/// A session's hidden buyers in the `shoppers` family.
#[derive(Debug, Clone, Copy)]
struct Core {
    age_centre: f32,
    age_width: f32,
    /// +1 women, −1 men.
    gender_lean: f32,
}

/// The hidden truth of a `shoppers` world.
#[derive(Debug)]
pub struct ShopperTruth {
    spec: WorldSpec,
    shoppers: Vec<Shopper>,
    /// Two favourite categories per user.
    tastes: Vec<[Category; 2]>,
    cores: Vec<Core>,
    host_quality: Vec<f32>,
    /// Salt of the drifted tastes, derived from the world (no extra draw: a world without drift is
    /// the same world as before drift existed).
    drift_salt: u64,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The probability of each shopper type ([`Shopper::ALL`]'s order) for a user with this profile.
fn shopper_prior(spec: &WorldSpec, user: &UserProfile) -> [f64; 3] {
    let older_man =
        user.gender == Gender::Male && matches!(user.age_band, AgeBand::A45To54 | AgeBand::A55To64 | AgeBand::A65Plus);
    let browser = if older_man { spec.browsers_older_men } else { spec.browsers_others };
    let bargain = (1.0 - browser) * spec.bargain_hunters;
    [1.0 - browser - bargain, bargain, browser]
}

/// How much `user` belongs to `core`, in [0, 1].
fn affinity(core: &Core, user: &UserProfile) -> f32 {
    let age = user
        .age_band
        .range()
        .map_or(0.3, |(lo, hi)| (-((((lo + hi) as f32 / 2.0) - core.age_centre) / core.age_width).powi(2)).exp());
    let gender = match user.gender {
        Gender::Female => 0.5 + 0.5 * core.gender_lean,
        Gender::Male => 0.5 - 0.5 * core.gender_lean,
        Gender::Other | Gender::Unknown => 0.5,
    };
    age * gender
}

impl ShopperTruth {
    /// The hidden truth for `users` and `sessions` (whose targets it rewrites by the declaration
    /// shares), and each session's kind of declaration.
    pub fn new(
        spec: &WorldSpec,
        rng: &mut StdRng,
        users: &[UserProfile],
        sessions: &mut [LiveSession],
    ) -> (ShopperTruth, Vec<Declaration>) {
        let shoppers = users
            .iter()
            .map(|u| {
                let browsers = shopper_prior(spec, u)[2];
                if rng.gen_bool(browsers) {
                    Shopper::Browser
                } else if rng.gen_bool(spec.bargain_hunters) {
                    Shopper::Bargain
                } else {
                    Shopper::Buyer
                }
            })
            .collect();
        let pick = |rng: &mut StdRng| Category::ALL[rng.gen_range(0..Category::ALL.len())];
        let tastes = users.iter().map(|_| [pick(rng), pick(rng)]).collect();
        let mut cores = Vec::with_capacity(sessions.len());
        let mut host_quality = Vec::with_capacity(sessions.len());
        let mut declarations = Vec::with_capacity(sessions.len());
        for s in sessions.iter_mut() {
            let core = Core {
                age_centre: rng.gen_range(20.0..65.0),
                age_width: rng.gen_range(6.0..12.0),
                gender_lean: [-0.9, -0.5, 0.5, 0.9][rng.gen_range(0..4)],
            };
            let kind = spec.draw_declaration(rng);
            s.target = declare(kind, &core, &s.region);
            cores.push(core);
            host_quality.push(rng.gen_range(-0.8..0.8));
            declarations.push(kind);
        }
        let drift_salt =
            host_quality.iter().fold(0u64, |h, q: &f32| fitrank::hash::splitmix64(h ^ u64::from(q.to_bits())));
        (ShopperTruth { spec: spec.clone(), shoppers, tastes, cores, host_quality, drift_salt }, declarations)
    }

    /// User `u`'s two favourite categories at simulated time `t_ms`: the drawn ones in the user's
    /// first drift period (always, without drift), then new ones each period.
    pub fn tastes_at(&self, u: usize, t_ms: i64) -> [Category; 2] {
        if self.spec.taste_drift_hours <= 0.0 {
            return self.tastes[u];
        }
        let period = ((self.spec.taste_drift_hours * 3_600_000.0) as i64).max(1);
        let user = fitrank::hash::splitmix64(self.drift_salt ^ u as u64);
        let phase = (user % period as u64) as i64;
        let epoch = (t_ms + phase).div_euclid(period);
        if epoch == 0 {
            return self.tastes[u];
        }
        let h = fitrank::hash::splitmix64(user ^ epoch as u64);
        let n = Category::ALL.len() as u64;
        [Category::ALL[(h % n) as usize], Category::ALL[((h >> 32) % n) as usize]]
    }

    /// (P(view | shown), P(buy | viewed)) of session `s` for user `u` at simulated time `t_ms`.
    pub fn probs(&self, s: usize, session: &LiveSession, u: usize, user: &UserProfile, t_ms: i64) -> (f32, f32) {
        let likes = self.tastes_at(u, t_ms).contains(&session.category);
        self.probs_if(s, session, user, self.shoppers[u], likes)
    }

    /// (P(view | shown), P(buy | viewed)) of session `s` for a user with `user`'s profile who is a
    /// `shopper` and likes the session's category or not: the truth with the user's hidden
    /// variables given, which is what [`crate::posterior`] averages over.
    pub fn probs_if(
        &self,
        s: usize,
        session: &LiveSession,
        user: &UserProfile,
        shopper: Shopper,
        likes: bool,
    ) -> (f32, f32) {
        let fit = affinity(&self.cores[s], user);
        let quality = self.host_quality[s];
        let lang_ok = user.language.is_empty() || *user.language == *session.language;
        let region_ok = user.region.is_empty() || audience::region_contains(&session.region, &user.region);
        let taste = if likes { self.spec.taste_weight } else { 0.0 };
        let mut z_view = -2.3 + 1.0 * fit + 0.5 * taste + quality;
        if shopper == Shopper::Browser {
            z_view += 1.2;
        }
        let price = match (shopper, session.price_band) {
            (Shopper::Bargain, PriceBand::Budget) => 0.8,
            (Shopper::Bargain, PriceBand::Premium) => -1.0,
            (Shopper::Bargain, PriceBand::Luxury) => -2.0,
            _ => 0.0,
        };
        let mut z_buy = -3.6 + 2.0 * fit + taste + 0.8 * quality + price;
        if !lang_ok {
            z_view -= 1.5;
            z_buy -= 1.0;
        }
        if !region_ok {
            z_buy -= 3.0;
        }
        let p_buy = if shopper == Shopper::Browser { 0.0 } else { sigmoid(z_buy) };
        (sigmoid(z_view), p_buy)
    }

    /// The prior probability of each shopper type ([`Shopper::ALL`]'s order) for a user with this
    /// profile: what the world's shares say before anything is seen of the user.
    pub fn shopper_prior(&self, user: &UserProfile) -> [f64; 3] {
        shopper_prior(&self.spec, user)
    }

    /// A number that tells this world from another of the family (derived from the hosts'
    /// hidden qualities, so two worlds share it only by a 64-bit accident).
    pub fn fingerprint(&self) -> u64 {
        self.drift_salt
    }

    /// Whether users' tastes drift during a run.
    pub fn tastes_drift(&self) -> bool {
        self.spec.taste_drift_hours > 0.0
    }

    /// Probability that a `shopper` returns a purchase.
    pub fn return_rate_of(&self, shopper: Shopper) -> f64 {
        if shopper == Shopper::Bargain { self.spec.bargain_return_rate } else { self.spec.return_rate }
    }

    /// Probability that user `u` returns a purchase.
    pub fn return_rate(&self, u: usize) -> f64 {
        self.return_rate_of(self.shoppers[u])
    }
}

/// The target a seller of `kind` declares for a session whose buyers are `core`.
fn declare(kind: Declaration, core: &Core, region: &str) -> TargetAudience {
    let ages =
        |centre: f32, half: f32| ((centre - half).clamp(13.0, 90.0) as u32, (centre + half).clamp(14.0, 90.0) as u32);
    let gender = |lean: f32| if lean > 0.0 { vec![Gender::Female] } else { vec![Gender::Male] };
    match kind {
        Declaration::Accurate => {
            let (min_age, max_age) = ages(core.age_centre, core.age_width);
            TargetAudience {
                min_age,
                max_age,
                genders: gender(core.gender_lean),
                regions: vec![region.to_owned()],
                interests: vec![],
            }
        }
        Declaration::TooBroad => TargetAudience { min_age: 18, max_age: 0, ..Default::default() },
        Declaration::Wrong => {
            let centre = if core.age_centre < 42.0 { core.age_centre + 25.0 } else { core.age_centre - 25.0 };
            let (min_age, max_age) = ages(centre, core.age_width);
            TargetAudience { min_age, max_age, genders: gender(-core.gender_lean), regions: vec![], interests: vec![] }
        }
        Declaration::Absent => TargetAudience::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn world_files_override_the_family_and_refuse_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "family = \"shoppers\"\ntaste_weight = 3.0\n[declarations]\nwrong = 0.5\n").unwrap();
        let spec = WorldSpec::load(path.to_str().unwrap()).unwrap();
        assert_eq!((spec.family, spec.taste_weight, spec.declarations.wrong), (Family::Shoppers, 3.0, 0.5));
        assert_eq!(spec.declarations.accurate, 0.55, "unset shares keep their defaults");
        std::fs::write(&path, "family = \"shoppers\"\ntaste = 3.0\n").unwrap();
        assert!(WorldSpec::load(path.to_str().unwrap()).unwrap_err().contains("taste"));
        std::fs::write(&path, "bargain_hunters = 1.5\n").unwrap();
        assert!(WorldSpec::load(path.to_str().unwrap()).unwrap_err().contains("bargain_hunters"));
        assert!(WorldSpec::load("no-such-world").is_err());
    }

    #[test]
    fn the_example_world_files_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("worlds");
        let drift = WorldSpec::load(dir.join("shoppers-drift.toml").to_str().unwrap()).unwrap();
        assert_eq!((drift.family, drift.taste_drift_hours), (Family::Shoppers, 2.0));
    }

    #[test]
    fn declarations_follow_their_shares_and_wrong_ones_miss_the_buyers() {
        let spec = WorldSpec { family: Family::Shoppers, ..WorldSpec::default() };
        let mut rng = StdRng::seed_from_u64(5);
        let kinds: Vec<Declaration> = (0..20_000).map(|_| spec.draw_declaration(&mut rng)).collect();
        let share = |k| kinds.iter().filter(|d| **d == k).count() as f64 / kinds.len() as f64;
        assert!((share(Declaration::Accurate) - 0.55).abs() < 0.02);
        assert!((share(Declaration::Wrong) - 0.10).abs() < 0.01);
        let core = Core { age_centre: 25.0, age_width: 5.0, gender_lean: 0.9 };
        let young_woman = UserProfile {
            age_band: AgeBand::A25To34,
            gender: Gender::Female,
            region: "US-CA".into(),
            ..Default::default()
        };
        let inside = |t: &TargetAudience| audience::fit(&young_woman, t).overall() >= 0.5;
        assert!(inside(&declare(Declaration::Accurate, &core, "US")));
        assert!(!inside(&declare(Declaration::Wrong, &core, "US")));
        assert_eq!(declare(Declaration::Absent, &core, "US"), TargetAudience::default());
    }

    #[test]
    fn tastes_drift_by_period_and_stay_without_drift() {
        let users: Vec<UserProfile> = (0..200).map(|_| UserProfile::default()).collect();
        let truth = |drift: f64| {
            let spec = WorldSpec { family: Family::Shoppers, taste_drift_hours: drift, ..WorldSpec::default() };
            ShopperTruth::new(&spec, &mut StdRng::seed_from_u64(3), &users, &mut []).0
        };
        let (fixed, drifting) = (truth(0.0), truth(2.0));
        let hour = 3_600_000;
        let changed = |t: &ShopperTruth, at: i64| (0..200).filter(|&u| t.tastes_at(u, at) != t.tastes_at(u, 0)).count();
        assert_eq!(changed(&fixed, 48 * hour), 0);
        // Within a period a user's tastes hold; over a day nearly everyone's have moved.
        let u = 7;
        let start = (0..4 * hour).step_by(60_000).find(|t| drifting.tastes_at(u, *t) != drifting.tastes_at(u, 0));
        let start = start.expect("a change within two periods");
        assert_eq!(drifting.tastes_at(u, start), drifting.tastes_at(u, start + 2 * hour - 60_000));
        assert!(changed(&drifting, 24 * hour) > 150, "{}", changed(&drifting, 24 * hour));
        assert_eq!(truth(2.0).tastes_at(5, 30 * hour), drifting.tastes_at(5, 30 * hour), "drift is part of the world");
    }

    #[test]
    fn browsers_watch_and_never_buy() {
        let spec = WorldSpec { family: Family::Shoppers, browsers_older_men: 1.0, ..WorldSpec::default() };
        let user = UserProfile { age_band: AgeBand::A55To64, gender: Gender::Male, ..Default::default() };
        let mut sessions = vec![LiveSession {
            session_id: "s".into(),
            host_id: "h".into(),
            category: Category::Sportswear,
            price_band: PriceBand::Mid,
            language: "en".into(),
            region: "US".into(),
            start_time_ms: 0,
            status: fitrank::domain::SessionStatus::Live,
            end_time_ms: 1,
            target: TargetAudience::default(),
        }];
        let (truth, _) =
            ShopperTruth::new(&spec, &mut StdRng::seed_from_u64(1), std::slice::from_ref(&user), &mut sessions);
        let (view, buy) = truth.probs(0, &sessions[0], 0, &user, 0);
        assert!(view > 0.05 && buy == 0.0, "{view} {buy}");
    }
}
