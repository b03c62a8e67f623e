//! How live stats and user activity are laid out in Redis, and how one event becomes a record
//! appended to them.
//!
//! A blob is packed little-endian `f64`s (integers are exact below 2^53): an optional **base**,
//! then any number of appended **records**.
//! - The base: first plain counters, which an event adds to; then a reference time and decayed
//!   counters as of that time, one per (counter, half-life); last the latest event's time.
//! - A record is one event's delta: an `f64` NaN (which no stored value is: event amounts are
//!   finite) that names its format, the event's time (`f64`), the number of pairs (`u8`), then
//!   per counter the event changes its 1-based position in the base and its amount. A **short**
//!   record ([`SHORT_TAG`], written since 2026-12-07) follows the count with a zero byte, then
//!   per pair a position byte, with [`ONE`] set for an amount of exactly 1 (most are: a view, an
//!   impression, a purchase counted once), or clear and followed by the amount (`f64`): a view
//!   on a user's activity takes 22 bytes instead of 53. A record of the first format (tagged with
//!   the canonical NaN) has a position (`u8`) and an amount (`f64`) per pair; readers read both.
//!   A reader of the first format takes the zero byte for a position 0, or for a tag that is no
//!   NaN, and refuses the blob rather than misread it. Ingest only appends records (`APPEND`, no
//!   read in Redis); reading folds them
//!   into the base ([`Kind::fold`]), adding plain amounts and decaying the others from the event's
//!   time, exactly as [`crate::domain::window::Decayed::add`] and [`UserActivity::apply`] fold
//!   events in any order. Once a blob has grown past [`Kind::compact_at`] bytes, ingest rewrites
//!   it as one state ([`Kind::compacted`]): a base, or a single record of the state's non-zero
//!   values when that is shorter (a record folded onto nothing is that state).
//!
//! What an event adds is still decided in one place: the delta of an event is the state that
//! [`LiveStats::apply`] (or [`UserActivity::apply`]) produces from empty. Redis only stores
//! deltas, so serving from Redis folds events exactly like the embedded store and the trainer.

use crate::domain::stats::{SEGMENTS, counter};
use crate::domain::window::HALF_LIVES_MS;
use crate::domain::{AFFINITY_HALF_LIFE_MS, Category, Event, LiveStats, PriceBand, UserActivity, Viewer};

/// The shape of a base.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Plain counters first.
    pub plain: usize,
    /// Decayed counters after the reference time, each kept for every half-life.
    pub counters: usize,
    pub half_lives_ms: &'static [i64],
}

impl Layout {
    /// Number of `f64`s in a base: plain counters, reference time, decayed counters, latest time.
    pub const fn values(&self) -> usize {
        self.legacy_values() + 1
    }

    /// Number of `f64`s in a base written before the latest event time was kept (until
    /// 2026-12-06): there the reference time was the latest event's. Also the length of settled
    /// values.
    const fn legacy_values(&self) -> usize {
        self.plain + 1 + self.counters * self.half_lives_ms.len()
    }

    /// The values of a base of this layout with the decayed counters as of the latest event
    /// (the reference time then is the latest event's, and the trailing latest time is dropped);
    /// `None` when the base is of another layout.
    fn settled(&self, base: &[f64]) -> Option<Vec<f64>> {
        if base.len() == self.legacy_values() {
            return Some(base.to_vec());
        }
        if base.len() != self.values() {
            return None;
        }
        let mut v = base[..base.len() - 1].to_vec();
        self.decay_to(&mut v, base[base.len() - 1]);
        Some(v)
    }

    /// Decays settled values `v` to `t` (not before their reference time) and makes `t` their
    /// reference time.
    fn decay_to(&self, v: &mut [f64], t: f64) {
        let at = self.plain;
        let dt = t - v[at];
        if dt <= 0.0 {
            return;
        }
        let k = self.half_lives_ms.len();
        for (w, h) in self.half_lives_ms.iter().enumerate() {
            let f = (-dt / *h as f64).exp2();
            for j in (at + 1 + w..v.len()).step_by(k) {
                v[j] *= f;
            }
        }
        v[at] = t;
    }

