//! The experiments the service runs: definitions, persistence, and what an assigned arm changes.
//!
//! Definitions live in one JSON file (`<data_dir>/experiments.json` by default), rewritten
//! atomically (temporary file, fsync, rename) after every change, so a restart resumes exactly
//! the experiments that were running. Experiments in the config file are added at start when
//! no experiment of that name exists yet; after that the file and the admin RPCs own them.
//!
//! With the Redis store the definitions live instead in one Redis document shared by every
//! replica ([`crate::store::redis::SharedDoc`]): a change is a compare-and-set on the document's
//! version (retried on conflict), and each replica re-reads the document every
//! `experiments_refresh_ms` ([`Experiments::refresh`]), so a change made through one replica
//! assigns users on all of them within that period.
//!
//! Readers take an `Arc` snapshot of the state once per ranking; changes build a new state and
//! swap it, like the model registry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::assign::{Arm, Assigner, Holdout, Placement, PlacementError};
use crate::metrics::LatencyCounts;
use crate::policy::{Policy, PolicyOverride};
use crate::store::redis::SharedDoc;

/// One arm: a traffic weight, optionally a model version, optionally policy parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmDef {
    pub name: String,
    pub weight: f64,
    /// `<name>/<version>` of the model this arm scores with; `None` = the serving model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub policy: PolicyOverride,
}

/// Whether an experiment assigns users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    /// Kept for reports; assigns nobody.
    Stopped,
}

/// How an experiment compares its arms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Users split between arms; each user sees one arm's rankings.
    #[default]
    Ab,
    /// Team-draft interleaving of exactly two arms in every ranking of every admitted user.
    Interleave,
}

/// One experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDef {
    pub name: String,
    #[serde(default)]
    pub kind: Kind,
    pub layer: String,
    /// Salt of the arm hash; defaults to the experiment's name.
    #[serde(default)]
    pub salt: String,
    #[serde(default)]
    pub range_start: u32,
    #[serde(default = "full_range")]
    pub range_end: u32,
    pub coverage: f64,
    /// The arm the others are compared with; defaults to the first.
    #[serde(default)]
    pub control: String,
    pub arms: Vec<ArmDef>,
    #[serde(default = "running")]
    pub status: Status,
}

fn full_range() -> u32 {
    super::BUCKETS
}

fn running() -> Status {
    Status::Running
}

/// Most experiments defined at once (running or stopped).
pub const MAX_EXPERIMENTS: usize = 1_000;
/// Most arms of one experiment.
pub const MAX_ARMS: usize = 16;
/// Longest name, layer, salt, control or arm name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest arm model id (`<name>/<version>`), in bytes.
pub const MAX_MODEL_ID_BYTES: usize = 128;

/// A name-like field: at most `max` bytes, no control characters; empty only when not `required`.
fn check_text(field: &'static str, value: &str, max: usize, required: bool) -> Result<(), ExperimentError> {
    if value.is_empty() && required {
        return Err(invalid(field, "is required"));
    }
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{} must be at most {max} bytes without control characters", crate::text::quote(value)),
        ));
    }
    Ok(())
}

impl ExperimentDef {
    /// Checks the sizes of the definition's fields: every definition's persisted size is bounded
    /// (about 5 KB at most; with [`MAX_EXPERIMENTS`], the file stays under about 6 MB).
    fn check_sizes(&self) -> Result<(), ExperimentError> {
        check_text("name", &self.name, MAX_NAME_BYTES, true)?;
        check_text("layer", &self.layer, MAX_NAME_BYTES, false)?;
        check_text("salt", &self.salt, MAX_NAME_BYTES, false)?;
        check_text("control", &self.control, MAX_NAME_BYTES, false)?;
        if self.arms.len() > MAX_ARMS {
            return Err(invalid("arms", format!("has {} arms, at most {MAX_ARMS}", self.arms.len())));
        }
        for arm in &self.arms {
            check_text("arms.name", &arm.name, MAX_NAME_BYTES, true)?;
            check_text("arms.model", arm.model.as_deref().unwrap_or(""), MAX_MODEL_ID_BYTES, false)?;
        }
        Ok(())
    }

