//! The console end to end, in a real headless Chromium driven through ChromeDriver: an operator
//! logs in, finds the mismatched session and reads its flag, watches a page update without a
//! reload, creates, ramps and stops an experiment, pins a model version and rolls back, each
//! change checked through the gRPC API and the audit log; a viewer sees no buttons and is refused
//! by the server when it tries anyway.
//!
//! Screenshots of every page go to the test's temporary folder, and to `docs/console/` when
//! `FITRANK_UPDATE_SCREENSHOTS=1`.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/console.rs"]
mod world;

use std::path::PathBuf;

use browser::Browser;
use fitrank::proto::v1 as pb;
use world::{ConsoleWorld, FEED, MISMATCHED, OLDER_VERSION, OPERATOR, VIEWER};

fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Where a page's screenshot goes: the test's temporary folder, and `docs/console/` on request.
fn screenshot(browser: &Browser, name: &str) {
    let mut places = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")];
    if std::env::var("FITRANK_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        places.push(common::workspace_root().join("docs/console"));
    }
    for dir in places {
        browser.screenshot(&dir.join(format!("{name}.png")));
    }
}

/// Opens a page through the navigation bar and waits for its first render.
fn open(browser: &Browser, page: &str, ready: &str) {
    browser.click(&format!(".top nav a[data-page=\"{page}\"]"));
    browser.wait(ready);
}

/// Confirms the open confirmation dialog.
fn confirm(browser: &Browser) {
    browser.click("#confirm-ok");
}

