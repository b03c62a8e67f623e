//! A purchase head fitted for ranking (`fitrank train --purchase-objective ranking`).
//!
//! The pointwise head minimises log loss over every shown row. Part of that loss is *which
//! users* buy at all, and a feature that describes the user as well as the pair can be bent
//! towards that question. The ranker never asks it: it compares sessions for one user. Take a
//! user's view rate of a category. Users who watch and never buy view the most, so over all rows
//! the feature predicts purchases weakly. Within one user's request it still tells which session
//! that user will buy from.
//!
//! This objective fits the question the ranker asks, in two steps:
//!
//! 1. **Within requests.** A conditional logit over the rows of each served ranking (the export's
//!    `ranking_id`) that has a purchase: every purchased row against the request's other rows,
//!    `−Σ log softmax(x·w)` with L2 strength α. Columns that are constant within every request
//!    (the user's and the request's own features) cancel out of it and stay at 0.
//! 2. **Calibration.** A pointwise logistic fit of the purchase label on the request-constant
//!    columns over all training rows, with the step-1 score `x·w` as a fixed offset. The
//!    conditional logit's weights are already on the logit scale. This step gives the head its
//!    level and its user-level terms, because the policy adds other terms in
//!    purchase-probability units and so the head must stay a probability. Fitting a scale for the
//!    step-1 score here would bend it again across users.
//!
//! The serving head is `w` on the columns that vary within requests, and the calibration's
//! weights and intercept on the constant ones. It is an ordinary linear head, so serving does
//! not change.

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView2};

use super::solver::{self, Objective, SparseRows};
use super::{Dataset, TrainError};
use fitrank::model::LinearHead;

/// The training rows grouped by request: each request with at least two rows, as a range of
/// `order` (row indexes of the dataset).
struct Requests {
    order: Vec<usize>,
    ranges: Vec<Range<usize>>,
}

impl Requests {
    /// The requests of `rows` (by `groups`, 0 = none); `bought` keeps only those with a purchase.
    fn of(rows: &[usize], groups: &[u64], purchased: &[bool], bought: bool) -> Requests {
        let mut sorted: Vec<usize> = rows.iter().copied().filter(|&i| groups[i] != 0).collect();
        sorted.sort_by_key(|&i| (groups[i], i));
        let (mut order, mut ranges) = (Vec::with_capacity(sorted.len()), Vec::new());
        for run in sorted.chunk_by(|a, b| groups[*a] == groups[*b]) {
            if run.len() < 2 || (bought && !run.iter().any(|&i| purchased[i])) {
                continue;
            }
            ranges.push(order.len()..order.len() + run.len());
            order.extend_from_slice(run);
        }
        Requests { order, ranges }
    }
}

/// The conditional logit of step 1; parameters are the weights (no intercept: it cancels within
/// a request).
struct WithinRequests<'a> {
    x: &'a SparseRows,
    /// Per row of `x`: 1 when purchased.
    y: Vec<f64>,
    ranges: &'a [Range<usize>],
    alpha: f64,
}

impl Objective for WithinRequests<'_> {
    fn cost_and_gradient(&self, w: &Array1<f64>) -> (f64, Array1<f64>) {
        self.compute(w.as_slice().expect("contiguous"))
    }
}

impl WithinRequests<'_> {
    fn compute(&self, w: &[f64]) -> (f64, Array1<f64>) {
        let mut grad = Array1::zeros(w.len());
        let mut loss = 0.0;
        let mut z = Vec::new();
        for range in self.ranges {
            z.clear();
            z.extend(range.clone().map(|i| self.x.dot(i, w)));
            let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = z.iter().map(|v| (v - top).exp()).sum();
            let log_total = top + total.ln();
            let positives: f64 = range.clone().map(|i| self.y[i]).sum();
            for (k, i) in range.clone().enumerate() {
                loss += self.y[i] * (log_total - z[k]);
                // d/dz_k of Σ_pos (log Σ exp z − z_pos) = n_pos · softmax_k − y_k
                let r = positives * (z[k] - log_total).exp() - self.y[i];
                self.x.add_scaled(i, r, grad.as_slice_mut().expect("contiguous"));
            }
        }
        let mut penalty = 0.0;
        for (g, wj) in grad.iter_mut().zip(w) {
            penalty += wj * wj;
            *g += self.alpha * wj;
        }
        (loss + 0.5 * self.alpha * penalty, grad)
    }
}

