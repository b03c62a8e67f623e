//! The service's numbers for operators: Prometheus metrics, served by the HTTP port at `/metrics`
//! in Prometheus' text format.
//!
//! Names follow Prometheus' conventions: the `fitrank_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters. Two kinds of source:
//!
//! - **recorded** as things happen: every gRPC call by method and code ([`grpc::GrpcMetricsLayer`]),
//!   what each `Rank` did, what each `Ingest` did;
//! - **read at scrape time** from counters the components keep anyway ([`Sources`]): the feature
//!   log's queue, the store's status, the serving model. Nothing is counted twice.
//!
//! Recording costs a few atomic increments per call; `Rank`'s histogram observations are two
//! bucket searches.

pub mod grpc;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::featurelog::FeatureLog;
use crate::model::ModelRegistry;
use crate::store::Store;

/// One label.
type Labels<const N: usize> = [(&'static str, String); N];

/// Latency buckets from 50 µs to about 13 s (doubling), fit for sub-millisecond handlers.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 19)
}

/// Every recorded metric.
#[derive(Debug)]
pub struct Metrics {
    /// gRPC calls by method and code.
    pub grpc_requests: Family<Labels<2>, Counter>,
    /// gRPC call durations by method, seconds.
    pub grpc_duration: Family<Labels<1>, Histogram>,
    /// Candidates per `Rank` request.
    pub rank_candidates: Histogram,
    /// Items returned per `Rank` response.
    pub rank_items: Histogram,
    /// Rankings answered from local copies because the store was slow or down.
    pub rank_degraded: Counter,
    /// Candidates left unranked, by reason.
    pub rank_unranked: Family<Labels<1>, Counter>,
    /// Events stored, by type.
    pub events_ingested: Family<Labels<1>, Counter>,
    /// Events whose id was already stored.
    pub events_duplicates: Counter,
    /// Events refused, by reason (`invalid`, `unknown_session`).
    pub events_rejected: Family<Labels<1>, Counter>,
    /// Rankings made under an experiment arm, by experiment and arm.
    pub experiment_exposures: Family<Labels<2>, Counter>,
    /// Admin changes the audit log could not record.
    pub audit_write_failures: Counter,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            grpc_requests: Family::default(),
            grpc_duration: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            rank_candidates: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            rank_items: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            rank_degraded: Counter::default(),
            rank_unranked: Family::default(),
            events_ingested: Family::default(),
            events_duplicates: Counter::default(),
            events_rejected: Family::default(),
            experiment_exposures: Family::default(),
            audit_write_failures: Counter::default(),
        }
    }

    /// What one `Rank` did.
    pub fn record_rank(&self, ranked: &crate::ranking::Ranked) {
        self.rank_candidates.observe((ranked.scored + ranked.unranked.len()) as f64);
        self.rank_items.observe(ranked.items.len() as f64);
        if ranked.degraded {
            self.rank_degraded.inc();
        }
        for (_, reason) in &ranked.unranked {
            self.rank_unranked.get_or_create(&[("reason", reason.as_str().to_owned())]).inc();
        }
        for e in &ranked.exposures {
            self.experiment_exposures
                .get_or_create(&[("experiment", e.experiment.clone()), ("arm", e.arm.clone())])
                .inc();
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register("grpc_requests", "gRPC calls answered, by method and status code", self.grpc_requests.clone());
        r.register_with_unit(
            "grpc_request_duration",
            "Time from a call's arrival to its last response byte, by method",
            Unit::Seconds,
            self.grpc_duration.clone(),
        );
        r.register("rank_candidates", "Candidates per Rank request", self.rank_candidates.clone());
        r.register("rank_items_returned", "Items returned per Rank response", self.rank_items.clone());
        r.register(
            "rank_degraded",
            "Rankings answered from local copies because the store was slow or unreachable",
            self.rank_degraded.clone(),
        );
        r.register("rank_unranked_candidates", "Candidates left unranked, by reason", self.rank_unranked.clone());
        r.register("events_ingested", "Events stored, by type", self.events_ingested.clone());
        r.register(
            "events_duplicates",
            "Events whose id was already stored (counted once)",
            self.events_duplicates.clone(),
        );
        r.register("events_rejected", "Events refused, by reason", self.events_rejected.clone());
        r.register(
            "experiment_exposures",
            "Rankings made under an experiment arm, by experiment and arm",
            self.experiment_exposures.clone(),
        );
        r.register(
            "audit_write_failures",
            "Admin changes that took effect but could not be written to the audit log",
            self.audit_write_failures.clone(),
        );
    }
}

/// Durations by operation, kept by the component that times them (the store) and exposed at
/// `/metrics`; clones share their series.
#[derive(Clone, Debug)]
pub struct Timings(Family<Labels<1>, Histogram>);

impl Default for Timings {
    fn default() -> Self {
        Timings(Family::new_with_constructor(|| Histogram::new(latency_buckets())))
    }
}

impl Timings {
    /// Records one `operation` (a name from a fixed set, never a client's value) that took
    /// `elapsed`.
    pub fn observe(&self, operation: &str, elapsed: std::time::Duration) {
        self.0.get_or_create(&[("operation", operation.replace(' ', "_"))]).observe(elapsed.as_secs_f64());
    }
}

