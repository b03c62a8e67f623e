//! How live stats and user activity are laid out in Redis, and how one event becomes a delta in
//! the same layout.
//!
//! Both are stored as packed little-endian `f64` arrays (integers are exact below 2^53): first
//! plain counters, which an event adds to; then a reference time and decayed counters as of that
//! time, one per (counter, half-life); last the latest event's time. The apply scripts
//! (`script::PRELUDE`) add each event's amounts scaled to the reference time, and move the
//! reference only now and then; reading decays the counters from the reference to the latest
//! event, which gives what [`crate::domain::window::Decayed::add`] and [`UserActivity::apply`]
//! give folding the events in order.
//!
//! What an event adds is still decided in one place: the delta of an event is the state that
//! [`LiveStats::apply`] (or [`UserActivity::apply`]) produces from empty. Redis only sums deltas,
//! so serving from Redis folds events exactly like the embedded store and the trainer.

use crate::domain::stats::{SEGMENTS, counter};
use crate::domain::window::HALF_LIVES_MS;
use crate::domain::{AFFINITY_HALF_LIFE_MS, Category, Event, LiveStats, PriceBand, UserActivity, Viewer};

/// The shape of a blob, as the apply script needs it.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Plain counters first.
    pub plain: usize,
    /// Decayed counters after the reference time, each kept for every half-life.
    pub counters: usize,
    pub half_lives_ms: &'static [i64],
}

impl Layout {
    /// Number of `f64`s in a blob: plain counters, reference time, decayed counters, latest time.
    pub const fn values(&self) -> usize {
        self.legacy_values() + 1
    }

    /// Number of `f64`s in a blob written before the latest event time was kept (until
    /// 2026-12-06): there the reference time was the latest event's.
    const fn legacy_values(&self) -> usize {
        self.plain + 1 + self.counters * self.half_lives_ms.len()
    }

    /// The values of a blob of this layout with the decayed counters as of the latest event
    /// (the reference time then is the latest event's, and the trailing latest time is dropped);
    /// `None` when the blob is of another layout.
    fn settled(&self, bytes: &[u8]) -> Option<Vec<f64>> {
        let mut v = unpack(bytes)?;
        if v.len() == self.legacy_values() {
            return Some(v);
        }
        if v.len() != self.values() {
            return None;
        }
        let latest = v.pop().expect("a blob has values");
        let at = self.plain;
        let dt = latest - v[at];
        if dt != 0.0 {
            let k = self.half_lives_ms.len();
            for (w, h) in self.half_lives_ms.iter().enumerate() {
                let f = (-dt / *h as f64).exp2();
                for j in (at + 1 + w..v.len()).step_by(k) {
                    v[j] *= f;
                }
            }
            v[at] = latest;
        }
        Some(v)
    }
}

/// Plain counters of live stats: 12 totals, then the views and the purchases per audience segment.
const STATS_TOTALS: usize = 12;
pub const STATS: Layout =
    Layout { plain: STATS_TOTALS + 2 * SEGMENTS, counters: counter::COUNT, half_lives_ms: &HALF_LIVES_MS };
/// The stats layout before the purchases per audience segment (until 2026-12-01): still read, with
/// those counts at zero, so that sessions written by an older replica keep ranking during an
/// upgrade. The apply script does not convert it: the next event restarts such a blob from zero.
const STATS_WITHOUT_SEGMENT_PURCHASES: Layout = Layout { plain: STATS_TOTALS + SEGMENTS, ..STATS };
/// User activity: engagement per category, impressions, views, impressions and views per
/// category, then purchases, returns, and impressions, views and purchases per price band.
pub const ACTIVITY: Layout = Layout {
    plain: 0,
    counters: 3 * Category::COUNT + 4 + 3 * PriceBand::COUNT,
    half_lives_ms: &[AFFINITY_HALF_LIFE_MS],
};
/// The activity layout before purchases, returns and the price bands (until 2026-12-06): still
/// read, with those at zero. The apply script does not convert it: the next event restarts such a
/// blob from zero.
const ACTIVITY_WITHOUT_PURCHASES: Layout = Layout { counters: 3 * Category::COUNT + 2, ..ACTIVITY };
/// The activity layout before the impressions and views per category (until 2026-12-05): still
/// read, with those and the later counters at zero.
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

/// The blob's values by the first of `layouts` it is of, settled ([`Layout::settled`]), and
/// which layout that was.
fn settled(bytes: &[u8], layouts: &[Layout]) -> Result<(Vec<f64>, usize), String> {
    layouts
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.settled(bytes).map(|v| (v, i)))
        .ok_or_else(|| format!("blob of {} bytes, expected {}", bytes.len(), layouts[0].values() * 8))
}

/// A packed dense delta (the event applied to nothing, `values` of its layout) as the apply
/// script takes it: the event's time, then the 1-based position and amount of every non-zero
/// counter (the reference and latest times left out).
pub fn sparse_delta(dense: &[f64], layout: Layout) -> Vec<u8> {
    let at = layout.plain;
    let mut v = vec![dense[at]];
    for (j, x) in dense[..layout.values() - 1].iter().enumerate() {
        if j != at && *x != 0.0 {
            v.extend([(j + 1) as f64, *x]);
        }
    }
    pack(&v)
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

/// Live stats from a blob.
pub fn stats_from_bytes(bytes: &[u8]) -> Result<LiveStats, String> {
    let (mut v, layout) = settled(bytes, &[STATS, STATS_WITHOUT_SEGMENT_PURCHASES])?;
    if layout == 1 {
        let at = STATS_TOTALS + SEGMENTS;
        v.splice(at..at, [0.0; SEGMENTS]);
    }
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

/// User activity from a blob.
pub fn activity_from_bytes(bytes: &[u8]) -> Result<UserActivity, String> {
    let (mut v, _) = settled(bytes, &[ACTIVITY, ACTIVITY_WITHOUT_PURCHASES, ACTIVITY_WITHOUT_CATEGORY_VIEWS])?;
    v.resize(ACTIVITY.legacy_values(), 0.0);
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

    #[test]
    fn a_delta_is_the_event_applied_to_nothing() {
        let delta = stats_from_bytes(&pack(&stats_delta(&event(EventKind::Purchase, 77), Viewer::default()))).unwrap();
        assert_eq!((delta.purchases, delta.revenue, delta.windows.at_ms), (1, 19.5, 77));
        assert_eq!(delta.windows.values[counter::PURCHASES], [1.0; 3]);
    }
}
