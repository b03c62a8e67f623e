//! Each A/B arm's outcome as this replica sees it while the experiment runs: the live readout the
//! console shows beside the guardrails.
//!
//! The unit is the user, as in the offline report (`fitrank report`): an arm's users are the ones
//! this replica ranked under it, its buyers those of them with a purchase stored since. Each
//! metric is compared with the control arm with its 95% interval, by the report's own tests:
//! conversion (buyers / users) by two proportions ([`stats::two_proportions`]), purchases and
//! revenue per user by Welch's t-test ([`stats::welch`]); the sample-ratio check compares users
//! per arm with the arms' weights ([`stats::srm`]). So the two agree on the same users.
//!
//! What this replica sees is all it counts: behind a load balancer each replica reads out its
//! share of the traffic, and a restart starts over. The offline report over the export is the
//! number to decide on; the readout says, while it runs, whether an arm is going wrong.
//!
//! Memory is bounded: an arm remembers at most [`MAX_USERS_PER_ARM`] users (a hash of the id, their
//! purchases and revenue: about 32 bytes each in the table); past that it stops admitting new
//! users and says so (`saturated`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::stats::{self, Comparison, Srm};

/// Users an arm remembers at most (about 32 MB per arm when full).
pub const MAX_USERS_PER_ARM: usize = 1_000_000;

/// What one user of an arm did since it was ranked under it.
#[derive(Debug, Default, Clone, Copy)]
struct UserOutcome {
    purchases: u32,
    revenue: f32,
}

/// What one arm counted.
#[derive(Debug, Default)]
struct Tally {
    rankings: u64,
    users: HashMap<u64, UserOutcome>,
    buyers: u64,
    purchases: u64,
    saturated: bool,
}

impl Tally {
    fn per_user(&self, f: impl Fn(&UserOutcome) -> f64) -> Vec<f64> {
        self.users.values().map(f).collect()
    }
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
    /// Sum of the purchases' amounts.
    pub revenue: f64,
    /// buyers / users.
    pub conversion: f64,
    pub purchases_per_user: f64,
    pub revenue_per_user: f64,
    /// Against the control arm (absent for the control itself and before both have users):
    /// conversion, purchases per user, revenue per user.
    pub vs_control: Option<Comparison>,
    pub purchases_vs_control: Option<Comparison>,
    pub revenue_vs_control: Option<Comparison>,
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
                t.users.entry(key).or_default();
            } else if !t.users.contains_key(&key) {
                t.saturated = true;
            }
        }
    }

    /// Counts a stored purchase of `amount` by `user_id`, in each (experiment, arm) of `arms` that
    /// ranked them.
    pub fn purchased(&self, user_id: &str, amount: f64, arms: &[(&str, &str)]) {
        let key = user_key(user_id);
        let mut tallies = self.lock();
        for (experiment, arm) in arms {
            let Some(t) = tallies.get_mut(&((*experiment).to_owned(), (*arm).to_owned())) else { continue };
            let Some(user) = t.users.get_mut(&key) else { continue };
            if user.purchases == 0 {
                t.buyers += 1;
            }
            user.purchases = user.purchases.saturating_add(1);
            user.revenue += amount as f32;
            t.purchases += 1;
        }
    }

    /// The readout of `experiment`'s `arms` (name and weight, in order), `control` first among
    /// equals.
    pub fn readout(&self, experiment: &str, arms: &[(&str, f64)], control: &str) -> Readout {
        let tallies = self.lock();
        let empty = Tally::default();
        let counts = |arm: &str| tallies.get(&(experiment.to_owned(), arm.to_owned())).unwrap_or(&empty);
        let c = counts(control);
        let (c_purchases, c_revenue) = (c.per_user(|u| f64::from(u.purchases)), c.per_user(|u| f64::from(u.revenue)));
        let arms_out = arms
            .iter()
            .map(|(arm, _)| {
                let t = counts(arm);
                let users = t.users.len() as u64;
                let per_user = |x: f64| if users == 0 { 0.0 } else { x / users as f64 };
                let revenue: f64 = t.users.values().map(|u| f64::from(u.revenue)).sum();
                let treated = *arm != control;
                ArmReadout {
                    arm: (*arm).to_owned(),
                    rankings: t.rankings,
                    users,
                    buyers: t.buyers,
                    purchases: t.purchases,
                    revenue,
                    conversion: per_user(t.buyers as f64),
                    purchases_per_user: per_user(t.purchases as f64),
                    revenue_per_user: per_user(revenue),
                    vs_control: treated
                        .then(|| stats::two_proportions(c.buyers, c.users.len() as u64, t.buyers, users))
                        .flatten(),
                    purchases_vs_control: treated
                        .then(|| stats::welch(&c_purchases, &t.per_user(|u| f64::from(u.purchases))))
                        .flatten(),
                    revenue_vs_control: treated
                        .then(|| stats::welch(&c_revenue, &t.per_user(|u| f64::from(u.revenue))))
                        .flatten(),
                    saturated: t.saturated,
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
                r.purchased(&user, 10.0, &[("e", arm)]);
                r.purchased(&user, 30.0, &[("e", arm)]);
            }
        }
        // A purchase by a user this replica never ranked under the arm counts nowhere.
        r.purchased("stranger", 10.0, &[("e", "control")]);
        let out = r.readout("e", &[("control", 1.0), ("treatment", 1.0)], "control");
        let (c, t) = (&out.arms[0], &out.arms[1]);
        assert_eq!((c.rankings, c.users, c.buyers, c.purchases), (100, 50, 10, 20));
        assert_eq!((t.rankings, t.users, t.buyers, t.purchases), (100, 50, 25, 50));
        assert!(c.vs_control.is_none());
        let lift = t.vs_control.unwrap();
        assert!((lift.difference - 0.3).abs() < 1e-12, "{lift:?}");
        assert!(lift.ci_low > 0.0 && lift.p_value < 0.01, "{lift:?}");
        assert_eq!((c.revenue, t.revenue), (400.0, 1_000.0));
        assert_eq!((c.purchases_per_user, t.revenue_per_user), (0.4, 20.0));
        let purchases = t.purchases_vs_control.unwrap();
        assert!((purchases.difference - 0.6).abs() < 1e-12, "{purchases:?}");
        assert!((t.revenue_vs_control.unwrap().difference - 12.0).abs() < 1e-9);
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