fn renders(browser: &Browser) -> String {
    browser.script("return JSON.stringify(window.__fitrank.renders.slice(-6))").as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_and_a_viewer_use_the_console_in_chromium() {
    let world = ConsoleWorld::start().await;
    let console = format!("http://127.0.0.1:{}/console/", world.server.http_addr.port());
    let browser = sync(Browser::start);

    // Log in as the operator; the cookie is secure, HTTP-only and same-site.
    sync(|| {
        browser.goto(&console);
        browser.type_into("#token", OPERATOR);
        browser.click("#login-button");
        browser.wait(&format!("#sessions tr[data-session=\"{MISMATCHED}\"]"));
        let cookies = browser.cookies();
        let cookie = cookies.iter().find(|c| c["name"] == "fitrank_console").expect("the login cookie");
        assert_eq!((cookie["httpOnly"].as_bool(), cookie["secure"].as_bool()), (Some(true), Some(true)));
        assert_eq!(cookie["sameSite"], "Strict");
        assert_eq!(browser.script("return document.cookie"), "", "scripts cannot read the login");
    });

    // The audience page updates while open: purchases arriving now show without a reload.
    let purchases_of_open = "#sessions tr[data-session=\"open-live\"] td:nth-child(12)";
    let before: u64 = sync(|| browser.text(purchases_of_open)).parse().unwrap();
    let buys: Vec<pb::Event> = (20..23)
        .map(|i| common::event(&format!("live-buy-{i}"), pb::EventType::Purchase, &format!("w{i}"), "open-live"))
        .collect();
    let mut events = pb::event_service_client::EventServiceClient::new(world.conn(FEED).await);
    events.ingest_batch(pb::IngestBatchRequest { events: buys }).await.unwrap();
    sync(|| {
        let cell = purchases_of_open.replace('"', "\\\"");
        browser.wait_until(
            "the purchases cell updates",
            &format!("return document.querySelector(\"{cell}\").textContent === \"{}\"", before + 3),
        );
    });

    // Filter to the mismatched sessions and read the flag, there and on the session's own page.
    sync(|| {
        browser.click("#filter-mismatch");
        let rows = "return document.querySelectorAll('#sessions tbody tr.session-row').length === 1";
        browser.wait_until("only mismatched rows", rows);
        let flag = browser.text(&format!("#sessions tr.flag-row[data-session=\"{MISMATCHED}\"] td.mismatch"));
        assert!(flag.contains("declared women 20–30") && flag.contains("men 55–64"), "{flag}");
        screenshot(&browser, "audience");
        browser.click(&format!("#sessions tr.session-row[data-session=\"{MISMATCHED}\"]"));
        let flag = browser.text("#mismatch");
        assert!(flag.contains("buyers so far") && flag.contains("men 55–64"), "{flag}");
        browser
            .wait_until("three heat maps", "return document.querySelectorAll('#session-heat table.heat').length === 3");
        browser.wait_until(
            "a timeline of several samples",
            "return !document.querySelector('#timeline-note').textContent.startsWith('The timeline')",
        );
        browser.wait_until("two charts", "return document.querySelectorAll('.uplot').length === 2");
        screenshot(&browser, "session");
        eprintln!("audience and session renders: {}", renders(&browser));
    });

    // Create, ramp and stop an experiment from the experiments page.
    let card = "div[data-experiment=\"banner-test\"]";
    sync(|| {
        open(&browser, "experiments", "#create-experiment");
        browser.type_into("#create-experiment input[name=name]", "banner-test");
        browser.type_into("#create-experiment input[name=coverage]", "10");
        browser.click("#create-experiment button[type=submit]");
        confirm(&browser);
        browser.wait(card);
    });
    let mut admin = world.admin().await;
    let coverage = |list: pb::ListExperimentsResponse| {
        let e = list.experiments.into_iter().find(|e| e.name == "banner-test").expect("created");
        (e.coverage, e.status)
    };
    let listed = admin.list_experiments(pb::ListExperimentsRequest::default()).await.unwrap().into_inner();
    assert_eq!(coverage(listed), (0.1, "running".to_owned()));
    sync(|| {
        browser.type_into("input[data-coverage=\"banner-test\"]", "50");
        browser.click("button[data-action=ramp][data-experiment=\"banner-test\"]");
        confirm(&browser);
        browser.wait_until(
            "the card shows the new coverage",
            "return document.querySelector('div[data-experiment=\"banner-test\"] .coverage').textContent === '50.0%'",
        );
    });
    let listed = admin.list_experiments(pb::ListExperimentsRequest::default()).await.unwrap().into_inner();
    assert_eq!(coverage(listed), (0.5, "running".to_owned()));

    // Users ranked under it and their purchases reach its live readout on the open page.
    let mut ranking = pb::ranking_service_client::RankingServiceClient::new(world.conn(FEED).await);
    for i in 0..30 {
        for user in [format!("m{i}"), format!("w{i}")] {
            ranking.rank(pb::RankRequest { user_id: user, limit: 3, ..Default::default() }).await.unwrap();
        }
    }
    let buys: Vec<pb::Event> = (0..30)
        .filter(|i| i % 3 == 0)
        .flat_map(|i| [format!("m{i}"), format!("w{i}")])
        .map(|u| common::event(&format!("arm-buy-{u}"), pb::EventType::Purchase, &u, "open-live"))
        .collect();
    events.ingest_batch(pb::IngestBatchRequest { events: buys }).await.unwrap();
    sync(|| {
        browser.wait_until(
            "the readout compares the arms",
            "const lifts = document.querySelector('div[data-experiment=\"banner-test\"] table.lifts');
             return !!lifts && lifts.textContent.includes('conversion') && !lifts.textContent.includes('not enough users');",
        );
        screenshot(&browser, "experiments");
    });
    sync(|| {
        browser.click("button[data-action=stop][data-experiment=\"banner-test\"]");
        confirm(&browser);
        browser.wait_until(
            "the card shows the experiment stopped",
            "return document.querySelector('div[data-experiment=\"banner-test\"]').classList.contains('stopped')",
        );
    });
    let listed = admin.list_experiments(pb::ListExperimentsRequest::default()).await.unwrap().into_inner();
    assert_eq!(coverage(listed), (0.5, "stopped".to_owned()));

    // Pin the older model version, then roll back to the one that served before.
    let shipped = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner();
    let shipped_version = shipped.model.unwrap().version;
    sync(|| {
        open(&browser, "models", &format!("#versions tr[data-version=\"{OLDER_VERSION}\"]"));
        browser.click(&format!("#versions tr[data-version=\"{OLDER_VERSION}\"] button[data-action=pin]"));
        confirm(&browser);
        browser.wait_until(
            "the older version serves",
            &format!("return document.querySelector('#serving-id').textContent.endsWith('{OLDER_VERSION}')"),
        );
    });
    let active = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner();
    assert_eq!((active.model.unwrap().version.as_str(), active.pinned), (OLDER_VERSION, true));
    sync(|| {
        browser.click("#rollback");
        confirm(&browser);
        browser.wait_until(
            "the shipped version serves again",
            &format!("return document.querySelector('#serving-id').textContent.endsWith('{shipped_version}')"),
        );
        screenshot(&browser, "models");
    });
    let active = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner();
    assert_eq!(active.model.unwrap().version, shipped_version);

    // The service page charts what /metrics counts.
    sync(|| {
        open(&browser, "service", "#svc-cards .card");
        browser.wait_until("four charts", "return document.querySelectorAll('.uplot').length === 4");
        screenshot(&browser, "service");
        eprintln!("experiments, models and service renders: {}", renders(&browser));
    });

    // Every change is in the audit log, under the operator's name.
    let log = admin.list_audit_log(pb::ListAuditLogRequest { limit: 50 }).await.unwrap().into_inner().entries;
    let actions: Vec<&str> = log.iter().filter(|e| e.actor == "olivia").map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["RollbackModel", "LoadModel", "StopExperiment", "SetExperimentCoverage", "CreateExperiment"],
        "{log:?}"
    );

    // A viewer gets no buttons, and the server refuses a change it sends anyway.
    sync(|| {
        browser.click("#logout");
        browser.wait("#token");
        browser.type_into("#token", VIEWER);
        browser.click("#login-button");
        open(&browser, "audience", "#sessions tbody tr");
        assert_eq!(browser.text("#role"), "viewer (read only)");
        open(&browser, "experiments", "div[data-experiment=\"banner-test\"]");
        assert!(!browser.exists("#create-experiment") && !browser.exists("button[data-action]"));
        open(&browser, "models", "#versions tr[data-version]");
        assert!(!browser.exists("button[data-action]"));
        let status = browser.script_async(
            "const done = arguments[arguments.length - 1];
             fetch('/console/api/models/rollback', { method: 'POST', headers: { 'x-fitrank-console': '1' } })
               .then((r) => done(r.status));",
        );
        assert_eq!(status, 403);
    });
    let active = admin.get_active_model(pb::GetActiveModelRequest {}).await.unwrap().into_inner();
    assert_eq!(active.model.unwrap().version, shipped_version, "the viewer changed nothing");
    drop(browser);
}
