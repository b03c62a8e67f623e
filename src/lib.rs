//! fitrank decides which live shopping sessions to show to which users.
//!
//! A request flows top-down through the modules:
//!
//! - [`api`]: tonic handlers; validate and convert wire messages ([`api::convert`]), map errors to
//!   statuses in one place ([`api::status`]).
//! - [`ranking`]: the ranking of candidates for one user, and the policy that combines predictions.
//! - [`features`]: the single feature extractor shared by serving and training, and its schema.
//! - [`model`]: model artifacts, the linear scorer, the registry that swaps serving models.
//! - [`store`]: online state (catalog, live stats, event de-duplication) behind the [`store::Store`]
//!   trait; the embedded implementation and its write-ahead log.
//! - [`domain`]: the vocabulary (users, sessions, audiences, events, stats), free of gRPC.
//! - [`train`]: training data (generated or exported tables) and linfa fitting for `fitrank train`.
//! - [`featurelog`], [`export`]: what was served and what happened, joined into training tables.
//! - [`evaluate`]: model versions measured side by side (`fitrank evaluate`).
//! - [`experiment`]: deterministic assignment to experiments and arms, and the report's statistics.
//! - [`movielens`]: the real-data benchmark (`fitrank bench movielens`) through the same features.
//! - [`simulate`]: a synthetic world with a hidden truth driving a running service over gRPC.
//! - [`config`], [`server`], [`cli`]: process concerns.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod featurelog;
pub mod features;
pub mod frames;
pub mod metrics;
pub mod model;
pub mod movielens;
pub mod proto;
pub mod ranking;
pub mod server;
pub mod simulate;
pub mod store;
pub mod train;
