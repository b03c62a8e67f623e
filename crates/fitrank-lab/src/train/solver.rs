//! Logistic regression by L-BFGS over sparse rows, cost and gradient in one pass.
//!
//! This is linfa-logistic's binary problem, solved the same way, on a different representation:
//!
//! * the same objective, `-Σ log σ(yᵢ zᵢ) + α/2 ‖w‖²` with `zᵢ = xᵢ·w + b`, `yᵢ ∈ {-1, +1}` and
//!   the intercept `b` unpenalised;
//! * the same solver: argmin's L-BFGS (memory 10) with the More–Thuente line search, started at
//!   zero, stopped by the gradient-norm tolerance or the iteration cap;
//! * but the rows are stored sparse ([`SparseRows`]: a generated row of the shipped schema has 42
//!   non-zeros among 264 columns on average, 52 at most) and one pass over them yields both the
//!   cost and the gradient, which are cached for the line search's following `gradient` call at
//!   the same point.
//!
//! [`SparseRows`] is not the feature log's `SparseRow`: that one stores a single served row
//! compactly; this one lays a whole design matrix out contiguously, with f64 values, for passes.
//!
//! Why not linfa-logistic itself: it evaluates cost and gradient separately, three passes over the
//! dense matrix per line-search step (`x·w` twice, as a general matrix product with a one-column
//! matrix, and `xᵀ·r`); on 900,000 × 259 rows that made training 2.7× slower than scikit-learn
//! (docs/PERFORMANCE.md, training goal). linfa stays the reference: the tests fit the same data
//! with linfa-logistic and require the same weights.

use std::ops::Range;
use std::sync::Mutex;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{Array1, ArrayView1, ArrayView2};

/// Row blocks of one evaluation, each on its own thread, summed in a fixed order so that a fit
/// is bit-for-bit the same on any machine.
const BLOCKS: usize = 4;

/// Memory of L-BFGS, as linfa-logistic sets it.
const LBFGS_MEMORY: usize = 10;

/// A design matrix by rows, zeros left out (compressed sparse rows).
#[derive(Debug, Clone, Default)]
pub struct SparseRows {
    /// Row `i` holds entries `starts[i]..starts[i + 1]`.
    starts: Vec<usize>,
    columns: Vec<u32>,
    values: Vec<f64>,
    width: usize,
}

impl SparseRows {
    /// The non-zero entries of `x`, any layout. Refuses a non-finite value, naming its place.
    pub fn from_dense(x: ArrayView2<'_, f64>) -> Result<Self, String> {
        Self::from_dense_rows(x, 0..x.nrows())
    }

    /// The non-zero entries of the rows `rows` of `x`, in that order (a training split without
    /// a dense copy of it).
    pub fn from_dense_rows(x: ArrayView2<'_, f64>, rows: impl ExactSizeIterator<Item = usize>) -> Result<Self, String> {
        Self::from_dense_rows_extended(x, rows, 0, |_| [None, None])
    }

    /// [`Self::from_dense_rows`] with `extra_width` more columns after `x`'s, where row `i` of `x`
    /// also holds a 1 at `x.ncols() + s` for each `s` of `extra(i)` (the identity block's slots,
    /// each below `extra_width`).
    pub fn from_dense_rows_extended(
        x: ArrayView2<'_, f64>,
        rows: impl ExactSizeIterator<Item = usize>,
        extra_width: usize,
        extra: impl Fn(usize) -> [Option<u32>; 2],
    ) -> Result<Self, String> {
        let dense = x.ncols();
        let width = dense + extra_width;
        if u32::try_from(width).is_err() {
            return Err(format!("{width} columns are too many"));
        }
        let mut out = SparseRows { starts: Vec::with_capacity(rows.len() + 1), width, ..Default::default() };
        out.starts.push(0);
        for i in rows {
            if i >= x.nrows() {
                return Err(format!("row {i} of {}", x.nrows()));
            }
            for (j, v) in x.row(i).iter().enumerate() {
                if !v.is_finite() {
                    return Err(format!("row {i}, column {j} is {v}"));
                }
                if *v != 0.0 {
                    out.columns.push(j as u32);
                    out.values.push(*v);
                }
            }
            for s in extra(i).into_iter().flatten() {
                if s as usize >= extra_width {
                    return Err(format!("row {i}: extra column {s} of {extra_width}"));
                }
                out.columns.push((dense + s as usize) as u32);
                out.values.push(1.0);
            }
            out.starts.push(out.values.len());
        }
        Ok(out)
    }

