//! The model artifact: manifest + weights, written by training and validated on load.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::features::{self, Active, IdentityKeys, NUM_FEATURES, Row, identity, schema};

/// Current artifact format.
pub const FORMAT: u32 = 1;

/// Largest accepted [`LinearHead::logit_bound`]: far below f32's 3.4e38, so no sum overflows and
/// every score is finite. (A trained head's bound is near 1e20 × the sum of its weights; the
/// limit allows a sum up to 1e16.)
pub const MAX_LOGIT_BOUND: f64 = 1e36;

/// One logistic-regression head: p = σ(intercept + identity weights + user factors · host factors
/// + weights · row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    pub intercept: f32,
    pub weights: Vec<f32>,
    /// Weights of the identity block ([`crate::features::identity`]): the user slots, then the
    /// host slots, `2 × identity_buckets` in all; empty when the model has no block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<f32>,
    /// Latent factors of the identity block's slots (a factorisation machine's pairwise term over
    /// the user and host fields, see [`crate::features::identity`]): `factor_dims` values per slot,
    /// the slots in the identity block's order, `2 × identity_buckets × factor_dims` in all; empty
    /// when the model has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<f32>,
}

impl LinearHead {
    /// Slots per kind of the identity block (half its length; the manifest's `identity_buckets`,
    /// checked at load).
    #[inline]
    pub fn identity_buckets(&self) -> u32 {
        (self.identity.len() / 2) as u32
    }

    /// Values per slot of [`Self::factors`] (the manifest's `factor_dims`, checked at load).
    #[inline]
    pub fn factor_dims(&self) -> usize {
        if self.factors.is_empty() { 0 } else { self.factors.len() / self.identity.len() }
    }

    /// The identity block's part of the logit for `keys`: the weights of the user's and the
    /// host's slots, plus the dot product of their factors when the model has factors and both
    /// ids are known; 0 without a block. The slots are below twice the bucket count, so within
    /// the block.
    #[inline]
    pub fn identity_logit(&self, keys: &IdentityKeys) -> f32 {
        let slots = keys.slots(self.identity_buckets());
        let mut z = 0.0;
        for s in slots.into_iter().flatten() {
            z += self.identity[s as usize];
        }
        if !self.factors.is_empty()
            && let [Some(u), Some(h)] = slots
        {
            let k = self.factor_dims();
            let (u, h) = (u as usize * k, h as usize * k);
            z += factor_dot(&self.factors[u..u + k], &self.factors[h..h + k]);
        }
        z
    }

    /// An upper bound on |logit| over every possible row and identity: the intercept, the
    /// weights times [`features::MAX_ABS_FEATURE`], two identity weights and one factor product,
    /// each at its largest. Every partial sum of the f32 logit is within it.
    pub fn logit_bound(&self) -> f64 {
        let max_abs = |v: &[f32]| v.iter().fold(0f64, |m, w| m.max(f64::from(w.abs())));
        let weights: f64 = self.weights.iter().map(|w| f64::from(w.abs())).sum();
        let factor = max_abs(&self.factors);
        f64::from(self.intercept.abs())
            + weights * f64::from(features::MAX_ABS_FEATURE)
            + 2.0 * max_abs(&self.identity)
            + self.factor_dims() as f64 * factor * factor
    }

    /// Probability for one feature row. `weights.len() == NUM_FEATURES` is checked at load.
    ///
    /// The sum is taken in a fixed order: the intercept, then the non-zero positions below
    /// [`schema::SCALARS`] in ascending order, then the scalar block in eight lanes. That order
    /// lets [`Self::predict_active`] skip the zeros of the one-hot blocks and still return the
    /// same bits.
    #[inline]
    pub fn predict(&self, row: &Row) -> f32 {
        self.predict_with(row, 0.0)
    }

    /// [`Self::predict`] with `extra` added to the intercept first (the identity block's
    /// [`Self::identity_logit`]); `extra = 0` gives `predict`'s bits.
    #[inline]
    pub fn predict_with(&self, row: &Row, extra: f32) -> f32 {
        let mut z = self.intercept + extra;
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
        self.predict_active_with(row, active, 0.0)
    }

