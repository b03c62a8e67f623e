//! The ranking policy: how predictions and audience fit combine into the score that orders items,
//! and the overrides an experiment arm applies to it ([`PolicyOverride`]).

use serde::{Deserialize, Serialize};

/// `score = purchase_weight · p_purchase + engage_weight · p_engage + audience_fit_weight · fit
/// + on_target_weight · targeting credit`.
///
/// The default ranks by expected purchases per impression, with engagement as a minor tie-breaker
/// (p_engage is typically 3–30× p_purchase, so 0.01 keeps it an order of magnitude below). The
/// audience a session has *earned* (`domain::learned`: the declared target is a prior worth a few
/// buyers, which the session's actual buyers override) reaches the default score through the
/// model, whose feature `live.targeting_credit` it is; the shipped model reads the declared target
/// no other way (docs/decisions/0017). `on_target_weight` adds a bonus on top: `on_target_weight
/// × credit`, the Lagrangian form of "most purchases at a given on-target share" (the order by
/// expected purchases + λ·inside maximises purchases + λ·on-target impressions), so it moves only
/// the comparisons that cross the audience's edge. It is 0 by default because it costs purchases
/// wherever declarations can be wrong: in the simulator's shoppers world, 0.04 cost 4 points of
/// the oracle's purchases and 0.12 cost 5 (docs/PERFORMANCE.md). The weight is in the model's
/// units (purchases per impression), so its right value depends on the model's calibration; set
/// it to what reaching the earned audience is worth to your sellers. The continuous audience fit
/// (`audience_fit_weight`, 0 by default) reorders sessions by the *declared* target, which costs
/// purchases without raising the share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub purchase_weight: f32,
    pub engage_weight: f32,
    pub audience_fit_weight: f32,
    /// Times the targeting credit (in [0, 1]) the session has earned for the user, added to the
    /// score (see `domain::learned`).
    pub on_target_weight: f32,
    /// Share of slots given to targeted exploration: a slot is, with at most this probability,
    /// filled with a session that has little data (fewer than `cold_impressions` impressions),
    /// preferring sessions that have earned at least half the targeting credit for the user
    /// (for a cold session, that is its declaration's) and, among them, those the
    /// model scores higher (see `ranking::explore`). 0 = off; at most 0.2. Placement
    /// probabilities are logged.
    pub exploration_share: f32,
    /// Share of each exploration draw made uniformly over the cold sessions it draws from; the
    /// rest is drawn in proportion to the model's score (see `ranking::explore`). 0, the default,
    /// draws by score alone: first the new sessions the model expects to sell. A positive share
    /// gives every cold session in the pool at least `uniform / pool size` of each explored slot,
    /// which a candidate model that ranks cold sessions differently needs before `fitrank
    /// evaluate` can estimate it, and which a cold session the model underrates needs to show
    /// that it sells. Between 0 and 1.
    pub exploration_uniform_share: f32,
    /// Share of the slots not given to a cold session that take a session drawn evenly from the
    /// next `exploration_head_size` sessions of the exploitation order instead of the next one
    /// (see `ranking::explore`). 0, the default, keeps the exploitation order. A positive share
    /// gives a candidate model that orders the established sessions differently support in the
    /// log, so that `fitrank evaluate` can estimate it; it costs purchases where the order's
    /// first session sells much more than the next ones. Between 0 and 1; logged like every
    /// placement's probability.
    pub exploration_head_share: f32,
    /// How many sessions of the exploitation order a head draw chooses from (1 to 64).
    pub exploration_head_size: usize,
    /// A session with fewer impressions than this is cold (a candidate for exploration). Set it
    /// to what an established session collects in the first minutes of its stream on your
    /// traffic: too high and exploration spreads over sessions that already have data.
    pub cold_impressions: u64,
}

/// A session with fewer impressions than this is cold, by default.
pub const COLD_IMPRESSIONS: u64 = 200;

/// Largest allowed exploration share.
pub const MAX_EXPLORATION_SHARE: f32 = 0.2;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            purchase_weight: 1.0,
            engage_weight: 0.01,
            audience_fit_weight: 0.0,
            on_target_weight: 0.0,
            exploration_share: 0.0,
            exploration_uniform_share: 0.0,
            exploration_head_share: 0.0,
            exploration_head_size: 4,
            cold_impressions: COLD_IMPRESSIONS,
        }
    }
}

impl Policy {
    /// The ranking score of one item.
    #[inline]
    pub fn score(&self, p_engage: f32, p_purchase: f32, audience_fit: f32, credit: f32) -> f32 {
        self.purchase_weight * p_purchase
            + self.engage_weight * p_engage
            + self.audience_fit_weight * audience_fit
            + self.on_target_weight * credit
    }

