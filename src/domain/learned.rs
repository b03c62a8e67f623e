//! The audience a session has earned: who its buyers are, with the seller's declaration as a prior
//! that evidence overrides.
//!
//! Ranking gives a session targeting credit for a user inside its audience
//! (`Policy::on_target_weight` × [`credit`]). A declaration is a claim, so the audience is
//! learned: a Dirichlet posterior over the groups its buyers come from, a group being a known age
//! band × a gender ([`GROUPS`] of them). The prior puts [`PRIOR_BUYERS`] pseudo-buyers evenly on
//! the groups the declared target contains (on every group when it declares neither age nor
//! gender); each purchase by a buyer of known age band adds one to the buyer's group. The user's
//! group then has the posterior share of buyers
//!
//! ```text
//! π = (PRIOR_BUYERS · prior_share + group_buyers) / (PRIOR_BUYERS + buyers)
//! ```
//!
//! and the credit is how far π stands above an even spread over every group, reaching 1 at the
//! share each group has in an audience of [`AUDIENCE_GROUPS`] groups:
//! `credit = clamp((π − 1/GROUPS) / (1/AUDIENCE_GROUPS − 1/GROUPS), 0, 1)`, times the target's
//! region and interest components for the user (1 inside or undeclared, 0 outside).
//!
//! What follows from it:
//! - declaring nothing, or everyone, earns nothing: the prior is (nearly) even, π ≈ 1/GROUPS;
//! - a narrow declaration earns full credit inside it from the first impression, and keeps it
//!   while its buyers confirm it;
//! - a wrong declaration loses its credit to the groups that really buy as purchases accumulate:
//!   with two declared groups and 20 buyers elsewhere, a declared group keeps 0.37 and a group
//!   with half the buyers has 1;
//! - a session that declared nothing earns credit for the groups its buyers come from.

use super::audience::{AudienceFit, segment_in_target};
use super::{AgeBand, Gender, TargetAudience};

/// Pseudo-buyers of the declared prior: how many purchases a declaration is worth as evidence.
pub const PRIOR_BUYERS: f32 = 6.0;
/// Groups a buyer can fall in: known age bands × genders (unknown gender included).
pub const GROUPS: usize = (AgeBand::COUNT - 1) * Gender::COUNT;
/// A group of an audience this many groups wide gets full credit.
pub const AUDIENCE_GROUPS: f32 = 4.0;

/// The credit a session with `target` has earned for a user of `band` × `gender` whose fit against
/// the target is `fit`, when `group_buyers` of its `buyers` (buyers of known age band) are of the
/// user's group; in [0, 1]. 0 for a user of unknown age band, or of unknown gender when the target
/// declares genders: their group cannot be told.
#[inline]
pub fn credit(
    target: &TargetAudience,
    fit: &AudienceFit,
    band: AgeBand,
    gender: Gender,
    group_buyers: u32,
    buyers: u32,
) -> f32 {
    if band == AgeBand::Unknown {
        return 0.0;
    }
    let prior_share = match segment_in_target(target, band, gender) {
        Some(true) => 1.0 / declared_groups(target) as f32,
        Some(false) => 0.0,
        None if target.has_age() || !target.genders.is_empty() => return 0.0,
        None => 1.0 / GROUPS as f32,
    };
    let share = (PRIOR_BUYERS * prior_share + group_buyers as f32) / (PRIOR_BUYERS + buyers as f32);
    let even = 1.0 / GROUPS as f32;
    let over = ((share - even) / (1.0 / AUDIENCE_GROUPS - even)).clamp(0.0, 1.0);
    over * fit.region * fit.interests
}

