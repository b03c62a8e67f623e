//! Joining outcomes to what was served.
//!
//! Rules (all configurable through [`JoinOptions`]):
//!
//! - Outcomes are de-duplicated by event id (retried batches can log an event twice).
//! - A served item counts as **shown** when an impression event names its ranking id and session;
//!   items never shown are left out unless `require_impression` is off.
//! - An outcome event that names a `ranking_id` is attributed to that ranking's item for its session
//!   if it happened within `window_ms` after the ranking; later ones are counted as **late**; ids not
//!   in the log are counted as **unknown ranking**.
//! - An outcome without a ranking id is attributed to the latest ranking that served the same
//!   (user, session) within `window_ms` before it (last touch); none → **unattributed**.
//! - Returns use `return_window_ms` (returns come days later) instead of `window_ms`.
//! - Rows whose attribution window (`window_ms`) had not closed at the log's end (its newest
//!   ranking or event) are left out unless `include_open` is on: their labels may still change,
//!   and they would read as "no purchase". (Return labels stay provisional for `return_window_ms`.)
//! - Scored candidates that were not returned (propensity 0, `feature_log.unreturned_candidates`)
//!   are left out unless `include_candidates` is on; outcomes are never attributed to them.
//!   `include_candidates` also keeps every returned item, shown or not: an off-policy estimate
//!   needs the whole list the logging policy chose from, or the candidate's "choice" falls on
//!   whatever was left.
//! - A return that names an order id the same user's purchase created is attributed to that
//!   purchase's item, whatever its ranking id says.
//!
//! Labels: engaged = a view or watch; purchased = a purchase (amount summed); returned = a return;
//! net purchase = more purchases than returns reversed (a user who bought twice and returned one
//! order still bought).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::columns::{Labels, append_row};
use super::table::{Table, TableBuilder};
use fitrank::domain::{Event, EventKind, UnixMs};
use fitrank::featurelog::{ServedRanking, read_outcomes, read_served};
use fitrank::features::{self, extract};

/// Join settings.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Only rankings served at or after this time (ms).
    pub from_ms: UnixMs,
    /// Only rankings served before this time (ms).
    pub to_ms: UnixMs,
    /// Attribution window for engagement and purchases (default 30 minutes).
    pub window_ms: i64,
    /// Attribution window for returns (default 30 days).
    pub return_window_ms: i64,
    /// Keep only items with an impression event (default true).
    pub require_impression: bool,
    /// Keep rows whose attribution window had not closed at the log's end (default false).
    pub include_open: bool,
    /// Keep the logged candidates that were not returned (default false).
    pub include_candidates: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            from_ms: 0,
            to_ms: i64::MAX,
            window_ms: 30 * 60_000,
            return_window_ms: 30 * 86_400_000,
            require_impression: true,
            include_open: false,
            include_candidates: false,
        }
    }
}

/// What the join saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JoinStats {
    pub rankings: u64,
    pub served_items: u64,
    pub rows: u64,
    pub engaged_rows: u64,
    pub purchased_rows: u64,
    pub returned_rows: u64,
    pub net_purchased_rows: u64,
    /// Returns attributed to the purchase of the order they name.
    pub order_returns: u64,
    pub outcome_events: u64,
    pub duplicate_events: u64,
    pub impressions: u64,
    pub attributed_events: u64,
    pub late_events: u64,
    pub unknown_ranking_events: u64,
    pub unattributed_events: u64,
    pub not_shown_items: u64,
    /// The log's end: its newest ranking or event (ms).
    pub log_end_ms: UnixMs,
    /// Rows left out because their attribution window was still open at `log_end_ms`.
    pub open_window_rows: u64,
    /// Logged candidates that were not returned (kept only with `include_candidates`).
    pub unreturned_candidates: u64,
    pub skewed_rows: u64,
    pub torn_segments: u64,
    pub damaged_segments: u64,
}

/// What the join keeps of a served ranking between its two reads of the log: enough to attribute
/// outcomes to it, a small part of the whole (the whole log need not fit in memory).
struct Served {
    ranking_id: String,
    user_id: String,
    time_ms: UnixMs,
    /// The sessions of its returned items, in order.
    returned: Vec<String>,
}

impl Served {
    fn of(r: &ServedRanking) -> Served {
        Served {
            ranking_id: r.ranking_id.clone(),
            user_id: r.user_id.clone(),
            time_ms: r.context.time_ms,
            returned: r
                .items
                .iter()
                .filter(|item| returned(item))
                .map(|item| item.session.session_id.clone())
                .collect(),
        }
    }
}

