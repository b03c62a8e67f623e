//! Off-policy estimates of a candidate policy's purchase rate from logged placements.
//!
//! For each logged ranking, the candidate policy picks its top item among the logged items (scored
//! with the candidate model on the logged rows: the returned items and, from an export with
//! `--candidates`, the best unreturned candidates, so the choice is made among what the logging
//! policy saw). Where it agrees with the item the logging policy placed first, that ranking's
//! reward counts with weight wᵢ = 1 / (probability with which the logging policy placed it there,
//! the feature log's `propensity`), else wᵢ = 0:
//!
//! - **IPS**: (1/N) Σ wᵢ·rᵢ, with a normal 95% interval from the per-ranking terms;
//! - **SNIPS**: Σ wᵢ·rᵢ / Σ wᵢ, with a delta-method 95% interval;
//! - **doubly robust**: (1/N) Σ [ρ̂(choiceᵢ) + wᵢ·(rᵢ − ρ̂(topᵢ))], where the reward model ρ̂ is the
//!   *serving* model's purchase probability of the item (logged for every scored candidate)
//!   recalibrated to top-slot purchases (a logistic fit on its logit of the rewards of every
//!   returned item, with an offset per position; see [`RewardModel`]) on the other four of five
//!   folds of rankings, so no ranking's reward fits its own correction.
//!   Unbiased when the propensities are right, and of lower variance the better ρ̂ is. The
//!   candidate's own probabilities are not used for ρ̂: a candidate that disagrees with the
//!   logging policy would extrapolate its calibration where no logged top lies (a model with
//!   negated weights was estimated at 0.15–0.26 against a truth of 0.014 that way).
//!
//! For the whole slate, [`slate`] sums per-position estimates under a position model (IPS, SNIPS,
//! and doubly robust with the same reward model read at each position): position
//! k counts in the rankings whose first k+1 logged items are the candidate's first k+1, weighted
//! by the inverse probability of that logged prefix.
//!
//! The effective sample size (Σw)² / Σw² says how many rankings the estimate really rests on; when
//! it is below [`MIN_SUPPORT`] of the rankings or under 100, the logging policy gave the candidate
//! too little support and [`OffPolicyEstimate::warning`] says so.
//!
//! The estimates are unbiased only where the logging policy could have placed the candidate's
//! choice first (propensity > 0); a deterministic logging policy (propensity 1 everywhere) only
//! tells about rankings where the two policies agree. Exploration that records its placement
//! probabilities is what makes these estimates informative.

use ndarray::{Array1, Array2};
use serde::Serialize;

use crate::report::stats::{self, Z_95};
use crate::train::solver::{self, SparseRows};

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
    pub doubly_robust: f64,
    pub doubly_robust_ci: (f64, f64),
    /// The reward model's mean value of the candidate's choices (the doubly robust estimate
    /// without its correction): biased wherever ρ̂ is, but not by little support.
    pub direct_method: f64,
    /// (Σw)² / Σw².
    pub effective_sample_size: f64,
    /// Set when the logging policy gave the candidate too little support to trust the estimates.
    pub warning: Option<String>,
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
    /// A purchase probability of this item for the reward model: the serving model's, logged
    /// with the item (the candidate's own when the data has none).
    pub reward_p_purchase: f64,
}

/// Below this share of the rankings, the effective sample size draws a warning.
pub const MIN_SUPPORT: f64 = 0.01;

/// Folds of the reward model's cross-fitting.
const FOLDS: usize = 5;

