//! The audience a session actually reached, against the one its seller declared.
//!
//! A declaration is a claim; who views and who buys is evidence. Live stats count profiled views
//! and purchases per age band × gender ([`LiveStats::segment_views`],
//! [`LiveStats::segment_purchases`]). From them this module tells a seller what share of their
//! viewers and buyers fell inside the declared target (on the dimensions a segment can decide:
//! age and gender), which groups their buyers really are, and, once there is enough evidence, a
//! mismatch in words they can act on: "declared women 20–30; buyers so far 80% men 55–64".

use super::audience::segment_in_target;
use super::{AgeBand, Gender, LiveStats, SEGMENTS, TargetAudience};

/// Buyers needed before the buyers' shares can flag a mismatch.
pub const MIN_BUYERS: u64 = 10;
/// Profiled views needed before the viewers' shares can flag a mismatch when nobody bought yet.
pub const MIN_VIEWERS: u64 = 50;
/// A mismatch: less than this share of the evidence inside the declared target.
const INSIDE_SHARE_FLAG: f64 = 0.5;

/// One age band × gender group and its share of a session's viewers or buyers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupShare {
    pub age_band: AgeBand,
    pub gender: Gender,
    pub share: f64,
}

/// Who a session reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAudience {
    /// The declared target in words ("women 20–30 in US"; "anyone" when nothing is declared).
    pub declared: String,
    /// Views and purchases by users with a stored profile (the ones a group can be told for).
    pub profiled_views: u64,
    pub profiled_purchases: u64,
    /// Shares of those viewers and buyers inside the declared target's ages and genders; `None`
    /// when the target declares neither, or there is nobody to count yet.
    pub viewers_inside_share: Option<f64>,
    pub buyers_inside_share: Option<f64>,
    /// The largest groups, largest first, until they make up half (at most three).
    pub top_viewers: Vec<GroupShare>,
    pub top_buyers: Vec<GroupShare>,
    /// The mismatch in words, when the evidence is enough and mostly outside the target, or a
    /// session that declared nothing has enough buyers to say whom it sells to.
    pub mismatch: Option<String>,
}

/// The observed audience of a session with `stats` that declared `target`.
pub fn observed(target: &TargetAudience, stats: &LiveStats) -> ObservedAudience {
    let declares = target.has_age() || !target.genders.is_empty();
    let (views, purchases) = (&stats.segment_views, &stats.segment_purchases);
    let total = |counts: &[u32; SEGMENTS]| counts.iter().map(|c| u64::from(*c)).sum::<u64>();
    // Over the groups the target can decide (a declared age needs a known band, a declared gender
    // a known gender).
    let inside_share = |counts: &[u32; SEGMENTS]| {
        let (mut inside, mut decided) = (0u64, 0u64);
        for (band, gender, s) in groups() {
            if let Some(on) = segment_in_target(target, band, gender) {
                decided += u64::from(counts[s]);
                inside += u64::from(on) * u64::from(counts[s]);
            }
        }
        (declares && decided > 0).then(|| inside as f64 / decided as f64)
    };
    let mut o = ObservedAudience {
        declared: describe(target),
        profiled_views: total(views),
        profiled_purchases: total(purchases),
        viewers_inside_share: inside_share(views),
        buyers_inside_share: inside_share(purchases),
        top_viewers: top_groups(views),
        top_buyers: top_groups(purchases),
        mismatch: None,
    };
    o.mismatch = mismatch(&o, declares);
    o
}

/// The flag, if the evidence calls for one.
fn mismatch(o: &ObservedAudience, declares: bool) -> Option<String> {
    let who = |groups: &[GroupShare]| groups.iter().map(describe_group).collect::<Vec<_>>().join(", ");
    if !declares {
        return (o.profiled_purchases >= MIN_BUYERS && !o.top_buyers.is_empty()).then(|| {
            format!("declared {}; buyers so far {}: consider targeting them", o.declared, who(&o.top_buyers))
        });
    }
    if o.profiled_purchases >= MIN_BUYERS {
        let inside = o.buyers_inside_share?;
        return (inside < INSIDE_SHARE_FLAG).then(|| {
            format!(
                "declared {}; buyers so far {} ({:.0}% inside the target)",
                o.declared,
                who(&o.top_buyers),
                100.0 * inside
            )
        });
    }
    let inside = o.viewers_inside_share?;
    (o.profiled_views >= MIN_VIEWERS && inside < INSIDE_SHARE_FLAG).then(|| {
        format!(
            "declared {}; viewers so far {} ({:.0}% inside the target), {} buyers yet",
            o.declared,
            who(&o.top_viewers),
            100.0 * inside,
            o.profiled_purchases
        )
    })
}

/// Every (age band, gender, segment index) a profile can have, unknown values included.
pub fn groups() -> impl Iterator<Item = (AgeBand, Gender, usize)> {
    AgeBand::ALL.iter().flat_map(|a| Gender::ALL.iter().map(move |g| (*a, *g, a.index() * Gender::COUNT + g.index())))
}

/// The largest groups of `counts`, largest first, until they make up half of it (at most three).
fn top_groups(counts: &[u32; SEGMENTS]) -> Vec<GroupShare> {
    let all: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    if all == 0 {
        return Vec::new();
    }
    let mut ranked: Vec<(AgeBand, Gender, u32)> =
        groups().filter(|(_, _, s)| counts[*s] > 0).map(|(a, g, s)| (a, g, counts[s])).collect();
    ranked.sort_by(|x, y| y.2.cmp(&x.2).then((x.0.index(), x.1.index()).cmp(&(y.0.index(), y.1.index()))));
    let mut out = Vec::new();
    let mut covered = 0.0;
    for (age_band, gender, n) in ranked.into_iter().take(3) {
        let share = f64::from(n) / all as f64;
        out.push(GroupShare { age_band, gender, share });
        covered += share;
        if covered >= 0.5 {
            break;
        }
    }
    out
}