    /// Fills defaults (salt, control) and checks the definition.
    pub fn normalized(mut self) -> Result<Self, ExperimentError> {
        self.check_sizes()?;
        if self.salt.is_empty() {
            self.salt = self.name.clone();
        }
        if self.control.is_empty() {
            self.control = self.arms.first().map(|a| a.name.clone()).unwrap_or_default();
        }
        self.placement().validate()?;
        if self.kind == Kind::Interleave && self.arms.len() != 2 {
            return Err(invalid("arms", "an interleaving experiment compares exactly two arms"));
        }
        if !self.arms.iter().any(|a| a.name == self.control) {
            return Err(invalid("control", format!("{} is not one of the arms", crate::text::quote(&self.control))));
        }
        for arm in &self.arms {
            if let Some(m) = &arm.model
                && m.split_once('/').is_none_or(|(n, v)| n.is_empty() || v.is_empty())
            {
                return Err(invalid("arms.model", format!("{} is not <name>/<version>", crate::text::quote(m))));
            }
            let policy = arm.policy.apply(Policy::default());
            policy
                .validate()
                .map_err(|why| invalid("arms.policy", format!("arm {}: {why}", crate::text::quote(&arm.name))))?;
        }
        Ok(self)
    }

    /// What assignment needs.
    pub fn placement(&self) -> Placement {
        Placement {
            name: self.name.clone(),
            layer: self.layer.clone(),
            salt: self.salt.clone(),
            range_start: self.range_start,
            range_end: self.range_end,
            coverage: self.coverage,
            arms: self.arms.iter().map(|a| Arm { name: a.name.clone(), weight: a.weight }).collect(),
        }
    }
}

/// The persisted file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentsFile {
    #[serde(default)]
    pub holdout: Holdout,
    #[serde(default)]
    pub experiments: Vec<ExperimentDef>,
}

impl ExperimentsFile {
    /// Adds the `configured` experiments it has none of that name of (validated), and `holdout`
    /// when it has none.
    fn add_configured(
        &mut self,
        configured: &[ExperimentDef],
        holdout: Option<&Holdout>,
    ) -> Result<(), ExperimentError> {
        if let Some(h) = holdout
            && self.holdout == Holdout::default()
        {
            self.holdout = h.clone();
        }
        for def in configured {
            if !self.experiments.iter().any(|e| e.name == def.name) {
                self.experiments.push(def.clone().normalized()?);
            }
        }
        Ok(())
    }
}

