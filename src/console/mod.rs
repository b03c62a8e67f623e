//! The operator console: a web page on the HTTP port, behind the `viewer` and `operator` roles.
//!
//! Four pages answer an operator's questions: **Audience** (is each live stream reaching the
//! audience it was made for?), **Experiments** (how is each arm doing, and ramp, stop or create
//! one), **Models** (which version serves, with which metrics; pin, roll back, unpin) and
//! **Service** (latency, degraded rankings, ingest, store health, feature-log drops over time).
//!
//! - [`login`]: a token from the access file, exchanged for a `Secure`, `HttpOnly`,
//!   `SameSite=Strict` cookie; revoking the token ends the login.
//! - [`views`]: what each page shows, as JSON, from the same domain code the gRPC API uses.
//! - [`history`]: the samples the charts draw, taken while the service runs.
//! - [`assets`]: the page itself (HTML, CSS, JavaScript, the vendored chart library), compiled
//!   into the binary: nothing is fetched at run time.
//!
//! Changes go through [`AdminApi`]'s own methods, so a change made in the console is checked,
//! applied and written to the audit log exactly as the same `AdminService` call would be, under
//! the logged-in token's name. A `viewer` gets no buttons, and the server refuses its changes
//! (`403`) whatever it sends. Changes are `POST`s that must carry the header
//! `x-fitrank-console: 1`, which no other site's page can send without the server's consent: with
//! the `SameSite=Strict` cookie, a forged request from elsewhere never acts as a logged-in user.
//! Bodies must be `application/json`, which a form on another site cannot send. A service without
//! an access file (open, loopback only) answers the console only under a loopback host name, so a
//! page whose own name an attacker pointed at 127.0.0.1 (DNS rebinding) cannot drive it.

pub mod assets;
pub mod history;
pub mod login;
pub mod views;

use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::access::{Caller, Role};
use crate::api::AdminApi;
use crate::ranking::Shown;
use crate::store::CatalogFilter;

pub use history::History;
pub use login::Logins;

/// Largest request body the console reads.
const MAX_BODY: usize = 64 * 1024;
/// The header every change must carry.
const CHANGE_HEADER: &str = "x-fitrank-console";

/// The console's state.
pub struct Console {
    pub admin: Arc<AdminApi>,
    pub shown: Arc<Shown>,
    pub history: Arc<History>,
    pub logins: Logins,
    /// How often open pages refresh, ms.
    pub refresh_ms: u64,
}

type Reply = Response<Full<Bytes>>;

/// A refusal, as the page shows it.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into() }
    }
}

impl From<tonic::Status> for Refusal {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Unavailable | Code::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal::new(status, s.message())
    }
}

impl Console {
    /// Answers a request under `/console`.
    pub async fn handle(&self, request: Request<Incoming>, peer: Option<std::net::SocketAddr>) -> Reply {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let result = match (method.clone(), path.as_str()) {
            (Method::GET | Method::HEAD, "/console" | "/console/") => Ok(assets::page()),
            (Method::GET | Method::HEAD, p) if p.starts_with("/console/assets/") => {
                Ok(assets::asset(&p["/console/assets/".len()..]))
            }
            (Method::POST, "/console/login") => self.login(request).await,
            (Method::POST, "/console/logout") => Ok(self.logout(&request)),
            (_, p) if p.starts_with("/console/api/") => self.api(request, peer).await,
            _ => Err(Refusal::new(StatusCode::NOT_FOUND, "no such console page")),
        };
        result.unwrap_or_else(|r| json(r.status, &serde_json::json!({ "error": r.message })))
    }

