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
    /// The order a purchase created, or the order a return reverses; empty when not given.
    #[serde(default)]
    pub order_id: String,
}

/// [`Event`] as the store's log and the outcome stream wrote it before order ids (until
/// 2026-12-05): still read, with an empty order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventV1 {
    pub event_id: String,
    pub kind: EventKind,
    pub user_id: String,
    pub session_id: String,
    pub time_ms: UnixMs,
    pub ranking_id: String,
    pub position: u32,
    pub watch_seconds: f64,
    pub amount: f64,
}

impl From<EventV1> for Event {
    fn from(e: EventV1) -> Self {
        let EventV1 { event_id, kind, user_id, session_id, time_ms, ranking_id, position, watch_seconds, amount } = e;
        Event {
            event_id,
            kind,
            user_id,
            session_id,
            time_ms,
            ranking_id,
            position,
            watch_seconds,
            amount,
            order_id: String::new(),
        }
    }
}

impl From<&Event> for EventV1 {
    fn from(e: &Event) -> Self {
        EventV1 {
            event_id: e.event_id.clone(),
            kind: e.kind,
            user_id: e.user_id.clone(),
            session_id: e.session_id.clone(),
            time_ms: e.time_ms,
            ranking_id: e.ranking_id.clone(),
            position: e.position,
            watch_seconds: e.watch_seconds,
            amount: e.amount,
        }
    }
}
