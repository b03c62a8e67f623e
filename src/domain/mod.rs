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
mod ids;
pub mod stats;
pub mod window;

pub use activity::{AFFINITY_HALF_LIFE_MS, UserActivity, engagement_weight};
pub use catalog::{AgeBand, Category, Gender, LiveSession, PriceBand, SessionStatus, TargetAudience, UserProfile};
pub use context::{RequestContext, Surface};
pub use event::{Event, EventKind};
pub use ids::IdList;
pub use stats::{LiveStats, SEGMENTS, Viewer, segment};

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Formats ms since the epoch as RFC 3339 UTC (`2026-11-22T02:09:21Z`).
pub fn rfc3339(ms: UnixMs) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Formats ms since the epoch as a sortable version name (`20261122-020921`).
pub fn version_stamp(ms: UnixMs) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(ms);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Parses a time given as ms since the epoch or as RFC 3339 UTC (`2026-11-22T02:09:21Z`, or a
/// date alone, `2026-11-22`).
pub fn parse_time(s: &str) -> Option<UnixMs> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, t.strip_suffix('Z')?),
        None => (s, "00:00:00"),
    };
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // days from civil (inverse of utc_parts)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + h * 3600 + mi * 60 + sec) * 1000)
}

/// (year, month, day, hour, minute, second) in UTC, by the civil-from-days algorithm.
fn utc_parts(ms: UnixMs) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
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
    }
}
