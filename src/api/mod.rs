//! The gRPC API layer: thin tonic handlers.
//!
//! Each handler converts and validates the request ([`convert`]), calls domain code, and converts
//! the result back. Validation failures name the offending field (`candidate_session_ids[3]: ...`).
//! Every domain error reaches the client through the single mapping in [`status`].

mod admin;
mod catalog;
pub mod convert;
mod events;
mod ranking;
pub mod status;

pub use admin::AdminApi;
pub use catalog::CatalogApi;
pub use events::EventApi;
pub use ranking::RankingApi;

/// Limits that requests are validated against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most candidates in one `Rank` (default 2,000).
    pub max_candidates: usize,
    /// `limit` used when a request sends 0.
    pub default_limit: usize,
    /// Most items in one catalog or event batch.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_candidates: 2_000, default_limit: 50, max_batch: 10_000 }
    }
}
