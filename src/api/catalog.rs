//! `CatalogService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Limits, convert};
use crate::domain::now_ms;
use crate::proto::v1::{self as pb, catalog_service_server::CatalogService};
use crate::store::Store;

/// The `CatalogService` handler.
pub struct CatalogApi {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn upsert_users(
        &self,
        request: Request<pb::UpsertUsersRequest>,
    ) -> Result<Response<pb::UpsertUsersResponse>, Status> {
        let users = convert::batch("users", &request.get_ref().users, self.limits.max_batch, |u| &u.0, convert::user)?;
        let upserted = self.store.upsert_users(users).await? as u32;
        Ok(Response::new(pb::UpsertUsersResponse { upserted }))
    }

    async fn upsert_sessions(
        &self,
        request: Request<pb::UpsertSessionsRequest>,
    ) -> Result<Response<pb::UpsertSessionsResponse>, Status> {
        let sessions = convert::batch(
            "sessions",
            &request.get_ref().sessions,
            self.limits.max_batch,
            |s| &s.session_id,
            convert::session,
        )?;
        let upserted = self.store.upsert_sessions(sessions).await? as u32;
        Ok(Response::new(pb::UpsertSessionsResponse { upserted }))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        let r = request.get_ref();
        let id = convert::id("session_id", &r.session_id)?;
        let end_ms = match r.end_time_unix_ms {
            0 => now_ms(),
            t if t < 0 => {
                return Err(Status::invalid_argument("end_time_unix_ms: must not be negative"));
            }
            t => t,
        };
        match self.store.end_session(&id, end_ms).await? {
            Some(session) => {
                Ok(Response::new(pb::EndSessionResponse { session: Some(pb::LiveSession::from(&session)) }))
            }
            None => Err(Status::not_found(format!("session_id: no session {id:?}"))),
        }
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let id = convert::id("session_id", &request.get_ref().session_id)?;
        let found = self.store.get_sessions(&[&id], None).await?;
        match found.value.into_iter().next().flatten() {
            Some(s) => Ok(Response::new(pb::GetSessionResponse {
                session: Some(pb::LiveSession::from(s.session.as_ref())),
                stats: Some(convert::stats_to_proto(&s.stats, now_ms())),
                end_time_unix_ms: s.session.end_time_ms,
                degraded: found.degraded,
                observed: Some(pb::ObservedAudience::from(&crate::domain::observed(&s.session.target, &s.stats))),
            })),
            None if found.degraded => {
                Err(Status::unavailable(format!("session_id: {id:?} is not cached here and the store is unreachable")))
            }
            None => Err(Status::not_found(format!("session_id: no session {id:?}"))),
        }
    }
}
