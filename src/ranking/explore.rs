//! Targeted exploration for cold start: a bounded share of slots goes to sessions with little
//! data, preferring sessions whose declared target contains the user, and every placement's
//! probability is returned so the feature log can record it (what off-policy evaluation needs).
//!
//! Each slot explores with probability `share · min(1, best / displaced)`, where `best` is the
//! highest exploitation score among the open cold sessions of the pool (the in-target cold
//! sessions when there are any, else all cold ones) and `displaced` the score of the item the
//! exploitation order would put there: exploration spends its slots where a cold session is
//! competitive, which keeps its cost in purchases well below its share of slots. An explored slot
//! draws a cold session from the pool with probability proportional to its score (plus a small
//! floor, so every cold session keeps a chance and an all-zero policy explores uniformly): the
//! new sessions the model, from their content alone, expects this user to buy from, which is what
//! gets a new host its first purchase soonest. Otherwise the slot takes the next session of the
//! exploitation order. With `uniform_share` u > 0 (`policy.exploration_uniform_share`), a draw
//! is uniform over the pool with probability u and by score otherwise, so each of the pool's
//! sessions is drawn with probability `(1 − u) · w / Σw + u / |pool|`: no cold session's chance
//! falls to the floor, which is what an off-policy estimate of a model that ranks them
//! differently needs. The recorded propensity is the probability of that placement at that slot
//! given the slots before it, whichever way it came about: `e · drawn` for a session of the pool
//! (`e` the slot's exploration probability, `drawn` the session's probability in the draw), plus
//! `1 − e` when it is also the session the exploitation order puts there. (A draw that picks the displaced session itself is the same
//! placement as not exploring; both ways count.)
//!
//! Exploration of cold sessions never places a warm session anywhere but where the exploitation
//! order puts it, so a candidate model that orders the warm sessions differently has no support
//! in the log. With `head_share` h > 0 (`policy.exploration_head_share`), a slot that does not
//! explore a cold session takes, with probability h, a session drawn evenly from the next
//! `head_size` sessions of the exploitation order (the displaced one included) instead of the
//! displaced one. A session among those `k` then has probability `(1 − e) · h / k` at that slot
//! on top of the rest, so a candidate that would put it first is estimable offline.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Added to every cold session's score when drawing one to explore: keeps each one's chance
/// above zero and makes the draw uniform when every score is zero.
const SCORE_FLOOR: f64 = 1e-4;

/// How much to explore: the share of slots (at most; see the module), the share of each draw
/// made uniformly over the pool rather than by score, and the share of the other slots drawn
/// evenly from the next `head_size` sessions of the exploitation order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exploration {
    pub share: f32,
    pub uniform_share: f32,
    pub head_share: f32,
    pub head_size: usize,
}