    async fn login(&self, request: Request<Incoming>) -> Result<Reply, Refusal> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Form {
            token: String,
        }
        let form: Form = body(request).await?;
        let id = self.logins.login(&form.token).map_err(|e| {
            tracing::info!(reason = %e, "console login refused");
            Refusal::new(StatusCode::UNAUTHORIZED, e.to_string())
        })?;
        let mut reply = json(StatusCode::OK, &serde_json::json!({ "ok": true }));
        set_cookie(&mut reply, &self.logins.cookie(Some(&id)));
        Ok(reply)
    }

    fn logout(&self, request: &Request<Incoming>) -> Reply {
        if let Some(id) = login::cookie_value(request.headers().get(hyper::header::COOKIE)) {
            self.logins.logout(id);
        }
        let mut reply = json(StatusCode::OK, &serde_json::json!({ "ok": true }));
        set_cookie(&mut reply, &self.logins.cookie(None));
        reply
    }

    /// The JSON API: reads for viewers, changes for operators.
    async fn api(&self, request: Request<Incoming>, peer: Option<std::net::SocketAddr>) -> Result<Reply, Refusal> {
        if self.logins.open() && !loopback_host(request.headers().get(hyper::header::HOST)) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "a console without an access file answers only at 127.0.0.1, [::1] or localhost",
            ));
        }
        let cookie = login::cookie_value(request.headers().get(hyper::header::COOKIE));
        let caller =
            self.logins.caller(cookie, peer).map_err(|e| Refusal::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
        let path = request.uri().path()["/console/api/".len()..].to_owned();
        let segments: Vec<&str> = path.split('/').collect();
        if request.method() == Method::POST {
            if !caller.roles.allows(Role::Operator) {
                tracing::warn!(caller = %caller.name, path, "console change refused: not an operator");
                return Err(Refusal::new(StatusCode::FORBIDDEN, "changes need the operator role"));
            }
            if request.headers().get(CHANGE_HEADER).is_none_or(|v| v != "1") {
                return Err(Refusal::new(StatusCode::FORBIDDEN, format!("changes must carry {CHANGE_HEADER}: 1")));
            }
            return self.change(request, caller, &segments).await;
        }
        if request.method() != Method::GET {
            return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "use GET to read, POST to change"));
        }
        let query = request.uri().query().map(str::to_owned);
        match segments.as_slice() {
            ["me"] => Ok(ok(&self.me(&caller))),
            ["audience"] => self.audience(query.as_deref()).await,
            ["sessions", id] => self.session(&views::decode(id)).await,
            ["experiments"] => Ok(ok(&self.experiments())),
            ["models"] => self.models().await,
            ["service"] => Ok(ok(&self.service())),
            ["audit"] => self.audit().await,
            _ => Err(Refusal::new(StatusCode::NOT_FOUND, "no such console API")),
        }
    }

    fn me(&self, caller: &Caller) -> serde_json::Value {
        serde_json::json!({
            "name": &*caller.name,
            "operator": caller.roles.allows(Role::Operator),
            "open": self.logins.open(),
            "refresh_ms": self.refresh_ms,
        })
    }

    async fn live(&self) -> Result<Vec<crate::store::SessionSnapshot>, Refusal> {
        let filter = CatalogFilter { limit: history::MAX_SESSIONS, ..Default::default() };
        let live = self
            .admin
            .store
            .live_sessions(&filter, None)
            .await
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok(live.value)
    }

    async fn audience(&self, query: Option<&str>) -> Result<Reply, Refusal> {
        let live = self.live().await?;
        let rows: Vec<_> =
            live.iter().map(|s| (&*s.session, &*s.stats, self.shown.of(&s.session.session_id))).collect();
        let page = views::audience_page(&rows, &self.history.firsts(), &views::AudienceQuery::parse(query));
        Ok(ok(&page))
    }

    async fn session(&self, id: &str) -> Result<Reply, Refusal> {
        let found = self
            .admin
            .store
            .get_sessions(&[id], None)
            .await
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let snapshot = found
            .value
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("no session {}", crate::text::quote(id))))?;
        let (session, stats) = (&*snapshot.session, &*snapshot.stats);
        let shown = self.shown.of(id);
        let history = self.history.session(id).unwrap_or_default();
        let first = (history.first_purchase_ms, history.new_host);
        let row = views::AudienceRow::new(session, stats, &shown, Some(&first));
        Ok(ok(&serde_json::json!({
            "row": row,
            "status": session.status.name(),
            "heat": views::Heat::of(session, stats, &shown),
            "timeline": history.points,
        })))
    }

    fn experiments(&self) -> serde_json::Value {
        let experiments = &self.admin.experiments;
        let state = experiments.state();
        let list: Vec<serde_json::Value> = state
            .file
            .experiments
            .iter()
            .map(|def| {
                serde_json::json!({
                    "definition": def,
                    "readout": experiments.readout(def),
                    "guardrails": experiments.guardrails(&def.name),
                })
            })
            .collect();
        serde_json::json!({
            "buckets": crate::experiment::BUCKETS,
            "holdout": state.file.holdout,
            "experiments": list,
        })
    }

    async fn models(&self) -> Result<Reply, Refusal> {
        let models = self.admin.models.clone();
        let listed = tokio::task::spawn_blocking(move || models.list(None))
            .await
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let registry = self.admin.models.clone();
        let comparison = tokio::task::spawn_blocking(move || registry.latest_comparison())
            .await
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "console: cannot read the latest comparison of versions");
                None
            });
        let serving = self.admin.models.current();
        let (pinned, previous) = self.admin.models.state();
        let versions: Vec<serde_json::Value> = listed
            .into_iter()
            .map(|v| match v.manifest {
                Ok(m) => serde_json::json!({
                    "version": v.version,
                    "serving": m.name == serving.artifact.manifest.name && m.version == serving.artifact.manifest.version,
                    "manifest": m,
                }),
                Err(e) => serde_json::json!({ "version": v.version, "serving": false, "error": e.to_string() }),
            })
            .collect();
        Ok(ok(&serde_json::json!({
            "serving": serving.id,
            "name": serving.artifact.manifest.name,
            "pinned": pinned,
            "previous": previous,
            "versions": versions,
            "comparison": comparison,
        })))
    }

    fn service(&self) -> serde_json::Value {
        let status = self.admin.store.status();
        let summary = self.admin.latency.summary(false);
        serde_json::json!({
            "points": self.history.service(),
            "store": {
                "backend": status.backend,
                "reachable": status.reachable,
                "breaker_open": status.breaker_open,
                "degraded_reads": status.degraded_reads,
                "failures": status.failures,
                "cached_sessions": status.cached_sessions,
                "cached_users": status.cached_users,
            },
            "latency": {
                "count": summary.count, "errors": summary.errors, "window_seconds": summary.window_seconds,
                "p50_us": summary.p50_us, "p99_us": summary.p99_us, "p999_us": summary.p999_us,
            },
            "model": self.admin.models.current().id,
        })
    }

    async fn audit(&self) -> Result<Reply, Refusal> {
        let entries = self
            .admin
            .audit
            .recent(50)
            .await
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok(ok(&serde_json::json!({ "entries": entries })))
    }

    /// An operator's change.
    async fn change(&self, request: Request<Incoming>, caller: Caller, segments: &[&str]) -> Result<Reply, Refusal> {
        let admin = &self.admin;
        let who = Some(caller);
        match segments {
            ["models", "rollback"] => Ok(ok(&model_id(admin.rollback_model_as(who).await?))),
            ["models", "unpin"] => Ok(ok(&model_id(admin.unpin_model_as(who).await?))),
            ["models", "load"] => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Form {
                    version: String,
                }
                let form: Form = body(request).await?;
                Ok(ok(&model_id(admin.load_model_as(who, None, Some(form.version)).await?)))
            }
            ["experiments"] => {
                let def: crate::experiment::ExperimentDef = body(request).await?;
                Ok(ok(&admin.create_experiment_as(who, def).await?))
            }
            ["experiments", name, "coverage"] => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Form {
                    coverage: f64,
                }
                let form: Form = body(request).await?;
                Ok(ok(&admin.set_experiment_coverage_as(who, views::decode(name), form.coverage).await?))
            }
            ["experiments", name, "stop"] => Ok(ok(&admin.stop_experiment_as(who, views::decode(name)).await?)),
            _ => Err(Refusal::new(StatusCode::NOT_FOUND, "no such change")),
        }
    }
}

