//! What the console's charts draw over time, sampled while the service runs.
//!
//! - **Service**: every `sample_ms` (2 s by default), the rates of the counters `/metrics` exposes
//!   (read from the same text, so the two never disagree), the store's health, and the
//!   percentiles of the rankings since the previous sample ([`RankLatency::sample`]). The last
//!   [`SERVICE_POINTS`] samples are kept (10 minutes at 2 s).
//! - **Sessions**: every [`SESSION_EVERY`]-th sample, each live session's counters and the
//!   shares inside its declared target, for the page that shows how a show's audience evolved;
//!   and the first sample in which it had sold, for the time to first purchase. A session keeps at
//!   most [`SESSION_POINTS`] points: when full, every other point is dropped, so a long show keeps
//!   its whole arc at a coarser step. Sessions that leave the catalog are forgotten, and at most
//!   [`MAX_TRACKED`] sessions have a timeline (the ones sampled first), so the history stays
//!   under about 50 MB (48 B a point) however large the catalog.
//!
//! All of it is this replica's and starts over at a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::domain::{LiveSession, LiveStats, UnixMs, now_ms};
use crate::ranking::{RankLatency, Shown};
use crate::store::{CatalogFilter, Store};
use crate::telemetry::Telemetry;

/// Service samples kept.
pub const SERVICE_POINTS: usize = 300;
/// Sessions are sampled every this many service samples.
pub const SESSION_EVERY: u64 = 5;
/// Points kept per session before thinning (16 minutes at the default 10 s, then coarser).
pub const SESSION_POINTS: usize = 96;
/// Sessions with a timeline at most.
pub const MAX_TRACKED: usize = 10_000;
/// Hosts remembered at most (for "new host"); past it, unseen hosts do not count as new.
pub const MAX_HOSTS: usize = 1_000_000;
/// Most live sessions the console reads.
pub const MAX_SESSIONS: usize = 100_000;

/// One service sample: rates per second since the previous sample.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServicePoint {
    pub t_ms: UnixMs,
    pub rankings_per_s: f64,
    pub rank_errors_per_s: f64,
    /// Server-side `Rank` latency percentiles over the interval, microseconds (0 without rankings).
    pub rank_p50_us: u64,
    pub rank_p99_us: u64,
    pub degraded_per_s: f64,
    pub events_per_s: f64,
    pub duplicates_per_s: f64,
    pub rejected_per_s: f64,
    pub feature_log_dropped_per_s: f64,
    pub store_up: bool,
    pub breaker_open: bool,
}

/// One point of a session's timeline.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SessionPoint {
    pub t_ms: UnixMs,
    pub impressions: u32,
    pub views: u32,
    pub purchases: u32,
    /// Placements by this replica, all and inside the declared target.
    pub shown: u32,
    pub shown_inside: Option<f32>,
    pub viewers_inside: Option<f32>,
    pub buyers_inside: Option<f32>,
}

/// A session's sampled history.
#[derive(Debug, Clone, Default)]
pub struct SessionHistory {
    pub points: Vec<SessionPoint>,
    /// When the first sample with a purchase was taken.
    pub first_purchase_ms: Option<UnixMs>,
    /// Whether this is the first session of its host that this replica saw, started after it did.
    pub new_host: bool,
}

/// Counter totals from the `/metrics` text, by metric name (labels summed).
fn totals(text: &str) -> HashMap<&str, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name).or_insert(0.0) += v;
        }
    }
    out
}

/// The counters a service point is made of, in `/metrics` names: events stored, duplicated and
/// refused, degraded rankings, rankings dropped from the feature log.
const COUNTERS: [&str; 5] = [
    "fitrank_events_ingested_total",
    "fitrank_events_duplicates_total",
    "fitrank_events_rejected_total",
    "fitrank_rank_degraded_total",
    "fitrank_feature_log_dropped_rankings_total",
];

/// The sampled history and the sampler's inputs.
pub struct History {
    telemetry: Arc<Telemetry>,
    store: Arc<dyn Store>,
    latency: Arc<RankLatency>,
    shown: Arc<Shown>,
    started_ms: UnixMs,
    service: Mutex<VecDeque<ServicePoint>>,
    sessions: Mutex<HashMap<String, SessionHistory>>,
    /// Hosts seen, with the first session of theirs this replica saw.
    hosts: Mutex<HashMap<String, String>>,
    /// When the previous service sample was taken, and its [`COUNTERS`].
    previous: Mutex<Option<(std::time::Instant, [f64; COUNTERS.len()])>>,
}

impl History {
    pub fn new(telemetry: Arc<Telemetry>, store: Arc<dyn Store>, latency: Arc<RankLatency>, shown: Arc<Shown>) -> Self {
        History {
            telemetry,
            store,
            latency,
            shown,
            started_ms: now_ms(),
            service: Mutex::default(),
            sessions: Mutex::default(),
            hosts: Mutex::default(),
            previous: Mutex::default(),
        }
    }

