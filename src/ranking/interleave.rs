//! Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankers compared on the same
//! request. In each round the team with fewer picks (a coin decides ties) adds its highest-ranked
//! item not yet shown; every shown item is credited to the team that picked it, and engagement with
//! it counts for that team ([`crate::experiment::report::interleaving`]).
//!
//! [`placement_probabilities`] gives each placed item's probability given the items before it,
//! what the feature log records as its propensity: the coin makes the merge random, and the same
//! items can come from different coin flips (two teams whose next item is the same).

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Which ranker placed an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Team {
    A,
    B,
}

impl Team {
    /// 'a' or 'b', as logged.
    pub fn letter(self) -> char {
        match self {
            Team::A => 'a',
            Team::B => 'b',
        }
    }
}

/// Interleaves rankings `a` and `b` (best first; items are indexes below `universe`) into at most
/// `limit` items, each with the team that picked it. `seed` drives the coin, so a ranking can be
/// replayed.
pub fn team_draft(a: &[usize], b: &[usize], universe: usize, limit: usize, seed: u64) -> Vec<(usize, Team)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shown = vec![false; universe];
    let (mut next_a, mut next_b, mut picks_a, mut picks_b) = (0, 0, 0usize, 0usize);
    let mut out = Vec::with_capacity(limit);
    let take = |list: &[usize], next: &mut usize, shown: &[bool]| {
        while *next < list.len() && shown[list[*next]] {
            *next += 1;
        }
        list.get(*next).copied()
    };
    while out.len() < limit {
        let a_first = picks_a < picks_b || (picks_a == picks_b && rng.gen_bool(0.5));
        let order = if a_first { [Team::A, Team::B] } else { [Team::B, Team::A] };
        let mut picked = None;
        for team in order {
            let item = match team {
                Team::A => take(a, &mut next_a, &shown),
                Team::B => take(b, &mut next_b, &shown),
            };
            if let Some(item) = item {
                picked = Some((item, team));
                break;
            }
        }
        let Some((item, team)) = picked else { break };
        shown[item] = true;
        match team {
            Team::A => picks_a += 1,
            Team::B => picks_b += 1,
        }
        out.push((item, team));
    }
    out
}

