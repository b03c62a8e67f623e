//! Training: data in, linfa heads fitted, a versioned artifact out.
//!
//! Rows always come from [`fitrank::features::extract`]: the generator ([`generator`]) produces
//! (user, session, stats-before-the-impression, context) tuples, and tables ([`table`]) either carry
//! the served rows of the feature log (`f.*` columns, checked against this schema's hash) or are
//! recomputed from their raw-input columns.

pub mod factors;
pub mod fit;
pub mod generator;
pub mod gibbs;
pub mod metrics;
pub mod ranking;
pub mod solver;
pub mod table;

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array1, Array2, Axis};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use fitrank::domain::{now_ms, rfc3339};
use fitrank::features::{self, FeatureInput, IdentityKeys, NUM_FEATURES};
use fitrank::model::{Heads, LinearHead, Manifest, ModelArtifact, TrainingInfo};

/// A labelled design matrix.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One feature row per impression.
    pub x: Array2<f64>,
    /// Viewed after being shown.
    pub engaged: Array1<bool>,
    /// Bought after being shown.
    pub purchased: Array1<bool>,
    /// Time of each row, ms (0 when unknown).
    pub time_ms: Vec<i64>,
    /// Each row's hashed user and host ids for the identity block (all "no id" when the source
    /// has none).
    pub ids: Vec<IdentityKeys>,
    /// Each row's served ranking, hashed (0 when the source has none): the requests that
    /// `--purchase-objective ranking` fits within.
    pub groups: Vec<u64>,
}

impl Dataset {
    /// Builds the matrix from labelled feature inputs through the shared extractor.
    pub fn from_inputs<'a>(examples: impl ExactSizeIterator<Item = (FeatureInput<'a>, bool, bool)>) -> Self {
        let n = examples.len();
        let mut data = Dataset::with_rows(n);
        let mut row = [0f32; NUM_FEATURES];
        for (i, (input, e, p)) in examples.enumerate() {
            features::extract(&input, &mut row);
            data.set(i, &row, e, p, input.context.time_ms);
        }
        data
    }

    /// An all-zero dataset of `n` rows.
    pub fn with_rows(n: usize) -> Self {
        Dataset {
            x: Array2::zeros((n, NUM_FEATURES)),
            engaged: Array1::from_elem(n, false),
            purchased: Array1::from_elem(n, false),
            time_ms: vec![0; n],
            ids: vec![IdentityKeys::default(); n],
            groups: vec![0; n],
        }
    }

    /// Sets row `i`.
    pub fn set(&mut self, i: usize, row: &[f32; NUM_FEATURES], engaged: bool, purchased: bool, time_ms: i64) {
        for (dst, src) in self.x.row_mut(i).iter_mut().zip(row.iter()) {
            *dst = f64::from(*src);
        }
        self.engaged[i] = engaged;
        self.purchased[i] = purchased;
        self.time_ms[i] = time_ms;
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As a table: `time_ms`, `label_engage`, `label_purchase` and one `f.<feature>` column per
    /// feature (the layout `fitrank train --data` reads), for other tools to train on the same rows.
    pub fn to_table(&self) -> crate::export::Table {
        use crate::export::table::{Column, Values};
        let mut columns = vec![
            Column { name: "time_ms".into(), values: Values::I64(self.time_ms.clone()) },
            Column {
                name: "label_engage".into(),
                values: Values::I64(self.engaged.iter().map(|v| i64::from(*v)).collect()),
            },
            Column {
                name: "label_purchase".into(),
                values: Values::I64(self.purchased.iter().map(|v| i64::from(*v)).collect()),
            },
        ];
        for (j, name) in features::feature_names().iter().enumerate() {
            let values = self.x.column(j).iter().map(|v| *v as f32).collect();
            columns.push(Column { name: format!("f.{name}"), values: Values::F32(values) });
        }
        crate::export::Table { columns }
    }

    /// Sets the columns at `positions` (feature positions, [`feature_positions`]) to 0 in every
    /// row, so that a head fitted on the rows learns no weight for those features
    /// ([`TrainOptions::excluded`]).
    pub fn exclude(&mut self, positions: &[usize]) {
        for &j in positions {
            self.x.column_mut(j).fill(0.0);
        }
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(Axis(0), idx),
            engaged: self.engaged.select(Axis(0), idx),
            purchased: self.purchased.select(Axis(0), idx),
            time_ms: idx.iter().map(|i| self.time_ms[*i]).collect(),
            ids: idx.iter().map(|i| self.ids[*i]).collect(),
            groups: idx.iter().map(|i| self.groups[*i]).collect(),
        }
    }
}