    /// These rows with one more column at the end, holding `values[i]` in row `i` (the
    /// out-of-fold factorisation score, `super::factors`). Refuses a wrong length or a non-finite
    /// value.
    pub fn with_column(&self, values: &[f64]) -> Result<Self, String> {
        if values.len() != self.rows() {
            return Err(format!("{} values for {} rows", values.len(), self.rows()));
        }
        let width = self.width + 1;
        if u32::try_from(width).is_err() {
            return Err(format!("{width} columns are too many"));
        }
        let mut out = SparseRows {
            starts: Vec::with_capacity(self.starts.len()),
            columns: Vec::with_capacity(self.columns.len() + values.len()),
            values: Vec::with_capacity(self.values.len() + values.len()),
            width,
        };
        out.starts.push(0);
        for (i, v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(format!("row {i}, the new column is {v}"));
            }
            let (cols, vals) = self.row(i);
            out.columns.extend_from_slice(cols);
            out.values.extend_from_slice(vals);
            if *v != 0.0 {
                out.columns.push(self.width as u32);
                out.values.push(*v);
            }
            out.starts.push(out.values.len());
        }
        Ok(out)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of stored (non-zero) entries.
    pub fn non_zeros(&self) -> usize {
        self.values.len()
    }

    /// Row `i` times `w`.
    pub(super) fn dot(&self, i: usize, w: &[f64]) -> f64 {
        let (cols, vals) = self.row(i);
        cols.iter().zip(vals).map(|(c, v)| w[*c as usize] * v).sum()
    }

    /// Adds `scale` times row `i` to `out`.
    pub(super) fn add_scaled(&self, i: usize, scale: f64, out: &mut [f64]) {
        let (cols, vals) = self.row(i);
        for (c, v) in cols.iter().zip(vals) {
            out[*c as usize] += scale * v;
        }
    }

    fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let r = self.starts[i]..self.starts[i + 1];
        (&self.columns[r.clone()], &self.values[r])
    }
}

/// `log σ(x)`, computed without overflow (linfa-logistic's and scikit-learn's formula).
fn log_logistic(x: f64) -> f64 {
    if x > 0.0 { -(-x).exp().ln_1p() } else { x - x.exp().ln_1p() }
}

/// A cost and its gradient, computed together in one pass over the data.
pub(super) trait Objective {
    fn cost_and_gradient(&self, params: &Array1<f64>) -> (f64, Array1<f64>);
}

/// An [`Objective`] as argmin asks for it: the line search asks for the cost and then the
/// gradient of the same point, so the last point evaluated is kept with both.
struct Cached<'a, O> {
    objective: &'a O,
    last: Mutex<Option<Evaluated>>,
}

/// A point with its cost and gradient.
type Evaluated = (Array1<f64>, f64, Array1<f64>);

impl<O: Objective> Cached<'_, O> {
    fn evaluate(&self, params: &Array1<f64>) -> (f64, Array1<f64>) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((p, cost, grad)) = last.as_ref()
            && p == params
        {
            return (*cost, grad.clone());
        }
        let (cost, grad) = self.objective.cost_and_gradient(params);
        *last = Some((params.clone(), cost, grad.clone()));
        (cost, grad)
    }
}

impl<O: Objective> CostFunction for Cached<'_, O> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.evaluate(p).0)
    }
}

impl<O: Objective> Gradient for Cached<'_, O> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, p: &Self::Param) -> Result<Array1<f64>, argmin::core::Error> {
        Ok(self.evaluate(p).1)
    }
}

/// Minimises `objective` over `width` parameters by L-BFGS from zero, until the gradient's norm
/// falls below `gradient_tolerance` or after `max_iterations`: the best point and the iterations
/// run.
pub(super) fn minimise<O: Objective>(
    objective: &O,
    width: usize,
    max_iterations: u64,
    gradient_tolerance: f64,
) -> Result<(Array1<f64>, u64), String> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), LBFGS_MEMORY)
        .with_tolerance_grad(gradient_tolerance)
        .map_err(|e| e.to_string())?;
    let start = Array1::zeros(width);
    let problem = Cached { objective, last: Mutex::new(None) };
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(start.clone()).max_iters(max_iterations))
        .run()
        .map_err(|e| e.to_string())?;
    let iterations = result.state().get_iter();
    Ok((result.state.best_param.unwrap_or(start), iterations))
}

