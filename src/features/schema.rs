//! The feature schema: the name, position and meaning of every model input.
//!
//! The row is laid out in blocks: one-hot blocks for categorical fields, one-hot crosses of
//! demographics with session attributes (the model learns a weight per segment × category, which is
//! what "who buys what" is), and named scalar features. Positions are compile-time constants used by
//! [`super::extract`]; [`feature_names`] lists the same blocks in the same order, and a unit test
//! checks that they agree.
//!
//! [`schema_hash`] hashes [`TRANSFORM_VERSION`] and every feature name. Renaming, adding, removing
//! or reordering a feature changes the hash by itself; changing how an existing feature is computed
//! (a smoothing prior, a cap) must bump [`TRANSFORM_VERSION`].

use std::sync::OnceLock;

use crate::domain::{AgeBand, Category, Gender, PriceBand, Surface};

/// Version of the feature transformations; bump when a feature's computation changes meaning.
pub const TRANSFORM_VERSION: &str = "fitrank-features/4";

/// Start of the user age band one-hot block.
pub const AGE: usize = 0;
/// Start of the user gender one-hot block.
pub const GENDER: usize = AGE + AgeBand::COUNT;
/// Start of the request surface one-hot block.
pub const SURFACE: usize = GENDER + Gender::COUNT;
/// Start of the session category one-hot block.
pub const CATEGORY: usize = SURFACE + Surface::COUNT;
/// Start of the session price band one-hot block.
pub const PRICE: usize = CATEGORY + Category::COUNT;
/// Start of the age band × category cross.
pub const AGE_X_CATEGORY: usize = PRICE + PriceBand::COUNT;
/// Start of the gender × category cross.
pub const GENDER_X_CATEGORY: usize = AGE_X_CATEGORY + AgeBand::COUNT * Category::COUNT;
/// Start of the age band × price band cross.
pub const AGE_X_PRICE: usize = GENDER_X_CATEGORY + Gender::COUNT * Category::COUNT;
/// Start of the audience fit × category block (the overall fit placed in the category's slot).
pub const FIT_X_CATEGORY: usize = AGE_X_PRICE + AgeBand::COUNT * PriceBand::COUNT;
/// Start of the named scalar features.
pub const SCALARS: usize = FIT_X_CATEGORY + Category::COUNT;