/// Reads the log twice: first what each ranking served (to attribute the outcomes), then each
/// ranking whole, one at a time, to write its rows. Rows come out in the rankings' time order.
pub(super) fn join(dirs: &[PathBuf], opt: &JoinOptions) -> std::io::Result<(Table, JoinStats)> {
    let mut stats = JoinStats::default();

    let mut rankings: Vec<Served> = Vec::new();
    let served = read_served(dirs, |r| rankings.push(Served::of(&r)))?;
    let mut seen = HashSet::new();
    let mut events: Vec<Event> = Vec::new();
    let mut outcome_events = 0u64;
    let outcomes = read_outcomes(dirs, |e| {
        outcome_events += 1;
        if seen.insert(e.event_id.clone()) {
            events.push(e);
        }
    })?;
    stats.torn_segments = served.torn_segments + outcomes.torn_segments;
    stats.damaged_segments = served.damaged_segments + outcomes.damaged_segments;
    stats.outcome_events = outcome_events;
    stats.duplicate_events = outcome_events - events.len() as u64;
    // A return comes after the purchase it reverses.
    events.sort_by_key(|e| e.time_ms);

    let newest_event = events.last().map_or(UnixMs::MIN, |e| e.time_ms);
    let newest_ranking = rankings.iter().map(|r| r.time_ms).max().unwrap_or(UnixMs::MIN);
    stats.log_end_ms = newest_ranking.max(newest_event);

    let by_id: HashMap<&str, usize> = rankings.iter().enumerate().map(|(i, r)| (r.ranking_id.as_str(), i)).collect();
    let labels = attribute(&rankings, &by_id, &events, opt, &mut stats);

    // The second read: each ranking's rows, numbered as the first read numbered them.
    let mut builder = TableBuilder::default();
    let mut row_times: Vec<UnixMs> = Vec::new();
    let mut recomputed = [0f32; features::NUM_FEATURES];
    read_served(dirs, |r| {
        // A ranking logged after the first read (the log of a running service) has no labels yet.
        let Some(&i) = by_id.get(r.ranking_id.as_str()) else { return };
        if r.context.time_ms < opt.from_ms || r.context.time_ms >= opt.to_ms {
            return;
        }
        stats.rankings += 1;
        let rows = write_rows(&r, i, &labels, opt, &mut stats, &mut builder, &mut recomputed);
        row_times.extend(std::iter::repeat_n(r.context.time_ms, rows));
    })?;
    if builder.table.columns.is_empty() {
        return Ok((super::columns::empty_table(), stats));
    }
    let mut table = builder.table;
    let mut order: Vec<usize> = (0..row_times.len()).collect();
    order.sort_by_key(|&row| row_times[row]);
    if order.iter().enumerate().any(|(k, &row)| k != row) {
        table.permute(&order);
    }
    Ok((table, stats))
}

