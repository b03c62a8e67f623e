//! A served world for the console's tests (included by them with `#[path]`, as the lab's tests
//! share `common` and do not need it): a service with an access file (an operator, a viewer
//! and a feed), three live sessions with evidence, a second model version, and plain HTTP calls
//! to the console's API.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use fitrank::cli::connect::{Conn, ConnectArgs, connect};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, EventType, Gender};
use serde_json::Value;

use crate::common::{TestServer, attrs, event, session, target};

pub const OPERATOR: &str = "op-token-1f0c";
pub const VIEWER: &str = "viewer-token-77aa";
pub const FEED: &str = "feed-token-31be";

/// The session whose buyers contradict its declaration.
pub const MISMATCHED: &str = "yoga-live";

/// A version older than the shipped one, to pin and roll back to.
pub const OLDER_VERSION: &str = "20250101-000000";

/// Writes an access file granting each `(name, roles, token)`.
pub fn write_access(path: &Path, grants: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (name, role, token) in grants {
        let hash: String = fitrank::access::hash_token(token).iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("[[token]]\nname = \"{name}\"\nroles = [\"{role}\"]\nsha256 = \"{hash}\"\n\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// The three grants of the console's tests.
pub const GRANTS: [(&str, &str, &str); 3] =
    [("olivia", "operator", OPERATOR), ("victor", "viewer", VIEWER), ("feed-web", "feed", FEED)];

pub struct ConsoleWorld {
    pub server: TestServer,
    pub access: PathBuf,
    _dir: tempfile::TempDir,
}

impl ConsoleWorld {
    /// Starts the service and loads the world.
    pub async fn start() -> ConsoleWorld {
        let dir = tempfile::tempdir().unwrap();
        let access = dir.path().join("access.toml");
        write_access(&access, &GRANTS);
        let server = TestServer::start_with(|c| {
            c.access.file = Some(access.clone());
            c.access.reload_ms = 100;
            c.console.sample_ms = 200;
            c.console.refresh_ms = 500;
            c.model_poll_ms = 0;
        })
        .await;
        add_older_version(&server.models_dir);
        let world = ConsoleWorld { server, access, _dir: dir };
        world.load().await;
        world
    }

    pub async fn conn(&self, token: &str) -> Conn {
        let args = ConnectArgs { token: Some(token.to_owned()), ..ConnectArgs::plain(self.server.url()) };
        connect(&args).await.unwrap()
    }

    pub async fn admin(&self) -> AdminServiceClient<Conn> {
        AdminServiceClient::new(self.conn(OPERATOR).await)
    }

    /// Users, sessions, rankings and events: `yoga-live` declares women 20–30 and sells to men
    /// 55–64; `golf-live` declares men 55–64 and sells to them; `open-live` declares nothing.
    async fn load(&self) {
        let feed = self.conn(FEED).await;
        let mut catalog = CatalogServiceClient::new(feed.clone());
        let mut users = Vec::new();
        for i in 0..30 {
            users.push(pb::User {
                user_id: format!("m{i}"),
                attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US", "en")),
            });
            users.push(pb::User {
                user_id: format!("w{i}"),
                attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US", "en")),
            });
        }
        catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
        let sessions = vec![
            session(MISMATCHED, Some(target(20, 30, &[Gender::Female], &["US"]))),
            session("golf-live", Some(target(55, 64, &[Gender::Male], &[]))),
            session("open-live", None),
        ];
        catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();

        let mut ranking = RankingServiceClient::new(feed.clone());
        for i in 0..30 {
            for user in [format!("m{i}"), format!("w{i}")] {
                ranking.rank(pb::RankRequest { user_id: user, limit: 3, ..Default::default() }).await.unwrap();
            }
        }
        let mut events = Vec::new();
        for i in 0..15 {
            for s in [MISMATCHED, "golf-live"] {
                events.push(event(&format!("v-{s}-m{i}"), EventType::View, &format!("m{i}"), s));
                events.push(event(&format!("p-{s}-m{i}"), EventType::Purchase, &format!("m{i}"), s));
            }
            events.push(event(&format!("v-yoga-w{i}"), EventType::View, &format!("w{i}"), MISMATCHED));
        }
        let now = fitrank::domain::now_ms();
        for e in &mut events {
            e.time_unix_ms = now;
        }
        let r = EventServiceClient::new(feed).ingest_batch(pb::IngestBatchRequest { events }).await.unwrap();
        assert_eq!(r.into_inner().accepted, 75);
    }
}

/// Copies the shipped model as an older version of the same name.
fn add_older_version(models: &Path) {
    let base = models.join("default");
    let shipped = crate::common::newest_version(&base);
    let older = base.join(OLDER_VERSION);
    crate::common::copy_dir(&shipped, &older);
    let path = older.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["version"] = OLDER_VERSION.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

/// A plain HTTP client of the console, with a cookie jar of one cookie.
pub struct Http {
    base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
}

/// A response: status, headers of interest, JSON body (or `Null`) and raw text.
pub struct Reply {
    pub status: u16,
    pub set_cookie: Option<String>,
    pub csp: Option<String>,
    pub json: Value,
    pub text: String,
}

impl Http {
    pub fn new(addr: std::net::SocketAddr) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Http { base: format!("http://{addr}"), agent, cookie: None }
    }

    fn finish(&self, response: Result<http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.unwrap();
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (set_cookie, csp) = (header("set-cookie"), header("content-security-policy"));
        let mut text = String::new();
        response.body_mut().as_reader().read_to_string(&mut text).unwrap();
        Reply {
            status: response.status().as_u16(),
            set_cookie,
            csp,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            request = request.header("cookie", format!("fitrank_console={c}"));
        }
        self.finish(request.call())
    }

    /// A POST with a JSON body; `change` adds the header every change must carry.
    pub fn post(&self, path: &str, body: Value, change: bool) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        if let Some(c) = &self.cookie {
            request = request.header("cookie", format!("fitrank_console={c}"));
        }
        if change {
            request = request.header("x-fitrank-console", "1");
        }
        self.finish(request.send(serde_json::to_vec(&body).unwrap()))
    }

    /// Logs in with `token`; keeps the cookie and returns the login's reply.
    pub fn login(&mut self, token: &str) -> Reply {
        let reply = self.post("/console/login", serde_json::json!({ "token": token }), false);
        if reply.status == 200 {
            let cookie = reply.set_cookie.clone().expect("a login sets a cookie");
            let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
            self.cookie = Some(value);
        }
        reply
    }
}
