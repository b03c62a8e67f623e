//! The operator console over plain HTTP: login and its cookie, what a viewer may not do, changes
//! audited under the operator's name, the audience page's mismatch flag, revocation, and pages
//! that fetch nothing from elsewhere. The browser test (tests/console_browser.rs) drives the
//! same console through Chromium.

mod common;
#[path = "common/console.rs"]
mod world;

use fitrank::proto::v1 as pb;
use serde_json::json;
use world::{ConsoleWorld, FEED, GRANTS, Http, MISMATCHED, OPERATOR, VIEWER, write_access};

/// Runs blocking HTTP calls without holding up the server's tasks on this worker.
fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_operators_change_and_every_change_is_audited() {
    let world = ConsoleWorld::start().await;
    let addr = world.server.http_addr;

    // The page and its files come from the binary, with a policy that forbids fetching elsewhere.
    let http = Http::new(addr);
    let (page, script) = sync(|| (http.get("/console/"), http.get("/console/assets/console.js")));
    assert_eq!(page.status, 200);
    assert!(page.csp.as_deref().unwrap().contains("default-src 'none'"), "{:?}", page.csp);
    for asset in [&page.text, &script.text] {
        assert!(!asset.contains("http://") && !asset.contains("https://"), "an asset names another origin");
    }

    // Logins: unknown tokens and tokens without a console role are refused.
    let (mut operator, mut viewer, mut other) = (Http::new(addr), Http::new(addr), Http::new(addr));
    let (unknown, feed, op, anonymous) = sync(|| {
        let unknown = other.login("no-such-token");
        let feed = other.login(FEED);
        let op = operator.login(OPERATOR);
        assert_eq!(viewer.login(VIEWER).status, 200);
        (unknown, feed, op, Http::new(addr).get("/console/api/me"))
    });
    assert_eq!((unknown.status, feed.status, op.status, anonymous.status), (401, 401, 200, 401));
    assert!(feed.json["error"].as_str().unwrap().contains("viewer or operator"), "{}", feed.text);
    let cookie = op.set_cookie.unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "cookie without {attribute}: {cookie}");
    }

    // The audience page flags the session whose buyers contradict its declaration.
    let audience = sync(|| viewer.get("/console/api/audience?mismatch=1"));
    assert_eq!(audience.status, 200, "{}", audience.text);
    let rows = audience.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", audience.text);
    assert_eq!(rows[0]["session_id"], MISMATCHED);
    let flag = rows[0]["mismatch"].as_str().unwrap();
    assert!(flag.contains("declared women 20–30") && flag.contains("men 55–64"), "{flag}");
    assert!(rows[0]["shown"].as_u64().unwrap() > 0, "placements are counted: {}", audience.text);

    // A viewer changes nothing, whatever it sends; an operator's change needs the console header.
    let create = json!({ "name": "console-ab", "layer": "policy", "coverage": 1.0,
        "arms": [{ "name": "control", "weight": 1.0 }, { "name": "treatment", "weight": 1.0 }] });
    let (refused, unmarked, created) = sync(|| {
        let refused = [
            viewer.post("/console/api/experiments", create.clone(), true).status,
            viewer.post("/console/api/models/rollback", json!({}), true).status,
            viewer.post("/console/api/models/unpin", json!({}), true).status,
        ];
        let unmarked = operator.post("/console/api/experiments", create.clone(), false).status;
        (refused, unmarked, operator.post("/console/api/experiments", create.clone(), true))
    });
    assert_eq!(refused, [403, 403, 403]);
    assert_eq!(unmarked, 403);
    assert_eq!(created.status, 200, "{}", created.text);

    // Users ranked under the experiment, some of whom buy, show up in its live readout.
    let mut ranking = pb::ranking_service_client::RankingServiceClient::new(world.conn(FEED).await);
    for i in 0..30 {
        ranking.rank(pb::RankRequest { user_id: format!("w{i}"), limit: 3, ..Default::default() }).await.unwrap();
    }
    let buys: Vec<pb::Event> = (0..10)
        .map(|i| common::event(&format!("exp-buy-{i}"), pb::EventType::Purchase, &format!("w{i}"), "open-live"))
        .collect();
    let mut events = pb::event_service_client::EventServiceClient::new(world.conn(FEED).await);
    events.ingest_batch(pb::IngestBatchRequest { events: buys }).await.unwrap();

    let (ramped, experiments, stopped) = sync(|| {
        let ramped = operator.post("/console/api/experiments/console-ab/coverage", json!({ "coverage": 0.5 }), true);
        let experiments = operator.get("/console/api/experiments");
        (ramped.status, experiments, operator.post("/console/api/experiments/console-ab/stop", json!({}), true).status)
    });
    assert_eq!((ramped, stopped), (200, 200));
    let listed = experiments.json["experiments"].as_array().unwrap();
    let e = listed.iter().find(|e| e["definition"]["name"] == "console-ab").unwrap();
    assert_eq!(e["definition"]["coverage"], 0.5);
    let arms = e["readout"]["arms"].as_array().unwrap();
    let users: u64 = arms.iter().map(|a| a["users"].as_u64().unwrap()).sum();
    let buyers: u64 = arms.iter().map(|a| a["buyers"].as_u64().unwrap()).sum();
    assert_eq!((users, buyers), (30, 10), "{e}");

    // The service saw each change, and the audit log (newest first) names the operator.
    let mut admin = world.admin().await;
    let listed = admin.list_experiments(pb::ListExperimentsRequest::default()).await.unwrap().into_inner();
    let def = listed.experiments.iter().find(|e| e.name == "console-ab").unwrap();
    assert_eq!((def.coverage, def.status.as_str()), (0.5, "stopped"));
    let log = admin.list_audit_log(pb::ListAuditLogRequest { limit: 20 }).await.unwrap().into_inner().entries;
    let ours: Vec<(&str, &str)> =
        log.iter().filter(|e| e.target == "console-ab").map(|e| (e.actor.as_str(), e.action.as_str())).collect();
    assert_eq!(
        ours,
        [("olivia", "StopExperiment"), ("olivia", "SetExperimentCoverage"), ("olivia", "CreateExperiment")],
        "{log:?}"
    );

    // A new host's first show: the time to its first purchase is measured from the show's start.
    let mut debut = common::session("debut-live", None);
    debut.host_id = "host-debut".into();
    debut.start_time_unix_ms = fitrank::domain::now_ms();
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(world.conn(FEED).await);
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![debut] }).await.unwrap();
    let sale = common::event("debut-sale", pb::EventType::Purchase, "w1", "debut-live");
    events.ingest_batch(pb::IngestBatchRequest { events: vec![sale] }).await.unwrap();
    let debut = sync(|| {
        let started = std::time::Instant::now();
        loop {
            let page = viewer.get("/console/api/audience?q=debut");
            let row = &page.json["rows"][0];
            if row["new_host"] == true && row["first_purchase_s"].is_number() {
                return page.json;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", page.text);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    assert!(debut["rows"][0]["first_purchase_s"].as_f64().unwrap() < 10.0, "{debut}");
    assert_eq!(
        (debut["summary"]["new_hosts"].as_u64(), debut["summary"]["new_hosts_selling"].as_u64()),
        (Some(1), Some(1))
    );
    let old = sync(|| viewer.get("/console/api/audience?q=yoga"));
    assert_eq!(old.json["rows"][0]["new_host"], false, "a show that began before the replica is no debut it saw");

    // The models page shows the versions, and the newest comparison recorded beside them.
    let shipped = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner().model.unwrap();
    let comparison = fitrank::model::comparison::Comparison {
        created_at: "2026-12-06T04:00:00Z".into(),
        data: "later.parquet".into(),
        rows: 5_000,
        from_ms: 1,
        to_ms: 2,
        versions: vec![fitrank::model::comparison::ComparedVersion {
            model: format!("default/{}", shipped.version),
            metrics: [("purchase_auc".to_owned(), 0.81)].into(),
        }],
    };
    fitrank::model::comparison::record(&world.server.models_dir, "default", &comparison).unwrap();
    let models = sync(|| viewer.get("/console/api/models"));
    assert_eq!(models.status, 200, "{}", models.text);
    let versions: Vec<&str> =
        models.json["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions.first(), Some(&shipped.version.as_str()), "newest first: {versions:?}");
    assert!(versions.contains(&world::OLDER_VERSION), "{versions:?}");
    assert!(
        versions.iter().all(|v| v.len() == 15 && v.as_bytes()[8] == b'-'),
        "the comparisons folder is no version: {versions:?}"
    );
    assert_eq!(models.json["comparison"]["versions"][0]["metrics"]["purchase_auc"], 0.81);

    // Revoking the viewer's token ends its login; logging out ends the operator's.
    write_access(&world.access, &[GRANTS[0], GRANTS[2]]);
    sync(|| {
        let started = std::time::Instant::now();
        while viewer.get("/console/api/me").status != 401 {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "the revoked token still logs in");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let cleared = operator.post("/console/logout", json!({}), false).set_cookie.unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert_eq!(operator.get("/console/api/me").status, 401);
    });
}

/// A raw `method path` with a chosen `Host`, for what a normal client cannot send: the status.
async fn raw_status(addr: std::net::SocketAddr, method: &str, path: &str, host: &str, extra: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn an_open_console_answers_only_under_loopback_names_and_takes_only_json() {
    // No access file: everyone on this machine is the anonymous operator, as on the gRPC port.
    let server = common::TestServer::start().await;
    let addr = server.http_addr;
    assert_eq!(raw_status(addr, "GET", "/console/api/me", &addr.to_string(), "").await, 200);
    assert_eq!(raw_status(addr, "GET", "/console/api/me", &format!("localhost:{}", addr.port()), "").await, 200);
    // A page an attacker's name resolves to 127.0.0.1 for (DNS rebinding) is refused.
    assert_eq!(raw_status(addr, "GET", "/console/api/me", "attacker.example", "").await, 403);
    let stop = "x-fitrank-console: 1\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n";
    assert_eq!(raw_status(addr, "POST", "/console/api/experiments/x/coverage", "attacker.example", stop).await, 403);
    // A form from another site can post text/plain, never application/json: refused as such.
    let form = "content-type: text/plain\r\ncontent-length: 2\r\n";
    let login = raw_status(addr, "POST", "/console/login", &addr.to_string(), form).await;
    assert_eq!(login, 415);
}