    /// [`Self::predict_active`] with `extra` added as in [`Self::predict_with`].
    #[inline]
    pub fn predict_active_with(&self, row: &Row, active: &Active, extra: f32) -> f32 {
        let mut z = self.intercept + extra;
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

/// The pairwise term of two slots' factors, summed in index order (training sums in the same
/// order in f64).
#[inline]
fn factor_dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The two heads of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heads {
    /// P(view | shown).
    pub engage: LinearHead,
    /// P(purchase | shown).
    pub purchase: LinearHead,
}

impl Heads {
    /// `(P(view), P(purchase))`: each head's [`LinearHead::predict_active_with`] with its own
    /// `extra`, in one pass over the row (the row's entries are loaded once for both, and the two
    /// sums and sigmoids overlap). Each sum is taken in its head's order, so the bits are the
    /// single-head calls' (a property test checks it).
    #[inline]
    pub fn predict_active_with(&self, row: &Row, active: &Active, extra: (f32, f32)) -> (f32, f32) {
        let (e, p) = (&self.engage, &self.purchase);
        let (mut ze, mut zp) = (e.intercept + extra.0, p.intercept + extra.1);
        for &i in active {
            let i = usize::from(i);
            let x = row[i];
            if x != 0.0 {
                ze += e.weights[i] * x;
                zp += p.weights[i] * x;
            }
        }
        let (de, dp) = dot2(&e.weights[schema::SCALARS..], &p.weights[schema::SCALARS..], &row[schema::SCALARS..]);
        (sigmoid(ze + de), sigmoid(zp + dp))
    }
}

/// [`dot`] of two weight vectors with the same `x`, each in [`dot`]'s lanes and order.
#[inline]
fn dot2(w1: &[f32], w2: &[f32], x: &[f32]) -> (f32, f32) {
    let n = x.len().min(w1.len()).min(w2.len());
    let (w1, w2, x) = (&w1[..n], &w2[..n], &x[..n]);
    let (mut acc1, mut acc2) = ([0f32; 8], [0f32; 8]);
    let (c1, c2, cx) = (w1.chunks_exact(8), w2.chunks_exact(8), x.chunks_exact(8));
    let (r1, r2, rx) = (c1.remainder(), c2.remainder(), cx.remainder());
    for ((a1, a2), b) in c1.zip(c2).zip(cx) {
        for l in 0..8 {
            acc1[l] += a1[l] * b[l];
            acc2[l] += a2[l] * b[l];
        }
    }
    let (mut sum1, mut sum2): (f32, f32) = (acc1.iter().sum(), acc2.iter().sum());
    for ((a1, a2), b) in r1.iter().zip(r2).zip(rx) {
        sum1 += a1 * b;
        sum2 += a2 * b;
    }
    (sum1, sum2)
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

/// The rows a manifest's `metrics` were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsData {
    /// The data they come from (as `TrainingInfo::source`) and which part of it, e.g. "the
    /// latest 20% by time (held out)".
    pub source: String,
    pub rows: u64,
    /// First and last event time of those rows, ms since the epoch (0 when not timed).
    pub from_ms: i64,
    pub to_ms: i64,
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
    /// The rows `metrics` were measured on (absent in older manifests). Versions trained on
    /// different data have metrics from different rows: compare them on the same rows with
    /// `fitrank evaluate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_data: Option<MetricsData>,
    /// Slots per kind of the identity block ([`crate::features::identity`]); 0 (absent in older
    /// manifests) for a model without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub identity_buckets: u32,
    /// Latent factors per identity slot (the user × host pairwise term); 0 (absent in older
    /// manifests) for a model without them. Needs an identity block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub factor_dims: u32,
    /// Features the heads were fitted without (absent in older manifests): their weights are 0,
    /// so the features are logged and exported but do not move the score. The shipped model
    /// leaves out what reads the declared target directly (`fit.age`, `fit.overall`, …), so that a
    /// declaration reaches the ranking only through the targeting credit its buyers confirm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_features: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            let block = 2 * m.identity_buckets as usize;
            if m.identity_buckets > identity::MAX_BUCKETS || head.identity.len() != block {
                return Err(invalid(format!(
                    "head {name} has {} identity weights, its manifest's {} buckets per kind need {block} (at most {} buckets)",
                    head.identity.len(),
                    m.identity_buckets,
                    identity::MAX_BUCKETS
                )));
            }
            let factors = block * m.factor_dims as usize;
            if m.factor_dims > identity::MAX_FACTOR_DIMS
                || (m.factor_dims > 0 && m.identity_buckets == 0)
                || head.factors.len() != factors
            {
                return Err(invalid(format!(
                    "head {name} has {} factor values, its manifest's {} buckets per kind and {} factor dimensions need {factors} (at most {} dimensions)",
                    head.factors.len(),
                    m.identity_buckets,
                    m.factor_dims,
                    identity::MAX_FACTOR_DIMS
                )));
            }
            if !head.intercept.is_finite()
                || head.weights.iter().chain(&head.identity).chain(&head.factors).any(|w| !w.is_finite())
            {
                return Err(invalid(format!("head {name} has non-finite weights")));
            }
            let bound = head.logit_bound();
            if bound > MAX_LOGIT_BOUND {
                return Err(invalid(format!(
                    "head {name}'s weights are too large: a logit could reach {bound:.3e}, beyond {MAX_LOGIT_BOUND:.0e}, and scores would overflow"
                )));
            }
        }
        self.validate_excluded()
    }

