//! `RankingService`.

use tonic::{Request, Response, Status};

use super::{Limits, convert};
use crate::domain::now_ms;
use crate::proto::v1::{RankRequest, RankResponse, ranking_service_server::RankingService};
use crate::ranking::Ranker;

/// The `RankingService` handler.
pub struct RankingApi {
    pub ranker: Ranker,
    pub limits: Limits,
}

#[tonic::async_trait]
impl RankingService for RankingApi {
    async fn rank(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let query = convert::rank_query(request.into_inner(), &self.limits, now_ms())?;
        let ranked = self.ranker.rank(query).await?;
        Ok(Response::new(convert::ranked_to_proto(ranked)))
    }
}