/// Logistic regression's objective; parameters are the weights followed by the intercept.
struct Problem<'a> {
    x: &'a SparseRows,
    /// Labels as -1 / +1.
    y: Vec<f64>,
    /// Added to each row's logit, not fitted (empty: none).
    offset: &'a [f64],
    alpha: f64,
}

impl Objective for Problem<'_> {
    fn cost_and_gradient(&self, params: &Array1<f64>) -> (f64, Array1<f64>) {
        self.compute(params)
    }
}

impl Problem<'_> {
    /// One pass over the rows, split in [`BLOCKS`] blocks on scoped threads.
    fn compute(&self, params: &Array1<f64>) -> (f64, Array1<f64>) {
        let d = self.x.width;
        let params = params.as_slice().expect("argmin's parameters are contiguous");
        let (w, b) = (&params[..d], params[d]);
        let n = self.x.rows();
        let blocks: Vec<Range<usize>> = (0..BLOCKS).map(|k| n * k / BLOCKS..n * (k + 1) / BLOCKS).collect();
        let partial: Vec<(f64, Vec<f64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = blocks[1..].iter().map(|r| scope.spawn(|| self.block(r.clone(), w, b))).collect();
            let mut out = vec![self.block(blocks[0].clone(), w, b)];
            out.extend(handles.into_iter().map(|h| h.join().expect("a gradient block panicked")));
            out
        });
        let mut grad = Array1::zeros(d + 1);
        let mut loss = 0.0;
        for (l, g) in &partial {
            loss += l;
            for (dst, src) in grad.iter_mut().zip(g) {
                *dst += src;
            }
        }
        let mut penalty = 0.0;
        for (j, wj) in w.iter().enumerate() {
            penalty += wj * wj;
            grad[j] += self.alpha * wj;
        }
        (loss + 0.5 * self.alpha * penalty, grad)
    }

    /// Summed loss of `rows` and its gradient (weights, then intercept).
    fn block(&self, rows: Range<usize>, w: &[f64], b: f64) -> (f64, Vec<f64>) {
        let d = self.x.width;
        let mut grad = vec![0.0; d + 1];
        let mut loss = 0.0;
        let mut grad_b = 0.0;
        for i in rows {
            let (cols, vals) = self.x.row(i);
            let mut z = b + self.offset.get(i).copied().unwrap_or(0.0);
            for (c, v) in cols.iter().zip(vals) {
                z += w[*c as usize] * v;
            }
            let y = self.y[i];
            let yz = y * z;
            loss -= log_logistic(yz);
            // d/dz of -log σ(y z) = (σ(y z) - 1) y
            let r = (1.0 / (1.0 + (-yz).exp()) - 1.0) * y;
            grad_b += r;
            for (c, v) in cols.iter().zip(vals) {
                grad[*c as usize] += r * v;
            }
        }
        grad[d] = grad_b;
        (loss, grad)
    }
}

/// A fitted binary logistic regression: P(y = true | x) = σ(x·weights + intercept).
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub weights: Array1<f64>,
    pub intercept: f64,
    /// L-BFGS iterations run.
    pub iterations: u64,
}

/// Fits P(y = true | x) with L2 strength `alpha`, stopping when the gradient's norm falls below
/// `gradient_tolerance` (of the summed loss) or after `max_iterations`.
pub fn fit(
    x: &SparseRows,
    y: ArrayView1<'_, bool>,
    alpha: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
) -> Result<Fitted, String> {
    fit_with_offset(x, y, &[], alpha, max_iterations, gradient_tolerance)
}

