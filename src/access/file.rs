//! The access file: who holds which roles, re-read when it changes.
//!
//! ```toml
//! # A feed service, by bearer token. Only the token's SHA-256 is stored here;
//! # `fitrank access token --name feed-web --role feed` makes a token and prints its entry.
//! [[token]]
//! name = "feed-web"
//! roles = ["feed"]
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!
//! # A feed service, by the DNS name in its client certificate (mTLS).
//! [[certificate]]
//! dns_name = "feed-api.internal"
//! roles = ["feed"]
//! ```
//!
//! Rotating a token: add the new token's entry, move clients to the new token, remove the old
//! entry. The service re-reads the file within `access.reload_ms` of a change and keeps its
//! previous rules when the new file is invalid (and says so in its log), so a typo never opens or
//! locks the service.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Deserialize;
use tokio_rustls::rustls;

use super::{Role, Roles};

/// Why an access file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the access file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid access file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid access file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One holder of roles: a token's or a certificate's entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name the audit log records.
    pub name: Arc<str>,
    pub roles: Roles,
}

/// The rules of one version of the access file.
#[derive(Debug)]
pub struct AccessFile {
    tokens: HashMap<[u8; 32], Entry>,
    certificates: Vec<(rustls::pki_types::ServerName<'static>, Entry)>,
    /// Client certificates already matched against `certificates` (a connection's certificate is
    /// checked once, not on every call), by their DER bytes; cleared when full.
    seen: Mutex<HashMap<Vec<u8>, Option<Entry>>>,
}

/// Most certificates remembered by [`AccessFile::certificate`].
const SEEN_CERTIFICATES: usize = 4_096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    token: Vec<RawToken>,
    #[serde(default)]
    certificate: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    roles: Vec<Role>,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    dns_name: String,
    roles: Vec<Role>,
}

impl AccessFile {
    /// Parses and checks the file at `path`.
    pub fn load(path: &Path) -> Result<AccessFile, AccessError> {
        let bytes = std::fs::read(path).map_err(|source| AccessError::Read { path: path.to_owned(), source })?;
        AccessFile::parse(path, &bytes)
    }

    /// Parses and checks `bytes`, the contents of `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<AccessFile, AccessError> {
        let invalid = |message: String| AccessError::Invalid { path: path.to_owned(), message };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
        let raw: RawFile =
            toml::from_str(text).map_err(|source| AccessError::Parse { path: path.to_owned(), source })?;
        let mut tokens = HashMap::new();
        for (i, t) in raw.token.into_iter().enumerate() {
            let entry = entry(&t.name, &t.roles).map_err(|m| invalid(format!("token[{i}]: {m}")))?;
            let hash = parse_hex32(&t.sha256)
                .ok_or_else(|| invalid(format!("token[{i}].sha256: expected 64 hexadecimal digits")))?;
            if tokens.insert(hash, entry).is_some() {
                return Err(invalid(format!("token[{i}].sha256: listed twice")));
            }
        }
        let mut certificates = Vec::new();
        for (i, c) in raw.certificate.into_iter().enumerate() {
            let entry = entry(&c.dns_name, &c.roles).map_err(|m| invalid(format!("certificate[{i}]: {m}")))?;
            let name = rustls::pki_types::DnsName::try_from(c.dns_name.as_str())
                .map_err(|_| invalid(format!("certificate[{i}].dns_name: not a DNS name")))?
                .to_owned();
            certificates.push((rustls::pki_types::ServerName::DnsName(name), entry));
        }
        Ok(AccessFile { tokens, certificates, seen: Mutex::new(HashMap::new()) })
    }

    /// The entry of a bearer token, if the file lists its hash.
    pub fn token(&self, token: &str) -> Option<&Entry> {
        self.tokens.get(&hash_token(token))
    }

    /// The entry of the token whose SHA-256 is `hash`, if the file lists it.
    pub fn token_hash(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.tokens.get(hash)
    }

    /// The entry of a client certificate (DER), if the file lists one of its DNS names. The
    /// certificate has already been verified against the client CA by the TLS handshake.
    pub fn certificate(&self, der: &[u8]) -> Option<Entry> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get(der) {
            return known.clone();
        }
        let found = self.match_certificate(der);
        if seen.len() >= SEEN_CERTIFICATES {
            seen.clear();
        }
        seen.insert(der.to_vec(), found.clone());
        found
    }

    fn match_certificate(&self, der: &[u8]) -> Option<Entry> {
        let der = rustls::pki_types::CertificateDer::from(der);
        let cert = webpki::EndEntityCert::try_from(&der).ok()?;
        self.certificates
            .iter()
            .find(|(name, _)| cert.verify_is_valid_for_subject_name(name).is_ok())
            .map(|(_, entry)| entry.clone())
    }

    /// How many tokens and certificates are listed.
    pub fn counts(&self) -> (usize, usize) {
        (self.tokens.len(), self.certificates.len())
    }
}

