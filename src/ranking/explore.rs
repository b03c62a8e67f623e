//! Targeted exploration for cold start: a bounded share of slots goes to sessions with little
//! data, preferring sessions whose declared target contains the user, and every placement's
//! probability is returned so the feature log can record it (what off-policy evaluation needs).
//!
//! Each slot independently explores with probability `share`: it takes a uniformly random cold
//! session not yet placed (from the in-target cold sessions when there are any, else from all
//! cold ones); otherwise it takes the next session of the exploitation order. The recorded
//! propensity is the probability of that placement at that slot given the slots before it:
//! `share / |pool|` for an explored session, `(1 − share)` (plus `share / |pool|` when the session
//! was also in the pool) for an exploited one.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Sessions with fewer impressions than this are cold, by default (`policy.cold_impressions`).
pub const COLD_IMPRESSIONS: u64 = 200;

/// Places `limit` items. `order` is the exploitation order (candidate indexes, best first; at
/// least `limit` items when there are that many); `cold` the cold candidates, `in_target(c)`
/// whether candidate `c`'s declared target contains the user. Returns (candidate, propensity).
pub fn place(
    order: &[usize],
    universe: usize,
    limit: usize,
    cold: &[usize],
    in_target: impl Fn(usize) -> bool,
    share: f32,
    seed: u64,
) -> Vec<(usize, f32)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (targeted, other): (Vec<usize>, Vec<usize>) = cold.iter().partition(|c| in_target(**c));
    let mut placed = vec![false; universe];
    let mut out = Vec::with_capacity(limit);
    let mut next = 0;
    let share = f64::from(share.clamp(0.0, 1.0));
    while out.len() < limit {
        let open = |list: &[usize], placed: &[bool]| list.iter().filter(|c| !placed[**c]).count();
        let pool: &[usize] = if open(&targeted, &placed) > 0 { &targeted } else { &other };
        let pool_size = open(pool, &placed);
        if pool_size > 0 && rng.gen_bool(share) {
            let k = rng.gen_range(0..pool_size);
            let c = *pool.iter().filter(|c| !placed[**c]).nth(k).expect("k < open");
            placed[c] = true;
            out.push((c, (share / pool_size as f64) as f32));
            continue;
        }
        while next < order.len() && placed[order[next]] {
            next += 1;
        }
        let Some(&c) = order.get(next) else { break };
        placed[c] = true;
        let also_explorable = pool_size > 0 && pool.contains(&c);
        let p = (1.0 - if pool_size > 0 { share } else { 0.0 })
            + if also_explorable { share / pool_size as f64 } else { 0.0 };
        out.push((c, p as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_share_is_the_exploitation_order() {
        let order: Vec<usize> = (0..10).collect();
        let out = place(&order, 10, 5, &[7, 8, 9], |_| true, 0.0, 1);
        assert_eq!(out, (0..5).map(|c| (c, 1.0)).collect::<Vec<_>>());
    }

    #[test]
    fn explores_about_its_share_preferring_the_targeted_cold_sessions() {
        let order: Vec<usize> = (0..100).collect();
        let cold: Vec<usize> = (50..100).collect();
        let (mut explored, mut slots, mut targeted) = (0, 0, 0);
        for seed in 0..2_000 {
            for (c, p) in place(&order, 100, 10, &cold, |c| c >= 90, 0.05, seed) {
                slots += 1;
                if c >= 50 && p < 0.5 {
                    explored += 1;
                    targeted += usize::from(c >= 90);
                    // share / (open targeted cold sessions: 10 minus those already placed)
                    let pool = 0.05 / f64::from(p);
                    assert!(
                        (pool - pool.round()).abs() < 1e-3 && (1.0..=10.0).contains(&pool.round()),
                        "propensity {p}"
                    );
                } else {
                    assert!(p >= 0.95 - 1e-6, "exploited propensity {p}");
                }
            }
        }
        let rate = explored as f64 / slots as f64;
        assert!((0.045..0.055).contains(&rate), "explored {rate}");
        assert_eq!(targeted, explored, "while targeted cold sessions remain, only they are explored");
    }

    #[test]
    fn never_repeats_and_fills_the_slots() {
        let order = vec![3, 1, 4, 0, 2];
        for seed in 0..200 {
            let out = place(&order, 5, 5, &[0, 1, 2, 3, 4], |c| c % 2 == 0, 0.2, seed);
            let mut seen: Vec<usize> = out.iter().map(|(c, _)| *c).collect();
            seen.sort_unstable();
            assert_eq!(seen, vec![0, 1, 2, 3, 4]);
            assert!(out.iter().all(|(_, p)| *p > 0.0 && *p <= 1.0));
        }
    }
}
