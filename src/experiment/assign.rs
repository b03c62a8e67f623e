//! Deterministic assignment of users to experiments and arms.
//!
//! # Buckets
//!
//! A user's position is `bucket(salt, user_id)`: a stable 64-bit hash (FNV-1a, finished with the
//! SplitMix64 mixer) of the salt and the user id, modulo [`BUCKETS`] (10,000). Nothing else — no
//! clock, no random state, no process — influences it, so every replica and every restart agrees.
//!
//! # Layers, ranges and coverage
//!
//! Each layer hashes the user once, with the layer's name as salt. Experiments in one layer own
//! disjoint ranges of that layer's buckets (checked when an experiment is added), so a user is in
//! at most one experiment per layer; experiments in different layers hash independently and
//! overlap freely. Within its range an experiment admits the first `coverage` share of buckets.
//!
//! # Arms
//!
//! The arm is chosen by a *second* hash, salted with the experiment's own salt, over the arms'
//! cumulative weights. It does not depend on coverage, so raising coverage only admits new users:
//! nobody already in the experiment changes arm. Changing weights or the salt does reassign users —
//! that is a new experiment, and the API treats it as one.
//!
//! # Holdout
//!
//! A global holdout (salt and share) is checked first: held-out users get no experiment in any layer.

use serde::{Deserialize, Serialize};

/// Number of hash buckets.
pub const BUCKETS: u32 = 10_000;

/// The bucket of `user_id` under `salt`, in `0..BUCKETS`.
pub fn bucket(salt: &str, user_id: &str) -> u32 {
    (mix(salt, user_id) % u64::from(BUCKETS)) as u32
}

/// A uniform number in [0, 1) for `user_id` under `salt`.
fn unit(salt: &str, user_id: &str) -> f64 {
    crate::hash::unit(mix(salt, user_id))
}

fn mix(salt: &str, user_id: &str) -> u64 {
    crate::hash::Fnv::default().eat(salt.bytes()).eat([0xff]).eat(user_id.bytes()).mixed()
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub name: String,
    /// Relative traffic weight (> 0).
    pub weight: f64,
}

/// An experiment's placement and arms (what assignment needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    pub name: String,
    pub layer: String,
    /// Salt of the arm hash.
    pub salt: String,
    /// First layer bucket the experiment owns.
    pub range_start: u32,
    /// One past its last bucket.
    pub range_end: u32,
    /// Share of the range admitted, 0 to 1.
    pub coverage: f64,
    pub arms: Vec<Arm>,
}

/// The global holdout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    pub salt: String,
    /// Share of all users kept out of every experiment, 0 to 1.
    pub share: f64,
}

/// Why a placement is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("range {start}..{end} of layer {layer:?} overlaps experiment {other:?}")]
    Overlap { layer: String, start: u32, end: u32, other: String },
}

fn invalid(field: &'static str, why: impl Into<String>) -> PlacementError {
    PlacementError::Invalid { field, why: why.into() }
}

impl Placement {
    /// Checks the placement on its own.
    pub fn validate(&self) -> Result<(), PlacementError> {
        if self.name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.layer.is_empty() {
            return Err(invalid("layer", "must not be empty"));
        }
        if self.range_start >= self.range_end || self.range_end > BUCKETS {
            return Err(invalid(
                "range",
                format!("{}..{} must be a non-empty part of 0..{BUCKETS}", self.range_start, self.range_end),
            ));
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(invalid("coverage", format!("{} is not between 0 and 1", self.coverage)));
        }
        if self.arms.len() < 2 {
            return Err(invalid("arms", "an experiment needs at least two arms"));
        }
        for arm in &self.arms {
            if arm.name.is_empty() {
                return Err(invalid("arms.name", "must not be empty"));
            }
            if !(arm.weight.is_finite() && arm.weight > 0.0) {
                return Err(invalid("arms.weight", format!("arm {:?}: {} is not positive", arm.name, arm.weight)));
            }
        }
        let mut names: Vec<&str> = self.arms.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("arms.name", "arm names must be unique"));
        }
        Ok(())
    }

    /// Whether the user's layer bucket is admitted.
    fn admits(&self, layer_bucket: u32) -> bool {
        let width = f64::from(self.range_end - self.range_start);
        let admitted = (width * self.coverage).round() as u32;
        layer_bucket >= self.range_start && layer_bucket < self.range_start + admitted
    }

    /// The arm index of `user_id` (whether or not the user is admitted).
    pub fn arm_of(&self, user_id: &str) -> usize {
        let total: f64 = self.arms.iter().map(|a| a.weight).sum();
        let mut x = unit(&self.salt, user_id) * total;
        for (i, arm) in self.arms.iter().enumerate() {
            if x < arm.weight {
                return i;
            }
            x -= arm.weight;
        }
        self.arms.len() - 1
    }
}

/// One user's assignment in one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment<'a> {
    pub experiment: &'a str,
    pub arm: &'a str,
    pub arm_index: usize,
}

/// All experiments, checked for overlaps, ready to assign.
#[derive(Debug, Clone, Default)]
pub struct Assigner {
    holdout: Holdout,
    placements: Vec<Placement>,
}