    /// Checks that every weight is finite and not negative.
    pub fn validate(&self) -> Result<(), String> {
        for (name, w) in [
            ("purchase_weight", self.purchase_weight),
            ("engage_weight", self.engage_weight),
            ("audience_fit_weight", self.audience_fit_weight),
            ("on_target_weight", self.on_target_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(format!("policy.{name} must be a finite number >= 0, got {w}"));
            }
        }
        if !(0.0..=MAX_EXPLORATION_SHARE).contains(&self.exploration_share) {
            return Err(format!(
                "policy.exploration_share must be between 0 and {MAX_EXPLORATION_SHARE}, got {}",
                self.exploration_share
            ));
        }
        if !(0.0..=1.0).contains(&self.exploration_uniform_share) {
            return Err(format!(
                "policy.exploration_uniform_share must be between 0 and 1, got {}",
                self.exploration_uniform_share
            ));
        }
        if !(0.0..=1.0).contains(&self.exploration_head_share) {
            return Err(format!(
                "policy.exploration_head_share must be between 0 and 1, got {}",
                self.exploration_head_share
            ));
        }
        if !(1..=64).contains(&self.exploration_head_size) {
            return Err(format!("policy.exploration_head_size must be 1 to 64, got {}", self.exploration_head_size));
        }
        Ok(())
    }
}

/// Policy parameters an arm overrides; `None` keeps the service's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engage_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_fit_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_target_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exploration_share: Option<f32>,
}

impl PolicyOverride {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Policy) -> Policy {
        Policy {
            purchase_weight: self.purchase_weight.unwrap_or(base.purchase_weight),
            engage_weight: self.engage_weight.unwrap_or(base.engage_weight),
            audience_fit_weight: self.audience_fit_weight.unwrap_or(base.audience_fit_weight),
            on_target_weight: self.on_target_weight.unwrap_or(base.on_target_weight),
            exploration_share: self.exploration_share.unwrap_or(base.exploration_share),
            exploration_uniform_share: base.exploration_uniform_share,
            exploration_head_share: base.exploration_head_share,
            exploration_head_size: base.exploration_head_size,
            cold_impressions: base.cold_impressions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_on_target_weight_scales_the_earned_credit() {
        let p = Policy { on_target_weight: 0.25, audience_fit_weight: 0.5, ..Policy::default() };
        let outside = p.score(0.2, 0.1, 0.4, 0.0);
        let inside = p.score(0.2, 0.1, 0.4, 1.0);
        let half = p.score(0.2, 0.1, 0.4, 0.5);
        assert!((outside - (0.1 + 0.01 * 0.2 + 0.5 * 0.4)).abs() < 1e-6, "{outside}");
        assert!((inside - outside - 0.25).abs() < 1e-6, "{inside} vs {outside}");
        assert!((half - outside - 0.125).abs() < 1e-6, "{half} vs {outside}");
        // A session without credit wins only when it is predicted to sell the weight more.
        let d = Policy { on_target_weight: 0.12, ..Policy::default() };
        let w = d.on_target_weight;
        assert!(d.score(0.0, 0.05, 0.5, 1.0) > d.score(0.0, 0.05 + w - 0.01, 0.4, 0.0));
        assert!(d.score(0.0, 0.05, 0.5, 1.0) < d.score(0.0, 0.05 + w + 0.01, 0.4, 0.0));
        // By default the credit reaches the score only through the model's feature.
        let d = Policy::default();
        assert_eq!(d.score(0.3, 0.05, 0.5, 1.0), d.score(0.3, 0.05, 0.5, 0.0));
    }

    #[test]
    fn weights_must_be_finite_and_not_negative() {
        assert_eq!(Policy::default().validate(), Ok(()));
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            let p = Policy { on_target_weight: bad, ..Policy::default() };
            assert!(p.validate().unwrap_err().starts_with("policy.on_target_weight"), "{bad}");
            let p = Policy { exploration_uniform_share: bad, ..Policy::default() };
            assert!(p.validate().unwrap_err().starts_with("policy.exploration_uniform_share"), "{bad}");
            let p = Policy { exploration_head_share: bad, ..Policy::default() };
            assert!(p.validate().unwrap_err().starts_with("policy.exploration_head_share"), "{bad}");
        }
        for bad in [0, 65] {
            let p = Policy { exploration_head_size: bad, ..Policy::default() };
            assert!(p.validate().unwrap_err().starts_with("policy.exploration_head_size"), "{bad}");
        }
        let over = Policy { exploration_uniform_share: 1.5, ..Policy::default() };
        assert!(over.validate().is_err());
        assert_eq!(Policy { exploration_uniform_share: 1.0, ..Policy::default() }.validate(), Ok(()));
    }
}