/// Places `limit` items. `order` is the exploitation order (candidate indexes, best first; at
/// least `limit` items when there are that many); `cold` the cold candidates, `in_target(c)`
/// whether candidate `c`'s declared target contains the user, `score(c)` its exploitation score
/// (not negative). Returns (candidate, propensity).
#[allow(clippy::too_many_arguments)]
pub fn place(
    order: &[usize],
    universe: usize,
    limit: usize,
    cold: &[usize],
    in_target: impl Fn(usize) -> bool,
    score: impl Fn(usize) -> f32,
    exploration: Exploration,
    seed: u64,
) -> Vec<(usize, f32)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (targeted, other): (Vec<usize>, Vec<usize>) = cold.iter().partition(|c| in_target(**c));
    let weight = |c: usize| f64::from(score(c)).max(0.0) + SCORE_FLOOR;
    let mut placed = vec![false; universe];
    let mut out = Vec::with_capacity(limit);
    let mut next = 0;
    let share = f64::from(exploration.share.clamp(0.0, 1.0));
    let uniform = f64::from(exploration.uniform_share.clamp(0.0, 1.0));
    let head_share = f64::from(exploration.head_share.clamp(0.0, 1.0));
    while out.len() < limit {
        while next < order.len() && placed[order[next]] {
            next += 1;
        }
        let displaced = order.get(next).copied();
        // The next `head_size` open sessions of the exploitation order (the displaced one first).
        let head: Vec<usize> = if head_share > 0.0 {
            order[next.min(order.len())..]
                .iter()
                .copied()
                .filter(|c| !placed[*c])
                .take(exploration.head_size.max(1))
                .collect()
        } else {
            Vec::new()
        };
        // The probability of `c` at this slot when it explores no cold session: the displaced
        // session unless a head draw happens, or a head draw's pick.
        let exploited = |c: usize| {
            let from_head = if head.contains(&c) { head_share / head.len() as f64 } else { 0.0 };
            let kept = if displaced == Some(c) { 1.0 - head_share } else { 0.0 };
            from_head + kept
        };
        let open = |list: &[usize]| list.iter().copied().filter(|c| !placed[*c]).collect::<Vec<usize>>();
        let mut pool = open(&targeted);
        if pool.is_empty() {
            pool = open(&other);
        }
        let pool_weight: f64 = pool.iter().map(|c| weight(*c)).sum();
        let drawn = |c: usize| {
            if pool.contains(&c) {
                (1.0 - uniform) * weight(c) / pool_weight + uniform / pool.len() as f64
            } else {
                0.0
            }
        };
        // Explore less where the best cold session is far behind the item it would displace.
        let explore = if pool.is_empty() {
            0.0
        } else {
            let best = pool.iter().map(|c| weight(*c)).fold(0.0, f64::max);
            share * displaced.map_or(1.0, |d| (best / weight(d)).min(1.0))
        };
        if explore > 0.0 && rng.gen_bool(explore) {
            let c = if uniform > 0.0 && rng.gen_bool(uniform) {
                pool[rng.gen_range(0..pool.len())]
            } else {
                let mut u = rng.gen_range(0.0..pool_weight);
                *pool
                    .iter()
                    .find(|c| {
                        u -= weight(**c);
                        u < 0.0
                    })
                    .unwrap_or(pool.last().expect("pool is not empty"))
            };
            placed[c] = true;
            out.push((c, ((1.0 - explore) * exploited(c) + explore * drawn(c)) as f32));
            continue;
        }
        let c = if !head.is_empty() && rng.gen_bool(head_share) {
            head[rng.gen_range(0..head.len())]
        } else {
            let Some(c) = displaced else { break };
            c
        };
        placed[c] = true;
        out.push((c, ((1.0 - explore) * exploited(c) + explore * drawn(c)) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exploration of `share` drawn by score alone.
    fn by_score(share: f32) -> Exploration {
        Exploration { share, ..Default::default() }
    }

    #[test]
    fn no_share_is_the_exploitation_order() {
        let order: Vec<usize> = (0..10).collect();
        let out = place(&order, 10, 5, &[7, 8, 9], |_| true, |_| 0.5, by_score(0.0), 1);
        assert_eq!(out, (0..5).map(|c| (c, 1.0)).collect::<Vec<_>>());
    }

    #[test]
    fn explores_about_its_share_preferring_the_targeted_cold_sessions() {
        let order: Vec<usize> = (0..100).collect();
        let cold: Vec<usize> = (50..100).collect();
        let (mut explored, mut slots, mut targeted) = (0, 0, 0);
        for seed in 0..2_000 {
            for (c, p) in place(&order, 100, 10, &cold, |c| c >= 90, |_| 0.0, by_score(0.05), seed) {
                slots += 1;
                if c >= 50 && p < 0.5 {
                    explored += 1;
                    targeted += usize::from(c >= 90);
                    // Equal scores: share / (open targeted cold sessions: 10 minus those placed)
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
            let out = place(&order, 5, 5, &[0, 1, 2, 3, 4], |c| c % 2 == 0, |c| c as f32, by_score(0.2), seed);
            let mut seen: Vec<usize> = out.iter().map(|(c, _)| *c).collect();
            seen.sort_unstable();
            assert_eq!(seen, vec![0, 1, 2, 3, 4]);
            assert!(out.iter().all(|(_, p)| *p > 0.0 && *p <= 1.0));
        }
    }

    /// One slot, always explored (the displaced item scores 0), over cold sessions scored 1, 2, 3,
    /// 4 with a share `uniform` of each draw even: each propensity recorded must be the draw's
    /// probability of that session, and the sessions must be drawn that often.
    fn check_one_explored_slot(uniform: f32) {
        let order = vec![9, 0, 1, 2, 3];
        let exploration = Exploration { share: 1.0, uniform_share: uniform, ..Default::default() };
        let score = |c: usize| if c < 4 { c as f32 + 1.0 } else { 0.0 };
        let u = f64::from(uniform);
        let mut counts = [0u32; 4];
        let draws = 20_000u32;
        for seed in 0..u64::from(draws) {
            let (c, p) = place(&order, 10, 1, &[0, 1, 2, 3], |_| true, score, exploration, seed)[0];
            counts[c] += 1;
            let expected = (1.0 - u) * (c as f64 + 1.0 + SCORE_FLOOR) / (10.0 + 4.0 * SCORE_FLOOR) + u / 4.0;
            assert!((f64::from(p) - expected).abs() < 1e-6, "recorded {p} for {c}, expected {expected}");
        }
        for (c, n) in counts.iter().enumerate() {
            let freq = f64::from(*n) / f64::from(draws);
            assert!((freq - ((1.0 - u) * (c as f64 + 1.0) / 10.0 + u / 4.0)).abs() < 0.015, "session {c} drawn {freq}");
        }
    }

    #[test]
    fn draws_cold_sessions_in_proportion_to_their_scores_and_records_that_probability() {
        check_one_explored_slot(0.0);
    }

    #[test]
    fn a_uniform_share_mixes_an_even_draw_into_the_score_draw_and_records_it() {
        check_one_explored_slot(0.5);
    }

    #[test]
    fn with_a_uniform_share_logged_propensities_are_still_the_frequencies_of_each_placement() {
        check_placement_frequencies(Exploration { share: 0.3, uniform_share: 0.4, ..Default::default() });
    }

    #[test]
    fn explores_less_where_the_cold_sessions_trail_the_displaced_item() {
        // The exploited item scores 4, the only cold session 1: explore at share · 1/4.
        let score = |c: usize| if c == 9 { 4.0 } else { 1.0 };
        let (mut explored, draws) = (0u32, 40_000u32);
        for seed in 0..u64::from(draws) {
            let out = place(&[9, 0], 10, 1, &[0], |_| true, score, by_score(0.2), seed);
            let expected = 0.2 * (1.0 + SCORE_FLOOR) / (4.0 + SCORE_FLOOR);
            let (c, p) = out[0];
            if c == 0 {
                explored += 1;
                assert!((f64::from(p) - expected).abs() < 1e-6, "explored propensity {p}");
            } else {
                assert!((f64::from(p) - (1.0 - expected)).abs() < 1e-6, "exploited propensity {p}");
            }
        }
        let rate = f64::from(explored) / f64::from(draws);
        assert!((rate - 0.05).abs() < 0.005, "explored {rate}");
    }

    /// Cold sessions 0-3 compete with the exploitation order's head (0 is both the exploited top
    /// and a cold session: the placement an explored draw can also make): over 40,000 rankings each
    /// logged propensity must match the frequency of its placement.
    fn check_placement_frequencies(exploration: Exploration) {
        let order = vec![0, 5, 1, 6, 2, 3, 4];
        let score = |c: usize| [3.0, 1.0, 2.0, 0.5, 0.2, 4.0, 3.5][c];
        let draws: Vec<Vec<(usize, f32)>> =
            (0..40_000).map(|seed| place(&order, 7, 3, &[0, 1, 2, 3], |c| c < 3, score, exploration, seed)).collect();
        let (checked, worst) = crate::ranking::placement_check::check(&draws, 500);
        assert!(checked >= 10, "only {checked} placements had enough draws");
        assert!(worst < 4.5, "worst gap {worst}");
    }

    #[test]
    fn logged_propensities_are_the_frequencies_of_each_placement() {
        check_placement_frequencies(by_score(0.3));
    }

    #[test]
    fn with_head_draws_logged_propensities_are_still_the_frequencies_of_each_placement() {
        check_placement_frequencies(Exploration { share: 0.3, uniform_share: 0.4, head_share: 0.3, head_size: 3 });
        check_placement_frequencies(Exploration { head_share: 0.5, head_size: 2, ..Default::default() });
    }

    #[test]
    fn head_draws_put_each_of_the_next_sessions_first_evenly() {
        let order = vec![4, 2, 0, 1, 3];
        let exploration = Exploration { head_share: 0.4, head_size: 3, ..Default::default() };
        let mut first = [0u32; 5];
        for seed in 0..20_000 {
            let out = place(&order, 5, 5, &[], |_| false, |_| 1.0, exploration, seed);
            let (c, p) = out[0];
            first[c] += 1;
            let expected = if c == 4 { 0.6 + 0.4 / 3.0 } else { 0.4 / 3.0 };
            assert!((f64::from(p) - expected).abs() < 1e-6, "{c}: {p}");
        }
        assert_eq!(first[1] + first[3], 0, "only the head of the order is drawn");
        let share = |n: u32| f64::from(n) / 20_000.0;
        assert!((share(first[2]) - 0.4 / 3.0).abs() < 0.01 && (share(first[0]) - 0.4 / 3.0).abs() < 0.01);
        let unchanged = place(&order, 5, 5, &[], |_| false, |_| 1.0, Exploration::default(), 7);
        assert_eq!(unchanged, order.iter().map(|c| (*c, 1.0)).collect::<Vec<_>>());
    }
}
