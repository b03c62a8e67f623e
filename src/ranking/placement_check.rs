//! A check shared by the placement tests: that logged propensities are the observed frequencies
//! of what was placed.
//!
//! Each draw is one ranking, a list of (item, logged propensity). A placement is an item at a slot
//! after a given prefix (the items of the earlier slots); its propensity claims the probability of
//! that placement given the prefix. Over many draws of the same inputs, every draw that reached the
//! same prefix must log the same propensity for the same item, and that propensity must match the
//! share of those draws that placed it (within 4.5 binomial standard errors).

use std::collections::HashMap;

/// Placements met, and the largest gap in standard errors. Panics on a mismatch.
pub fn check(draws: &[Vec<(usize, f32)>], min_prefix: u32) -> (usize, f64) {
    let mut prefixes: HashMap<Vec<usize>, u32> = HashMap::new();
    let mut placements: HashMap<(Vec<usize>, usize), (u32, f32)> = HashMap::new();
    for draw in draws {
        for k in 0..draw.len() {
            let prefix: Vec<usize> = draw[..k].iter().map(|(c, _)| *c).collect();
            let (item, p) = draw[k];
            *prefixes.entry(prefix.clone()).or_default() += 1;
            let e = placements.entry((prefix, item)).or_insert((0, p));
            assert!((e.1 - p).abs() < 1e-6, "placement {item} at slot {k} logged as {} and as {p}", e.1);
            e.0 += 1;
        }
    }
    let (mut checked, mut worst) = (0, 0.0f64);
    for ((prefix, item), (count, p)) in &placements {
        let n = prefixes[prefix];
        if n < min_prefix {
            continue;
        }
        let (p, observed) = (f64::from(*p), f64::from(*count) / f64::from(n));
        let se = (p * (1.0 - p) / f64::from(n)).sqrt().max(1e-9);
        let gap = (observed - p).abs() / se;
        assert!(
            gap < 4.5 || (observed - p).abs() < 1e-6,
            "item {item} after {prefix:?}: logged {p:.4}, observed {observed:.4} over {n} draws"
        );
        checked += 1;
        worst = worst.max(if (observed - p).abs() < 1e-6 { 0.0 } else { gap });
    }
    (checked, worst)
}
