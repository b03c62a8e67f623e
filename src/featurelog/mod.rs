//! The feature log: what was served, exactly, and what users did afterwards.
//!
//! Two streams of append-only segment files (frames from [`crate::frames`], payloads encoded with
//! postcard) under one folder:
//!
//! - `served4-*.seg`: one [`ServedRanking`] per `Rank` call: the user's profile and activity, the
//!   context, the model version, the experiment arm, and per returned item the session, its live
//!   stats snapshot, the scores, the placement probability, and the **exact feature row that was
//!   scored** (sparse). Sessions and stats snapshots are written once per segment and named by
//!   key, and rows as changes to the session's previous row ([`dictionary`]); segments of the
//!   earlier formats (`served3-*.seg`, whose user activity had no purchases, returns or price
//!   bands; `served2-*.seg`, nor impressions and views per category; `served-*.seg`, every item
//!   whole) are still read. Written by a background
//!   thread so `Rank` never waits on disk, handed over through [`queue`], which wakes the writer
//!   once per batch of rankings rather than per ranking; if the queue is full a ranking is
//!   dropped from the log (counted and logged), never delayed.
//! - `outcomes2-*.seg`: every valid ingested event, written *before* the ingest call is
//!   acknowledged (`outcomes-*.seg`, events without order ids, are still read). Duplicates may appear (a retried batch); the join de-duplicates by event id.
//!
//! Flush policy (configurable in `[feature_log]`): served records are buffered and flushed every
//! `flush_interval_ms` (default 1 s) and on shutdown; so a crash loses at most that much of the
//! served log. Outcome batches are written through at once. `fsync = true` adds an `fdatasync`
//! per flush or outcome batch. Segments rotate at `max_segment_mb` (default 64) or
//! `max_segment_age_secs` (default 1 h); a new process always starts new segments, and each file
//! name carries the start time and a random instance id, so several replicas can write into
//! separate folders and be exported together.

mod dictionary;
mod queue;
mod record;
mod segments;
mod writer;

pub use record::{ServedItem, ServedRanking, SparseRow};
pub use segments::{ReadStats, SegmentKind, read_outcomes, read_served};
pub use writer::{FeatureLog, FeatureLogConfig};
