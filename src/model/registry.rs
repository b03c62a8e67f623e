//! The serving model and how it is swapped.
//!
//! Requests take an `Arc` snapshot of the current model once, so a swap never changes the model in
//! the middle of a ranking and drops no request, and a failed load never replaces the serving model.
//!
//! The registry follows the newest version of its model name ([`ModelRegistry::poll`], called by the
//! server's watcher) unless a version was pinned: loading an explicit version or rolling back pins;
//! [`ModelRegistry::unpin`] follows again. A version that cannot load is refused and logged once
//! (again only when any of its files changes, so a version whose files land in any order is
//! adopted once complete), while the current model keeps serving. Starting, or following the
//! newest, takes the newest version that loads: one corrupt upload to a shared models folder does
//! not stop a replica from starting.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::SystemTime,
};

use super::{Manifest, ModelArtifact, ModelError, is_valid_version};

/// A model ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub artifact: ModelArtifact,
    /// `<name>/<version>`.
    pub id: String,
}

#[derive(Debug, Default)]
struct Control {
    pinned: bool,
    /// The model that served before the current one.
    previous: Option<Arc<LoadedModel>>,
    /// Versions the watcher refused, with the state of their files then.
    refused: HashMap<PathBuf, FolderStamp>,
}

/// The names, sizes and modification times of a version folder's files: changes when any file
/// lands, is replaced or grows.
type FolderStamp = Vec<(OsString, u64, Option<SystemTime>)>;

fn folder_stamp(path: &Path) -> FolderStamp {
    let mut stamp: FolderStamp = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.file_name(), meta.len(), meta.modified().ok()))
        })
        .collect();
    stamp.sort();
    stamp
}

/// Holds the serving model and loads versions from the models folder.
#[derive(Debug)]
pub struct ModelRegistry {
    dir: PathBuf,
    default_name: String,
    current: RwLock<Arc<LoadedModel>>,
    control: Mutex<Control>,
    /// Versions loaded for experiment arms, by id; loaded once, never swapped.
    arms: Mutex<std::collections::HashMap<String, Arc<LoadedModel>>>,
    /// Times the serving model changed, and versions refused (corrupt, wrong schema, missing).
    swaps: std::sync::atomic::AtomicU64,
    refusals: std::sync::atomic::AtomicU64,
}

/// One version found on disk.
#[derive(Debug)]
pub struct ListedVersion {
    pub version: String,
    /// The manifest, or why the version cannot serve.
    pub manifest: Result<Manifest, ModelError>,
}

impl ModelRegistry {
    /// Opens the registry with the newest version of `name` under `dir`.
    pub fn open(dir: impl Into<PathBuf>, name: &str) -> Result<Self, ModelError> {
        let dir = dir.into();
        if !is_valid_version(name) {
            return Err(ModelError::BadName(name.to_owned()));
        }
        let model = load_newest(&dir, name)?;
        Ok(ModelRegistry {
            dir,
            default_name: name.to_owned(),
            arms: Mutex::default(),
            current: RwLock::new(Arc::new(model)),
            control: Mutex::new(Control::default()),
            swaps: Default::default(),
            refusals: Default::default(),
        })
    }

