//! TLS and mTLS on the real server, with certificates the test makes: verified connections, no
//! plaintext fallback, client certificates mapped to roles, and certificates rotated while serving.

mod common;
// Not in `common`: the lab's tests share that folder and do not build rcgen.
#[path = "common/pki.rs"]
mod pki;

use std::time::Duration;

use common::TestServer;
use fitrank::cli::connect::{Conn, ConnectArgs, connect};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, ranking_service_client::RankingServiceClient,
};
use pki::{Ca, Pem};
use tonic::Code;

struct Setup {
    dir: tempfile::TempDir,
    server_pem: Pem,
    client_pem: Pem,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("fitrank test CA");
    ca.write(&dir.path().join("ca.pem"));
    let server_pem = ca.issue("localhost", false, dir.path(), "server");
    let client_pem = ca.issue("feed-api.internal", true, dir.path(), "client");
    let hash: String = fitrank::access::hash_token("operator-secret").iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        dir.path().join("access.toml"),
        format!(
            "[[certificate]]\ndns_name = \"feed-api.internal\"\nroles = [\"feed\"]\n\n\
             [[token]]\nname = \"alice\"\nroles = [\"operator\"]\nsha256 = \"{hash}\"\n"
        ),
    )
    .unwrap();
    Setup { dir, server_pem, client_pem }
}

async fn start(s: &Setup, client_cert_required: bool) -> TestServer {
    let (dir, server_pem) = (s.dir.path().to_owned(), s.server_pem.clone());
    TestServer::start_with(move |c| {
        c.tls.cert = Some(server_pem.cert);
        c.tls.key = Some(server_pem.key);
        c.tls.client_ca = Some(dir.join("ca.pem"));
        c.tls.client_cert_required = client_cert_required;
        c.tls.reload_ms = 100;
        c.access.file = Some(dir.join("access.toml"));
    })
    .await
}

fn https(server: &TestServer) -> String {
    format!("https://localhost:{}", server.addr.port())
}

async fn rank(conn: Conn) -> Code {
    let request = pb::RankRequest { user_id: "u1".into(), limit: 5, ..Default::default() };
    RankingServiceClient::new(conn).rank(request).await.map_or_else(|s| s.code(), |_| Code::Ok)
}

async fn list_experiments(conn: Conn) -> Code {
    AdminServiceClient::new(conn)
        .list_experiments(pb::ListExperimentsRequest {})
        .await
        .map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test]
async fn client_certificates_and_tokens_over_verified_tls() {
    let s = setup();
    let server = start(&s, false).await;
    let ca = Some(s.dir.path().join("ca.pem"));

    // The client certificate's DNS name is in the access file with the feed role.
    let with_cert = ConnectArgs {
        ca: ca.clone(),
        cert: Some(s.client_pem.cert.clone()),
        key: Some(s.client_pem.key.clone()),
        ..ConnectArgs::plain(https(&server))
    };
    let feed = connect(&with_cert).await.unwrap();
    assert_eq!(rank(feed.clone()).await, Code::Ok);
    assert_eq!(list_experiments(feed).await, Code::PermissionDenied);

    // No certificate (allowed at the handshake here): a token, or nothing.
    let token =
        ConnectArgs { ca: ca.clone(), token: Some("operator-secret".into()), ..ConnectArgs::plain(https(&server)) };
    assert_eq!(list_experiments(connect(&token).await.unwrap()).await, Code::Ok);
    let bare = ConnectArgs { ca: ca.clone(), ..ConnectArgs::plain(https(&server)) };
    assert_eq!(rank(connect(&bare).await.unwrap()).await, Code::Unauthenticated);

    // A certificate from another CA does not get through the handshake.
    let other = Ca::new("someone else's CA");
    let stranger = other.issue("feed-api.internal", true, s.dir.path(), "stranger");
    let stranger = ConnectArgs { cert: Some(stranger.cert), key: Some(stranger.key), ..with_cert.clone() };
    assert!(rank_or_connect_fails(&stranger).await);

    // The server's certificate is verified: not against the system's roots, not against another
    // CA; and an https address never falls back to plaintext, nor a plaintext client gets through.
    let system_roots = ConnectArgs { token: Some("operator-secret".into()), ..ConnectArgs::plain(https(&server)) };
    assert!(rank_or_connect_fails(&system_roots).await);
    let wrong_ca = ConnectArgs { ca: Some(other.write(&s.dir.path().join("other.pem"))), ..system_roots.clone() };
    assert!(rank_or_connect_fails(&wrong_ca).await);
    let plaintext = ConnectArgs::plain(format!("http://localhost:{}", server.addr.port()));
    assert!(rank_or_connect_fails(&plaintext).await);
    assert!(connect(&ConnectArgs { ca, ..plaintext }).await.is_err(), "--ca with an http address is refused");
}

/// Whether connecting, or the first call, fails at the transport (not with a gRPC answer).
async fn rank_or_connect_fails(args: &ConnectArgs) -> bool {
    match connect(args).await {
        Err(_) => true,
        Ok(conn) => !matches!(rank(conn).await, Code::Ok | Code::Unauthenticated | Code::PermissionDenied),
    }
}

