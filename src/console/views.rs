//! What each console page shows, as JSON: built from the store, the registries and the history,
//! with the same domain functions the gRPC API answers from.
//!
//! The audience figures of a session, for what this replica placed (`shown`) and what its live
//! stats count (views and purchases per age band × gender):
//!
//! | figure | meaning |
//! |---|---|
//! | shown inside | share of placements in front of users inside the declared target (of the ones a segment can decide) |
//! | viewers inside, buyers inside | the same share of its profiled viewers and buyers ([`observed`]) |
//! | true audience | share of placements in front of groups that bought here, once it has [`MIN_BUYERS`] buyers: the audience its evidence shows, whatever it declared |
//! | wasted | share of placements in front of groups that watched at least [`WASTE_VIEWS`] times and never bought here, once it has [`MIN_BUYERS`] buyers |

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::audience::segment_in_target;
use crate::domain::observed::{MIN_BUYERS, describe_shares, groups};
use crate::domain::{AgeBand, Gender, LiveSession, LiveStats, SEGMENTS, UnixMs, observed};

/// Views by a group without a purchase that make its placements "wasted".
pub const WASTE_VIEWS: u32 = 20;

/// A session's audience figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AudienceFigures {
    pub shown: u64,
    pub shown_inside: Option<f64>,
    pub viewers_inside: Option<f64>,
    pub buyers_inside: Option<f64>,
    pub true_audience: Option<f64>,
    pub wasted: Option<f64>,
    pub mismatch: Option<String>,
    pub declared: String,
    /// Whether the session declares an age or a gender (the dimensions a segment decides).
    pub declares: bool,
    pub top_viewers: String,
    pub top_buyers: String,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The audience figures of `session` with `stats`, placed `shown` times per segment.
pub fn audience_of(session: &LiveSession, stats: &LiveStats, shown: &[u32; SEGMENTS]) -> AudienceFigures {
    let o = observed(&session.target, stats);
    let target = &session.target;
    let (mut inside, mut decided, mut total, mut buyer_groups, mut wasted) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for (band, gender, s) in groups() {
        let n = u64::from(shown[s]);
        total += n;
        if let Some(on) = segment_in_target(target, band, gender) {
            decided += n;
            inside += n * u64::from(on);
        }
        if stats.segment_purchases[s] > 0 {
            buyer_groups += n;
        } else if stats.segment_views[s] >= WASTE_VIEWS {
            wasted += n;
        }
    }
    let evidence = o.profiled_purchases >= MIN_BUYERS;
    AudienceFigures {
        shown: total,
        shown_inside: if o.viewers_inside_share.is_some() || target.has_age() || !target.genders.is_empty() {
            share(inside, decided)
        } else {
            None
        },
        viewers_inside: o.viewers_inside_share,
        buyers_inside: o.buyers_inside_share,
        true_audience: if evidence { share(buyer_groups, total) } else { None },
        wasted: if evidence { share(wasted, total) } else { None },
        declares: target.has_age() || !target.genders.is_empty(),
        top_viewers: describe_shares(&o.top_viewers),
        top_buyers: describe_shares(&o.top_buyers),
        mismatch: o.mismatch,
        declared: o.declared,
    }
}

/// One row of the audience page.
#[derive(Debug, Clone, Serialize)]
pub struct AudienceRow {
    pub session_id: String,
    pub host_id: String,
    pub category: &'static str,
    pub price_band: &'static str,
    pub start_ms: UnixMs,
    pub impressions: u64,
    pub views: u64,
    pub purchases: u64,
    pub revenue: f64,
    #[serde(flatten)]
    pub audience: AudienceFigures,
    /// Seconds from the start of the show to the sample that first saw a purchase.
    pub first_purchase_s: Option<f64>,
    pub new_host: bool,
}

impl AudienceRow {
    pub fn new(
        session: &LiveSession,
        stats: &LiveStats,
        shown: &[u32; SEGMENTS],
        first: Option<&(Option<UnixMs>, bool)>,
    ) -> Self {
        let (first_purchase_ms, new_host) = first.copied().unwrap_or((None, false));
        AudienceRow {
            session_id: session.session_id.clone(),
            host_id: session.host_id.clone(),
            category: session.category.name(),
            price_band: session.price_band.name(),
            start_ms: session.start_time_ms,
            impressions: stats.impressions,
            views: stats.views,
            purchases: stats.purchases,
            revenue: stats.revenue,
            audience: audience_of(session, stats, shown),
            first_purchase_s: first_purchase_ms.map(|t| ((t - session.start_time_ms) as f64 / 1_000.0).max(0.0)),
            new_host,
        }
    }
}

