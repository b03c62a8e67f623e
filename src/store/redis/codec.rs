//! How live stats and user activity are laid out in Redis, and how one event becomes a delta in
//! the same layout.
//!
//! Both are stored as packed little-endian `f64` arrays (integers are exact below 2^53): first
//! plain counters, which an event adds to; then one reference time and decayed counters, one per
//! (counter, half-life), which [`super::script::APPLY`] decays and adds to exactly as
//! [`crate::domain::window::Decayed::add`] and [`UserActivity::apply`] do.
//!
//! What an event adds is still decided in one place: the delta of an event is the state that
//! [`LiveStats::apply`] (or [`UserActivity::apply`]) produces from empty. Redis only sums deltas,
//! so serving from Redis folds events exactly like the embedded store and the trainer.

use crate::domain::stats::{SEGMENTS, counter};
use crate::domain::window::HALF_LIVES_MS;
use crate::domain::{AFFINITY_HALF_LIFE_MS, Category, Event, LiveStats, UserActivity, Viewer};

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
    /// Number of `f64`s in a blob.
    pub const fn values(&self) -> usize {
        self.plain + 1 + self.counters * self.half_lives_ms.len()
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
/// User activity: engagement per category, impressions, views, then impressions and views per
/// category.
pub const ACTIVITY: Layout =
    Layout { plain: 0, counters: 3 * Category::COUNT + 2, half_lives_ms: &[AFFINITY_HALF_LIFE_MS] };
/// The activity layout before the impressions and views per category (until 2026-12-05): still
/// read, with those at zero. The apply script does not convert it: the next event restarts such a
/// blob from zero.
const ACTIVITY_WITHOUT_CATEGORY_VIEWS: Layout = Layout { counters: Category::COUNT + 2, ..ACTIVITY };

/// Little-endian bytes of `values`.
pub fn pack(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn unpack(bytes: &[u8], layout: Layout) -> Result<Vec<f64>, String> {
    if bytes.len() != layout.values() * 8 {
        return Err(format!("blob of {} bytes, expected {}", bytes.len(), layout.values() * 8));
    }
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
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
    v
}

/// Live stats from a blob.
pub fn stats_from_bytes(bytes: &[u8]) -> Result<LiveStats, String> {
    let v = if bytes.len() == STATS_WITHOUT_SEGMENT_PURCHASES.values() * 8 {
        let mut v = unpack(bytes, STATS_WITHOUT_SEGMENT_PURCHASES)?;
        let at = STATS_TOTALS + SEGMENTS;
        v.splice(at..at, [0.0; SEGMENTS]);
        v
    } else {
        unpack(bytes, STATS)?
    };
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
    v
}

/// User activity from a blob.
pub fn activity_from_bytes(bytes: &[u8]) -> Result<UserActivity, String> {
    let mut v = if bytes.len() == ACTIVITY_WITHOUT_CATEGORY_VIEWS.values() * 8 {
        unpack(bytes, ACTIVITY_WITHOUT_CATEGORY_VIEWS)?
    } else {
        unpack(bytes, ACTIVITY)?
    };
    v.resize(ACTIVITY.values(), 0.0);
    let n = Category::COUNT;
    let mut a = UserActivity { at_ms: v[0] as i64, ..Default::default() };
    for i in 0..n {
        a.by_category[i] = v[1 + i] as f32;
        a.category_impressions[i] = v[3 + n + i] as f32;
        a.category_views[i] = v[3 + 2 * n + i] as f32;
    }
    a.impressions = v[1 + n] as f32;
    a.views = v[2 + n] as f32;
    Ok(a)
}

/// What `event` by `viewer` adds to a session's stats, packed.
pub fn stats_delta(event: &Event, viewer: Viewer) -> Vec<u8> {
    let mut s = LiveStats::default();
    s.apply(event, viewer);
    pack(&stats_values(&s))
}

/// What `event` on a session of `category` adds to the user's activity, packed.
pub fn activity_delta(category: Category, event: &Event) -> Vec<u8> {
    let mut a = UserActivity::default();
    a.apply(category, event);
    pack(&activity_values(&a))
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
        a.apply(Category::Beauty, &event(EventKind::Purchase, 5_000));
        a.apply(Category::Home, &event(EventKind::Impression, 9_000));
        a.apply(Category::Home, &event(EventKind::View, 9_500));
        assert_eq!(activity_from_bytes(&pack(&activity_values(&a))).unwrap(), a);
        assert!(stats_from_bytes(&[0; 8]).is_err());
        assert!(activity_from_bytes(&[0; 8]).is_err());
    }

    #[test]
    fn an_activity_blob_of_the_layout_without_category_views_reads_with_them_at_zero() {
        let mut a = UserActivity::default();
        a.apply(Category::Beauty, &event(EventKind::Impression, 5_000));
        a.apply(Category::Beauty, &event(EventKind::View, 6_000));
        assert!(a.category_views[Category::Beauty.index()] > 0.0);
        let mut old = activity_values(&a);
        old.truncate(ACTIVITY_WITHOUT_CATEGORY_VIEWS.values());
        let back = activity_from_bytes(&pack(&old)).unwrap();
        let expected =
            UserActivity { category_impressions: [0.0; Category::COUNT], category_views: [0.0; Category::COUNT], ..a };
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
        old.drain(STATS_TOTALS + SEGMENTS..STATS_TOTALS + 2 * SEGMENTS);
        let back = stats_from_bytes(&pack(&old)).unwrap();
        assert_eq!(back, LiveStats { segment_purchases: [0; SEGMENTS], ..s });
    }

    #[test]
    fn a_delta_is_the_event_applied_to_nothing() {
        let delta = stats_from_bytes(&stats_delta(&event(EventKind::Purchase, 77), Viewer::default())).unwrap();
        assert_eq!((delta.purchases, delta.revenue, delta.windows.at_ms), (1, 19.5, 77));
        assert_eq!(delta.windows.values[counter::PURCHASES], [1.0; 3]);
    }
}
