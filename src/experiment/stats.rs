//! The statistics of experiment reports, written out so that each is checkable against a reference
//! (the tests pin values computed with scipy and statsmodels for the same inputs).
//!
//! - [`two_proportions`]: user-level conversion, two-proportion z-test (pooled standard error for
//!   the test, unpooled for the interval), as `statsmodels.stats.proportion.proportions_ztest`.
//! - [`welch`]: per-user means, Welch's t-test with the Welch–Satterthwaite degrees of freedom,
//!   as `scipy.stats.ttest_ind(equal_var=False)`.
//! - [`ratio_delta`]: ratio metrics randomised by user (purchases per impression), the delta
//!   method: Var(Σx/Σy) ≈ (s²ₓ − 2R·sₓᵧ + R²·s²ᵧ) / (n·ȳ²).
//! - [`srm`]: sample-ratio mismatch, Pearson's chi-square of observed users against the
//!   configured weights, as `scipy.stats.chisquare`.
//!
//! The distributions are statrs'; the tests pin the results to scipy's for the same inputs.

use serde::Serialize;
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF, Normal, StudentsT};

/// Two-sided 95% normal quantile.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The result of comparing treatment with control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// Treatment − control.
    pub difference: f64,
    /// Relative lift, difference / control (NaN when control is 0).
    pub lift: f64,
    /// The test statistic (z or t).
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// 95% confidence interval of the difference.
    pub ci_low: f64,
    pub ci_high: f64,
}

fn comparison(control: f64, difference: f64, statistic: f64, p_value: f64, half_width: f64) -> Comparison {
    Comparison {
        difference,
        lift: if control == 0.0 { f64::NAN } else { difference / control },
        statistic,
        p_value,
        ci_low: difference - half_width,
        ci_high: difference + half_width,
    }
}

/// Two-proportion z-test of `x_t / n_t` (treatment) against `x_c / n_c` (control).
pub fn two_proportions(x_c: u64, n_c: u64, x_t: u64, n_t: u64) -> Option<Comparison> {
    if n_c == 0 || n_t == 0 {
        return None;
    }
    let (nc, nt) = (n_c as f64, n_t as f64);
    let (pc, pt) = (x_c as f64 / nc, x_t as f64 / nt);
    let pooled = (x_c + x_t) as f64 / (nc + nt);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
    let se = (pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt).sqrt();
    let d = pt - pc;
    let z = if se_pooled > 0.0 { d / se_pooled } else { 0.0 };
    Some(comparison(pc, d, z, 2.0 * normal_sf(z.abs()), Z_95 * se))
}

/// Mean, sample variance (n − 1) and count of `values`.
pub fn moments(values: &[f64]) -> (f64, f64, usize) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0, 0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    (mean, var, n)
}

/// Welch's t-test of treatment's mean against control's.
pub fn welch(control: &[f64], treatment: &[f64]) -> Option<Comparison> {
    let (mc, vc, nc) = moments(control);
    let (mt, vt, nt) = moments(treatment);
    if nc < 2 || nt < 2 {
        return None;
    }
    let (a, b) = (vc / nc as f64, vt / nt as f64);
    let se = (a + b).sqrt();
    let d = mt - mc;
    if se == 0.0 {
        return Some(comparison(mc, d, 0.0, 1.0, 0.0));
    }
    let df = (a + b).powi(2) / (a * a / (nc as f64 - 1.0) + b * b / (nt as f64 - 1.0));
    let t = d / se;
    Some(comparison(mc, d, t, student_t_two_sided(t, df), student_t_quantile_95(df) * se))
}

/// A ratio metric Σnumerator / Σdenominator over users, with its delta-method variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    pub value: f64,
    pub variance: f64,
    pub users: usize,
}

/// The ratio Σx / Σy of per-user pairs `(x, y)` and its delta-method variance.
pub fn ratio(pairs: &[(f64, f64)]) -> Option<Ratio> {
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f64>() / nf, pairs.iter().map(|p| p.1).sum::<f64>() / nf);
    if my == 0.0 {
        return None;
    }
    let r = mx / my;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
        sxy += (x - mx) * (y - my);
    }
    let (sxx, syy, sxy) = (sxx / (nf - 1.0), syy / (nf - 1.0), sxy / (nf - 1.0));
    let variance = (sxx - 2.0 * r * sxy + r * r * syy) / (nf * my * my);
    Some(Ratio { value: r, variance, users: n })
}

