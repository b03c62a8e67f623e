//! How clients reach a service: plaintext or TLS (verified, never downgraded), optionally with a
//! client certificate (mTLS) and a bearer token on every call.

use std::path::PathBuf;

use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where the service is and how to prove who is calling.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Service address: `http://HOST:PORT`, or `https://HOST:PORT` for TLS (the certificate is
    /// verified; an `https` address never falls back to plaintext).
    #[arg(long, env = "FITRANK_URL", default_value = "http://127.0.0.1:50051")]
    pub url: String,
    /// CA certificates (PEM) the server's certificate must chain to; default the system's roots.
    #[arg(long, env = "FITRANK_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; needs --key.
    #[arg(long, env = "FITRANK_CLIENT_CERT")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "FITRANK_CLIENT_KEY")]
    pub key: Option<PathBuf>,
    /// Bearer token sent with every call (`authorization: Bearer <token>`).
    #[arg(long, env = "FITRANK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ConnectArgs {
    /// Plaintext to `url`, without credentials.
    pub fn plain(url: impl Into<String>) -> Self {
        ConnectArgs { url: url.into(), ca: None, cert: None, key: None, token: None }
    }
}

/// Adds the bearer token to every call.
#[derive(Clone, Debug)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection every generated client can use.
pub type Conn = InterceptedService<Channel, BearerToken>;

type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// The endpoint `args` describe, with TLS for an `https` address.
pub fn endpoint(args: &ConnectArgs) -> Result<Endpoint, ConnectError> {
    let endpoint = Endpoint::from_shared(args.url.clone())?;
    let https = args.url.starts_with("https://");
    if !https && (args.ca.is_some() || args.cert.is_some()) {
        return Err(format!("--ca and --cert need an https:// address, not {}", args.url).into());
    }
    if !https {
        return Ok(endpoint);
    }
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut tls = ClientTlsConfig::new();
    tls = match &args.ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => tls.with_native_roots(),
    };
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => return Err("--cert and --key go together".into()),
    }
    Ok(endpoint.tls_config(tls)?)
}

/// Connects as `args` say.
pub async fn connect(args: &ConnectArgs) -> Result<Conn, ConnectError> {
    let token = match &args.token {
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| "--token: not a valid header value")?,
        ),
        None => None,
    };
    let channel = endpoint(args)?.connect().await.map_err(|e| format!("cannot connect to {}: {e:?}", args.url))?;
    Ok(InterceptedService::new(channel, BearerToken(token)))
}
