//! The serving model and how it is swapped.
//!
//! Requests take an `Arc` snapshot of the current model once, so a swap never changes the model in
//! the middle of a ranking, and a failed load never replaces the serving model.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use super::{ModelArtifact, ModelError, is_valid_version};

/// A model ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub artifact: ModelArtifact,
    /// `<name>/<version>`.
    pub id: String,
}

/// Holds the serving model and loads versions from the models folder.
#[derive(Debug)]
pub struct ModelRegistry {
    dir: PathBuf,
    default_name: String,
    current: RwLock<Arc<LoadedModel>>,
}

impl ModelRegistry {
    /// Opens the registry with the newest version of `name` under `dir`.
    pub fn open(dir: impl Into<PathBuf>, name: &str) -> Result<Self, ModelError> {
        let dir = dir.into();
        let model = load(&dir, name, None)?;
        Ok(ModelRegistry { dir, default_name: name.to_owned(), current: RwLock::new(Arc::new(model)) })
    }

    /// The serving model.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads `name` (default: the configured name) at `version` (default: newest) and makes it the
    /// serving model. On any error the serving model is unchanged.
    pub fn load(&self, name: Option<&str>, version: Option<&str>) -> Result<Arc<LoadedModel>, ModelError> {
        let model = Arc::new(load(&self.dir, name.unwrap_or(&self.default_name), version)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = model.clone();
        tracing::info!(model = %model.id, "serving model swapped");
        Ok(model)
    }
}

fn load(dir: &Path, name: &str, version: Option<&str>) -> Result<LoadedModel, ModelError> {
    if !is_valid_version(name) {
        return Err(ModelError::BadName(name.to_owned()));
    }
    let base = dir.join(name);
    let version = match version {
        Some(v) if !is_valid_version(v) => return Err(ModelError::BadName(v.to_owned())),
        Some(v) => v.to_owned(),
        None => newest_version(&base)?,
    };
    let path = base.join(&version);
    if !path.is_dir() {
        return Err(ModelError::NotFound(path));
    }
    let artifact = ModelArtifact::load(&path)?;
    if artifact.manifest.name != name || artifact.manifest.version != version {
        return Err(ModelError::Invalid {
            model: format!("{name}/{version}"),
            reason: format!("manifest says {}", artifact.id()),
        });
    }
    Ok(LoadedModel { id: artifact.id(), artifact })
}

/// The greatest version folder name under `base`.
pub fn newest_version(base: &Path) -> Result<String, ModelError> {
    let entries = std::fs::read_dir(base).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ModelError::NoVersions(base.to_owned()),
        _ => ModelError::Io { path: base.to_owned(), source },
    })?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|v| is_valid_version(v))
        .max()
        .ok_or_else(|| ModelError::NoVersions(base.to_owned()))
}
