//! Ranking: candidates → feature rows → model heads → policy score → order.
//!
//! [`Ranker::rank`] is the domain entry point behind `RankingService.Rank`. A ranking runs in named
//! steps: **fetch** the user and every candidate in batched store calls (within the caller's
//! deadline), **treat** (the model and policy of the user's experiment arms), **score** both heads
//! of one model snapshot over the shared feature extractor and combine them with the
//! [`crate::policy::Policy`], **order** (top-k, targeted exploration or an interleaving), **log**
//! the ranking for training, and **respond**.
//! [`RankLatency`] keeps the server-side time of every ranking, for operators and the benchmarks.

mod latency;
mod ranker;
pub mod shown;

pub mod explore;
pub mod id;
pub mod interleave;
#[cfg(test)]
mod placement_check;

pub use id::new_ranking_id;
pub use latency::{LatencySample, LatencySummary, RankLatency};
pub use ranker::{RankError, RankQuery, Ranked, RankedItem, Ranker, UnrankedReason};
pub use shown::Shown;
