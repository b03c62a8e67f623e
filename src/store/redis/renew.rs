//! Which users' activity a replica's fast calls renew the TTL of.
//!
//! A user's activity must stay `activity_retention` after their last event. Renewing the TTL on
//! every event costs Redis a command per event, as much as appending the event itself, so a
//! replica renews a user's TTL at most once per interval `every` (a sixteenth of the retention,
//! an hour at most), to `retention + every`: an event that skips the renewal comes less than
//! `every` after one, whose expiry is then at least `retention` past the event. A blob an append
//! creates always gets its TTL (the script sees that), so no key is left without one. The
//! replica's memory of its renewals is bounded: past [`MAX_USERS`] it forgets them all, which
//! costs a renewal each, not a missed one.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most users whose last renewal a replica remembers.
const MAX_USERS: usize = 1 << 18;

/// The longest a replica goes without renewing an active user's TTL, ms.
const MAX_EVERY_MS: i64 = 3_600_000;

/// When this replica last renewed each user's activity TTL.
#[derive(Debug)]
pub(super) struct Renewals {
    retention_ms: i64,
    every_ms: i64,
    last: Mutex<HashMap<String, i64>>,
}

impl Renewals {
    /// Renewals for activity kept `retention_ms` after its last event.
    pub fn new(retention_ms: i64) -> Renewals {
        let retention_ms = retention_ms.max(1);
        let every_ms = (retention_ms / 16).clamp(0, MAX_EVERY_MS);
        Renewals { retention_ms, every_ms, last: Mutex::new(HashMap::new()) }
    }

    /// How long a user may go without a renewal, ms.
    #[cfg(test)]
    pub fn every_ms(&self) -> i64 {
        self.every_ms
    }

    /// The TTL a renewal sets, ms.
    pub fn ttl_ms(&self) -> i64 {
        self.retention_ms.saturating_add(self.every_ms)
    }

    /// One flag per user (1 = renew): the users this replica has not renewed in the last
    /// `every` before `now_ms`.
    pub fn due(&self, users: &[&str], now_ms: i64) -> Vec<u8> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        users
            .iter()
            .map(|u| match last.get(*u) {
                Some(&at) if now_ms >= at && now_ms - at < self.every_ms => 0,
                _ => 1,
            })
            .collect()
    }

    /// Remembers that a call Redis applied at about `now_ms` renewed the users flagged in `due`.
    pub fn renewed(&self, users: &[&str], due: &[u8], now_ms: i64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() + users.len() > MAX_USERS {
            last.clear();
        }
        for (u, _) in users.iter().zip(due).filter(|(_, d)| **d == 1) {
            last.insert((*u).to_owned(), now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_renewed_once_per_interval_to_retention_plus_the_interval() {
        let r = Renewals::new(16 * 60_000);
        assert_eq!((r.every_ms(), r.ttl_ms()), (60_000, 17 * 60_000));
        assert_eq!(r.due(&["a", "b"], 0), [1, 1], "never renewed");
        r.renewed(&["a", "b"], &[1, 0], 0);
        assert_eq!(r.due(&["a", "b"], 59_999), [0, 1], "a renewed a minute ago at most");
        assert_eq!(r.due(&["a"], 60_000), [1]);
        assert_eq!(r.due(&["a"], -1), [1], "a clock that went back renews");
    }

    #[test]
    fn the_interval_is_at_most_an_hour() {
        let r = Renewals::new(30 * 86_400_000);
        assert_eq!(r.every_ms(), 3_600_000);
        assert_eq!(r.ttl_ms(), 30 * 86_400_000 + 3_600_000);
        assert_eq!(Renewals::new(10).every_ms(), 0, "a tiny retention renews every time");
        assert_eq!(Renewals::new(10).due(&["a"], 0), [1]);
    }

    #[test]
    fn forgetting_past_the_bound_costs_renewals_not_misses() {
        let r = Renewals::new(16 * 60_000);
        let users: Vec<String> = (0..MAX_USERS).map(|i| format!("u{i}")).collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        r.renewed(&users, &vec![1; users.len()], 0);
        assert_eq!(r.due(&["u0"], 1), [0]);
        r.renewed(&["new"], &[1], 1);
        assert_eq!(r.due(&["u0", "new"], 2), [1, 0], "all forgotten, then the new one remembered");
    }
}
