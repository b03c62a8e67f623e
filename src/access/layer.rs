//! The access check, as a tower layer every gRPC call passes before its handler.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::{Access, Caller, Need, Roles, Via, need};

/// Checks each call's credentials against [`Access`] and leaves the [`Caller`] in its extensions.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    access: Access,
}

impl AccessLayer {
    pub fn new(access: Access) -> Self {
        AccessLayer { access }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessCheck { inner, access: self.access.clone() }
    }
}

/// The service [`AccessLayer`] wraps.
#[derive(Debug, Clone)]
pub struct AccessCheck<S> {
    inner: S,
    access: Access,
}

impl<S, B, RB> tower::Service<http::Request<B>> for AccessCheck<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match check(&self.access, &request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Left(self.inner.call(request))
            }
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

/// The caller of `request`, or the status that refuses it.
fn check<B>(access: &Access, request: &http::Request<B>) -> Result<Caller, Status> {
    let (peer, certificates) = connection(request);
    let source = match access {
        Access::Open => return Ok(Caller::anonymous(peer)),
        Access::Enforced(source) => source,
    };
    let path = request.uri().path();
    let need = need(path);
    if need == Need::Nothing {
        return Ok(Caller { name: Arc::from("anonymous"), roles: Roles::default(), via: Via::Open, peer });
    }
    let rules = source.rules();
    let (entry, via) = if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
        let token =
            bearer(value).ok_or_else(|| Status::unauthenticated("authorization: expected \"Bearer <token>\""))?;
        let entry = rules.token(token).cloned().ok_or_else(|| {
            tracing::debug!(?peer, "unknown or revoked token");
            Status::unauthenticated("authorization: unknown or revoked token")
        })?;
        (entry, Via::Token)
    } else if let Some(der) = certificates.as_ref().and_then(|c| c.first()) {
        let entry = rules.certificate(der.as_ref()).ok_or_else(|| {
            tracing::debug!(?peer, "client certificate not in the access file");
            Status::unauthenticated("client certificate: no DNS name of it is in the access file")
        })?;
        (entry, Via::Certificate)
    } else {
        return Err(Status::unauthenticated(
            "missing credentials: send \"authorization: Bearer <token>\" or a client certificate",
        ));
    };
    if let Need::Role(role) = need
        && !entry.roles.allows(role)
    {
        tracing::warn!(caller = %entry.name, roles = %entry.roles.names(), method = path, "permission denied");
        return Err(Status::permission_denied(format!(
            "{} needs the {} role; {} holds {}",
            crate::text::quote(path),
            role.name(),
            crate::text::quote(&entry.name),
            entry.roles.names()
        )));
    }
    Ok(Caller { name: entry.name, roles: entry.roles, via, peer })
}

/// The peer's address and, over TLS, its verified certificate chain.
fn connection<B>(
    request: &http::Request<B>,
) -> (Option<std::net::SocketAddr>, Option<Arc<Vec<tonic::transport::CertificateDer<'static>>>>) {
    let ext = request.extensions();
    if let Some(tls) = ext.get::<TlsConnectInfo<TcpConnectInfo>>() {
        return (tls.get_ref().remote_addr(), tls.peer_certs());
    }
    (ext.get::<TcpConnectInfo>().and_then(|c| c.remote_addr()), None)
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
