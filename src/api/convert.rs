//! Conversion between wire messages and domain types, with validation.
//!
//! Every function that reads a wire message checks it completely and names the failing field in
//! its error, with the path the client used (`users[2].attributes.age_band`). Domain code receives
//! only values that passed.

use foldhash::{HashMap, HashMapExt};

use crate::domain::{
    AgeBand, Category, Event, EventKind, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SessionStatus,
    Surface, TargetAudience, UnixMs, UserProfile,
};
use crate::experiment::{ArmDef, ExperimentDef, Status as ExperimentStatus};
use crate::policy::PolicyOverride;
use crate::proto::v1 as pb;
use crate::ranking::{RankQuery, Ranked, UnrankedReason};

/// A request field that failed validation. Becomes `INVALID_ARGUMENT` with the message
/// `"<field>: <message>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

pub use crate::text::quote;

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

impl FieldError {
    /// The same error on a field of the message at `at` (`at.field`).
    fn within(mut self, at: &str) -> FieldError {
        self.field = format!("{at}.{}", self.field);
        self
    }
}

/// Longest id in bytes.
pub const MAX_ID_BYTES: usize = 128;
const MAX_CODE_CHARS: usize = 16;
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 64;
const MAX_WATCH_SECONDS: f64 = 86_400.0;
const MAX_AMOUNT: f64 = 1_000_000.0;
const MAX_AGE: u32 = 120;
/// How far ahead of the server's clock an event's or a ranking's time may be (clock skew), ms.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;
/// Earliest accepted event or ranking time: 2000-01-01T00:00:00Z, ms (earlier values are
/// seconds, or a clock that was never set).
pub const MIN_TIME_MS: i64 = 946_684_800_000;

/// Why `value` is not a valid id (1 to 128 bytes, no control characters), if it is not.
fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!("is {} bytes, at most {MAX_ID_BYTES} allowed", value.len()));
    }
    if has_control(value) {
        return Err("contains control characters".into());
    }
    Ok(())
}

/// Whether `value` contains a control character (`char::is_control`), for each of up to 2,000
/// candidate ids per ranking. Ids are nearly always printable ASCII (bytes 0x20 to 0x7E), which one
/// pass over the bytes without early exits confirms; only other strings have their chars decoded.
fn has_control(value: &str) -> bool {
    let unusual = value.bytes().fold(false, |seen, b| seen | !(0x20..0x7f).contains(&b));
    unusual && value.chars().any(char::is_control)
}

/// A required id: 1 to 128 bytes, no control characters.
pub fn id(field: &str, value: &str) -> Result<String, FieldError> {
    check_id(value).map_err(|message| err(field, message))?;
    Ok(value.to_owned())
}

/// A region or language code: letters, digits and '-', at most 16 characters; empty allowed when
/// not `required`.
fn code(field: &str, value: &str, required: bool) -> Result<String, FieldError> {
    if value.is_empty() {
        return if required { Err(err(field, "is required")) } else { Ok(String::new()) };
    }
    if value.len() > MAX_CODE_CHARS || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(err(
            field,
            format!("{} is not a code of letters, digits and '-' (at most {MAX_CODE_CHARS})", quote(value)),
        ));
    }
    Ok(value.to_owned())
}