/// What `--exclude-features declared` leaves out: every feature that reads the seller's declared
/// target directly (its fit, the fit per category, the share of viewers inside it), so that a
/// declaration reaches the model only through the targeting credit its buyers confirm
/// (`live.targeting_credit`; docs/decisions/0017).
pub const DECLARED_TARGET_FEATURES: [&str; 3] = ["fit.*", "x.fit&category=*", "live.on_target_view_share"];

/// The positions of the features `patterns` name: a feature's name, a prefix ending in `*`
/// (`x.fit&category=*`), or `declared` for [`DECLARED_TARGET_FEATURES`]. A pattern that names no
/// feature is an error, so a typo cannot leave a feature in.
pub fn feature_positions(patterns: &[String]) -> Result<Vec<usize>, TrainError> {
    let names = features::feature_names();
    let mut positions = Vec::new();
    let patterns = patterns.iter().map(|p| p.trim()).flat_map(|p| match p {
        "declared" => DECLARED_TARGET_FEATURES.to_vec(),
        "" => vec![],
        p => vec![p],
    });
    for pattern in patterns {
        let matches = |name: &String| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        };
        let before = positions.len();
        positions.extend(names.iter().enumerate().filter(|(_, n)| matches(n)).map(|(j, _)| j));
        if positions.len() == before {
            return Err(TrainError::Data(format!("--exclude-features: {pattern} names no feature of the schema")));
        }
    }
    positions.sort_unstable();
    positions.dedup();
    Ok(positions)
}

/// How rows are split into train, validation and test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// By time: the last `test` share is the test set, the `validation` share before it validates.
    Time { validation: f64, test: f64 },
    /// Shuffled by `seed`.
    Random { seed: u64, validation: f64, test: f64 },
}

impl Split {
    /// (train, validation, test) row indexes of `data`.
    pub fn indexes(&self, data: &Dataset) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let n = data.len();
        let mut order: Vec<usize> = (0..n).collect();
        let (validation, test) = match *self {
            Split::Time { validation, test } => {
                order.sort_by_key(|i| data.time_ms[*i]);
                (validation, test)
            }
            Split::Random { seed, validation, test } => {
                order.shuffle(&mut StdRng::seed_from_u64(seed));
                (validation, test)
            }
        };
        let n_test = ((n as f64) * test).round() as usize;
        let n_valid = ((n as f64) * validation).round() as usize;
        let n_train = n.saturating_sub(n_test + n_valid);
        let test_idx = order.split_off(n_train + n_valid);
        let valid_idx = order.split_off(n_train);
        (order, valid_idx, test_idx)
    }
}

