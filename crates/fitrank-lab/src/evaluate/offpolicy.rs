//! Off-policy estimates of a candidate policy's purchase rate from logged placements.
//!
//! For each logged ranking, the candidate policy picks its top item among the logged items (scored
//! with the candidate model on the rows that were served). Where it agrees with the item the
//! logging policy placed first, that ranking's reward counts with weight 1 / (probability with
//! which the logging policy placed it there, the feature log's `propensity`):
//!
//! - **IPS**: (1/N) Σ wᵢ·rᵢ, with a normal 95% interval from the per-ranking terms;
//! - **SNIPS**: Σ wᵢ·rᵢ / Σ wᵢ, with a delta-method 95% interval.
//!
//! The estimates are unbiased only where the logging policy could have placed the candidate's
//! choice first (propensity > 0); a deterministic logging policy (propensity 1 everywhere) only
//! tells about rankings where the two policies agree. Exploration that records its placement
//! probabilities is what makes these estimates informative.

use serde::Serialize;

use crate::report::stats::{self, Z_95};

/// The estimate for one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct OffPolicyEstimate {
    /// Rankings with a logged top item.
    pub rankings: usize,
    /// Rankings where the candidate's top item is the logged one.
    pub matched: usize,
    pub ips: f64,
    pub ips_ci: (f64, f64),
    pub snips: f64,
    pub snips_ci: (f64, f64),
    /// The logging policy's own top-slot purchase rate, for comparison.
    pub logged: f64,
}

/// One logged item of a ranking.
#[derive(Debug, Clone, Copy)]
pub struct LoggedItem {
    pub position: u32,
    pub propensity: f64,
    pub reward: f64,
    /// The candidate policy's score of this item.
    pub candidate_score: f64,
}

/// Estimates the candidate's top-slot reward from `rankings` (each the logged items of one ranking).
pub fn top_slot(rankings: &[Vec<LoggedItem>]) -> Option<OffPolicyEstimate> {
    let mut terms = Vec::new();
    let mut logged_rewards = 0.0;
    let mut matched = 0;
    for items in rankings {
        let Some(top) = items.iter().find(|i| i.position == 0) else { continue };
        if !(top.propensity > 0.0 && top.propensity <= 1.0) {
            continue;
        }
        let choice = items.iter().max_by(|a, b| a.candidate_score.total_cmp(&b.candidate_score))?;
        let w = if choice.position == 0 { 1.0 / top.propensity } else { 0.0 };
        matched += usize::from(w > 0.0);
        logged_rewards += top.reward;
        terms.push((w * top.reward, w));
    }
    let n = terms.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (ips, var, _) = stats::moments(&terms.iter().map(|t| t.0).collect::<Vec<_>>());
    let half = Z_95 * (var / nf).sqrt();
    let (snips, snips_half) = match stats::ratio(&terms) {
        Some(r) => (r.value, Z_95 * r.variance.max(0.0).sqrt()),
        None => (f64::NAN, f64::NAN),
    };
    Some(OffPolicyEstimate {
        rankings: n,
        matched,
        ips,
        ips_ci: (ips - half, ips + half),
        snips,
        snips_ci: (snips - snips_half, snips + snips_half),
        logged: logged_rewards / nf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// A logging policy that puts a random one of two items first (propensity 1/2); item "good"
    /// buys with probability 0.6 at the top, "bad" with 0.2. A candidate that always puts "good"
    /// first is worth 0.6; the logging policy 0.4.
    fn logs(n: usize, seed: u64, candidate_prefers_good: bool) -> Vec<Vec<LoggedItem>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let good_first = rng.gen_bool(0.5);
                let reward = f64::from(u8::from(rng.gen_bool(if good_first { 0.6 } else { 0.2 })));
                let score = |good: bool| if good == candidate_prefers_good { 1.0 } else { 0.0 };
                vec![
                    LoggedItem { position: 0, propensity: 0.5, reward, candidate_score: score(good_first) },
                    LoggedItem { position: 1, propensity: 0.5, reward: 0.0, candidate_score: score(!good_first) },
                ]
            })
            .collect()
    }

    #[test]
    fn ips_and_snips_recover_the_candidate_value() {
        let e = top_slot(&logs(20_000, 4, true)).unwrap();
        assert!((e.logged - 0.4).abs() < 0.015, "{e:?}");
        for (value, (lo, hi)) in [(e.ips, e.ips_ci), (e.snips, e.snips_ci)] {
            assert!((value - 0.6).abs() < 0.02, "{e:?}");
            assert!(lo < 0.6 && 0.6 < hi, "the interval covers the truth: {e:?}");
        }
        let worse = top_slot(&logs(20_000, 5, false)).unwrap();
        assert!(worse.ips_ci.1 < e.ips_ci.0, "a candidate preferring the bad item estimates lower");
        assert!((worse.snips - 0.2).abs() < 0.02);
    }

    #[test]
    fn intervals_cover_the_truth_about_95_percent_of_the_time() {
        let covered = (0..200)
            .filter(|seed| {
                let e = top_slot(&logs(400, *seed, true)).unwrap();
                e.ips_ci.0 < 0.6 && 0.6 < e.ips_ci.1
            })
            .count();
        assert!((180..=200).contains(&covered), "{covered} of 200 intervals cover 0.6");
    }
}