/// Difference of two ratio metrics (treatment − control) with a z-test on delta-method variances.
pub fn ratio_delta(control: &[(f64, f64)], treatment: &[(f64, f64)]) -> Option<Comparison> {
    let (c, t) = (ratio(control)?, ratio(treatment)?);
    let se = (c.variance + t.variance).sqrt();
    let d = t.value - c.value;
    let z = if se > 0.0 { d / se } else { 0.0 };
    Some(comparison(c.value, d, z, 2.0 * normal_sf(z.abs()), Z_95 * se))
}

/// Sample-ratio mismatch check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Srm {
    pub chi_square: f64,
    pub p_value: f64,
    /// p below [`SRM_ALERT_P`].
    pub alert: bool,
}

/// The p-value below which a sample-ratio mismatch alerts.
pub const SRM_ALERT_P: f64 = 0.001;

/// Pearson's chi-square of `observed` users per arm against the arms' `weights`.
pub fn srm(observed: &[u64], weights: &[f64]) -> Option<Srm> {
    if observed.len() != weights.len() || observed.len() < 2 {
        return None;
    }
    let total = observed.iter().sum::<u64>() as f64;
    let wsum: f64 = weights.iter().sum();
    if total == 0.0 || wsum <= 0.0 {
        return None;
    }
    let chi: f64 = observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let e = total * w / wsum;
            (*o as f64 - e).powi(2) / e
        })
        .sum();
    let df = (observed.len() - 1) as f64;
    let p = chi_square_sf(chi, df);
    Some(Srm { chi_square: chi, p_value: p, alert: p < SRM_ALERT_P })
}

/// Exact two-sided binomial test of `k` successes in `n` trials against p = 1/2 (the sign test
/// of interleaving preferences), as `scipy.stats.binomtest(k, n).pvalue`.
pub fn sign_test(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let low = k.min(n - k);
    if 2 * low == n {
        return 1.0;
    }
    let binomial = Binomial::new(0.5, n).expect("p = 1/2 is a probability");
    (2.0 * binomial.cdf(low)).min(1.0)
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    Normal::standard().sf(z)
}

/// P(X > x) for a chi-square X with `df` degrees of freedom.
pub fn chi_square_sf(x: f64, df: f64) -> f64 {
    ChiSquared::new(df).map_or(f64::NAN, |d| d.sf(x))
}

/// Two-sided p-value of Student's t with `df` degrees of freedom.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| 2.0 * d.sf(t.abs()))
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
pub fn student_t_quantile_95(df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| d.inverse_cdf(0.975))
}

