//! Ranking: candidates → feature rows → model heads → policy score → order.
//!
//! [`Ranker::rank`] is the domain entry point behind `RankingService.Rank`. It reads the user and
//! every candidate in batched store calls, extracts features with the shared extractor, scores both
//! heads of one model snapshot, combines them with the [`Policy`], and orders the result.
//! [`RankLatency`] keeps the server-side time of every ranking, for operators and the benchmarks.

mod latency;
mod policy;
mod ranker;

pub mod explore;
pub mod interleave;

pub use latency::{LatencySummary, RankLatency};
pub use policy::Policy;
pub use ranker::{RankError, RankQuery, Ranked, RankedItem, Ranker, UnrankedReason};