/// [`fit`] with `offset[i]` added to row `i`'s logit and not fitted (an empty `offset`: none).
pub fn fit_with_offset(
    x: &SparseRows,
    y: ArrayView1<'_, bool>,
    offset: &[f64],
    alpha: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
) -> Result<Fitted, String> {
    if y.len() != x.rows() {
        return Err(format!("{} labels for {} rows", y.len(), x.rows()));
    }
    if !offset.is_empty() && offset.len() != x.rows() {
        return Err(format!("{} offsets for {} rows", offset.len(), x.rows()));
    }
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(format!("alpha must be finite and non-negative, not {alpha}"));
    }
    let y = y.iter().map(|v| if *v { 1.0 } else { -1.0 }).collect();
    let problem = Problem { x, y, offset, alpha };
    let (params, iterations) = minimise(&problem, x.width + 1, max_iterations, gradient_tolerance)?;
    let d = x.width;
    Ok(Fitted { weights: params.slice(ndarray::s![..d]).to_owned(), intercept: params[d], iterations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use linfa_logistic::LogisticRegression;
    use ndarray::{Array2, ShapeBuilder};
    use proptest::prelude::*;

    /// A sparse-ish problem with a known signal: three informative columns, a one-hot block.
    fn data(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array1<bool>) {
        let mut x = Array2::<f64>::zeros((n, d));
        let mut y = Array1::from_elem(n, false);
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..n {
            let a = next() * 2.0 - 1.0;
            let b = if next() < 0.3 { next() } else { 0.0 };
            let hot = 3 + (next() * (d - 3) as f64) as usize;
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            x[[i, hot.min(d - 1)]] = 1.0;
            let z = 1.5 * a - 2.0 * b + if hot.is_multiple_of(3) { 0.8 } else { -0.4 };
            y[i] = next() < 1.0 / (1.0 + (-z).exp());
        }
        (x, y)
    }

    /// Same data, same objective, same solver: the weights agree with linfa-logistic's.
    #[test]
    fn same_fit_as_linfa() {
        let (x, y) = data(3_000, 40, 7);
        for alpha in [0.1, 1.0, 10.0] {
            let tol = 1e-4 * y.len() as f64;
            let ours = fit(&SparseRows::from_dense(x.view()).unwrap(), y.view(), alpha, 200, tol).unwrap();
            let theirs = LogisticRegression::<f64>::default()
                .alpha(alpha)
                .max_iterations(200)
                .gradient_tolerance(tol)
                .fit(&DatasetBase::new(x.view(), y.view()))
                .unwrap();
            let sign = if theirs.labels().pos.class { 1.0 } else { -1.0 };
            assert!((ours.intercept - sign * theirs.intercept()).abs() < 1e-3, "alpha {alpha}: intercept");
            for (j, (a, b)) in ours.weights.iter().zip(theirs.params()).enumerate() {
                assert!((a - sign * b).abs() < 1e-3, "alpha {alpha}, weight {j}: {a} vs {}", sign * b);
            }
            assert!(ours.weights[0] > 1.0 && ours.weights[1] < -1.0, "the signal is found: {:?}", ours.weights);
        }
    }

    /// Extra one-hot columns (the identity block) are the same rows as a dense matrix with those
    /// columns appended, and a slot beyond the block is refused.
    #[test]
    fn extended_rows_equal_the_dense_matrix_with_the_block() {
        let (x, _) = data(200, 6, 5);
        let slots = |i: usize| [Some((i % 3) as u32), i.is_multiple_of(2).then_some(3 + (i % 4) as u32 % 2)];
        let mut wide = Array2::zeros((x.nrows(), 6 + 5));
        wide.slice_mut(ndarray::s![.., ..6]).assign(&x);
        for i in 0..x.nrows() {
            for s in slots(i).into_iter().flatten() {
                wide[[i, 6 + s as usize]] = 1.0;
            }
        }
        let picked = [7usize, 3, 150, 3];
        let a = SparseRows::from_dense_rows_extended(x.view(), picked.iter().copied(), 5, slots).unwrap();
        let b = SparseRows::from_dense_rows(wide.view(), picked.iter().copied()).unwrap();
        assert_eq!((&a.starts, &a.columns, &a.values, a.width), (&b.starts, &b.columns, &b.values, b.width));
        assert!(SparseRows::from_dense_rows_extended(x.view(), [0].into_iter(), 2, slots).is_err());
    }

    /// A column appended to the rows is the dense matrix with that column; zeros stay unstored
    /// and a wrong length or a non-finite value is refused.
    #[test]
    fn an_appended_column_equals_the_dense_matrix_with_it() {
        let (x, _) = data(300, 7, 9);
        let column: Vec<f64> = (0..x.nrows()).map(|i| if i % 4 == 0 { 0.0 } else { i as f64 / 7.0 - 20.0 }).collect();
        let mut wide = Array2::zeros((x.nrows(), 8));
        wide.slice_mut(ndarray::s![.., ..7]).assign(&x);
        wide.column_mut(7).assign(&Array1::from(column.clone()));
        let a = SparseRows::from_dense(x.view()).unwrap().with_column(&column).unwrap();
        let b = SparseRows::from_dense(wide.view()).unwrap();
        assert_eq!((&a.starts, &a.columns, &a.values, a.width), (&b.starts, &b.columns, &b.values, b.width));
        let rows = SparseRows::from_dense(x.view()).unwrap();
        assert!(rows.with_column(&column[1..]).is_err());
        let mut bad = column;
        bad[5] = f64::NAN;
        assert!(rows.with_column(&bad).is_err());
    }

    /// The layout of the dense input does not matter, and zeros are not stored.
    #[test]
    fn layout_independent() {
        let (x, _) = data(500, 12, 3);
        let mut f = Array2::zeros(x.raw_dim().f());
        f.assign(&x);
        let (a, b) = (SparseRows::from_dense(x.view()).unwrap(), SparseRows::from_dense(f.view()).unwrap());
        assert_eq!((&a.starts, &a.columns, &a.values), (&b.starts, &b.columns, &b.values));
        assert_eq!(a.non_zeros(), x.iter().filter(|v| **v != 0.0).count());
        assert!(a.values.iter().all(|v| *v != 0.0));
        let picked = [7, 3, 400];
        let some = SparseRows::from_dense_rows(x.view(), picked.iter().copied()).unwrap();
        let dense = SparseRows::from_dense(x.select(ndarray::Axis(0), &picked).view()).unwrap();
        assert_eq!((&some.starts, &some.columns, &some.values), (&dense.starts, &dense.columns, &dense.values));
        assert!(SparseRows::from_dense_rows(x.view(), [500].into_iter()).is_err());
    }

    #[test]
    fn refuses_non_finite_values_and_bad_shapes() {
        let mut x = Array2::<f64>::zeros((3, 2));
        x[[2, 1]] = f64::NAN;
        assert_eq!(SparseRows::from_dense(x.view()).unwrap_err(), "row 2, column 1 is NaN");
        x[[2, 1]] = 1.0;
        let rows = SparseRows::from_dense(x.view()).unwrap();
        assert!(fit(&rows, Array1::from_elem(2, true).view(), 1.0, 10, 1e-4).is_err());
        assert!(fit(&rows, Array1::from_elem(3, true).view(), -1.0, 10, 1e-4).is_err());
    }

    proptest! {
        /// The one-pass gradient is the derivative of the one-pass cost (central differences),
        /// whatever the rows, labels and point.
        #[test]
        fn gradient_matches_finite_differences(
            seed in 0u64..1_000,
            alpha in 0.0f64..5.0,
            point in proptest::collection::vec(-2.0f64..2.0, 7),
        ) {
            let (x, y) = data(60, 6, seed);
            let rows = SparseRows::from_dense(x.view()).unwrap();
            // With an offset on every row, which moves the logits but is not a parameter.
            let offset: Vec<f64> = (0..60).map(|i| (i as f64 * 0.37 + seed as f64).sin()).collect();
            let problem = Problem {
                x: &rows,
                y: y.iter().map(|v| if *v { 1.0 } else { -1.0 }).collect(),
                offset: &offset,
                alpha,
            };
            let p = Array1::from(point);
            let (_, grad) = problem.compute(&p);
            let h = 1e-6;
            for j in 0..p.len() {
                let (mut up, mut down) = (p.clone(), p.clone());
                up[j] += h;
                down[j] -= h;
                let numeric = (problem.compute(&up).0 - problem.compute(&down).0) / (2.0 * h);
                prop_assert!((numeric - grad[j]).abs() < 1e-4 * (1.0 + numeric.abs()), "{j}: {numeric} vs {}", grad[j]);
            }
        }
    }
}
