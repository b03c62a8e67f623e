//! TLS and mTLS on the gRPC port (`[tls]`), with certificates re-read when they are rotated; and,
//! with `tls.http`, TLS on the HTTP port too (the same certificate, HTTP/1.1, no client
//! certificates: the console's users sign in with tokens).
//!
//! Each accepted connection is handed to a TLS handshake of its own task (bounded by
//! [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up the others. A handshake uses
//! the [`ServerConfig`] current when it starts: [`TlsReloader::reload_if_changed`], run every
//! `tls.reload_ms`, builds a new one when the certificate, key or client CA files changed, and
//! keeps the previous one (saying so in the log) when the new files do not make a valid
//! configuration, for example a certificate already written but its key not yet. Connections
//! already open keep the certificate they started with.
//!
//! With `tls.client_ca`, clients present certificates signed by that CA (mTLS); the access
//! check ([`crate::access`]) maps a certificate's DNS name to roles. With
//! `tls.client_cert_required = false`, clients without a certificate are let through the
//! handshake (and then need a bearer token).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;

use super::connections::{LimitedConn, LimitedIncoming};
use crate::config::TlsConfig;

/// Longest a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    ClientCa(String),
    #[error("tls.cert and tls.key are both needed")]
    Incomplete,
}

/// The files one server configuration is built from.
#[derive(Debug, Clone, PartialEq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// The server's TLS configuration, rebuilt when its files change.
#[derive(Debug)]
pub struct TlsReloader {
    settings: TlsConfig,
    /// The protocol offered by ALPN: `h2` on the gRPC port, `http/1.1` on the HTTP port.
    alpn: &'static [u8],
    current: RwLock<Arc<ServerConfig>>,
    /// The files in force, and the last ones refused.
    files: Mutex<(Files, Option<Files>)>,
}

impl TlsReloader {
    /// Builds the configuration; an unusable one is an error.
    pub fn load(settings: &TlsConfig) -> Result<TlsReloader, TlsError> {
        Self::load_with(settings.clone(), b"h2")
    }

    /// The HTTP port's configuration: the same certificate, HTTP/1.1, no client certificates.
    pub fn load_for_http(settings: &TlsConfig) -> Result<TlsReloader, TlsError> {
        Self::load_with(TlsConfig { client_ca: None, ..settings.clone() }, b"http/1.1")
    }

    fn load_with(settings: TlsConfig, alpn: &'static [u8]) -> Result<TlsReloader, TlsError> {
        let files = read_files(&settings)?;
        let config = build(&settings, &files, alpn)?;
        Ok(TlsReloader { alpn, settings, current: RwLock::new(Arc::new(config)), files: Mutex::new((files, None)) })
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the files; takes them when they changed and make a valid configuration. Whether
    /// the configuration changed.
    pub fn reload_if_changed(&self) -> bool {
        let Ok(files) = read_files(&self.settings) else {
            return false;
        };
        let mut held = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files == held.0 || held.1.as_ref() == Some(&files) {
            return false;
        }
        match build(&self.settings, &files, self.alpn) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                *held = (files, None);
                tracing::info!("TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS files refused; the previous certificate stays in use");
                held.1 = Some(files);
                false
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn read_files(s: &TlsConfig) -> Result<Files, TlsError> {
    let (cert, key) =
        s.cert_and_key().ok_or_else(|| TlsError::ClientCa("tls.cert and tls.key are both needed".into()))?;
    Ok(Files { cert: read(cert)?, key: read(key)?, client_ca: s.client_ca.as_deref().map(read).transpose()? })
}

/// The rustls server configuration of `files`: `alpn` offered, and client certificates checked
/// against the client CA when there is one.
fn build(s: &TlsConfig, files: &Files, alpn: &[u8]) -> Result<ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_path, key_path) = s.cert_and_key().ok_or(TlsError::Incomplete)?;
    let pem =
        |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem { path: path.to_owned(), message: e.to_string() };
    let chain =
        CertificateDer::pem_slice_iter(&files.cert).collect::<Result<Vec<_>, _>>().map_err(|e| pem(cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert_path.to_owned(), message: "no certificate in the file".into() });
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| pem(key_path, e))?;
    // ring, not aws-lc-rs: it builds in seconds where aws-lc-sys takes minutes and cmake on this
    // project's 2-core machines (docs/ARCHITECTURE.md); rustls marks it deprecated for lacking
    // post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match (&files.client_ca, &s.client_ca) {
        (Some(ca), Some(ca_path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert.map_err(|e| pem(ca_path, e))?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if s.client_cert_required { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::ClientCa(e.to_string()))?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The connections of `plain` after their TLS handshakes, in the order the handshakes finish; a
/// failed or timed-out handshake closes its connection and is logged at debug level.
pub(super) fn incoming(
    plain: LimitedIncoming,
    tls: Arc<TlsReloader>,
    concurrent: usize,
) -> impl Stream<Item = io::Result<TlsStream<LimitedConn>>> + Send + 'static {
    plain
        .map(move |conn| {
            let tls = tls.clone();
            tokio::spawn(async move {
                let conn = conn?;
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
                }
            })
        })
        .buffer_unordered(concurrent.max(1))
        .filter_map(|joined| async move {
            match joined {
                Ok(Ok(stream)) => Some(Ok(stream)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS handshake task failed");
                    None
                }
            }
        })
}