/// Why an experiment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("no experiment {}", crate::text::quote(.0))]
    NotFound(String),
    #[error("experiment {} exists", crate::text::quote(.0))]
    Exists(String),
    #[error("{0} experiments are defined, at most {MAX_EXPERIMENTS}; remove stopped ones from the experiments file")]
    TooMany(usize),
    #[error("arm model: {0}")]
    Model(#[from] crate::model::ModelError),
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("corrupt experiments file {path}: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("shared experiments: {0}")]
    Shared(#[from] crate::store::StoreError),
    #[error("shared experiments document is corrupt: {0}")]
    CorruptShared(serde_json::Error),
    #[error("shared experiments changed concurrently {0} times; try again")]
    Contended(u32),
}

fn invalid(field: &'static str, why: impl Into<String>) -> ExperimentError {
    ExperimentError::Placement(PlacementError::Invalid { field, why: why.into() })
}

/// The running state: definitions and their assigner.
#[derive(Debug, Default)]
pub struct State {
    pub file: ExperimentsFile,
    assigner: Assigner,
}

impl State {
    fn build(file: ExperimentsFile) -> Result<Self, ExperimentError> {
        let running = file.experiments.iter().filter(|e| e.status == Status::Running).map(ExperimentDef::placement);
        let assigner = Assigner::new(file.holdout.clone(), running.collect())?;
        Ok(State { file, assigner })
    }

    /// The arms a user is in: (experiment, arm definition), at most one per layer.
    pub fn treatments<'a>(&'a self, user_id: &str) -> Vec<(&'a ExperimentDef, &'a ArmDef)> {
        self.assigner
            .assign(user_id)
            .into_iter()
            .filter_map(|a| {
                let e = self.file.experiments.iter().find(|e| e.name == a.experiment)?;
                Some((e, e.arms.get(a.arm_index)?))
            })
            .collect()
    }
}

/// Where definitions persist.
#[derive(Debug)]
enum Persist {
    File(PathBuf),
    /// A document in Redis shared by every replica; `version` is the one `state` was built from.
    Shared {
        doc: SharedDoc,
        version: Mutex<u64>,
    },
}

/// Experiments of one service.
#[derive(Debug)]
pub struct Experiments {
    persist: Persist,
    state: RwLock<Arc<State>>,
    /// Serialises changes (read-modify-write of the file).
    writer: Mutex<()>,
    /// Guardrail counters and A/B outcomes per (experiment, arm), since the process started.
    guardrails: Mutex<std::collections::HashMap<(String, String), ArmGuardrail>>,
}

/// Ranking time and failures of one arm, and what its users did, in this process since it started.
#[derive(Debug, Default)]
pub struct ArmGuardrail {
    /// In-service ranking time of the rankings that succeeded, and the count of those that failed.
    pub latency: LatencyCounts,
    /// The users an A/B arm ranked and their purchases, for its live readout.
    pub outcomes: super::readout::ArmOutcomes,
}

/// An arm's guardrail figures.
#[derive(Debug, Clone, Serialize)]
pub struct GuardrailSummary {
    pub experiment: String,
    pub arm: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Experiments {
    /// Opens the file at `path` (empty when missing), adds `configured` experiments not present
    /// yet, applies `holdout` when the file has none, and persists.
    pub fn open(
        path: impl Into<PathBuf>,
        configured: Vec<ExperimentDef>,
        holdout: Option<Holdout>,
    ) -> Result<Self, ExperimentError> {
        let path = path.into();
        let mut file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| ExperimentError::Corrupt { path: path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ExperimentsFile::default(),
            Err(source) => return Err(ExperimentError::Io { path, source }),
        };
        file.add_configured(&configured, holdout.as_ref())?;
        let state = State::build(file)?;
        write_atomic(&path, &state.file)?;
        Ok(Experiments::with(Persist::File(path), state))
    }

    fn with(persist: Persist, state: State) -> Self {
        Experiments {
            persist,
            state: RwLock::new(Arc::new(state)),
            writer: Mutex::new(()),
            guardrails: Mutex::default(),
        }
    }

    /// Opens the definitions shared by every replica in `doc`, adding `configured` experiments and
    /// `holdout` like [`Self::open`] (whichever replica starts first adds them).
    pub async fn open_shared(
        doc: SharedDoc,
        configured: Vec<ExperimentDef>,
        holdout: Option<Holdout>,
    ) -> Result<Self, ExperimentError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (version, mut file) = read_shared(&doc).await?;
            let before = file.clone();
            file.add_configured(&configured, holdout.as_ref())?;
            let state = State::build(file)?;
            let version = if state.file == before {
                version
            } else {
                match doc.replace(version, &serde_json::to_vec(&state.file).expect("experiments serialise")).await? {
                    Some(v) => v,
                    None => continue,
                }
            };
            return Ok(Experiments::with(Persist::Shared { doc, version: Mutex::new(version) }, state));
        }
        Err(ExperimentError::Contended(MAX_CAS_ATTEMPTS))
    }

    /// Re-reads shared definitions and swaps them in when another replica changed them; returns
    /// whether they changed. Does nothing for a file.
    pub async fn refresh(&self) -> Result<bool, ExperimentError> {
        let Persist::Shared { doc, version } = &self.persist else { return Ok(false) };
        let (v, file) = read_shared(doc).await?;
        if v == *version.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(false);
        }
        let state = State::build(file)?;
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        *version.lock().unwrap_or_else(|e| e.into_inner()) = v;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
        Ok(true)
    }

    /// A snapshot of the state.
    pub fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `edit` and persists. For the shared document `edit` may run more than once: on the
    /// latest document again when another replica changed it first.
    fn change(
        &self,
        edit: impl Fn(&mut ExperimentsFile) -> Result<String, ExperimentError>,
    ) -> Result<ExperimentDef, ExperimentError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (name, state) = match &self.persist {
            Persist::File(path) => {
                let mut file = self.state().file.clone();
                let name = edit(&mut file)?;
                let state = State::build(file)?;
                write_atomic(path, &state.file)?;
                (name, state)
            }
            // Runs on the blocking pool (admin calls), where waiting on the runtime is allowed.
            Persist::Shared { doc, version } => {
                tokio::runtime::Handle::current().block_on(change_shared(doc, version, edit))?
            }
        };
        let def =
            state.file.experiments.iter().find(|e| e.name == name).cloned().ok_or(ExperimentError::NotFound(name))?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
        Ok(def)
    }

    /// Records one ranking of `user_id` in `arms` ((experiment, arm) pairs; an interleaved
    /// ranking's arm is recorded as "interleaved"): its in-service time and whether it failed,
    /// and, when it succeeded, the user among an A/B arm's users.
    pub fn record(&self, user_id: &str, arms: &[(&str, &str)], elapsed: Duration, ok: bool) {
        if arms.is_empty() {
            return;
        }
        let mut g = self.guardrails.lock().unwrap_or_else(|e| e.into_inner());
        for (experiment, arm) in arms {
            let group = super::arm_group(arm);
            let entry = g.entry(((*experiment).to_owned(), group.to_owned())).or_default();
            entry.latency.record(elapsed, ok);
            if ok && group == *arm {
                entry.outcomes.ranked(user_id);
            }
        }
    }

    /// Counts a stored purchase of `amount` by `user_id` in the readouts of the A/B arms the user
    /// is in.
    pub fn purchased(&self, user_id: &str, amount: f64) {
        let state = self.state();
        let arms: Vec<(&str, &str)> = state
            .treatments(user_id)
            .into_iter()
            .filter(|(e, _)| e.kind == Kind::Ab)
            .map(|(e, a)| (e.name.as_str(), a.name.as_str()))
            .collect();
        if arms.is_empty() {
            return;
        }
        let mut g = self.guardrails.lock().unwrap_or_else(|e| e.into_inner());
        for (experiment, arm) in arms {
            if let Some(entry) = g.get_mut(&(experiment.to_owned(), arm.to_owned())) {
                entry.outcomes.purchased(user_id, amount);
            }
        }
    }

    /// The live readout of an A/B experiment's arms (`None` for an interleaving one, whose
    /// preferences only the offline report counts).
    pub fn readout(&self, def: &ExperimentDef) -> Option<super::readout::Readout> {
        if def.kind != Kind::Ab {
            return None;
        }
        let g = self.guardrails.lock().unwrap_or_else(|e| e.into_inner());
        let arms: Vec<super::readout::ArmFigures<'_>> = def
            .arms
            .iter()
            .map(|a| {
                let entry = g.get(&(def.name.clone(), a.name.clone()));
                super::readout::ArmFigures {
                    name: &a.name,
                    weight: a.weight,
                    rankings: entry.map_or(0, |e| e.latency.ok()),
                    outcomes: entry.map(|e| &e.outcomes),
                }
            })
            .collect();
        Some(super::readout::readout(&arms, &def.control))
    }

    /// Guardrail figures of `experiment`'s arms.
    pub fn guardrails(&self, experiment: &str) -> Vec<GuardrailSummary> {
        let g = self.guardrails.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<GuardrailSummary> = g
            .iter()
            .filter(|((e, _), _)| e == experiment)
            .map(|((e, arm), v)| {
                let (errors, requests) = (v.latency.errors(), v.latency.ok() + v.latency.errors());
                GuardrailSummary {
                    experiment: e.clone(),
                    arm: arm.clone(),
                    requests,
                    errors,
                    error_rate: errors as f64 / requests.max(1) as f64,
                    p50_us: v.latency.quantile_us(0.5),
                    p99_us: v.latency.quantile_us(0.99),
                }
            })
            .collect();
        out.sort_by(|a, b| a.arm.cmp(&b.arm));
        out
    }

    /// Adds a running experiment.
    pub fn create(&self, def: ExperimentDef) -> Result<ExperimentDef, ExperimentError> {
        let def = def.normalized()?;
        self.change(|file| {
            if file.experiments.iter().any(|e| e.name == def.name) {
                return Err(ExperimentError::Exists(def.name.clone()));
            }
            if file.experiments.len() >= MAX_EXPERIMENTS {
                return Err(ExperimentError::TooMany(file.experiments.len()));
            }
            file.experiments.push(def.clone());
            Ok(def.name.clone())
        })
    }

    /// Changes one existing experiment.
    fn edit(&self, name: &str, f: impl Fn(&mut ExperimentDef)) -> Result<ExperimentDef, ExperimentError> {
        self.change(|file| {
            let e = file
                .experiments
                .iter_mut()
                .find(|e| e.name == name)
                .ok_or_else(|| ExperimentError::NotFound(name.into()))?;
            f(e);
            Ok(name.to_owned())
        })
    }

    /// Sets an experiment's coverage (ramping up admits users and moves nobody).
    pub fn set_coverage(&self, name: &str, coverage: f64) -> Result<ExperimentDef, ExperimentError> {
        if !(0.0..=1.0).contains(&coverage) {
            return Err(invalid("coverage", format!("{coverage} is not between 0 and 1")));
        }
        self.edit(name, |e| e.coverage = coverage)
    }

    /// Stops an experiment: it assigns nobody from now on and stays listed for reports.
    pub fn stop(&self, name: &str) -> Result<ExperimentDef, ExperimentError> {
        self.edit(name, |e| e.status = Status::Stopped)
    }
}

