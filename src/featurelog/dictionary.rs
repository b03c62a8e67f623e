//! The served stream's on-disk encoding: each session and each live-stats snapshot is written
//! once per segment, and rankings refer to it by a small key.
//!
//! A ranking serves 50 items; written whole, each item carried its session (ids, language,
//! region, target) and its live stats (counters, windows, per-segment counts) beside the feature
//! row, 24–26 KB per ranking under the load generator, most of it the same sessions and the same
//! snapshots over and over: stats change only when one of the session's events arrives, and
//! rankings come far more often. Now one frame holds one ranking and, before it, the definitions it needs that its
//! segment does not have yet:
//!
//! - `sessions`: `(key, session)` for a session first seen in this segment, or changed (upserted)
//!   since it was last written;
//! - `stats`: `(key, stats)` for each session whose stats differ from the last written snapshot;
//! - `ranking`: the ranking, its items naming their session by key. Each item's exact feature
//!   row is written as a change to the last row written for the same session in the segment
//!   ([`RowChanges`]): the entries that depend on the session alone (its category, price band and
//!   live rates) repeat from user to user and are written as one bit each.
//!
//! Reading a frame applies its definitions, then resolves the items back to a whole
//! [`ServedRanking`]; a segment is read front to back, so a key always refers to an earlier or
//! the same frame of the same segment. The writer forgets its keys when a segment rotates (or a
//! write or flush fails), so every segment can be read on its own; a reader that meets an undefined key
//! treats the segment as damaged from there.

use std::sync::Arc;

use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use super::record::{ServedItem, ServedRanking, SmallWrites, SparseRow};
use crate::domain::{Category, LiveSession, LiveStats, RequestContext, UserActivity, UserProfile};

/// What the writer has written into the current segment, per session id.
#[derive(Debug, Default)]
pub(super) struct Dictionary {
    sessions: HashMap<String, Written>,
}

#[derive(Debug)]
struct Written {
    key: u32,
    session: Arc<LiveSession>,
    stats: LiveStats,
    /// The last feature row written for this session.
    row: SparseRow,
}

/// The feature rows of a frame's items, each as a change to the previous row of its session: the
/// previous row's entries that are kept (same index, same bits) as a bitmap, the other entries in
/// full. All items' parts are concatenated into three arrays, so a frame allocates three buffers,
/// not three per item; [`Item::kept`] and [`Item::changed`] say how much of each an item
/// takes. Exact: [`apply_row_change`] gives back the row bit for bit.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RowChanges {
    /// Per item that keeps entries, `previous row length / 8` bytes (rounded up): bit `i % 8` of
    /// byte `i / 8` set when entry `i` of the previous row is kept.
    kept: Vec<u8>,
    /// The entries not kept, item after item, each item's in its row's order.
    index: Vec<u16>,
    value: Vec<f32>,
}

impl RowChanges {
    /// Appends `row` as a change to `prev`; returns whether it keeps entries of `prev`, and how
    /// many entries it changes. Rows from the extractor are ascending by index; a row that is not
    /// (or a `prev` that is not) is written whole, so the change is exact for any row.
    fn push(&mut self, prev: &SparseRow, row: &SparseRow) -> (bool, u32) {
        let ascending = |r: &SparseRow| r.index.windows(2).all(|w| w[0] < w[1]);
        let changed_before = self.index.len();
        if prev.index.is_empty() || !ascending(row) || !ascending(prev) {
            self.index.extend_from_slice(&row.index);
            self.value.extend_from_slice(&row.value);
            return (false, row.index.len() as u32);
        }
        let bitmap = self.kept.len();
        self.kept.resize(bitmap + prev.index.len().div_ceil(8), 0);
        let mut p = 0;
        let mut any_kept = false;
        for (&i, &v) in row.index.iter().zip(&row.value) {
            while p < prev.index.len() && prev.index[p] < i {
                p += 1;
            }
            if p < prev.index.len() && prev.index[p] == i && prev.value[p].to_bits() == v.to_bits() {
                self.kept[bitmap + p / 8] |= 1 << (p % 8);
                any_kept = true;
            } else {
                self.index.push(i);
                self.value.push(v);
            }
        }
        if !any_kept {
            self.kept.truncate(bitmap);
        }
        (any_kept, (self.index.len() - changed_before) as u32)
    }
}

