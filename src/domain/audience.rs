//! Audience fit: how well a user matches the audience a seller declared for a session.
//!
//! This is the measure behind "did the stream reach the people it was meant for". It is used by
//! feature extraction (as model input and as the `audience_fit` returned by `Rank`) and by live
//! statistics (on-target share of viewers), so both agree by construction.
//!
//! Each declared dimension gives a component in [0, 1]:
//! - age: the share of the user's age band that lies inside `[min_age, max_age]`;
//! - gender, region: 1 inside, 0 outside (a region "US" contains "US-CA");
//! - interests: 1 when the user shares at least one declared interest, else 0.
//!
//! An undeclared dimension is 1 (the seller targets anyone). A declared dimension the user's
//! profile does not know is [`UNKNOWN`]. The overall fit is the product of the components.

use super::{AgeBand, Gender, TargetAudience, UserProfile};

/// Component value when the target declares a dimension but the user's value is unknown.
pub const UNKNOWN: f32 = 0.5;

/// Oldest age used for an open upper bound.
const MAX_AGE: u32 = 120;

/// The per-dimension match of a user against a target audience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudienceFit {
    pub age: f32,
    pub gender: f32,
    pub region: f32,
    pub interests: f32,
    /// How many of the four dimensions the seller declared.
    pub declared: u8,
    /// How many declared dimensions the user's profile could not decide.
    pub unknown: u8,
}

impl AudienceFit {
    /// Product of the components, in [0, 1].
    pub fn overall(&self) -> f32 {
        self.age * self.gender * self.region * self.interests
    }

    /// Whether the user is inside the target (overall fit at least 0.5), or `None` when a declared
    /// dimension is unknown for this user.
    pub fn in_target(&self) -> Option<bool> {
        in_target(self.overall(), self.unknown > 0)
    }
}

/// Whether a user with this overall fit is inside the target, or `None` when a declared dimension
/// is unknown for the user. The one definition, also applied to logged rows (`fit.overall`,
/// `fit.unknown_share`).
pub fn in_target(overall: f32, any_unknown: bool) -> Option<bool> {
    (!any_unknown).then_some(overall >= 0.5)
}

/// Computes the fit of `user` against `target`. Inlined into the extractor, which reads the
/// result as a vector: returned through memory, the scalar stores stalled that read.
#[inline]
pub fn fit(user: &UserProfile, target: &TargetAudience) -> AudienceFit {
    let mut declared = 0;
    let mut unknown = 0;
    let mut component = |is_declared: bool, value: Option<f32>| -> f32 {
        if !is_declared {
            return 1.0;
        }
        declared += 1;
        value.unwrap_or_else(|| {
            unknown += 1;
            UNKNOWN
        })
    };
    let age = component(target.has_age(), age_overlap(user.age_band, target));
    let gender = component(
        !target.genders.is_empty(),
        (user.gender != Gender::Unknown).then(|| f32::from(u8::from(target.genders.contains(&user.gender)))),
    );
    let region = component(
        !target.regions.is_empty(),
        (!user.region.is_empty())
            .then(|| f32::from(u8::from(target.regions.iter().any(|r| region_contains(r, &user.region))))),
    );
    let interests = component(
        !target.interests.is_empty(),
        (!user.interests.is_empty())
            .then(|| f32::from(u8::from(user.interests.iter().any(|i| target.interests.contains(i))))),
    );
    AudienceFit { age, gender, region, interests, declared, unknown }
}

/// Whether users of `band` × `gender` are inside the ages and genders `target` declares (its
/// regions and interests aside: a group does not have them), by the same rule as [`in_target`];
/// `None` when the target declares neither, or declares one the group leaves unknown.
pub fn segment_in_target(target: &TargetAudience, band: AgeBand, gender: Gender) -> Option<bool> {
    let declared_gender = !target.genders.is_empty();
    if !target.has_age() && !declared_gender {
        return None;
    }
    let age = if target.has_age() { age_overlap(band, target)? } else { 1.0 };
    let gender = match (declared_gender, gender) {
        (false, _) => 1.0,
        (true, Gender::Unknown) => return None,
        (true, g) => f32::from(u8::from(target.genders.contains(&g))),
    };
    in_target(age * gender, false)
}

/// Share of the band's ages inside the target range; `None` for an unknown band.
fn age_overlap(band: AgeBand, target: &TargetAudience) -> Option<f32> {
    let (lo, hi) = band.range()?;
    let t_lo = target.min_age;
    let t_hi = if target.max_age == 0 { MAX_AGE } else { target.max_age };
    let inside = hi.min(t_hi).saturating_add(1).saturating_sub(lo.max(t_lo));
    Some(inside as f32 / (hi - lo + 1) as f32)
}

/// Whether the targeted region `target` contains the user's region `user` ("US" contains "US-CA").
pub fn region_contains(target: &str, user: &str) -> bool {
    user.eq_ignore_ascii_case(target)
        || (user.len() > target.len()
            && user.as_bytes()[target.len()] == b'-'
            && user[..target.len()].eq_ignore_ascii_case(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(age: AgeBand, gender: Gender, region: &str) -> UserProfile {
        UserProfile { age_band: age, gender, region: region.into(), ..Default::default() }
    }

    fn women_20_30_us() -> TargetAudience {
        TargetAudience {
            min_age: 20,
            max_age: 30,
            genders: vec![Gender::Female],
            regions: vec!["US".into()],
            interests: vec![],
        }
    }

    #[test]
    fn inside_partly_and_outside() {
        let t = women_20_30_us();
        let inside = fit(&user(AgeBand::A18To24, Gender::Female, "US-CA"), &t);
        assert!((inside.age - 5.0 / 7.0).abs() < 1e-6);
        assert_eq!((inside.gender, inside.region), (1.0, 1.0));
        assert_eq!(inside.in_target(), Some(true));

        let man_55 = fit(&user(AgeBand::A55To64, Gender::Male, "US"), &t);
        assert_eq!(man_55.overall(), 0.0);
        assert_eq!(man_55.in_target(), Some(false));
    }

    #[test]
    fn unknown_and_undeclared() {
        let t = women_20_30_us();
        let anon = fit(&UserProfile::default(), &t);
        assert_eq!(anon.unknown, 3);
        assert_eq!(anon.in_target(), None);
        assert!((anon.overall() - 0.125).abs() < 1e-6);

        let anyone = fit(&user(AgeBand::A65Plus, Gender::Male, "FR"), &TargetAudience::default());
        assert_eq!(anyone.overall(), 1.0);
        assert_eq!(anyone.declared, 0);
    }

    #[test]
    fn region_prefix_needs_a_dash() {
        assert!(region_contains("US", "us-ca"));
        assert!(!region_contains("US", "USA"));
        assert!(!region_contains("US-CA", "US"));
    }
}
