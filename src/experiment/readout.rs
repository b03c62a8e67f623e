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

/// What one A/B arm's users did, kept beside the arm's guardrail counters
/// ([`super::registry::ArmGuardrail`]), which count its rankings.
#[derive(Debug, Default)]
pub struct ArmOutcomes {
    users: HashMap<u64, UserOutcome>,
    buyers: u64,
    purchases: u64,
    saturated: bool,
}

impl ArmOutcomes {
    /// Admits `user_id`, ranked under the arm.
    pub fn ranked(&mut self, user_id: &str) {
        let key = user_key(user_id);
        if self.users.len() < MAX_USERS_PER_ARM {
            self.users.entry(key).or_default();
        } else if !self.users.contains_key(&key) {
            self.saturated = true;
        }
    }

    /// Counts a stored purchase of `amount` by `user_id`, if the arm ranked them.
    pub fn purchased(&mut self, user_id: &str, amount: f64) {
        let Some(user) = self.users.get_mut(&user_key(user_id)) else { return };
        if user.purchases == 0 {
            self.buyers += 1;
        }
        user.purchases = user.purchases.saturating_add(1);
        user.revenue += amount as f32;
        self.purchases += 1;
    }

    fn per_user(&self, f: impl Fn(&UserOutcome) -> f64) -> Vec<f64> {
        self.users.values().map(f).collect()
    }
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

/// One arm as the readout reads it: name, weight, rankings and outcomes (`None` before it served).
pub struct ArmFigures<'a> {
    pub name: &'a str,
    pub weight: f64,
    pub rankings: u64,
    pub outcomes: Option<&'a ArmOutcomes>,
}

fn user_key(user_id: &str) -> u64 {
    crate::hash::Fnv::default().eat(user_id.bytes()).mixed()
}

/// The readout of an experiment's `arms`, each compared with the arm named `control`.
pub fn readout<'a>(arms: &[ArmFigures<'a>], control: &str) -> Readout {
    let empty = ArmOutcomes::default();
    let outcomes = |a: &ArmFigures<'a>| -> &ArmOutcomes { a.outcomes.unwrap_or(&empty) };
    let c = arms.iter().find(|a| a.name == control).map_or(&empty, outcomes);
    let (c_purchases, c_revenue) = (c.per_user(|u| f64::from(u.purchases)), c.per_user(|u| f64::from(u.revenue)));
    let arms_out: Vec<ArmReadout> = arms
        .iter()
        .map(|a| {
            let t = outcomes(a);
            let users = t.users.len() as u64;
            let per_user = |x: f64| if users == 0 { 0.0 } else { x / users as f64 };
            let revenue: f64 = t.users.values().map(|u| f64::from(u.revenue)).sum();
            let treated = a.name != control;
            ArmReadout {
                arm: a.name.to_owned(),
                rankings: a.rankings,
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
        .collect();
    let users: Vec<u64> = arms_out.iter().map(|a| a.users).collect();
    let weights: Vec<f64> = arms.iter().map(|a| a.weight).collect();
    let srm = if users.iter().filter(|u| **u > 0).count() >= 2 { stats::srm(&users, &weights) } else { None };
    Readout { arms: arms_out, srm }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures<'a>(name: &'a str, rankings: u64, outcomes: Option<&'a ArmOutcomes>) -> ArmFigures<'a> {
        ArmFigures { name, weight: 1.0, rankings, outcomes }
    }

    #[test]
    fn counts_users_once_and_only_buyers_it_ranked() {
        let (mut control, mut treatment) = (ArmOutcomes::default(), ArmOutcomes::default());
        for u in 0..100 {
            let user = format!("u{u}");
            let arm = if u % 2 == 0 { &mut control } else { &mut treatment };
            arm.ranked(&user);
            arm.ranked(&user);
            // Control users 0, 10, …, 90 buy (10 of 50); treatment users 1, 5, …, 97 (25 of 50).
            if (u % 2 == 0 && u % 5 == 0) || (u % 2 == 1 && u % 4 == 1) {
                arm.purchased(&user, 10.0);
                arm.purchased(&user, 30.0);
            }
        }
        // A purchase by a user this replica never ranked under the arm counts nowhere.
        control.purchased("stranger", 10.0);
        let out =
            readout(&[figures("control", 100, Some(&control)), figures("treatment", 100, Some(&treatment))], "control");
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
        let (mut a, mut b) = (ArmOutcomes::default(), ArmOutcomes::default());
        for u in 0..3_000 {
            if u % 3 == 0 { &mut b } else { &mut a }.ranked(&format!("u{u}"));
        }
        let out = readout(&[figures("a", 2_000, Some(&a)), figures("b", 1_000, Some(&b))], "a");
        assert!(out.srm.unwrap().alert);
        assert!(readout(&[figures("a", 0, None), figures("b", 0, None)], "a").srm.is_none());
    }
}