/// The estimate of a candidate's purchases over the first positions of the slate.
///
/// Under a position model the purchases at position k depend on the items placed up to k. The
/// candidate's purchases at k are then estimated without bias from the rankings whose first k+1
/// logged items are exactly the candidate's first k+1, weighted by 1 / (the probability of that
/// logged prefix: the product of its items' logged propensities, each given the items before it),
/// per position by IPS and by SNIPS (self-normalized per position); the slate's value is the sum
/// over positions. Support shrinks with depth: each position's effective sample size is reported.
#[derive(Debug, Clone, Serialize)]
pub struct SlateEstimate {
    pub rankings: usize,
    /// Positions summed: the leading positions where some logged ranking matches the candidate's
    /// prefix (at most the depth asked for). A position without a single match cannot be
    /// estimated; it is left out, not counted as no purchases, and `warning` says so.
    pub depth: usize,
    /// Purchases per ranking over the first `depth` positions.
    pub ips: f64,
    pub ips_ci: (f64, f64),
    pub snips: f64,
    pub snips_ci: (f64, f64),
    /// Per position k, ρ̂ of the candidate's item there plus the prefix-weighted error of ρ̂ on
    /// the logged one, summed over positions (the reward model of the top-slot estimate, read at
    /// each position, cross-fitted the same way): the deep positions, where few prefixes match,
    /// lean on ρ̂ instead of on a handful of rankings.
    pub doubly_robust: f64,
    pub doubly_robust_ci: (f64, f64),
    /// Per position: (SNIPS purchases at that position, rankings whose prefix matched, effective
    /// sample size).
    pub positions: Vec<(f64, usize, f64)>,
    /// The logging policy's own purchases per ranking over the first `depth` positions.
    pub logged: f64,
    /// The logging policy's own purchases per ranking at each position asked for.
    pub logged_positions: Vec<f64>,
    /// Set when a position's effective sample size is below 100 rankings.
    pub warning: Option<String>,
}

/// Estimates the candidate's purchases over the first `depth` positions of its slate.
pub fn slate(rankings: &[Vec<LoggedItem>], depth: usize, models: &RewardModels) -> Option<SlateEstimate> {
    let depth = depth.max(1);
    // weights[i][k], rewards[i][k] for ranking i at position k.
    let mut weights: Vec<Vec<f64>> = Vec::new();
    let mut rewards: Vec<Vec<f64>> = Vec::new();
    // The reward model's inputs per ranking: the candidate's and the logged item at each position.
    let mut inputs: Vec<SlateInputs> = Vec::new();
    let mut logged_positions = vec![0.0; depth];
    for (ranking, items) in rankings.iter().enumerate() {
        let mut shown: Vec<&LoggedItem> = items.iter().filter(|i| i.propensity > 0.0 && i.propensity <= 1.0).collect();
        shown.sort_by_key(|i| i.position);
        if shown.is_empty() {
            continue;
        }
        let mut candidate: Vec<&LoggedItem> = items.iter().collect();
        candidate.sort_by(|a, b| b.candidate_score.total_cmp(&a.candidate_score));
        let (mut w, mut r) = (vec![0.0; depth], vec![0.0; depth]);
        for (k, item) in shown.iter().take(depth).enumerate() {
            logged_positions[k] += item.reward;
        }
        let mut prefix_probability = 1.0;
        for k in 0..depth.min(shown.len()) {
            let agrees = candidate.get(k).is_some_and(|c| std::ptr::eq(*c, shown[k]));
            if !agrees {
                break;
            }
            prefix_probability *= shown[k].propensity;
            w[k] = 1.0 / prefix_probability;
            r[k] = shown[k].reward;
        }
        weights.push(w);
        rewards.push(r);
        inputs.push(SlateInputs {
            candidate: candidate.iter().take(depth).map(|i| i.reward_p_purchase).collect(),
            logged: shown.iter().take(depth).map(|i| i.reward_p_purchase).collect(),
            ranking,
        });
    }
    let n = weights.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    for v in &mut logged_positions {
        *v /= nf;
    }
    let asked = depth;
    let depth = (0..asked).take_while(|k| weights.iter().any(|w| w[*k] > 0.0)).count();
    if depth == 0 {
        return None;
    }
    // IPS: the per-ranking sum over positions of w·r.
    let totals: Vec<f64> = (0..n).map(|i| (0..depth).map(|k| weights[i][k] * rewards[i][k]).sum()).collect();
    let (ips, var, _) = stats::moments(&totals);
    let ips_half = Z_95 * (var / nf).sqrt();
    // SNIPS per position, summed; its interval by the delta method over rankings.
    let mut positions = Vec::with_capacity(depth);
    let mut snips = 0.0;
    let mut influence = vec![0.0; n];
    let mut warning = None;
    for k in 0..depth {
        let (sum_w, sum_w2, sum_wr) = (0..n).fold((0.0, 0.0, 0.0), |(a, b, c), i| {
            let w = weights[i][k];
            (a + w, b + w * w, c + w * rewards[i][k])
        });
        let matched = (0..n).filter(|i| weights[*i][k] > 0.0).count();
        let ess = if sum_w2 > 0.0 { sum_w * sum_w / sum_w2 } else { 0.0 };
        let value = if sum_w > 0.0 { sum_wr / sum_w } else { 0.0 };
        if sum_w > 0.0 {
            let mean_w = sum_w / nf;
            for (i, phi) in influence.iter_mut().enumerate() {
                *phi += weights[i][k] * (rewards[i][k] - value) / mean_w;
            }
        }
        if ess < 100.0 && warning.is_none() {
            warning = Some(format!(
                "little support from position {} on: the candidate's first {} items match the logged ones in \
                 {matched} of {n} rankings (effective sample size {ess:.0})",
                k + 1,
                k + 1
            ));
        }
        snips += value;
        positions.push((value, matched, ess));
    }
    if depth < asked {
        warning = Some(format!(
            "no logged ranking matches the candidate's first {} items: the estimate covers positions 1 to {depth} only",
            depth + 1
        ));
    }
    let (_, var_phi, _) = stats::moments(&influence);
    let snips_half = Z_95 * (var_phi / nf).sqrt();
    let (doubly_robust, var_dr, _) =
        stats::moments(&slate_doubly_robust_terms(&weights, &rewards, &inputs, depth, models));
    let dr_half = Z_95 * (var_dr / nf).sqrt();
    Some(SlateEstimate {
        rankings: n,
        depth,
        ips,
        ips_ci: (ips - ips_half, ips + ips_half),
        snips,
        snips_ci: (snips - snips_half, snips + snips_half),
        doubly_robust,
        doubly_robust_ci: (doubly_robust - dr_half, doubly_robust + dr_half),
        positions,
        logged: logged_positions[..depth].iter().sum(),
        logged_positions,
        warning,
    })
}