/// What the audience page asks for.
#[derive(Debug, Clone, Default)]
pub struct AudienceQuery {
    /// Part of the session or host id.
    pub text: String,
    pub category: String,
    pub host: String,
    pub mismatch_only: bool,
    pub sort: String,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

impl AudienceQuery {
    /// Reads the query string (`q`, `category`, `host`, `mismatch=1`, `sort`, `desc=1`, `offset`,
    /// `limit`); unknown keys are ignored, bad numbers fall back to the defaults.
    pub fn parse(query: Option<&str>) -> Self {
        let mut q = AudienceQuery { limit: 100, sort: "purchases".into(), descending: true, ..Default::default() };
        for (k, v) in pairs(query) {
            match k.as_str() {
                "q" => q.text = v,
                "category" => q.category = v,
                "host" => q.host = v,
                "mismatch" => q.mismatch_only = v == "1",
                "sort" => q.sort = v,
                "desc" => q.descending = v == "1",
                "offset" => q.offset = v.parse().unwrap_or(0),
                "limit" => q.limit = v.parse::<usize>().unwrap_or(100).clamp(1, 1_000),
                _ => {}
            }
        }
        q
    }

    fn keeps(&self, row: &AudienceRow) -> bool {
        (self.text.is_empty() || row.session_id.contains(&self.text) || row.host_id.contains(&self.text))
            && (self.category.is_empty() || row.category == self.category)
            && (self.host.is_empty() || row.host_id == self.host)
            && (!self.mismatch_only || row.audience.mismatch.is_some())
    }
}

/// `key=value` pairs of a query string, percent-decoded.
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes `s` (`+` is a space); a stray `%` stays as it is.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The audience page.
#[derive(Debug, Clone, Serialize)]
pub struct AudiencePage {
    /// Live sessions, and those the filters keep.
    pub live: usize,
    pub matched: usize,
    pub offset: usize,
    pub rows: Vec<AudienceRow>,
    pub categories: Vec<&'static str>,
    pub summary: AudienceSummary,
    /// Placements, views and purchases per segment, summed over the sessions the filters keep.
    pub heat: Heat,
}

/// Figures over the sessions the filters keep.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AudienceSummary {
    pub mismatched: usize,
    pub shown: u64,
    /// Placement-weighted means over sessions that have the figure.
    pub shown_inside: Option<f64>,
    pub true_audience: Option<f64>,
    pub wasted: Option<f64>,
    pub new_hosts: usize,
    pub new_hosts_selling: usize,
    /// Median seconds to the first purchase of new hosts that sold.
    pub new_hosts_median_first_purchase_s: Option<f64>,
}

/// Counts per audience segment, with the labels of rows (age bands) and columns (genders).
#[derive(Debug, Clone, Serialize)]
pub struct Heat {
    pub ages: Vec<&'static str>,
    pub genders: Vec<&'static str>,
    /// Per segment (age index × genders + gender index): inside the declared target (`true`),
    /// outside, or undecided (`null`); absent for a sum over sessions.
    pub declared: Option<Vec<Option<bool>>>,
    pub shown: Vec<u64>,
    pub viewed: Vec<u64>,
    pub bought: Vec<u64>,
}

impl Heat {
    fn empty() -> Self {
        Heat {
            ages: AgeBand::ALL.iter().map(|a| a.name()).collect(),
            genders: Gender::ALL.iter().map(|g| g.name()).collect(),
            declared: None,
            shown: vec![0; SEGMENTS],
            viewed: vec![0; SEGMENTS],
            bought: vec![0; SEGMENTS],
        }
    }

    fn add(&mut self, shown: &[u32; SEGMENTS], stats: &LiveStats) {
        let counts = shown.iter().zip(&stats.segment_views).zip(&stats.segment_purchases);
        for (s, ((shown, viewed), bought)) in counts.enumerate() {
            self.shown[s] += u64::from(*shown);
            self.viewed[s] += u64::from(*viewed);
            self.bought[s] += u64::from(*bought);
        }
    }

