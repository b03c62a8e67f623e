//! `AdminService`: which model serves.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::model::{LoadedModel, ModelError, ModelRegistry};
use crate::proto::v1::{self as pb, admin_service_server::AdminService};

/// The `AdminService` handler.
pub struct AdminApi {
    pub models: Arc<ModelRegistry>,
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
        Ok(Response::new(pb::LoadModelResponse { model: Some(convert::model_info(&loaded)) }))
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl AdminService for AdminApi {
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
            model: Some(convert::model_info(&self.models.current())),
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
                    model: Some(convert::manifest_info(&manifest)),
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
}