/// Outcome labels per (ranking number, session id), and which of those items were shown.
struct Attributed<'a> {
    shown: HashSet<(usize, &'a str)>,
    labels: HashMap<(usize, &'a str), Labels>,
}

fn attribute<'a>(
    rankings: &'a [Served],
    by_id: &HashMap<&str, usize>,
    events: &'a [Event],
    opt: &JoinOptions,
    stats: &mut JoinStats,
) -> Attributed<'a> {
    // Every returned item by (user, session), in time order.
    let mut by_pair: HashMap<(&str, &str), Vec<(UnixMs, usize)>> = HashMap::new();
    for (i, r) in rankings.iter().enumerate() {
        for session in &r.returned {
            by_pair.entry((r.user_id.as_str(), session.as_str())).or_default().push((r.time_ms, i));
        }
    }
    by_pair.values_mut().for_each(|touches| touches.sort_by_key(|(t, _)| *t));

    let mut shown: HashSet<(usize, &str)> = HashSet::new();
    let mut labels: HashMap<(usize, &str), Labels> = HashMap::new();
    // (user, order id) → the item its purchase was attributed to.
    let mut orders: HashMap<(&str, &str), (usize, &str)> = HashMap::new();
    for e in events {
        if e.kind == EventKind::Return
            && !e.order_id.is_empty()
            && let Some(&key) = orders.get(&(e.user_id.as_str(), e.order_id.as_str()))
        {
            stats.attributed_events += 1;
            stats.order_returns += 1;
            let l = labels.entry(key).or_default();
            l.returned = true;
            l.reversed += 1;
            continue;
        }
        let window = if e.kind == EventKind::Return { opt.return_window_ms } else { opt.window_ms };
        let target = if !e.ranking_id.is_empty() {
            match by_id.get(e.ranking_id.as_str()) {
                None => {
                    stats.unknown_ranking_events += 1;
                    continue;
                }
                Some(&i) => {
                    let r = &rankings[i];
                    if !r.returned.contains(&e.session_id) {
                        stats.unknown_ranking_events += 1;
                        continue;
                    }
                    if e.kind != EventKind::Impression && e.time_ms - r.time_ms > window {
                        stats.late_events += 1;
                        continue;
                    }
                    i
                }
            }
        } else if e.kind == EventKind::Impression {
            stats.unattributed_events += 1;
            continue;
        } else {
            let found = by_pair.get(&(e.user_id.as_str(), e.session_id.as_str())).and_then(|touches| {
                let after = touches.partition_point(|(t, _)| *t <= e.time_ms);
                touches[..after].last().filter(|(t, _)| e.time_ms - t <= window).map(|(_, i)| *i)
            });
            match found {
                Some(i) => i,
                None => {
                    stats.unattributed_events += 1;
                    continue;
                }
            }
        };
        let key = (target, e.session_id.as_str());
        if e.kind == EventKind::Impression {
            stats.impressions += 1;
            shown.insert(key);
            continue;
        }
        stats.attributed_events += 1;
        let l = labels.entry(key).or_default();
        match e.kind {
            EventKind::View => l.engaged = true,
            EventKind::Watch => {
                l.engaged = true;
                l.watch_seconds += e.watch_seconds;
            }
            EventKind::Purchase => {
                l.purchased = true;
                l.amount += e.amount;
                l.purchases += 1;
                if !e.order_id.is_empty() {
                    orders.insert((e.user_id.as_str(), e.order_id.as_str()), key);
                }
            }
            EventKind::Return => {
                l.returned = true;
                l.reversed += 1;
            }
            _ => {}
        }
    }
    Attributed { shown, labels }
}

/// Appends the rows of ranking number `i` that the options keep; returns how many.
fn write_rows(
    r: &ServedRanking,
    i: usize,
    attributed: &Attributed<'_>,
    opt: &JoinOptions,
    stats: &mut JoinStats,
    builder: &mut TableBuilder,
    recomputed: &mut [f32; features::NUM_FEATURES],
) -> usize {
    let open = r.context.time_ms.saturating_add(opt.window_ms) > stats.log_end_ms;
    let mut rows = 0;
    for item in &r.items {
        let key = (i, item.session.session_id.as_str());
        if returned(item) {
            stats.served_items += 1;
            // A candidate policy re-ranks the whole served list, so `include_candidates`
            // keeps returned items that were never shown as well.
            if opt.require_impression && !opt.include_candidates && !attributed.shown.contains(&key) {
                stats.not_shown_items += 1;
                continue;
            }
        } else {
            stats.unreturned_candidates += 1;
            if !opt.include_candidates {
                continue;
            }
        }
        if open && !opt.include_open {
            stats.open_window_rows += 1;
            continue;
        }
        let l = attributed.labels.get(&key).copied().unwrap_or_default();
        let Some(row) = item.features.to_dense() else {
            stats.skewed_rows += 1;
            continue;
        };
        // Training/serving skew check: recompute from the logged inputs.
        let input = features::FeatureInput {
            user: &r.user,
            activity: &r.activity,
            session: &item.session,
            stats: &item.stats,
            context: &r.context,
        };
        extract(&input, recomputed);
        if r.schema_hash != features::schema_hash()
            || recomputed.iter().zip(row.iter()).any(|(a, b)| a.to_bits() != b.to_bits())
        {
            stats.skewed_rows += 1;
        }
        append_row(builder, r, item, &l, &row);
        rows += 1;
        stats.rows += 1;
        stats.engaged_rows += u64::from(l.engaged);
        stats.purchased_rows += u64::from(l.purchased);
        stats.returned_rows += u64::from(l.returned);
        stats.net_purchased_rows += u64::from(l.net_purchased());
    }
    rows
}

/// Whether a logged item was returned to the caller (a logged candidate that was not has
/// propensity 0).
fn returned(item: &fitrank::featurelog::ServedItem) -> bool {
    item.propensity > 0.0
}
