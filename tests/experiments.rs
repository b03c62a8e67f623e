//! Experiment assignment invariants, as properties over random experiments and users.

use fitrank::experiment::{Arm, Assigner, Holdout, Placement};
use proptest::prelude::*;

fn placement(name: &str, layer: &str, salt: String, range: (u32, u32), coverage: f64, weights: &[f64]) -> Placement {
    Placement {
        name: name.into(),
        layer: layer.into(),
        salt,
        range_start: range.0,
        range_end: range.1,
        coverage,
        arms: weights.iter().enumerate().map(|(i, w)| Arm { name: format!("arm{i}"), weight: *w }).collect(),
    }
}

fn users(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Arms receive their weight's share of admitted users (within 4.5 binomial standard errors),
    /// and assignment is a pure function of the configuration and the user id.
    #[test]
    fn assignment_is_deterministic_and_balanced(
        salt in "[a-z0-9]{1,12}",
        weights in prop::collection::vec(0.2f64..5.0, 2..5),
        prefix in "[a-z]{0,6}",
    ) {
        let make = || Assigner::new(Holdout::default(),
            vec![placement("e", "layer", salt.clone(), (0, 10_000), 1.0, &weights)]).unwrap();
        let (a, b) = (make(), make());
        let ids = users(20_000, &prefix);
        let mut counts = vec![0usize; weights.len()];
        for id in &ids {
            let got = a.assign(id);
            prop_assert_eq!(&got, &b.assign(id));
            prop_assert_eq!(got.len(), 1);
            counts[got[0].arm_index] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (count, w) in counts.iter().zip(&weights) {
            let p = w / total;
            let expected = p * ids.len() as f64;
            let sd = (ids.len() as f64 * p * (1.0 - p)).sqrt();
            prop_assert!((*count as f64 - expected).abs() < 4.5 * sd,
                "arm with weight {} got {} users, expected {:.0} ± {:.0}", w, count, expected, sd);
        }
    }

    /// Raising coverage only admits users: everyone admitted before keeps their arm.
    #[test]
    fn ramping_coverage_reassigns_nobody(
        salt in "[a-z0-9]{1,12}",
        low in 0.0f64..1.0,
        extra in 0.0f64..1.0,
        start in 0u32..5_000,
        width in 1u32..5_000,
    ) {
        let high = (low + extra).min(1.0);
        let before = Assigner::new(Holdout::default(),
            vec![placement("e", "l", salt.clone(), (start, start + width), low, &[1.0, 1.0, 2.0])]).unwrap();
        let after = Assigner::new(Holdout::default(),
            vec![placement("e", "l", salt.clone(), (start, start + width), high, &[1.0, 1.0, 2.0])]).unwrap();
        let mut admitted = (0usize, 0usize);
        for id in users(5_000, "u") {
            let (b, a) = (before.assign(&id), after.assign(&id));
            admitted.0 += b.len();
            admitted.1 += a.len();
            if let Some(x) = b.first() {
                prop_assert_eq!(a.first(), Some(x), "user {} moved", id);
            }
        }
        prop_assert!(admitted.1 >= admitted.0);
    }

    /// Experiments in one layer never share a user; a user's experiment in one layer says nothing
    /// about its arm in another (the two layers' assignments are independent).
    #[test]
    fn layers_isolate_within_and_overlap_across(split in 1u32..9_999, salt in "[a-z]{1,8}") {
        let a = Assigner::new(Holdout::default(), vec![
            placement("left", "ranking", format!("{salt}1"), (0, split), 1.0, &[1.0, 1.0]),
            placement("right", "ranking", format!("{salt}2"), (split, 10_000), 1.0, &[1.0, 1.0]),
            placement("other", "policy", format!("{salt}3"), (0, 10_000), 1.0, &[1.0, 1.0]),
        ]).unwrap();
        let mut joint = [[0usize; 2]; 2];
        for id in users(8_000, "x") {
            let got = a.assign(&id);
            let ranking: Vec<_> = got.iter().filter(|g| g.experiment != "other").collect();
            prop_assert_eq!(ranking.len(), 1, "exactly one ranking-layer experiment per user");
            let other = got.iter().find(|g| g.experiment == "other").expect("full coverage");
            joint[ranking[0].arm_index][other.arm_index] += 1;
        }
        // Independence: each cell near a quarter of users (4.5 sd of a binomial at p = 1/4).
        let sd = (8_000f64 * 0.25 * 0.75).sqrt();
        for row in joint {
            for cell in row {
                prop_assert!((cell as f64 - 2_000.0).abs() < 4.5 * sd, "{:?}", joint);
            }
        }
    }
}