impl Assigner {
    /// Builds an assigner; fails on an invalid placement or overlapping ranges in a layer.
    pub fn new(holdout: Holdout, placements: Vec<Placement>) -> Result<Self, PlacementError> {
        if !(0.0..=1.0).contains(&holdout.share) {
            return Err(invalid("holdout.share", format!("{} is not between 0 and 1", holdout.share)));
        }
        let mut assigner = Assigner { holdout, placements: Vec::with_capacity(placements.len()) };
        for p in placements {
            assigner.add(p)?;
        }
        Ok(assigner)
    }

    /// Adds one experiment.
    pub fn add(&mut self, p: Placement) -> Result<(), PlacementError> {
        p.validate()?;
        if self.placements.iter().any(|q| q.name == p.name) {
            return Err(invalid("name", format!("experiment {:?} exists", p.name)));
        }
        if let Some(other) = self
            .placements
            .iter()
            .find(|q| q.layer == p.layer && q.range_start < p.range_end && p.range_start < q.range_end)
        {
            return Err(PlacementError::Overlap {
                layer: p.layer.clone(),
                start: p.range_start,
                end: p.range_end,
                other: other.name.clone(),
            });
        }
        self.placements.push(p);
        Ok(())
    }

    /// Whether the user is in the global holdout.
    pub fn held_out(&self, user_id: &str) -> bool {
        self.holdout.share > 0.0
            && bucket(&self.holdout.salt, user_id) < (f64::from(BUCKETS) * self.holdout.share).round() as u32
    }

    /// The user's assignments, at most one per layer, in the order experiments were added.
    pub fn assign<'a>(&'a self, user_id: &str) -> Vec<Assignment<'a>> {
        if self.held_out(user_id) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut layers: Vec<(&str, u32)> = Vec::new();
        for p in &self.placements {
            let b = match layers.iter().find(|(l, _)| *l == p.layer) {
                Some((_, b)) => *b,
                None => {
                    let b = bucket(&p.layer, user_id);
                    layers.push((&p.layer, b));
                    b
                }
            };
            if p.admits(b) {
                let i = p.arm_of(user_id);
                out.push(Assignment { experiment: &p.name, arm: &p.arms[i].name, arm_index: i });
            }
        }
        out
    }

    /// The experiments, in the order added.
    pub fn placements(&self) -> &[Placement] {
        &self.placements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(name: &str, layer: &str, range: (u32, u32), coverage: f64, weights: &[f64]) -> Placement {
        Placement {
            name: name.into(),
            layer: layer.into(),
            salt: format!("{name}-salt"),
            range_start: range.0,
            range_end: range.1,
            coverage,
            arms: weights.iter().enumerate().map(|(i, w)| Arm { name: format!("arm{i}"), weight: *w }).collect(),
        }
    }

    #[test]
    fn buckets_are_stable_across_versions() {
        // Pinned values: changing the hash would silently move every running experiment's users.
        assert_eq!(bucket("layer-a", "user-1"), bucket("layer-a", "user-1"));
        let pinned: Vec<u32> = ["u1", "u2", "alice"].iter().map(|u| bucket("ranking", u)).collect();
        assert_eq!(pinned, PINNED);
        assert_ne!(bucket("a", "bc"), bucket("ab", "c"), "salt and id are separated");
    }

    const PINNED: [u32; 3] = [273, 6631, 6494];

    #[test]
    fn overlapping_ranges_in_one_layer_are_refused_and_other_layers_overlap() {
        let mut a = Assigner::default();
        a.add(placement("e1", "ranking", (0, 5_000), 1.0, &[1.0, 1.0])).unwrap();
        let err = a.add(placement("e2", "ranking", (4_999, 6_000), 1.0, &[1.0, 1.0])).unwrap_err();
        assert!(matches!(err, PlacementError::Overlap { .. }), "{err}");
        a.add(placement("e3", "ranking", (5_000, 10_000), 1.0, &[1.0, 1.0])).unwrap();
        a.add(placement("e4", "policy", (0, 10_000), 1.0, &[1.0, 1.0])).unwrap();
        for u in 0..2_000 {
            let got = a.assign(&format!("u{u}"));
            assert_eq!(got.len(), 2, "one ranking-layer experiment and the policy one");
            assert_eq!(got.iter().filter(|x| x.experiment == "e1" || x.experiment == "e3").count(), 1);
        }
    }

    #[test]
    fn invalid_placements_name_the_field() {
        let mut p = placement("e", "l", (0, 100), 1.5, &[1.0, 1.0]);
        assert_eq!(p.validate().unwrap_err().to_string(), "coverage: 1.5 is not between 0 and 1");
        p.coverage = 1.0;
        p.arms[1].weight = 0.0;
        assert!(p.validate().unwrap_err().to_string().starts_with("arms.weight"));
        p.arms.pop();
        assert!(p.validate().unwrap_err().to_string().starts_with("arms:"));
        let p = placement("e", "l", (10, 10), 1.0, &[1.0, 1.0]);
        assert!(p.validate().unwrap_err().to_string().starts_with("range"));
    }

    #[test]
    fn the_holdout_gets_no_experiment() {
        let holdout = Holdout { salt: "h".into(), share: 0.1 };
        let a = Assigner::new(holdout, vec![placement("e", "l", (0, 10_000), 1.0, &[1.0, 1.0])]).unwrap();
        let held = (0..20_000).filter(|u| a.held_out(&format!("u{u}"))).count();
        assert!((1_800..2_200).contains(&held), "{held} of 20000 held out");
        for u in 0..2_000 {
            let id = format!("u{u}");
            assert_eq!(a.assign(&id).is_empty(), a.held_out(&id));
        }
    }
}