/// Describes the test rows a model's metrics come from.
fn held_out(data: &Dataset, test_idx: &[usize], split: &Split, source: &str) -> fitrank::model::MetricsData {
    let part = match *split {
        Split::Time { test, .. } => format!("the latest {:.0}% by time", test * 100.0),
        Split::Random { seed, test, .. } => format!("a random {:.0}% (seed {seed})", test * 100.0),
    };
    let times = test_idx.iter().map(|i| data.time_ms[*i]).filter(|t| *t > 0);
    fitrank::model::MetricsData {
        source: format!("{part} of {source}, held out"),
        rows: test_idx.len() as u64,
        from_ms: times.clone().min().unwrap_or(0),
        to_ms: times.max().unwrap_or(0),
    }
}

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub name: String,
    pub version: String,
    /// L2 strengths to try; the one with the best validation log loss wins, per head. With one
    /// value no validation split is needed.
    pub alphas: Vec<f64>,
    pub max_iterations: u64,
    /// Which optimiser fits the heads.
    pub solver: fit::Solver,
    pub split: Split,
    /// Where the data came from (recorded in the manifest).
    pub source: String,
    pub seed: u64,
    /// Slots per kind of the identity block (hashed user and host ids); 0 for none.
    pub identity_buckets: u32,
    /// Latent factors per identity slot (the user × host term, sparse solver only); 0 for none.
    pub factor_dims: u32,
    /// L2 strength on the latent factors (their own: the weights' alpha is chosen on validation).
    pub factor_alpha: f64,
    /// Posterior draws of Bayesian factors (Gibbs sampling, `gibbs`); 0 for alternating least
    /// squares with `factor_alpha`.
    pub factor_samples: u32,
    /// What the purchase head is fitted for.
    pub purchase_objective: PurchaseObjective,
    /// Feature positions the heads are fitted without ([`feature_positions`]): the data's
    /// columns must be 0 there ([`Dataset::exclude`]), the heads' weights are 0, and the
    /// manifest names them.
    pub excluded: Vec<usize>,
}

/// What the purchase head is fitted for (`fitrank train --purchase-objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PurchaseObjective {
    /// Log loss over every shown row.
    #[default]
    Pointwise,
    /// The order of sessions within each served ranking, then calibrated ([`ranking`]).
    Ranking,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("could not fit the {head} head: {message}")]
    Fit { head: &'static str, message: String },
    #[error("training data unusable: {0}")]
    Data(String),
    #[error(transparent)]
    Table(#[from] crate::export::TableError),
}

/// Default L2 strength on the latent factors (`TrainOptions::factor_alpha`).
pub const DEFAULT_FACTOR_ALPHA: f64 = 5.0;

/// The best head for one label: one fit per alpha (`fit_one`, which also returns the L-BFGS
/// iterations when it knows them), the lowest validation log loss wins. Returns the head, its
/// alpha and its validation log loss (0 with a single alpha).
fn best_head(
    name: &str,
    fit_one: impl Fn(f64) -> Result<(LinearHead, Option<u64>), TrainError>,
    valid: &Dataset,
    y_valid: &Array1<bool>,
    opts: &TrainOptions,
) -> Result<(LinearHead, f64, f64), TrainError> {
    let mut chosen: Option<(f64, f64, LinearHead)> = None;
    for (k, &alpha) in opts.alphas.iter().enumerate() {
        let started = Instant::now();
        let (head, iterations) = fit_one(alpha)?;
        let loss = if opts.alphas.len() > 1 {
            let p = fit::predict(&head, valid.x.view(), &valid.ids);
            metrics::log_loss(&p, y_valid.as_slice().expect("contiguous"))
        } else {
            0.0
        };
        eprintln!(
            "  {name} head [{}/{}], alpha {alpha}: {:.1}s{}{}",
            k + 1,
            opts.alphas.len(),
            started.elapsed().as_secs_f64(),
            iterations.map(|i| format!(", {i} iterations")).unwrap_or_default(),
            if opts.alphas.len() > 1 { format!(", validation log loss {loss:.5}") } else { String::new() }
        );
        if chosen.as_ref().is_none_or(|(l, _, _)| loss < *l) {
            chosen = Some((loss, alpha, head));
        }
    }
    let (loss, alpha, head) = chosen.ok_or_else(|| TrainError::Data("no alpha to try".into()))?;
    Ok((head, alpha, loss))
}

/// [`best_head`] of a pointwise head of label `y` on design `x`.
fn best_pointwise_head(
    name: &'static str,
    x: &fit::Design,
    y: &Array1<bool>,
    valid: &Dataset,
    y_valid: &Array1<bool>,
    opts: &TrainOptions,
) -> Result<(LinearHead, f64, f64), TrainError> {
    let x = &*x.for_label(y.view())?;
    best_head(name, |alpha| fit::fit_head_counted(name, x, y.view(), alpha, opts.max_iterations), valid, y_valid, opts)
}

/// The fitted heads of one run with their held-out metrics, trained on the rows `train_idx` of
/// `data` (read straight into the solver's layout: no dense copy of the split). The two heads are
/// independent fits over the same rows, so they run on two threads.
fn fit_heads(
    data: &Dataset,
    train_idx: &[usize],
    valid: &Dataset,
    opts: &TrainOptions,
    metrics: &mut BTreeMap<String, f64>,
    hyper: &mut BTreeMap<String, f64>,
) -> Result<Heads, TrainError> {
    let identity = fit::Identity {
        keys: &data.ids,
        buckets: opts.identity_buckets,
        factor_dims: opts.factor_dims,
        factor_alpha: opts.factor_alpha,
        factor_samples: opts.factor_samples,
    };
    let x = fit::design_rows(data.x.view(), train_idx, opts.solver, Some(identity))?;
    let (engaged, purchased) = (data.engaged.select(Axis(0), train_idx), data.purchased.select(Axis(0), train_idx));
    let (engage, purchase) = std::thread::scope(|scope| {
        let engage = scope.spawn(|| best_pointwise_head("engage", &x, &engaged, valid, &valid.engaged, opts));
        let purchase = match opts.purchase_objective {
            PurchaseObjective::Pointwise => {
                best_pointwise_head("purchase", &x, &purchased, valid, &valid.purchased, opts)
            }
            PurchaseObjective::Ranking => {
                let fit_one = |alpha| Ok((ranking::fit_head(data, train_idx, alpha, opts.max_iterations)?, None));
                best_head("purchase (ranking)", fit_one, valid, &valid.purchased, opts)
            }
        };
        (engage.join().expect("engage head thread panicked"), purchase)
    });
    let mut heads = Vec::with_capacity(2);
    for (name, result) in [("engage", engage), ("purchase", purchase)] {
        let (head, alpha, loss) = result?;
        hyper.insert(format!("{name}_alpha"), alpha);
        if opts.alphas.len() > 1 {
            metrics.insert(format!("{name}_validation_logloss"), loss);
        }
        heads.push(head);
    }
    let purchase = heads.pop().expect("two heads");
    let engage = heads.pop().expect("two heads");
    Ok(Heads { engage, purchase })
}

/// Latent factors per slot tried by [`train_choosing_identity`].
pub const AUTO_FACTOR_DIMS: u32 = 8;

/// One identity setting [`train_choosing_identity`] tried, and its purchase head's log loss on
/// the validation split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentityTrial {
    pub buckets: u32,
    pub factor_dims: u32,
    pub validation_logloss: f64,
}

