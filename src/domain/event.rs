//! Engagement events.

use serde::{Deserialize, Serialize};

use super::UnixMs;

dense_enum! {
    /// What a user did.
    EventKind {
        /// Shown at `position` of ranking `ranking_id`.
        Impression => "impression",
        View => "view",
        /// Watched `watch_seconds` more seconds.
        Watch => "watch",
        Like => "like",
        Comment => "comment",
        Share => "share",
        Follow => "follow",
        AddToCart => "add_to_cart",
        /// Bought for `amount`.
        Purchase => "purchase",
        /// Returned or refunded `amount`.
        Return => "return",
        /// "Not interested".
        Hide => "hide",
    }
}

/// One validated engagement event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub kind: EventKind,
    pub user_id: String,
    pub session_id: String,
    pub time_ms: UnixMs,
    /// Empty when the event does not refer to a ranking.
    #[serde(default)]
    pub ranking_id: String,
    #[serde(default)]
    pub position: u32,
    #[serde(default)]
    pub watch_seconds: f64,
    #[serde(default)]
    pub amount: f64,
}