/// The reward model's inputs of one ranking for the slate: the serving model's purchase
/// probability of the candidate's item and of the logged item at each position, and the
/// ranking's index (which picks the reward model not fitted on it).
struct SlateInputs {
    candidate: Vec<f64>,
    logged: Vec<f64>,
    ranking: usize,
}

/// Per ranking, the doubly robust estimate of the candidate's purchases over the first `depth`
/// positions.
fn slate_doubly_robust_terms(
    weights: &[Vec<f64>],
    rewards: &[Vec<f64>],
    inputs: &[SlateInputs],
    depth: usize,
    models: &RewardModels,
) -> Vec<f64> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let model = models.for_ranking(t.ranking);
            (0..depth)
                .map(|k| {
                    let direct = t.candidate.get(k).map_or(0.0, |p| model.at(*p, k));
                    let correction = t.logged.get(k).map_or(0.0, |p| weights[i][k] * (rewards[i][k] - model.at(*p, k)));
                    direct + correction
                })
                .sum()
        })
        .collect()
}

/// One logged ranking, reduced to what the estimators use.
struct Term {
    weight: f64,
    reward: f64,
    /// The reward model's input (the serving model's purchase probability) for the candidate's
    /// choice and for the logged top.
    p_choice: f64,
    p_top: f64,
    /// The ranking's index (which picks the reward model not fitted on it).
    ranking: usize,
}

