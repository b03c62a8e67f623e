//! The model artifact: manifest + weights, written by training and validated on load.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::features::{self, Active, NUM_FEATURES, Row, schema};

/// Current artifact format.
pub const FORMAT: u32 = 1;

/// One logistic-regression head: p = σ(intercept + weights · row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    pub intercept: f32,
    pub weights: Vec<f32>,
}

impl LinearHead {
    /// Probability for one feature row. `weights.len() == NUM_FEATURES` is checked at load.
    ///
    /// The sum is taken in a fixed order: the intercept, then the non-zero positions below
    /// [`schema::SCALARS`] in ascending order, then the scalar block in eight lanes. That order
    /// lets [`Self::predict_active`] skip the zeros of the one-hot blocks and still return the
    /// same bits.
    #[inline]
    pub fn predict(&self, row: &Row) -> f32 {
        let mut z = self.intercept;
        for (w, x) in self.weights[..schema::SCALARS].iter().zip(&row[..schema::SCALARS]) {
            if *x != 0.0 {
                z += w * x;
            }
        }
        sigmoid(z + dot(&self.weights[schema::SCALARS..], &row[schema::SCALARS..]))
    }

    /// [`Self::predict`] for a row whose only non-zeros below `SCALARS` are at `active` (as
    /// returned by [`crate::features::extract_candidate`]): at most 47 products (9 one-hot positions, 38 scalars) instead of 259.
    #[inline]
    pub fn predict_active(&self, row: &Row, active: &Active) -> f32 {
        let mut z = self.intercept;
        for &i in active {
            let (w, x) = (self.weights[usize::from(i)], row[usize::from(i)]);
            if x != 0.0 {
                z += w * x;
            }
        }
        sigmoid(z + dot(&self.weights[schema::SCALARS..], &row[schema::SCALARS..]))
    }
}

#[inline]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Dot product in eight independent lanes so that the compiler vectorises it.
#[inline]
fn dot(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (wc, xc) = (w.chunks_exact(8), x.chunks_exact(8));
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (a, b) in wr.iter().zip(xr) {
        sum += a * b;
    }
    sum
}

/// The two heads of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heads {
    /// P(view | shown).
    pub engage: LinearHead,
    /// P(purchase | shown).
    pub purchase: LinearHead,
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// e.g. "generated" or a file path.
    pub source: String,
    /// Seed of the generator or split.
    pub seed: u64,
    pub rows: u64,
    /// First and last event time of the data, ms since the epoch (0 when not timed).
    pub data_from_ms: i64,
    pub data_to_ms: i64,
}

/// What a model is and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// fitrank version that trained it.
    pub code_version: String,
    pub schema_hash: String,
    pub feature_names: Vec<String>,
    pub training: TrainingInfo,
    pub hyperparameters: BTreeMap<String, f64>,
    /// Held-out metrics, e.g. "purchase_auc".
    pub metrics: BTreeMap<String, f64>,
}

/// A complete model: manifest and heads.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelArtifact {
    pub manifest: Manifest,
    pub heads: Heads,
}

/// Whether `s` is usable as a model name or version (one path component, no traversal).
pub fn is_valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl ModelArtifact {
    /// `<name>/<version>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.manifest.name, self.manifest.version)
    }

    /// Reads and validates the artifact in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let manifest: Manifest = read_json(&dir.join("manifest.json"))?;
        let heads: Heads = read_json(&dir.join("weights.json"))?;
        let artifact = ModelArtifact { manifest, heads };
        artifact.validate()?;
        Ok(artifact)
    }

    /// Checks that the artifact fits this server's feature schema and holds finite weights.
    pub fn validate(&self) -> Result<(), ModelError> {
        let m = &self.manifest;
        let invalid = |reason: String| ModelError::Invalid { model: self.id(), reason };
        if m.format != FORMAT {
            return Err(invalid(format!("artifact format {} is not supported (expected {FORMAT})", m.format)));
        }
        if m.schema_hash != features::schema_hash() {
            return Err(ModelError::SchemaMismatch {
                model: self.id(),
                expected: features::schema_hash().to_owned(),
                found: m.schema_hash.clone(),
            });
        }
        if m.feature_names != features::feature_names() {
            return Err(invalid("feature names differ from the schema its hash names".into()));
        }
        for (head, name) in [(&self.heads.engage, "engage"), (&self.heads.purchase, "purchase")] {
            if head.weights.len() != NUM_FEATURES {
                return Err(invalid(format!(
                    "head {name} has {} weights, expected {NUM_FEATURES}",
                    head.weights.len()
                )));
            }
            if !head.intercept.is_finite() || head.weights.iter().any(|w| !w.is_finite()) {
                return Err(invalid(format!("head {name} has non-finite weights")));
            }
        }
        Ok(())
    }

    /// Writes the artifact to `dir` (created), weights first and manifest last, each through a
    /// temporary file and a rename, so a reader never sees a half-written version.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ModelError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        write_json(&dir.join("weights.json"), &self.heads)?;
        write_json(&dir.join("manifest.json"), &self.manifest)?;
        Ok(())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ModelError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ModelError::NotFound(path.to_owned()),
        _ => ModelError::Io { path: path.to_owned(), source },
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ModelError::Parse { path: path.to_owned(), source })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ModelError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).expect("model artifacts serialise");
    fs::write(&tmp, bytes).map_err(|source| ModelError::Io { path: tmp.clone(), source })?;
    fs::rename(&tmp, path).map_err(|source| ModelError::Io { path: path.to_owned(), source })
}
