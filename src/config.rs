//! Server configuration, layered: built-in defaults < TOML file < environment < command-line flags.
//!
//! The file is optional and strict (`deny_unknown_fields`: a misspelt key is an error, not a silent
//! default). Environment variables and flags cover the settings operators change per deployment
//! (`FITRANK_ADDR` / `--addr`, `FITRANK_HTTP_ADDR` / `--http-addr`, `FITRANK_MODELS` / `--models`, `FITRANK_DATA_DIR` / `--data-dir`,
//! `FITRANK_MODEL_NAME` / `--model-name`); clap applies "flag over environment", and
//! [`Config::apply`] puts both over the file.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::api::Limits;
use crate::featurelog::FeatureLogConfig;
use crate::policy::Policy;

/// Everything `fitrank serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Address of the HTTP port (`/metrics`, `/healthz`, `/readyz`); `None` = no HTTP port.
    pub http_addr: Option<SocketAddr>,
    /// Request-serving threads; 0 = one per core.
    pub worker_threads: usize,
    /// Folder holding `<name>/<version>/` model artifacts.
    pub models_dir: PathBuf,
    /// Model name served (a folder under `models_dir`); its newest version loads at start.
    pub model_name: String,
    /// How often the models folder is checked for a newer version, ms; 0 = never (admin RPCs only).
    pub model_poll_ms: u64,
    /// Where online state lives: `embedded` (this process, made durable in `data_dir`), or shared
    /// by every replica in Redis: `redis://HOST:PORT[/DB]`, or `redis+cluster://HOST:PORT,HOST:PORT`
    /// (seed nodes of a Redis Cluster).
    pub store: String,
    /// Settings of the Redis store.
    pub redis: crate::store::RedisStoreConfig,
    /// Folder of the embedded store's log, the experiments file and the feature log.
    pub data_dir: PathBuf,
    /// fdatasync every store write (survive power loss, not only process death).
    pub fsync: bool,
    /// How long event ids are remembered for de-duplication, seconds.
    pub dedup_window_secs: u64,
    /// Most candidates in one `Rank`, and most live sessions considered when none are named.
    pub max_candidates: usize,
    /// Items returned when a `Rank` request sends `limit = 0`.
    pub default_limit: usize,
    /// Most users, sessions or events in one batch call.
    pub max_batch: usize,
    /// After a shutdown signal, health reports NOT_SERVING for this long before the listener
    /// closes, so load balancers stop sending new calls.
    pub shutdown_drain_ms: u64,
    /// Longest wait for in-flight calls after the listener closes.
    pub shutdown_timeout_secs: u64,
    /// HTTP/2 and connection settings, load shedding.
    pub connections: ConnectionConfig,
    /// TLS on the gRPC port (off unless a certificate and key are given).
    pub tls: TlsConfig,
    /// Who may call what (open unless an access file is given).
    pub access: AccessConfig,
    /// The audit log's file with the embedded store; default `<data_dir>/audit.jsonl`.
    pub audit_file: Option<PathBuf>,
    /// How predictions combine into the ranking score.
    pub policy: Policy,
    /// What was served and what happened, for training.
    pub feature_log: FeatureLogConfig,
    /// Where experiment definitions persist; default `<data_dir>/experiments.json`.
    pub experiments_file: Option<PathBuf>,
    /// With the Redis store, how often shared experiment definitions are re-read, ms.
    pub experiments_refresh_ms: u64,
    /// Experiments added at start when the experiments file has none of that name.
    pub experiments: Vec<crate::experiment::ExperimentDef>,
    /// The global holdout, applied when the experiments file has none.
    pub holdout: Option<crate::experiment::Holdout>,
    /// The operator console on the HTTP port.
    pub console: ConsoleConfig,
}

