//! Live statistics of a session, folded from its events.

use serde::{Deserialize, Serialize};

use super::{Event, EventKind};

/// Counters of what happened in a live session. Updated by [`LiveStats::apply`], the one place
/// that decides what an event adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    pub impressions: u64,
    pub views: u64,
    pub watch_seconds: f64,
    /// Likes, comments and shares.
    pub interactions: u64,
    pub follows: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub revenue: f64,
    pub returns: u64,
    pub hides: u64,
    /// Views by users inside the declared target audience.
    pub on_target_views: u64,
    /// Views by users whose target membership could be decided.
    pub known_views: u64,
}

impl LiveStats {
    /// Adds one event. `viewer_in_target` says whether the event's user is inside the session's
    /// target audience (`None` when the user's demographics are unknown).
    pub fn apply(&mut self, event: &Event, viewer_in_target: Option<bool>) {
        match event.kind {
            EventKind::Impression => self.impressions += 1,
            EventKind::View => {
                self.views += 1;
                if let Some(inside) = viewer_in_target {
                    self.known_views += 1;
                    self.on_target_views += u64::from(inside);
                }
            }
            EventKind::Watch => self.watch_seconds += event.watch_seconds,
            EventKind::Like | EventKind::Comment | EventKind::Share => self.interactions += 1,
            EventKind::Follow => self.follows += 1,
            EventKind::AddToCart => self.add_to_carts += 1,
            EventKind::Purchase => {
                self.purchases += 1;
                self.revenue += event.amount;
            }
            EventKind::Return => {
                self.returns += 1;
                self.revenue -= event.amount;
            }
            EventKind::Hide => self.hides += 1,
        }
    }
}