/// The probability of each placement of `placed` (a [`team_draft`] of `a` and `b`) given the
/// placements before it. A forward pass over the possible pick counts: after `k` placements the
/// items shown are known, so each team's next item is its first one not shown, and the merge's
/// only unknown state is how many of the `k` team A picked (coin flips that placed the same items
/// can leave A with different counts). Each step multiplies the chance of every state by the
/// chance that it places the observed item, and the propensity is the ratio of the totals.
pub fn placement_probabilities(a: &[usize], b: &[usize], universe: usize, placed: &[usize]) -> Vec<f32> {
    let mut shown = vec![false; universe];
    let (mut next_a, mut next_b) = (0, 0);
    // states[picks_a] = probability of the prefix and that count, for picks_a ≤ k.
    let mut states = vec![1.0f64];
    let mut out = Vec::with_capacity(placed.len());
    for (k, &item) in placed.iter().enumerate() {
        let first_unshown = |list: &[usize], next: &mut usize| {
            while *next < list.len() && shown[list[*next]] {
                *next += 1;
            }
            list.get(*next).copied()
        };
        let (top_a, top_b) = (first_unshown(a, &mut next_a), first_unshown(b, &mut next_b));
        // The team that picks when `first` goes first: it, or the other when its list is spent.
        let picker = |first: Team| {
            let (own, other) = match first {
                Team::A => ((top_a, Team::A), (top_b, Team::B)),
                Team::B => ((top_b, Team::B), (top_a, Team::A)),
            };
            own.0.map(|x| (x, own.1)).or(other.0.map(|x| (x, other.1)))
        };
        let before: f64 = states.iter().sum();
        let mut next_states = vec![0.0f64; k + 2];
        for (picks_a, &p) in states.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            let picks_b = k - picks_a;
            let firsts: &[(Team, f64)] = match picks_a.cmp(&picks_b) {
                std::cmp::Ordering::Less => &[(Team::A, 1.0)],
                std::cmp::Ordering::Greater => &[(Team::B, 1.0)],
                std::cmp::Ordering::Equal => &[(Team::A, 0.5), (Team::B, 0.5)],
            };
            for &(first, chance) in firsts {
                if let Some((x, team)) = picker(first)
                    && x == item
                {
                    next_states[picks_a + usize::from(team == Team::A)] += p * chance;
                }
            }
        }
        let after: f64 = next_states.iter().sum();
        out.push(if before > 0.0 { (after / before) as f32 } else { 0.0 });
        states = next_states;
        if let Some(s) = shown.get_mut(item) {
            *s = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Each team's picks keep that team's order, the teams' sizes differ by at most one, no item
        /// repeats, and the result is as long as possible.
        #[test]
        fn team_draft_invariants(n in 1usize..40, limit in 1usize..50, seed in any::<u64>(), shuffle in any::<u64>()) {
            let a: Vec<usize> = (0..n).collect();
            let mut b = a.clone();
            use rand::seq::SliceRandom;
            b.shuffle(&mut StdRng::seed_from_u64(shuffle));
            let out = team_draft(&a, &b, n, limit, seed);
            prop_assert_eq!(out.len(), limit.min(n));
            let mut seen = vec![false; n];
            for (item, _) in &out {
                prop_assert!(!seen[*item]);
                seen[*item] = true;
            }
            let (mut na, mut nb) = (0i64, 0i64);
            for (k, (_, team)) in out.iter().enumerate() {
                match team { Team::A => na += 1, Team::B => nb += 1 }
                // Until one list runs out of unshown items (only when all are shown), teams alternate.
                prop_assert!((na - nb).abs() <= 1, "after {} picks: {} vs {}", k + 1, na, nb);
            }
            for (team, list) in [(Team::A, &a), (Team::B, &b)] {
                let picks: Vec<usize> = out.iter().filter(|(_, t)| *t == team).map(|(i, _)| *i).collect();
                let pos: Vec<usize> = picks.iter().map(|i| list.iter().position(|x| x == i).unwrap()).collect();
                prop_assert!(pos.windows(2).all(|w| w[0] < w[1]), "team order broken");
            }
            prop_assert_eq!(team_draft(&a, &b, n, limit, seed), out);
        }
    }

    #[test]
    fn identical_rankers_give_the_common_order() {
        let a: Vec<usize> = (0..10).collect();
        let out = team_draft(&a, &a, 10, 10, 7);
        assert_eq!(out.iter().map(|(i, _)| *i).collect::<Vec<_>>(), a);
    }

    #[test]
    fn logged_propensities_are_the_frequencies_of_each_placement() {
        // Lists that share items at different ranks, so the same prefix arises from different
        // coin flips, and one list shorter than the other.
        let a = vec![0, 1, 2, 3, 4, 5];
        let b = vec![1, 0, 4, 6];
        let draws: Vec<Vec<(usize, f32)>> = (0..40_000)
            .map(|seed| {
                let merged = team_draft(&a, &b, 7, 6, seed);
                let items: Vec<usize> = merged.iter().map(|(c, _)| *c).collect();
                items.iter().copied().zip(placement_probabilities(&a, &b, 7, &items)).collect()
            })
            .collect();
        let (checked, worst) = crate::ranking::placement_check::check(&draws, 500);
        assert!(checked >= 8, "only {checked} placements had enough draws");
        assert!(worst < 4.5, "worst gap {worst}");
        // Identical lists: one possible merge, every placement certain.
        let merged = team_draft(&a, &a, 7, 6, 3);
        let items: Vec<usize> = merged.iter().map(|(c, _)| *c).collect();
        assert!(placement_probabilities(&a, &a, 7, &items).iter().all(|p| *p == 1.0));
    }
}
