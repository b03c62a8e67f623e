//! How connections are accepted, kept and limited (`[connections]`, [`crate::config::ConnectionConfig`]).
//!
//! Two guards beyond tonic's builder settings: a cap on open connections, enforced at accept (a
//! connection over the cap is closed at once, so a flood of idle connections cannot use up the
//! process's file descriptors and lock out real clients), and a global cap on calls in progress
//! that sheds the excess with `RESOURCE_EXHAUSTED`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tower::layer::util::{Identity, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::access::{Access, AccessLayer};
use crate::telemetry::grpc::GrpcMetricsLayer;

/// The layers every call passes, outermost first: metrics, load shedding, the in-flight limit,
/// the access check.
type Layers =
    Stack<AccessLayer, Stack<GlobalConcurrencyLimitLayer, Stack<LoadShedLayer, Stack<GrpcMetricsLayer, Identity>>>>;

/// The server builder with `[connections]` applied: HTTP/2 keepalive and limits, connection age,
/// every call counted and timed ([`GrpcMetricsLayer`]), and a global limit on calls in progress
/// that sheds the excess with `RESOURCE_EXHAUSTED` (tower's load shedding over one semaphore
/// shared by every connection), then the access check ([`AccessLayer`]), whose refusals are
/// counted like any other answer.
pub(super) fn connection_settings(
    c: &crate::config::ConnectionConfig,
    telemetry: Arc<crate::telemetry::Telemetry>,
    access: Access,
) -> tonic::transport::Server<Layers> {
    let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(ms(c.keepalive_interval_ms))
        .http2_keepalive_timeout(ms(c.keepalive_timeout_ms))
        .max_concurrent_streams(c.max_concurrent_streams)
        .http2_max_pending_accept_reset_streams(Some(c.max_pending_accept_reset_streams))
        .http2_max_local_error_reset_streams(Some(c.max_local_error_reset_streams));
    if c.max_connection_age_secs > 0 {
        builder = builder.max_connection_age(Duration::from_secs(c.max_connection_age_secs));
    }
    builder
        .layer(GrpcMetricsLayer::new(telemetry, served_methods()))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(c.max_in_flight))
        .layer(AccessLayer::new(access))
}

/// The method paths this server serves (`/package.Service/Method`), from the descriptor sets.
fn served_methods() -> std::collections::HashSet<String> {
    use prost::Message;
    let mut out = std::collections::HashSet::new();
    for encoded in [crate::proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else { continue };
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    out.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    for version in ["v1", "v1alpha"] {
        out.insert(format!("/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"));
    }
    out
}

/// Accepted connections, at most `max` open at once.
pub(super) struct LimitedIncoming {
    inner: TcpIncoming,
    open: Arc<Semaphore>,
    max: usize,
    refused: u64,
}

impl LimitedIncoming {
    /// At most `max` connections open at once (capped below the process's file descriptor limit,
    /// leaving room for the store's and the logs' files).
    pub(super) fn new(inner: TcpIncoming, max: usize) -> Self {
        let max = max.min(descriptor_room()).max(1);
        LimitedIncoming { inner, open: Arc::new(Semaphore::new(max)), max, refused: 0 }
    }
}

impl Stream for LimitedIncoming {
    type Item = io::Result<LimitedConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let stream = match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => return Poll::Ready(Some(Ok(LimitedConn { stream, _permit: permit }))),
                Err(_) => {
                    drop(stream);
                    self.refused += 1;
                    if self.refused.is_power_of_two() {
                        tracing::warn!(
                            max = self.max,
                            refused = self.refused,
                            "connection limit reached; new connections are closed"
                        );
                    }
                }
            }
        }
    }
}

/// File descriptors this process may use for connections: its soft limit less 256 for files.
fn descriptor_room() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX).saturating_sub(256)
}

/// An accepted connection holding its place under the cap until it closes.
pub(super) struct LimitedConn {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for LimitedConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
