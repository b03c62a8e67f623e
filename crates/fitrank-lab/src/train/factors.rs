//! Latent factors of the identity slots: matrix factorisation of who engages with whom.
//!
//! A head with factors adds `F_u · F_h` to its logit, where `F_u` and `F_h` are `dims` values of
//! the user's and the host's identity slots (`fitrank::features::identity`). They are learned here,
//! in two stages, so that the head learns from held-out evidence how far to trust them:
//!
//! 1. **Factorisation.** Alternating least squares on the training rows that carry both ids:
//!    minimise `Σ (yᵢ − ȳ − F_u·F_h)² + α (‖F_users‖² + ‖F_hosts‖²)` with `yᵢ ∈ {0, 1}`, by
//!    [`SWEEPS`] sweeps that each solve every user's `dims × dims` normal equations with the hosts
//!    fixed, then every host's with the users fixed (Cholesky; `α > 0` keeps them positive
//!    definite). The hosts start at small fixed pseudo-random values, so a fit is the same bits
//!    on every machine.
//! 2. **Out of fold, like the history features.** The rows are cut into [`FOLDS`] folds by a
//!    fixed hash of their position (not by position modulo [`FOLDS`]: rows laid out as a grid of
//!    users × hosts would put every row of a host in one fold); a row's *score* `F_u·F_h` comes from the factorisation of the other folds, never
//!    from its own label (a factorisation scoring its own rows would look far better in training
//!    than it does on a new pair, and the head would trust it too much). The head is then fitted
//!    with the score as one more column and learns its weight `w` with the other weights.
//!
//! The served tables are the factorisation of all training rows, with the user half multiplied by
//! `w` ([`into_head`]), so that serving's `F_u·F_h` is the column's contribution `w × score`: the
//! validation and test rows of training and every served request compute it the same way, from the
//! head alone. A slot no training row reached keeps zero factors, so a new user or host adds 0.

use fitrank::hash::splitmix64;

use super::gibbs;

/// Alternating least squares sweeps per factorisation (each solves both sides once).
pub const SWEEPS: usize = 10;

/// Folds of the out-of-fold scores.
pub const FOLDS: usize = 5;

/// Half-width of the hosts' starting values.
const START: f64 = 0.1;

/// What to factorise: the identity block's `slots` (two kinds × buckets), `dims` factors per
/// slot, L2 strength `alpha` (> 0), and how: `samples` = 0 by alternating least squares, else by
/// Gibbs sampling with that many posterior draws kept ([`super::gibbs`], where `alpha` is not
/// used: the strengths are sampled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub slots: usize,
    pub dims: usize,
    pub alpha: f64,
    pub samples: usize,
}

impl Spec {
    /// Values per slot in the tables: the factors, or the draws side by side.
    pub fn served_dims(&self) -> usize {
        served_dims(self.dims, self.samples)
    }
}

/// Values per slot a model with `dims` factors fitted with `samples` draws serves (0 draws:
/// alternating least squares, the factors themselves; no factors: none).
pub fn served_dims(dims: usize, samples: usize) -> usize {
    if dims == 0 || samples == 0 { dims } else { gibbs::served_dims(dims, samples) }
}

/// The out-of-fold scores of the training rows and the tables fitted on all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfFold {
    /// Per row, `F_u·F_h` from the folds that do not hold the row; 0 without both ids.
    pub scores: Vec<f64>,
    /// `dims` values per slot, fitted on every row.
    pub tables: Vec<f64>,
}

/// Out-of-fold scores of `pairs` (each row's user and host slot, when it has both) labelled `y`,
/// and the tables of all rows. The [`FOLDS`] + 1 factorisations run on scoped threads.
pub fn out_of_fold(spec: &Spec, pairs: &[Option<[u32; 2]>], y: &[bool]) -> Result<OutOfFold, String> {
    check(spec, pairs, y)?;
    let k = spec.served_dims();
    let (folds, tables) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..FOLDS)
            .map(|fold| scope.spawn(move || factorise(spec, pairs, y, fold as u64, |i| fold_of(i) != fold)))
            .collect();
        let tables = factorise(spec, pairs, y, FOLDS as u64, |_| true);
        let folds: Vec<Vec<f64>> = handles.into_iter().map(|h| h.join().expect("a factorisation panicked")).collect();
        (folds, tables)
    });
    let scores = pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| pair.map_or(0.0, |[u, h]| dot(&folds[fold_of(i)], u as usize * k, h as usize * k, k)))
        .collect();
    Ok(OutOfFold { scores, tables })
}