/// Most compare-and-set attempts of one change of the shared document.
const MAX_CAS_ATTEMPTS: u32 = 16;

async fn read_shared(doc: &SharedDoc) -> Result<(u64, ExperimentsFile), ExperimentError> {
    let (version, bytes) = doc.get().await?;
    let file = match bytes {
        Some(b) => serde_json::from_slice(&b).map_err(ExperimentError::CorruptShared)?,
        None => ExperimentsFile::default(),
    };
    Ok((version, file))
}

/// Applies `edit` to the latest shared document, again on the newer one when another replica
/// changed it first.
async fn change_shared(
    doc: &SharedDoc,
    version: &Mutex<u64>,
    edit: impl Fn(&mut ExperimentsFile) -> Result<String, ExperimentError>,
) -> Result<(String, State), ExperimentError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (v, mut file) = read_shared(doc).await?;
        let name = edit(&mut file)?;
        let state = State::build(file)?;
        let bytes = serde_json::to_vec(&state.file).expect("experiments serialise");
        if let Some(new_version) = doc.replace(v, &bytes).await? {
            *version.lock().unwrap_or_else(|e| e.into_inner()) = new_version;
            return Ok((name, state));
        }
    }
    Err(ExperimentError::Contended(MAX_CAS_ATTEMPTS))
}

