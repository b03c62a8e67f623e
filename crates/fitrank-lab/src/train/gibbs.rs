//! Bayesian latent factors: a probit factorisation machine over the two identity fields, fitted
//! by Gibbs sampling, its prediction averaged over posterior samples.
//!
//! Alternating least squares ([`super::factors`]) finds one point: the factors that minimise a
//! penalised squared error, with an L2 strength chosen by hand. Here the factors are integrated
//! out instead (Rendle's MCMC factorisation machine, as in libFM and myFM): every slot's bias and
//! factors are drawn from their posterior given the others, the regularisation strengths are
//! themselves drawn from theirs (so no strength is tuned), and the score of a pair is the mean of
//! its prediction over the kept draws. On sparse pairs, where a point estimate overfits the few
//! rows a user has, the average is the better ranker.
//!
//! # The model
//!
//! `z = w₀ + b_u + b_h + E_u·E_h + ε`, `ε ~ N(0, 1)`, and the label is `z > 0` (probit). A slot's
//! effective factors `E = F + T` add to its own factors `F` an *implicit* term `T` made of whom it
//! met (SVD++'s idea, on both sides): `T_u = Σ_{rows of u} Y_h / √n_u` over the hosts of the
//! user's `n_u` rows, and `T_h = Σ_{rows of h} Y_u / √n_h`, where `Y` are each slot's implicit
//! factors. A user with few labels is then placed by the hosts they were shown, whatever they did
//! there. Within each kind of slot (users, hosts) every coordinate `j` of `(b, F)`, and of `Y`,
//! has the prior `N(μ_j, 1/λ_j)` with `μ_j ~ N(0, 1/λ_j)` and `λ_j ~ Gamma(1, 1)`.
//!
//! # One sweep
//!
//! 1. Each row's latent `z` from `N(prediction, 1)` truncated to the side of 0 its label says.
//! 2. `w₀` from its Gaussian conditional.
//! 3. Every user slot's `(b, F)` jointly from its Gaussian conditional (the hosts fixed: a
//!    `(dims + 1)`-square Cholesky per slot), then every host slot's.
//! 4. Every host's `Y` (the users' implicit terms move with it), then every user's.
//! 5. Each kind's `μ_j, λ_j` from their Normal–Gamma conditional.
//!
//! After [`BURN_IN`] sweeps, every [`THIN`]-th sweep is kept, `samples` in all.
//!
//! # As served tables
//!
//! Serving adds the dot product of the user's and the host's slot values. A user's slot holds its
//! `S` draws of `E_u / S` side by side, then its mean bias `b̄_u` and 1; a host's its draws of
//! `E_h`, then 1 and `b̄_h`. The dot product is `(1/S) Σ_s E_u·E_h + b̄_u + b̄_h`: the posterior
//! mean prediction, without `w₀`, which the head's intercept absorbs. A slot no row reached keeps
//! zeros and adds 0.

use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Gamma, StandardNormal};

use super::factors::{Spec, accumulate, cholesky_factor, solve_lower, solve_upper, start};

/// Sweeps before the first kept draw.
pub const BURN_IN: usize = 100;
/// Sweeps between kept draws.
pub const THIN: usize = 5;

/// Values per slot in the served tables of `samples` draws of `dims` factors.
pub fn served_dims(dims: usize, samples: usize) -> usize {
    samples * dims + 2
}

/// The Normal–Gamma hyperprior's parameters (libFM's defaults): `λ ~ Gamma(ALPHA0, rate BETA0)`,
/// `μ ~ N(0, 1/(GAMMA0 λ))`.
const ALPHA0: f64 = 1.0;
const BETA0: f64 = 1.0;
const GAMMA0: f64 = 1.0;
/// Prior precision of the global offset `w₀`.
const W0_PRECISION: f64 = 1e-2;

/// One kind of slot (users, or hosts) in the chain.
struct Side {
    /// Its slots' rows: (slot, row number), grouped by slot.
    rows: Vec<(u32, usize)>,
    /// Who its slots met: (the other kind's slot, this kind's slot, that slot's coefficient
    /// `count / √n` in this slot's implicit term), grouped by the other kind's slot.
    met: Vec<(u32, u32, f64)>,
    /// Prior mean and precision of each coordinate of `(b, F)`, then of `Y`.
    mu: Vec<f64>,
    lambda: Vec<f64>,
    implicit_mu: Vec<f64>,
    implicit_lambda: Vec<f64>,
}