/// The row made of `prev`'s entries that `kept` marks (none when `kept` is `None`) and the
/// `index`/`value` entries; `None` when they do not fit together (a bitmap of the wrong length,
/// arrays of different lengths, or a changed entry at a kept index).
fn apply_row_change(prev: &SparseRow, kept: Option<&[u8]>, index: &[u16], value: &[f32]) -> Option<SparseRow> {
    if index.len() != value.len() {
        return None;
    }
    let Some(kept) = kept else {
        return Some(SparseRow { index: index.to_vec(), value: value.to_vec() });
    };
    if kept.len() != prev.index.len().div_ceil(8) {
        return None;
    }
    let mut row =
        SparseRow { index: Vec::with_capacity(prev.index.len()), value: Vec::with_capacity(prev.index.len()) };
    let mut changed = index.iter().zip(value).peekable();
    for p in (0..prev.index.len()).filter(|p| kept[p / 8] & (1 << (p % 8)) != 0) {
        while let Some((&i, &v)) = changed.next_if(|&(&i, _)| i < prev.index[p]) {
            row.index.push(i);
            row.value.push(v);
        }
        row.index.push(prev.index[p]);
        row.value.push(prev.value[p]);
    }
    for (&i, &v) in changed {
        row.index.push(i);
        row.value.push(v);
    }
    row.index.windows(2).all(|w| w[0] < w[1]).then_some(row)
}

/// A frame as encoded (borrowing the ranking).
#[derive(Serialize)]
struct FrameRef<'a, A> {
    sessions: Vec<(u32, &'a LiveSession)>,
    stats: Vec<(u32, &'a LiveStats)>,
    ranking: RankingRef<'a, A>,
    rows: RowChanges,
}

#[derive(Serialize)]
struct RankingRef<'a, A> {
    ranking_id: &'a str,
    user_id: &'a str,
    user: &'a UserProfile,
    activity: &'a A,
    context: &'a RequestContext,
    schema_hash: &'a str,
    model_version: &'a str,
    experiment: &'a str,
    arm: &'a str,
    items: Vec<Item>,
}

/// An item of a frame, as encoded and decoded.
#[derive(Serialize, Deserialize)]
struct Item {
    session: u32,
    position: u32,
    score: f32,
    p_engage: f32,
    p_purchase: f32,
    propensity: f32,
    /// The item's row keeps entries of its session's previous row (its bitmap is next in
    /// [`RowChanges::kept`]).
    kept: bool,
    /// How many entries of [`RowChanges::index`] and [`RowChanges::value`] are the item's.
    changed: u32,
}

/// A frame as decoded; the same fields, in the same order, as [`FrameRef`]. `A` is the user
/// activity as the segment's format wrote it.
#[derive(Deserialize)]
struct Frame<A> {
    sessions: Vec<(u32, LiveSession)>,
    stats: Vec<(u32, LiveStats)>,
    ranking: Ranking<A>,
    rows: RowChanges,
}

#[derive(Deserialize)]
struct Ranking<A> {
    ranking_id: String,
    user_id: String,
    user: UserProfile,
    activity: A,
    context: RequestContext,
    schema_hash: String,
    model_version: String,
    experiment: String,
    arm: String,
    items: Vec<Item>,
}

impl Dictionary {
    /// Forgets every key: the next frame starts a new segment.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// Encodes `r` as one frame payload, adding the definitions this segment lacks.
    pub fn encode(&mut self, r: &ServedRanking) -> Vec<u8> {
        self.encode_with(r, &r.activity)
    }