/// Slots per kind for `data`: four per distinct user id, a power of two from 1,024 to the maximum.
pub fn auto_buckets(data: &Dataset) -> u32 {
    let users: std::collections::HashSet<u64> = data.ids.iter().map(|k| k.user).collect();
    let wanted = (4 * users.len() as u64).next_power_of_two();
    wanted.clamp(1024, u64::from(features::identity::MAX_BUCKETS)) as u32
}

/// Trains without the identity block, with it ([`auto_buckets`] slots), and with it and
/// [`AUTO_FACTOR_DIMS`] latent factors (sparse solver), each on the same split, and keeps the model
/// whose purchase head has the lowest log loss on the validation split, which is the latest
/// rows under the time split: ids earn their place only where they predict what came after.
/// Without validation rows, or when no row carries an id, trains without the block. Returns every
/// trial with the model.
pub fn train_choosing_identity(
    data: &Dataset,
    opts: &TrainOptions,
) -> Result<(ModelArtifact, Vec<IdentityTrial>), TrainError> {
    let without = TrainOptions { identity_buckets: 0, factor_dims: 0, ..opts.clone() };
    let (_, valid_idx, _) = opts.split.indexes(data);
    let has_ids = data.ids.iter().any(|k| *k != IdentityKeys::default());
    if valid_idx.is_empty() || !has_ids {
        return Ok((train(data, &without)?, Vec::new()));
    }
    let valid = data.select(&valid_idx);
    let y = valid.purchased.as_slice().expect("contiguous");
    let buckets = auto_buckets(data);
    let mut candidates = vec![(0, 0), (buckets, 0)];
    if opts.solver == fit::Solver::Sparse {
        candidates.push((buckets, AUTO_FACTOR_DIMS));
    }
    let mut best: Option<(ModelArtifact, f64)> = None;
    let mut trials = Vec::with_capacity(candidates.len());
    for (buckets, factor_dims) in candidates {
        let trial_opts = TrainOptions { identity_buckets: buckets, factor_dims, ..opts.clone() };
        let artifact = train(data, &trial_opts)?;
        let p = fit::predict(&artifact.heads.purchase, valid.x.view(), &valid.ids);
        let loss = metrics::log_loss(&p, y);
        eprintln!("  identity buckets {buckets}, factor dimensions {factor_dims}: validation log loss {loss:.5}");
        trials.push(IdentityTrial { buckets, factor_dims, validation_logloss: loss });
        if best.as_ref().is_none_or(|(_, l)| loss < *l) {
            best = Some((artifact, loss));
        }
    }
    let (artifact, _) = best.expect("at least one candidate");
    Ok((artifact, trials))
}

