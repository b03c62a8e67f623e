//! The context of a ranking request.

use serde::{Deserialize, Serialize};

use super::UnixMs;

dense_enum! {
    /// Where a ranking is shown.
    Surface {
        Unknown => "unknown",
        HomeFeed => "home_feed",
        Search => "search",
        Following => "following",
        Notification => "notification",
    }
}

/// When and where a ranking is requested.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    pub time_ms: UnixMs,
    pub surface: Surface,
}