    /// The heat map of one session, with its declared target.
    pub fn of(session: &LiveSession, stats: &LiveStats, shown: &[u32; SEGMENTS]) -> Self {
        let mut heat = Heat::empty();
        heat.add(shown, stats);
        heat.declared = Some(groups().map(|(a, g, _)| segment_in_target(&session.target, a, g)).collect());
        heat
    }
}

/// Builds the audience page from the live sessions (`(session, stats, shown)`).
pub fn audience_page(
    live: &[(&LiveSession, &LiveStats, [u32; SEGMENTS])],
    firsts: &HashMap<String, (Option<UnixMs>, bool)>,
    query: &AudienceQuery,
) -> AudiencePage {
    let mut categories: Vec<&'static str> = live.iter().map(|(s, _, _)| s.category.name()).collect();
    categories.sort_unstable();
    categories.dedup();
    let mut heat = Heat::empty();
    let mut rows = Vec::new();
    for (session, stats, shown) in live {
        let row = AudienceRow::new(session, stats, shown, firsts.get(&session.session_id));
        if query.keeps(&row) {
            heat.add(shown, stats);
            rows.push(row);
        }
    }
    let summary = summarize(&rows);
    sort(&mut rows, &query.sort, query.descending);
    let matched = rows.len();
    let rows = rows.into_iter().skip(query.offset).take(query.limit).collect();
    AudiencePage { live: live.len(), matched, offset: query.offset, rows, categories, summary, heat }
}

fn summarize(rows: &[AudienceRow]) -> AudienceSummary {
    let weighted = |f: fn(&AudienceFigures) -> Option<f64>| {
        let (mut sum, mut weight) = (0.0, 0u64);
        for r in rows {
            if let Some(v) = f(&r.audience) {
                sum += v * r.audience.shown as f64;
                weight += r.audience.shown;
            }
        }
        (weight > 0).then(|| sum / weight as f64)
    };
    let new_hosts: Vec<&AudienceRow> = rows.iter().filter(|r| r.new_host).collect();
    let mut firsts: Vec<f64> = new_hosts.iter().filter_map(|r| r.first_purchase_s).collect();
    firsts.sort_by(f64::total_cmp);
    AudienceSummary {
        mismatched: rows.iter().filter(|r| r.audience.mismatch.is_some()).count(),
        shown: rows.iter().map(|r| r.audience.shown).sum(),
        shown_inside: weighted(|a| a.shown_inside),
        true_audience: weighted(|a| a.true_audience),
        wasted: weighted(|a| a.wasted),
        new_hosts: new_hosts.len(),
        new_hosts_selling: firsts.len(),
        new_hosts_median_first_purchase_s: (!firsts.is_empty()).then(|| firsts[firsts.len() / 2]),
    }
}