/// The tables as a head serves them: f32, the user half (the first `slots / 2` slots) times the
/// score column's weight `w`.
pub fn into_head(tables: &[f64], w: f64) -> Vec<f32> {
    let half = tables.len() / 2;
    tables.iter().enumerate().map(|(j, v)| (if j < half { w * v } else { *v }) as f32).collect()
}

fn check(spec: &Spec, pairs: &[Option<[u32; 2]>], y: &[bool]) -> Result<(), String> {
    if pairs.len() != y.len() {
        return Err(format!("{} identity pairs for {} labels", pairs.len(), y.len()));
    }
    if spec.dims == 0 || !spec.slots.is_multiple_of(2) {
        return Err(format!("{} factor dimensions over {} slots", spec.dims, spec.slots));
    }
    if spec.samples == 0 && !(spec.alpha.is_finite() && spec.alpha > 0.0) {
        return Err(format!("the factors' alpha must be finite and positive, not {}", spec.alpha));
    }
    let half = spec.slots / 2;
    if let Some((i, [u, h])) = pairs.iter().enumerate().find_map(|(i, p)| {
        p.filter(|[u, h]| *u as usize >= half || !(half..spec.slots).contains(&(*h as usize))).map(|p| (i, p))
    }) {
        return Err(format!("row {i}: user slot {u} and host slot {h} outside the {} slots of each kind", half));
    }
    Ok(())
}

/// One factorisation of the rows `keep` accepts (see the module documentation); `seed` tells
/// the Gibbs sampler's factorisations apart.
fn factorise(spec: &Spec, pairs: &[Option<[u32; 2]>], y: &[bool], seed: u64, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    let used: Vec<([u32; 2], bool)> = pairs
        .iter()
        .zip(y)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .filter_map(|(_, (p, y))| p.map(|p| (p, *y)))
        .collect();
    if spec.samples > 0 {
        return gibbs::factorise(spec, &used, splitmix64(seed ^ 0x9e37_79b9));
    }
    alternating_least_squares(spec, &used)
}

/// The point estimate: [`SWEEPS`] sweeps of alternating least squares.
fn alternating_least_squares(spec: &Spec, used: &[([u32; 2], bool)]) -> Vec<f64> {
    let k = spec.dims;
    let mut f = vec![0.0; spec.slots * k];
    if used.is_empty() {
        return f;
    }
    let mean = used.iter().filter(|(_, y)| *y).count() as f64 / used.len() as f64;
    // (own slot, other slot, centred label), grouped by own slot, for each side.
    let mut by_user: Vec<(u32, u32, f64)> =
        used.iter().map(|&([u, h], y)| (u, h, f64::from(u8::from(y)) - mean)).collect();
    by_user.sort_by_key(|e| (e.0, e.1));
    let mut by_host: Vec<(u32, u32, f64)> = by_user.iter().map(|&(u, h, r)| (h, u, r)).collect();
    by_host.sort_by_key(|e| (e.0, e.1));
    for group in by_host.chunk_by(|a, b| a.0 == b.0) {
        let s = group[0].0 as usize * k;
        for (j, v) in f[s..s + k].iter_mut().enumerate() {
            *v = start(s + j);
        }
    }
    let mut a = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    for _ in 0..SWEEPS {
        for side in [&by_user, &by_host] {
            for group in side.chunk_by(|x, z| x.0 == z.0) {
                a.fill(0.0);
                b.fill(0.0);
                for d in 0..k {
                    a[d * k + d] = spec.alpha;
                }
                for &(_, other, r) in group {
                    accumulate(&mut a, &mut b, &f[other as usize * k..other as usize * k + k], r);
                }
                cholesky_solve(&mut a, &mut b, k);
                let s = group[0].0 as usize * k;
                f[s..s + k].copy_from_slice(&b);
            }
        }
    }
    f
}

fn dot(f: &[f64], u: usize, h: usize, k: usize) -> f64 {
    f[u..u + k].iter().zip(&f[h..h + k]).map(|(a, b)| a * b).sum()
}

