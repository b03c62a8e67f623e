//! The one place where errors become gRPC statuses.
//!
//! Every message is bounded ([`MAX_MESSAGE_BYTES`]): an error naming a value a client sent must
//! not send a megabyte back (or exceed the client's header limit and arrive as an unrelated
//! `RESOURCE_EXHAUSTED`).

use tonic::{Code, Status};

use super::convert::FieldError;
use crate::experiment::ExperimentError;
use crate::model::ModelError;
use crate::ranking::RankError;
use crate::store::StoreError;

/// Longest error message returned, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// A status whose message is cut to [`MAX_MESSAGE_BYTES`] (at a character boundary).
pub(crate) fn bounded(code: Code, message: impl Into<String>) -> Status {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 32;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let total = message.len();
        message.truncate(end);
        message.push_str(&format!("… ({total} bytes in all)"));
    }
    Status::new(code, message)
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        bounded(Code::InvalidArgument, e.to_string())
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => bounded(Code::Unavailable, e.to_string()),
            StoreError::Exhausted(_) => {
                tracing::error!(error = %e, "store is out of space");
                bounded(Code::ResourceExhausted, e.to_string())
            }
            StoreError::Io(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                bounded(Code::Internal, e.to_string())
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
        StorageFull | QuotaExceeded | FileTooLarge => bounded(Code::ResourceExhausted, message),
        _ => bounded(Code::Unavailable, message),
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
            ExperimentError::Placement(_) => bounded(Code::InvalidArgument, format!("experiment.{e}")),
            ExperimentError::NotFound(_) => bounded(Code::NotFound, e.to_string()),
            ExperimentError::Exists(_) => bounded(Code::AlreadyExists, e.to_string()),
            ExperimentError::Model(m) => match m {
                ModelError::Io { .. } => bounded(Code::Internal, format!("experiment.arms.model: {m}")),
                _ => bounded(Code::InvalidArgument, format!("experiment.arms.model: {m}")),
            },
            ExperimentError::Shared(s) => s.into(),
            ExperimentError::Contended(_) => bounded(Code::Aborted, e.to_string()),
            ExperimentError::TooMany(_) => bounded(Code::ResourceExhausted, e.to_string()),
            ExperimentError::Io { .. } | ExperimentError::Corrupt { .. } | ExperimentError::CorruptShared(_) => {
                tracing::error!(error = %e, "experiments file failure");
                bounded(Code::Internal, e.to_string())
            }
        }
    }
}

impl From<ModelError> for Status {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::NotFound(_) | ModelError::NoVersions(_) => bounded(Code::NotFound, e.to_string()),
            ModelError::BadName(_) => bounded(Code::InvalidArgument, e.to_string()),
            ModelError::SchemaMismatch { .. }
            | ModelError::Invalid { .. }
            | ModelError::Parse { .. }
            | ModelError::NoPrevious => bounded(Code::FailedPrecondition, e.to_string()),
            ModelError::Io { .. } => bounded(Code::Internal, e.to_string()),
        }
    }
}
