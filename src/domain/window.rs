//! Time-decayed counters: the sliding windows of real-time features.
//!
//! A counter keeps, per window, Σ amountᵢ · 2^(−(t_ref − tᵢ)/half_life) at a reference time
//! `t_ref` (the newest event time seen). Reading at time `t` decays that value to `t`. This is the
//! standard exponentially-weighted stand-in for a sliding window of length ≈ 1.44 half-lives, with
//! two properties that matter here:
//!
//! - **Order-independent and exact**: an event older than `t_ref` is added with its own decay
//!   factor, so any arrival order gives the same sum (up to float rounding). Late events are
//!   therefore harmless, and the trainer's time-ordered replay reproduces the server's values.
//! - **Small and O(1)**: 3 windows × N counters of f32 and one timestamp; no buckets to rotate.
//!
//! Reads never extrapolate forward: reading before `t_ref` returns the values at `t_ref`.

use serde::{Deserialize, Serialize};

use super::UnixMs;

/// Half-lives of the three windows: 1 minute, 5 minutes, 1 hour.
pub const HALF_LIVES_MS: [i64; 3] = [60_000, 300_000, 3_600_000];
/// Window names, in the order of [`HALF_LIVES_MS`].
pub const WINDOW_NAMES: [&str; 3] = ["1m", "5m", "1h"];

/// `N` counters decayed over the three windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decayed<const N: usize> {
    /// Reference time of `values`, ms.
    pub at_ms: UnixMs,
    /// `values[counter][window]` at `at_ms`.
    #[serde(with = "serde_arrays")]
    pub values: [[f32; 3]; N],
}

impl<const N: usize> Default for Decayed<N> {
    fn default() -> Self {
        Decayed { at_ms: 0, values: [[0.0; 3]; N] }
    }
}

/// 2^(−dt / half_life) for dt ≥ 0.
#[inline]
fn factor(dt_ms: i64, half_life_ms: i64) -> f32 {
    decay(-(dt_ms as f32) / half_life_ms as f32)
}

/// 2^x for x ≤ 0, bit for bit, without libm's slow underflow path: below −150 the result
/// rounds to 0 in f32 anyway (the smallest subnormal is 2^−149), and counters of sessions idle
/// for hours (or never touched: their reference time is 0) are read on every ranking.
///
/// The normal range calls `exp2` on an argument clamped to it, and everything below goes through
/// a separate, never-inlined function: written as one branch around `exp2(x)`, the compiler
/// evaluates `exp2(x)` before the branch (a libm call is free of side effects, so it may), and
/// every read of an idle session took libm's underflow path anyway.
#[inline]
pub fn decay(x: f32) -> f32 {
    const MIN_NORMAL_EXP: f32 = -126.0;
    let normal = x.max(MIN_NORMAL_EXP).exp2();
    if x < MIN_NORMAL_EXP { decay_tiny(x) } else { normal }
}

/// [`decay`] below 2^−126: subnormal results, or 0 below −150.
#[cold]
#[inline(never)]
fn decay_tiny(x: f32) -> f32 {
    if x < -150.0 { 0.0 } else { x.exp2() }
}

impl<const N: usize> Decayed<N> {
    /// Adds `amount` to `counter` at time `t_ms`.
    pub fn add(&mut self, counter: usize, amount: f32, t_ms: UnixMs) {
        if t_ms > self.at_ms {
            for (w, h) in HALF_LIVES_MS.iter().enumerate() {
                let f = factor(t_ms - self.at_ms, *h);
                for c in &mut self.values {
                    c[w] *= f;
                }
            }
            self.at_ms = t_ms;
        }
        for (w, h) in HALF_LIVES_MS.iter().enumerate() {
            self.values[counter][w] += amount * factor(self.at_ms - t_ms, *h);
        }
    }

    /// The decayed value of `counter` in `window` as seen at `t_ms`.
    #[inline]
    pub fn get(&self, counter: usize, window: usize, t_ms: UnixMs) -> f32 {
        let dt = (t_ms - self.at_ms).max(0);
        self.values[counter][window] * factor(dt, HALF_LIVES_MS[window])
    }

    /// Every counter in every window as seen at `t_ms` (three decay factors computed once; equal
    /// to [`Self::get`] for each entry).
    #[inline]
    pub fn at(&self, t_ms: UnixMs) -> [[f32; 3]; N] {
        let dt = (t_ms - self.at_ms).max(0);
        let f = [factor(dt, HALF_LIVES_MS[0]), factor(dt, HALF_LIVES_MS[1]), factor(dt, HALF_LIVES_MS[2])];
        self.values.map(|c| [c[0] * f[0], c[1] * f[1], c[2] * f[2]])
    }
}

/// serde for `[[f32; 3]; N]` (serde derives arrays only up to 32 and not for const generics).
mod serde_arrays {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[[f32; 3]; N], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[[f32; 3]; N], D::Error> {
        let v = Vec::<[f32; 3]>::deserialize(d)?;
        v.try_into().map_err(|v: Vec<_>| serde::de::Error::invalid_length(v.len(), &"counters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_is_exp2_bit_for_bit() {
        let mut x = 0.0f32;
        while x > -200.0 {
            assert_eq!(decay(x).to_bits(), x.exp2().to_bits(), "2^{x}");
            x -= 0.0137;
        }
        for x in [-126.0f32, -126.000_01, -125.999_99, -150.0, -149.5, -149.0, -150.000_01, -1e9, f32::MIN] {
            assert_eq!(decay(x).to_bits(), x.exp2().to_bits(), "2^{x}");
        }
    }

    #[test]
    fn decays_by_half_per_half_life() {
        let mut d = Decayed::<1>::default();
        d.add(0, 8.0, 1_000_000);
        assert_eq!(d.get(0, 0, 1_000_000), 8.0);
        assert!((d.get(0, 0, 1_060_000) - 4.0).abs() < 1e-4);
        assert!((d.get(0, 1, 1_300_000) - 4.0).abs() < 1e-4);
        assert!((d.get(0, 2, 1_000_000 + 7_200_000) - 2.0).abs() < 1e-4);
        // no extrapolation into the past
        assert_eq!(d.get(0, 0, 0), 8.0);
    }

    #[test]
    fn at_equals_get() {
        let mut d = Decayed::<2>::default();
        d.add(0, 3.0, 1_000);
        d.add(1, 7.5, 50_000);
        for t in [0, 50_000, 90_123, 10_000_000] {
            for (c, windows) in d.at(t).iter().enumerate() {
                for (w, value) in windows.iter().enumerate() {
                    assert_eq!(value.to_bits(), d.get(c, w, t).to_bits());
                }
            }
        }
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let events = [(0usize, 1.0f32, 5_000_000i64), (1, 2.5, 5_090_000), (0, 1.0, 5_030_000), (1, 1.0, 4_000_000)];
        let mut forward = Decayed::<2>::default();
        for (c, a, t) in events {
            forward.add(c, a, t);
        }
        let mut backward = Decayed::<2>::default();
        for (c, a, t) in events.iter().rev() {
            backward.add(*c, *a, *t);
        }
        let t = 5_200_000;
        for c in 0..2 {
            for w in 0..3 {
                assert!((forward.get(c, w, t) - backward.get(c, w, t)).abs() < 1e-5);
            }
        }
    }
}