/// Step 1: the within-request weights of the requests `requests` of `x`.
fn fit_within(
    x: ArrayView2<'_, f64>,
    purchased: &[bool],
    requests: &Requests,
    alpha: f64,
    max_iterations: u64,
) -> Result<Array1<f64>, String> {
    let rows = SparseRows::from_dense_rows(x, requests.order.iter().copied())?;
    let y = requests.order.iter().map(|&i| f64::from(u8::from(purchased[i]))).collect();
    let problem = WithinRequests { x: &rows, y, ranges: &requests.ranges, alpha };
    let tolerance = super::fit::GRADIENT_TOLERANCE_PER_ROW * requests.order.len() as f64;
    Ok(solver::minimise(&problem, x.ncols(), max_iterations, tolerance)?.0)
}

/// Per column: whether it takes one value within every request of `requests`.
fn constant_within(x: ArrayView2<'_, f64>, requests: &Requests) -> Vec<bool> {
    let mut constant = vec![true; x.ncols()];
    for range in &requests.ranges {
        let first = x.row(requests.order[range.start]);
        for &i in &requests.order[range.start + 1..range.end] {
            for ((c, a), b) in constant.iter_mut().zip(first.iter()).zip(x.row(i).iter()) {
                *c &= a == b;
            }
        }
    }
    constant
}

