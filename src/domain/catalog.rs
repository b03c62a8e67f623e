//! Users and live sessions as the catalog stores them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::UnixMs;

dense_enum! {
    /// Age band of a user; `Unknown` when not given.
    AgeBand {
        Unknown => "unknown",
        A13To17 => "13-17",
        A18To24 => "18-24",
        A25To34 => "25-34",
        A35To44 => "35-44",
        A45To54 => "45-54",
        A55To64 => "55-64",
        A65Plus => "65+",
    }
}

impl AgeBand {
    /// Inclusive age range of the band, `None` when unknown. 65+ is taken as 65 to 90.
    pub fn range(self) -> Option<(u32, u32)> {
        Some(match self {
            AgeBand::Unknown => return None,
            AgeBand::A13To17 => (13, 17),
            AgeBand::A18To24 => (18, 24),
            AgeBand::A25To34 => (25, 34),
            AgeBand::A35To44 => (35, 44),
            AgeBand::A45To54 => (45, 54),
            AgeBand::A55To64 => (55, 64),
            AgeBand::A65Plus => (65, 90),
        })
    }
}

dense_enum! {
    /// Gender of a user (`Unknown` when not given) or a targeted gender (never `Unknown`).
    Gender {
        Unknown => "unknown",
        Female => "female",
        Male => "male",
        Other => "other",
    }
}

dense_enum! {
    /// Product category of a live session.
    Category {
        Fashion => "fashion",
        Sportswear => "sportswear",
        Beauty => "beauty",
        Jewelry => "jewelry",
        Electronics => "electronics",
        Home => "home",
        Food => "food",
        Toys => "toys",
        Collectibles => "collectibles",
        Health => "health",
        Outdoor => "outdoor",
        Other => "other",
    }
}

dense_enum! {
    /// Price band of what a live session sells.
    PriceBand {
        Budget => "budget",
        Mid => "mid",
        Premium => "premium",
        Luxury => "luxury",
    }
}

dense_enum! {
    /// Lifecycle of a live session; only `Live` sessions are ranked.
    SessionStatus {
        Live => "live",
        Scheduled => "scheduled",
        Ended => "ended",
    }
}

/// Demographics and interests of a user. Every field may be unknown.
///
/// Region and language are shared strings: a store interns them, so millions of users share a
/// few dozen allocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub age_band: AgeBand,
    pub gender: Gender,
    /// Region code such as "US" or "US-CA"; empty when unknown.
    pub region: Arc<str>,
    /// Language tag such as "en"; empty when unknown.
    pub language: Arc<str>,
    /// Interest tags, lowercase.
    pub interests: Vec<String>,
}

impl Default for UserProfile {
    fn default() -> Self {
        UserProfile {
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            region: Arc::from(""),
            language: Arc::from(""),
            interests: Vec::new(),
        }
    }
}

/// The audience a seller declares. Empty lists and zero bounds mean "anyone".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetAudience {
    /// Youngest targeted age, 0 = no bound.
    pub min_age: u32,
    /// Oldest targeted age, 0 = no bound.
    pub max_age: u32,
    pub genders: Vec<Gender>,
    pub regions: Vec<String>,
    /// Interest tags, lowercase.
    pub interests: Vec<String>,
}

impl TargetAudience {
    /// Whether any age bound is declared.
    pub fn has_age(&self) -> bool {
        self.min_age > 0 || self.max_age > 0
    }
}

/// A live shopping session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    pub session_id: String,
    pub host_id: String,
    pub category: Category,
    pub price_band: PriceBand,
    pub language: String,
    pub region: String,
    pub start_time_ms: UnixMs,
    pub status: SessionStatus,
    /// When the session ended; 0 while not ended.
    pub end_time_ms: UnixMs,
    pub target: TargetAudience,
}
