//! Evaluation metrics.

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann–Whitney U). NaN when a class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    assert_eq!(scores.len(), labels.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    (rank_sum - (positives * (positives + 1)) as f64 / 2.0) / (positives as f64 * negatives as f64)
}

/// Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15].
pub fn log_loss(probs: &[f64], labels: &[bool]) -> f64 {
    assert_eq!(probs.len(), labels.len());
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    sum / probs.len() as f64
}

/// One bin of a reliability table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CalibrationBin {
    /// Predicted-probability range [lo, hi) (the last bin includes 1).
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// Mean predicted probability in the bin (NaN when empty).
    pub mean_predicted: f64,
    /// Share of positives in the bin (NaN when empty).
    pub observed_rate: f64,
}

/// Reliability table over `bins` equal-width bins of the predicted probability.
pub fn calibration(probs: &[f64], labels: &[bool], bins: usize) -> Vec<CalibrationBin> {
    assert_eq!(probs.len(), labels.len());
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (p, y) in probs.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += usize::from(*y);
    }
    sums.iter()
        .enumerate()
        .map(|(b, (n, p, pos))| CalibrationBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: *n,
            mean_predicted: if *n == 0 { f64::NAN } else { p / *n as f64 },
            observed_rate: if *n == 0 { f64::NAN } else { *pos as f64 / *n as f64 },
        })
        .collect()
}

/// Expected calibration error: Σ (bin count / n) · |mean predicted − observed rate|.
pub fn expected_calibration_error(bins: &[CalibrationBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.count).sum();
    bins.iter()
        .filter(|b| b.count > 0)
        .map(|b| b.count as f64 / n as f64 * (b.mean_predicted - b.observed_rate).abs())
        .sum()
}

/// NDCG@k of one request: items ordered by `scores` (descending, ties in input order), gains
/// (2^gain − 1) / log2(rank + 1), normalised by the ideal order. `None` when no item has a gain.
pub fn ndcg_at_k(scores: &[f64], gains: &[f64], k: usize) -> Option<f64> {
    assert_eq!(scores.len(), gains.len());
    let dcg = |order: &[usize]| -> f64 {
        order.iter().take(k).enumerate().map(|(i, &j)| (2f64.powf(gains[j]) - 1.0) / ((i + 2) as f64).log2()).sum()
    };
    let mut by_score: Vec<usize> = (0..scores.len()).collect();
    by_score.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut ideal: Vec<usize> = (0..gains.len()).collect();
    ideal.sort_by(|&a, &b| gains[b].total_cmp(&gains[a]));
    let best = dcg(&ideal);
    (best > 0.0).then(|| dcg(&by_score) / best)
}

/// Points of the ROC curve (false positive rate, true positive rate), thresholds from high to low.
pub fn roc_points(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|y| **y).count().max(1) as f64;
    let negatives = labels.iter().filter(|y| !**y).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            if labels[order[j]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        points.push((fp / negatives, tp / positives));
        i = j;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // pairs (pos, neg): (0.8,0.1) (0.8,0.4) (0.8,0.8)=½ (0.35,0.1) (0.35,0.4)=0 (0.35,0.8)=0 → 3.5/6
        let s = [0.1, 0.4, 0.35, 0.8, 0.8];
        let y = [false, false, true, true, false];
        assert!((auc(&s, &y) - 3.5 / 6.0).abs() < 1e-12);
        assert_eq!(auc(&[0.1, 0.9], &[false, true]), 1.0);
        assert!(auc(&[0.1, 0.9], &[true, true]).is_nan());
    }

    #[test]
    fn calibration_and_ece_by_hand() {
        // bin [0, .5): 0.1 (no), 0.3 (yes) → mean .2, observed .5; bin [.5, 1]: 0.8 (yes), 1.0 (yes) → .9 vs 1
        let bins = calibration(&[0.1, 0.3, 0.8, 1.0], &[false, true, true, true], 2);
        assert_eq!((bins[0].count, bins[1].count), (2, 2));
        assert!((bins[0].mean_predicted - 0.2).abs() < 1e-12 && (bins[0].observed_rate - 0.5).abs() < 1e-12);
        assert!((bins[1].mean_predicted - 0.9).abs() < 1e-12 && bins[1].observed_rate == 1.0);
        // ECE = .5 · |.2 − .5| + .5 · |.9 − 1| = .15 + .05
        assert!((expected_calibration_error(&bins) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn ndcg_by_hand() {
        // order by score: items 2 (gain 0), 0 (gain 1), 1 (gain 0): DCG = 1/log2(3); ideal = 1/log2(2) = 1
        let v = ndcg_at_k(&[0.5, 0.1, 0.9], &[1.0, 0.0, 0.0], 3).unwrap();
        assert!((v - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(ndcg_at_k(&[0.5, 0.1, 0.9], &[1.0, 0.0, 0.0], 1), Some(0.0));
        assert_eq!(ndcg_at_k(&[0.9, 0.1], &[1.0, 0.0], 5), Some(1.0));
        assert_eq!(ndcg_at_k(&[0.9, 0.1], &[0.0, 0.0], 5), None);
    }

    #[test]
    fn roc_by_hand() {
        let pts = roc_points(&[0.9, 0.8, 0.8, 0.1], &[true, true, false, false]);
        assert_eq!(pts, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
    }

    #[test]
    fn log_loss_by_hand() {
        let l = log_loss(&[0.9, 0.2], &[true, false]);
        assert!((l - (-(0.9f64.ln()) - 0.8f64.ln()) / 2.0).abs() < 1e-12);
    }
}
