//! The HTTP port, for people and scrapers: `GET /metrics` (Prometheus' text format),
//! `GET /healthz` (the process answers), `GET /readyz` (it should get traffic: a model serves,
//! the store is reachable, shutdown has not begun) and the operator console under `/console`
//! ([`crate::console`]). HTTP/1.1, a handful of routes: hyper's own connection builder, no web
//! framework.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::store::Store;
use crate::telemetry::Telemetry;

/// What the routes read.
#[derive(Clone)]
pub(super) struct HttpState {
    pub telemetry: Arc<Telemetry>,
    pub store: Arc<dyn Store>,
    /// True once shutdown has begun.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// The operator console, when enabled.
    pub console: Option<Arc<crate::console::Console>>,
    /// TLS on this port (`tls.http`), if on.
    pub tls: Option<Arc<super::tls::TlsReloader>>,
}

/// Serves `listener` until the task is dropped.
pub(super) async fn serve(listener: TcpListener, state: HttpState) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP port: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            match state.tls.clone() {
                None => connection(stream, peer, state).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, peer, state).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "HTTP port: TLS handshake failed"),
                        Err(_) => tracing::debug!("HTTP port: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection, plain or after its TLS handshake.
async fn connection<S>(stream: S, peer: std::net::SocketAddr, state: HttpState)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, request, peer).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "HTTP port: connection ended with an error");
    }
}

async fn route(state: &HttpState, request: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == "/console" || path.starts_with("/console/") {
        return match &state.console {
            Some(console) => console.handle(request, Some(peer)).await,
            None => text(StatusCode::NOT_FOUND, "the console is disabled ([console] enabled = false)\n"),
        };
    }
    if path == "/" {
        let mut response = text(StatusCode::FOUND, "the console is at /console/\n");
        response.headers_mut().insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static("/console/"));
        return response;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.telemetry.encode())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match not_ready(state) {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: try /console/, /metrics, /healthz or /readyz\n"),
    }
}

/// Why the service should not get traffic, if it should not.
fn not_ready(state: &HttpState) -> Option<&'static str> {
    if *state.draining.borrow() {
        return Some("shutting down");
    }
    if !state.store.status().reachable {
        return Some("the store is unreachable");
    }
    None
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