macro_rules! scalars {
    ($($(#[doc = $doc:literal])* $ident:ident = $name:literal;)+) => {
        /// Positions of the named scalar features.
        pub mod scalar {
            scalars!(@consts super::SCALARS; $($ident)+);
        }
        /// (name, meaning) of each scalar feature, in position order.
        pub const SCALAR_FEATURES: &[(&str, &str)] = &[$(($name, concat!($($doc),*))),+];
    };
    (@consts $at:expr; $first:ident $($rest:ident)*) => {
        #[allow(missing_docs)]
        pub const $first: usize = $at;
        scalars!(@consts $at + 1; $($rest)*);
    };
    (@consts $at:expr;) => {
        /// One past the last scalar feature.
        pub const END: usize = $at;
    };
}

scalars! {
    /// 1 when the user's language equals the session's, 0 when not, 0.5 when the user's is unknown.
    LANGUAGE_MATCH = "match.language";
    /// 1 when the session's region contains the user's, 0 when not, 0.5 when the user's is unknown.
    REGION_MATCH = "match.region";
    /// Audience fit, age component (share of the user's age band inside the declared range).
    FIT_AGE = "fit.age";
    /// Audience fit, gender component.
    FIT_GENDER = "fit.gender";
    /// Audience fit, region component.
    FIT_REGION = "fit.region";
    /// Audience fit, interests component.
    FIT_INTERESTS = "fit.interests";
    /// Overall audience fit (product of the components).
    FIT_OVERALL = "fit.overall";
    /// Share of the four target dimensions the seller declared.
    FIT_DECLARED = "fit.declared_share";
    /// Share of the declared dimensions the user's profile cannot decide.
    FIT_UNKNOWN = "fit.unknown_share";
    /// 1 when the user's interests name the session's category.
    INTEREST_IN_CATEGORY = "user.interest_in_category";
    /// ln(1 + impressions of the session).
    LOG_IMPRESSIONS = "live.log_impressions";
    /// ln of the smoothed view rate (views + 1) / (impressions + 10), capped at 1.
    LOG_VIEW_RATE = "live.log_view_rate";
    /// ln of the smoothed purchases per view (purchases + 0.4) / (views + 20).
    LOG_PURCHASE_PER_VIEW = "live.log_purchase_per_view";
    /// ln of the smoothed purchases per impression (purchases + 0.2) / (impressions + 100).
    LOG_PURCHASE_PER_IMPRESSION = "live.log_purchase_per_impression";
    /// Log-odds of the smoothed view rate, ln((views + 1) / (impressions − views + 9)): separates
    /// high rates that the log rate compresses.
    VIEW_LOGIT = "live.view_logit";
    /// ln(1 + watch seconds per view).
    LOG_WATCH_PER_VIEW = "live.log_watch_seconds_per_view";
    /// Smoothed interactions (likes, comments, shares) per view (x + 1) / (views + 10).
    INTERACTION_RATE = "live.interaction_rate";
    /// Smoothed return rate (returns + 0.5) / (purchases + 5).
    RETURN_RATE = "live.return_rate";
    /// Smoothed hide rate (hides + 0.5) / (impressions + 50).
    HIDE_RATE = "live.hide_rate";
    /// Smoothed share of viewers inside the target audience (on_target + 1) / (known + 2).
    ON_TARGET_SHARE = "live.on_target_view_share";
    /// 1 while the session has fewer than 200 impressions (little data).
    COLD = "live.cold";
    /// ln(1 + minutes since the session started), 0 before the start.
    LOG_MINUTES_LIVE = "live.log_minutes_live";
    /// ln(1 + impressions in the 5-minute window).
    LOG_IMPRESSIONS_5M = "live.log_impressions_5m";
    /// ln of the smoothed view rate (views + 1) / (impressions + 10) in the 1-minute window, capped at 1.
    LOG_VIEW_RATE_1M = "live.log_view_rate_1m";
    /// The same over the 5-minute window.
    LOG_VIEW_RATE_5M = "live.log_view_rate_5m";
    /// The same over the 1-hour window.
    LOG_VIEW_RATE_1H = "live.log_view_rate_1h";
    /// ln of the smoothed purchases per impression (purchases + 0.2) / (impressions + 100), 5-minute window.
    LOG_PURCHASE_RATE_5M = "live.log_purchase_rate_5m";
    /// The same over the 1-hour window.
    LOG_PURCHASE_RATE_1H = "live.log_purchase_rate_1h";
    /// ln(1 + watch seconds per view) in the 5-minute window.
    LOG_WATCH_PER_VIEW_5M = "live.log_watch_seconds_per_view_5m";
    /// ln of how over-represented the user's segment (age band × gender) is among the session's
    /// profiled viewers, against an even split: ln(32 · (views_segment + 1) / (profiled_views + 32)).
    SEGMENT_VIEW_LIFT = "live.segment_view_lift";
    /// ln of how much more the user's segment (age band × gender) buys per view in this session
    /// than the session's viewers overall: ln(((p_s + 20·r) / (v_s + 20)) / r), where p_s and v_s
    /// are the segment's purchases and views and r = (purchases + 0.4) / (views + 20) the
    /// session's smoothed purchases per view (a segment with few views stays near 0). Negative for
    /// a segment that watches without buying.
    SEGMENT_PURCHASE_LIFT = "live.segment_purchase_lift";
    /// The same lift for the user's age band (all genders).
    AGE_PURCHASE_LIFT = "live.age_band_purchase_lift";
    /// The same lift for the user's gender (all age bands).
    GENDER_PURCHASE_LIFT = "live.gender_purchase_lift";
    /// w · |a − ā| / 10, where a is the middle of the user's age band, ā the mean middle of the
    /// age bands of the session's profiled buyers and w = n / (n + 2) for n such buyers: how far
    /// in decades the user is from who buys here (0 while nobody of a known age band has bought,
    /// or when the user's age band is unknown).
    BUYER_AGE_GAP = "live.buyer_age_gap";
    /// w · ((a − ā) / 10)², the square of the same gap, so that a linear model can form a bell
    /// around the buyers' ages.
    BUYER_AGE_GAP_SQUARED = "live.buyer_age_gap_squared";
    /// The targeting credit the session has earned for the user's group (age band × gender): how
    /// far the group stands above an even share of the session's buyers, with the declared target
    /// as a prior of a few buyers (`domain::learned`), in [0, 1].
    TARGETING_CREDIT = "live.targeting_credit";
    /// sign(a) · ln(1 + |a|) of the user's decayed engagement a with the session's category.
    USER_CATEGORY_AFFINITY = "user.category_affinity";
    /// The user's decayed engagement with the category over their total (+1).
    USER_CATEGORY_SHARE = "user.category_share";
    /// ln(1 + the user's total decayed engagement).
    USER_LOG_ACTIVITY = "user.log_activity";
    /// ln of the user's smoothed view rate over everything shown to them, decayed:
    /// (views + 1) / (impressions + 5), capped at 1. Some users view much more than others.
    USER_LOG_VIEW_RATE = "user.log_view_rate";
    /// ln(1 + the user's decayed impressions): how much the view rate is based on.
    USER_LOG_IMPRESSIONS = "user.log_impressions";
    /// Log-odds of the user's smoothed view rate, ln((views + 1) / (impressions − views + 4)).
    USER_VIEW_LOGIT = "user.view_logit";
    /// ln of how much more often the user views sessions of this category than whatever they are
    /// shown: ln(((v_c + 5·r) / (i_c + 5)) / r), where v_c and i_c are the user's decayed views and
    /// impressions of the category and r = min(1, (views + 1) / (impressions + 5)) the user's own
    /// smoothed view rate (0 before the user has seen the category; a Beta-smoothed per-user term
    /// that moves with each event).
    USER_CATEGORY_VIEW_LIFT = "user.category_view_lift";
    /// ln of the user's smoothed purchases per view, decayed: (purchases + 0.2) / (views + 5),
    /// capped at 1. Far under the prior (0.04) for a user who watches and never buys.
    USER_LOG_PURCHASE_PER_VIEW = "user.log_purchase_per_view";
    /// The user's smoothed share of purchases returned, decayed: (returns + 0.5) / (purchases + 5),
    /// capped at 1.
    USER_RETURN_RATE = "user.return_rate";
    /// ln of how much more often the user views sessions of this price band than whatever they
    /// are shown: the category view lift's formula over the price band's decayed impressions and
    /// views (0 before the user has seen the band).
    USER_PRICE_BAND_VIEW_LIFT = "user.price_band_view_lift";
    /// ln of how much more the user buys per view in this price band than overall:
    /// ln(((p_b + 5·q) / (v_b + 5)) / q), where p_b and v_b are the user's decayed purchases and
    /// views in the band and q = min(1, (purchases + 0.2) / (views + 5)) the user's own smoothed
    /// purchases per view. Positive for a bargain hunter's budget band.
    USER_PRICE_BAND_PURCHASE_LIFT = "user.price_band_purchase_lift";
    /// sin(2π · UTC hour of the request / 24).
    HOUR_SIN = "ctx.hour_sin";
    /// cos(2π · UTC hour of the request / 24).
    HOUR_COS = "ctx.hour_cos";
}

/// Number of features in a row.
pub const NUM_FEATURES: usize = scalar::END;

/// Feature names in row order.
pub fn feature_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(build_names)
}

fn build_names() -> Vec<String> {
    let mut names = Vec::with_capacity(NUM_FEATURES);
    names.extend(AgeBand::ALL.iter().map(|a| format!("user.age_band={}", a.name())));
    names.extend(Gender::ALL.iter().map(|g| format!("user.gender={}", g.name())));
    names.extend(Surface::ALL.iter().map(|s| format!("ctx.surface={}", s.name())));
    names.extend(Category::ALL.iter().map(|c| format!("session.category={}", c.name())));
    names.extend(PriceBand::ALL.iter().map(|p| format!("session.price_band={}", p.name())));
    for a in AgeBand::ALL {
        names.extend(Category::ALL.iter().map(|c| format!("x.age_band={}&category={}", a.name(), c.name())));
    }
    for g in Gender::ALL {
        names.extend(Category::ALL.iter().map(|c| format!("x.gender={}&category={}", g.name(), c.name())));
    }
    for a in AgeBand::ALL {
        names.extend(PriceBand::ALL.iter().map(|p| format!("x.age_band={}&price_band={}", a.name(), p.name())));
    }
    names.extend(Category::ALL.iter().map(|c| format!("x.fit&category={}", c.name())));
    names.extend(SCALAR_FEATURES.iter().map(|(name, _)| (*name).to_owned()));
    names
}

/// Stable hash of the schema: FNV-1a 64 over [`TRANSFORM_VERSION`] and the feature names, as 16
/// lowercase hex digits.
pub fn schema_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut h = crate::hash::Fnv::default();
        h.eat(TRANSFORM_VERSION.bytes());
        for name in feature_names() {
            h.eat(*b"\n").eat(name.bytes());
        }
        format!("{:016x}", h.value())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_positions() {
        let names = feature_names();
        assert_eq!(names.len(), NUM_FEATURES);
        assert_eq!(names[GENDER], "user.gender=unknown");
        assert_eq!(names[CATEGORY], "session.category=fashion");
        assert_eq!(names[PRICE], "session.price_band=budget");
        assert_eq!(names[AGE_X_CATEGORY], "x.age_band=unknown&category=fashion");
        assert_eq!(names[GENDER_X_CATEGORY], "x.gender=unknown&category=fashion");
        assert_eq!(names[AGE_X_PRICE], "x.age_band=unknown&price_band=budget");
        assert_eq!(names[FIT_X_CATEGORY], "x.fit&category=fashion");
        assert_eq!(names[scalar::LANGUAGE_MATCH], "match.language");
        assert_eq!(names[scalar::HOUR_COS], "ctx.hour_cos");
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn hash_is_stable_hex() {
        let h = schema_hash();
        assert_eq!(h.len(), 16);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, schema_hash());
    }
}
