//! `AdminService`: which model serves, and which experiments run.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::access::{Caller, Role};
use crate::audit::{AuditEntry, AuditLog};
use crate::experiment::{ExperimentDef, ExperimentError, Experiments};
use crate::model::{LoadedModel, ModelError, ModelRegistry};
use crate::proto::v1::{self as pb, admin_service_server::AdminService};

/// The `AdminService` handler.
pub struct AdminApi {
    pub models: Arc<ModelRegistry>,
    pub experiments: Arc<Experiments>,
    /// The store, for its status.
    pub store: Arc<dyn crate::store::Store>,
    /// Server-side time of each ranking.
    pub latency: Arc<crate::ranking::RankLatency>,
    /// Where every change is recorded.
    pub audit: Arc<AuditLog>,
    /// Counts failed audit writes.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// What a change is: the caller, the method, and what it changes.
struct Change {
    caller: Option<Caller>,
    action: &'static str,
    target: String,
}

impl Change {
    fn by(caller: Option<Caller>, action: &'static str, target: impl Into<String>) -> Change {
        Change { caller, action, target: target.into() }
    }
}

fn caller<T>(request: &Request<T>) -> Option<Caller> {
    request.extensions().get::<Caller>().cloned()
}

impl AdminApi {
    /// Runs a registry operation on the blocking pool (it reads files), audits it and describes
    /// the result.
    async fn swap(
        &self,
        change: Change,
        op: impl FnOnce(&ModelRegistry) -> Result<Arc<LoadedModel>, ModelError> + Send + 'static,
    ) -> Result<Arc<LoadedModel>, Status> {
        let models = self.models.clone();
        let before = model_state(&models);
        let loaded = tokio::task::spawn_blocking(move || op(&models))
            .await
            .map_err(|e| Status::internal(format!("model loader failed: {e}")))?
            .inspect_err(|e| tracing::warn!(error = %e, "model change refused; current model keeps serving"))?;
        self.record(change, before, model_state(&self.models)).await;
        Ok(loaded)
    }

    /// Runs an experiment change on the blocking pool (it loads models and writes the file),
    /// audits it and describes the result.
    async fn experiment(
        &self,
        change: Change,
        op: impl FnOnce(&Experiments, &ModelRegistry) -> Result<ExperimentDef, ExperimentError> + Send + 'static,
    ) -> Result<ExperimentDef, Status> {
        let before = self
            .experiments
            .state()
            .file
            .experiments
            .iter()
            .find(|e| e.name == change.target)
            .map_or(serde_json::Value::Null, |e| serde_json::to_value(e).unwrap_or_default());
        let (experiments, models) = (self.experiments.clone(), self.models.clone());
        let def = tokio::task::spawn_blocking(move || op(&experiments, &models))
            .await
            .map_err(|e| Status::internal(format!("experiment change failed: {e}")))??;
        self.record(change, before, serde_json::to_value(&def).unwrap_or_default()).await;
        Ok(def)
    }

    /// The serving model's name, the target of model changes in the audit log.
    fn serving_name(&self) -> String {
        self.models.current().artifact.manifest.name.clone()
    }

