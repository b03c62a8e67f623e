//! The posterior oracle: how well *anything* could rank from the traffic a run has seen.
//!
//! The oracle knows each user's hidden shopper type and favourite categories; no learner can.
//! The demographic oracle knows none of it. Between them lies what a learner can at best find
//! out about a user from their own history, and that bound is what this module computes for the
//! `shoppers` family ([`crate::worlds`]).
//!
//! For every user it keeps the exact posterior over the user's hidden variables — one of the
//! three shopper types × one of the 78 sets of favourite categories (two draws from twelve) —
//! starting from the world's own prior (the shopper shares for the user's demographics, tastes
//! drawn evenly) and updated with the likelihood of everything the user did: each impression
//! seen, viewed or not, bought or not, returned or not, under every arm of the run. It ranks by
//! the posterior mean of the true expected purchases.
//!
//! It is generous: it knows the world's structure and parameters and every session's hidden
//! truth (core audience, host quality), which a learner must also estimate from the same
//! traffic. So its share of the oracle's purchases is an upper bound for any ranker fed the same
//! events, and the gap between it and the oracle is what no amount of modelling can close at
//! that traffic. It is myopic (it ranks by what it believes now, without valuing what a
//! placement would teach), which the bound does not need.
//!
//! Tastes that drift during a run ([`crate::worlds::WorldSpec::taste_drift_hours`]) are outside
//! its model; [`Posterior::new`] refuses such worlds rather than give a wrong bound.
//!
//! A run can hand its posterior to the next one (`fitrank simulate --posterior-state FILE`), so
//! a measured run that continues a warm-up starts from what the warm-up showed, as the service's
//! store does.

use std::path::Path;

use crate::train::generator::World;
use crate::worlds::{Shopper, ShopperTruth};
use fitrank::domain::Category;

/// Sets of two favourite categories: (i, j) with i ≤ j.
const TASTE_SETS: usize = Category::COUNT * (Category::COUNT + 1) / 2;
/// Hypotheses per user: shopper type × taste set.
const HYPOTHESES: usize = Shopper::ALL.len() * TASTE_SETS;
/// First line of a saved state; the world's fingerprint (8 bytes) follows.
const MAGIC: &[u8; 20] = b"fitrank-posterior/2\n";

/// What one seen impression came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub viewed: bool,
    pub bought: bool,
    pub returned: bool,
}

/// Every user's posterior over their hidden shopper type and tastes.
#[derive(Debug)]
pub struct Posterior<'w> {
    world: &'w World,
    truth: &'w ShopperTruth,
    /// The two categories of each taste set.
    sets: Vec<[Category; 2]>,
    /// Per user, `HYPOTHESES` unnormalised log probabilities (shopper-major).
    log_weights: Vec<f64>,
}

impl<'w> Posterior<'w> {
    /// Every user at the world's prior. Refuses a world outside the posterior's model.
    pub fn new(world: &'w World) -> Result<Self, String> {
        let truth = world.shopper_truth().ok_or("the posterior oracle needs a shoppers world (--world shoppers)")?;
        if truth.tastes_drift() {
            return Err("the posterior oracle assumes tastes that do not drift (taste_drift_hours = 0)".into());
        }
        let mut sets = Vec::with_capacity(TASTE_SETS);
        for i in 0..Category::COUNT {
            for j in i..Category::COUNT {
                sets.push([Category::ALL[i], Category::ALL[j]]);
            }
        }
        // Two independent even draws: a pair of distinct categories comes two ways.
        let n = Category::COUNT as f64;
        let set_prior: Vec<f64> =
            sets.iter().map(|[a, b]| if a == b { 1.0 / (n * n) } else { 2.0 / (n * n) }).collect();
        let mut log_weights = Vec::with_capacity(world.users.len() * HYPOTHESES);
        for user in &world.users {
            let shopper = truth.shopper_prior(user);
            for p in shopper {
                log_weights.extend(set_prior.iter().map(|q| (p * q).ln()));
            }
        }
        Ok(Posterior { world, truth, sets, log_weights })
    }