/// The sampler's state. Per slot: `m = dims + 1` values `(b, F)` in `theta`, `dims` implicit
/// factors `Y` and `dims` implicit term `T` (user and host slots are apart, so one table serves
/// both kinds).
struct Chain<'a> {
    spec: &'a Spec,
    /// The rows: (user slot, host slot), label.
    rows: &'a [([u32; 2], bool)],
    sides: [Side; 2],
    theta: Vec<f64>,
    implicit: Vec<f64>,
    term: Vec<f64>,
    w0: f64,
    z: Vec<f64>,
    rng: StdRng,
}

/// Served tables (`slots × served_dims`) of a Bayesian factorisation of `rows`; `seed` fixes the
/// draws, so a fit is the same bits on every machine.
pub fn factorise(spec: &Spec, rows: &[([u32; 2], bool)], seed: u64) -> Vec<f64> {
    let (k, samples) = (spec.dims, spec.samples);
    let width = served_dims(k, samples);
    let mut tables = vec![0.0; spec.slots * width];
    if rows.is_empty() || samples == 0 {
        return tables;
    }
    let mut chain = Chain::new(spec, rows, seed);
    let mut kept = 0;
    for sweep in 0.. {
        chain.sweep();
        if sweep >= BURN_IN && (sweep - BURN_IN).is_multiple_of(THIN) {
            chain.keep(&mut tables, kept);
            kept += 1;
            if kept == samples {
                break;
            }
        }
    }
    tables
}

impl Side {
    fn new(rows: &[([u32; 2], bool)], side: usize, m: usize, k: usize) -> Side {
        let mut own: Vec<(u32, usize)> = rows.iter().enumerate().map(|(i, (pair, _))| (pair[side], i)).collect();
        own.sort_unstable();
        let mut met = Vec::new();
        for group in own.chunk_by(|a, b| a.0 == b.0) {
            let scale = 1.0 / (group.len() as f64).sqrt();
            let mut others: Vec<u32> = group.iter().map(|&(_, i)| rows[i].0[1 - side]).collect();
            others.sort_unstable();
            met.extend(others.chunk_by(|a, b| a == b).map(|same| (same[0], group[0].0, same.len() as f64 * scale)));
        }
        met.sort_unstable_by_key(|&(other, slot, _)| (other, slot));
        Side {
            rows: own,
            met,
            mu: vec![0.0; m],
            lambda: vec![1.0; m],
            implicit_mu: vec![0.0; k],
            implicit_lambda: vec![1.0; k],
        }
    }

    /// The distinct slots of this kind.
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.rows.chunk_by(|a, b| a.0 == b.0).map(|g| g[0].0 as usize)
    }
}