/// The operator console (`[console]`), served on the HTTP port under `/console/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console (it needs the HTTP port).
    pub enabled: bool,
    /// How long a login lasts, minutes.
    pub login_minutes: u64,
    /// How often open pages refresh, ms.
    pub refresh_ms: u64,
    /// How often the console samples the service's counters for its charts, ms; live sessions are
    /// sampled every fifth time.
    pub sample_ms: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { enabled: true, login_minutes: 720, refresh_ms: 2_000, sample_ms: 2_000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:50051".parse().expect("valid default address"),
            http_addr: Some("127.0.0.1:50052".parse().expect("valid default address")),
            worker_threads: 0,
            models_dir: "models".into(),
            model_name: "default".into(),
            model_poll_ms: 5_000,
            store: "embedded".into(),
            redis: crate::store::RedisStoreConfig::default(),
            data_dir: "data".into(),
            fsync: false,
            dedup_window_secs: 86_400,
            max_candidates: 2_000,
            default_limit: 50,
            max_batch: 10_000,
            shutdown_drain_ms: 500,
            shutdown_timeout_secs: 30,
            connections: ConnectionConfig::default(),
            tls: TlsConfig::default(),
            access: AccessConfig::default(),
            audit_file: None,
            policy: Policy::default(),
            feature_log: FeatureLogConfig::default(),
            experiments_file: None,
            experiments_refresh_ms: 1_000,
            experiments: Vec::new(),
            holdout: None,
            console: ConsoleConfig::default(),
        }
    }
}

/// How connections and streams are kept, limited and closed (`[connections]`).
///
/// Feed services share few long-lived HTTP/2 connections among many callers, each call with a
/// deadline: under load, many calls are cancelled (`RST_STREAM`) before the server accepted them,
/// and hyper's defaults (20 such streams at once; 1,024 error resets over a connection's life)
/// then close the whole shared connection, failing every call on it. The limits here stay bounded
/// (they guard against rapid-reset floods) but fit that traffic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// HTTP/2 PING interval, ms (0 = none); a peer that does not answer within
    /// `keepalive_timeout_ms` is disconnected, so dead clients' connections and streams close.
    pub keepalive_interval_ms: u64,
    /// How long a PING may go unanswered, ms.
    pub keepalive_timeout_ms: u64,
    /// Most concurrent calls (streams) on one connection.
    pub max_concurrent_streams: u32,
    /// Most streams cancelled by the client before the server accepted them, at once, before the
    /// connection is closed (`ENHANCE_YOUR_CALM`).
    pub max_pending_accept_reset_streams: usize,
    /// Most streams the server's HTTP/2 layer may reset on errors over one connection's life.
    pub max_local_error_reset_streams: usize,
    /// An `Ingest` stream that sends nothing for this long is ended `UNAVAILABLE` (what it sent is
    /// stored; resent events count once), secs.
    pub stream_idle_timeout_secs: u64,
    /// Connections older than this are asked to reconnect (GOAWAY, then `max_connection_age`'s
    /// grace of `shutdown_timeout_secs`), so idle ones do not pile up, secs; 0 = never.
    pub max_connection_age_secs: u64,
    /// Most calls in progress at once over all connections; above it a call is refused at once
    /// with `RESOURCE_EXHAUSTED` instead of queueing.
    pub max_in_flight: usize,
    /// Most connections open at once (also kept 256 below the file descriptor limit); a new
    /// connection over it is closed at once.
    pub max_connections: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            max_concurrent_streams: 1_024,
            max_pending_accept_reset_streams: 1_024,
            max_local_error_reset_streams: 1 << 20,
            stream_idle_timeout_secs: 300,
            max_connection_age_secs: 3_600,
            max_in_flight: 4_096,
            max_connections: 10_000,
        }
    }
}

/// TLS on the gRPC port (`[tls]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates: turns on client-certificate
    /// verification (mTLS).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate at the handshake (otherwise they
    /// are let through and need a bearer token).
    pub client_cert_required: bool,
    /// How often the files are checked for a rotated certificate, ms.
    pub reload_ms: u64,
    /// Serve the HTTP port (the console, `/metrics`, health) over TLS too, with the same
    /// certificate and without client certificates. Browsers keep the console's `Secure` login
    /// cookie only over HTTPS (or from `localhost`), so a console reached over the network needs
    /// this or a TLS-terminating proxy in front.
    pub http: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { cert: None, key: None, client_ca: None, client_cert_required: true, reload_ms: 10_000, http: false }
    }
}