    /// [`Self::encode`] with the user activity encoded as `activity` (an older format's, in tests).
    fn encode_with<A: Serialize>(&mut self, r: &ServedRanking, activity: &A) -> Vec<u8> {
        let mut sessions = Vec::new();
        let mut stats = Vec::new();
        let mut items = Vec::with_capacity(r.items.len());
        let mut rows = RowChanges {
            kept: Vec::with_capacity(r.items.len() * 8),
            index: Vec::with_capacity(r.items.len() * 32),
            value: Vec::with_capacity(r.items.len() * 32),
        };
        for item in &r.items {
            let next_key = self.sessions.len() as u32;
            let (key, (kept, changed)) = match self.sessions.get_mut(item.session.session_id.as_str()) {
                Some(w) => {
                    if !Arc::ptr_eq(&w.session, &item.session) {
                        if *w.session != *item.session {
                            sessions.push((w.key, &*item.session));
                        }
                        // Either way the newer `Arc` makes the next comparison a pointer test.
                        w.session = item.session.clone();
                    }
                    if w.stats != item.stats {
                        stats.push((w.key, &item.stats));
                        w.stats = item.stats;
                    }
                    let change = rows.push(&w.row, &item.features);
                    w.row.clone_from(&item.features);
                    (w.key, change)
                }
                None => {
                    self.sessions.insert(
                        item.session.session_id.clone(),
                        Written {
                            key: next_key,
                            session: item.session.clone(),
                            stats: item.stats,
                            row: item.features.clone(),
                        },
                    );
                    sessions.push((next_key, &*item.session));
                    stats.push((next_key, &item.stats));
                    (next_key, rows.push(&SparseRow::default(), &item.features))
                }
            };
            items.push(Item {
                session: key,
                position: item.position,
                score: item.score,
                p_engage: item.p_engage,
                p_purchase: item.p_purchase,
                propensity: item.propensity,
                kept,
                changed,
            });
        }
        let frame = FrameRef {
            sessions,
            stats,
            ranking: RankingRef {
                ranking_id: &r.ranking_id,
                user_id: &r.user_id,
                user: &r.user,
                activity,
                context: &r.context,
                schema_hash: &r.schema_hash,
                model_version: &r.model_version,
                experiment: &r.experiment,
                arm: &r.arm,
                items,
            },
            rows,
        };
        // Definitions are rare once a segment is warm; the items are ≈ 150 bytes each.
        let flavor = SmallWrites(Vec::with_capacity(256 + r.items.len() * 192));
        postcard::serialize_with_flavor(&frame, flavor).expect("served frames encode")
    }
}

/// Why a frame could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResolveError {
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("an item names session key {0}, not defined earlier in its segment")]
    UndefinedKey(u32),
    #[error("a feature row of session key {0} does not fit the previous row of that session")]
    BadRow(u32),
}

/// [`UserActivity`] as the first and second served formats wrote it.
#[derive(Serialize, Deserialize)]
pub(super) struct ActivityV2 {
    at_ms: i64,
    by_category: [f32; Category::COUNT],
    impressions: f32,
    views: f32,
}

impl From<&UserActivity> for ActivityV2 {
    fn from(a: &UserActivity) -> Self {
        ActivityV2 { at_ms: a.at_ms, by_category: a.by_category, impressions: a.impressions, views: a.views }
    }
}

impl From<ActivityV2> for UserActivity {
    fn from(a: ActivityV2) -> Self {
        let ActivityV2 { at_ms, by_category, impressions, views } = a;
        UserActivity { at_ms, by_category, impressions, views, ..UserActivity::default() }
    }
}

/// [`UserActivity`] as the third served format wrote it: without purchases, returns and the price
/// bands.
#[derive(Serialize, Deserialize)]
pub(super) struct ActivityV3 {
    at_ms: i64,
    by_category: [f32; Category::COUNT],
    impressions: f32,
    views: f32,
    category_impressions: [f32; Category::COUNT],
    category_views: [f32; Category::COUNT],
}

impl From<&UserActivity> for ActivityV3 {
    fn from(a: &UserActivity) -> Self {
        ActivityV3 {
            at_ms: a.at_ms,
            by_category: a.by_category,
            impressions: a.impressions,
            views: a.views,
            category_impressions: a.category_impressions,
            category_views: a.category_views,
        }
    }
}

impl From<ActivityV3> for UserActivity {
    fn from(a: ActivityV3) -> Self {
        let ActivityV3 { at_ms, by_category, impressions, views, category_impressions, category_views } = a;
        UserActivity {
            at_ms,
            by_category,
            impressions,
            views,
            category_impressions,
            category_views,
            ..UserActivity::default()
        }
    }
}

/// The reader's side: the definitions met so far in one segment.
#[derive(Debug, Default)]
pub(super) struct Resolver {
    known: HashMap<u32, (Arc<LiveSession>, LiveStats, SparseRow)>,
}

