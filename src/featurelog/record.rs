//! Records of the feature log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{LiveSession, LiveStats, RequestContext, UserActivity, UserProfile};
use crate::features::{NUM_FEATURES, Row};

/// A feature row without its zeros.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseRow {
    pub index: Vec<u16>,
    pub value: Vec<f32>,
}

impl SparseRow {
    /// The non-zero entries of `row`.
    pub fn from_dense(row: &Row) -> Self {
        let mut sparse = SparseRow::default();
        for (i, v) in row.iter().enumerate() {
            if *v != 0.0 {
                sparse.index.push(i as u16);
                sparse.value.push(*v);
            }
        }
        sparse
    }

    /// The full row; `None` when an index is out of range (a log from another schema).
    pub fn to_dense(&self) -> Option<Row> {
        let mut row = [0f32; NUM_FEATURES];
        for (i, v) in self.index.iter().zip(&self.value) {
            *row.get_mut(usize::from(*i))? = *v;
        }
        Some(row)
    }
}

/// One returned item of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedItem {
    /// The session as it was when ranked.
    pub session: Arc<LiveSession>,
    /// Its live stats when ranked.
    pub stats: LiveStats,
    /// 0-based position in the response.
    pub position: u32,
    pub score: f32,
    pub p_engage: f32,
    pub p_purchase: f32,
    /// Probability that the policy placed this item at this position (1 for a deterministic
    /// policy).
    pub propensity: f32,
    /// The feature row the model scored.
    pub features: SparseRow,
}

/// One `Rank` call as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedRanking {
    pub ranking_id: String,
    pub user_id: String,
    /// The profile used (stored, inline, or empty for unknown users).
    pub user: UserProfile,
    /// The user's activity when ranked.
    pub activity: UserActivity,
    pub context: RequestContext,
    /// Schema hash of the feature rows.
    pub schema_hash: String,
    /// `<name>/<version>`.
    pub model_version: String,
    /// Experiment and arm; empty when none.
    pub experiment: String,
    pub arm: String,
    pub items: Vec<ServedItem>,
}
