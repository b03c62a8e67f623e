//! `AdminService`: which model serves, and which experiments run.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
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
}

impl AdminApi {
    /// Runs a registry operation on the blocking pool (it reads files) and describes the result.
    async fn swap(
        &self,
        op: impl FnOnce(&ModelRegistry) -> Result<Arc<LoadedModel>, ModelError> + Send + 'static,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        let models = self.models.clone();
        let loaded = tokio::task::spawn_blocking(move || op(&models))
            .await
            .map_err(|e| Status::internal(format!("model loader failed: {e}")))?
            .inspect_err(|e| tracing::warn!(error = %e, "model change refused; current model keeps serving"))?;
        Ok(Response::new(pb::LoadModelResponse { model: Some(pb::ModelInfo::from(&loaded.artifact.manifest)) }))
    }
}

impl AdminApi {
    /// Runs an experiment change on the blocking pool (it loads models and writes the file).
    async fn experiment(
        &self,
        op: impl FnOnce(&Experiments, &ModelRegistry) -> Result<ExperimentDef, ExperimentError> + Send + 'static,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let (experiments, models) = (self.experiments.clone(), self.models.clone());
        let def = tokio::task::spawn_blocking(move || op(&experiments, &models))
            .await
            .map_err(|e| Status::internal(format!("experiment change failed: {e}")))??;
        Ok(Response::new(pb::ExperimentResponse { experiment: Some(pb::Experiment::from(&def)) }))
    }
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
        let s = self.latency.summary(request.into_inner().reset);
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
        let r = request.into_inner();
        let (name, version) = (non_empty(r.name), non_empty(r.version));
        self.swap(move |m| m.load(name.as_deref(), version.as_deref())).await
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
        _request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        self.swap(|m| m.rollback()).await
    }

    async fn unpin_model(
        &self,
        _request: Request<pb::UnpinModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        self.swap(|m| m.unpin()).await
    }

    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let e = request.into_inner().experiment.ok_or_else(|| Status::invalid_argument("experiment: missing"))?;
        let def = convert::experiment_from_proto(e)?;
        self.experiment(move |experiments, models| {
            let def = def.normalized()?;
            // Load arm models before the experiment can assign anyone.
            for model in def.arms.iter().filter_map(|a| a.model.as_deref()) {
                models.arm_model(model)?;
            }
            experiments.create(def)
        })
        .await
    }

    async fn set_experiment_coverage(
        &self,
        request: Request<pb::SetExperimentCoverageRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let r = request.into_inner();
        if !r.coverage.is_finite() {
            return Err(Status::invalid_argument("coverage: must be finite"));
        }
        self.experiment(move |experiments, _| experiments.set_coverage(&r.name, r.coverage)).await
    }

    async fn stop_experiment(
        &self,
        request: Request<pb::StopExperimentRequest>,
    ) -> Result<Response<pb::ExperimentResponse>, Status> {
        let name = request.into_inner().name;
        self.experiment(move |experiments, _| experiments.stop(&name)).await
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
}