    /// Serves `name`/`version` (the newest when absent) and pins it; audited as `caller`'s.
    pub async fn load_model_as(
        &self,
        caller: Option<Caller>,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<Arc<LoadedModel>, Status> {
        let change = Change::by(caller, "LoadModel", self.serving_name());
        self.swap(change, move |m| m.load(name.as_deref(), version.as_deref())).await
    }

    /// Serves the previous model again; audited as `caller`'s.
    pub async fn rollback_model_as(&self, caller: Option<Caller>) -> Result<Arc<LoadedModel>, Status> {
        self.swap(Change::by(caller, "RollbackModel", self.serving_name()), |m| m.rollback()).await
    }

    /// Follows the newest version again; audited as `caller`'s.
    pub async fn unpin_model_as(&self, caller: Option<Caller>) -> Result<Arc<LoadedModel>, Status> {
        self.swap(Change::by(caller, "UnpinModel", self.serving_name()), |m| m.unpin()).await
    }

    /// Starts the experiment `def` (its arm models loaded first); audited as `caller`'s.
    pub async fn create_experiment_as(
        &self,
        caller: Option<Caller>,
        def: ExperimentDef,
    ) -> Result<ExperimentDef, Status> {
        let change = Change::by(caller, "CreateExperiment", def.name.clone());
        self.experiment(change, move |experiments, models| {
            let def = def.normalized()?;
            // Load arm models before the experiment can assign anyone.
            for model in def.arms.iter().filter_map(|a| a.model.as_deref()) {
                models.arm_model(model)?;
            }
            experiments.create(def)
        })
        .await
    }

    /// Ramps `name` to `coverage` of its range; audited as `caller`'s.
    pub async fn set_experiment_coverage_as(
        &self,
        caller: Option<Caller>,
        name: String,
        coverage: f64,
    ) -> Result<ExperimentDef, Status> {
        if !coverage.is_finite() {
            return Err(Status::invalid_argument("coverage: must be finite"));
        }
        let change = Change::by(caller, "SetExperimentCoverage", name.clone());
        self.experiment(change, move |experiments, _| experiments.set_coverage(&name, coverage)).await
    }

    /// Stops `name`; audited as `caller`'s.
    pub async fn stop_experiment_as(&self, caller: Option<Caller>, name: String) -> Result<ExperimentDef, Status> {
        let change = Change::by(caller, "StopExperiment", name.clone());
        self.experiment(change, move |experiments, _| experiments.stop(&name)).await
    }

    /// Writes a change that took effect into the audit log; a failure is logged, not returned (the
    /// change stands).
    async fn record(&self, change: Change, before: serde_json::Value, after: serde_json::Value) {
        let entry = AuditEntry::new(change.caller.as_ref(), change.action, &change.target, before, after);
        tracing::info!(actor = %entry.actor, action = entry.action, target = %entry.target, "admin change");
        if let Err(e) = self.audit.record(&entry).await {
            self.telemetry.metrics.audit_write_failures.inc();
            let entry = serde_json::to_string(&entry).unwrap_or_default();
            tracing::error!(error = %e, %entry, "the change took effect but the audit log could not record it");
        }
    }
}

/// The serving model as the audit log records it.
fn model_state(models: &ModelRegistry) -> serde_json::Value {
    let (pinned, previous) = models.state();
    serde_json::json!({ "serving": models.current().id, "pinned": pinned, "previous": previous })
}

fn model_response(loaded: Result<Arc<LoadedModel>, Status>) -> Result<Response<pb::LoadModelResponse>, Status> {
    Ok(Response::new(pb::LoadModelResponse { model: Some(pb::ModelInfo::from(&loaded?.artifact.manifest)) }))
}

fn experiment_response(def: Result<ExperimentDef, Status>) -> Result<Response<pb::ExperimentResponse>, Status> {
    Ok(Response::new(pb::ExperimentResponse { experiment: Some(pb::Experiment::from(&def?)) }))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn get_store_status(
        &self,
        _request: Request<pb::GetStoreStatusRequest>,
    ) -> Result<Response<pb::GetStoreStatusResponse>, Status> {
        let s = self.store.status();
        Ok(Response::new(pb::GetStoreStatusResponse {
            backend: s.backend.into(),
            reachable: s.reachable,
            degraded_reads: s.degraded_reads,
            failures: s.failures,
            cached_sessions: s.cached_sessions,
            cached_users: s.cached_users,
        }))
    }

    async fn get_rank_latency(
        &self,
        request: Request<pb::GetRankLatencyRequest>,
    ) -> Result<Response<pb::GetRankLatencyResponse>, Status> {
        let reset = request.get_ref().reset;
        if reset && request.extensions().get::<Caller>().is_some_and(|c| !c.roles.allows(Role::Operator)) {
            return Err(Status::permission_denied("reset: starting a new latency window needs the operator role"));
        }
        let s = self.latency.summary(reset);
        Ok(Response::new(pb::GetRankLatencyResponse {
            count: s.count,
            errors: s.errors,
            window_seconds: s.window_seconds,
            p50_us: s.p50_us,
            p90_us: s.p90_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            max_us: s.max_us,
        }))
    }

    async fn load_model(
        &self,
        request: Request<pb::LoadModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        model_response(self.load_model_as(caller, non_empty(r.name), non_empty(r.version)).await)
    }

    async fn get_active_model(
        &self,
        _request: Request<pb::GetActiveModelRequest>,
    ) -> Result<Response<pb::GetActiveModelResponse>, Status> {
        let (pinned, previous) = self.models.state();
        Ok(Response::new(pb::GetActiveModelResponse {
            model: Some(pb::ModelInfo::from(&self.models.current().artifact.manifest)),
            pinned,
            previous: previous.unwrap_or_default(),
        }))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let name = non_empty(request.into_inner().name);
        let models = self.models.clone();
        let listed = tokio::task::spawn_blocking(move || models.list(name.as_deref()))
            .await
            .map_err(|e| Status::internal(format!("model lister failed: {e}")))??;
        let serving = self.models.current();
        let versions = listed
            .into_iter()
            .map(|v| match v.manifest {
                Ok(manifest) => pb::ModelVersion {
                    serving: manifest.name == serving.artifact.manifest.name
                        && manifest.version == serving.artifact.manifest.version,
                    model: Some(pb::ModelInfo::from(&manifest)),
                    error: String::new(),
                },
                Err(e) => pb::ModelVersion {
                    serving: false,
                    model: Some(pb::ModelInfo { version: v.version, ..Default::default() }),
                    error: e.to_string(),
                },
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse { versions }))
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        model_response(self.rollback_model_as(caller(&request)).await)
    }

    async fn unpin_model(
        &self,
        request: Request<pb::UnpinModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        model_response(self.unpin_model_as(caller(&request)).await)
    }

    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let caller = caller(&request);
        let e = request.into_inner().experiment.ok_or_else(|| Status::invalid_argument("experiment: missing"))?;
        let def = convert::experiment_from_proto(e)?;
        experiment_response(self.create_experiment_as(caller, def).await)
    }

