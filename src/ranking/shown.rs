//! [`Shown`]: whom this replica placed each live session in front of, by audience segment.
//!
//! Impressions from the feed say how often a session was seen, not by whom; the ranking knows both
//! the user and what it returned. Each `Rank` adds its returned sessions to the user's segment
//! (age band × gender, unknowns included), so the console can set "shown to" beside "viewed by"
//! and "bought by" against the declared target. The counts are this process's since it started;
//! the console prunes sessions that left the catalog, which bounds the memory to the live catalog
//! (32 counters per session).
//!
//! Recording takes one of 16 locks per returned session: the ranking path never waits on one big
//! lock, and two cores rarely collide on a shard.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::SEGMENTS;
use crate::hash::Fnv;

const SHARDS: usize = 16;

/// Placements per session and audience segment.
pub struct Shown {
    shards: [Mutex<HashMap<String, [u32; SEGMENTS]>>; SHARDS],
}

impl Default for Shown {
    fn default() -> Self {
        Shown { shards: std::array::from_fn(|_| Mutex::default()) }
    }
}

impl Shown {
    fn shard(&self, session_id: &str) -> std::sync::MutexGuard<'_, HashMap<String, [u32; SEGMENTS]>> {
        let i = (Fnv::default().eat(session_id.bytes()).mixed() % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one placement of each of `sessions` in front of a user of `segment`.
    pub fn record<'a>(&self, segment: usize, sessions: impl IntoIterator<Item = &'a str>) {
        for id in sessions {
            let mut shard = self.shard(id);
            match shard.get_mut(id) {
                Some(counts) => counts[segment] = counts[segment].saturating_add(1),
                None => {
                    let mut counts = [0; SEGMENTS];
                    counts[segment] = 1;
                    shard.insert(id.to_owned(), counts);
                }
            }
        }
    }

    /// The placements of `session_id` per segment.
    pub fn of(&self, session_id: &str) -> [u32; SEGMENTS] {
        self.shard(session_id).get(session_id).copied().unwrap_or([0; SEGMENTS])
    }

    /// Forgets every session `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| keep(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_session_and_segment_and_forgets_what_left() {
        let shown = Shown::default();
        shown.record(3, ["a", "b"]);
        shown.record(3, ["a"]);
        shown.record(7, ["b"]);
        assert_eq!(shown.of("a")[3], 2);
        assert_eq!((shown.of("b")[3], shown.of("b")[7]), (1, 1));
        assert_eq!(shown.of("c"), [0; SEGMENTS]);
        shown.retain(|id| id != "a");
        assert_eq!(shown.of("a"), [0; SEGMENTS]);
        assert_eq!(shown.of("b")[7], 1);
    }
}
