//! Who may call what: roles, the credentials that carry them, and the check every call passes.
//!
//! Three roles ([`Role`]): `feed` (ranking, catalog, events: what feed services call), `operator`
//! (every `AdminService` call, the changes included) and `viewer` (the read-only `AdminService`
//! calls). A caller proves its roles with a bearer token (`authorization: Bearer <token>`), whose
//! SHA-256 is listed in the access file ([`file`]), or with a client certificate (mTLS) whose DNS
//! name the access file lists. Health and reflection stay open to everyone.
//!
//! The check ([`layer::AccessLayer`]) runs before any handler: a call without credentials, or with
//! a token or certificate the file does not list, is answered `UNAUTHENTICATED`; a caller without
//! the method's role, `PERMISSION_DENIED`. It leaves the caller ([`Caller`]) in the request's
//! extensions, where the admin handlers find who to write into the audit log.
//!
//! Without an access file the service is open: every caller is `anonymous` with every role. That
//! is refused on a non-loopback address unless the operator allows it explicitly
//! (`access.allow_open_admin`), so a service reachable from the network never starts with an
//! open `AdminService` by accident.

pub mod file;
pub mod layer;

use std::sync::Arc;

pub use file::{AccessError, AccessFile, AccessSource, Entry, hash_token, new_token};
pub use layer::AccessLayer;

/// A role a caller may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `RankingService`, `CatalogService`, `EventService`.
    Feed,
    /// Every `AdminService` call (and everything a viewer may do).
    Operator,
    /// The read-only `AdminService` calls.
    Viewer,
}

impl Role {
    /// Every role, in the order of their names.
    pub const ALL: [Role; 3] = [Role::Feed, Role::Operator, Role::Viewer];

    /// The role's name in the access file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Feed => "feed",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// The role of `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Role::Feed => 1,
            Role::Operator => 2,
            Role::Viewer => 4,
        }
    }
}

/// A set of roles. `operator` includes `viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// Every role (the anonymous caller of an open service).
    pub const ALL: Roles = Roles(7);

    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |bits, r| bits | r.bit()))
    }

    /// Whether the set grants `role`.
    pub fn allows(self, role: Role) -> bool {
        let bits = if self.0 & Role::Operator.bit() != 0 { self.0 | Role::Viewer.bit() } else { self.0 };
        bits & role.bit() != 0
    }

    /// The roles' names, comma-separated.
    pub fn names(self) -> String {
        Role::ALL.iter().filter(|r| self.0 & r.bit() != 0).map(|r| r.name()).collect::<Vec<_>>().join(",")
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A bearer token listed in the access file.
    Token,
    /// A client certificate whose DNS name the access file lists.
    Certificate,
    /// Nothing: the service runs without an access file.
    Open,
}

impl Via {
    /// The name written into the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Certificate => "certificate",
            Via::Open => "open",
        }
    }
}

/// Who is calling, as the access check established; in every call's request extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The access file's name for the token or certificate, or `anonymous`.
    pub name: Arc<str>,
    pub roles: Roles,
    pub via: Via,
    /// The peer's address, when known.
    pub peer: Option<std::net::SocketAddr>,
}

impl Caller {
    /// The caller of a service without access control.
    pub fn anonymous(peer: Option<std::net::SocketAddr>) -> Caller {
        Caller { name: Arc::from("anonymous"), roles: Roles::ALL, via: Via::Open, peer }
    }
}

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health, reflection).
    Nothing,
    /// Any listed credential (a path this server does not serve: it answers `UNIMPLEMENTED` only
    /// to known callers).
    Credentials,
    /// The role.
    Role(Role),
}

/// The read-only `AdminService` methods, open to `viewer`.
const VIEWER_METHODS: &[&str] = &[
    "GetActiveModel",
    "ListModels",
    "ListExperiments",
    "GetExperimentStatus",
    "GetStoreStatus",
    "GetRankLatency",
    "ListAuditLog",
];

/// What calling the method at `path` (`/package.Service/Method`) requires.
pub fn need(path: &str) -> Need {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Need::Credentials;
    };
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Need::Nothing,
        "fitrank.v1.RankingService" | "fitrank.v1.CatalogService" | "fitrank.v1.EventService" => Need::Role(Role::Feed),
        "fitrank.v1.AdminService" if VIEWER_METHODS.contains(&method) => Need::Role(Role::Viewer),
        "fitrank.v1.AdminService" => Need::Role(Role::Operator),
        _ => Need::Credentials,
    }
}

/// The service's access control: open, or the rules of an access file, re-read when it changes.
#[derive(Debug, Clone)]
pub enum Access {
    /// No access file: every caller holds every role.
    Open,
    /// Callers are checked against the access file's current rules.
    Enforced(Arc<AccessSource>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_need_their_roles() {
        assert_eq!(need("/fitrank.v1.RankingService/Rank"), Need::Role(Role::Feed));
        assert_eq!(need("/fitrank.v1.EventService/Ingest"), Need::Role(Role::Feed));
        assert_eq!(need("/fitrank.v1.AdminService/ListModels"), Need::Role(Role::Viewer));
        assert_eq!(need("/fitrank.v1.AdminService/CreateExperiment"), Need::Role(Role::Operator));
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Nothing);
        assert_eq!(need("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Need::Nothing);
        assert_eq!(need("/x.Y/Z"), Need::Credentials);
        assert_eq!(need("nonsense"), Need::Credentials);
    }

    #[test]
    fn operator_includes_viewer_and_nothing_else() {
        let op = Roles::of(&[Role::Operator]);
        assert!(op.allows(Role::Viewer) && op.allows(Role::Operator) && !op.allows(Role::Feed));
        let viewer = Roles::of(&[Role::Viewer]);
        assert!(viewer.allows(Role::Viewer) && !viewer.allows(Role::Operator));
        assert!(!Roles::of(&[Role::Feed]).allows(Role::Viewer));
        assert_eq!(Roles::of(&[Role::Viewer, Role::Feed]).names(), "feed,viewer");
    }
}
