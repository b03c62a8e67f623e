//! `fitrank bench stalls`: how long this machine stops threads *while they run*, with no service
//! and no network involved. The control for a latency figure: a request can only be as quick as
//! the thread that serves it is allowed to run.
//!
//! Each of `--probe-threads` threads works in 1 ms periods: it is busy for `--duty` of the period,
//! reading the monotonic clock in a tight loop, then sleeps out the rest. Two consecutive reads
//! more than 1 ms apart mean the thread was stopped in between: by the guest's scheduler (another
//! thread of this machine took its CPU) or by the hypervisor (the VM's CPU itself did not run).
//! The report gives the share of the threads' busy time lost in such stalls, how many there were
//! and the longest.
//!
//! On a machine with dedicated cores and nothing else running, stalls of a running thread are
//! rare and short. On a shared VM they are not, and a service's tail at a given CPU load can be
//! no shorter than this machine's at the same load: run the probe with `--duty` at the busy share
//! the load produced (`scripts/bench-grpc.sh` does, right after its half-of-max run).

use std::time::{Duration, Instant};

use serde::Serialize;

/// A gap between two clock reads of a running thread longer than this is a stall.
const STALL: Duration = Duration::from_millis(1);
/// The probe threads' working period.
const PERIOD: Duration = Duration::from_millis(1);

/// What the probe found, over all its threads.
#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    pub threads: usize,
    /// The busy share of each period asked for.
    pub duty: f64,
    pub seconds: f64,
    /// Time the threads spent in their busy phases, stalls included, summed over the threads.
    pub busy_seconds: f64,
    /// Stalls longer than 1 ms.
    pub stalls: u64,
    /// Stalls longer than 5 ms.
    pub stalls_over_5ms: u64,
    /// The stalls' time summed, as a share of `busy_seconds`, in percent.
    pub stalled_pct: f64,
    /// The longest gap between two clock reads, a stall or not.
    pub max_us: u64,
}

/// The stalls one thread saw.
#[derive(Debug, Clone, Copy, Default)]
struct Gaps {
    busy: Duration,
    stalls: u64,
    over_5ms: u64,
    stalled: Duration,
    /// The longest gap, a stall or not.
    max: Duration,
}

impl Gaps {
    /// Accounts the time between two consecutive clock reads of a running thread.
    fn observe(&mut self, gap: Duration) {
        self.max = self.max.max(gap);
        if gap > STALL {
            self.stalls += 1;
            self.over_5ms += u64::from(gap > 5 * STALL);
            self.stalled += gap;
        }
    }

    fn merge(mut self, other: Gaps) -> Gaps {
        self.busy += other.busy;
        self.stalls += other.stalls;
        self.over_5ms += other.over_5ms;
        self.stalled += other.stalled;
        self.max = self.max.max(other.max);
        self
    }
}

/// One probe thread: busy for `duty` of each period until `end`.
fn probe(duty: f64, end: Instant) -> Gaps {
    let busy_for = PERIOD.mul_f64(duty);
    let mut gaps = Gaps::default();
    loop {
        let start = Instant::now();
        if start >= end {
            return gaps;
        }
        let mut last = start;
        loop {
            let now = Instant::now();
            gaps.observe(now - last);
            last = now;
            if now - start >= busy_for {
                break;
            }
        }
        gaps.busy += last - start;
        if let Some(rest) = (start + PERIOD).checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
    }
}

/// Runs `threads` probe threads at `duty` for `seconds`.
pub fn run(threads: usize, duty: f64, seconds: f64) -> Result<StallReport, String> {
    if !(duty > 0.0 && duty <= 1.0) {
        return Err(format!("--duty must be in (0, 1], got {duty}"));
    }
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("--duration must be positive, got {seconds}"));
    }
    let threads = threads.max(1);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || probe(duty, end))).collect();
    let mut all = Gaps::default();
    for h in handles {
        all = all.merge(h.join().map_err(|_| "a probe thread panicked".to_string())?);
    }
    let busy = all.busy.as_secs_f64();
    Ok(StallReport {
        threads,
        duty,
        seconds,
        busy_seconds: busy,
        stalls: all.stalls,
        stalls_over_5ms: all.over_5ms,
        stalled_pct: if busy > 0.0 { 100.0 * all.stalled.as_secs_f64() / busy } else { 0.0 },
        max_us: all.max.as_micros() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gaps_over_a_millisecond_are_stalls() {
        let mut g = Gaps::default();
        g.observe(Duration::from_micros(900));
        assert_eq!((g.stalls, g.max), (0, Duration::from_micros(900)));
        for us in [5, 900, 1_000, 1_001, 2_500, 7_000] {
            g.observe(Duration::from_micros(us));
        }
        assert_eq!(g.stalls, 3);
        assert_eq!(g.over_5ms, 1);
        assert_eq!(g.stalled, Duration::from_micros(1_001 + 2_500 + 7_000));
        assert_eq!(g.max, Duration::from_micros(7_000));
    }

    #[test]
    fn threads_merge_by_summing_and_keeping_the_longest() {
        let a = Gaps {
            busy: Duration::from_millis(3),
            stalls: 1,
            over_5ms: 0,
            stalled: Duration::from_millis(2),
            max: Duration::from_millis(2),
        };
        let b = Gaps {
            busy: Duration::from_millis(4),
            stalls: 2,
            over_5ms: 1,
            stalled: Duration::from_millis(9),
            max: Duration::from_millis(6),
        };
        let m = a.merge(b);
        assert_eq!((m.busy, m.stalls, m.over_5ms), (Duration::from_millis(7), 3, 1));
        assert_eq!((m.stalled, m.max), (Duration::from_millis(11), Duration::from_millis(6)));
    }

    #[test]
    fn a_short_probe_reports_its_threads_and_busy_time() {
        let r = run(2, 0.5, 0.05).unwrap();
        assert_eq!(r.threads, 2);
        // Busy time is measured (a stall lengthens it), so only this much is certain.
        assert!(r.busy_seconds > 0.0, "{r:?}");
        assert!(r.stalled_pct >= 0.0 && r.stalled_pct <= 100.0, "{r:?}");
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(run(1, 0.0, 1.0).is_err());
        assert!(run(1, 1.5, 1.0).is_err());
        assert!(run(1, 0.5, 0.0).is_err());
        assert!(run(1, f64::NAN, 1.0).is_err());
    }
}