    async fn set_experiment_coverage(
        &self,
        request: Request<pb::SetExperimentCoverageRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        experiment_response(self.set_experiment_coverage_as(caller, r.name, r.coverage).await)
    }

    async fn stop_experiment(
        &self,
        request: Request<pb::StopExperimentRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let caller = caller(&request);
        experiment_response(self.stop_experiment_as(caller, request.into_inner().name).await)
    }

    async fn list_experiments(
        &self,
        _request: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsResponse>, Status> {
        let state = self.experiments.state();
        Ok(Response::new(pb::ListExperimentsResponse {
            experiments: state.file.experiments.iter().map(pb::Experiment::from).collect(),
            holdout_share: state.file.holdout.share,
        }))
    }

    async fn get_experiment_status(
        &self,
        request: Request<pb::GetExperimentStatusRequest>,
    ) -> Result<Response<pb::ExperimentStatusResponse>, Status> {
        let name = request.into_inner().name;
        let state = self.experiments.state();
        let def = state
            .file
            .experiments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Status::not_found(format!("no experiment {}", convert::quote(&name))))?;
        let guardrails = self
            .experiments
            .guardrails(&name)
            .into_iter()
            .map(|g| pb::ArmGuardrail {
                arm: g.arm,
                requests: g.requests,
                errors: g.errors,
                error_rate: g.error_rate,
                p50_us: g.p50_us,
                p99_us: g.p99_us,
            })
            .collect();
        Ok(Response::new(pb::ExperimentStatusResponse { experiment: Some(pb::Experiment::from(def)), guardrails }))
    }

    async fn list_audit_log(
        &self,
        request: Request<pb::ListAuditLogRequest>,
    ) -> Result<Response<pb::ListAuditLogResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 100,
            n @ 1..=10_000 => n as usize,
            n => return Err(Status::invalid_argument(format!("limit: at most 10000, got {n}"))),
        };
        let entries = self.audit.recent(limit).await.map_err(|e| Status::unavailable(e.to_string()))?;
        let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
        Ok(Response::new(pb::ListAuditLogResponse {
            entries: entries
                .iter()
                .map(|e| pb::AuditEntry {
                    time_unix_ms: e.time_unix_ms,
                    actor: e.actor.clone(),
                    via: e.via.clone(),
                    peer: e.peer.clone(),
                    action: e.action.clone(),
                    target: e.target.clone(),
                    before_json: json(&e.before),
                    after_json: json(&e.after),
                })
                .collect(),
        }))
    }
}