    /// Checks that every excluded feature is one of the schema's and has no weight in either head.
    fn validate_excluded(&self) -> Result<(), ModelError> {
        let invalid = |reason: String| ModelError::Invalid { model: self.id(), reason };
        for name in &self.manifest.excluded_features {
            let j = features::feature_names()
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| invalid(format!("excluded feature {name} is not in the schema")))?;
            for (head, head_name) in [(&self.heads.engage, "engage"), (&self.heads.purchase, "purchase")] {
                if head.weights[j] != 0.0 {
                    return Err(invalid(format!(
                        "head {head_name} weighs {name} by {}, which its manifest excludes",
                        head.weights[j]
                    )));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ModelArtifact {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
        let newest = crate::model::registry_newest(&base).expect("a shipped version");
        ModelArtifact::load(&base.join(newest)).unwrap()
    }

    #[test]
    fn weights_that_could_overflow_a_logit_are_refused_and_the_largest_accepted_score_finitely() {
        let mut model = shipped();
        model.validate().unwrap();
        // Every feature weighs something below, the ones the shipped model excludes too.
        model.manifest.excluded_features.clear();
        model.heads.purchase.weights[7] = -3e38;
        model.heads.purchase.weights[8] = 3e38;
        assert!(model.validate().unwrap_err().to_string().contains("too large"));
        // Just inside the bound, against rows at the features' extremes of either sign.
        let w = (MAX_LOGIT_BOUND / f64::from(features::MAX_ABS_FEATURE) / NUM_FEATURES as f64 * 0.99) as f32;
        model.heads.purchase.weights = (0..NUM_FEATURES).map(|i| if i % 3 == 0 { -w } else { w }).collect();
        model.validate().unwrap();
        let head = &model.heads.purchase;
        for sign in [1f32, -1.0] {
            let row: Row = std::array::from_fn(|i| sign * if i % 2 == 0 { features::MAX_ABS_FEATURE } else { -1.0 });
            let p = head.predict(&row);
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }

    #[test]
    fn an_excluded_feature_must_be_in_the_schema_and_weigh_nothing() {
        let mut model = shipped();
        let j = features::feature_names().iter().position(|n| n == "fit.overall").unwrap();
        model.manifest.excluded_features = vec!["fit.overall".into()];
        model.heads.engage.weights[j] = 0.0;
        model.heads.purchase.weights[j] = 0.25;
        let err = model.validate().unwrap_err().to_string();
        assert!(err.contains("head purchase weighs fit.overall by 0.25"), "{err}");
        model.heads.purchase.weights[j] = 0.0;
        model.validate().unwrap();
        model.manifest.excluded_features.push("fit.nonsense".into());
        assert!(model.validate().unwrap_err().to_string().contains("fit.nonsense is not in the schema"));
    }

    #[test]
    fn the_identity_block_adds_its_slots_and_must_match_the_manifest() {
        let mut model = shipped();
        assert_eq!(model.manifest.identity_buckets, 0, "the shipped model has no identity block");
        let row = [0.25f32; NUM_FEATURES];
        let head = &model.heads.purchase;
        assert_eq!(head.predict(&row).to_bits(), head.predict_with(&row, 0.0).to_bits());
        assert_eq!(head.identity_logit(&IdentityKeys::of("u", "h")), 0.0);

        model.manifest.identity_buckets = 8;
        assert!(model.validate().unwrap_err().to_string().contains("identity weights"));
        for head in [&mut model.heads.engage, &mut model.heads.purchase] {
            head.identity = (0..16).map(|i| i as f32 / 10.0).collect();
        }
        model.validate().unwrap();
        let keys = IdentityKeys::of("u", "h");
        let [u, h] = keys.slots(8).map(Option::unwrap);
        let head = &model.heads.purchase;
        let want = (u + h) as f32 / 10.0;
        assert_eq!(head.identity_logit(&keys), want);
        assert_eq!(head.identity_logit(&IdentityKeys::of("", "")), 0.0);
        // The host's slot is in 8..16, so the block adds at least 0.8 to the logit.
        assert!(want >= 0.8 && head.predict_with(&row, want) > head.predict(&row));

        model.heads.engage.identity[3] = f32::NAN;
        assert!(model.validate().unwrap_err().to_string().contains("non-finite"));
        // Finite but huge: ±3e38 would overflow the sums into inf − inf = NaN scores.
        model.heads.engage.identity[3] = 3e38;
        assert!(model.validate().unwrap_err().to_string().contains("too large"));
        model.heads.engage.identity[3] = 0.0;
        model.manifest.identity_buckets = identity::MAX_BUCKETS + 1;
        assert!(model.validate().is_err());

        // Old manifests have no field; they read as "no block".
        let json = serde_json::to_value(&shipped().manifest).unwrap();
        assert!(json.get("identity_buckets").is_none() && json.get("factor_dims").is_none());
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!((back.identity_buckets, back.factor_dims), (0, 0));
    }

    #[test]
    fn factors_add_the_user_and_host_dot_product_and_must_match_the_manifest() {
        let mut model = shipped();
        model.manifest.identity_buckets = 4;
        model.manifest.factor_dims = 3;
        for head in [&mut model.heads.engage, &mut model.heads.purchase] {
            head.identity = vec![0.5; 8];
        }
        assert!(model.validate().unwrap_err().to_string().contains("factor values"));
        for head in [&mut model.heads.engage, &mut model.heads.purchase] {
            // Slot s holds (s, s + 1, -s) / 10.
            head.factors = (0..8).flat_map(|s| [s as f32 / 10.0, (s + 1) as f32 / 10.0, -(s as f32) / 10.0]).collect();
        }
        model.validate().unwrap();
        let head = &model.heads.engage;
        assert_eq!(head.factor_dims(), 3);
        let keys = IdentityKeys::of("u", "h");
        let [u, h] = keys.slots(4).map(|s| s.unwrap() as f32);
        let want = 0.5 + 0.5 + (u * h + (u + 1.0) * (h + 1.0) + u * h) / 100.0;
        assert!((head.identity_logit(&keys) - want).abs() < 1e-6, "{} vs {want}", head.identity_logit(&keys));
        // One id missing: its weight only, no pairwise term.
        assert_eq!(head.identity_logit(&IdentityKeys::of("u", "")), 0.5);
        assert_eq!(head.identity_logit(&IdentityKeys::of("", "h")), 0.5);

        model.heads.purchase.factors[5] = f32::INFINITY;
        assert!(model.validate().unwrap_err().to_string().contains("non-finite"));
        model.heads.purchase.factors[5] = 0.0;
        model.manifest.factor_dims = identity::MAX_FACTOR_DIMS + 1;
        assert!(model.validate().is_err());
        // Factors without an identity block are refused.
        model.manifest.factor_dims = 3;
        model.manifest.identity_buckets = 0;
        for head in [&mut model.heads.engage, &mut model.heads.purchase] {
            head.identity.clear();
            head.factors.clear();
        }
        assert!(model.validate().unwrap_err().to_string().contains("factor"));
    }
}
