//! Fitting one logistic-regression head into a serving head, by the project's sparse solver
//! ([`solver`](super::solver), the default) or by linfa-logistic (the reference).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array2, ArrayView1, ArrayView2, ShapeBuilder};

use super::TrainError;
use super::factors;
use super::solver::{self, SparseRows};
use fitrank::features::IdentityKeys;
use fitrank::model::LinearHead;

/// Stopping rule of the optimiser, per training row: the solver minimises the *summed* log loss,
/// so the gradient tolerance is this times the number of rows — the same criterion as
/// scikit-learn's `tol = 1e-4` on its row-averaged loss.
pub const GRADIENT_TOLERANCE_PER_ROW: f64 = 1e-4;

/// Which optimiser fits the heads. Both minimise the same objective with the same L-BFGS and
/// stopping rule, so they reach the same weights (tests check it); they differ in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    /// [`solver`]: sparse rows, cost and gradient in one pass (the default).
    #[default]
    Sparse,
    /// linfa-logistic 0.8 on a dense column-major matrix: the reference, about 10× slower
    /// (docs/PERFORMANCE.md, training goal).
    Linfa,
}

impl std::str::FromStr for Solver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sparse" => Ok(Solver::Sparse),
            "linfa" => Ok(Solver::Linfa),
            other => Err(format!("unknown solver {other:?}: sparse or linfa")),
        }
    }
}

/// Training rows in the layout a [`Solver`] reads; build once, fit every head and alpha on it.
#[derive(Debug, Clone)]
pub enum Design {
    /// The dense row's `dense` columns, then the identity block's (if any), whose slots may get
    /// latent factors ([`Factoring`]).
    Sparse { rows: SparseRows, dense: usize, factors: Factoring },
    /// Column-major, so that linfa's gradient `xᵀ·r` is one sequential pass: without BLAS ndarray
    /// computes a matrix-vector product one row of the left operand at a time (on a row-major `x`
    /// the engage head of 900k × 255 rows took 715 s, column-major 115.8 s).
    ColumnMajor(Array2<f64>),
}

/// The latent factors of a sparse design (`super::factors`).
#[derive(Debug, Clone)]
pub enum Factoring {
    /// None: a plain logistic regression.
    None,
    /// To be fitted for the label of each head: the rows' (user, host) slots.
    ForLabel { spec: factors::Spec, pairs: Vec<Option<[u32; 2]>> },
    /// Fitted for one label ([`Design::for_label`]): the rows carry the out-of-fold score as
    /// their last column, and these are the tables of all rows.
    Fitted { tables: Vec<f64> },
}

impl Design {
    /// This design ready to fit heads for label `y`: with factors, the factorisation of `y`
    /// done once (out of fold, `super::factors`) for every alpha tried; without, itself.
    pub fn for_label(&self, y: ArrayView1<'_, bool>) -> Result<std::borrow::Cow<'_, Design>, TrainError> {
        let Design::Sparse { rows, dense, factors: Factoring::ForLabel { spec, pairs } } = self else {
            return Ok(std::borrow::Cow::Borrowed(self));
        };
        let labels = y.to_vec();
        let fail = |message: String| TrainError::Data(format!("latent factors: {message}"));
        let oof = factors::out_of_fold(spec, pairs, &labels).map_err(fail)?;
        let rows = rows.with_column(&oof.scores).map_err(fail)?;
        Ok(std::borrow::Cow::Owned(Design::Sparse {
            rows,
            dense: *dense,
            factors: Factoring::Fitted { tables: oof.tables },
        }))
    }
}

/// The identity block of a design: each row's keys (indexed like the dense matrix's rows), the
/// slots per kind, the latent factors per slot (`fitrank::features::identity`) and their L2
/// strength.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub keys: &'a [IdentityKeys],
    pub buckets: u32,
    pub factor_dims: u32,
    pub factor_alpha: f64,
    /// Posterior draws of a Bayesian factorisation (`super::gibbs`); 0 for alternating least
    /// squares.
    pub factor_samples: u32,
}

/// The rows of `x` as `solver` reads them.
pub fn design(x: ArrayView2<'_, f64>, solver: Solver, identity: Option<Identity<'_>>) -> Result<Design, TrainError> {
    design_rows(x, &(0..x.nrows()).collect::<Vec<_>>(), solver, identity)
}

/// The rows `rows` of `x`, in that order, as `solver` reads them: a training split without a
/// dense copy of it first. With `identity` (sparse solver only) each row also gets its user's and
/// host's slot columns after the dense ones.
pub fn design_rows(
    x: ArrayView2<'_, f64>,
    rows: &[usize],
    solver: Solver,
    identity: Option<Identity<'_>>,
) -> Result<Design, TrainError> {
    let identity = identity.filter(|id| id.buckets > 0);
    if let Some(id) = identity
        && id.keys.len() != x.nrows()
    {
        return Err(TrainError::Data(format!("{} identity keys for {} rows", id.keys.len(), x.nrows())));
    }
    match solver {
        Solver::Sparse => {
            let built = match identity {
                None => SparseRows::from_dense_rows(x, rows.iter().copied()),
                Some(id) => {
                    SparseRows::from_dense_rows_extended(x, rows.iter().copied(), 2 * id.buckets as usize, |i| {
                        id.keys[i].slots(id.buckets)
                    })
                }
            };
            built
                .map(|built| Design::Sparse {
                    rows: built,
                    dense: x.ncols(),
                    factors: match identity {
                        Some(id) if id.factor_dims > 0 => Factoring::ForLabel {
                            spec: factors::Spec {
                                slots: 2 * id.buckets as usize,
                                dims: id.factor_dims as usize,
                                alpha: id.factor_alpha,
                                samples: id.factor_samples as usize,
                            },
                            pairs: rows
                                .iter()
                                .map(|&i| match id.keys[i].slots(id.buckets) {
                                    [Some(u), Some(h)] => Some([u, h]),
                                    _ => None,
                                })
                                .collect(),
                        },
                        _ => Factoring::None,
                    },
                })
                .map_err(|e| TrainError::Data(format!("feature matrix: {e}")))
        }
        Solver::Linfa if identity.is_some() => Err(TrainError::Data(
            "identity features need the sparse solver (a dense matrix of every slot would not fit)".into(),
        )),
        Solver::Linfa => {
            let mut out = Array2::zeros((rows.len(), x.ncols()).f());
            for (mut dst, src) in out.rows_mut().into_iter().zip(rows) {
                dst.assign(&x.row(*src));
            }
            Ok(Design::ColumnMajor(out))
        }
    }
}