    /// Adds an event's amounts at time `t` (`(1-based position, amount)`) to settled values `v`.
    fn add_record(&self, v: &mut [f64], t: f64, pairs: impl Iterator<Item = (u8, f64)>) -> Result<(), String> {
        if !t.is_finite() {
            return Err(format!("a record at time {t}"));
        }
        self.decay_to(v, t);
        let (at, k) = (self.plain, self.half_lives_ms.len());
        for (j, x) in pairs {
            let j = usize::from(j);
            if j == 0 || j - 1 == at || j > v.len() {
                return Err(format!("a record's position {j}"));
            }
            let i = j - 1;
            v[i] += if i < at { x } else { x * (-(v[at] - t) / self.half_lives_ms[(i - at - 1) % k] as f64).exp2() };
        }
        Ok(())
    }
}

/// What a blob holds: each kind's current layout, the older layouts it still reads, and how those
/// convert to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stats,
    Activity,
}

impl Kind {
    pub const fn layout(self) -> Layout {
        match self {
            Kind::Stats => STATS,
            Kind::Activity => ACTIVITY,
        }
    }

    /// Blob size (bytes) past which ingest compacts it: a base and some records, so that
    /// compaction is rare and reads stay small. Live stats (few keys, many events each, appended)
    /// take about 1 KiB of records (some 40 views in short records); a user's activity (millions
    /// of keys, rewritten on each batch) 512 B (some 23 views), so that a user costs Redis little
    /// more than its base.
    pub const fn compact_at(self) -> usize {
        8 * self.layout().values()
            + match self {
                Kind::Stats => 1024,
                Kind::Activity => 512,
            }
    }

    /// The settled values of a base of any layout this kind reads, in the current layout.
    fn settled(self, base: &[f64]) -> Result<Vec<f64>, String> {
        let unknown = || format!("a base of {} values, expected {}", base.len(), self.layout().values());
        match self {
            Kind::Stats => {
                if let Some(v) = STATS.settled(base) {
                    return Ok(v);
                }
                let mut v = STATS_WITHOUT_SEGMENT_PURCHASES.settled(base).ok_or_else(unknown)?;
                let at = STATS_TOTALS + SEGMENTS;
                v.splice(at..at, [0.0; SEGMENTS]);
                Ok(v)
            }
            Kind::Activity => {
                let mut v = [ACTIVITY, ACTIVITY_WITHOUT_PURCHASES, ACTIVITY_WITHOUT_CATEGORY_VIEWS]
                    .iter()
                    .find_map(|l| l.settled(base))
                    .ok_or_else(unknown)?;
                v.resize(ACTIVITY.legacy_values(), 0.0);
                Ok(v)
            }
        }
    }