    /// The state saved by [`Posterior::save`], for the same world.
    pub fn load(world: &'w World, path: &Path) -> Result<Self, String> {
        let mut posterior = Posterior::new(world)?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let body =
            bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| format!("{}: not a posterior state", path.display()))?;
        let (fingerprint, body) = body.split_at_checked(8).ok_or_else(|| format!("{}: cut short", path.display()))?;
        if u64::from_le_bytes(fingerprint.try_into().expect("8 bytes")) != posterior.truth.fingerprint() {
            return Err(format!("{}: the posterior of another world", path.display()));
        }
        if body.len() != posterior.log_weights.len() * 8 {
            return Err(format!(
                "{}: a posterior of {} values, this world has {} users × {HYPOTHESES} hypotheses",
                path.display(),
                body.len() / 8,
                world.users.len()
            ));
        }
        for (w, chunk) in posterior.log_weights.iter_mut().zip(body.chunks_exact(8)) {
            *w = f64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        }
        Ok(posterior)
    }

    /// Writes the state for a later run on the same world.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + self.log_weights.len() * 8);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.truth.fingerprint().to_le_bytes());
        for w in &self.log_weights {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// (P(view), P(buy | view)) of `session` for `user`, per shopper type, if the user does not and
    /// does like the session's category.
    fn probs(&self, user: usize, session: usize) -> [[(f64, f64); 2]; 3] {
        let (u, s) = (&self.world.users[user], &self.world.sessions[session]);
        Shopper::ALL.map(|shopper| {
            [false, true].map(|likes| {
                let (view, buy) = self.truth.probs_if(session, s, u, shopper, likes);
                (f64::from(view), f64::from(buy))
            })
        })
    }

    /// Updates `user`'s posterior with what came of one impression of `session` they saw.
    pub fn observe(&mut self, user: usize, session: usize, outcome: Outcome) {
        let probs = self.probs(user, session);
        let log_likelihood: [[f64; 2]; 3] = std::array::from_fn(|k| {
            let returns = self.truth.return_rate_of(Shopper::ALL[k]);
            probs[k].map(|(view, buy)| {
                let p = match outcome {
                    Outcome { viewed: false, .. } => 1.0 - view,
                    Outcome { bought: false, .. } => view * (1.0 - buy),
                    Outcome { returned, .. } => view * buy * if returned { returns } else { 1.0 - returns },
                };
                p.ln()
            })
        });
        let category = self.world.sessions[session].category;
        let weights = &mut self.log_weights[user * HYPOTHESES..(user + 1) * HYPOTHESES];
        for (k, per_shopper) in weights.chunks_exact_mut(TASTE_SETS).enumerate() {
            for (w, set) in per_shopper.iter_mut().zip(&self.sets) {
                *w += log_likelihood[k][usize::from(set.contains(&category))];
            }
        }
    }

    /// The posterior probability of each shopper type, and of each type together with liking
    /// each category.
    fn marginals(&self, user: usize) -> ([f64; 3], [[f64; Category::COUNT]; 3]) {
        let weights = &self.log_weights[user * HYPOTHESES..(user + 1) * HYPOTHESES];
        let top = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (mut shopper, mut likes) = ([0.0; 3], [[0.0; Category::COUNT]; 3]);
        let mut total = 0.0;
        for (k, per_shopper) in weights.chunks_exact(TASTE_SETS).enumerate() {
            for (w, [a, b]) in per_shopper.iter().zip(&self.sets) {
                let p = (w - top).exp();
                total += p;
                shopper[k] += p;
                likes[k][a.index()] += p;
                if a != b {
                    likes[k][b.index()] += p;
                }
            }
        }
        (shopper.map(|p| p / total), likes.map(|row| row.map(|p| p / total)))
    }

    /// The posterior mean of the true expected purchases of each of `candidates` for `user`.
    pub fn expected(&self, user: usize, candidates: &[usize]) -> Vec<f64> {
        let (shopper, likes) = self.marginals(user);
        candidates
            .iter()
            .map(|&s| {
                let c = self.world.sessions[s].category.index();
                let probs = self.probs(user, s);
                (0..3)
                    .map(|k| {
                        let [(v0, b0), (v1, b1)] = probs[k];
                        likes[k][c] * v1 * b1 + (shopper[k] - likes[k][c]) * v0 * b0
                    })
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::generator::GeneratorConfig;
    use crate::worlds::{Family, WorldSpec};

    fn world() -> World {
        let spec = WorldSpec { family: Family::Shoppers, ..WorldSpec::default() };
        World::of(&spec, GeneratorConfig { users: 40, sessions: 60, impressions: 0, seed: 9 })
    }

    /// Shows `user` `n` sessions drawn evenly, with outcomes drawn from the truth, and tells the
    /// posterior what came of each.
    fn show(world: &World, posterior: &mut Posterior<'_>, rng: &mut rand::rngs::StdRng, user: usize, n: usize) {
        use rand::Rng;
        for _ in 0..n {
            let s = rng.gen_range(0..world.sessions.len());
            let (view, buy) = world.probs(s, user, 0);
            let viewed = rng.gen_bool(f64::from(view));
            let bought = viewed && rng.gen_bool(f64::from(buy));
            let returned = bought && rng.gen_bool(world.return_rate(user));
            posterior.observe(user, s, Outcome { viewed, bought, returned });
        }
    }

    #[test]
    fn at_the_prior_it_is_the_truth_averaged_over_the_hidden_variables() {
        let world = world();
        let posterior = Posterior::new(&world).unwrap();
        let truth = world.shopper_truth().unwrap();
        let all: Vec<usize> = (0..world.sessions.len()).collect();
        for user in 0..5 {
            let got = posterior.expected(user, &all);
            let prior = truth.shopper_prior(&world.users[user]);
            for &s in &all {
                // A category is among two even draws from twelve with probability 1 − (11/12)².
                let liked = 1.0 - (11.0f64 / 12.0).powi(2);
                let want: f64 = Shopper::ALL
                    .iter()
                    .zip(prior)
                    .map(|(&k, p)| {
                        let ev = |likes| {
                            let (v, b) = truth.probs_if(s, &world.sessions[s], &world.users[user], k, likes);
                            f64::from(v) * f64::from(b)
                        };
                        p * (liked * ev(true) + (1.0 - liked) * ev(false))
                    })
                    .sum();
                assert!((got[s] - want).abs() <= 1e-9 + 1e-6 * want, "user {user} session {s}: {} vs {want}", got[s]);
            }
        }
    }

    #[test]
    fn evidence_finds_the_hidden_truth() {
        let world = world();
        let mut posterior = Posterior::new(&world).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(4);
        let user = 3;
        // Many impressions drawn from the truth: the posterior mean approaches the truth.
        show(&world, &mut posterior, &mut rng, user, 20_000);
        let all: Vec<usize> = (0..world.sessions.len()).collect();
        for (s, got) in posterior.expected(user, &all).into_iter().enumerate() {
            let want = world.expected_purchase(s, user, 0);
            assert!((got - want).abs() <= 1e-6 + 0.02 * want, "session {s}: {got} vs {want}");
        }
        // Another user's posterior did not move.
        assert_eq!(posterior.expected(4, &all), Posterior::new(&world).unwrap().expected(4, &all));
    }

    #[test]
    fn a_history_ranks_better_than_demographics_alone() {
        let spec = WorldSpec { family: Family::Shoppers, ..WorldSpec::default() };
        let world = World::of(&spec, GeneratorConfig { users: 400, sessions: 60, impressions: 0, seed: 11 });
        let mut posterior = Posterior::new(&world).unwrap();
        let prior = Posterior::new(&world).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(8);
        let all: Vec<usize> = (0..world.sessions.len()).collect();
        // 40 impressions per user of sessions drawn evenly, outcomes drawn from the truth.
        for user in 0..world.users.len() {
            show(&world, &mut posterior, &mut rng, user, 40);
        }
        // The truth of each one's first choice, summed over the users.
        let value_of_best = |p: &Posterior, user: usize| {
            let expected = p.expected(user, &all);
            let best = (0..all.len()).max_by(|&a, &b| expected[a].total_cmp(&expected[b])).unwrap();
            world.expected_purchase(best, user, 0)
        };
        let sum = |f: &dyn Fn(usize) -> f64| (0..world.users.len()).map(f).sum::<f64>();
        let informed = sum(&|u| value_of_best(&posterior, u));
        let demographic = sum(&|u| value_of_best(&prior, u));
        let oracle = sum(&|u| all.iter().map(|&s| world.expected_purchase(s, u, 0)).fold(0.0, f64::max));
        assert!(informed > 1.08 * demographic, "{informed} against {demographic}");
        assert!(oracle > informed, "{oracle} against {informed}");
    }

    #[test]
    fn a_saved_state_loads_back_and_refuses_another_world() {
        let world = world();
        let mut posterior = Posterior::new(&world).unwrap();
        posterior.observe(1, 2, Outcome { viewed: true, bought: true, returned: false });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        posterior.save(&path).unwrap();
        let loaded = Posterior::load(&world, &path).unwrap();
        assert_eq!(loaded.log_weights, posterior.log_weights);
        let spec = WorldSpec { family: Family::Shoppers, ..WorldSpec::default() };
        let other = World::of(&spec, GeneratorConfig { users: 40, sessions: 60, impressions: 0, seed: 10 });
        assert!(Posterior::load(&other, &path).unwrap_err().contains("another world"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        assert!(Posterior::load(&world, &path).unwrap_err().contains("a posterior of"));
        let default =
            World::of(&WorldSpec::default(), GeneratorConfig { users: 40, sessions: 60, impressions: 0, seed: 9 });
        assert!(Posterior::new(&default).is_err());
    }
}