impl<'a> Chain<'a> {
    fn new(spec: &'a Spec, rows: &'a [([u32; 2], bool)], seed: u64) -> Self {
        let (m, k) = (spec.dims + 1, spec.dims);
        let sides = [Side::new(rows, 0, m, k), Side::new(rows, 1, m, k)];
        let mut theta = vec![0.0; spec.slots * m];
        for slot in sides[1].slots() {
            for j in 1..m {
                theta[slot * m + j] = start(slot * k + j - 1);
            }
        }
        Chain {
            spec,
            rows,
            sides,
            theta,
            implicit: vec![0.0; spec.slots * k],
            term: vec![0.0; spec.slots * k],
            w0: 0.0,
            z: vec![0.0; rows.len()],
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A slot's effective factors `F + T`, into `out`.
    fn effective(&self, slot: usize, out: &mut [f64]) {
        let (m, k) = (self.spec.dims + 1, self.spec.dims);
        let (f, t) = (&self.theta[slot * m + 1..][..k], &self.term[slot * k..][..k]);
        for ((o, f), t) in out.iter_mut().zip(f).zip(t) {
            *o = f + t;
        }
    }

    /// `b_u + b_h + E_u·E_h` of a pair.
    fn pair(&self, [u, h]: [u32; 2]) -> f64 {
        let (m, k) = (self.spec.dims + 1, self.spec.dims);
        let (u, h) = (u as usize, h as usize);
        let dot: f64 = (0..k)
            .map(|j| {
                (self.theta[u * m + 1 + j] + self.term[u * k + j]) * (self.theta[h * m + 1 + j] + self.term[h * k + j])
            })
            .sum();
        self.theta[u * m] + self.theta[h * m] + dot
    }

    fn sweep(&mut self) {
        self.sample_latent_and_offset();
        for side in 0..2 {
            self.sample_side(side);
        }
        // Hosts' Y move users' implicit terms (side 0), then users' Y move hosts' (side 1).
        for side in 0..2 {
            self.sample_implicit(side);
        }
        for side in 0..2 {
            self.sample_hyper(side);
        }
    }

    /// Steps 1 and 2: each row's `z`, then `w₀` given them.
    fn sample_latent_and_offset(&mut self) {
        let mut residual = 0.0;
        for i in 0..self.rows.len() {
            let (pair, y) = self.rows[i];
            let rest = self.pair(pair);
            let mean = self.w0 + rest;
            let z = if y { mean + above(&mut self.rng, -mean) } else { mean - above(&mut self.rng, mean) };
            self.z[i] = z;
            residual += z - rest;
        }
        let precision = self.rows.len() as f64 + W0_PRECISION;
        self.w0 = residual / precision + normal(&mut self.rng) / precision.sqrt();
    }

    /// Step 3 for one kind: every slot's `(b, F)` given the rest. A row's design is
    /// `(1, E_other)`; its target `z − w₀ − b_other − T_own·E_other`.
    fn sample_side(&mut self, side: usize) {
        let (m, k) = (self.spec.dims + 1, self.spec.dims);
        let mut a = vec![0.0; m * m];
        let mut b = vec![0.0; m];
        let mut x = vec![0.0; m];
        let list = std::mem::take(&mut self.sides[side].rows);
        for group in list.chunk_by(|p, q| p.0 == q.0) {
            let own = group[0].0 as usize;
            for j in 0..m {
                a[j * m..(j + 1) * m].fill(0.0);
                a[j * m + j] = self.sides[side].lambda[j];
                b[j] = self.sides[side].lambda[j] * self.sides[side].mu[j];
            }
            let term = &self.term[own * k..own * k + k];
            for &(_, i) in group {
                let other = self.rows[i].0[1 - side] as usize;
                x[0] = 1.0;
                self.effective(other, &mut x[1..]);
                let r = self.z[i] - self.w0 - self.theta[other * m] - dot(term, &x[1..]);
                accumulate(&mut a, &mut b, &x, r);
            }
            gaussian_draw(&mut self.rng, &mut a, &mut b, m);
            self.theta[own * m..own * m + m].copy_from_slice(&b);
        }
        self.sides[side].rows = list;
    }

    /// Step 4 for the implicit terms of one kind (`side`): every implicit factor `Y` of the other
    /// kind given the rest. A slot `o` of this kind sees `Y` through `T_o` with coefficient `c`;
    /// with `S_o = Σ E E_ᵀ` and `e_o = Σ E (z − prediction)` over its rows (`E` the other end's
    /// effective factors), the conditional has precision `Λ + Σ c² S_o` and mean times precision
    /// `Λμ + Σ c (e_o + c S_o Y)`. Each draw moves the `T_o` and `e_o` of the slots that met it.
    fn sample_implicit(&mut self, side: usize) {
        let k = self.spec.dims;
        let (gram, mut error) = self.gram_and_error(side);
        let (mut a, mut b, mut old, mut delta) = (vec![0.0; k * k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let met = std::mem::take(&mut self.sides[side].met);
        for group in met.chunk_by(|p, q| p.0 == q.0) {
            let source = group[0].0 as usize;
            old.copy_from_slice(&self.implicit[source * k..source * k + k]);
            let prior = &self.sides[1 - side];
            for j in 0..k {
                a[j * k..(j + 1) * k].fill(0.0);
                a[j * k + j] = prior.implicit_lambda[j];
                b[j] = prior.implicit_lambda[j] * prior.implicit_mu[j];
            }
            for &(_, owner, c) in group {
                let (s, e) = (&gram[&owner], &error[&owner]);
                for p in 0..k {
                    b[p] += c * (e[p] + c * dot(&s[p * k..p * k + k], &old));
                    for q in 0..=p {
                        a[p * k + q] += c * c * s[p * k + q];
                    }
                }
            }
            gaussian_draw(&mut self.rng, &mut a, &mut b, k);
            self.implicit[source * k..source * k + k].copy_from_slice(&b);
            for &(_, owner, c) in group {
                for p in 0..k {
                    delta[p] = c * (b[p] - old[p]);
                }
                let s = &gram[&owner];
                let e = error.get_mut(&owner).expect("every owner has its error");
                for p in 0..k {
                    self.term[owner as usize * k + p] += delta[p];
                    e[p] -= dot(&s[p * k..p * k + k], &delta);
                }
            }
        }
        self.sides[side].met = met;
    }

    /// Per slot of kind `side`: `S_o = Σ E Eᵀ` and `e_o = Σ E (z − prediction)` over its rows,
    /// `E` the other end's effective factors.
    fn gram_and_error(&self, side: usize) -> (HashMap<u32, Vec<f64>>, HashMap<u32, Vec<f64>>) {
        let k = self.spec.dims;
        let mut gram = HashMap::new();
        let mut error = HashMap::new();
        let mut f = vec![0.0; k];
        for group in self.sides[side].rows.chunk_by(|a, b| a.0 == b.0) {
            let (mut s, mut e) = (vec![0.0; k * k], vec![0.0; k]);
            for &(_, i) in group {
                let (pair, _) = self.rows[i];
                self.effective(pair[1 - side] as usize, &mut f);
                let r = self.z[i] - self.w0 - self.pair(pair);
                for p in 0..k {
                    e[p] += f[p] * r;
                    for q in 0..k {
                        s[p * k + q] += f[p] * f[q];
                    }
                }
            }
            gram.insert(group[0].0, s);
            error.insert(group[0].0, e);
        }
        (gram, error)
    }

    /// Step 5 for one kind: each coordinate's prior mean and precision given its slots' values.
    fn sample_hyper(&mut self, side: usize) {
        let (m, k) = (self.spec.dims + 1, self.spec.dims);
        let slots: Vec<usize> = self.sides[side].slots().collect();
        for j in 0..m {
            let values: Vec<f64> = slots.iter().map(|s| self.theta[s * m + j]).collect();
            let (mu, lambda) = normal_gamma(&mut self.rng, &values, self.sides[side].mu[j]);
            self.sides[side].mu[j] = mu;
            self.sides[side].lambda[j] = lambda;
        }
        for j in 0..k {
            let values: Vec<f64> = slots.iter().map(|s| self.implicit[s * k + j]).collect();
            let (mu, lambda) = normal_gamma(&mut self.rng, &values, self.sides[side].implicit_mu[j]);
            self.sides[side].implicit_mu[j] = mu;
            self.sides[side].implicit_lambda[j] = lambda;
        }
    }

    /// Adds draw `s` to the served tables (see the module documentation).
    fn keep(&self, tables: &mut [f64], s: usize) {
        let (m, k) = (self.spec.dims + 1, self.spec.dims);
        let width = served_dims(k, self.spec.samples);
        let share = 1.0 / self.spec.samples as f64;
        for (side, kind) in self.sides.iter().enumerate() {
            for slot in kind.slots() {
                let (draws, bias) = tables[slot * width..(slot + 1) * width].split_at_mut(width - 2);
                let draw = &mut draws[s * k..(s + 1) * k];
                self.effective(slot, draw);
                if side == 0 {
                    draw.iter_mut().for_each(|v| *v *= share);
                }
                bias[side] += self.theta[slot * m] * share;
                bias[1 - side] = 1.0;
            }
        }
    }
}

/// Replaces `b` by a draw from `N(P⁻¹ b, P⁻¹)`, `P` the `n × n` lower triangle in `a`
/// (overwritten): with `P = L Lᵀ`, the mean `L⁻ᵀ L⁻¹ b` plus `L⁻ᵀ ε`, whose covariance is
/// `L⁻ᵀ L⁻¹ = P⁻¹`.
fn gaussian_draw(rng: &mut StdRng, a: &mut [f64], b: &mut [f64], n: usize) {
    cholesky_factor(a, n);
    solve_lower(a, b, n);
    for v in b.iter_mut() {
        *v += normal(rng);
    }
    solve_upper(a, b, n);
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A draw of one coordinate's prior `(μ, λ)` from its Normal–Gamma conditional given the slots'
/// `values` and the current `μ`: `λ` first, then `μ` given it.
fn normal_gamma(rng: &mut StdRng, values: &[f64], mu: f64) -> (f64, f64) {
    let n = values.len() as f64;
    let spread: f64 = values.iter().map(|v| (v - mu) * (v - mu)).sum();
    let shape = (ALPHA0 + n + 1.0) / 2.0;
    let rate = (BETA0 + GAMMA0 * mu * mu + spread) / 2.0;
    let lambda = Gamma::new(shape, 1.0 / rate).expect("a positive shape and rate").sample(rng);
    let precision = (n + GAMMA0) * lambda;
    let mu = values.iter().sum::<f64>() / (n + GAMMA0) + normal(rng) / precision.sqrt();
    (mu, lambda)
}

fn normal(rng: &mut StdRng) -> f64 {
    StandardNormal.sample(rng)
}

/// A standard normal draw conditioned on exceeding `a`: plain rejection below 0, Robert's
/// exponential proposal (1995) above, where rejection would rarely accept.
fn above(rng: &mut StdRng, a: f64) -> f64 {
    if a <= 0.0 {
        loop {
            let t = normal(rng);
            if t > a {
                return t;
            }
        }
    }
    let rate = (a + (a * a + 4.0).sqrt()) / 2.0;
    loop {
        let t = a - (1.0 - rng.r#gen::<f64>()).ln() / rate;
        if rng.r#gen::<f64>() <= (-(t - rate) * (t - rate) / 2.0).exp() {
            return t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conditional draw has mean `P⁻¹ b` and covariance `P⁻¹`.
    #[test]
    fn gaussian_draws_have_the_conditional_mean_and_covariance() {
        let mut rng = StdRng::seed_from_u64(5);
        let n = 100_000;
        let (mut sum, mut outer) = ([0.0; 2], [0.0; 4]);
        for _ in 0..n {
            let mut a = [2.0, 0.0, 0.6, 1.0];
            let mut b = [1.0, -0.5];
            gaussian_draw(&mut rng, &mut a, &mut b, 2);
            for p in 0..2 {
                sum[p] += b[p];
                for q in 0..2 {
                    outer[p * 2 + q] += b[p] * b[q];
                }
            }
        }
        // P = [[2, 0.6], [0.6, 1]]: P⁻¹ = [[1, -0.6], [-0.6, 2]] / 1.64.
        let mean = [sum[0] / n as f64, sum[1] / n as f64];
        for (got, want) in mean.iter().zip([1.3 / 1.64, -1.6 / 1.64]) {
            assert!((got - want).abs() < 0.01, "mean {mean:?}");
        }
        let inverse = [1.0 / 1.64, -0.6 / 1.64, -0.6 / 1.64, 2.0 / 1.64];
        for (j, want) in inverse.iter().enumerate() {
            let got = outer[j] / n as f64 - mean[j / 2] * mean[j % 2];
            assert!((got - want).abs() < 0.02, "covariance {j}: {got} against {want}");
        }
    }

    /// The truncated draws have the truncated normal's mean: `φ(a) / (1 − Φ(a))`.
    #[test]
    fn tail_draws_have_the_truncated_mean() {
        let mut rng = StdRng::seed_from_u64(3);
        for (a, expected) in [(-1.0, 0.2876), (0.0, 0.7979), (1.5, 1.9387), (4.0, 4.2256)] {
            let n = 40_000;
            let draws: Vec<f64> = (0..n).map(|_| above(&mut rng, a)).collect();
            assert!(draws.iter().all(|t| *t > a));
            let mean = draws.iter().sum::<f64>() / n as f64;
            assert!((mean - expected).abs() < 0.02, "a = {a}: mean {mean}, expected {expected}");
        }
    }
}
