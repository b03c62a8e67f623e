//! Who is using the console: a login with an access-file token, then a cookie.
//!
//! `POST /console/login` takes a token the access file lists with the `viewer` or `operator` role
//! and answers with a cookie naming a fresh random login id: `Secure` (browsers send it only over
//! HTTPS, or to `localhost`), `HttpOnly` (no script can read it), `SameSite=Strict` (no other site
//! can make the browser send it). The server keeps, per login, the token's SHA-256 and when the
//! login ends; every request looks the hash up in the access file in force, so revoking or
//! re-roling a token takes effect on open consoles at once, and the token itself is never stored.
//!
//! Without an access file the service is open (see [`crate::access`]): the console then needs no
//! login and every visitor is the `anonymous` operator, as on the gRPC port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::{Access, Caller, Role, Roles, Via, hash_token};

/// The cookie's name.
pub const COOKIE: &str = "fitrank_console";

/// Most logins kept at once; the oldest go first past it.
const MAX_LOGINS: usize = 10_000;

/// One login.
#[derive(Debug, Clone)]
struct Login {
    token_hash: [u8; 32],
    ends: Instant,
}

/// The console's logins.
#[derive(Debug)]
pub struct Logins {
    access: Access,
    lifetime: Duration,
    logins: Mutex<HashMap<String, Login>>,
}

/// Why a login or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("unknown or revoked token")]
    UnknownToken,
    #[error("the console needs the viewer or operator role; this token holds {0}")]
    NoConsoleRole(String),
    #[error("not logged in, or the login ended")]
    NotLoggedIn,
    #[error("the random number generator failed")]
    Random,
}

impl Logins {
    pub fn new(access: Access, lifetime: Duration) -> Self {
        Logins { access, lifetime, logins: Mutex::default() }
    }

    /// Whether the service runs without access control (no login needed).
    pub fn open(&self) -> bool {
        matches!(self.access, Access::Open)
    }

    /// Logs `token` in; returns the new login's id (the cookie's value).
    pub fn login(&self, token: &str) -> Result<String, LoginError> {
        let Access::Enforced(source) = &self.access else {
            return crate::access::new_token().map(|(t, _)| t).map_err(|_| LoginError::Random);
        };
        let token_hash = hash_token(token.trim());
        let rules = source.rules();
        let entry = rules.token_hash(&token_hash).ok_or(LoginError::UnknownToken)?;
        if !entry.roles.allows(Role::Viewer) {
            return Err(LoginError::NoConsoleRole(entry.roles.names()));
        }
        let (id, _) = crate::access::new_token().map_err(|_| LoginError::Random)?;
        let mut logins = self.lock();
        let now = Instant::now();
        logins.retain(|_, l| l.ends > now);
        if logins.len() >= MAX_LOGINS
            && let Some(oldest) = logins.iter().min_by_key(|(_, l)| l.ends).map(|(k, _)| k.clone())
        {
            logins.remove(&oldest);
        }
        logins.insert(id.clone(), Login { token_hash, ends: now + self.lifetime });
        Ok(id)
    }

    /// Ends the login `id`.
    pub fn logout(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The caller behind the login `id` (the cookie's value), as the access file says now.
    pub fn caller(&self, id: Option<&str>, peer: Option<std::net::SocketAddr>) -> Result<Caller, LoginError> {
        let Access::Enforced(source) = &self.access else { return Ok(Caller::anonymous(peer)) };
        let id = id.ok_or(LoginError::NotLoggedIn)?;
        let login = {
            let mut logins = self.lock();
            match logins.get(id) {
                Some(l) if l.ends > Instant::now() => l.clone(),
                Some(_) => {
                    logins.remove(id);
                    return Err(LoginError::NotLoggedIn);
                }
                None => return Err(LoginError::NotLoggedIn),
            }
        };
        let rules = source.rules();
        let entry = rules.token_hash(&login.token_hash).ok_or(LoginError::NotLoggedIn)?;
        let roles = Roles::of(&[Role::Operator, Role::Viewer]);
        let roles = if entry.roles.allows(Role::Operator) {
            roles
        } else if entry.roles.allows(Role::Viewer) {
            Roles::of(&[Role::Viewer])
        } else {
            return Err(LoginError::NotLoggedIn);
        };
        Ok(Caller { name: Arc::clone(&entry.name), roles, via: Via::Token, peer })
    }

    /// The `Set-Cookie` value of a login, or of its end when `id` is `None`.
    pub fn cookie(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!(
                "{COOKIE}={id}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                self.lifetime.as_secs()
            ),
            None => format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Login>> {
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The login id in a `Cookie` header, if any.
pub fn cookie_value(header: Option<&http::HeaderValue>) -> Option<&str> {
    header?.to_str().ok()?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessSource;

    fn logins(dir: &std::path::Path, file: &str) -> (Logins, std::path::PathBuf) {
        let path = dir.join("access.toml");
        std::fs::write(&path, file).unwrap();
        let source = Arc::new(AccessSource::open(&path).unwrap());
        (Logins::new(Access::Enforced(source), Duration::from_secs(60)), path)
    }

    fn file(entries: &[(&str, &str, &str)]) -> String {
        entries
            .iter()
            .map(|(name, roles, token)| {
                let hash: String = hash_token(token).iter().map(|b| format!("{b:02x}")).collect();
                format!("[[token]]\nname = \"{name}\"\nroles = [{roles}]\nsha256 = \"{hash}\"\n")
            })
            .collect()
    }

    #[test]
    fn logs_in_viewers_and_operators_only_and_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (logins, path) = logins(
            dir.path(),
            &file(&[("ops", "\"operator\"", "t-op"), ("ro", "\"viewer\"", "t-ro"), ("feed", "\"feed\"", "t-feed")]),
        );
        assert_eq!(logins.login("nope"), Err(LoginError::UnknownToken));
        assert_eq!(logins.login("t-feed"), Err(LoginError::NoConsoleRole("feed".into())));
        let op = logins.login("t-op").unwrap();
        let ro = logins.login("t-ro").unwrap();
        let caller = logins.caller(Some(&op), None).unwrap();
        assert!(caller.roles.allows(Role::Operator) && &*caller.name == "ops");
        let viewer = logins.caller(Some(&ro), None).unwrap();
        assert!(viewer.roles.allows(Role::Viewer) && !viewer.roles.allows(Role::Operator));
        assert_eq!(logins.caller(Some("made-up"), None).unwrap_err(), LoginError::NotLoggedIn);
        assert_eq!(logins.caller(None, None).unwrap_err(), LoginError::NotLoggedIn);

        // Revoking the operator's token ends its login at once.
        std::fs::write(&path, file(&[("ro", "\"viewer\"", "t-ro")])).unwrap();
        let Access::Enforced(source) = &logins.access else { unreachable!() };
        source.reload_if_changed();
        assert_eq!(logins.caller(Some(&op), None).unwrap_err(), LoginError::NotLoggedIn);
        assert!(logins.caller(Some(&ro), None).is_ok());
        logins.logout(&ro);
        assert_eq!(logins.caller(Some(&ro), None).unwrap_err(), LoginError::NotLoggedIn);
    }

    #[test]
    fn reads_its_cookie_among_others() {
        let h = http::HeaderValue::from_static("a=1; fitrank_console=abc; b=2");
        assert_eq!(cookie_value(Some(&h)), Some("abc"));
        assert_eq!(cookie_value(Some(&http::HeaderValue::from_static("fitrank_console="))), None);
        assert_eq!(cookie_value(None), None);
    }
}