/// What `/metrics` reads at scrape time.
#[derive(Clone)]
pub struct Sources {
    pub store: Arc<dyn Store>,
    pub models: Arc<ModelRegistry>,
    pub feature_log: Option<Arc<FeatureLog>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

/// The metrics and their registry.
#[derive(Debug)]
pub struct Telemetry {
    pub metrics: Metrics,
    registry: Registry,
}

impl Telemetry {
    /// Recorded metrics, plus those `sources` give at scrape time.
    pub fn new(sources: Sources) -> Arc<Self> {
        let metrics = Metrics::new();
        let mut registry = Registry::with_prefix("fitrank");
        metrics.register(&mut registry);
        if let Some(timings) = sources.store.timings() {
            registry.register_with_unit(
                "store_operation_duration",
                "Time of store operations: the embedded log's appends (log_append) and fsyncs (log_fsync), or \
                 each kind of Redis call, answered or not",
                Unit::Seconds,
                timings.0,
            );
        }
        registry.register_collector(Box::new(sources));
        Arc::new(Telemetry { metrics, registry })
    }

    /// Every metric in Prometheus' text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry)
            .expect("writing to a String cannot fail");
        to_prometheus_text(&open_metrics)
    }
}

/// OpenMetrics text (what `prometheus-client` writes) as Prometheus' text format, which every
/// scraper and `promtool check metrics` read: a counter's `HELP` and `TYPE` name its `_total`
/// series, and there are no `UNIT` or `EOF` lines.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        open_metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let header = ["# HELP ", "# TYPE "].into_iter().find(|p| line.starts_with(p));
        match header {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let name = rest.split(' ').next().unwrap_or_default();
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push_str(&rest[name.len()..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Encodes one metric without labels.
fn single(encoder: &mut DescriptorEncoder, name: &str, help: &str, metric: &impl EncodeMetric) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let model = self.models.current();
        let (pinned, _) = self.models.state();
        {
            let manifest = &model.artifact.manifest;
            let gauge = ConstGauge::new(1i64);
            let mut family = encoder.encode_descriptor(
                "model_info",
                "The serving model (value 1), by name, version and whether it is pinned",
                None,
                gauge.metric_type(),
            )?;
            let labels = [
                ("name", manifest.name.clone()),
                ("version", manifest.version.clone()),
                ("pinned", pinned.to_string()),
            ];
            gauge.encode(family.encode_family(&labels)?)?;
        }
        let store = self.store.status();
        {
            let gauge = ConstGauge::new(i64::from(store.reachable));
            let mut family = encoder.encode_descriptor(
                "store_up",
                "Whether the last call to the store succeeded (1) or not (0), by backend",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(family.encode_family(&[("backend", store.backend)])?)?;
        }
        single(
            &mut encoder,
            "store_breaker_open",
            "Whether reads skip the shared store after a recent failure (1) or not (0)",
            &ConstGauge::new(i64::from(store.breaker_open)),
        )?;
        let (swaps, refusals) = self.models.counts();
        single(
            &mut encoder,
            "model_swaps",
            "Times the serving model changed (new version followed, loaded, rolled back or unpinned)",
            &ConstCounter::new(swaps),
        )?;
        single(
            &mut encoder,
            "model_refusals",
            "Model versions refused at load (corrupt, another feature schema, missing files)",
            &ConstCounter::new(refusals),
        )?;
        single(
            &mut encoder,
            "store_failures",
            "Store reads or writes that failed or timed out",
            &ConstCounter::new(store.failures),
        )?;
        single(
            &mut encoder,
            "store_degraded_reads",
            "Reads answered from local copies because the store failed or was slow",
            &ConstCounter::new(store.degraded_reads),
        )?;
        single(
            &mut encoder,
            "store_ingest_calls",
            "Calls that applied events to the shared store (Redis scripts; none on the embedded store)",
            &ConstCounter::new(store.ingest_calls),
        )?;
        single(
            &mut encoder,
            "store_ingest_call_events",
            "Events carried by those calls: divided by the calls, how well queued batches are grouped",
            &ConstCounter::new(store.ingest_call_events),
        )?;
        single(
            &mut encoder,
            "store_ingest_calls_redone",
            "Of those calls, the ones sent again: event by event (a re-sent id or a session's first events), or on a cluster after their node did not run them",
            &ConstCounter::new(store.ingest_calls_redone),
        )?;
        single(
            &mut encoder,
            "store_cached_sessions",
            "Sessions held in memory (the embedded store) or in the local cache (Redis)",
            &ConstGauge::new(store.cached_sessions as i64),
        )?;
        single(
            &mut encoder,
            "store_cached_users",
            "Users held in memory (the embedded store) or in the local cache (Redis)",
            &ConstGauge::new(store.cached_users as i64),
        )?;
        if let Some(log) = &self.feature_log {
            let (logged, dropped) = log.counts();
            single(
                &mut encoder,
                "feature_log_rankings",
                "Rankings handed to the feature log",
                &ConstCounter::new(logged),
            )?;
            single(
                &mut encoder,
                "feature_log_dropped_rankings",
                "Rankings dropped from the feature log because its queue was full",
                &ConstCounter::new(dropped),
            )?;
            single(
                &mut encoder,
                "feature_log_queue_depth",
                "Rankings waiting for the feature log's writer thread",
                &ConstGauge::new(log.queue_depth() as i64),
            )?;
            let (served, outcomes) = log.bytes_written();
            let mut family = encoder.encode_descriptor(
                "feature_log_written_bytes",
                "Bytes written to feature log segments, by stream (served rankings, outcomes)",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            ConstCounter::new(served).encode(family.encode_family(&[("stream", "served")])?)?;
            ConstCounter::new(outcomes).encode(family.encode_family(&[("stream", "outcomes")])?)?;
        }
        Ok(())
    }
}