/// Sorts by a column name; unknown names sort by purchases.
fn sort(rows: &mut [AudienceRow], by: &str, descending: bool) {
    let num = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
    match by {
        "session" => rows.sort_by(|a, b| a.session_id.cmp(&b.session_id)),
        "host" => rows.sort_by(|a, b| a.host_id.cmp(&b.host_id).then(a.session_id.cmp(&b.session_id))),
        "category" => rows.sort_by(|a, b| a.category.cmp(b.category).then(a.session_id.cmp(&b.session_id))),
        "start" => rows.sort_by_key(|r| r.start_ms),
        "shown" => rows.sort_by_key(|r| r.audience.shown),
        "views" => rows.sort_by_key(|r| r.views),
        "shown_inside" => rows.sort_by(|a, b| num(a.audience.shown_inside).total_cmp(&num(b.audience.shown_inside))),
        "viewers_inside" => {
            rows.sort_by(|a, b| num(a.audience.viewers_inside).total_cmp(&num(b.audience.viewers_inside)))
        }
        "buyers_inside" => rows.sort_by(|a, b| num(a.audience.buyers_inside).total_cmp(&num(b.audience.buyers_inside))),
        "true_audience" => rows.sort_by(|a, b| num(a.audience.true_audience).total_cmp(&num(b.audience.true_audience))),
        "wasted" => rows.sort_by(|a, b| num(a.audience.wasted).total_cmp(&num(b.audience.wasted))),
        "first_purchase" => rows.sort_by(|a, b| num(a.first_purchase_s).total_cmp(&num(b.first_purchase_s))),
        _ => rows.sort_by_key(|r| r.purchases),
    }
    if descending {
        rows.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Category, PriceBand, SessionStatus, TargetAudience};

    fn session(id: &str, target: TargetAudience) -> LiveSession {
        LiveSession {
            session_id: id.into(),
            host_id: format!("host-{id}"),
            category: Category::default(),
            price_band: PriceBand::default(),
            language: "en".into(),
            region: "US".into(),
            start_time_ms: 0,
            status: SessionStatus::default(),
            end_time_ms: 0,
            target,
        }
    }

    fn seg(age: AgeBand, gender: Gender) -> usize {
        age.index() * Gender::COUNT + gender.index()
    }

    #[test]
    fn figures_follow_placements_into_the_target_the_buyers_and_the_browsers() {
        let women_20_30 =
            TargetAudience { min_age: 20, max_age: 30, genders: vec![Gender::Female], ..Default::default() };
        let s = session("yoga", women_20_30);
        let (women, men, browsers) = (
            seg(AgeBand::A25To34, Gender::Female),
            seg(AgeBand::A55To64, Gender::Male),
            seg(AgeBand::A45To54, Gender::Male),
        );
        let mut stats = LiveStats::default();
        stats.segment_views[women] = 5;
        stats.segment_views[men] = 30;
        stats.segment_purchases[men] = 12;
        stats.segment_views[browsers] = WASTE_VIEWS;
        let mut shown = [0u32; SEGMENTS];
        shown[women] = 20;
        shown[men] = 50;
        shown[browsers] = 30;
        let a = audience_of(&s, &stats, &shown);
        assert_eq!(a.shown, 100);
        assert_eq!(a.shown_inside, Some(0.2));
        assert_eq!(a.true_audience, Some(0.5));
        assert_eq!(a.wasted, Some(0.3));
        assert!(a.mismatch.as_deref().is_some_and(|m| m.contains("men 55–64")), "{a:?}");
        assert!(a.declares);

        // Without enough buyers there is no evidence for the true audience or the waste.
        stats.segment_purchases[men] = MIN_BUYERS as u32 - 1;
        let a = audience_of(&s, &stats, &shown);
        assert_eq!((a.true_audience, a.wasted), (None, None));
        // A session that declares nothing has no inside share.
        let open = audience_of(&session("open", TargetAudience::default()), &stats, &shown);
        assert_eq!((open.shown_inside, open.declares), (None, false));
    }

    #[test]
    fn filters_sort_and_page() {
        let sessions: Vec<LiveSession> =
            (0..30).map(|i| session(&format!("s{i:02}"), TargetAudience::default())).collect();
        let stats: Vec<LiveStats> =
            (0..30).map(|i| LiveStats { purchases: i, views: 100 - i, ..Default::default() }).collect();
        let live: Vec<_> = sessions.iter().zip(&stats).map(|(s, st)| (s, st, [0u32; SEGMENTS])).collect();
        let page = audience_page(&live, &HashMap::new(), &AudienceQuery::parse(Some("limit=10&offset=5")));
        assert_eq!((page.live, page.matched, page.rows.len()), (30, 30, 10));
        assert_eq!(page.rows[0].purchases, 24, "by purchases, most first, from the sixth");
        let page = audience_page(&live, &HashMap::new(), &AudienceQuery::parse(Some("sort=views&desc=0&q=s2")));
        let ids: Vec<&str> = page.rows.iter().map(|r| r.session_id.as_str()).collect();
        assert_eq!(ids, ["s29", "s28", "s27", "s26", "s25", "s24", "s23", "s22", "s21", "s20"]);
        assert_eq!(page.categories.len(), 1);
    }

    #[test]
    fn decodes_query_strings() {
        let q = AudienceQuery::parse(Some("q=host%2Dyoga+live&category=beauty&mismatch=1&limit=99999&offset=x"));
        assert_eq!((q.text.as_str(), q.category.as_str(), q.mismatch_only), ("host-yoga live", "beauty", true));
        assert_eq!((q.limit, q.offset), (1_000, 0));
        assert_eq!(pairs(Some("a=%zz&b=%4")), [("a".to_owned(), "%zz".to_owned()), ("b".to_owned(), "%4".to_owned())]);
    }
}