/// Fits P(y = true | x) with L2 strength `alpha` and returns it as a serving head.
pub fn fit_head(
    head: &'static str,
    x: &Design,
    y: ArrayView1<'_, bool>,
    alpha: f64,
    max_iterations: u64,
) -> Result<LinearHead, TrainError> {
    fit_head_counted(head, x, y, alpha, max_iterations).map(|(h, _)| h)
}

/// [`fit_head`], with the number of L-BFGS iterations run when the solver reports it (linfa does
/// not).
pub fn fit_head_counted(
    head: &'static str,
    x: &Design,
    y: ArrayView1<'_, bool>,
    alpha: f64,
    max_iterations: u64,
) -> Result<(LinearHead, Option<u64>), TrainError> {
    let positives = y.iter().filter(|v| **v).count();
    if positives == 0 || positives == y.len() {
        return Err(TrainError::Data(format!(
            "the {head} label has a single class ({positives} of {} positive)",
            y.len()
        )));
    }
    // f64 on purpose: in f32 the summed loss of a million rows is too coarse for the line search
    // (the purchase head stopped early at 0.89 test AUC against 0.93 in f64 and scikit-learn).
    let tolerance = GRADIENT_TOLERANCE_PER_ROW * y.len() as f64;
    let fail = |message: String| TrainError::Fit { head, message };
    let x = x.for_label(y)?;
    match &*x {
        Design::Sparse { rows, dense, factors } => {
            let fitted = solver::fit(rows, y, alpha, max_iterations, tolerance).map_err(fail)?;
            let weights: Vec<f32> = fitted.weights.iter().map(|w| *w as f32).collect();
            let (identity, factors) = match factors {
                Factoring::None => (weights[*dense..].to_vec(), Vec::new()),
                Factoring::Fitted { tables } => {
                    let last = weights.len() - 1;
                    (weights[*dense..last].to_vec(), factors::into_head(tables, fitted.weights[last]))
                }
                Factoring::ForLabel { .. } => return Err(fail("the factors were not fitted".into())),
            };
            let head = LinearHead {
                intercept: fitted.intercept as f32,
                identity,
                weights: weights[..*dense].to_vec(),
                factors,
            };
            Ok((head, Some(fitted.iterations)))
        }
        Design::ColumnMajor(x) => {
            let fitted = LogisticRegression::<f64>::default()
                .alpha(alpha)
                .max_iterations(max_iterations)
                .gradient_tolerance(tolerance)
                .fit(&DatasetBase::new(x.view(), y))
                .map_err(|e| fail(e.to_string()))?;
            // linfa predicts the probability of the class it saw first; orient the head on `true`.
            let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
            let head = LinearHead {
                intercept: (sign * fitted.intercept()) as f32,
                weights: fitted.params().iter().map(|w| (sign * w) as f32).collect(),
                identity: Vec::new(),
                factors: Vec::new(),
            };
            Ok((head, None))
        }
    }
}

/// Probabilities of `head` for every row of `x`, through the serving scorer. `keys` are the rows'
/// identity keys (one per row), or empty for rows without ids; a head without an identity block
/// ignores them.
pub fn predict(head: &LinearHead, x: ArrayView2<'_, f64>, keys: &[IdentityKeys]) -> Vec<f64> {
    let mut row = [0f32; fitrank::features::NUM_FEATURES];
    x.rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            for (dst, src) in row.iter_mut().zip(r.iter()) {
                *dst = *src as f32;
            }
            let extra = keys.get(i).map_or(0.0, |k| head.identity_logit(k));
            f64::from(head.predict_with(&row, extra))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// The serving scorer must equal linfa's own prediction on the same data, whichever class
    /// linfa saw first.
    #[test]
    fn serving_head_matches_linfa() {
        let n = 400;
        let d = fitrank::features::NUM_FEATURES;
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
            let head = fit_head("t", &design(x.view(), Solver::Sparse, None).unwrap(), y.view(), 0.1, 200).unwrap();
            let reference = fit_head("t", &design(x.view(), Solver::Linfa, None).unwrap(), y.view(), 0.1, 200).unwrap();
            for (a, b) in head.weights.iter().zip(&reference.weights) {
                assert!((a - b).abs() < 1e-4, "the two solvers disagree: {a} vs {b}");
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
            let ours = predict(&head, x.view(), &[]);
            for (a, b) in ours.iter().zip(&p_true) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            assert!(head.weights[0] > 0.0, "positive feature gets a positive weight");
        }
    }

    #[test]
    fn single_class_is_refused() {
        let x = Array2::<f64>::ones((10, 3));
        for solver in [Solver::Sparse, Solver::Linfa] {
            let err = fit_head(
                "engage",
                &design(x.view(), solver, None).unwrap(),
                Array1::from_elem(10, true).view(),
                1.0,
                10,
            );
            assert!(err.unwrap_err().to_string().contains("single class"));
        }
    }
}
