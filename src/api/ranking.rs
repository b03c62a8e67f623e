//! `RankingService`: the handler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::{Limits, convert};
use crate::domain::now_ms;
use crate::proto::v1::{RankRequest, RankResponse, ranking_service_server::RankingService};
use crate::ranking::{RankLatency, Ranker};

/// The `RankingService` handler.
pub struct RankingApi {
    pub ranker: Ranker,
    pub limits: Limits,
    /// Server-side time of each ranking (read by `AdminService.GetRankLatency`).
    pub latency: Arc<RankLatency>,
    /// Metrics of what each ranking did.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

#[tonic::async_trait]
impl RankingService for RankingApi {
    /// `Rank`: scores and orders live sessions for one user.
    async fn rank(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let started = Instant::now();
        let result = self.rank_request(request).await;
        self.latency.record(started.elapsed(), result.is_ok());
        result
    }
}

impl RankingApi {
    async fn rank_request(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let deadline = grpc_timeout(request.metadata()).map(|t| Instant::now() + t);
        let mut query = convert::rank_query(request.into_inner(), &self.limits, now_ms())?;
        query.deadline = deadline;
        let ranked = self.ranker.rank(query).await?;
        self.telemetry.metrics.record_rank(&ranked);
        Ok(Response::new(convert::ranked_to_proto(ranked)))
    }
}

/// The caller's deadline from the `grpc-timeout` header (e.g. `"50m"`: 50 ms), if it sent one.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grpc_timeouts() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(&m), None);
        for (v, ms) in [("50m", 50), ("2S", 2_000), ("1M", 60_000), ("7000u", 7)] {
            m.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(ms)), "{v}");
        }
        m.insert("grpc-timeout", "5x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }
}
