//! Models: the artifact format on disk, the scorer, and the registry that holds the serving model.
//!
//! A model is two logistic-regression heads fitted by linfa (`crate::train`): **engage** predicts
//! that a shown session is viewed, **purchase** that the user buys in it. The artifact stores each
//! head's intercept and coefficients, so serving is a dot product with no allocation; a test checks
//! that this equals linfa's own `predict_probabilities` on the same rows. A head may also carry an
//! identity block (a weight per hashed user id and host id, `crate::features::identity`), whose
//! size the manifest's `identity_buckets` records.
//!
//! Layout: `models/<name>/<version>/manifest.json` (schema hash, feature names, training data,
//! hyper-parameters, metrics) and `models/<name>/<version>/weights.json` (the heads). Versions are
//! ordered by name; `fitrank train` names them by UTC time (`YYYYMMDD-HHMMSS`), so the greatest name
//! is the newest.

mod artifact;
pub mod comparison;
mod registry;

pub use artifact::{
    FORMAT as ARTIFACT_FORMAT, Heads, LinearHead, Manifest, MetricsData, ModelArtifact, TrainingInfo, is_valid_version,
};
pub use registry::{ListedVersion, LoadedModel, ModelRegistry, newest_version as registry_newest};

use std::path::PathBuf;

/// Why a model could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model versions under {0}")]
    NoVersions(PathBuf),
    #[error("model artifact not found: {0}")]
    NotFound(PathBuf),
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("corrupt model artifact {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error(
        "model {model} was trained on feature schema {found}, but this server extracts schema {expected}; retrain it with this fitrank version"
    )]
    SchemaMismatch { model: String, expected: String, found: String },
    #[error("invalid model artifact {model}: {reason}")]
    Invalid { model: String, reason: String },
    #[error("invalid model name or version {}: use letters, digits, '.', '_' or '-'", crate::text::quote(.0))]
    BadName(String),
    #[error("no previous model to roll back to")]
    NoPrevious,
}
