//! `RankingService`: the handler, and the server that decodes its requests with fitrank's own
//! [`wire::RankRequest`].
//!
//! The generated `RankingServiceServer` would decode `pb::RankRequest`, one `String` per candidate
//! id. [`RankingServer`] is the same service (same name, same method path, same codec otherwise)
//! with the ids decoded into one buffer. Clients are unchanged: they send the generated type.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{Limits, convert, wire};
use crate::domain::now_ms;
use crate::proto::v1::{RankResponse, ranking_service_server::SERVICE_NAME};
use crate::ranking::{RankLatency, Ranker};

/// The `RankingService` handler.
pub struct RankingApi {
    pub ranker: Ranker,
    pub limits: Limits,
    /// Server-side time of each ranking (read by `AdminService.GetRankLatency`).
    pub latency: Arc<RankLatency>,
}

impl RankingApi {
    /// `Rank`: scores and orders live sessions for one user.
    pub async fn rank(&self, request: Request<wire::RankRequest>) -> Result<Response<RankResponse>, Status> {
        let started = std::time::Instant::now();
        let result = self.rank_request(request).await;
        self.latency.record(started.elapsed(), result.is_ok());
        result
    }

    async fn rank_request(&self, request: Request<wire::RankRequest>) -> Result<Response<RankResponse>, Status> {
        let deadline = grpc_timeout(request.metadata()).map(|t| std::time::Instant::now() + t);
        let query = convert::rank_query(request.into_inner(), &self.limits, now_ms())?;
        // The shared store gets half of what is left of the caller's deadline, so that a slow
        // Redis still leaves time to answer (degraded) before the caller gives up.
        let ranked = crate::store::with_read_deadline(deadline, self.ranker.rank(query)).await?;
        Ok(Response::new(convert::ranked_to_proto(ranked)))
    }
}

/// The `fitrank.v1.RankingService` server: routes `Rank` to [`RankingApi`], decoding requests as
/// [`wire::RankRequest`]; any other method is `UNIMPLEMENTED`.
#[derive(Clone)]
pub struct RankingServer(Arc<RankingApi>);

impl RankingServer {
    pub fn new(api: RankingApi) -> RankingServer {
        RankingServer(Arc::new(api))
    }
}

impl NamedService for RankingServer {
    const NAME: &'static str = SERVICE_NAME;
}

/// The path of `Rank`.
const RANK_PATH: &str = "/fitrank.v1.RankingService/Rank";

impl<B> Service<http::Request<B>> for RankingServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != RANK_PATH {
            let status = Status::unimplemented(format!("{} has no method {}", SERVICE_NAME, request.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let method = RankMethod(self.0.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::<RankResponse, wire::RankRequest>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// `Rank` as tonic's unary service.
struct RankMethod(Arc<RankingApi>);

impl UnaryService<wire::RankRequest> for RankMethod {
    type Response = RankResponse;
    type Future = BoxFuture<Response<RankResponse>, Status>;

    fn call(&mut self, request: Request<wire::RankRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.rank(request).await })
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