/// How many groups the ages and genders of `target` contain (at least 1); `target` declares one
/// of them.
fn declared_groups(target: &TargetAudience) -> usize {
    // Any declared gender decides the age bands (an undeclared one counts every gender in).
    let gender = target.genders.first().copied().unwrap_or(Gender::Female);
    let bands = AgeBand::ALL[1..].iter().filter(|b| segment_in_target(target, **b, gender) == Some(true)).count();
    let genders = if target.genders.is_empty() {
        Gender::COUNT
    } else {
        Gender::ALL.iter().filter(|g| target.genders.contains(g)).count()
    };
    (bands * genders).max(1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::UserProfile;
    use crate::domain::audience::fit;

    fn credit_for(target: &TargetAudience, band: AgeBand, gender: Gender, group_buyers: u32, buyers: u32) -> f32 {
        let user = UserProfile { age_band: band, gender, region: "US-CA".into(), ..Default::default() };
        credit(target, &fit(&user, target), band, gender, group_buyers, buyers)
    }

    fn women_20_30() -> TargetAudience {
        TargetAudience { min_age: 20, max_age: 30, genders: vec![Gender::Female], ..Default::default() }
    }

    #[test]
    fn declaring_nothing_or_everyone_earns_nothing_until_buyers_say_who() {
        let anyone = TargetAudience::default();
        assert_eq!(credit_for(&anyone, AgeBand::A25To34, Gender::Female, 0, 0), 0.0);
        let adults = TargetAudience { min_age: 18, ..Default::default() };
        assert!(credit_for(&adults, AgeBand::A25To34, Gender::Female, 0, 0) < 0.05);
        // Half of 20 buyers are women 35–44: they are the audience now; men 25–34 are not.
        assert_eq!(credit_for(&anyone, AgeBand::A35To44, Gender::Female, 10, 20), 1.0);
        assert_eq!(credit_for(&anyone, AgeBand::A25To34, Gender::Male, 0, 20), 0.0);
    }

    #[test]
    fn a_narrow_declaration_earns_full_credit_until_the_evidence_contradicts_it() {
        let t = women_20_30();
        assert_eq!(t.genders.len(), 1);
        assert_eq!(credit_for(&t, AgeBand::A25To34, Gender::Female, 0, 0), 1.0);
        assert_eq!(credit_for(&t, AgeBand::A55To64, Gender::Male, 0, 0), 0.0);
        // 20 buyers, all men 55–64: the declared group keeps 0.37, the buyers' group has it all.
        let kept = credit_for(&t, AgeBand::A25To34, Gender::Female, 0, 20);
        assert!((kept - 0.37).abs() < 0.01, "{kept}");
        assert_eq!(credit_for(&t, AgeBand::A55To64, Gender::Male, 20, 20), 1.0);
        assert!(credit_for(&t, AgeBand::A25To34, Gender::Female, 0, 200) < 0.01);
    }

    #[test]
    fn groups_that_cannot_be_told_and_other_regions_get_nothing() {
        let t = women_20_30();
        assert_eq!(credit_for(&t, AgeBand::Unknown, Gender::Female, 5, 5), 0.0);
        assert_eq!(credit_for(&t, AgeBand::A25To34, Gender::Unknown, 5, 5), 0.0);
        let in_us = TargetAudience { regions: vec!["US".into()], ..women_20_30() };
        let user = UserProfile {
            age_band: AgeBand::A25To34,
            gender: Gender::Female,
            region: "FR".into(),
            ..Default::default()
        };
        assert_eq!(credit(&in_us, &fit(&user, &in_us), AgeBand::A25To34, Gender::Female, 0, 0), 0.0);
    }

    #[test]
    fn declared_groups_count_bands_times_genders() {
        assert_eq!(declared_groups(&women_20_30()), 2, "18–24 (5 of 7 years) and 25–34 (6 of 10)");
        assert_eq!(declared_groups(&TargetAudience { genders: vec![Gender::Male], ..Default::default() }), 7);
        assert_eq!(declared_groups(&TargetAudience { min_age: 18, ..Default::default() }), 6 * Gender::COUNT);
    }

    proptest! {
        #[test]
        fn credit_is_a_share_and_more_of_the_buyers_never_lowers_it(
            band in 0..AgeBand::COUNT, gender in 0..Gender::COUNT, min_age in 0u32..90, span in 0u32..40,
            genders in proptest::collection::vec(1..Gender::COUNT, 0..3), group in 0u32..100, others in 0u32..100,
        ) {
            let target = TargetAudience {
                min_age,
                max_age: if span == 0 { 0 } else { min_age + span },
                genders: genders.into_iter().map(|g| Gender::ALL[g]).collect(),
                ..Default::default()
            };
            let (band, gender) = (AgeBand::ALL[band], Gender::ALL[gender]);
            let c = credit_for(&target, band, gender, group, group + others);
            prop_assert!((0.0..=1.0).contains(&c), "{c}");
            prop_assert!(credit_for(&target, band, gender, group + 1, group + others + 1) >= c);
        }
    }
}