#[cfg(test)]
mod tests {
    //! Reference values computed with scipy 1.17 for the same inputs (the script is in the
    //! comments of each test), never with this module.
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * b.abs().max(1e-300), "{a} vs {b}");
    }

    #[test]
    fn special_functions() {
        // stats.norm.sf(2.5); stats.chi2.sf(10.83, 1); stats.chi2.sf(3.2, 5)
        close(normal_sf(2.5), 0.006209665325776132, 1e-10);
        close(chi_square_sf(10.83, 1.0), 0.0009986863791802592, 1e-9);
        close(chi_square_sf(3.2, 5.0), 0.6691829020332432, 1e-10);
        // stats.t.ppf(0.975, 7.3); stats.t.ppf(0.975, 1000)
        close(student_t_quantile_95(7.3), 2.345066736547703, 1e-9);
        close(student_t_quantile_95(1000.0), 1.9623390808264083, 1e-9);
    }

    #[test]
    fn binomial_sign_test() {
        // stats.binomtest(40, 100).pvalue; binomtest(12, 30); binomtest(5, 5)
        close(sign_test(40, 100), 0.05688793364098089, 1e-9);
        close(sign_test(60, 100), 0.05688793364098089, 1e-9);
        close(sign_test(12, 30), 0.36159460805356514, 1e-9);
        close(sign_test(5, 5), 0.0625, 1e-12);
        assert_eq!(sign_test(50, 100), 1.0);
    }

    #[test]
    fn two_proportion_z_test() {
        // pc, pt = 120/2400, 150/2380; p = 270/4780
        // z = (pt-pc)/sqrt(p(1-p)(1/2400+1/2380)); 2*stats.norm.sf(|z|); CI unpooled ± 1.96 se
        let c = two_proportions(120, 2400, 150, 2380).unwrap();
        close(c.difference, 0.013025210084033609, 1e-12);
        close(c.statistic, 1.950395253845337, 1e-10);
        close(c.p_value, 0.05112902712129567, 1e-9);
        close(c.ci_low, -6.462995188282958e-05, 1e-7);
        close(c.ci_high, 0.026115050119950047, 1e-10);
        assert!(two_proportions(0, 0, 1, 2).is_none());
    }

    #[test]
    fn welch_t_test() {
        // stats.ttest_ind(t, c, equal_var=False) and its confidence_interval(0.95)
        let c = [0., 0., 1., 2., 0., 3., 0., 0., 5., 1., 0., 0., 2., 0., 1.];
        let t = [1., 0., 4., 2., 0., 3., 6., 0., 5., 1., 2., 0., 2., 7., 1., 0., 3.];
        let w = welch(&c, &t).unwrap();
        close(w.statistic, 1.7912870663187261, 1e-10);
        close(w.p_value, 0.0840870458501602, 1e-8);
        close(w.ci_low, -0.1690010472579926, 1e-8);
        close(w.ci_high, 2.5219422237285807, 1e-9);
    }

    #[test]
    fn delta_method_ratio() {
        // numpy: r = x.mean()/y.mean(); C = np.cov(x, y, ddof=1);
        // v = (C[0,0] - 2 r C[0,1] + r² C[1,1]) / (n ȳ²); z = (rt - rc)/sqrt(vc + vt)
        let c =
            [(0., 10.), (1., 12.), (0., 3.), (2., 20.), (0., 8.), (1., 5.), (0., 15.), (3., 30.), (0., 2.), (1., 9.)];
        let t = [
            (1., 11.),
            (2., 10.),
            (0., 4.),
            (3., 18.),
            (1., 7.),
            (0., 6.),
            (2., 14.),
            (4., 25.),
            (0., 3.),
            (1., 8.),
            (2., 12.),
        ];
        let rc = ratio(&c).unwrap();
        close(rc.value, 0.07017543859649122, 1e-12);
        close(rc.variance, 0.00031788132225030657, 1e-10);
        close(ratio(&t).unwrap().variance, 0.00020715731750502484, 1e-10);
        let d = ratio_delta(&c, &t).unwrap();
        close(d.difference, 0.06541778174249183, 1e-12);
        close(d.statistic, 2.8549610031864323, 1e-10);
        close(d.p_value, 0.0043042113636546165, 1e-8);
        close(d.ci_low, 0.02050771256092227, 1e-9);
        close(d.ci_high, 0.11032785092406139, 1e-10);
    }

    #[test]
    fn sample_ratio_mismatch() {
        // stats.chisquare([5000, 5210]); stats.chisquare([3300, 3350, 3500]); stats.chisquare([5000, 5400])
        let s = srm(&[5000, 5210], &[1.0, 1.0]).unwrap();
        close(s.chi_square, 4.319294809010774, 1e-12);
        close(s.p_value, 0.037682535473058755, 1e-9);
        assert!(!s.alert);
        let s = srm(&[3300, 3350, 3500], &[1.0, 1.0, 1.0]).unwrap();
        close(s.chi_square, 6.403940886699508, 1e-12);
        close(s.p_value, 0.04068196344529025, 1e-9);
        let s = srm(&[5000, 5400], &[0.5, 0.5]).unwrap();
        close(s.p_value, 8.769942375590228e-05, 1e-7);
        assert!(s.alert, "a 5000/5400 split of a 50/50 experiment is a mismatch");
    }
}