fn entry(name: &str, roles: &[Role]) -> Result<Entry, String> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err("name: 1 to 64 characters, no control characters".into());
    }
    if roles.is_empty() {
        return Err("roles: at least one of feed, operator, viewer".into());
    }
    Ok(Entry { name: Arc::from(name), roles: Roles::of(roles) })
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a token, as the access file stores it.
pub fn hash_token(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A new random token (`fr_` and 256 bits in hexadecimal) and its SHA-256 in hexadecimal.
pub fn new_token() -> Result<(String, String), AccessError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| AccessError::Invalid {
        path: PathBuf::new(),
        message: "the system's random number generator failed".into(),
    })?;
    let token = format!("fr_{}", hex(&bytes));
    let hash = hex(&hash_token(&token));
    Ok((token, hash))
}

/// The access file's rules in force, re-read by [`AccessSource::reload_if_changed`].
#[derive(Debug)]
pub struct AccessSource {
    path: PathBuf,
    rules: RwLock<Arc<AccessFile>>,
    /// The bytes of the file in force, and of the last one refused.
    loaded: Mutex<(Vec<u8>, Option<Vec<u8>>)>,
}

impl AccessSource {
    /// Loads `path`; an unusable file is an error.
    pub fn open(path: &Path) -> Result<AccessSource, AccessError> {
        let bytes = std::fs::read(path).map_err(|source| AccessError::Read { path: path.to_owned(), source })?;
        let rules = AccessFile::parse(path, &bytes)?;
        let (tokens, certificates) = rules.counts();
        tracing::info!(path = %path.display(), tokens, certificates, "access control on");
        Ok(AccessSource {
            path: path.to_owned(),
            rules: RwLock::new(Arc::new(rules)),
            loaded: Mutex::new((bytes, None)),
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<AccessFile> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the file; takes it when it changed and is valid. Whether the rules changed.
    pub fn reload_if_changed(&self) -> bool {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return false;
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if bytes == loaded.0 || loaded.1.as_ref() == Some(&bytes) {
            return false;
        }
        match AccessFile::parse(&self.path, &bytes) {
            Ok(rules) => {
                let (tokens, certificates) = rules.counts();
                *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
                *loaded = (bytes, None);
                tracing::info!(path = %self.path.display(), tokens, certificates, "access file reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "access file refused; the previous rules stay in force");
                loaded.1 = Some(bytes);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AccessFile, AccessError> {
        AccessFile::parse(Path::new("access.toml"), text.as_bytes())
    }

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        let (token, hash) = new_token().unwrap();
        assert!(token.starts_with("fr_") && token.len() == 67);
        let file =
            parse(&format!("[[token]]\nname = \"feed-web\"\nroles = [\"feed\"]\nsha256 = \"{hash}\"\n")).unwrap();
        let entry = file.token(&token).unwrap();
        assert_eq!(&*entry.name, "feed-web");
        assert!(entry.roles.allows(Role::Feed) && !entry.roles.allows(Role::Viewer));
        assert!(file.token(&hash).is_none());
        assert!(file.token(&token[..66]).is_none());
    }

    #[test]
    fn the_published_sha256_of_a_known_token() {
        assert_eq!(hex(&hash_token("test")), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }

    #[test]
    fn mistakes_are_refused_with_the_entry_named() {
        let h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let cases = [
            (format!("[[token]]\nname = \"a\"\nroles = [\"admin\"]\nsha256 = \"{h}\"\n"), "unknown variant"),
            (format!("[[token]]\nname = \"a\"\nroles = []\nsha256 = \"{h}\"\n"), "token[0]: roles"),
            ("[[token]]\nname = \"a\"\nroles = [\"feed\"]\nsha256 = \"abc\"\n".into(), "token[0].sha256"),
            (format!("[[token]]\nname = \"\"\nroles = [\"feed\"]\nsha256 = \"{h}\"\n"), "token[0]: name"),
            (
                format!(
                    "[[token]]\nname=\"a\"\nroles=[\"feed\"]\nsha256=\"{h}\"\n[[token]]\nname=\"b\"\nroles=[\"feed\"]\nsha256=\"{h}\"\n"
                ),
                "token[1].sha256: listed twice",
            ),
            ("[[certificate]]\ndns_name = \"not a name\"\nroles = [\"feed\"]\n".into(), "certificate[0].dns_name"),
            ("[[tokens]]\n".into(), "unknown field"),
        ];
        for (text, expected) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_broken_file_keeps_the_previous_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.toml");
        let (token, hash) = new_token().unwrap();
        std::fs::write(&path, format!("[[token]]\nname = \"a\"\nroles = [\"feed\"]\nsha256 = \"{hash}\"\n")).unwrap();
        let source = AccessSource::open(&path).unwrap();
        std::fs::write(&path, "[[token]]\nname = \n").unwrap();
        assert!(!source.reload_if_changed());
        assert!(source.rules().token(&token).is_some());
        let (token2, hash2) = new_token().unwrap();
        std::fs::write(&path, format!("[[token]]\nname = \"b\"\nroles = [\"viewer\"]\nsha256 = \"{hash2}\"\n"))
            .unwrap();
        assert!(source.reload_if_changed());
        assert!(source.rules().token(&token).is_none());
        assert_eq!(&*source.rules().token(&token2).unwrap().name, "b");
        assert!(!source.reload_if_changed());
    }
}