/// Adds a row of design `x` and target `r` to the normal equations' lower triangle `a` (row-major,
/// `x.len()` square) and right side `b`.
pub(super) fn accumulate(a: &mut [f64], b: &mut [f64], x: &[f64], r: f64) {
    let n = x.len();
    for p in 0..n {
        b[p] += r * x[p];
        for q in 0..=p {
            a[p * n + q] += x[p] * x[q];
        }
    }
}

/// Solves `A x = b` in place (`x` into `b`) for a symmetric positive definite `A` of which the
/// lower triangle of the row-major `k × k` slice is read (and overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) {
    cholesky_factor(a, k);
    solve_lower(a, b, k);
    solve_upper(a, b, k);
}

/// Overwrites the lower triangle of the row-major `k × k` symmetric positive definite `a` with
/// `L`, where `a = L Lᵀ`.
pub(super) fn cholesky_factor(a: &mut [f64], k: usize) {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
}

/// Solves `L x = b` in place for the factor `L` in `a`'s lower triangle.
pub(super) fn solve_lower(a: &[f64], b: &mut [f64], k: usize) {
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i * k + p] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
}

/// Solves `Lᵀ x = b` in place for the factor `L` in `a`'s lower triangle.
pub(super) fn solve_upper(a: &[f64], b: &mut [f64], k: usize) {
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= a[p * k + i] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
}

/// The starting value of table entry `j`: uniform in ±[`START`], from a fixed hash.
pub(super) fn start(j: usize) -> f64 {
    START * (fitrank::hash::unit(splitmix64(j as u64)) * 2.0 - 1.0)
}

