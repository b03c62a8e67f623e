//! Experiments: who is in which arm ([`assign`]), which experiments run and what an arm changes
//! ([`registry`]), what the arms' differences mean ([`stats`]) and the per-arm report from the
//! feature log's export ([`report`]).
//!
//! Assignment is a pure function of (salt, user id), so replicas and restarts agree without
//! shared state; the statistics are the reference implementations the experiment report uses.

pub mod assign;
pub mod registry;
pub mod report;
pub mod stats;

/// Prefix of an interleaved ranking's arm: `team-draft:` then each position's team, 'a' or 'b'.
pub const TEAM_DRAFT_PREFIX: &str = "team-draft:";

/// The arm an exposure counts under in per-arm tallies: every interleaved ranking counts as
/// "interleaved", whatever its teams.
pub fn arm_group(arm: &str) -> &str {
    if arm.starts_with(TEAM_DRAFT_PREFIX) { "interleaved" } else { arm }
}

pub use assign::{Arm, Assigner, Assignment, BUCKETS, Holdout, Placement, PlacementError, bucket};

pub use registry::{ArmDef, ExperimentDef, ExperimentError, Experiments, Kind, PolicyOverride, Status};
