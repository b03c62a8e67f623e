//! [`RankLatency`]: how long this replica spends inside `Rank`, as a histogram.
//!
//! A feed service sees the whole round trip: its own client, the network, HTTP/2, protobuf, and
//! fitrank's work. When that round trip has a slow tail, the first question is whose tail it is.
//! This histogram answers it from the server's side: it holds the time from the moment the
//! `Rank` handler receives a decoded request until its response is built (validation, store
//! reads, feature extraction, scoring, ordering, the feature-log hand-off, conversion), and
//! nothing of the transport. `AdminService.GetRankLatency` reads it, optionally starting a new
//! window; the load generator does so around its measured window and prints both sides.
//!
//! Recording takes one uncontended lock and one histogram increment (tens of nanoseconds), so it
//! is always on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::LatencyCounts;

/// Server-side `Rank` latencies since the start of the current window.
pub struct RankLatency {
    inner: Mutex<Window>,
}

struct Window {
    counts: LatencyCounts,
    started: Instant,
    /// Since the console's sampler last read it ([`RankLatency::sample`]).
    since_sample: LatencyCounts,
}

/// The rankings since the previous [`RankLatency::sample`].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct LatencySample {
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// A summary of one window of [`RankLatency`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Rankings answered in the window.
    pub count: u64,
    /// Rankings that ended in an error in the window (not in the percentiles).
    pub errors: u64,
    /// Seconds since the window started.
    pub window_seconds: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl RankLatency {
    /// An empty histogram whose window starts now.
    pub fn new() -> Self {
        RankLatency {
            inner: Mutex::new(Window {
                counts: LatencyCounts::new(),
                started: Instant::now(),
                since_sample: LatencyCounts::new(),
            }),
        }
    }

    /// Records one ranking that took `elapsed`; `ok` is false when it ended in an error.
    pub fn record(&self, elapsed: Duration, ok: bool) {
        let mut w = self.lock();
        w.counts.record(elapsed, ok);
        w.since_sample.record(elapsed, ok);
    }

    /// The rankings since the previous call, which starts a new interval: the points of the
    /// console's latency chart. Independent of [`Self::summary`]'s window.
    pub fn sample(&self) -> LatencySample {
        let mut w = self.lock();
        let c = &w.since_sample;
        let sample = LatencySample {
            count: c.ok(),
            errors: c.errors(),
            p50_us: c.quantile_us(0.5),
            p99_us: c.quantile_us(0.99),
        };
        w.since_sample.reset();
        sample
    }

    /// The current window's summary; with `reset`, a new empty window starts after it is read.
    pub fn summary(&self, reset: bool) -> LatencySummary {
        let mut w = self.lock();
        let c = &w.counts;
        let summary = LatencySummary {
            count: c.ok(),
            errors: c.errors(),
            window_seconds: w.started.elapsed().as_secs_f64(),
            p50_us: c.quantile_us(0.5),
            p90_us: c.quantile_us(0.9),
            p99_us: c.quantile_us(0.99),
            p999_us: c.quantile_us(0.999),
            max_us: c.max_us(),
        };
        if reset {
            w.counts.reset();
            w.started = Instant::now();
        }
        summary
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while holding the lock leaves counts that are still counts: keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for RankLatency {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MAX_MICROS;

    #[test]
    fn summarises_and_resets_a_window() {
        let latency = RankLatency::new();
        assert_eq!(latency.summary(false).count, 0);
        for micros in 1..=1_000u64 {
            latency.record(Duration::from_micros(micros), true);
        }
        latency.record(Duration::from_millis(5), false);
        let s = latency.summary(true);
        assert_eq!((s.count, s.errors), (1_000, 1));
        // 3 significant digits: each quantile within 0.1 % of the exact one
        for (got, exact) in [(s.p50_us, 500), (s.p90_us, 900), (s.p99_us, 990), (s.p999_us, 999), (s.max_us, 1_000)] {
            assert!(got.abs_diff(exact) <= exact / 1_000 + 1, "{got} vs {exact}");
        }
        let after = latency.summary(false);
        assert_eq!((after.count, after.errors, after.max_us), (0, 0, 0));
        assert!(after.window_seconds <= s.window_seconds + 1.0);
    }

    #[test]
    fn clamps_what_the_histogram_cannot_hold() {
        let latency = RankLatency::new();
        latency.record(Duration::ZERO, true);
        latency.record(Duration::from_secs(3_600), true);
        let s = latency.summary(false);
        assert_eq!(s.count, 2);
        assert!(s.p50_us >= 1);
        assert!(s.max_us >= MAX_MICROS && s.max_us <= MAX_MICROS + MAX_MICROS / 1_000);
    }
}