/// The fold of row `i`: a fixed hash of its position, so the folds are the same on every machine.
fn fold_of(i: usize) -> usize {
    (splitmix64(i as u64 ^ 0x5bd1_e995) % FOLDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `users` users and `hosts` hosts in two taste groups (by parity); a user views a host of
    /// its own group 80% of the time and of the other 10%. Every user meets every host once.
    fn tastes(users: u32, hosts: u32) -> (Vec<Option<[u32; 2]>>, Vec<bool>) {
        let mut pairs = Vec::new();
        let mut y = Vec::new();
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for u in 0..users {
            for h in 0..hosts {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let p = if u % 2 == h % 2 { 0.8 } else { 0.1 };
                pairs.push(Some([u, 64 + h]));
                y.push(((s >> 11) as f64 / (1u64 << 53) as f64) < p);
            }
        }
        (pairs, y)
    }

    /// The scores of held-out rows separate the groups: factors learned on the other folds know
    /// which hosts a user's kind of user views.
    #[test]
    fn out_of_fold_scores_find_who_engages_with_whom() {
        let (pairs, y) = tastes(40, 30);
        let spec = Spec { slots: 128, dims: 4, alpha: 1.0, samples: 0 };
        let oof = out_of_fold(&spec, &pairs, &y).unwrap();
        let auc = crate::train::metrics::auc(&oof.scores, &y);
        assert!(auc > 0.8, "out-of-fold AUC {auc}");
        let (same, other): (Vec<_>, Vec<_>) =
            pairs.iter().zip(&oof.scores).partition(|(p, _)| p.is_some_and(|[u, h]| u % 2 == (h - 64) % 2));
        let mean = |v: &[(&Option<[u32; 2]>, &f64)]| v.iter().map(|(_, s)| **s).sum::<f64>() / v.len() as f64;
        assert!(mean(&same) > 0.2 && mean(&other) < -0.2, "{} vs {}", mean(&same), mean(&other));
        // Slots no row reached stay zero; the same fit twice gives the same bits.
        assert!(oof.tables[40 * 4..64 * 4].iter().all(|v| *v == 0.0));
        assert_eq!(out_of_fold(&spec, &pairs, &y).unwrap(), oof);
    }

    /// The Bayesian factorisation finds the same structure; its tables serve the mean of its
    /// draws (biases included), are the same bits on every run, and leave unreached slots at 0.
    #[test]
    fn sampled_factors_find_who_engages_with_whom() {
        let (pairs, y) = tastes(40, 30);
        let spec = Spec { slots: 128, dims: 2, alpha: 1.0, samples: 4 };
        let oof = out_of_fold(&spec, &pairs, &y).unwrap();
        let auc = crate::train::metrics::auc(&oof.scores, &y);
        assert!(auc > 0.8, "out-of-fold AUC {auc}");
        let k = spec.served_dims();
        assert_eq!((k, oof.tables.len()), (10, 128 * 10));
        assert!(oof.tables[40 * k..64 * k].iter().all(|v| *v == 0.0));
        // A user's slot ends in (b̄_u, 1), a host's in (1, b̄_h).
        assert_eq!((oof.tables[k - 1], oof.tables[64 * k + k - 2]), (1.0, 1.0));
        assert_eq!(out_of_fold(&spec, &pairs, &y).unwrap(), oof);
    }

    /// A row's own label does not reach its score: flipping it leaves the score as it was, for
    /// either way of fitting.
    #[test]
    fn a_row_does_not_score_itself() {
        for samples in [0, 3] {
            let (pairs, mut y) = tastes(12, 10);
            let spec = Spec { slots: 128, dims: 3, alpha: 0.5, samples };
            let before = out_of_fold(&spec, &pairs, &y).unwrap();
            y[37] = !y[37];
            let after = out_of_fold(&spec, &pairs, &y).unwrap();
            assert_eq!(before.scores[37], after.scores[37]);
            assert_ne!(before.tables, after.tables);
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let (pairs, y) = tastes(4, 4);
        let spec = Spec { slots: 128, dims: 2, alpha: 1.0, samples: 0 };
        assert!(out_of_fold(&spec, &pairs, &y[1..]).is_err());
        assert!(out_of_fold(&Spec { alpha: 0.0, ..spec }, &pairs, &y).is_err());
        assert!(out_of_fold(&Spec { alpha: 0.0, samples: 2, ..spec }, &pairs, &y).is_ok());
        assert!(out_of_fold(&Spec { dims: 0, ..spec }, &pairs, &y).is_err());
        assert!(out_of_fold(&Spec { slots: 127, ..spec }, &pairs, &y).is_err());
        // 65 slots per kind: host slot 64 is a user slot.
        assert!(out_of_fold(&Spec { slots: 130, ..spec }, &pairs, &y).is_err());
        assert!(out_of_fold(&spec, &[Some([0, 3])], &[true]).is_err());
    }

    /// Each fold holds about a fifth of the rows, whatever their period.
    #[test]
    fn folds_are_even() {
        let mut n = [0usize; FOLDS];
        for i in 0..10_000 {
            n[fold_of(i)] += 1;
        }
        assert!(n.iter().all(|c| (1_850..2_150).contains(c)), "{n:?}");
        let grid: Vec<usize> = (0..30).map(|h| fold_of(7 * 30 + h)).collect();
        assert!((0..FOLDS).all(|f| grid.contains(&f)), "{grid:?}");
    }

    #[test]
    fn the_user_half_carries_the_weight() {
        assert_eq!(into_head(&[1.0, 2.0, 3.0, 4.0], -0.5), vec![-0.5, -1.0, 3.0, 4.0]);
    }

    proptest! {
        /// The Cholesky solve solves: `A x = b` for `A = α I + Σ v vᵀ`.
        #[test]
        fn cholesky_solves_normal_equations(
            alpha in 0.01f64..10.0,
            vs in proptest::collection::vec(proptest::collection::vec(-3.0f64..3.0, 5), 0..12),
            b in proptest::collection::vec(-3.0f64..3.0, 5),
        ) {
            let k = 5;
            let mut a = vec![0.0; k * k];
            for d in 0..k {
                a[d * k + d] = alpha;
            }
            for v in &vs {
                for p in 0..k {
                    for q in 0..k {
                        a[p * k + q] += v[p] * v[q];
                    }
                }
            }
            let full = a.clone();
            let mut x = b.clone();
            cholesky_solve(&mut a, &mut x, k);
            for p in 0..k {
                let ax: f64 = (0..k).map(|q| full[p * k + q] * x[q]).sum();
                prop_assert!((ax - b[p]).abs() < 1e-8 * (1.0 + b[p].abs()) * (1.0 + 1.0 / alpha), "{p}: {ax} vs {}", b[p]);
            }
        }
    }
}
