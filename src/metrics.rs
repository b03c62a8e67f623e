//! [`LatencyCounts`]: how long something took and how often it failed, the one shape every
//! latency figure of this crate is kept in.
//!
//! Durations go into an HDR histogram of microseconds with 3 significant digits, from 1 µs to
//! 60 s; shorter ones count as 1 µs and longer ones as 60 s, so recording never fails. Failures
//! are counted beside it and stay out of the percentiles. Users: the server's `Rank` histogram
//! (`ranking::RankLatency`), the experiment guardrails per arm (`experiment::Experiments`), and
//! the load generator's own measurements (`cli::bench`).

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest duration the histogram tells apart (60 s), in microseconds.
pub const MAX_MICROS: u64 = 60_000_000;

/// Durations of successes (a histogram) and a count of failures.
#[derive(Debug, Clone)]
pub struct LatencyCounts {
    histogram: Histogram<u64>,
    errors: u64,
}

impl LatencyCounts {
    /// No durations, no failures.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid");
        LatencyCounts { histogram, errors: 0 }
    }

    /// Records one operation that took `elapsed`; `ok` is false when it failed (counted, not timed).
    pub fn record(&mut self, elapsed: Duration, ok: bool) {
        if ok {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_MICROS);
            self.histogram.saturating_record(micros);
        } else {
            self.errors += 1;
        }
    }

    /// Successes recorded.
    pub fn ok(&self) -> u64 {
        self.histogram.len()
    }

    /// Failures recorded.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The duration at quantile `q` (0 to 1) of the successes, µs; 0 when there are none.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q)
    }

    /// The longest success, µs; 0 when there are none.
    pub fn max_us(&self) -> u64 {
        self.histogram.max()
    }

    /// Forgets everything recorded.
    pub fn reset(&mut self) {
        self.histogram.reset();
        self.errors = 0;
    }
}

impl Default for LatencyCounts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_successes_and_failures_apart() {
        let mut c = LatencyCounts::new();
        assert_eq!((c.ok(), c.errors(), c.quantile_us(0.5), c.max_us()), (0, 0, 0, 0));
        for micros in [10, 20, 30] {
            c.record(Duration::from_micros(micros), true);
        }
        c.record(Duration::from_secs(1), false);
        assert_eq!((c.ok(), c.errors(), c.quantile_us(0.5), c.max_us()), (3, 1, 20, 30));
        c.reset();
        assert_eq!((c.ok(), c.errors(), c.max_us()), (0, 0, 0));
    }
}
