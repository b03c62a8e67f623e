//! `RankingService`.

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
    pub latency: std::sync::Arc<RankLatency>,
}

#[tonic::async_trait]
impl RankingService for RankingApi {
    async fn rank(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let started = std::time::Instant::now();
        let result = self.rank_request(request).await;
        self.latency.record(started.elapsed(), result.is_ok());
        result
    }
}

impl RankingApi {
    async fn rank_request(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let deadline = grpc_timeout(request.metadata()).map(|t| std::time::Instant::now() + t);
        let query = convert::rank_query(request.into_inner(), &self.limits, now_ms())?;
        // The shared store gets half of what is left of the caller's deadline, so that a slow
        // Redis still leaves time to answer (degraded) before the caller gives up.
        let ranked = crate::store::with_read_deadline(deadline, self.ranker.rank(query)).await?;
        Ok(Response::new(convert::ranked_to_proto(ranked)))
    }
}

/// The caller's deadline from the `grpc-timeout` header (e.g. `"50m"`: 50 ms), if it sent one.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    use std::time::Duration;
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
            assert_eq!(grpc_timeout(&m), Some(std::time::Duration::from_millis(ms)), "{v}");
        }
        m.insert("grpc-timeout", "5x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }
}
