//! The one place where errors become gRPC statuses.

use tonic::Status;

use super::convert::FieldError;
use crate::experiment::ExperimentError;
use crate::model::ModelError;
use crate::ranking::RankError;
use crate::store::StoreError;

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Status::unavailable(e.to_string()),
            StoreError::Exhausted(_) => {
                tracing::error!(error = %e, "store is out of space");
                Status::resource_exhausted(e.to_string())
            }
            StoreError::Io(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                Status::internal(e.to_string())
            }
        }
    }
}

/// The outcome log could not take an `Ingest` batch: nothing was stored, a retry is safe.
/// Out of space is `RESOURCE_EXHAUSTED`, anything else `UNAVAILABLE`.
pub(super) fn outcome_log_failed(e: std::io::Error) -> Status {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    let message = format!("cannot write the outcome log, nothing was stored: {e}");
    match e.kind() {
        StorageFull | QuotaExceeded | FileTooLarge => Status::resource_exhausted(message),
        _ => Status::unavailable(message),
    }
}

impl From<RankError> for Status {
    fn from(e: RankError) -> Self {
        match e {
            RankError::Store(e) => e.into(),
        }
    }
}

impl From<ExperimentError> for Status {
    fn from(e: ExperimentError) -> Self {
        match e {
            ExperimentError::Placement(_) => Status::invalid_argument(format!("experiment.{e}")),
            ExperimentError::NotFound(_) => Status::not_found(e.to_string()),
            ExperimentError::Exists(_) => Status::already_exists(e.to_string()),
            ExperimentError::Model(m) => match m {
                ModelError::Io { .. } => Status::internal(format!("experiment.arms.model: {m}")),
                _ => Status::invalid_argument(format!("experiment.arms.model: {m}")),
            },
            ExperimentError::Shared(s) => s.into(),
            ExperimentError::Contended(_) => Status::aborted(e.to_string()),
            ExperimentError::Io { .. } | ExperimentError::Corrupt { .. } | ExperimentError::CorruptShared(_) => {
                tracing::error!(error = %e, "experiments file failure");
                Status::internal(e.to_string())
            }
        }
    }
}

impl From<ModelError> for Status {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::NotFound(_) | ModelError::NoVersions(_) => Status::not_found(e.to_string()),
            ModelError::BadName(_) => Status::invalid_argument(e.to_string()),
            ModelError::SchemaMismatch { .. }
            | ModelError::Invalid { .. }
            | ModelError::Parse { .. }
            | ModelError::NoPrevious => Status::failed_precondition(e.to_string()),
            ModelError::Io { .. } => Status::internal(e.to_string()),
        }
    }
}
