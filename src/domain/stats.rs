//! Live statistics of a session, folded from its events.

use serde::{Deserialize, Serialize};

use super::window::Decayed;
use super::{AgeBand, Event, EventKind, Gender, TargetAudience, UserProfile, audience};

/// Number of audience segments (age band × gender, unknowns included).
pub const SEGMENTS: usize = AgeBand::COUNT * Gender::COUNT;

/// Positions of the decayed counters in [`LiveStats::windows`].
pub mod counter {
    /// Impressions.
    pub const IMPRESSIONS: usize = 0;
    /// Views.
    pub const VIEWS: usize = 1;
    /// Seconds watched.
    pub const WATCH_SECONDS: usize = 2;
    /// Purchases.
    pub const PURCHASES: usize = 3;
    /// How many counters there are.
    pub const COUNT: usize = 4;
}

/// The audience segment of a user: age band × gender.
pub fn segment(user: &UserProfile) -> usize {
    user.age_band.index() * Gender::COUNT + user.gender.index()
}

/// What the session's live stats need to know about the user behind an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewer {
    /// Inside the session's target audience; `None` when the profile cannot decide.
    pub in_target: Option<bool>,
    /// Audience segment; `None` for users without a stored profile.
    pub segment: Option<usize>,
}

impl Viewer {
    /// The viewer `profile` (if stored) of a session targeting `target`.
    pub fn of(profile: Option<&UserProfile>, target: &TargetAudience) -> Self {
        match profile {
            None => Viewer::default(),
            Some(p) => Viewer { in_target: audience::fit(p, target).in_target(), segment: Some(segment(p)) },
        }
    }
}

/// Counters of what happened in a live session. Updated by [`LiveStats::apply`], the one place
/// that decides what an event adds; read by feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    /// Decayed impressions, views, watch seconds and purchases over 1 min, 5 min and 1 h.
    pub windows: Decayed<{ counter::COUNT }>,
    /// Views per audience segment (age band × gender) of users with a stored profile.
    #[serde(with = "segment_array")]
    pub segment_views: [u32; SEGMENTS],
    /// Purchases per audience segment of users with a stored profile: who actually buys here,
    /// which can differ from who watches and from the declared target.
    #[serde(with = "segment_array")]
    pub segment_purchases: [u32; SEGMENTS],
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            impressions: 0,
            views: 0,
            watch_seconds: 0.0,
            interactions: 0,
            follows: 0,
            add_to_carts: 0,
            purchases: 0,
            revenue: 0.0,
            returns: 0,
            hides: 0,
            on_target_views: 0,
            known_views: 0,
            windows: Decayed::default(),
            segment_views: [0; SEGMENTS],
            segment_purchases: [0; SEGMENTS],
        }
    }
}

impl LiveStats {
    /// Adds one event by `viewer`.
    pub fn apply(&mut self, event: &Event, viewer: Viewer) {
        let t = event.time_ms;
        match event.kind {
            EventKind::Impression => {
                self.impressions += 1;
                self.windows.add(counter::IMPRESSIONS, 1.0, t);
            }
            EventKind::View => {
                self.views += 1;
                self.windows.add(counter::VIEWS, 1.0, t);
                if let Some(inside) = viewer.in_target {
                    self.known_views += 1;
                    self.on_target_views += u64::from(inside);
                }
                if let Some(s) = viewer.segment {
                    self.segment_views[s] = self.segment_views[s].saturating_add(1);
                }
            }
            EventKind::Watch => {
                self.watch_seconds += event.watch_seconds;
                self.windows.add(counter::WATCH_SECONDS, event.watch_seconds as f32, t);
            }
            EventKind::Like | EventKind::Comment | EventKind::Share => self.interactions += 1,
            EventKind::Follow => self.follows += 1,
            EventKind::AddToCart => self.add_to_carts += 1,
            EventKind::Purchase => {
                self.purchases += 1;
                self.revenue += event.amount;
                if let Some(s) = viewer.segment {
                    self.segment_purchases[s] = self.segment_purchases[s].saturating_add(1);
                }
                self.windows.add(counter::PURCHASES, 1.0, t);
            }
            EventKind::Return => {
                self.returns += 1;
                self.revenue -= event.amount;
            }
            EventKind::Hide => self.hides += 1,
        }
    }

    /// Views by users with a stored profile (the denominator of segment shares).
    pub fn profiled_views(&self) -> u64 {
        self.segment_views.iter().map(|v| u64::from(*v)).sum()
    }
}

/// serde for the segment array (serde derives arrays only up to 32 elements).
mod segment_array {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SEGMENTS;

    pub fn serialize<S: Serializer>(v: &[u32; SEGMENTS], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u32; SEGMENTS], D::Error> {
        let v = Vec::<u32>::deserialize(d)?;
        v.try_into().map_err(|v: Vec<_>| serde::de::Error::invalid_length(v.len(), &"32 segments"))
    }
}