    /// Samples every `period` until the task is dropped.
    pub async fn run(self: Arc<Self>, period: std::time::Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; sessions are first read one session period later, not in
        // the burst of a replica's start.
        for n in 0u64.. {
            tick.tick().await;
            self.sample_service();
            if n > 0 && n.is_multiple_of(SESSION_EVERY) {
                self.sample_sessions().await;
            }
        }
    }

    /// Takes one service sample.
    pub fn sample_service(&self) {
        let text = self.telemetry.encode();
        let now = std::time::Instant::now();
        let totals = totals(&text);
        let current = COUNTERS.map(|name| totals.get(name).copied().unwrap_or(0.0));
        let latency = self.latency.sample();
        let status = self.store.status();
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let point = match previous.as_ref() {
            None => None,
            Some((then, before)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                let [events, duplicates, rejected, degraded, dropped] =
                    std::array::from_fn(|i| (current[i] - before[i]).max(0.0) / secs);
                Some(ServicePoint {
                    t_ms: now_ms(),
                    rankings_per_s: latency.count as f64 / secs,
                    rank_errors_per_s: latency.errors as f64 / secs,
                    rank_p50_us: latency.p50_us,
                    rank_p99_us: latency.p99_us,
                    degraded_per_s: degraded,
                    events_per_s: events,
                    duplicates_per_s: duplicates,
                    rejected_per_s: rejected,
                    feature_log_dropped_per_s: dropped,
                    store_up: status.reachable,
                    breaker_open: status.breaker_open,
                })
            }
        };
        *previous = Some((now, current));
        drop(previous);
        if let Some(point) = point {
            let mut service = self.service.lock().unwrap_or_else(|e| e.into_inner());
            if service.len() == SERVICE_POINTS {
                service.pop_front();
            }
            service.push_back(point);
        }
    }

    /// Takes one sample of every live session, and forgets the ones that left.
    pub async fn sample_sessions(&self) {
        let filter = CatalogFilter { limit: MAX_SESSIONS, ..Default::default() };
        let live = match self.store.live_sessions(&filter, None).await {
            Ok(live) => live.value,
            Err(e) => {
                tracing::debug!(error = %e, "console: cannot read the live sessions");
                return;
            }
        };
        let t = now_ms();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::with_capacity(live.len());
        for snapshot in &live {
            let session = &snapshot.session;
            seen.insert(session.session_id.as_str());
            let first_of_host = match hosts.get(&session.host_id) {
                Some(first) => Some(first.as_str()),
                None if hosts.len() < MAX_HOSTS => {
                    hosts.insert(session.host_id.clone(), session.session_id.clone());
                    Some(session.session_id.as_str())
                }
                None => None,
            };
            let new_host =
                first_of_host == Some(session.session_id.as_str()) && session.start_time_ms >= self.started_ms;
            if !sessions.contains_key(&session.session_id) && sessions.len() >= MAX_TRACKED {
                continue;
            }
            let history = sessions
                .entry(session.session_id.clone())
                .or_insert_with(|| SessionHistory { new_host, ..Default::default() });
            let point = self.point(t, session, &snapshot.stats);
            if point.purchases > 0 && history.first_purchase_ms.is_none() {
                history.first_purchase_ms = Some(t);
            }
            if history.points.len() >= SESSION_POINTS {
                let kept = history.points.iter().step_by(2).copied().collect();
                history.points = kept;
            }
            history.points.push(point);
        }
        sessions.retain(|id, _| seen.contains(id.as_str()));
        drop((sessions, hosts));
        self.shown.retain(|id| seen.contains(id));
    }

    fn point(&self, t_ms: UnixMs, session: &LiveSession, stats: &LiveStats) -> SessionPoint {
        let audience = super::views::audience_of(session, stats, &self.shown.of(&session.session_id));
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        SessionPoint {
            t_ms,
            impressions: narrow(stats.impressions),
            views: narrow(stats.views),
            purchases: narrow(stats.purchases),
            shown: narrow(audience.shown),
            shown_inside: audience.shown_inside.map(|x| x as f32),
            viewers_inside: audience.viewers_inside.map(|x| x as f32),
            buyers_inside: audience.buyers_inside.map(|x| x as f32),
        }
    }

    /// The service samples, oldest first.
    pub fn service(&self) -> Vec<ServicePoint> {
        self.service.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// The history of `session_id`, if sampled.
    pub fn session(&self, session_id: &str) -> Option<SessionHistory> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(session_id).cloned()
    }

    /// The first-purchase time and new-host flag of every sampled session.
    pub fn firsts(&self) -> HashMap<String, (Option<UnixMs>, bool)> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, h)| (id.clone(), (h.first_purchase_ms, h.new_host)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_counters_over_labels_and_skips_comments() {
        let text = "# HELP x\n# TYPE fitrank_events_ingested_total counter\n\
                    fitrank_events_ingested_total{type=\"view\"} 3\n\
                    fitrank_events_ingested_total{type=\"purchase\"} 2\nfitrank_rank_degraded_total 7\n";
        let t = super::totals(text);
        assert_eq!(t["fitrank_events_ingested_total"], 5.0);
        assert_eq!(t["fitrank_rank_degraded_total"], 7.0);
    }
}