impl TlsConfig {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// The certificate and key files, when both are set.
    pub fn cert_and_key(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// Who may call what (`[access]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The access file: hashed bearer tokens and client-certificate names with their roles
    /// ([`crate::access::file`]). Without it every caller may call everything.
    pub file: Option<PathBuf>,
    /// Serve without an access file on an address other than loopback. Without this, such a
    /// start is refused: anyone who reaches the port could change experiments and models.
    pub allow_open_admin: bool,
    /// How often the access file is checked for changes, ms.
    pub reload_ms: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig { file: None, allow_open_admin: false, reload_ms: 2_000 }
    }
}

/// Settings given by flags or environment; `None` keeps the file's or default value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub models_dir: Option<PathBuf>,
    pub model_name: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub access_file: Option<PathBuf>,
    /// `Some(true)` allows an open `AdminService` on a non-loopback address.
    pub allow_open_admin: Option<bool>,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file` (if any), then `overrides`; validated.
    pub fn load(file: Option<&std::path::Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let base = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?
            }
        };
        let config = base.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// This configuration with `o`'s settings on top.
    pub fn apply(mut self, o: Overrides) -> Self {
        if let Some(v) = o.addr {
            self.addr = v;
        }
        if let Some(v) = o.http_addr {
            self.http_addr = Some(v);
        }
        if let Some(v) = o.models_dir {
            self.models_dir = v;
        }
        if let Some(v) = o.model_name {
            self.model_name = v;
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.store {
            self.store = v;
        }
        if let Some(v) = o.tls_cert {
            self.tls.cert = Some(v);
        }
        if let Some(v) = o.tls_key {
            self.tls.key = Some(v);
        }
        if let Some(v) = o.tls_client_ca {
            self.tls.client_ca = Some(v);
        }
        if let Some(v) = o.access_file {
            self.access.file = Some(v);
        }
        if let Some(v) = o.allow_open_admin {
            self.access.allow_open_admin = v;
        }
        self
    }

    /// Checks ranges and the policy.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.max_candidates == 0 {
            return invalid("max_candidates must be at least 1".into());
        }
        if self.default_limit == 0 || self.default_limit > self.max_candidates {
            return invalid(format!("default_limit must be from 1 to max_candidates ({})", self.max_candidates));
        }
        if self.max_batch == 0 {
            return invalid("max_batch must be at least 1".into());
        }
        if self.store != "embedded" && self.redis_target().is_none() {
            return invalid(format!(
                "store must be \"embedded\", \"redis://HOST:PORT\" or \"redis+cluster://HOST:PORT,...\", not {:?}",
                self.store
            ));
        }
        let c = &self.connections;
        if [c.max_concurrent_streams as usize, c.max_in_flight, c.max_connections, c.stream_idle_timeout_secs as usize]
            .contains(&0)
        {
            return invalid(
                "connections.max_concurrent_streams, max_in_flight, max_connections and stream_idle_timeout_secs \
                 must be at least 1"
                    .into(),
            );
        }
        if self.redis.read_timeout_ms == 0 || self.redis.write_timeout_ms == 0 {
            return invalid("redis.read_timeout_ms and redis.write_timeout_ms must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.redis.events_per_call) {
            return invalid(format!("redis.events_per_call must be 1 to 10000, not {}", self.redis.events_per_call));
        }
        if self.tls.enabled() && self.tls.cert_and_key().is_none() {
            return invalid("tls.cert and tls.key must be given together".into());
        }
        if self.tls.client_ca.is_some() && !self.tls.enabled() {
            return invalid("tls.client_ca needs tls.cert and tls.key".into());
        }
        if let Some(refusal) = self.open_admin_refusal(self.addr) {
            return invalid(refusal);
        }
        self.policy.validate().map_err(ConfigError::Invalid)
    }

    /// Why serving on `addr` with these settings is refused: without an access file, on an address
    /// other than loopback, unless `access.allow_open_admin`.
    pub fn open_admin_refusal(&self, addr: SocketAddr) -> Option<String> {
        (self.access.file.is_none() && !self.access.allow_open_admin && !addr.ip().is_loopback()).then(|| {
            format!(
                "refusing to serve {addr} without access control: anyone who reaches it could change experiments \
                 and models. Give an access file (--access-file, access.file), or allow an open AdminService \
                 explicitly (--allow-open-admin, access.allow_open_admin = true)"
            )
        })
    }

    /// The audit log's file (embedded store).
    pub fn audit_path(&self) -> PathBuf {
        self.audit_file.clone().unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    /// The Redis deployment named by `store`, if any.
    pub fn redis_target(&self) -> Option<crate::store::redis::Target> {
        crate::store::redis::Target::parse(&self.store)
    }

    /// The experiments file.
    pub fn experiments_path(&self) -> PathBuf {
        self.experiments_file.clone().unwrap_or_else(|| self.data_dir.join("experiments.json"))
    }

    /// Folder of the feature log.
    pub fn feature_log_dir(&self) -> PathBuf {
        self.feature_log.dir.clone().unwrap_or_else(|| self.data_dir.join("featurelog"))
    }

    /// The request limits derived from this configuration.
    pub fn limits(&self) -> Limits {
        Limits { max_candidates: self.max_candidates, default_limit: self.default_limit, max_batch: self.max_batch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[holdout]\nsalt = \"h\"\nshare = 0.02\n[[experiments]]\nname = \"e\"\nlayer = \"policy\"\ncoverage = 0.1\n\
             arms = [ { name = \"control\", weight = 1.0 }, { name = \"fit\", weight = 1.0, policy = { audience_fit_weight = 0.5 } } ]\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.holdout.as_ref().unwrap().share, 0.02);
        assert_eq!(c.experiments[0].arms[1].policy.audience_fit_weight, Some(0.5));
        assert_eq!(c.experiments[0].range_end, crate::experiment::BUCKETS);
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fitrank.toml");
        std::fs::write(
            &path,
            "addr = \"0.0.0.0:7000\"\nmodel_name = \"m\"\n[access]\nallow_open_admin = true\n[policy]\nengage_weight = 0.5\n",
        )
        .unwrap();
        let c =
            Config::load(Some(&path), Overrides { addr: Some("127.0.0.1:9".parse().unwrap()), ..Default::default() })
                .unwrap();
        assert_eq!(c.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.model_name, "m");
        assert_eq!(c.policy.engage_weight, 0.5);
        assert_eq!(c.policy.purchase_weight, 1.0);
        assert_eq!(c.max_candidates, 2_000);
    }

    #[test]
    fn an_open_admin_service_on_the_network_needs_saying_so() {
        let network = Overrides { addr: Some("0.0.0.0:50051".parse().unwrap()), ..Default::default() };
        let e = Config::load(None, network.clone()).unwrap_err().to_string();
        assert!(e.contains("without access control") && e.contains("--allow-open-admin"), "{e}");
        assert!(Config::load(None, Overrides { allow_open_admin: Some(true), ..network.clone() }).is_ok());
        let with_file = Overrides { access_file: Some("access.toml".into()), ..network };
        assert!(Config::load(None, with_file).is_ok());
        assert!(Config::load(None, Overrides::default()).is_ok(), "loopback stays open for development");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max_candidate = 5\n").unwrap();
        assert!(matches!(Config::load(Some(&path), Overrides::default()), Err(ConfigError::Parse { .. })));
        std::fs::write(&path, "[policy]\npurchase_weight = -1.0\n").unwrap();
        assert!(matches!(Config::load(Some(&path), Overrides::default()), Err(ConfigError::Invalid(_))));
    }
}
