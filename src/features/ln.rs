//! The natural logarithm of a fixed-size batch of `f32`, written so the compiler vectorises it.
//!
//! The extractor takes eighteen logarithms per candidate; libm's `logf`, called one at a time,
//! was the largest single cost of extraction. [`ln_all`] computes them together with the Cephes
//! `logf` method: split `x = m · 2^e` with `m` in [√½, √2) by integer arithmetic on the bits,
//! then ln(m) = f − f²/2 + f³·P(f) with f = m − 1 and a degree-8 polynomial P. There are no
//! branches or table lookups on the normal path, so a batch runs as a few SIMD lanes.
//!
//! Accuracy: within 2 ulp of the correctly rounded result for every positive normal input (the
//! tests check a million random inputs against `f64::ln`). Zero, subnormal, negative, infinite
//! and NaN inputs are each recomputed by `f32::ln`, so they keep libm's semantics and no element's
//! result depends on the others. Training and serving both go through this one function, so the features they see
//! are equal bit for bit.

/// `bits(x) − bits(√½)`: its exponent field is `e` for x = m · 2^e with m in [√½, √2).
const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
/// ln 2 split in a high part exact in few bits and a small correction (Cephes' `C1` and `C2`).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' minimax coefficients for ln(1 + f) = f − f²/2 + f³·P(f), highest degree first.
#[allow(clippy::excessive_precision)] // Cephes' digits, as published.
const P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461_0e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333_1e-1,
];

/// ln of each element. See the module documentation for the method and its accuracy.
#[inline]
pub fn ln_all<const N: usize>(x: [f32; N]) -> [f32; N] {
    let mut out = x.map(ln_normal);
    if !x.iter().all(|v| is_positive_normal(*v)) {
        for (out, x) in out.iter_mut().zip(x) {
            if !is_positive_normal(x) {
                *out = x.ln();
            }
        }
    }
    out
}

fn is_positive_normal(x: f32) -> bool {
    x.is_normal() && x > 0.0
}

/// ln(x) for a positive normal `x`; any other input gives a meaningless value (no panic).
#[inline(always)]
fn ln_normal(x: f32) -> f32 {
    let bits = x.to_bits();
    let shifted = bits.wrapping_sub(SQRT_HALF_BITS);
    // Arithmetic shift: the exponent is negative for x < √½.
    let e = ((shifted as i32) >> 23) as f32;
    // Keep the mantissa, take the exponent of √½ or 1: m in [√½, √2).
    let m = f32::from_bits(bits.wrapping_sub(shifted & 0xff80_0000));
    let f = m - 1.0;
    let z = f * f;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * f + c;
    }
    let y = f * z * p + LN2_LO * e - 0.5 * z;
    f + y + LN2_HI * e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between `got` and the correctly rounded ln(x).
    fn ulps(got: f32, x: f32) -> u32 {
        let want = (f64::from(x)).ln() as f32;
        (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn within_two_ulp_of_the_exact_logarithm_over_random_normals() {
        // xorshift over the bit patterns of positive normal floats: every exponent is covered.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut worst = 0;
        for _ in 0..1_000_000 / 8 {
            let batch: [f32; 8] = std::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bits = (state as u32) & 0x7fff_ffff;
                let x = f32::from_bits(bits);
                if x.is_normal() { x } else { 1.5 }
            });
            for (got, x) in ln_all(batch).into_iter().zip(batch) {
                worst = worst.max(ulps(got, x));
            }
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn within_two_ulp_on_the_feature_range_near_one() {
        // Rates and ratios near 1, where ln is near 0 and relative error is hardest to keep.
        let mut worst = 0;
        for i in 0..200_000 {
            let x = 0.5 + i as f32 / 200_000.0;
            worst = worst.max(ulps(ln_all([x])[0], x));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn edge_values_and_libm_semantics_off_the_normal_range() {
        assert_eq!(ln_all([1.0])[0], 0.0);
        for x in [2.0, 0.5, f32::MAX, f32::MIN_POSITIVE, 1.0 + f32::EPSILON, 1.0 - f32::EPSILON / 2.0] {
            assert!(ulps(ln_all([x])[0], x) <= 2, "{x}");
        }
        // Values off the normal range go to libm; the others keep the batch's result.
        let odd = ln_all([3.0, 0.0, f32::INFINITY, 1e-40]);
        assert_eq!(odd, [ln_all([3.0])[0], f32::NEG_INFINITY, f32::INFINITY, 1e-40f32.ln()]);
        assert!(ln_all([-1.0])[0].is_nan());
        assert!(ln_all([f32::NAN])[0].is_nan());
    }

    #[test]
    fn monotone_across_the_reduction_boundary() {
        // m switches between [√½, 1) and [1, √2) at √½ · 2^k; ln must not step backwards there.
        for k in -10..10 {
            let edge = std::f32::consts::FRAC_1_SQRT_2 * 2f32.powi(k);
            let below = f32::from_bits(edge.to_bits() - 1);
            let above = f32::from_bits(edge.to_bits() + 1);
            let [a, b, c] = ln_all([below, edge, above]);
            assert!(a <= b && b <= c, "k = {k}: {a} {b} {c}");
        }
    }
}