/// The largest groups in words: "62% men 55–64, 21% women 45–54"; empty without any.
pub fn describe_shares(groups: &[GroupShare]) -> String {
    groups.iter().map(describe_group).collect::<Vec<_>>().join(", ")
}

/// "80% men 55–64".
fn describe_group(g: &GroupShare) -> String {
    let who = match g.gender {
        Gender::Female => "women",
        Gender::Male => "men",
        Gender::Other => "people of other genders",
        Gender::Unknown => "people",
    };
    let ages = match g.age_band {
        AgeBand::Unknown => "of unknown age".to_owned(),
        band => band.name().replace('-', "–"),
    };
    format!("{:.0}% {who} {ages}", 100.0 * g.share)
}

/// A target in words: "women 20–30 in US", "men 55+", "anyone".
pub fn describe(target: &TargetAudience) -> String {
    let mut parts = Vec::new();
    let genders: Vec<&str> = target
        .genders
        .iter()
        .map(|g| match g {
            Gender::Female => "women",
            Gender::Male => "men",
            Gender::Other => "other genders",
            Gender::Unknown => "unknown",
        })
        .collect();
    parts.push(if genders.is_empty() { "people".to_owned() } else { genders.join(" and ") });
    match (target.min_age, target.max_age) {
        (0, 0) => {}
        (lo, 0) => parts.push(format!("{lo}+")),
        (0, hi) => parts.push(format!("up to {hi}")),
        (lo, hi) => parts.push(format!("{lo}–{hi}")),
    }
    if !target.regions.is_empty() {
        parts.push(format!("in {}", target.regions.join(", ")));
    }
    if !target.interests.is_empty() {
        parts.push(format!("into {}", target.interests.join(", ")));
    }
    if parts.len() == 1 && genders.is_empty() { "anyone".to_owned() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn women_20_30() -> TargetAudience {
        TargetAudience { min_age: 20, max_age: 30, genders: vec![Gender::Female], ..Default::default() }
    }

    fn stats(views: &[(AgeBand, Gender, u32)], buys: &[(AgeBand, Gender, u32)]) -> LiveStats {
        let mut s = LiveStats::default();
        for (a, g, n) in views {
            s.segment_views[a.index() * Gender::COUNT + g.index()] += n;
        }
        for (a, g, n) in buys {
            s.segment_purchases[a.index() * Gender::COUNT + g.index()] += n;
        }
        s
    }

    #[test]
    fn the_sportswear_stream_that_sold_to_older_men_is_flagged_in_words() {
        let s = stats(
            &[(AgeBand::A55To64, Gender::Male, 80), (AgeBand::A25To34, Gender::Female, 20)],
            &[(AgeBand::A55To64, Gender::Male, 8), (AgeBand::A25To34, Gender::Female, 2)],
        );
        let o = observed(&women_20_30(), &s);
        assert_eq!(o.declared, "women 20–30");
        assert_eq!((o.profiled_views, o.profiled_purchases), (100, 10));
        assert_eq!(o.buyers_inside_share, Some(0.2));
        assert_eq!(o.viewers_inside_share, Some(0.2));
        assert_eq!(
            o.mismatch.as_deref(),
            Some("declared women 20–30; buyers so far 80% men 55–64 (20% inside the target)")
        );
    }

    #[test]
    fn no_flag_without_enough_evidence_or_when_the_target_holds() {
        let few = stats(&[(AgeBand::A55To64, Gender::Male, 30)], &[(AgeBand::A55To64, Gender::Male, 9)]);
        assert_eq!(observed(&women_20_30(), &few).mismatch, None, "9 buyers and 30 views are not enough");
        let right = stats(&[(AgeBand::A25To34, Gender::Female, 90)], &[(AgeBand::A18To24, Gender::Female, 12)]);
        let o = observed(&women_20_30(), &right);
        assert_eq!(o.mismatch, None);
        assert_eq!(o.buyers_inside_share, Some(1.0), "18–24 overlaps 20–30 by 5 of 7 years: inside");
    }

    #[test]
    fn viewers_flag_a_mismatch_before_anyone_buys() {
        let s = stats(&[(AgeBand::A45To54, Gender::Male, 60), (AgeBand::A25To34, Gender::Female, 5)], &[]);
        let o = observed(&women_20_30(), &s);
        assert_eq!(
            o.mismatch.as_deref(),
            Some("declared women 20–30; viewers so far 92% men 45–54 (8% inside the target), 0 buyers yet")
        );
    }

    #[test]
    fn an_undeclared_session_is_told_whom_it_sells_to() {
        let s = stats(&[], &[(AgeBand::A35To44, Gender::Female, 7), (AgeBand::A25To34, Gender::Female, 5)]);
        let o = observed(&TargetAudience::default(), &s);
        assert_eq!(o.declared, "anyone");
        assert_eq!(o.buyers_inside_share, None);
        assert_eq!(
            o.mismatch.as_deref(),
            Some("declared anyone; buyers so far 58% women 35–44: consider targeting them")
        );
    }

    #[test]
    fn targets_in_words() {
        let t = TargetAudience {
            min_age: 55,
            max_age: 0,
            genders: vec![Gender::Male],
            regions: vec!["US".into(), "GB".into()],
            interests: vec!["golf".into()],
        };
        assert_eq!(describe(&t), "men 55+ in US, GB into golf");
        assert_eq!(describe(&TargetAudience { max_age: 30, ..Default::default() }), "people up to 30");
    }
}
