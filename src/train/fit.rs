//! Fitting one logistic-regression head with linfa.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array2, ArrayView1, ArrayView2, ShapeBuilder};

use super::TrainError;
use crate::model::LinearHead;

/// Stopping rule of the optimiser, per training row: linfa minimises the *summed* log loss, so the
/// gradient tolerance is this times the number of rows — the same criterion as scikit-learn's
/// `tol = 1e-4` on its row-averaged loss.
pub const GRADIENT_TOLERANCE_PER_ROW: f64 = 1e-4;

/// A column-major copy of `x`.
///
/// linfa's gradient is `xᵀ·r`; without BLAS, ndarray computes a matrix-vector product one row of
/// the left operand at a time, so on a row-major `x` each of the d rows of `xᵀ` is a strided walk
/// over the whole matrix (d passes through memory). In column-major layout those rows are
/// contiguous and the gradient is one sequential pass; `x·w` goes through matrixmultiply, which
/// handles either layout. The engage head on 900k × 255 rows went from 715 s to 115.8 s with this
/// alone (docs/BENCHMARKS.md, Training).
pub fn column_major(x: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = Array2::zeros(x.raw_dim().f());
    out.assign(&x);
    out
}

/// Fits P(y = true | x) with L2 strength `alpha` and returns it as a serving head. Pass `x` in
/// column-major layout ([`column_major`]) for speed; any layout gives the same fit.
pub fn fit_head(
    head: &'static str,
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, bool>,
    alpha: f64,
    max_iterations: u64,
) -> Result<LinearHead, TrainError> {
    let positives = y.iter().filter(|v| **v).count();
    if positives == 0 || positives == y.len() {
        return Err(TrainError::Data(format!(
            "the {head} label has a single class ({positives} of {} positive)",
            y.len()
        )));
    }
    let dataset = DatasetBase::new(x, y);
    // f64 on purpose: in f32 the summed loss of a million rows is too coarse for the line search
    // (the purchase head stopped early at 0.89 test AUC against 0.93 in f64 and scikit-learn).
    let fitted = LogisticRegression::<f64>::default()
        .alpha(alpha)
        .max_iterations(max_iterations)
        .gradient_tolerance(GRADIENT_TOLERANCE_PER_ROW * y.len() as f64)
        .fit(&dataset)
        .map_err(|source| TrainError::Fit { head, source })?;
    // linfa predicts the probability of the class it saw first; orient the head on `true`.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(LinearHead {
        intercept: (sign * fitted.intercept()) as f32,
        weights: fitted.params().iter().map(|w| (sign * w) as f32).collect(),
    })
}

/// Probabilities of `head` for every row of `x`, through the serving scorer.
pub fn predict(head: &LinearHead, x: ArrayView2<'_, f64>) -> Vec<f64> {
    let mut row = [0f32; crate::features::NUM_FEATURES];
    x.rows()
        .into_iter()
        .map(|r| {
            for (dst, src) in row.iter_mut().zip(r.iter()) {
                *dst = *src as f32;
            }
            f64::from(head.predict(&row))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// The serving scorer must equal linfa's own prediction, whichever class linfa saw first.
    #[test]
    fn serving_head_matches_linfa() {
        let n = 400;
        let d = crate::features::NUM_FEATURES;
        let mut x = Array2::<f64>::zeros((n, d));
        let mut y = Array1::from_elem(n, false);
        for i in 0..n {
            let a = ((i * 37) % 101) as f64 / 50.0 - 1.0;
            let b = ((i * 61) % 97) as f64 / 48.0 - 1.0;
            x[[i, 0]] = a;
            x[[i, d - 1]] = b;
            y[i] = a + 0.5 * b + 0.3 * (((i * 13) % 7) as f64 - 3.0) / 3.0 > 0.0;
        }
        for first_label in [false, true] {
            y[0] = first_label;
            let head = fit_head("t", x.view(), y.view(), 0.1, 200).unwrap();
            let head_f = fit_head("t", column_major(x.view()).view(), y.view(), 0.1, 200).unwrap();
            for (a, b) in head.weights.iter().zip(&head_f.weights) {
                assert!((a - b).abs() < 1e-5, "layout changes the fit: {a} vs {b}");
            }
            let linfa = LogisticRegression::default()
                .alpha(0.1)
                .max_iterations(200)
                .gradient_tolerance(GRADIENT_TOLERANCE_PER_ROW * n as f64)
                .fit(&DatasetBase::new(x.view(), y.view()))
                .unwrap();
            let theirs = linfa.predict_probabilities(&x);
            let p_true: Vec<f64> =
                theirs.iter().map(|p| if linfa.labels().pos.class { *p } else { 1.0 - *p }).collect();
            let ours = predict(&head, x.view());
            for (a, b) in ours.iter().zip(&p_true) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            assert!(head.weights[0] > 0.0, "positive feature gets a positive weight");
        }
    }
}