/// Interest tags, lowercased and de-duplicated.
fn tags(field: &str, values: &[String]) -> Result<Vec<String>, FieldError> {
    if values.len() > MAX_TAGS {
        return Err(err(field, format!("has {} tags, at most {MAX_TAGS} allowed", values.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, tag) in values.iter().enumerate() {
        let n = tag.chars().count();
        if n == 0 || n > MAX_TAG_CHARS || tag.chars().any(char::is_control) {
            return Err(err(format!("{field}[{i}]"), format!("must be 1 to {MAX_TAG_CHARS} printable characters")));
        }
        let tag = tag.to_lowercase();
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A proto enum value the server knows.
fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E, FieldError> {
    E::try_from(value).map_err(|_| err(field, format!("unknown enum value {value}")))
}

/// A time in ms since the epoch; 0 means `now`.
/// A time: 0 = `now`; otherwise from 2000-01-01 to [`MAX_CLOCK_SKEW_MS`] after `now`.
fn time(field: &str, value: i64, now: UnixMs) -> Result<UnixMs, FieldError> {
    match value {
        0 => Ok(now),
        v if v < MIN_TIME_MS => {
            Err(err(field, format!("{v} is before 2000-01-01 (milliseconds since the Unix epoch expected)")))
        }
        v if v > now + MAX_CLOCK_SKEW_MS => Err(err(field, format!("{v} is more than 5 minutes in the future"))),
        v => Ok(v),
    }
}

/// A finite number in `[0, max]`.
fn bounded(field: &str, value: f64, max: f64) -> Result<f64, FieldError> {
    if !value.is_finite() || !(0.0..=max).contains(&value) {
        return Err(err(field, format!("must be a finite number from 0 to {max}, got {value}")));
    }
    Ok(value)
}

fn age_band(v: pb::AgeBand) -> AgeBand {
    match v {
        pb::AgeBand::Unspecified => AgeBand::Unknown,
        pb::AgeBand::AgeBand1317 => AgeBand::A13To17,
        pb::AgeBand::AgeBand1824 => AgeBand::A18To24,
        pb::AgeBand::AgeBand2534 => AgeBand::A25To34,
        pb::AgeBand::AgeBand3544 => AgeBand::A35To44,
        pb::AgeBand::AgeBand4554 => AgeBand::A45To54,
        pb::AgeBand::AgeBand5564 => AgeBand::A55To64,
        pb::AgeBand::AgeBand65Plus => AgeBand::A65Plus,
    }
}

fn gender(v: pb::Gender) -> Gender {
    match v {
        pb::Gender::Unspecified => Gender::Unknown,
        pb::Gender::Female => Gender::Female,
        pb::Gender::Male => Gender::Male,
        pb::Gender::Other => Gender::Other,
    }
}

fn category(field: &str, v: pb::Category) -> Result<Category, FieldError> {
    Ok(match v {
        pb::Category::Unspecified => return Err(err(field, "is required")),
        pb::Category::Fashion => Category::Fashion,
        pb::Category::Sportswear => Category::Sportswear,
        pb::Category::Beauty => Category::Beauty,
        pb::Category::Jewelry => Category::Jewelry,
        pb::Category::Electronics => Category::Electronics,
        pb::Category::Home => Category::Home,
        pb::Category::Food => Category::Food,
        pb::Category::Toys => Category::Toys,
        pb::Category::Collectibles => Category::Collectibles,
        pb::Category::Health => Category::Health,
        pb::Category::Outdoor => Category::Outdoor,
        pb::Category::Other => Category::Other,
    })
}

fn price_band(field: &str, v: pb::PriceBand) -> Result<PriceBand, FieldError> {
    Ok(match v {
        pb::PriceBand::Unspecified => return Err(err(field, "is required")),
        pb::PriceBand::Budget => PriceBand::Budget,
        pb::PriceBand::Mid => PriceBand::Mid,
        pb::PriceBand::Premium => PriceBand::Premium,
        pb::PriceBand::Luxury => PriceBand::Luxury,
    })
}

/// User attributes under the field path `at`.
pub fn user_attributes(at: &str, a: &pb::UserAttributes) -> Result<UserProfile, FieldError> {
    Ok(UserProfile {
        age_band: age_band(known(&format!("{at}.age_band"), a.age_band)?),
        gender: gender(known(&format!("{at}.gender"), a.gender)?),
        region: code(&format!("{at}.region"), &a.region, false)?.into(),
        language: code(&format!("{at}.language"), &a.language, false)?.into(),
        interests: tags(&format!("{at}.interests"), &a.interests)?,
    })
}

/// A user under the field path `at`.
pub fn user(at: &str, u: &pb::User) -> Result<(String, UserProfile), FieldError> {
    let id = id(&format!("{at}.user_id"), &u.user_id)?;
    let profile = match &u.attributes {
        Some(a) => user_attributes(&format!("{at}.attributes"), a)?,
        None => UserProfile::default(),
    };
    Ok((id, profile))
}

fn target(at: &str, t: &pb::TargetAudience) -> Result<TargetAudience, FieldError> {
    for (name, v) in [("min_age", t.min_age), ("max_age", t.max_age)] {
        if v > MAX_AGE {
            return Err(err(format!("{at}.{name}"), format!("must be at most {MAX_AGE}, got {v}")));
        }
    }
    if t.max_age != 0 && t.max_age < t.min_age {
        return Err(err(format!("{at}.max_age"), format!("{} is below min_age {}", t.max_age, t.min_age)));
    }
    let mut genders = Vec::with_capacity(t.genders.len());
    for (i, g) in t.genders.iter().enumerate() {
        let field = format!("{at}.genders[{i}]");
        match gender(known(&field, *g)?) {
            Gender::Unknown => return Err(err(field, "GENDER_UNSPECIFIED cannot be targeted")),
            g if !genders.contains(&g) => genders.push(g),
            _ => {}
        }
    }
    if t.regions.len() > MAX_TAGS {
        return Err(err(format!("{at}.regions"), format!("at most {MAX_TAGS} regions allowed")));
    }
    let regions = t
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| code(&format!("{at}.regions[{i}]"), r, true))
        .collect::<Result<_, _>>()?;
    Ok(TargetAudience {
        min_age: t.min_age,
        max_age: t.max_age,
        genders,
        regions,
        interests: tags(&format!("{at}.interests"), &t.interests)?,
    })
}

/// A live session under the field path `at`.
pub fn session(at: &str, s: &pb::LiveSession) -> Result<LiveSession, FieldError> {
    let f = |name: &str| format!("{at}.{name}");
    let status = match known::<pb::SessionStatus>(&f("status"), s.status)? {
        pb::SessionStatus::Unspecified | pb::SessionStatus::Live => SessionStatus::Live,
        pb::SessionStatus::Scheduled => SessionStatus::Scheduled,
        pb::SessionStatus::Ended => {
            return Err(err(f("status"), "use CatalogService.EndSession to end a session"));
        }
    };
    if s.start_time_unix_ms <= 0 {
        return Err(err(f("start_time_unix_ms"), "is required and must be positive"));
    }
    Ok(LiveSession {
        session_id: id(&f("session_id"), &s.session_id)?,
        host_id: id(&f("host_id"), &s.host_id)?,
        category: category(&f("category"), known(&f("category"), s.category)?)?,
        price_band: price_band(&f("price_band"), known(&f("price_band"), s.price_band)?)?,
        language: code(&f("language"), &s.language, true)?,
        region: code(&f("region"), &s.region, true)?,
        start_time_ms: s.start_time_unix_ms,
        status,
        end_time_ms: 0,
        target: match &s.target {
            Some(t) => target(&f("target"), t)?,
            None => TargetAudience::default(),
        },
    })
}

/// A batch of items converted by `one`, with unique ids and a size in `1..=max`.
pub fn batch<P, T>(
    field: &str,
    items: &[P],
    max: usize,
    key: impl Fn(&T) -> &str,
    one: impl Fn(&str, &P) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    if items.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if items.len() > max {
        return Err(err(field, format!("has {} items, at most {max} allowed per call", items.len())));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let value = one(&at, item)?;
        if let Some(first) = seen.insert(key(&value).to_owned(), i) {
            return Err(err(at, format!("duplicate id {}, also at {field}[{first}]", quote(key(&value)))));
        }
        out.push(value);
    }
    Ok(out)
}

/// An event under the field path `at`.
pub fn event(at: &str, e: &pb::Event, now: UnixMs) -> Result<Event, FieldError> {
    // Field names are checked bare and named under `at` only when they fail: a batch of events
    // builds no strings for the ones that pass.
    event_fields(e, now).map_err(|error| error.within(at))
}

fn event_fields(e: &pb::Event, now: UnixMs) -> Result<Event, FieldError> {
    let kind = match known::<pb::EventType>("type", e.r#type)? {
        pb::EventType::Unspecified => return Err(err("type", "is required")),
        pb::EventType::Impression => EventKind::Impression,
        pb::EventType::View => EventKind::View,
        pb::EventType::Watch => EventKind::Watch,
        pb::EventType::Like => EventKind::Like,
        pb::EventType::Comment => EventKind::Comment,
        pb::EventType::Share => EventKind::Share,
        pb::EventType::Follow => EventKind::Follow,
        pb::EventType::AddToCart => EventKind::AddToCart,
        pb::EventType::Purchase => EventKind::Purchase,
        pb::EventType::Return => EventKind::Return,
        pb::EventType::Hide => EventKind::Hide,
    };
    let ranking_id = match (kind, e.ranking_id.is_empty()) {
        (EventKind::Impression, true) => {
            return Err(err("ranking_id", "is required for impressions"));
        }
        (_, true) => String::new(),
        (_, false) if !crate::ranking::id::is_issued(&e.ranking_id) => {
            return Err(err(
                "ranking_id",
                format!("{} was not issued by this service (use a RankResponse.ranking_id)", quote(&e.ranking_id)),
            ));
        }
        (_, false) => e.ranking_id.clone(),
    };
    let watch_seconds = match kind {
        EventKind::Watch => bounded("watch_seconds", e.watch_seconds, MAX_WATCH_SECONDS)?,
        _ => 0.0,
    };
    let amount = match kind {
        EventKind::Purchase if e.amount == 0.0 => return Err(err("amount", "is required for purchases (> 0)")),
        EventKind::Purchase | EventKind::Return => bounded("amount", e.amount, MAX_AMOUNT)?,
        _ => 0.0,
    };
    let order_id = match (kind, e.order_id.is_empty()) {
        (_, true) => String::new(),
        (EventKind::Purchase | EventKind::Return, false) => id("order_id", &e.order_id)?,
        (_, false) => return Err(err("order_id", "is only for purchases and returns")),
    };
    Ok(Event {
        event_id: id("event_id", &e.event_id)?,
        kind,
        user_id: id("user_id", &e.user_id)?,
        session_id: id("session_id", &e.session_id)?,
        time_ms: time("time_unix_ms", e.time_unix_ms, now)?,
        ranking_id,
        position: e.position,
        watch_seconds,
        amount,
        order_id,
    })
}

/// A ranking request (taken by value: the candidate ids move into the query in their one buffer).
pub fn rank_query(r: pb::RankRequest, limits: &super::Limits, now: UnixMs) -> Result<RankQuery, FieldError> {
    let user_id = id("user_id", &r.user_id)?;
    let user_override = r.user.as_ref().map(|a| user_attributes("user", a)).transpose()?;
    let context = match &r.context {
        Some(c) => RequestContext {
            time_ms: time("context.time_unix_ms", c.time_unix_ms, now)?,
            surface: match known::<pb::Surface>("context.surface", c.surface)? {
                pb::Surface::Unspecified => Surface::Unknown,
                pb::Surface::HomeFeed => Surface::HomeFeed,
                pb::Surface::Search => Surface::Search,
                pb::Surface::Following => Surface::Following,
                pb::Surface::Notification => Surface::Notification,
            },
        },
        None => RequestContext { time_ms: now, surface: Surface::Unknown },
    };
    let candidates = r.candidate_session_ids;
    if candidates.len() > limits.max_candidates {
        return Err(err(
            "candidate_session_ids",
            format!("has {} candidates, at most {} allowed", candidates.len(), limits.max_candidates),
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        let field = || format!("candidate_session_ids[{i}]");
        check_id(c).map_err(|message| err(field(), message))?;
        if let Some(first) = seen.insert(c, i) {
            return Err(err(field(), format!("duplicate of candidate_session_ids[{first}]")));
        }
    }
    drop(seen);
    let limit = match r.limit as usize {
        0 => limits.default_limit,
        l if l > limits.max_candidates => {
            return Err(err("limit", format!("{l} exceeds the maximum of {}", limits.max_candidates)));
        }
        l => l,
    };
    Ok(RankQuery { user_id, user_override, context, candidates, limit, deadline: None })
}

/// A ranking as a response.
pub fn ranked_to_proto(r: Ranked) -> pb::RankResponse {
    pb::RankResponse {
        ranking_id: r.ranking_id,
        model_version: r.model_id,
        scored: r.scored as u32,
        degraded: r.degraded,
        experiments: r
            .exposures
            .into_iter()
            .map(|e| pb::ExperimentExposure { experiment: e.experiment, arm: e.arm })
            .collect(),
        items: r
            .items
            .into_iter()
            .map(|i| pb::RankedItem {
                session_id: i.session_id,
                score: f64::from(i.score),
                p_engage: f64::from(i.p_engage),
                p_purchase: f64::from(i.p_purchase),
                audience_fit: f64::from(i.audience_fit),
                in_target: i.in_target,
                targeting_credit: i.targeting_credit,
            })
            .collect(),
        unranked: r
            .unranked
            .into_iter()
            .map(|(session_id, reason)| pb::UnrankedCandidate {
                session_id,
                reason: match reason {
                    UnrankedReason::NotFound => pb::UnrankedReason::NotFound,
                    UnrankedReason::Ended => pb::UnrankedReason::Ended,
                    UnrankedReason::NotLive => pb::UnrankedReason::NotLive,
                    UnrankedReason::Unavailable => pb::UnrankedReason::Unavailable,
                } as i32,
            })
            .collect(),
    }
}

/// Live stats as a message, windows decayed to `now`.
pub fn stats_to_proto(s: &LiveStats, now: UnixMs) -> pb::LiveStats {
    use crate::domain::stats::counter;
    use crate::domain::window::WINDOW_NAMES;
    let audience = AgeBand::ALL
        .iter()
        .flat_map(|a| Gender::ALL.iter().map(move |g| (*a, *g)))
        .filter_map(|(a, g)| {
            let views =
                s.segment_views[crate::domain::segment(&UserProfile { age_band: a, gender: g, ..Default::default() })];
            (views > 0).then(|| pb::AudienceSegment {
                age_band: pb::AgeBand::from(a) as i32,
                gender: pb::Gender::from(g) as i32,
                views: u64::from(views),
            })
        })
        .collect();
    let windows = WINDOW_NAMES
        .iter()
        .enumerate()
        .map(|(w, name)| {
            let get = |c| f64::from(s.windows.get(c, w, now));
            pb::WindowCounts {
                window: (*name).to_owned(),
                impressions: get(counter::IMPRESSIONS),
                views: get(counter::VIEWS),
                watch_seconds: get(counter::WATCH_SECONDS),
                purchases: get(counter::PURCHASES),
            }
        })
        .collect();
    pb::LiveStats {
        impressions: s.impressions,
        views: s.views,
        watch_seconds: s.watch_seconds,
        interactions: s.interactions,
        follows: s.follows,
        add_to_carts: s.add_to_carts,
        purchases: s.purchases,
        revenue: s.revenue,
        returns: s.returns,
        hides: s.hides,
        on_target_views: s.on_target_views,
        known_views: s.known_views,
        audience,
        windows,
    }
}

/// An experiment definition from the wire. Field checks beyond shape happen in
/// [`crate::experiment::ExperimentDef::normalized`], whose errors name the field.
pub fn experiment_from_proto(e: pb::Experiment) -> Result<ExperimentDef, FieldError> {
    let finite = |v: Option<f32>, field: &'static str| match v {
        Some(x) if !x.is_finite() => Err(err(field, "must be finite")),
        other => Ok(other),
    };
    let mut arms = Vec::with_capacity(e.arms.len());
    for a in e.arms {
        let p = a.policy.unwrap_or_default();
        arms.push(ArmDef {
            name: a.name,
            weight: a.weight,
            model: (!a.model.is_empty()).then_some(a.model),
            policy: PolicyOverride {
                purchase_weight: finite(p.purchase_weight, "experiment.arms.policy.purchase_weight")?,
                engage_weight: finite(p.engage_weight, "experiment.arms.policy.engage_weight")?,
                audience_fit_weight: finite(p.audience_fit_weight, "experiment.arms.policy.audience_fit_weight")?,
                on_target_weight: finite(p.on_target_weight, "experiment.arms.policy.on_target_weight")?,
                exploration_share: finite(p.exploration_share, "experiment.arms.policy.exploration_share")?,
            },
        });
    }
    let kind = match e.kind.as_str() {
        "" | "ab" => crate::experiment::Kind::Ab,
        "interleave" => crate::experiment::Kind::Interleave,
        other => return Err(err("experiment.kind", format!("{} is not ab or interleave", quote(other)))),
    };
    Ok(ExperimentDef {
        name: e.name,
        kind,
        layer: e.layer,
        salt: e.salt,
        range_start: e.range_start,
        range_end: if e.range_end == 0 { crate::experiment::BUCKETS } else { e.range_end },
        coverage: e.coverage,
        control: e.control,
        arms,
        status: ExperimentStatus::Running,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn control_characters_are_found_as_char_is_control_finds_them(value in any::<String>(), ascii in "[\\x00-\\x7f]{0,40}") {
            prop_assert_eq!(has_control(&value), value.chars().any(char::is_control));
            prop_assert_eq!(has_control(&ascii), ascii.chars().any(char::is_control));
        }
    }

    #[test]
    fn control_characters_at_the_edges() {
        for (value, control) in [
            ("abc", false),
            ("a\u{1f}", true),
            ("\u{7f}", true),
            ("a\u{80}b", true),
            ("\u{9f}", true),
            ("\u{a0}é", false),
            ("", false),
        ] {
            assert_eq!(has_control(value), control, "{value:?}");
        }
    }
}
