//! A tower layer that counts every gRPC call by method and status code and times it.
//!
//! The code is read where gRPC puts it: in the response headers for a call answered with an error
//! at once (a "trailers-only" response), otherwise in the trailers after the last message, so the
//! response body is wrapped and watched until it ends. A call whose body is dropped before it
//! ends (the client went away) counts as `CANCELLED`; a call refused before a response exists
//! (load shedding) as `RESOURCE_EXHAUSTED`. Methods outside the served descriptor sets are
//! counted under `other`, so no client can create label values. A call that carries a W3C
//! `traceparent` runs in a span holding its trace id, which JSON log lines include.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tonic::Code;

use super::Telemetry;

/// Counts and times calls for [`Telemetry`].
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    telemetry: Arc<Telemetry>,
    known: Arc<HashSet<String>>,
}

impl GrpcMetricsLayer {
    /// Labels calls with their full method path (`/package.Service/Method`) when it is one of
    /// `known`.
    pub fn new(telemetry: Arc<Telemetry>, known: HashSet<String>) -> Self {
        GrpcMetricsLayer { telemetry, known: Arc::new(known) }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, telemetry: self.telemetry.clone(), known: self.known.clone() }
    }
}

/// The service [`GrpcMetricsLayer`] wraps.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
    known: Arc<HashSet<String>>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Body + Unpin,
{
    type Response = http::Response<MeteredBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.known.contains(path) { path.to_owned() } else { "other".to_owned() };
        let trace_id = request.headers().get("traceparent").and_then(trace_id).map(str::to_owned);
        let call = Call { telemetry: self.telemetry.clone(), method, started: Instant::now() };
        // A caller that sends a W3C traceparent gets its trace id on every log line of the call.
        let span = match &trace_id {
            // At the highest level, so that every enabled log line of the call finds it.
            Some(id) => tracing::error_span!("call", trace_id = %id, method = %call.method),
            None => tracing::Span::none(),
        };
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(tracing::Instrument::instrument(
            async move {
                match response.await {
                    Ok(response) => {
                        let code = response.headers().get("grpc-status").and_then(code_of);
                        Ok(response.map(|inner| MeteredBody { inner, call: Some(call), code }))
                    }
                    Err(e) => {
                        call.finish(Code::ResourceExhausted);
                        Err(e)
                    }
                }
            },
            span,
        ))
    }
}

/// One call being timed.
struct Call {
    telemetry: Arc<Telemetry>,
    method: String,
    started: Instant,
}

impl Call {
    fn finish(self, code: Code) {
        let m = &self.telemetry.metrics;
        m.grpc_requests.get_or_create(&[("method", self.method.clone()), ("code", code_name(code).to_owned())]).inc();
        m.grpc_duration.get_or_create(&[("method", self.method)]).observe(self.started.elapsed().as_secs_f64());
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`),
/// if the header is well formed and the id is not all zeros.
fn trace_id(value: &http::HeaderValue) -> Option<&str> {
    let mut parts = value.to_str().ok()?.split('-');
    let (version, id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = hex(version, 2) && version != "ff" && hex(id, 32) && hex(parent, 16) && hex(flags, 2);
    (valid && id.bytes().any(|b| b != b'0')).then_some(id)
}

fn code_of(value: &http::HeaderValue) -> Option<Code> {
    value.to_str().ok()?.parse::<i32>().ok().map(Code::from_i32)
}

/// The code's name as gRPC spells it (`OK`, `INVALID_ARGUMENT`, ...).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A response body that records its call when it ends.
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
    /// The code from the headers, if the response carried it there.
    code: Option<Code>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: Code) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| t.get("grpc-status")).and_then(code_of) {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Code::Unknown),
            Poll::Ready(None) => {
                let code = self.code.unwrap_or(Code::Unknown);
                self.finish(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // A body dropped before it ended: a trailers-only answer whose body was never polled, or a
        // client that went away.
        let code = self.code.unwrap_or(Code::Cancelled);
        self.finish(code);
    }
}

#[cfg(test)]
mod tests {
    use super::trace_id;

    #[test]
    fn reads_w3c_trace_ids() {
        let id = |s: &str| trace_id(&http::HeaderValue::from_str(s).unwrap()).map(str::to_owned);
        assert_eq!(
            id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(id("00-4bf92f35-00f067aa0ba902b7-01"), None);
        assert_eq!(id("garbage"), None);
    }
}