fn model_id(m: Arc<crate::model::LoadedModel>) -> serde_json::Value {
    serde_json::json!({ "serving": m.id })
}

/// Whether a `Host` header names this machine's loopback (with or without a port).
fn loopback_host(host: Option<&hyper::header::HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads and parses a JSON body (`content-type: application/json`) of at most [`MAX_BODY`] bytes.
async fn body<T: serde::de::DeserializeOwned>(request: Request<Incoming>) -> Result<T, Refusal> {
    let json = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request body: send content-type: application/json",
        ));
    }
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

fn ok(value: &impl Serialize) -> Reply {
    json(StatusCode::OK, value)
}

fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())));
    *reply.status_mut() = status;
    let h = reply.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    reply
}

fn set_cookie(reply: &mut Reply, cookie: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(cookie) {
        reply.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts_only() {
        let host = |s: &'static str| super::loopback_host(Some(&hyper::header::HeaderValue::from_static(s)));
        for ok in ["127.0.0.1:50052", "localhost:50052", "LOCALHOST", "[::1]:50052", "127.1.2.3"] {
            assert!(host(ok), "{ok}");
        }
        for refused in ["evil.example:50052", "10.0.0.1:50052", "localhost.evil.example", "[::2]:1"] {
            assert!(!host(refused), "{refused}");
        }
        assert!(!super::loopback_host(None));
    }
}
