//! Training: data in, linfa heads fitted, a versioned artifact out.
//!
//! Rows always come from [`crate::features::extract`]; the generator ([`generator`]) produces
//! (user, session, stats-before-the-impression, context) tuples and outcomes, and never builds
//! feature values itself.

pub mod fit;
pub mod generator;
pub mod metrics;

use std::collections::BTreeMap;

use ndarray::{Array1, Array2};

use crate::domain::{now_ms, rfc3339};
use crate::features::{self, FeatureInput, NUM_FEATURES};
use crate::model::{Manifest, ModelArtifact, TrainingInfo};

/// A labelled design matrix.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One feature row per impression.
    pub x: Array2<f64>,
    /// Viewed after being shown.
    pub engaged: Array1<bool>,
    /// Bought after being shown.
    pub purchased: Array1<bool>,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Dataset {
    /// Builds the matrix from labelled feature inputs through the shared extractor.
    pub fn from_inputs<'a>(examples: impl ExactSizeIterator<Item = (FeatureInput<'a>, bool, bool)>) -> Self {
        let n = examples.len();
        let mut x = Array2::<f64>::zeros((n, NUM_FEATURES));
        let mut engaged = Array1::from_elem(n, false);
        let mut purchased = Array1::from_elem(n, false);
        let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);
        let mut row = [0f32; NUM_FEATURES];
        for (i, (input, e, p)) in examples.enumerate() {
            features::extract(&input, &mut row);
            for (dst, src) in x.row_mut(i).iter_mut().zip(row.iter()) {
                *dst = f64::from(*src);
            }
            engaged[i] = e;
            purchased[i] = p;
            first_ms = first_ms.min(input.context.time_ms);
            last_ms = last_ms.max(input.context.time_ms);
        }
        if n == 0 {
            (first_ms, last_ms) = (0, 0);
        }
        Dataset { x, engaged, purchased, first_ms, last_ms }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub name: String,
    pub version: String,
    /// L2 regularisation strength.
    pub alpha: f64,
    pub max_iterations: u64,
    /// Share of rows held out for metrics (the last rows in time order).
    pub holdout: f64,
    pub source: String,
    pub seed: u64,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("linfa could not fit the {head} head: {source}")]
    Fit { head: &'static str, source: linfa_logistic::error::Error },
    #[error("training data unusable: {0}")]
    Data(String),
}

/// Fits both heads on the first `1 - holdout` of `data` (time order), measures them on the rest,
/// and returns the artifact.
pub fn train(data: &Dataset, opts: &TrainOptions) -> Result<ModelArtifact, TrainError> {
    let n = data.len();
    let n_train = ((n as f64) * (1.0 - opts.holdout)).round() as usize;
    if n_train < 100 || n_train >= n {
        return Err(TrainError::Data(format!("{n} rows are too few for a {} holdout", opts.holdout)));
    }
    let (x_train, x_test) = data.x.view().split_at(ndarray::Axis(0), n_train);
    let split =
        |y: &Array1<bool>| (y.slice(ndarray::s![..n_train]).to_owned(), y.slice(ndarray::s![n_train..]).to_owned());
    let (e_train, e_test) = split(&data.engaged);
    let (p_train, p_test) = split(&data.purchased);

    let engage = fit::fit_head("engage", x_train, e_train.view(), opts.alpha, opts.max_iterations)?;
    let purchase = fit::fit_head("purchase", x_train, p_train.view(), opts.alpha, opts.max_iterations)?;

    let mut metrics = BTreeMap::new();
    for (name, head, y) in [("engage", &engage, &e_test), ("purchase", &purchase, &p_test)] {
        let p = fit::predict(head, x_test);
        metrics.insert(format!("{name}_auc"), metrics::auc(&p, y.as_slice().expect("contiguous")));
        metrics.insert(format!("{name}_logloss"), metrics::log_loss(&p, y.as_slice().expect("contiguous")));
        metrics.insert(format!("{name}_base_rate"), y.iter().filter(|v| **v).count() as f64 / y.len() as f64);
    }
    metrics.insert("holdout_rows".into(), (n - n_train) as f64);

    let manifest = Manifest {
        format: crate::model::ARTIFACT_FORMAT,
        name: opts.name.clone(),
        version: opts.version.clone(),
        created_at: rfc3339(now_ms()),
        code_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_hash: features::schema_hash().to_owned(),
        feature_names: features::feature_names().to_vec(),
        training: TrainingInfo {
            source: opts.source.clone(),
            seed: opts.seed,
            rows: n as u64,
            data_from_ms: data.first_ms,
            data_to_ms: data.last_ms,
        },
        hyperparameters: BTreeMap::from([
            ("alpha".to_owned(), opts.alpha),
            ("max_iterations".to_owned(), opts.max_iterations as f64),
            ("holdout".to_owned(), opts.holdout),
        ]),
        metrics,
    };
    Ok(ModelArtifact { manifest, heads: crate::model::Heads { engage, purchase } })
}