fn write_atomic(path: &Path, file: &ExperimentsFile) -> Result<(), ExperimentError> {
    use std::io::Write;
    let io = |source| ExperimentError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&serde_json::to_vec_pretty(file).expect("experiments serialise")).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, layer: &str) -> ExperimentDef {
        ExperimentDef {
            name: name.into(),
            kind: Kind::Ab,
            layer: layer.into(),
            salt: String::new(),
            range_start: 0,
            range_end: 10_000,
            coverage: 0.5,
            control: String::new(),
            arms: vec![
                ArmDef { name: "control".into(), weight: 1.0, model: None, policy: PolicyOverride::default() },
                ArmDef {
                    name: "fit".into(),
                    weight: 1.0,
                    model: None,
                    policy: PolicyOverride { audience_fit_weight: Some(0.5), ..Default::default() },
                },
            ],
            status: Status::Running,
        }
    }

    #[test]
    fn changes_persist_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiments.json");
        let ex = Experiments::open(&path, vec![def("a", "ranking")], None).unwrap();
        assert_eq!(ex.state().file.experiments[0].salt, "a");
        assert_eq!(ex.state().file.experiments[0].control, "control");
        assert!(matches!(ex.create(def("a", "x")), Err(ExperimentError::Exists(_))));
        assert!(matches!(
            ex.create(def("b", "ranking")),
            Err(ExperimentError::Placement(PlacementError::Overlap { .. }))
        ));
        ex.create(def("b", "policy")).unwrap();
        ex.set_coverage("a", 0.9).unwrap();
        ex.stop("b").unwrap();
        assert!(matches!(ex.set_coverage("a", 1.5), Err(ExperimentError::Placement(_))));
        drop(ex);
        // The configured definition of "a" does not overwrite the file's (coverage 0.9 stays).
        let again = Experiments::open(&path, vec![def("a", "ranking")], None).unwrap();
        let file = &again.state().file;
        assert_eq!(file.experiments.len(), 2);
        assert_eq!(file.experiments[0].coverage, 0.9);
        assert_eq!(file.experiments[1].status, Status::Stopped);
        let treated = (0..1_000).filter(|u| !again.state().treatments(&format!("u{u}")).is_empty()).count();
        assert!((850..950).contains(&treated), "{treated} of 1000 users in a at 90% (b stopped)");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let mut d = def("a", "l");
        d.control = "nope".into();
        assert!(d.normalized().unwrap_err().to_string().starts_with("control:"));
        let mut d = def("a", "l");
        d.arms[1].model = Some("no-version".into());
        assert!(d.normalized().unwrap_err().to_string().starts_with("arms.model:"));
        let mut d = def("a", "l");
        d.arms[1].policy.engage_weight = Some(-1.0);
        assert!(d.normalized().unwrap_err().to_string().starts_with("arms.policy:"));
    }

    #[test]
    fn every_field_and_the_number_of_experiments_are_bounded() {
        let refused = |f: &dyn Fn(&mut ExperimentDef)| {
            let mut d = def("a", "l");
            f(&mut d);
            d.normalized().unwrap_err().to_string()
        };
        let huge = "x".repeat(1 << 20);
        let message = refused(&|d| d.name = huge.clone());
        assert!(message.starts_with("name:") && message.len() < 200, "{message}");
        assert!(refused(&|d| d.name = String::new()).starts_with("name: is required"));
        assert!(refused(&|d| d.layer = "a\u{7}b".into()).starts_with("layer:"));
        assert!(refused(&|d| d.salt = "s".repeat(MAX_NAME_BYTES + 1)).starts_with("salt:"));
        assert!(refused(&|d| d.arms[0].name = "\n".into()).starts_with("arms.name:"));
        assert!(refused(&|d| d.arms[1].model = Some(format!("m/{huge}"))).starts_with("arms.model:"));
        let arm = |name: String| ArmDef { name, weight: 1.0, model: None, policy: PolicyOverride::default() };
        let message = refused(&|d| d.arms = (0..10_000).map(|i| arm(format!("a{i}"))).collect());
        assert!(message.starts_with("arms: has 10000 arms, at most 16"), "{message}");
        let mut d = def("a", "l");
        d.name = "n".repeat(MAX_NAME_BYTES);
        d.normalized().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiments.json");
        let full: Vec<_> = (0..MAX_EXPERIMENTS).map(|i| def(&format!("e{i}"), &format!("l{i}"))).collect();
        let ex = Experiments::open(&path, full, None).unwrap();
        assert!(matches!(ex.create(def("one-more", "new")), Err(ExperimentError::TooMany(MAX_EXPERIMENTS))));
        assert!(std::fs::metadata(&path).unwrap().len() < 6_000_000);
    }
}
