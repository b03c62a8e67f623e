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

pub use assign::{Arm, Assigner, Assignment, BUCKETS, Holdout, Placement, PlacementError, bucket};

pub use registry::{ArmDef, ExperimentDef, ExperimentError, Experiments, Kind, PolicyOverride, Status};
