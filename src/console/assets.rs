//! The console's files, compiled into the binary: one HTML page, its stylesheet and script, and
//! the vendored chart library (uPlot 1.6.32, MIT, from the npm registry; `scripts/vendor-console.sh`
//! fetches it again and checks its digest). Nothing is fetched at run time, and the page's
//! content security policy forbids it.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

/// The page's content security policy: its own files only, no frames, no forms elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// (name, content type, bytes) of every file under `/console/assets/`.
const FILES: &[(&str, &str, &[u8])] = &[
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("assets/console.js")),
    ("console.css", "text/css; charset=utf-8", include_bytes!("assets/console.css")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/vendor/uplot/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_bytes!("assets/vendor/uplot/uPlot.min.css")),
];

const PAGE: &[u8] = include_bytes!("assets/index.html");

/// The console's page.
pub fn page() -> Response<Full<Bytes>> {
    reply(StatusCode::OK, "text/html; charset=utf-8", PAGE)
}

/// The file `name`, or 404.
pub fn asset(name: &str) -> Response<Full<Bytes>> {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => reply(StatusCode::OK, kind, bytes),
        None => reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"no such console file\n"),
    }
}

fn reply(status: StatusCode, kind: &'static str, bytes: &'static [u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(bytes)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(hyper::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(hyper::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(hyper::header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
