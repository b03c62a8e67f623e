//! Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankers compared on the same
//! request. In each round the team with fewer picks (a coin decides ties) adds its highest-ranked
//! item not yet shown; every shown item is credited to the team that picked it, and engagement with
//! it counts for that team ([`crate::experiment::report::interleaving`]).

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
}