/// Estimates the candidate's top-slot reward from `rankings` (each the logged items of one ranking).
pub fn top_slot(rankings: &[Vec<LoggedItem>], models: &RewardModels) -> Option<OffPolicyEstimate> {
    let mut terms = Vec::new();
    for (ranking, items) in rankings.iter().enumerate() {
        let logged_top = |i: &&LoggedItem| i.position == 0 && i.propensity > 0.0 && i.propensity <= 1.0;
        let Some(top) = items.iter().find(logged_top) else { continue };
        let choice = items.iter().max_by(|a, b| a.candidate_score.total_cmp(&b.candidate_score))?;
        let agrees = choice.position == 0 && choice.propensity > 0.0;
        terms.push(Term {
            weight: if agrees { 1.0 / top.propensity } else { 0.0 },
            reward: top.reward,
            p_choice: choice.reward_p_purchase,
            p_top: top.reward_p_purchase,
            ranking,
        });
    }
    let n = terms.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let interval = |values: &[f64]| {
        let (mean, var, _) = stats::moments(values);
        let half = Z_95 * (var / nf).sqrt();
        (mean, (mean - half, mean + half))
    };
    let (ips, ips_ci) = interval(&terms.iter().map(|t| t.weight * t.reward).collect::<Vec<_>>());
    let pairs: Vec<(f64, f64)> = terms.iter().map(|t| (t.weight * t.reward, t.weight)).collect();
    let (snips, snips_half) = match stats::ratio(&pairs) {
        Some(r) => (r.value, Z_95 * r.variance.max(0.0).sqrt()),
        None => (f64::NAN, f64::NAN),
    };
    let (direct, corrected) = doubly_robust_terms(&terms, models);
    let (doubly_robust, doubly_robust_ci) = interval(&corrected);
    let direct_method = direct.iter().sum::<f64>() / nf;
    let (sum_w, sum_w2) = terms.iter().fold((0.0, 0.0), |(a, b), t| (a + t.weight, b + t.weight * t.weight));
    let effective_sample_size = if sum_w2 > 0.0 { sum_w * sum_w / sum_w2 } else { 0.0 };
    let matched = terms.iter().filter(|t| t.weight > 0.0).count();
    let warning = (effective_sample_size < (MIN_SUPPORT * nf).max(100.0)).then(|| {
        format!(
            "little support: the candidate agrees with the logged top in {matched} of {n} rankings \
             (effective sample size {effective_sample_size:.0}); log more exploration or the candidate set \
             (fitrank export --candidates) before trusting these estimates"
        )
    });
    Some(OffPolicyEstimate {
        rankings: n,
        matched,
        ips,
        ips_ci,
        snips,
        snips_ci: (snips - snips_half, snips + snips_half),
        doubly_robust,
        doubly_robust_ci,
        direct_method,
        effective_sample_size,
        warning,
        logged: terms.iter().map(|t| t.reward).sum::<f64>() / nf,
    })
}

/// The per-ranking terms of the direct method and of the doubly robust estimate.
fn doubly_robust_terms(terms: &[Term], models: &RewardModels) -> (Vec<f64>, Vec<f64>) {
    terms
        .iter()
        .map(|t| {
            let model = models.for_ranking(t.ranking);
            let direct = model.top(t.p_choice);
            (direct, direct + t.weight * (t.reward - model.top(t.p_top)))
        })
        .unzip()
}

/// The reward models of the doubly robust estimates, cross-fitted: ranking i is corrected by the
/// model fitted on the rankings of the other four of five folds (by index), so no ranking's
/// reward fits its own correction. They read only the logged items, so the top-slot and slate
/// estimates of a candidate share them.
pub struct RewardModels(Vec<RewardModel>);

impl RewardModels {
    pub fn fit(rankings: &[Vec<LoggedItem>]) -> RewardModels {
        let served: Vec<Vec<Served>> = rankings.iter().map(|items| served(items)).collect();
        RewardModels(
            (0..FOLDS)
                .map(|fold| {
                    let training = served.iter().enumerate().filter(|(i, _)| i % FOLDS != fold);
                    RewardModel::fit(training.flat_map(|(_, s)| s))
                })
                .collect(),
        )
    }

    /// The model not fitted on ranking `i`.
    fn for_ranking(&self, i: usize) -> &RewardModel {
        &self.0[i % FOLDS]
    }
}

/// Returned items below this position do not train the reward model.
const REWARD_MODEL_POSITIONS: u32 = 16;

