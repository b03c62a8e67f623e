//! `AdminService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::model::ModelRegistry;
use crate::proto::v1::{self as pb, admin_service_server::AdminService};

/// The `AdminService` handler.
pub struct AdminApi {
    pub models: Arc<ModelRegistry>,
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn load_model(
        &self,
        request: Request<pb::LoadModelRequest>,
    ) -> Result<Response<pb::LoadModelResponse>, Status> {
        let r = request.into_inner();
        let name = (!r.name.is_empty()).then_some(r.name.as_str());
        let version = (!r.version.is_empty()).then_some(r.version.as_str());
        let models = self.models.clone();
        let (name, version) = (name.map(str::to_owned), version.map(str::to_owned));
        let loaded = tokio::task::spawn_blocking(move || models.load(name.as_deref(), version.as_deref()))
            .await
            .map_err(|e| Status::internal(format!("model loader failed: {e}")))?
            .inspect_err(|e| tracing::warn!(error = %e, "model load refused; current model keeps serving"))?;
        Ok(Response::new(pb::LoadModelResponse { model: Some(convert::model_info(&loaded)) }))
    }

    async fn get_active_model(
        &self,
        _request: Request<pb::GetActiveModelRequest>,
    ) -> Result<Response<pb::GetActiveModelResponse>, Status> {
        Ok(Response::new(pb::GetActiveModelResponse { model: Some(convert::model_info(&self.models.current())) }))
    }
}