    /// Times the serving model changed since start, and model versions refused.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.swaps.load(Relaxed), self.refusals.load(Relaxed))
    }

    /// Counts a refused version.
    fn counted<T>(&self, result: Result<T, ModelError>) -> Result<T, ModelError> {
        if result.is_err() {
            self.refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    /// The model `<name>/<version>` for an experiment arm, loaded from disk on first use and kept.
    /// Does not change the serving model. Reads files the first time: call it where blocking is
    /// fine (experiment creation), so that rankings find it loaded.
    pub fn arm_model(&self, id: &str) -> Result<Arc<LoadedModel>, ModelError> {
        if let Some(m) = self.arms.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(m.clone());
        }
        let Some((name, version)) = id.split_once('/') else {
            return Err(ModelError::NotFound(self.dir.join(id)));
        };
        let model = Arc::new(self.counted(load(&self.dir, name, Some(version)))?);
        self.arms.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), model.clone());
        Ok(model)
    }

    /// The model an arm names, if it was loaded by [`Self::arm_model`].
    pub fn loaded_arm_model(&self, id: &str) -> Option<Arc<LoadedModel>> {
        self.arms.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// The serving model.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the serving model is pinned, and the id of the model that served before it.
    pub fn state(&self) -> (bool, Option<String>) {
        let control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        (control.pinned, control.previous.as_ref().map(|m| m.id.clone()))
    }

    fn swap(&self, control: &mut Control, model: Arc<LoadedModel>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.id != model.id {
            control.previous = Some(current.clone());
            self.swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *current = model;
        tracing::info!(model = %current.id, pinned = control.pinned, "serving model swapped");
    }

    /// Loads `name` (default: the configured name) at `version` and makes it the serving model. An
    /// explicit version is pinned; `None` loads the newest (refused if it does not load: the operator
    /// asked for it) and follows newer ones. On any error the
    /// serving model is unchanged.
    pub fn load(&self, name: Option<&str>, version: Option<&str>) -> Result<Arc<LoadedModel>, ModelError> {
        let model = Arc::new(self.counted(load(&self.dir, name.unwrap_or(&self.default_name), version))?);
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        control.pinned = version.is_some();
        self.swap(&mut control, model.clone());
        Ok(model)
    }

    /// Serves the previous model again and pins it.
    pub fn rollback(&self) -> Result<Arc<LoadedModel>, ModelError> {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let previous = control.previous.clone().ok_or(ModelError::NoPrevious)?;
        control.pinned = true;
        self.swap(&mut control, previous.clone());
        Ok(previous)
    }

    /// Stops pinning and serves the newest version of the configured name that loads (as the
    /// watcher would).
    pub fn unpin(&self) -> Result<Arc<LoadedModel>, ModelError> {
        let model = Arc::new(self.counted(load_newest(&self.dir, &self.default_name))?);
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        control.pinned = false;
        self.swap(&mut control, model.clone());
        Ok(model)
    }

    /// Follows the newest version of the serving model's name unless pinned: swaps to the newest
    /// version newer than the serving one that loads. Returns the new model when it swapped,
    /// `None` when nothing changed or every newer version was refused (each logged once per
    /// change of its files).
    pub fn poll(&self) -> Option<Arc<LoadedModel>> {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if control.pinned {
            return None;
        }
        let current = self.current();
        let name = &current.artifact.manifest.name;
        let base = self.dir.join(name);
        let mut newer = match version_dirs(&base) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "model poll found no versions");
                return None;
            }
        };
        newer.retain(|v| *v > current.artifact.manifest.version);
        newer.sort_unstable_by(|a, b| b.cmp(a));
        for version in newer {
            let path = base.join(&version);
            let stamp = folder_stamp(&path);
            if control.refused.get(&path) == Some(&stamp) {
                continue;
            }
            match load(&self.dir, name, Some(&version)) {
                Ok(model) => {
                    control.refused.retain(|p, _| p.exists() && *p > path);
                    let model = Arc::new(model);
                    self.swap(&mut control, model.clone());
                    return Some(model);
                }
                Err(e) => {
                    self.refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(version = %version, error = %e, serving = %current.id, "newer model refused; current model keeps serving");
                    control.refused.insert(path, stamp);
                }
            }
        }
        None
    }

    /// The newest comparison of the served model name's versions on the same rows, if recorded.
    pub fn latest_comparison(
        &self,
    ) -> Result<Option<super::comparison::Comparison>, super::comparison::ComparisonError> {
        super::comparison::latest(&self.dir, &self.default_name)
    }

    /// The versions of `name` (default: the configured name) on disk, newest first.
    pub fn list(&self, name: Option<&str>) -> Result<Vec<ListedVersion>, ModelError> {
        let name = name.unwrap_or(&self.default_name);
        if !is_valid_version(name) {
            return Err(ModelError::BadName(name.to_owned()));
        }
        let base = self.dir.join(name);
        let mut versions = version_dirs(&base)?;
        versions.sort_unstable_by(|a, b| b.cmp(a));
        Ok(versions
            .into_iter()
            .map(|version| {
                let manifest = ModelArtifact::load(&base.join(&version)).map(|a| a.manifest);
                ListedVersion { version, manifest }
            })
            .collect())
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

/// The newest version of `name` that loads; each newer one refused is logged. With none loading,
/// the newest's error.
fn load_newest(dir: &Path, name: &str) -> Result<LoadedModel, ModelError> {
    let base = dir.join(name);
    let mut versions = version_dirs(&base)?;
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut newest_error = None;
    for version in versions {
        match load(dir, name, Some(&version)) {
            Ok(model) => {
                if newest_error.is_some() {
                    tracing::warn!(model = %model.id, "serving an older version: every newer one was refused");
                }
                return Ok(model);
            }
            Err(e) => {
                tracing::warn!(model = %format!("{name}/{version}"), error = %e, "model version refused");
                newest_error.get_or_insert(e);
            }
        }
    }
    Err(newest_error.unwrap_or(ModelError::NoVersions(base)))
}

/// Version folders (with a manifest) under `base`.
fn version_dirs(base: &Path) -> Result<Vec<String>, ModelError> {
    let entries = std::fs::read_dir(base).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ModelError::NoVersions(base.to_owned()),
        _ => ModelError::Io { path: base.to_owned(), source },
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|v| is_valid_version(v))
        .collect())
}

/// The greatest version folder name under `base`.
pub fn newest_version(base: &Path) -> Result<String, ModelError> {
    version_dirs(base)?.into_iter().max().ok_or_else(|| ModelError::NoVersions(base.to_owned()))
}
