//! Experiments: who is in which arm ([`assign`]), which experiments run and what an arm changes
//! ([`registry`]), and each arm's in-service guardrails. The per-arm report with its statistics
//! is offline, in the lab (`fitrank report`, crate `fitrank-lab`).
//!
//! Assignment is a pure function of (salt, user id), so replicas and restarts agree without
//! shared state.

pub mod assign;
pub mod readout;
pub mod registry;
pub mod stats;

/// Prefix of an interleaved ranking's arm: `team-draft:` then each position's team, 'a' or 'b'.
pub const TEAM_DRAFT_PREFIX: &str = "team-draft:";

/// The arm an exposure counts under in per-arm tallies: every interleaved ranking counts as
/// "interleaved", whatever its teams.
pub fn arm_group(arm: &str) -> &str {
    if arm.starts_with(TEAM_DRAFT_PREFIX) { "interleaved" } else { arm }
}

pub use assign::{Arm, Assigner, Assignment, BUCKETS, Holdout, Placement, PlacementError, bucket};

pub use registry::{ArmDef, ExperimentDef, ExperimentError, Experiments, Kind, Status};
