//! A headless Chromium driven through ChromeDriver (the W3C WebDriver protocol, JSON over HTTP),
//! for the console's end-to-end tests. Installs Debian's `chromium` and `chromium-driver`
//! (scripts/install-chromium.sh) when they are missing.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session, closed (with its driver) on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

fn install() {
    let script = crate::common::workspace_root().join("scripts/install-chromium.sh");
    let status = Command::new("bash").arg(script).status().expect("run scripts/install-chromium.sh");
    assert!(status.success(), "chromium or chromedriver is missing and scripts/install-chromium.sh failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a headless Chromium window of 1400×1300.
    pub fn start() -> Browser {
        install();
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser { driver, base, session: String::new(), agent };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1300",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--lang=en-US",
        ];
        let created = browser.call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args } } } })),
        );
        browser.session = created["sessionId"].as_str().expect("a WebDriver session id").to_owned();
        browser
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(serde_json::to_vec(&body.unwrap_or(json!({}))).unwrap()),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut text = String::new();
        response.body_mut().as_reader().read_to_string(&mut text).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status >= 400 {
            return Err(format!("{status}: {}", v["value"]["message"]));
        }
        Ok(v["value"].clone())
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self.try_call("POST", "/element", Some(json!({ "using": "css selector", "value": css }))).ok()?;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits up to 15 s for an element matching `css` that is displayed; returns its id.
    pub fn wait(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.find(css)
                && self.try_call("GET", &format!("/element/{id}/displayed"), None).is_ok_and(|v| v == json!(true))
            {
                return id;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "no visible {css} after 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `check` holds (a script returning a boolean), up to 15 s.
    pub fn wait_until(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.script(script) != json!(true) {
            assert!(started.elapsed() < Duration::from_secs(15), "not true after 15 s: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether an element matching `css` exists now.
    pub fn exists(&self, css: &str) -> bool {
        self.find(css).is_some()
    }

    pub fn click(&self, css: &str) {
        let id = self.wait(css);
        self.call("POST", &format!("/element/{id}/click"), None);
    }

    /// Clears the field matching `css` and types `text` into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.wait(css);
        self.call("POST", &format!("/element/{id}/clear"), None);
        self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    /// The rendered text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let id = self.wait(css);
        self.call("GET", &format!("/element/{id}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// Runs `script`, which calls its last argument with the value when done (`/execute/async`).
    pub fn script_async(&self, script: &str) -> Value {
        self.call("POST", "/execute/async", Some(json!({ "script": script, "args": [] })))
    }

    /// Forgets every cookie (a new visitor).
    pub fn clear_cookies(&self) {
        self.call("DELETE", "/cookie", None);
    }

    /// The browser's cookies for the current page.
    pub fn cookies(&self) -> Vec<Value> {
        self.call("GET", "/cookie", None).as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap()).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
