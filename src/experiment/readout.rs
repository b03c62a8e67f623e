//! Each A/B arm's outcome as this replica sees it while the experiment runs: the live readout the
//! console shows beside the guardrails.
//!
//! The unit is the user, as in the offline report (`fitrank report`): an arm's users are the ones
//! this replica ranked under it, its buyers those of them with a purchase stored since. Lift is
//! the two-proportion comparison of conversion (buyers / users) with the control arm, with its
//! 95% interval ([`stats::two_proportions`]); the sample-ratio check compares users per arm with
//! the arms' weights ([`stats::srm`]). Both are the report's own statistics, so the two agree on
//! the same users.
//!
//! What this replica sees is all it counts: behind a load balancer each replica reads out its
//! share of the traffic, and a restart starts over. The offline report over the export is the
//! number to decide on; the readout says, while it runs, whether an arm is going wrong.
//!
//! Memory is bounded: an arm remembers at most [`MAX_USERS_PER_ARM`] users (8 bytes each, a hash
//! of the id); past that it stops admitting new users and says so (`saturated`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use super::stats::{self, Comparison, Srm};

/// Users an arm remembers at most (8 MB per arm at 1,000,000).
pub const MAX_USERS_PER_ARM: usize = 1_000_000;

/// What one arm counted.
#[derive(Debug, Default)]
struct Tally {
    rankings: u64,
    users: HashSet<u64>,
    buyers: HashSet<u64>,
    purchases: u64,
    saturated: bool,
}

/// The readouts of every experiment's arms, since the process started.
#[derive(Debug, Default)]
pub struct Readouts {
    tallies: Mutex<HashMap<(String, String), Tally>>,
}

/// One arm's readout.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReadout {
    pub arm: String,
    /// Rankings served under the arm.
    pub rankings: u64,
    /// Distinct users ranked under the arm.
    pub users: u64,
    /// Of them, users with at least one purchase since.
    pub buyers: u64,
    pub purchases: u64,
    /// buyers / users.
    pub conversion: f64,
    /// Against the control arm (absent for the control itself and before both have users).
    pub vs_control: Option<Comparison>,
    /// The arm stopped admitting new users at [`MAX_USERS_PER_ARM`].
    pub saturated: bool,
}

/// An experiment's readout.
#[derive(Debug, Clone, Serialize)]
pub struct Readout {
    pub arms: Vec<ArmReadout>,
    /// Users per arm against the arms' weights; absent before two arms have users.
    pub srm: Option<Srm>,
}

fn user_key(user_id: &str) -> u64 {
    crate::hash::Fnv::default().eat(user_id.bytes()).mixed()
}

impl Readouts {
    /// Counts one ranking of `user_id` under each (experiment, arm) of `arms`.
    pub fn ranked(&self, user_id: &str, arms: &[(&str, &str)]) {
        let key = user_key(user_id);
        let mut tallies = self.lock();
        for (experiment, arm) in arms {
            let t = tallies.entry(((*experiment).to_owned(), (*arm).to_owned())).or_default();
            t.rankings += 1;
            if t.users.len() < MAX_USERS_PER_ARM {
                t.users.insert(key);
            } else if !t.users.contains(&key) {
                t.saturated = true;
            }
        }
    }

    /// Counts a stored purchase by `user_id`, in each (experiment, arm) of `arms` that ranked them.
    pub fn purchased(&self, user_id: &str, arms: &[(&str, &str)]) {
        let key = user_key(user_id);
        let mut tallies = self.lock();
        for (experiment, arm) in arms {
            if let Some(t) = tallies.get_mut(&((*experiment).to_owned(), (*arm).to_owned()))
                && t.users.contains(&key)
            {
                t.purchases += 1;
                t.buyers.insert(key);
            }
        }
    }

    /// The readout of `experiment`'s `arms` (name and weight, in order), `control` first among
    /// equals.
    pub fn readout(&self, experiment: &str, arms: &[(&str, f64)], control: &str) -> Readout {
        let tallies = self.lock();
        let counts = |arm: &str| tallies.get(&(experiment.to_owned(), arm.to_owned()));
        let figures = |arm: &str| counts(arm).map_or((0, 0), |t| (t.buyers.len() as u64, t.users.len() as u64));
        let (control_buyers, control_users) = figures(control);
        let arms_out = arms
            .iter()
            .map(|(arm, _)| {
                let t = counts(arm);
                let (buyers, users) = figures(arm);
                ArmReadout {
                    arm: (*arm).to_owned(),
                    rankings: t.map_or(0, |t| t.rankings),
                    users,
                    buyers,
                    purchases: t.map_or(0, |t| t.purchases),
                    conversion: if users == 0 { 0.0 } else { buyers as f64 / users as f64 },
                    vs_control: (*arm != control)
                        .then(|| stats::two_proportions(control_buyers, control_users, buyers, users))
                        .flatten(),
                    saturated: t.is_some_and(|t| t.saturated),
                }
            })
            .collect::<Vec<_>>();
        let users: Vec<u64> = arms_out.iter().map(|a| a.users).collect();
        let weights: Vec<f64> = arms.iter().map(|(_, w)| *w).collect();
        let srm = if users.iter().filter(|u| **u > 0).count() >= 2 { stats::srm(&users, &weights) } else { None };
        Readout { arms: arms_out, srm }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Tally>> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_users_once_and_only_buyers_it_ranked() {
        let r = Readouts::default();
        for u in 0..100 {
            let user = format!("u{u}");
            let arm = if u % 2 == 0 { "control" } else { "treatment" };
            r.ranked(&user, &[("e", arm)]);
            r.ranked(&user, &[("e", arm)]);
            // Control users 0, 10, …, 90 buy (10 of 50); treatment users 1, 5, …, 97 (25 of 50).
            if (arm == "control" && u % 5 == 0) || (arm == "treatment" && u % 4 == 1) {
                r.purchased(&user, &[("e", arm)]);
                r.purchased(&user, &[("e", arm)]);
            }
        }
        // A purchase by a user this replica never ranked under the arm counts nowhere.
        r.purchased("stranger", &[("e", "control")]);
        let out = r.readout("e", &[("control", 1.0), ("treatment", 1.0)], "control");
        let (c, t) = (&out.arms[0], &out.arms[1]);
        assert_eq!((c.rankings, c.users, c.buyers, c.purchases), (100, 50, 10, 20));
        assert_eq!((t.rankings, t.users, t.buyers, t.purchases), (100, 50, 25, 50));
        assert!(c.vs_control.is_none());
        let lift = t.vs_control.unwrap();
        assert!((lift.difference - 0.3).abs() < 1e-12, "{lift:?}");
        assert!(lift.ci_low > 0.0 && lift.p_value < 0.01, "{lift:?}");
        let srm = out.srm.unwrap();
        assert!(!srm.alert && srm.chi_square.abs() < 1e-12);
    }

    #[test]
    fn a_skewed_split_alerts() {
        let r = Readouts::default();
        for u in 0..3_000 {
            let arm = if u % 3 == 0 { "b" } else { "a" };
            r.ranked(&format!("u{u}"), &[("e", arm)]);
        }
        let out = r.readout("e", &[("a", 1.0), ("b", 1.0)], "a");
        assert!(out.srm.unwrap().alert);
        assert!(r.readout("other", &[("a", 1.0), ("b", 1.0)], "a").srm.is_none());
    }
}
