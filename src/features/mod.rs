//! Feature extraction: the one code path that turns (user, session, live statistics, context)
//! into the model's input row.
//!
//! Serving (`crate::ranking`) and training (`crate::train`) both call [`extract`]; there is no
//! second implementation anywhere, so training/serving skew cannot arise from feature code. The
//! layout of the row is fixed by [`schema`], whose stable hash every model artifact records; a
//! model trained on another layout is refused at load time. [`identity`] adds an optional block of
//! hashed user and host ids after the row, keyed by the same function in both paths.

mod extract;
pub mod identity;
pub mod schema;

pub use extract::{Active, CandidateRow, Extracted, FeatureInput, RequestFeatures, Row, extract, extract_candidate};
pub use identity::IdentityKeys;
pub use schema::{NUM_FEATURES, feature_names, schema_hash};

/// No feature value exceeds this in magnitude, whatever the inputs (a property test checks it):
/// every feature is a share, a logarithm or a ratio of counts. Model validation uses it to prove
/// that a model's logits stay finite.
pub const MAX_ABS_FEATURE: f32 = 1e20;