impl Resolver {
    /// Decodes one frame payload into the ranking it holds.
    pub fn decode(&mut self, payload: &[u8]) -> Result<ServedRanking, ResolveError> {
        self.resolve(postcard::from_bytes::<Frame<UserActivity>>(payload)?)
    }

    /// Decodes one frame payload of the second format, whose user activity had no impressions
    /// and views per category (those read as zero).
    pub fn decode_v2(&mut self, payload: &[u8]) -> Result<ServedRanking, ResolveError> {
        self.resolve(postcard::from_bytes::<Frame<ActivityV2>>(payload)?)
    }

    /// Decodes one frame payload of the third format, whose user activity had no purchases,
    /// returns or price bands (those read as zero).
    pub fn decode_v3(&mut self, payload: &[u8]) -> Result<ServedRanking, ResolveError> {
        self.resolve(postcard::from_bytes::<Frame<ActivityV3>>(payload)?)
    }

    fn resolve<A: Into<UserActivity>>(&mut self, frame: Frame<A>) -> Result<ServedRanking, ResolveError> {
        for (key, session) in frame.sessions {
            let session = Arc::new(session);
            self.known
                .entry(key)
                .and_modify(|(s, _, _)| *s = session.clone())
                .or_insert_with(|| (session, LiveStats::default(), SparseRow::default()));
        }
        for (key, stats) in frame.stats {
            match self.known.get_mut(&key) {
                Some((_, s, _)) => *s = stats,
                None => return Err(ResolveError::UndefinedKey(key)),
            }
        }
        let (r, rows) = (frame.ranking, frame.rows);
        let (mut kept_at, mut changed_at) = (0usize, 0usize);
        let items = r
            .items
            .into_iter()
            .map(|i| {
                let (session, stats, prev) =
                    self.known.get_mut(&i.session).ok_or(ResolveError::UndefinedKey(i.session))?;
                let bad = || ResolveError::BadRow(i.session);
                let kept = if i.kept {
                    let end = kept_at + prev.index.len().div_ceil(8);
                    let bitmap = rows.kept.get(kept_at..end).ok_or_else(bad)?;
                    kept_at = end;
                    Some(bitmap)
                } else {
                    None
                };
                let end = changed_at.checked_add(i.changed as usize).ok_or_else(bad)?;
                let index = rows.index.get(changed_at..end).ok_or_else(bad)?;
                let value = rows.value.get(changed_at..end).ok_or_else(bad)?;
                changed_at = end;
                let features = apply_row_change(prev, kept, index, value).ok_or_else(bad)?;
                prev.clone_from(&features);
                Ok(ServedItem {
                    session: session.clone(),
                    stats: *stats,
                    position: i.position,
                    score: i.score,
                    p_engage: i.p_engage,
                    p_purchase: i.p_purchase,
                    propensity: i.propensity,
                    features,
                })
            })
            .collect::<Result<_, ResolveError>>()?;
        Ok(ServedRanking {
            ranking_id: r.ranking_id,
            user_id: r.user_id,
            user: r.user,
            activity: r.activity.into(),
            context: r.context,
            schema_hash: r.schema_hash,
            model_version: r.model_version,
            experiment: r.experiment,
            arm: r.arm,
            items,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{Category, PriceBand, SessionStatus, Surface, TargetAudience};

    pub fn session(id: &str, region: &str) -> Arc<LiveSession> {
        Arc::new(LiveSession {
            session_id: id.into(),
            host_id: format!("host-of-{id}"),
            category: Category::Beauty,
            price_band: PriceBand::Luxury,
            language: "en".into(),
            region: region.into(),
            start_time_ms: 17,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience { min_age: 20, max_age: 30, regions: vec!["US".into()], ..Default::default() },
        })
    }

    pub fn stats(impressions: u64) -> LiveStats {
        let mut s = LiveStats { impressions, watch_seconds: 2.5, ..Default::default() };
        s.segment_views[5] = 9;
        s
    }

    pub fn ranking(id: &str, items: &[(&Arc<LiveSession>, LiveStats)]) -> ServedRanking {
        ServedRanking {
            ranking_id: id.into(),
            user_id: format!("user-of-{id}"),
            user: UserProfile { region: "US".into(), ..Default::default() },
            activity: UserActivity { at_ms: 5, ..Default::default() },
            context: RequestContext { time_ms: 99, surface: Surface::HomeFeed },
            schema_hash: "hash".into(),
            model_version: "m/1".into(),
            experiment: String::new(),
            arm: String::new(),
            items: items
                .iter()
                .enumerate()
                .map(|(i, (session, stats))| ServedItem {
                    session: Arc::clone(session),
                    stats: *stats,
                    position: i as u32,
                    score: 0.5 / (i + 1) as f32,
                    p_engage: 0.25,
                    p_purchase: 0.125,
                    propensity: 1.0,
                    features: SparseRow { index: vec![3, 200 + i as u16], value: vec![1.0, -0.25] },
                })
                .collect(),
        }
    }

    #[test]
    fn sessions_and_stats_are_written_once_and_resolve_back_exactly() {
        let (a, b) = (session("a", "US"), session("b", "DE"));
        let rankings = [
            ranking("r1", &[(&a, stats(1)), (&b, stats(2))]),
            // Nothing new: both sessions and both snapshots are known.
            ranking("r2", &[(&b, stats(2)), (&a, stats(1))]),
            // a's stats moved on.
            ranking("r3", &[(&a, stats(3)), (&b, stats(2))]),
            // b was upserted (a new `Arc` with new content) and a re-sent unchanged in a new `Arc`.
            ranking("r4", &[(&session("b", "FR"), stats(2)), (&session("a", "US"), stats(3))]),
        ];
        let mut dictionary = Dictionary::default();
        let payloads: Vec<Vec<u8>> = rankings.iter().map(|r| dictionary.encode(r)).collect();
        let frames: Vec<Frame<UserActivity>> = payloads.iter().map(|p| postcard::from_bytes(p).unwrap()).collect();
        let defined = |f: &Frame<UserActivity>| {
            (
                f.sessions.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                f.stats.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
        };
        assert_eq!(defined(&frames[0]), (vec![0, 1], vec![0, 1]));
        assert_eq!(defined(&frames[1]), (vec![], vec![]));
        assert_eq!(defined(&frames[2]), (vec![], vec![0]));
        assert_eq!(defined(&frames[3]), (vec![1], vec![]));
        // Without the definitions, a frame is the ranking's own fields (the user's activity, 156
        // bytes of it, and the items).
        assert!(payloads[0].len() - payloads[1].len() > 300, "{} vs {} bytes", payloads[1].len(), payloads[0].len());

        let mut resolver = Resolver::default();
        for (payload, r) in payloads.iter().zip(&rankings) {
            assert_eq!(&resolver.decode(payload).unwrap(), r);
        }

        // A new segment starts from nothing; a reader that missed the definitions refuses.
        dictionary.clear();
        let again = dictionary.encode(&rankings[1]);
        assert_eq!(Resolver::default().decode(&again).unwrap(), rankings[1]);
        assert!(matches!(Resolver::default().decode(&payloads[1]), Err(ResolveError::UndefinedKey(_))));
        assert!(matches!(Resolver::default().decode(&payloads[1][..3]), Err(ResolveError::Decode(_))));
    }

    #[test]
    fn second_format_frames_read_with_the_activity_per_category_at_zero() {
        let a = session("a", "US");
        let mut r = ranking("r1", &[(&a, stats(1))]);
        r.activity.views = 3.0;
        r.activity.category_views[2] = 2.0;
        let v2 = Dictionary::default().encode_with(&r, &ActivityV2::from(&r.activity));
        let read = Resolver::default().decode_v2(&v2).unwrap();
        r.activity.category_views[2] = 0.0;
        assert_eq!(read, r);
        assert!(Resolver::default().decode(&v2).is_err(), "a v2 frame is too short for the third format");
    }

    #[test]
    fn third_format_frames_read_with_purchases_and_price_bands_at_zero() {
        let a = session("a", "US");
        let mut r = ranking("r1", &[(&a, stats(1))]);
        r.activity.views = 3.0;
        r.activity.category_views[2] = 2.0;
        r.activity.purchases = 1.0;
        r.activity.price_views[1] = 2.0;
        let v3 = Dictionary::default().encode_with(&r, &ActivityV3::from(&r.activity));
        let read = Resolver::default().decode_v3(&v3).unwrap();
        r.activity.purchases = 0.0;
        r.activity.price_views[1] = 0.0;
        assert_eq!(read, r);
        assert!(Resolver::default().decode(&v3).is_err(), "a v3 frame is too short for the fourth format");
    }
}

#[cfg(test)]
mod row_delta_tests {
    use super::*;
    use proptest::prelude::*;

    /// A row from (index, value choice) pairs: ascending unique indices when `sorted`; values drawn
    /// from a few (so that rows share entries), including -0.0 and a NaN, whose bits must survive.
    fn row(entries: &[(u16, u8)], sorted: bool) -> SparseRow {
        let values = [1.0, 0.5, -0.0, 0.0, f32::from_bits(0x7fc0_0001), -2.25];
        let mut e: Vec<(u16, u8)> = entries.to_vec();
        if sorted {
            e.sort_by_key(|x| x.0);
            e.dedup_by_key(|x| x.0);
        }
        SparseRow {
            index: e.iter().map(|x| x.0).collect(),
            value: e.iter().map(|x| values[usize::from(x.1) % values.len()]).collect(),
        }
    }

    fn bits(r: &SparseRow) -> (Vec<u16>, Vec<u32>) {
        (r.index.clone(), r.value.iter().map(|v| v.to_bits()).collect())
    }

    /// `next` as a change to `prev` (after another item's change), through the encoding, and back.
    fn round_trip(prev: &SparseRow, next: &SparseRow) -> Option<SparseRow> {
        let mut changes = RowChanges::default();
        // Another item's change first, so the offsets are exercised.
        changes.push(&SparseRow::default(), &SparseRow { index: vec![7], value: vec![1.0] });
        let (kept, changed) = changes.push(prev, next);
        let decoded: RowChanges = postcard::from_bytes(&postcard::to_allocvec(&changes).unwrap()).unwrap();
        let bitmap = kept.then(|| &decoded.kept[..]);
        let (index, value) = (&decoded.index[1..1 + changed as usize], &decoded.value[1..1 + changed as usize]);
        apply_row_change(prev, bitmap, index, value)
    }

    proptest! {
        /// Applying a change to the row it was made against gives the row back, bit for bit,
        /// sorted or not, through the encoding.
        #[test]
        fn a_row_change_gives_the_row_back(
            prev in proptest::collection::vec((0u16..40, 0u8..6), 0..30),
            next in proptest::collection::vec((0u16..40, 0u8..6), 0..30),
            prev_sorted in any::<bool>(),
            next_sorted in any::<bool>(),
        ) {
            let (prev, next) = (row(&prev, prev_sorted), row(&next, next_sorted));
            let back = round_trip(&prev, &next);
            prop_assert!(back.is_some());
            prop_assert_eq!(bits(&back.unwrap()), bits(&next));
        }
    }

    #[test]
    fn shared_entries_cost_a_bit_and_a_misfit_is_refused() {
        let prev = SparseRow { index: vec![1, 5, 9, 12], value: vec![1.0, 0.5, 0.25, 2.0] };
        let next = SparseRow { index: vec![1, 6, 9, 12], value: vec![1.0, 0.5, 0.3, 2.0] };
        let mut changes = RowChanges::default();
        assert_eq!(changes.push(&prev, &next), (true, 2));
        assert_eq!((changes.kept, changes.index, changes.value), (vec![0b1001], vec![6, 9], vec![0.5, 0.3]));
        // Nothing in common: no bitmap.
        let mut changes = RowChanges::default();
        assert_eq!(changes.push(&prev, &SparseRow { index: vec![2], value: vec![1.0] }), (false, 1));
        assert!(changes.kept.is_empty());
        // A bitmap for another length, a changed entry colliding with a kept one, arrays of
        // different lengths: refused, not merged into a wrong row.
        assert_eq!(apply_row_change(&prev, Some(&[0b1, 0]), &[], &[]), None);
        assert_eq!(apply_row_change(&prev, Some(&[0b1]), &[1], &[3.0]), None);
        assert_eq!(apply_row_change(&prev, None, &[1, 2], &[3.0]), None);
        assert_eq!(round_trip(&prev, &next), Some(next));
    }
}