#[tokio::test]
async fn a_required_client_certificate_is_enforced_at_the_handshake() {
    let s = setup();
    let server = start(&s, true).await;
    let token_only = ConnectArgs {
        ca: Some(s.dir.path().join("ca.pem")),
        token: Some("operator-secret".into()),
        ..ConnectArgs::plain(https(&server))
    };
    assert!(rank_or_connect_fails(&token_only).await);
    let with_cert =
        ConnectArgs { cert: Some(s.client_pem.cert.clone()), key: Some(s.client_pem.key.clone()), ..token_only };
    // Certificate and token: the token decides (operator).
    assert_eq!(list_experiments(connect(&with_cert).await.unwrap()).await, Code::Ok);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let s = setup();
    let server = start(&s, false).await;
    let (old_ca, new_ca) = (s.dir.path().join("ca.pem"), s.dir.path().join("new-ca.pem"));
    let trusting = |ca: &std::path::Path| ConnectArgs {
        ca: Some(ca.to_owned()),
        token: Some("operator-secret".into()),
        ..ConnectArgs::plain(https(&server))
    };
    assert_eq!(list_experiments(connect(&trusting(&old_ca)).await.unwrap()).await, Code::Ok);
    let kept = connect(&trusting(&old_ca)).await.unwrap();

    // A new certificate from a new CA, written in two steps: the certificate first (it does not
    // match the old key: refused, the old one stays), then its key.
    let rotated_ca = Ca::new("rotated CA");
    rotated_ca.write(&new_ca);
    let staged = rotated_ca.issue("localhost", false, s.dir.path(), "staged");
    std::fs::copy(&staged.cert, &s.server_pem.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(list_experiments(connect(&trusting(&old_ca)).await.unwrap()).await, Code::Ok);
    std::fs::copy(&staged.key, &s.server_pem.key).unwrap();

    let mut served = false;
    for _ in 0..100 {
        if let Ok(conn) = connect(&trusting(&new_ca)).await
            && list_experiments(conn).await == Code::Ok
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the rotated certificate was not served within 5 s");
    assert!(rank_or_connect_fails(&trusting(&old_ca)).await);
    // A connection opened before the rotation keeps working.
    assert_eq!(list_experiments(kept).await, Code::Ok);
}

/// Runs the `fitrank` binary; its exit status, standard output and standard error.
async fn fitrank(args: Vec<String>) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fitrank")).args(&args).env("FITRANK_LOG", "warn").output()
    })
    .await
    .unwrap()
    .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_tokens_and_calls_over_verified_tls() {
    let s = setup();
    // `fitrank access token` prints the access-file entry (stdout) and the token (stderr).
    let (ok, entry, said) =
        fitrank(["access", "token", "--name", "ops-cli", "--role", "operator"].map(String::from).to_vec()).await;
    assert!(ok, "{said}");
    let token = said.lines().find(|l| l.starts_with("fr_")).expect("the token on stderr").to_owned();
    let access = s.dir.path().join("access.toml");
    let mut text = std::fs::read_to_string(&access).unwrap();
    text.push('\n');
    text.push_str(&entry);
    std::fs::write(&access, text).unwrap();
    let server = start(&s, false).await;

    let ca = s.dir.path().join("ca.pem").display().to_string();
    let call = |extra: &[&str]| {
        let mut args: Vec<String> = ["call", "--url", &https(&server)].map(String::from).to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let (ok, _, said) = fitrank(call(&["--ca", &ca, "--token", &token, "load-model"])).await;
    assert!(ok, "{said}");
    let (ok, out, said) = fitrank(call(&["--ca", &ca, "--token", &token, "--json", "audit"])).await;
    assert!(ok, "{said}");
    let audit: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(audit["entries"][0]["action"], "LoadModel");
    assert_eq!(audit["entries"][0]["actor"], "ops-cli");

    // Without the CA the server's certificate is not trusted, and nothing goes in plaintext.
    let (ok, _, said) = fitrank(call(&["--token", &token, "experiments"])).await;
    assert!(!ok && said.contains("cannot connect"), "{said}");
    let (ok, _, said) = fitrank(call(&["--ca", &ca, "experiments"])).await;
    assert!(!ok && said.contains("Unauthenticated"), "{said}");
}

/// `GET path` over TLS to `addr` as `localhost`, trusting the test CA in `ca`: status and body.
async fn https_get(addr: std::net::SocketAddr, ca: &std::path::Path, path: &str) -> std::io::Result<(u16, String)> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await?;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A peer closing without close_notify after a complete response is fine here.
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_owned()))
}

#[tokio::test]
async fn the_http_port_serves_the_console_over_tls_with_tls_http() {
    let s = setup();
    let (dir, server_pem) = (s.dir.path().to_owned(), s.server_pem.clone());
    let server = TestServer::start_with(move |c| {
        c.tls.cert = Some(server_pem.cert);
        c.tls.key = Some(server_pem.key);
        // The gRPC port wants client certificates; the HTTP port never asks browsers for one.
        c.tls.client_ca = Some(dir.join("ca.pem"));
        c.tls.http = true;
        c.access.file = Some(dir.join("access.toml"));
    })
    .await;
    let ca = s.dir.path().join("ca.pem");
    let (status, body) = https_get(server.http_addr, &ca, "/healthz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = https_get(server.http_addr, &ca, "/console/").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("fitrank console"), "{body}");
    // Plaintext gets no HTTP answer from a TLS port.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(server.http_addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
}
