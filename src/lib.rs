//! fitrank decides which live shopping sessions to show to which users: the serving product.
//!
//! A request flows top-down through the modules:
//!
//! - [`api`]: tonic handlers; validate and convert wire messages ([`api::convert`]), map errors to
//!   statuses in one place ([`api::status`]).
//! - [`ranking`]: the ranking of candidates for one user, in named steps (fetch, treat, score,
//!   order, log, respond); [`policy`]: how predictions combine into the score, and the overrides an
//!   experiment arm applies.
//! - [`features`]: the single feature extractor shared by serving and training, and its schema.
//! - [`model`]: model artifacts, the linear scorer, the registry that swaps serving models.
//! - [`store`]: online state (catalog, live stats, event de-duplication) behind the [`store::Store`]
//!   trait; the embedded implementation and its write-ahead log, and the Redis one.
//! - [`domain`]: the vocabulary (users, sessions, audiences, events, stats), free of gRPC.
//! - [`featurelog`]: every served ranking and every outcome, written for the lab to export.
//! - [`experiment`]: deterministic assignment to experiments and arms, and each arm's guardrails.
//! - [`proto`]: the generated messages, servers and clients, and the conversions between the
//!   domain's types and the wire's that clients and handlers share.
//! - [`telemetry`]: the Prometheus metrics the HTTP port serves; [`console`]: the operator console
//!   it serves (audience, experiments, models, service), behind a login.
//! - [`access`]: roles, tokens and client certificates, the check every call passes; [`audit`]: the
//!   log of every admin change.
//! - [`config`], [`server`], [`cli`]: process concerns; [`hash`], [`frames`], [`metrics`], [`text`]:
//!   small shared tools.
//!
//! The lab (training, export, evaluation, experiment reports, the simulator, MovieLens) is the
//! crate `fitrank-lab` and the load generator is `fitrank-bench`, both in `crates/`: they use this
//! crate's public types and its generated client; nothing here depends on them.

pub mod access;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod console;
pub mod domain;
pub mod experiment;
pub mod featurelog;
pub mod features;
pub mod frames;
pub mod hash;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod proto;
pub mod ranking;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod text;
