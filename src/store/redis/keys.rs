//! Key names. Every key of one session, or of one user, shares a Redis Cluster hash tag, so that
//! the scripts that update them run on one node; ids are length-prefixed inside the tag so that no
//! id can produce another id's key.
//!
//! | key                              | type   | holds                                   | TTL                          |
//! |----------------------------------|--------|-----------------------------------------|------------------------------|
//! | `P:{s:N:ID}:a`                   | string | session attributes (postcard)           | none; `session_retention` after it ends |
//! | `P:{s:N:ID}:st`                  | string | live stats: a base and records (see `codec`) | as the attributes       |
//! | `P:{s:N:ID}:e:EVENT`             | string | marker: event applied to the session (cluster only) | `dedup_window` |
//! | `P:{u:N:ID}:p`                   | string | user profile (postcard)                 | none                         |
//! | `P:{u:N:ID}:act`                 | string | user activity: a base and records (see `codec`) | `activity_retention` after the last event (renewed at most hourly by each replica: see `renew`) |
//! | `P:{u:N:ID}:e:EVENT`             | string | marker: event applied to the user (cluster only) | `dedup_window` |
//! | `P:ev:B`                         | set    | ids of events applied in bucket B (standalone: one set for all sessions and users) | unlinked at bucket B+3 |
//! | `P:live`                         | zset   | live session ids scored by start time   | none                         |
//! | `P:experiments`                  | hash   | `doc` (experiments JSON), `v` (version) | none                         |
//! | `P:audit`                        | list   | audit log entries (JSON), oldest first  | none; newest 1,000,000 kept  |
//!
//! `P` is the configured prefix (default `fr`), `N` the id's length in bytes, `B` a
//! de-duplication bucket: the time in ms divided by half the de-duplication window.

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.to_owned() }
    }

    /// `P:{K:N:ID}:SUFFIX`, built by hand: ingest names two keys per event, and `format!` cost
    /// several times the rest of the work.
    fn tagged(&self, kind: char, id: &str, suffix: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.len() + suffix.len() + 12);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push(kind);
        key.push(':');
        key.push_str(itoa::Buffer::new().format(id.len()));
        key.push(':');
        key.push_str(id);
        key.push_str("}:");
        key.push_str(suffix);
        key
    }

    pub fn session_attrs(&self, id: &str) -> String {
        self.tagged('s', id, "a")
    }

    pub fn session_stats(&self, id: &str) -> String {
        self.tagged('s', id, "st")
    }

    /// Marker: the event was applied to the session (cluster).
    pub fn session_event(&self, id: &str, event_id: &str) -> String {
        self.tagged('s', id, &format!("e:{event_id}"))
    }

    pub fn user_profile(&self, id: &str) -> String {
        self.tagged('u', id, "p")
    }

    pub fn user_activity(&self, id: &str) -> String {
        self.tagged('u', id, "act")
    }

    /// Marker: the event was applied to the user (cluster).
    pub fn user_event(&self, id: &str, event_id: &str) -> String {
        self.tagged('u', id, &format!("e:{event_id}"))
    }

    /// Ids of events applied in de-duplication bucket `bucket` (standalone).
    pub fn dedup(&self, bucket: i64) -> String {
        format!("{}:ev:{bucket}", self.prefix)
    }

    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    pub fn live(&self) -> String {
        format!("{}:live", self.prefix)
    }

    pub fn experiments(&self) -> String {
        format!("{}:experiments", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_forge_other_keys() {
        let k = Keys::new("fr");
        assert_eq!(k.session_stats("ab"), "fr:{s:2:ab}:st");
        // A session id that looks like another session's event marker gets a different key.
        assert_ne!(k.session_stats("X}:e:Y"), k.session_event("X", "Y}:st"));
        assert_ne!(k.session_attrs("a"), k.user_profile("a"));
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        let k = Keys::new("p");
        for n in [0, 1, 9, 10, 99, 100, 128, 1000] {
            let id = "x".repeat(n);
            assert_eq!(k.user_activity(&id), format!("p:{{u:{n}:{id}}}:act"));
        }
    }
}
