//! Records of the feature log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{LiveSession, LiveStats, RequestContext, UserActivity, UserProfile};
use crate::features::schema::SCALARS;
use crate::features::{self, Active, CandidateRow, NUM_FEATURES, RequestFeatures, Row};

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

    /// The non-zero entries of a row that [`extract_candidate`](crate::features::extract_candidate)
    /// wrote, given the one-hot positions it reported: below `SCALARS` no other position can be
    /// non-zero, so the ≈ 200 zeros of the one-hot blocks are not looked at. The same entries in the
    /// same order as [`SparseRow::from_dense`] (a property test compares the two); a quarter of the
    /// ranker's own time went to scanning those zeros for the logged items.
    pub fn from_extracted(row: &Row, active: &Active) -> Self {
        debug_assert!(active.windows(2).all(|w| w[0] < w[1]), "active positions must ascend");
        let mut sparse =
            SparseRow { index: Vec::with_capacity(active.len() + 48), value: Vec::with_capacity(active.len() + 48) };
        for &i in active {
            let v = row[usize::from(i)];
            if v != 0.0 {
                sparse.index.push(i);
                sparse.value.push(v);
            }
        }
        for (i, &v) in row.iter().enumerate().skip(SCALARS) {
            if v != 0.0 {
                sparse.index.push(i as u16);
                sparse.value.push(v);
            }
        }
        sparse
    }
}

/// One returned item of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedItem {
    /// The session as it was when ranked.
    pub session: Arc<LiveSession>,
    /// Its live stats when ranked.
    pub stats: LiveStats,
    /// 0-based position in the response; for a candidate that was not returned (propensity 0),
    /// its place after the returned items in the logging policy's score order.
    pub position: u32,
    pub score: f32,
    pub p_engage: f32,
    pub p_purchase: f32,
    /// Probability that the policy placed this item at this position given the items placed
    /// before it (1 for a deterministic policy); 0 for a scored candidate that was not returned
    /// (`FeatureLogConfig::unreturned_candidates`).
    pub propensity: f32,
    /// The feature row the model scored. Filled by the feature-log writer thread
    /// ([`ServedRanking::extract_rows`]), not by the ranker.
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

impl ServedRanking {
    /// Sets each item's `features` to the row the serving extractor makes from this record's own
    /// inputs (the profile, activity and context, the item's session and stats): the row that was
    /// scored, since [`features::extract_candidate`] is a pure function of exactly these. The
    /// feature-log writer calls it before encoding, so the request thread does not compute the
    /// returned items' rows a second time (`tests/feature_log.rs` checks that the model gives each
    /// logged row the served item's probabilities, bit for bit).
    pub fn extract_rows(&mut self) {
        let request = RequestFeatures::new(&self.user, &self.activity, &self.context);
        let mut row = CandidateRow::new();
        for item in &mut self.items {
            let extracted = features::extract_candidate(&request, &item.session, &item.stats, &mut row);
            item.features = SparseRow::from_extracted(row.row(), &extracted.active);
        }
    }
}

/// postcard's growable-vector output, writing short pieces (varints of one to five bytes, most of
/// a record) byte by byte: `extend_from_slice` calls `memmove` for each, which took 3.6% of the
/// server's time under load. The bytes are postcard's, unchanged.
pub(super) struct SmallWrites(pub(super) Vec<u8>);

impl postcard::ser_flavors::Flavor for SmallWrites {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 8 {
            self.0.reserve(data.len());
            for b in data {
                self.0.push(*b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Category, PriceBand, SessionStatus, Surface, TargetAudience};

    #[test]
    fn small_writes_are_postcards_bytes_and_the_record_decodes_back() {
        let session = Arc::new(LiveSession {
            session_id: "s".into(),
            host_id: "h".into(),
            category: Category::Beauty,
            price_band: PriceBand::Luxury,
            language: "en".into(),
            region: "US".into(),
            start_time_ms: 17,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience { min_age: 20, max_age: 30, ..Default::default() },
        });
        let mut stats = LiveStats { impressions: 3, watch_seconds: 2.5, ..Default::default() };
        stats.segment_views[5] = 9;
        let mut row = [0f32; crate::features::NUM_FEATURES];
        row[3] = 1.0;
        row[200] = -0.25;
        let owned = ServedRanking {
            ranking_id: "r".into(),
            user_id: "u".into(),
            user: UserProfile { region: "US".into(), interests: vec!["x".into()], ..Default::default() },
            activity: UserActivity { at_ms: 5, ..Default::default() },
            context: RequestContext { time_ms: 99, surface: Surface::Search },
            schema_hash: "h".into(),
            model_version: "m/1".into(),
            experiment: "e".into(),
            arm: "a".into(),
            items: vec![ServedItem {
                session: session.clone(),
                stats,
                position: 0,
                score: 0.5,
                p_engage: 0.25,
                p_purchase: 0.125,
                propensity: 1.0,
                features: SparseRow::from_dense(&row),
            }],
        };
        assert_eq!(owned.items[0].features.index.len(), 2);
        let small_writes = postcard::serialize_with_flavor(&owned, SmallWrites(Vec::new())).unwrap();
        assert_eq!(small_writes, postcard::to_allocvec(&owned).unwrap());
        // Segments of the first format hold these records whole; they stay readable.
        assert_eq!(postcard::from_bytes::<ServedRanking>(&small_writes).unwrap(), owned);
    }
}
