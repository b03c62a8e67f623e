//! The domain vocabulary: users, live sessions, target audiences, events and live statistics.
//!
//! These types know nothing about gRPC; `crate::api::convert` turns wire messages into them after
//! validation, so everything below the API layer can assume its inputs are well formed (ids
//! non-empty, numbers finite and in range, enums known).

/// Defines a closed enum with a dense index (for one-hot features) and a stable snake_case name
/// (for feature names, the CLI and logs).
macro_rules! dense_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            #[default]
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Number of values.
            pub const COUNT: usize = $name::ALL.len();

            /// Dense 0-based index, stable within a feature schema version.
            pub fn index(self) -> usize {
                self as usize
            }

            /// Stable lowercase name.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }

            /// Parses a name produced by [`Self::name`].
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

mod activity;
pub mod audience;
mod catalog;
mod context;
mod event;
pub mod learned;
pub mod observed;
pub mod stats;
pub mod window;

pub use activity::{AFFINITY_HALF_LIFE_MS, UserActivity, engagement_weight};
pub use catalog::{AgeBand, Category, Gender, LiveSession, PriceBand, SessionStatus, TargetAudience, UserProfile};
pub use context::{RequestContext, Surface};
pub use event::{Event, EventKind, EventV1};
pub use observed::{GroupShare, ObservedAudience, observed};
pub use stats::{LiveStats, SEGMENTS, Viewer, segment};

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The UTC date and time of `ms` (clamped to chrono's range, which spans ±262,000 years).
fn utc(ms: UnixMs) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Formats ms since the epoch as RFC 3339 UTC (`2026-11-22T02:09:21Z`).
pub fn rfc3339(ms: UnixMs) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats ms since the epoch as a sortable version name (`20261122-020921`).
pub fn version_stamp(ms: UnixMs) -> String {
    utc(ms).format("%Y%m%d-%H%M%S").to_string()
}

/// Parses a time given as ms since the epoch, as RFC 3339 (`2026-11-22T02:09:21Z`,
/// `2026-11-22T03:09:21.250+01:00`), or as a date alone (`2026-11-22`, midnight UTC).
pub fn parse_time(s: &str) -> Option<UnixMs> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_313_361_000), "2026-11-22T02:09:21Z");
        assert_eq!(super::version_stamp(951_782_400_000), "20000229-000000");
        assert_eq!(super::parse_time("2026-11-22T02:09:21Z"), Some(1_795_313_361_000));
        assert_eq!(super::parse_time("2000-02-29"), Some(951_782_400_000));
        assert_eq!(super::parse_time("17"), Some(17));
        assert_eq!(super::parse_time("2026-13-01"), None);
        // Offsets and fractions of a second, as Python's and JavaScript's writers produce them.
        assert_eq!(super::parse_time("2026-11-22T03:09:21.250+01:00"), Some(1_795_313_361_250));
        assert_eq!(super::parse_time("2026-11-22t02:09:21z"), Some(1_795_313_361_000));
        assert_eq!(super::parse_time("2026-11-22T02:09"), None);
    }
}