/// Values per identity slot a model trained with `opts` serves: its factors, or its draws.
fn served_factor_dims(opts: &TrainOptions) -> u32 {
    let dims = factors::served_dims(opts.factor_dims as usize, opts.factor_samples as usize);
    u32::try_from(dims).unwrap_or(u32::MAX)
}

/// Splits `data`, fits both heads (choosing alpha on validation when several are given), measures
/// them on the test split, and returns the artifact.
pub fn train(data: &Dataset, opts: &TrainOptions) -> Result<ModelArtifact, TrainError> {
    let (train_idx, valid_idx, test_idx) = opts.split.indexes(data);
    if train_idx.len() < 100 || test_idx.is_empty() {
        return Err(TrainError::Data(format!(
            "{} rows give {} training and {} test rows; need at least 100 and 1",
            data.len(),
            train_idx.len(),
            test_idx.len()
        )));
    }
    if opts.identity_buckets > features::identity::MAX_BUCKETS {
        return Err(TrainError::Data(format!(
            "{} identity buckets per kind; at most {}",
            opts.identity_buckets,
            features::identity::MAX_BUCKETS
        )));
    }
    if opts.factor_dims > features::identity::MAX_FACTOR_DIMS
        || (opts.factor_dims > 0 && (opts.identity_buckets == 0 || opts.solver != fit::Solver::Sparse))
    {
        return Err(TrainError::Data(format!(
            "{} factor dimensions: at most {}, and only with identity buckets and the sparse solver",
            opts.factor_dims,
            features::identity::MAX_FACTOR_DIMS
        )));
    }
    if served_factor_dims(opts) > features::identity::MAX_FACTOR_DIMS {
        return Err(TrainError::Data(format!(
            "{} draws of {} factor dimensions serve {} values per slot; at most {}",
            opts.factor_samples,
            opts.factor_dims,
            served_factor_dims(opts),
            features::identity::MAX_FACTOR_DIMS
        )));
    }
    if opts.factor_dims > 0 && opts.factor_samples == 0 && !(opts.factor_alpha.is_finite() && opts.factor_alpha > 0.0) {
        return Err(TrainError::Data(format!("factor alpha {}: must be finite and positive", opts.factor_alpha)));
    }
    if opts.alphas.len() > 1 && valid_idx.is_empty() {
        return Err(TrainError::Data("several alphas need a validation split".into()));
    }
    if opts.purchase_objective == PurchaseObjective::Ranking && opts.identity_buckets > 0 {
        return Err(TrainError::Data("the ranking objective fits no identity block: give --identity-buckets 0".into()));
    }
    if let Some(&j) = opts.excluded.iter().find(|&&j| data.x.column(j).iter().any(|v| *v != 0.0)) {
        return Err(TrainError::Data(format!(
            "{} is excluded but has values in the rows: zero its column first (Dataset::exclude)",
            features::feature_names()[j]
        )));
    }
    let (valid_set, test_set) = (data.select(&valid_idx), data.select(&test_idx));

    let mut metrics = BTreeMap::new();
    let mut hyper = BTreeMap::from([
        ("max_iterations".to_owned(), opts.max_iterations as f64),
        (
            "factor_alpha".to_owned(),
            if opts.factor_dims > 0 && opts.factor_samples == 0 { opts.factor_alpha } else { 0.0 },
        ),
        ("factor_samples".to_owned(), if opts.factor_dims > 0 { f64::from(opts.factor_samples) } else { 0.0 }),
        ("train_rows".to_owned(), train_idx.len() as f64),
        ("validation_rows".to_owned(), valid_idx.len() as f64),
    ]);
    if opts.purchase_objective == PurchaseObjective::Ranking {
        hyper.insert("purchase_objective_ranking".to_owned(), 1.0);
    }
    let started = Instant::now();
    let mut heads = fit_heads(data, &train_idx, &valid_set, opts, &mut metrics, &mut hyper)?;
    for head in [&mut heads.engage, &mut heads.purchase] {
        // A zero column gets no gradient but its L2 term, so the fit leaves it at 0 already; this
        // makes it exact whatever the solver did.
        for &j in &opts.excluded {
            head.weights[j] = 0.0;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "fitted both heads in {seconds:.1}s: {:.0} training rows/s",
        train_idx.len() as f64 * opts.alphas.len() as f64 / seconds
    );

    for (name, head, y) in
        [("engage", &heads.engage, &test_set.engaged), ("purchase", &heads.purchase, &test_set.purchased)]
    {
        let p = fit::predict(head, test_set.x.view(), &test_set.ids);
        let y = y.as_slice().expect("contiguous");
        metrics.insert(format!("{name}_auc"), metrics::auc(&p, y));
        metrics.insert(format!("{name}_logloss"), metrics::log_loss(&p, y));
        metrics.insert(format!("{name}_base_rate"), y.iter().filter(|v| **v).count() as f64 / y.len() as f64);
    }
    metrics.insert("holdout_rows".into(), test_idx.len() as f64);
    let metrics_data = held_out(data, &test_idx, &opts.split, &opts.source);

    let known_times = data.time_ms.iter().filter(|t| **t > 0);
    let manifest = Manifest {
        format: fitrank::model::ARTIFACT_FORMAT,
        name: opts.name.clone(),
        version: opts.version.clone(),
        created_at: rfc3339(now_ms()),
        code_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_hash: features::schema_hash().to_owned(),
        feature_names: features::feature_names().to_vec(),
        training: TrainingInfo {
            source: opts.source.clone(),
            seed: opts.seed,
            rows: data.len() as u64,
            data_from_ms: known_times.clone().min().copied().unwrap_or(0),
            data_to_ms: known_times.max().copied().unwrap_or(0),
        },
        hyperparameters: hyper,
        metrics,
        metrics_data: Some(metrics_data),
        identity_buckets: opts.identity_buckets,
        factor_dims: served_factor_dims(opts),
        excluded_features: opts.excluded.iter().map(|&j| features::feature_names()[j].clone()).collect(),
    };
    Ok(ModelArtifact { manifest, heads })
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    fn options() -> TrainOptions {
        TrainOptions {
            name: "t".into(),
            version: "20000101-000000".into(),
            alphas: vec![1.0],
            max_iterations: 100,
            solver: fit::Solver::Sparse,
            split: Split::Time { validation: 0.2, test: 0.2 },
            source: "test".into(),
            seed: 1,
            identity_buckets: 0,
            factor_dims: 0,
            factor_alpha: DEFAULT_FACTOR_ALPHA,
            factor_samples: 0,
            purchase_objective: PurchaseObjective::Pointwise,
            excluded: vec![],
        }
    }

    /// Rows alike in every feature; a quarter of the hosts sell to 30% of impressions, the rest
    /// to 2%. With `ids`, the rows name their user and host.
    fn hosts_that_sell(ids: bool) -> Dataset {
        let n = 4_000;
        let mut data = Dataset::with_rows(n);
        let mut rng = StdRng::seed_from_u64(9);
        for i in 0..n {
            let host = rng.gen_range(0..40u32);
            let bought = rng.gen_bool(if host < 10 { 0.3 } else { 0.02 });
            data.set(i, &[0.0; NUM_FEATURES], bought, bought, i as i64);
            if ids {
                data.ids[i] = IdentityKeys::of(&format!("u{}", i % 300), &format!("h{host}"));
            }
        }
        data
    }

    #[test]
    fn the_identity_block_is_kept_where_the_validation_split_rewards_it() {
        let (artifact, trials) = train_choosing_identity(&hosts_that_sell(true), &options()).unwrap();
        assert_eq!(trials.len(), 3, "{trials:?}");
        assert_eq!(trials[1].buckets, 2048, "four slots per user, a power of two");
        let best = trials.iter().map(|t| t.validation_logloss).fold(f64::INFINITY, f64::min);
        assert!(trials[0].validation_logloss > best + 0.01, "{trials:?}");
        assert!(artifact.manifest.identity_buckets > 0);

        let (artifact, trials) = train_choosing_identity(&hosts_that_sell(false), &options()).unwrap();
        assert!(trials.is_empty(), "no ids, nothing to choose");
        assert_eq!(artifact.manifest.identity_buckets, 0);
    }

    #[test]
    fn the_ranking_objective_fits_within_served_rankings_and_says_so() {
        use crate::train::generator::{GeneratorConfig, generate};
        let mut data = generate(GeneratorConfig { users: 300, sessions: 40, impressions: 6_000, seed: 4 });
        // Rankings of five consecutive rows.
        for (i, g) in data.groups.iter_mut().enumerate() {
            *g = i as u64 / 5 + 1;
        }
        let opts = TrainOptions { purchase_objective: PurchaseObjective::Ranking, ..options() };
        let artifact = train(&data, &opts).unwrap();
        assert_eq!(artifact.manifest.hyperparameters.get("purchase_objective_ranking"), Some(&1.0));
        assert!(artifact.manifest.metrics["purchase_auc"] > 0.6, "{:?}", artifact.manifest.metrics);
        let with_ids = TrainOptions { identity_buckets: 64, ..opts };
        assert!(train(&data, &with_ids).unwrap_err().to_string().contains("identity"));
        assert!(!train(&data, &options()).unwrap().manifest.hyperparameters.contains_key("purchase_objective_ranking"));
    }

    #[test]
    fn excluded_features_get_no_weight_and_the_manifest_names_them() {
        use crate::train::generator::{GeneratorConfig, generate};
        let mut data = generate(GeneratorConfig { users: 300, sessions: 40, impressions: 6_000, seed: 4 });
        let excluded = feature_positions(&["fit.overall".into(), "x.fit&category=*".into()]).unwrap();
        assert_eq!(excluded.len(), 1 + fitrank::domain::Category::COUNT);
        let opts = TrainOptions { excluded: excluded.clone(), ..options() };
        let err = train(&data, &opts).unwrap_err().to_string();
        assert!(err.contains("x.fit&category=fashion is excluded but has values"), "{err}");

        let fitted = train(&data, &options()).unwrap();
        let overall = excluded[excluded.len() - 1];
        assert_eq!(features::feature_names()[overall], "fit.overall");
        assert_ne!(fitted.heads.purchase.weights[overall], 0.0, "the generator's buyers follow the fit");
        data.exclude(&excluded);
        let artifact = train(&data, &opts).unwrap();
        for head in [&artifact.heads.engage, &artifact.heads.purchase] {
            assert!(excluded.iter().all(|&j| head.weights[j] == 0.0));
        }
        assert_eq!(artifact.manifest.excluded_features[0], "x.fit&category=fashion");
        assert_eq!(artifact.manifest.excluded_features.len(), excluded.len());
        artifact.validate().unwrap();

        let declared = feature_positions(&["declared".into()]).unwrap();
        assert_eq!(declared.len(), 7 + fitrank::domain::Category::COUNT + 1, "fit.*, per category, the view share");
        assert!(excluded.iter().all(|j| declared.contains(j)));
        let err = feature_positions(&["fit.overal".into()]).unwrap_err().to_string();
        assert!(err.contains("fit.overal names no feature"), "{err}");
    }
}
