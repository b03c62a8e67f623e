//! Versions compared on the same rows: what `fitrank evaluate --record` writes beside the
//! versions, and the console's models page shows.
//!
//! Each version's manifest holds metrics from its own held-out rows, so two versions trained on
//! different data do not compare by their manifests. `fitrank evaluate` scores every version on
//! the same later rows (after every version's training data); with `--record` it writes that
//! comparison to `<models>/<name>/comparisons/<time>.json`, where the registry does not take it
//! for a version (a version is a folder with a `manifest.json`). The newest file is the one shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder of comparisons under a model name's folder.
pub const FOLDER: &str = "comparisons";

/// Versions scored on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The data the rows come from (a file path).
    pub data: String,
    pub rows: u64,
    /// First and last event time of the rows, ms since the epoch (0 when not timed).
    pub from_ms: i64,
    pub to_ms: i64,
    /// Every version scored, with its metrics on those rows.
    pub versions: Vec<ComparedVersion>,
}

/// One version's metrics in a [`Comparison`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparedVersion {
    /// `<name>/<version>`.
    pub model: String,
    /// e.g. `purchase_auc`, `purchase_logloss`, `ndcg_purchase`.
    pub metrics: BTreeMap<String, f64>,
}

/// Why a comparison could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ComparisonError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

fn folder(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(name).join(FOLDER)
}

/// Writes `comparison` for model `name` (atomically: a reader never sees half a file); returns
/// its path.
pub fn record(models_dir: &Path, name: &str, comparison: &Comparison) -> Result<PathBuf, ComparisonError> {
    let dir = folder(models_dir, name);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ComparisonError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let stamp = crate::domain::version_stamp(crate::domain::now_ms());
    let path = dir.join(format!("{stamp}.json"));
    let staging = dir.join(format!(".{stamp}.json.tmp"));
    let bytes = serde_json::to_vec_pretty(comparison).expect("a comparison serialises");
    std::fs::write(&staging, bytes).map_err(io(&staging))?;
    std::fs::rename(&staging, &path).map_err(io(&path))?;
    Ok(path)
}

/// The newest comparison of model `name`, if any was recorded.
pub fn latest(models_dir: &Path, name: &str) -> Result<Option<Comparison>, ComparisonError> {
    let dir = folder(models_dir, name);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ComparisonError::Io { path: dir, source }),
    };
    let newest = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .max();
    let Some(file) = newest else { return Ok(None) };
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|source| ComparisonError::Io { path: path.clone(), source })?;
    serde_json::from_slice(&bytes).map(Some).map_err(|source| ComparisonError::Parse { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_recorded_comparison_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest(dir.path(), "default").unwrap(), None);
        let mut c = Comparison {
            created_at: "2026-12-06T04:00:00Z".into(),
            data: "export.parquet".into(),
            rows: 1_000,
            from_ms: 1,
            to_ms: 2,
            versions: vec![ComparedVersion {
                model: "default/a".into(),
                metrics: BTreeMap::from([("purchase_auc".to_owned(), 0.8)]),
            }],
        };
        record(dir.path(), "default", &c).unwrap();
        assert_eq!(latest(dir.path(), "default").unwrap(), Some(c.clone()));
        // A later one wins (file names are times to the second).
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        c.rows = 2_000;
        record(dir.path(), "default", &c).unwrap();
        assert_eq!(latest(dir.path(), "default").unwrap().unwrap().rows, 2_000);
    }
}