/// The reward model ρ̂ of the doubly robust estimate: an item's top-slot purchase probability
/// from the serving model's probability p of it, σ(a + b·logit p).
///
/// It is fitted on every returned item of its training rankings, not only on the tops, with one
/// offset per position below the top (a lower position is seen less often), and read at the top.
/// The lower positions hold the items the logging policy ranks below its first: several times the
/// data, and the range of p where a candidate unlike the logging policy picks its items, which
/// the tops alone would leave ρ̂ to extrapolate to.
struct RewardModel {
    a: f64,
    b: f64,
    /// The offset of each position (0 at the top); positions deeper than any fitted one take
    /// the deepest's.
    offsets: Vec<f64>,
}

/// A returned item as the reward model sees it: (the serving model's purchase probability,
/// position, reward).
type Served = (f64, u32, f64);

/// The returned items of one ranking that train the reward model.
fn served(items: &[LoggedItem]) -> Vec<Served> {
    items
        .iter()
        .filter(|i| i.propensity > 0.0 && i.position < REWARD_MODEL_POSITIONS)
        .map(|i| (i.reward_p_purchase, i.position, i.reward))
        .collect()
}

impl RewardModel {
    fn fit<'a>(rows: impl Iterator<Item = &'a Served>) -> RewardModel {
        let rows: Vec<&Served> = rows.collect();
        let depth = rows.iter().map(|r| r.1 as usize + 1).max().unwrap_or(1);
        let mut x = Array2::<f64>::zeros((rows.len(), depth));
        for (i, &&(p, position, _)) in rows.iter().enumerate() {
            x[[i, 0]] = logit(p);
            if position > 0 {
                x[[i, position as usize]] = 1.0;
            }
        }
        let y: Array1<bool> = rows.iter().map(|r| r.2 > 0.5).collect();
        let bought = y.iter().filter(|b| **b).count();
        // One class (or a failed fit): no slope to learn; the constant rate (at the clamp's edge).
        let constant = RewardModel { a: logit(bought as f64 / rows.len().max(1) as f64), b: 0.0, offsets: vec![0.0] };
        if bought == 0 || bought == rows.len() {
            return constant;
        }
        let tolerance = crate::train::fit::GRADIENT_TOLERANCE_PER_ROW * rows.len() as f64;
        let fitted = SparseRows::from_dense(x.view())
            .and_then(|x| solver::fit(&x, y.view(), REWARD_MODEL_RIDGE, 200, tolerance));
        match fitted {
            Ok(f) => {
                let mut offsets = vec![0.0];
                offsets.extend(f.weights.iter().skip(1));
                RewardModel { a: f.intercept, b: f.weights[0], offsets }
            }
            Err(_) => constant,
        }
    }

    /// ρ̂ at position `k` of an item the serving model gives purchase probability `p`.
    fn at(&self, p: f64, k: usize) -> f64 {
        let offset = self.offsets.get(k).or(self.offsets.last()).copied().unwrap_or(0.0);
        1.0 / (1.0 + (-(self.a + self.b * logit(p) + offset)).exp())
    }

    /// ρ̂ at the top slot.
    fn top(&self, p: f64) -> f64 {
        self.at(p, 0)
    }
}