/// The purchase head of `--purchase-objective ranking`, fitted on the rows `train_idx` of `data`
/// with L2 strength `alpha` in both steps. Refuses data without requests that have a purchase.
pub fn fit_head(
    data: &Dataset,
    train_idx: &[usize],
    alpha: f64,
    max_iterations: u64,
) -> Result<LinearHead, TrainError> {
    let fail = |message: String| TrainError::Fit { head: "purchase", message };
    let purchased = data.purchased.as_slice().expect("contiguous");
    let bought = Requests::of(train_idx, &data.groups, purchased, true);
    if bought.ranges.is_empty() {
        return Err(TrainError::Data(
            "the ranking objective needs served rankings (a ranking_id column) of two or more rows with a purchase"
                .into(),
        ));
    }
    let x = data.x.view();
    let within = fit_within(x, purchased, &bought, alpha, max_iterations).map_err(fail)?;
    let constant = constant_within(x, &Requests::of(train_idx, &data.groups, purchased, false));
    // Step 2: the constant columns over every training row, the score as an offset.
    let kept: Vec<usize> = (0..x.ncols()).filter(|&j| constant[j]).collect();
    let mut design = Array2::zeros((train_idx.len(), kept.len()));
    let mut offset = Vec::with_capacity(train_idx.len());
    for (mut out, &i) in design.rows_mut().into_iter().zip(train_idx) {
        let row = x.row(i);
        for (k, &j) in kept.iter().enumerate() {
            out[k] = row[j];
        }
        offset.push(row.dot(&within));
    }
    let y = data.purchased.select(ndarray::Axis(0), train_idx);
    let rows = SparseRows::from_dense(design.view()).map_err(fail)?;
    let tolerance = super::fit::GRADIENT_TOLERANCE_PER_ROW * train_idx.len() as f64;
    let calibrated =
        solver::fit_with_offset(&rows, y.view(), &offset, alpha, max_iterations, tolerance).map_err(fail)?;
    let mut weights: Vec<f32> = within.iter().map(|w| *w as f32).collect();
    for (k, &j) in kept.iter().enumerate() {
        weights[j] = calibrated.weights[k] as f32;
    }
    Ok(LinearHead { intercept: calibrated.intercept as f32, weights, identity: Vec::new(), factors: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fitrank::features::NUM_FEATURES;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Requests of 6 rows for users who either buy or never do. Column 0 is the user's "view
    /// rate" (the same on every row of a request, higher for those who never buy); column 1 a
    /// pair feature whose within-request effect on buying is 1.5, and which is larger for users
    /// who never buy (they view more of everything).
    fn confounded(requests: usize, seed: u64) -> Dataset {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut data = Dataset::with_rows(requests * 6);
        for r in 0..requests {
            let never = rng.gen_bool(0.4);
            // Overlapping: the user's own column tells the two kinds apart only in part.
            let view_rate = if never { 0.5 } else { 0.0 } + rng.gen_range(-0.5..0.5);
            for k in 0..6 {
                let i = r * 6 + k;
                let pair = rng.gen_range(-1.0..1.0) + if never { 1.0 } else { 0.0 };
                let z: f64 = -3.0 + 1.5 * pair;
                let bought = !never && rng.gen_bool(1.0 / (1.0 + (-z).exp()));
                let mut row = [0f32; NUM_FEATURES];
                row[0] = view_rate as f32;
                row[1] = pair as f32;
                data.set(i, &row, false, bought, i as i64);
                data.groups[i] = r as u64 + 1;
            }
        }
        data
    }

    #[test]
    fn the_within_request_gradient_is_the_loss_derivative() {
        let data = confounded(40, 1);
        let all: Vec<usize> = (0..data.len()).collect();
        let purchased = data.purchased.as_slice().unwrap();
        let requests = Requests::of(&all, &data.groups, purchased, true);
        let rows = SparseRows::from_dense_rows(data.x.view(), requests.order.iter().copied()).unwrap();
        let y = requests.order.iter().map(|&i| f64::from(u8::from(purchased[i]))).collect();
        let problem = WithinRequests { x: &rows, y, ranges: &requests.ranges, alpha: 0.3 };
        let mut w = vec![0.0; NUM_FEATURES];
        w[0] = 0.2;
        w[1] = 0.7;
        let (_, grad) = problem.compute(&w);
        for j in [0, 1, 5] {
            let h = 1e-6;
            let (mut up, mut down) = (w.clone(), w.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (problem.compute(&up).0 - problem.compute(&down).0) / (2.0 * h);
            assert!((numeric - grad[j]).abs() < 1e-5 * (1.0 + numeric.abs()), "column {j}: {numeric} vs {}", grad[j]);
        }
    }

    #[test]
    fn the_ranking_head_keeps_the_within_request_effect_that_pointwise_bends() {
        let data = confounded(6_000, 2);
        let all: Vec<usize> = (0..data.len()).collect();
        let head = fit_head(&data, &all, 0.01, 200).unwrap();
        // The user's own column is constant within requests: it comes from the calibration.
        // The pair column keeps its within-request effect.
        assert!((head.weights[1] - 1.5).abs() < 0.25, "ranking head: pair weight {}", head.weights[1]);
        let design = super::super::fit::design(data.x.view(), super::super::fit::Solver::Sparse, None).unwrap();
        let pointwise = super::super::fit::fit_head("purchase", &design, data.purchased.view(), 0.01, 200).unwrap();
        assert!(
            pointwise.weights[1] < head.weights[1] - 0.3,
            "pointwise {} against ranking {}",
            pointwise.weights[1],
            head.weights[1]
        );
        // Both still say that the users who view the most buy the least.
        assert!(head.weights[0] < -0.5 && pointwise.weights[0] < -0.5, "{} {}", head.weights[0], pointwise.weights[0]);
    }

    #[test]
    fn data_without_requests_is_refused() {
        let mut data = confounded(50, 3);
        data.groups.iter_mut().for_each(|g| *g = 0);
        let all: Vec<usize> = (0..data.len()).collect();
        assert!(fit_head(&data, &all, 1.0, 50).unwrap_err().to_string().contains("ranking_id"));
    }
}