    /// The blob's base and records folded: settled values of the current layout (decayed counters
    /// as of the latest event, which is the reference time; no trailing latest time).
    pub fn fold(self, bytes: &[u8]) -> Result<Vec<f64>, String> {
        let f64_at = |i: usize| bytes.get(i..i + 8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")));
        let base_len =
            (0..bytes.len() / 8).find(|&i| f64_at(8 * i).is_some_and(f64::is_nan)).unwrap_or(bytes.len() / 8);
        if base_len == bytes.len() / 8 && !bytes.len().is_multiple_of(8) {
            return Err(format!("a blob of {} bytes", bytes.len()));
        }
        let base = unpack(&bytes[..8 * base_len]).expect("whole values");
        let layout = self.layout();
        let mut v = if base.is_empty() { None } else { Some(self.settled(&base)?) };
        let mut pos = 8 * base_len;
        while pos < bytes.len() {
            let truncated = || format!("a record cut short at byte {pos} of {}", bytes.len());
            let (tag, t, n) = match (f64_at(pos), f64_at(pos + 8), bytes.get(pos + 16)) {
                (Some(tag), Some(t), Some(&n)) if tag.is_nan() => (tag.to_bits(), t, usize::from(n)),
                _ => return Err(truncated()),
            };
            let v = v.get_or_insert_with(|| {
                let mut zero = vec![0.0; layout.legacy_values()];
                zero[layout.plain] = t;
                zero
            });
            if tag == SHORT_TAG {
                let start = pos + 18;
                let len = match (bytes.get(pos + 17), bytes.get(start..)) {
                    (Some(0), Some(rest)) => short_pairs_len(rest, n).ok_or_else(truncated)?,
                    _ => return Err(truncated()),
                };
                layout.add_record(v, t, ShortPairs(&bytes[start..start + len]))?;
                pos = start + len;
            } else {
                let end = pos + record_len(n);
                let pairs = bytes.get(pos + 17..end).ok_or_else(truncated)?;
                let pairs =
                    pairs.chunks_exact(9).map(|p| (p[0], f64::from_le_bytes(p[1..].try_into().expect("8 bytes"))));
                layout.add_record(v, t, pairs)?;
                pos = end;
            }
        }
        v.ok_or_else(|| "an empty blob".to_owned())
    }

    /// The blob rewritten as one state, the same as its base and records: a base of the current
    /// layout, or, when it is shorter, one record at the state's reference time holding its
    /// non-zero values (folding it onto nothing gives back the same values exactly). Most users
    /// touch few categories and price bands, so most of a dense base is zeros: written sparse, a
    /// user costs less memory, and every later rewrite of the blob copies and logs fewer bytes.
    pub fn compacted(self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut v = self.fold(bytes)?;
        let record = self.record(&v);
        if record.len() < 8 * self.layout().values() {
            return Ok(record);
        }
        v.push(v[self.layout().plain]);
        Ok(pack(&v))
    }

    /// The short record an event appends: the event applied to nothing (`dense`, at least the
    /// settled values of the current layout) as [`SHORT_TAG`], the event's time, the number of
    /// non-zero counters, a zero byte, and the position and amount of each (see the module docs).
    pub fn record(self, dense: &[f64]) -> Vec<u8> {
        let layout = self.layout();
        let at = layout.plain;
        // One pass over the values: the count goes in its byte once the pairs are written.
        let mut out = Vec::with_capacity(18 + 16);
        out.extend(f64::from_bits(SHORT_TAG).to_le_bytes());
        out.extend(dense[at].to_le_bytes());
        out.extend([0, 0]);
        let mut count = 0u8;
        for (j, x) in dense[..layout.values() - 1].iter().enumerate() {
            if j == at || *x == 0.0 {
                continue;
            }
            let position = u8::try_from(j + 1).expect("a layout has fewer than 128 values");
            if *x == 1.0 {
                out.push(position | ONE);
            } else {
                out.push(position);
                out.extend(x.to_le_bytes());
            }
            count += 1;
        }
        out[16] = count;
        out
    }
}

/// The tag of a short record: another NaN, which no arithmetic produces.
const SHORT_TAG: u64 = 0x7FF8_0000_0000_0001;
/// Set on a short record's position byte: the amount is exactly 1 and takes no bytes.
const ONE: u8 = 0x80;

/// Bytes of a record of the first format of `pairs` (position, amount) pairs: tag, time, count,
/// pairs.
const fn record_len(pairs: usize) -> usize {
    17 + 9 * pairs
}

/// Bytes the first `n` pairs of a short record take at the start of `bytes`, or `None` when they
/// are cut short.
fn short_pairs_len(bytes: &[u8], n: usize) -> Option<usize> {
    let mut len = 0;
    for _ in 0..n {
        len += if bytes.get(len)? & ONE != 0 { 1 } else { 9 };
    }
    (len <= bytes.len()).then_some(len)
}

/// The (position, amount) pairs of a short record, whose bytes [`short_pairs_len`] measured.
struct ShortPairs<'a>(&'a [u8]);

impl Iterator for ShortPairs<'_> {
    type Item = (u8, f64);

    fn next(&mut self) -> Option<(u8, f64)> {
        let (&position, rest) = self.0.split_first()?;
        if position & ONE != 0 {
            self.0 = rest;
            return Some((position & !ONE, 1.0));
        }
        let (amount, rest) = rest.split_at(8);
        self.0 = rest;
        Some((position, f64::from_le_bytes(amount.try_into().expect("8 bytes"))))
    }
}

// Record positions are one byte, below the flag of an amount of 1.
const _: () = assert!(STATS.values() < ONE as usize && ACTIVITY.values() < ONE as usize);

/// Plain counters of live stats: 12 totals, then the views and the purchases per audience segment.
const STATS_TOTALS: usize = 12;
pub const STATS: Layout =
    Layout { plain: STATS_TOTALS + 2 * SEGMENTS, counters: counter::COUNT, half_lives_ms: &HALF_LIVES_MS };