/// The reward model's L2 penalty (on the slope and the position offsets, not the intercept).
const REWARD_MODEL_RIDGE: f64 = 1.0;

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// The top-slot estimate with reward models fitted on these rankings.
    fn top_slot_alone(rankings: &[Vec<LoggedItem>]) -> Option<OffPolicyEstimate> {
        top_slot(rankings, &RewardModels::fit(rankings))
    }

    /// The slate estimate with reward models fitted on these rankings.
    fn slate_alone(rankings: &[Vec<LoggedItem>], depth: usize) -> Option<SlateEstimate> {
        slate(rankings, depth, &RewardModels::fit(rankings))
    }

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
                    LoggedItem {
                        position: 0,
                        propensity: 0.5,
                        reward,
                        candidate_score: score(good_first),
                        reward_p_purchase: if good_first { 0.5 } else { 0.3 },
                    },
                    LoggedItem {
                        position: 1,
                        propensity: 0.5,
                        reward: 0.0,
                        candidate_score: score(!good_first),
                        reward_p_purchase: if good_first { 0.3 } else { 0.5 },
                    },
                ]
            })
            .collect()
    }

    #[test]
    fn ips_and_snips_recover_the_candidate_value() {
        let e = top_slot_alone(&logs(20_000, 4, true)).unwrap();
        assert!((e.logged - 0.4).abs() < 0.015, "{e:?}");
        assert!(e.warning.is_none() && (e.effective_sample_size - 10_000.0).abs() < 300.0, "{e:?}");
        for (value, (lo, hi)) in [(e.ips, e.ips_ci), (e.snips, e.snips_ci), (e.doubly_robust, e.doubly_robust_ci)] {
            assert!((value - 0.6).abs() < 0.02, "{e:?}");
            assert!(lo < 0.6 && 0.6 < hi, "the interval covers the truth: {e:?}");
        }
        let worse = top_slot_alone(&logs(20_000, 5, false)).unwrap();
        assert!(worse.ips_ci.1 < e.ips_ci.0, "a candidate preferring the bad item estimates lower");
        assert!((worse.snips - 0.2).abs() < 0.02);
        assert!((worse.doubly_robust - 0.2).abs() < 0.02, "{worse:?}");
        // The reward model only narrows the interval.
        assert!(e.doubly_robust_ci.1 - e.doubly_robust_ci.0 < e.ips_ci.1 - e.ips_ci.0, "{e:?}");
    }

    #[test]
    fn the_reward_model_learns_from_lower_positions_where_the_candidate_picks() {
        // The true rate of an item at position k is σ(1.5·logit p + 0.3 − 0.5·k), p the serving
        // model's probability. The logging policy always puts an item with p = 0.4 first
        // (propensity 1) and items with p from 0.02 to 0.4 below it. The candidate always picks an
        // item with p = 0.04 that was returned at position 3: worth σ(1.5·logit 0.04 + 0.3) ≈ 0.0113
        // at the top, never matched, so the doubly robust estimate is the reward model's alone.
        // Fitted on the tops (all one p) it could not tell the slope (a ridge towards 1 would give
        // about 0.044); from the lower positions it can.
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let rate = |p: f64, k: usize| 1.0 / (1.0 + (-(1.5 * logit(p) + 0.3 - 0.5 * k as f64)).exp());
        let mut rng = StdRng::seed_from_u64(11);
        let rankings: Vec<Vec<LoggedItem>> = (0..5_000)
            .map(|_| {
                let ps = [0.4, rng.gen_range(0.02..0.4), rng.gen_range(0.02..0.4), 0.04];
                ps.iter()
                    .enumerate()
                    .map(|(k, &p)| LoggedItem {
                        position: k as u32,
                        propensity: 1.0,
                        reward: f64::from(u8::from(rng.gen_bool(rate(p, k)))),
                        candidate_score: if k == 3 { 1.0 } else { 0.0 },
                        reward_p_purchase: p,
                    })
                    .collect()
            })
            .collect();
        let e = top_slot_alone(&rankings).unwrap();
        assert_eq!(e.matched, 0);
        assert!((e.doubly_robust - rate(0.04, 0)).abs() < 0.003, "{} against {}", e.doubly_robust, rate(0.04, 0));
    }

    #[test]
    fn an_unreturned_candidate_is_a_choice_the_logged_top_does_not_match_and_little_support_warns() {
        // The candidate prefers an item that was logged but not returned (propensity 0): it never
        // agrees with the logged top, so its estimate is 0 on no support, with a warning.
        let rankings: Vec<Vec<LoggedItem>> = (0..500)
            .map(|_| {
                let item = |position, propensity, score| LoggedItem {
                    position,
                    propensity,
                    reward: 0.0,
                    candidate_score: score,
                    reward_p_purchase: 0.1,
                };
                vec![item(0, 1.0, 0.2), item(1, 1.0, 0.1), item(2, 0.0, 0.9)]
            })
            .collect();
        let e = top_slot_alone(&rankings).unwrap();
        assert_eq!((e.matched, e.ips, e.effective_sample_size), (0, 0.0, 0.0));
        assert!(e.warning.as_deref().is_some_and(|w| w.contains("little support")), "{e:?}");
    }

    /// Two positions; the logging policy orders items "good" and "bad" at random (1/2 each, then
    /// the other with probability 1). Purchases: 0.6 for "good" at the top and 0.2 for "bad" at
    /// the top; at the second position half of that. A candidate preferring "good" is worth
    /// 0.6 + 0.1 = 0.7 over two positions; one preferring "bad" 0.2 + 0.3 = 0.5; logging 0.6.
    fn slates(n: usize, seed: u64, candidate_prefers_good: bool) -> Vec<Vec<LoggedItem>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let good_first = rng.gen_bool(0.5);
                let rate = |good: bool, position: u32| if good { 0.6 } else { 0.2 } / f64::from(position + 1);
                let item = |good: bool, position: u32, rng: &mut StdRng| LoggedItem {
                    position,
                    propensity: if position == 0 { 0.5 } else { 1.0 },
                    reward: f64::from(u8::from(rng.gen_bool(rate(good, position)))),
                    candidate_score: if good == candidate_prefers_good { 1.0 } else { 0.0 },
                    reward_p_purchase: 0.3,
                };
                vec![item(good_first, 0, &mut rng), item(!good_first, 1, &mut rng)]
            })
            .collect()
    }

    #[test]
    fn the_slate_estimate_recovers_each_candidates_purchases_over_two_positions() {
        let good = slate_alone(&slates(40_000, 7, true), 2).unwrap();
        let bad = slate_alone(&slates(40_000, 8, false), 2).unwrap();
        assert!((good.logged - 0.6).abs() < 0.015, "{good:?}");
        for (e, truth) in [(&good, 0.7), (&bad, 0.5)] {
            assert!((e.ips - truth).abs() < 0.02 && (e.snips - truth).abs() < 0.02, "{e:?}");
            assert!(e.snips_ci.0 < truth && truth < e.snips_ci.1, "{e:?}");
            assert!(e.ips_ci.0 < truth && truth < e.ips_ci.1, "{e:?}");
            assert!((e.doubly_robust - truth).abs() < 0.02, "{e:?}");
            assert!(e.doubly_robust_ci.0 < truth && truth < e.doubly_robust_ci.1, "{e:?}");
            assert!(e.warning.is_none());
        }
        assert!((good.positions[0].0 - 0.6).abs() < 0.02 && (good.positions[1].0 - 0.1).abs() < 0.02, "{good:?}");
        // Deeper than anything logged: no ranking supports position 3, which is left out.
        let deep = slate_alone(&slates(1_000, 9, true), 3).unwrap();
        assert_eq!((deep.depth, deep.positions.len(), deep.logged_positions.len()), (2, 2, 3));
        assert!(deep.warning.is_some_and(|w| w.contains("positions 1 to 2 only")));
    }

    #[test]
    fn slate_intervals_cover_the_truth_about_95_percent_of_the_time() {
        let estimates: Vec<SlateEstimate> =
            (0..200).map(|seed| slate_alone(&slates(800, 1_000 + seed, true), 2).unwrap()).collect();
        let covered =
            |ci: fn(&SlateEstimate) -> (f64, f64)| estimates.iter().filter(|e| ci(e).0 < 0.7 && 0.7 < ci(e).1).count();
        for (name, n) in [("SNIPS", covered(|e| e.snips_ci)), ("doubly robust", covered(|e| e.doubly_robust_ci))] {
            assert!((178..=200).contains(&n), "{n} of 200 {name} intervals cover 0.7");
        }
    }

    #[test]
    fn intervals_cover_the_truth_about_95_percent_of_the_time() {
        let covered = (0..200)
            .filter(|seed| {
                let e = top_slot_alone(&logs(400, *seed, true)).unwrap();
                e.ips_ci.0 < 0.6 && 0.6 < e.ips_ci.1
            })
            .count();
        assert!((180..=200).contains(&covered), "{covered} of 200 intervals cover 0.6");
    }
}