/// The stats layout before the purchases per audience segment (until 2026-12-01): still read as a
/// base, with those counts at zero (records append to it; compaction rewrites it in `STATS`).
const STATS_WITHOUT_SEGMENT_PURCHASES: Layout = Layout { plain: STATS_TOTALS + SEGMENTS, ..STATS };
/// User activity: engagement per category, impressions, views, impressions and views per
/// category, then purchases, returns, and impressions, views and purchases per price band.
pub const ACTIVITY: Layout = Layout {
    plain: 0,
    counters: 3 * Category::COUNT + 4 + 3 * PriceBand::COUNT,
    half_lives_ms: &[AFFINITY_HALF_LIFE_MS],
};
/// The activity layout before purchases, returns and the price bands (until 2026-12-06): still
/// read as a base, with those at zero.
const ACTIVITY_WITHOUT_PURCHASES: Layout = Layout { counters: 3 * Category::COUNT + 2, ..ACTIVITY };
/// The activity layout before the impressions and views per category (until 2026-12-05): still
/// read as a base, with those and the later counters at zero.
const ACTIVITY_WITHOUT_CATEGORY_VIEWS: Layout = Layout { counters: Category::COUNT + 2, ..ACTIVITY };

/// Little-endian bytes of `values`.
pub fn pack(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn unpack(bytes: &[u8]) -> Option<Vec<f64>> {
    bytes
        .len()
        .is_multiple_of(8)
        .then(|| bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// Live stats as a blob's values.
pub fn stats_values(s: &LiveStats) -> Vec<f64> {
    let mut v = Vec::with_capacity(STATS.values());
    v.extend([
        s.impressions as f64,
        s.views as f64,
        s.watch_seconds,
        s.interactions as f64,
        s.follows as f64,
        s.add_to_carts as f64,
        s.purchases as f64,
        s.revenue,
        s.returns as f64,
        s.hides as f64,
        s.on_target_views as f64,
        s.known_views as f64,
    ]);
    v.extend(s.segment_views.iter().map(|x| f64::from(*x)));
    v.extend(s.segment_purchases.iter().map(|x| f64::from(*x)));
    v.push(s.windows.at_ms as f64);
    for c in &s.windows.values {
        v.extend(c.iter().map(|x| f64::from(*x)));
    }
    v.push(s.windows.at_ms as f64);
    v
}

/// Live stats from a blob (base and records).
pub fn stats_from_bytes(bytes: &[u8]) -> Result<LiveStats, String> {
    let v = Kind::Stats.fold(bytes)?;
    let n = |x: f64| x.max(0.0).round() as u64;
    let mut s = LiveStats {
        impressions: n(v[0]),
        views: n(v[1]),
        watch_seconds: v[2],
        interactions: n(v[3]),
        follows: n(v[4]),
        add_to_carts: n(v[5]),
        purchases: n(v[6]),
        revenue: v[7],
        returns: n(v[8]),
        hides: n(v[9]),
        on_target_views: n(v[10]),
        known_views: n(v[11]),
        ..Default::default()
    };
    let count = |x: f64| x.clamp(0.0, f64::from(u32::MAX)) as u32;
    for (i, x) in s.segment_views.iter_mut().enumerate() {
        *x = count(v[STATS_TOTALS + i]);
    }
    for (i, x) in s.segment_purchases.iter_mut().enumerate() {
        *x = count(v[STATS_TOTALS + SEGMENTS + i]);
    }
    let at = STATS.plain;
    s.windows.at_ms = v[at] as i64;
    for (c, windows) in s.windows.values.iter_mut().enumerate() {
        for (w, x) in windows.iter_mut().enumerate() {
            *x = v[at + 1 + c * HALF_LIVES_MS.len() + w] as f32;
        }
    }
    Ok(s)
}

/// User activity as a blob's values.
pub fn activity_values(a: &UserActivity) -> Vec<f64> {
    let mut v = Vec::with_capacity(ACTIVITY.values());
    v.push(a.at_ms as f64);
    v.extend(a.by_category.iter().map(|x| f64::from(*x)));
    v.push(f64::from(a.impressions));
    v.push(f64::from(a.views));
    v.extend(a.category_impressions.iter().map(|x| f64::from(*x)));
    v.extend(a.category_views.iter().map(|x| f64::from(*x)));
    v.push(f64::from(a.purchases));
    v.push(f64::from(a.returns));
    v.extend(a.price_impressions.iter().map(|x| f64::from(*x)));
    v.extend(a.price_views.iter().map(|x| f64::from(*x)));
    v.extend(a.price_purchases.iter().map(|x| f64::from(*x)));
    v.push(a.at_ms as f64);
    v
}

/// User activity from a blob (base and records).
pub fn activity_from_bytes(bytes: &[u8]) -> Result<UserActivity, String> {
    let v = Kind::Activity.fold(bytes)?;
    let (n, bands) = (Category::COUNT, PriceBand::COUNT);
    let mut a = UserActivity { at_ms: v[0] as i64, ..Default::default() };
    for i in 0..n {
        a.by_category[i] = v[1 + i] as f32;
        a.category_impressions[i] = v[3 + n + i] as f32;
        a.category_views[i] = v[3 + 2 * n + i] as f32;
    }
    a.impressions = v[1 + n] as f32;
    a.views = v[2 + n] as f32;
    let at = 3 + 3 * n;
    a.purchases = v[at] as f32;
    a.returns = v[at + 1] as f32;
    for i in 0..bands {
        a.price_impressions[i] = v[at + 2 + i] as f32;
        a.price_views[i] = v[at + 2 + bands + i] as f32;
        a.price_purchases[i] = v[at + 2 + 2 * bands + i] as f32;
    }
    Ok(a)
}

/// What `event` by `viewer` adds to a session's stats, as a dense layout's values.
pub fn stats_delta(event: &Event, viewer: Viewer) -> Vec<f64> {
    let mut s = LiveStats::default();
    s.apply(event, viewer);
    stats_values(&s)
}

/// What `event` on a session of `category` and `price_band` adds to the user's activity, as a
/// dense layout's values.
pub fn activity_delta(category: Category, price_band: PriceBand, event: &Event) -> Vec<f64> {
    let mut a = UserActivity::default();
    a.apply(category, price_band, event);
    activity_values(&a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;

    fn event(kind: EventKind, t: i64) -> Event {
        Event {
            event_id: "e".into(),
            kind,
            user_id: "u".into(),
            session_id: "s".into(),
            time_ms: t,
            ranking_id: String::new(),
            position: 0,
            watch_seconds: 42.0,
            amount: 19.5,
            order_id: String::new(),
        }
    }

    #[test]
    fn blobs_round_trip() {
        let mut s = LiveStats::default();
        let viewer = Viewer { in_target: Some(true), segment: Some(3) };
        for (i, kind) in
            [EventKind::Impression, EventKind::View, EventKind::Watch, EventKind::Purchase].into_iter().enumerate()
        {
            s.apply(&event(kind, 1_000_000 + i as i64 * 7_000), viewer);
        }
        let back = stats_from_bytes(&pack(&stats_values(&s))).unwrap();
        assert_eq!(back, s);
        let mut a = UserActivity::default();
        a.apply(Category::Beauty, PriceBand::Mid, &event(EventKind::Purchase, 5_000));
        a.apply(Category::Home, PriceBand::Mid, &event(EventKind::Impression, 9_000));
        a.apply(Category::Home, PriceBand::Mid, &event(EventKind::View, 9_500));
        assert_eq!(activity_from_bytes(&pack(&activity_values(&a))).unwrap(), a);
        assert!(stats_from_bytes(&[0; 8]).is_err());
        assert!(activity_from_bytes(&[0; 8]).is_err());
    }

    #[test]
    fn an_activity_blob_of_the_layout_without_category_views_reads_with_them_at_zero() {
        let mut a = UserActivity::default();
        a.apply(Category::Beauty, PriceBand::Mid, &event(EventKind::Impression, 5_000));
        a.apply(Category::Beauty, PriceBand::Mid, &event(EventKind::View, 6_000));
        assert!(a.category_views[Category::Beauty.index()] > 0.0);
        let mut old = activity_values(&a);
        old.truncate(ACTIVITY_WITHOUT_CATEGORY_VIEWS.legacy_values());
        let back = activity_from_bytes(&pack(&old)).unwrap();
        let expected = UserActivity {
            category_impressions: [0.0; Category::COUNT],
            category_views: [0.0; Category::COUNT],
            price_impressions: [0.0; PriceBand::COUNT],
            price_views: [0.0; PriceBand::COUNT],
            ..a
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn an_activity_blob_of_the_layout_without_purchases_reads_with_them_at_zero() {
        let mut a = UserActivity::default();
        a.apply(Category::Beauty, PriceBand::Luxury, &event(EventKind::View, 5_000));
        a.apply(Category::Beauty, PriceBand::Luxury, &event(EventKind::Purchase, 6_000));
        a.apply(Category::Beauty, PriceBand::Luxury, &event(EventKind::Return, 7_000));
        assert!(a.purchases > 0.0 && a.returns > 0.0 && a.price_purchases[PriceBand::Luxury.index()] > 0.0);
        let mut old = activity_values(&a);
        old.truncate(ACTIVITY_WITHOUT_PURCHASES.legacy_values());
        let back = activity_from_bytes(&pack(&old)).unwrap();
        let none = [0.0; PriceBand::COUNT];
        let expected = UserActivity {
            purchases: 0.0,
            returns: 0.0,
            price_impressions: none,
            price_views: none,
            price_purchases: none,
            ..a
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn a_blob_of_the_layout_without_segment_purchases_reads_with_them_at_zero() {
        let mut s = LiveStats::default();
        let viewer = Viewer { in_target: Some(false), segment: Some(5) };
        for (i, kind) in [EventKind::Impression, EventKind::View, EventKind::Purchase].into_iter().enumerate() {
            s.apply(&event(kind, 1_000_000 + i as i64 * 7_000), viewer);
        }
        assert_eq!(s.segment_purchases[5], 1);
        let mut old = stats_values(&s);
        old.pop();
        old.drain(STATS_TOTALS + SEGMENTS..STATS_TOTALS + 2 * SEGMENTS);
        let back = stats_from_bytes(&pack(&old)).unwrap();
        assert_eq!(back, LiveStats { segment_purchases: [0; SEGMENTS], ..s });
    }

    /// Events of every kind at times that go back and forth, as `(kind, offset ms)`.
    fn events() -> impl proptest::strategy::Strategy<Value = Vec<(usize, i64)>> {
        proptest::collection::vec((0..EventKind::ALL.len(), 0i64..40 * 86_400_000), 1..60)
    }

    /// Equal up to the domain's `f32` decayed counters.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1.0)
    }

    proptest::proptest! {
        /// Appending each event's record to any base (none, or a compaction of the events before
        /// it) and folding gives the domain's own fold of the events in order.
        #[test]
        fn records_fold_like_the_domain_at_any_compaction_point(events in events(), split in 0usize..60) {
            let t0 = 1_800_000_000_000;
            let viewer = Viewer { in_target: Some(true), segment: Some(2) };
            let (mut stats, mut activity) = (LiveStats::default(), UserActivity::default());
            let (mut stats_blob, mut activity_blob) = (Vec::new(), Vec::new());
            for (i, (kind, dt)) in events.iter().enumerate() {
                let e = event(EventKind::ALL[*kind], t0 + dt);
                stats.apply(&e, viewer);
                activity.apply(Category::Home, PriceBand::Mid, &e);
                stats_blob.extend(Kind::Stats.record(&stats_delta(&e, viewer)));
                activity_blob.extend(Kind::Activity.record(&activity_delta(Category::Home, PriceBand::Mid, &e)));
                if i + 1 == split {
                    stats_blob = Kind::Stats.compacted(&stats_blob).unwrap();
                    activity_blob = Kind::Activity.compacted(&activity_blob).unwrap();
                }
            }
            let mut want = stats_values(&stats);
            want.pop();
            let got = Kind::Stats.fold(&stats_blob).unwrap();
            proptest::prop_assert!(want.iter().zip(&got).all(|(a, b)| close(*a, *b)), "{want:?} vs {got:?}");
            let got = stats_from_bytes(&stats_blob).unwrap();
            proptest::prop_assert_eq!((got.views, got.purchases, got.windows.at_ms), (stats.views, stats.purchases, stats.windows.at_ms));
            let mut want = activity_values(&activity);
            want.pop();
            let got = Kind::Activity.fold(&activity_blob);
            if activity.at_ms == 0 {
                // Only events that do not touch activity (they append an empty record at their time).
                proptest::prop_assert!(got.unwrap().iter().skip(1).all(|x| *x == 0.0));
            } else {
                let got = got.unwrap();
                proptest::prop_assert!(want.iter().zip(&got).all(|(a, b)| close(*a, *b)), "{want:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn a_legacy_base_takes_records_and_a_cut_record_is_an_error() {
        let viewer = Viewer { in_target: Some(false), segment: Some(5) };
        let mut s = LiveStats::default();
        s.apply(&event(EventKind::View, 1_000_000), viewer);
        let mut old = stats_values(&s);
        old.pop();
        old.drain(STATS_TOTALS + SEGMENTS..STATS_TOTALS + 2 * SEGMENTS);
        let mut blob = pack(&old);
        let purchase = event(EventKind::Purchase, 1_005_000);
        blob.extend(Kind::Stats.record(&stats_delta(&purchase, viewer)));
        let got = stats_from_bytes(&blob).unwrap();
        assert_eq!((got.views, got.purchases, got.segment_purchases[5], got.windows.at_ms), (1, 1, 1, 1_005_000));
        assert_eq!(stats_from_bytes(&Kind::Stats.compacted(&blob).unwrap()).unwrap(), got);
        assert!(stats_from_bytes(&blob[..blob.len() - 3]).is_err());
        assert!(stats_from_bytes(&[]).is_err());
    }

    #[test]
    fn a_sparse_state_compacts_to_a_record_that_folds_to_it_exactly_and_a_dense_one_to_a_base() {
        let mut blob = Vec::new();
        for (i, kind) in [EventKind::Impression, EventKind::View, EventKind::Purchase].into_iter().enumerate() {
            let e = event(kind, 5_000_000 + 60_000 * i as i64);
            blob.extend(Kind::Activity.record(&activity_delta(Category::Home, PriceBand::Mid, &e)));
        }
        let folded = Kind::Activity.fold(&blob).unwrap();
        let sparse = Kind::Activity.compacted(&blob).unwrap();
        assert!(f64::from_le_bytes(sparse[..8].try_into().unwrap()).is_nan(), "a record");
        assert!(sparse.len() < 8 * ACTIVITY.values() / 2, "{} bytes", sparse.len());
        assert_eq!(Kind::Activity.fold(&sparse).unwrap(), folded);
        // Later records, one of them older than the compaction, fold onto it as onto a base.
        let mut base = folded.clone();
        base.push(base[ACTIVITY.plain]);
        let (mut on_record, mut on_base) = (sparse, pack(&base));
        for t in [5_030_000, 5_500_000] {
            let record =
                Kind::Activity.record(&activity_delta(Category::Beauty, PriceBand::Budget, &event(EventKind::View, t)));
            on_record.extend(&record);
            on_base.extend(&record);
        }
        assert_eq!(Kind::Activity.fold(&on_record).unwrap(), Kind::Activity.fold(&on_base).unwrap());
        // A state with every value set stays a base: a record of it would be longer.
        let mut dense = vec![1.5; ACTIVITY.values()];
        dense[ACTIVITY.plain] = 9_000_000.0;
        *dense.last_mut().unwrap() = 9_000_000.0;
        let again = Kind::Activity.compacted(&pack(&dense)).unwrap();
        assert_eq!(again, pack(&dense));
    }

    /// The tag of a record of the first format, each amount an `f64`: the canonical NaN (any NaN
    /// but [`SHORT_TAG`] reads as this format).
    const TAG: u64 = 0x7FF8_0000_0000_0000;

    /// A record of the first format, as the previous version wrote it.
    fn first_format_record(kind: Kind, dense: &[f64]) -> Vec<u8> {
        let at = kind.layout().plain;
        let changed: Vec<(usize, f64)> = dense[..kind.layout().values() - 1]
            .iter()
            .copied()
            .enumerate()
            .filter(|&(j, x)| j != at && x != 0.0)
            .collect();
        let mut out = f64::from_bits(TAG).to_le_bytes().to_vec();
        out.extend(dense[at].to_le_bytes());
        out.push(changed.len() as u8);
        for (j, x) in changed {
            out.push(j as u8 + 1);
            out.extend(x.to_le_bytes());
        }
        out
    }

    /// Whether the previous version's reader would fold `bytes` (its checks, without the folding).
    fn first_format_reader_accepts(kind: Kind, bytes: &[u8]) -> bool {
        let f64_at = |i: usize| bytes.get(i..i + 8).map(|b| f64::from_le_bytes(b.try_into().unwrap()));
        let mut pos = (0..bytes.len() / 8).find(|&i| f64_at(8 * i).is_some_and(f64::is_nan)).unwrap() * 8;
        while pos < bytes.len() {
            let n = match (f64_at(pos), f64_at(pos + 8), bytes.get(pos + 16)) {
                (Some(tag), Some(_), Some(&n)) if tag.is_nan() => usize::from(n),
                _ => return false,
            };
            let Some(pairs) = bytes.get(pos + 17..pos + record_len(n)) else { return false };
            if pairs.chunks_exact(9).any(|p| p[0] == 0 || usize::from(p[0]) > kind.layout().legacy_values()) {
                return false;
            }
            pos += record_len(n);
        }
        true
    }

    #[test]
    fn a_view_record_is_short_and_other_amounts_keep_an_f64() {
        let delta = |kind| activity_delta(Category::Home, PriceBand::Mid, &event(kind, 9));
        // Four counters of 1: engagement, views, views in the category and in the price band.
        assert_eq!(Kind::Activity.record(&delta(EventKind::View)).len(), 18 + 4);
        let viewer = Viewer { in_target: Some(true), segment: Some(3) };
        let stats_view = Kind::Stats.record(&stats_delta(&event(EventKind::View, 9), viewer));
        // Seven on a session: views, known and on-target views, the segment's, three windows'.
        assert_eq!(stats_view.len(), 18 + 7);
        // 42 s of watching: an engagement of 0.7, which keeps its f64.
        let watch = Kind::Activity.record(&delta(EventKind::Watch));
        assert_eq!(watch.len(), 18 + 9);
        let mut want = delta(EventKind::Watch);
        want.pop();
        assert_eq!(Kind::Activity.fold(&watch).unwrap(), want);
    }

    #[test]
    fn records_of_the_first_format_fold_beside_short_ones() {
        let viewer = Viewer { in_target: Some(true), segment: Some(4) };
        let (mut first, mut mixed, mut short) = (Vec::new(), Vec::new(), Vec::new());
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            let e = event(*kind, 3_000_000 + 45_000 * i as i64);
            let delta = stats_delta(&e, viewer);
            first.extend(first_format_record(Kind::Stats, &delta));
            mixed.extend(if i % 2 == 0 {
                first_format_record(Kind::Stats, &delta)
            } else {
                Kind::Stats.record(&delta)
            });
            short.extend(Kind::Stats.record(&delta));
        }
        assert!(short.len() * 3 < first.len() * 2, "{} against {} bytes", short.len(), first.len());
        let folded = Kind::Stats.fold(&short).unwrap();
        assert_eq!(Kind::Stats.fold(&first).unwrap(), folded);
        assert_eq!(Kind::Stats.fold(&mixed).unwrap(), folded);
        assert_eq!(Kind::Stats.fold(&Kind::Stats.compacted(&mixed).unwrap()).unwrap(), folded);
    }

    #[test]
    fn a_reader_of_the_first_format_refuses_short_records_rather_than_misread_them() {
        let viewer = Viewer { in_target: Some(true), segment: Some(1) };
        let delta = |kind, t| stats_delta(&event(kind, t), viewer);
        let short = |kind, t| Kind::Stats.record(&delta(kind, t));
        let first = |kind, t| first_format_record(Kind::Stats, &delta(kind, t));
        let mut nothing = vec![0.0; STATS.values()];
        nothing[STATS.plain] = 5.0;
        let empty = Kind::Stats.record(&nothing);
        assert_eq!(empty.len(), 18, "a record of no pairs");
        assert!(first_format_reader_accepts(
            Kind::Stats,
            &[first(EventKind::View, 5), first(EventKind::Like, 6)].concat()
        ));
        for blob in [
            short(EventKind::View, 5),
            [first(EventKind::View, 5), short(EventKind::Purchase, 6)].concat(),
            [short(EventKind::Purchase, 6), first(EventKind::View, 7)].concat(),
            empty.clone(),
            [empty.clone(), short(EventKind::View, 7)].concat(),
            [first(EventKind::View, 5), empty.clone()].concat(),
        ] {
            assert!(Kind::Stats.fold(&blob).is_ok());
            assert!(!first_format_reader_accepts(Kind::Stats, &blob));
        }
        let user = |kind, t| Kind::Activity.record(&activity_delta(Category::Home, PriceBand::Mid, &event(kind, t)));
        let blob = [user(EventKind::Impression, 5), user(EventKind::View, 6)].concat();
        assert!(Kind::Activity.fold(&blob).is_ok());
        assert!(!first_format_reader_accepts(Kind::Activity, &blob));
    }

    #[test]
    fn a_delta_is_the_event_applied_to_nothing() {
        let delta =
            stats_from_bytes(&Kind::Stats.record(&stats_delta(&event(EventKind::Purchase, 77), Viewer::default())))
                .unwrap();
        assert_eq!((delta.purchases, delta.revenue, delta.windows.at_ms), (1, 19.5, 77));
        assert_eq!(delta.windows.values[counter::PURCHASES], [1.0; 3]);
    }
}
