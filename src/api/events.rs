//! `EventService`: unary batches and client streams, both answered only once stored.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::{Limits, convert};
use crate::domain::{Event, now_ms};
use crate::featurelog::FeatureLog;
use crate::proto::v1::{self as pb, event_service_server::EventService};
use crate::store::{EventStatus, Store};

/// Events buffered from a stream before they are written as one batch.
const STREAM_CHUNK: usize = 1_024;

/// Once the server is closing, how long a stream may stay quiet before it is ended.
const CLOSING_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The `EventService` handler.
pub struct EventApi {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    /// Receives every valid event before it is stored (the outcome stream of the feature log).
    pub log: Option<Arc<FeatureLog>>,
    /// An `Ingest` stream silent for this long is ended.
    pub stream_idle_timeout: std::time::Duration,
    /// Becomes true when the server closes its listener: open streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Events stored, duplicated and refused.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Running experiments, whose live readouts count stored purchases.
    pub experiments: Option<Arc<crate::experiment::Experiments>>,
}

/// Accumulates the outcome of one call.
#[derive(Default)]
struct Tally {
    response: pb::IngestResponse,
    /// Valid events not yet stored, with their index in the call.
    pending: Vec<(u32, Event)>,
    /// Events refused as invalid.
    invalid: u64,
}

impl Tally {
    fn push(&mut self, index: u32, event: &pb::Event) {
        match convert::event("event", event, now_ms()) {
            Ok(e) => self.pending.push((index, e)),
            Err(e) => {
                self.invalid += 1;
                self.response.rejected.push(pb::RejectedEvent {
                    index,
                    event_id: event.event_id.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Logs the pending events as outcomes, then stores them; returns once both are durable.
    async fn flush(&mut self, api: &EventApi) -> Result<(), Status> {
        let (store, log, metrics) = (api.store.as_ref(), api.log.as_ref(), api.telemetry.as_ref());
        if self.pending.is_empty() {
            return Ok(());
        }
        let (indexes, events): (Vec<u32>, Vec<Event>) = std::mem::take(&mut self.pending).into_iter().unzip();
        let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        let kinds: Vec<crate::domain::EventKind> = events.iter().map(|e| e.kind).collect();
        let buyers: Vec<(usize, String, f64)> = match &api.experiments {
            Some(_) => events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == crate::domain::EventKind::Purchase)
                .map(|(i, e)| (i, e.user_id.clone(), e.amount))
                .collect(),
            None => Vec::new(),
        };
        let events = match log {
            // Logged first: a crash between the two writes leaves the event un-acknowledged, the client
            // retries, and the join de-duplicates.
            Some(log) => {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.log_outcomes(&events).map(|()| events))
                    .await
                    .map_err(|e| Status::internal(format!("outcome log writer failed: {e}")))?
                    .map_err(super::status::outcome_log_failed)?
            }
            None => events,
        };
        let outcome = store.ingest(events).await?;
        let m = &metrics.metrics;
        // Counted here and added to the metric once per type: a batch is mostly of few types.
        let mut accepted = [0u64; crate::domain::EventKind::COUNT];
        for (i, status) in outcome.statuses.iter().enumerate() {
            match status {
                EventStatus::Accepted => {
                    self.response.accepted += 1;
                    accepted[kinds[i].index()] += 1;
                }
                EventStatus::Duplicate => {
                    self.response.duplicates += 1;
                    m.events_duplicates.inc();
                }
                EventStatus::UnknownSession => {
                    m.events_rejected.get_or_create(&[("reason", "unknown_session".to_owned())]).inc();
                    self.response.rejected.push(pb::RejectedEvent {
                        index: indexes[i],
                        event_id: ids[i].clone(),
                        reason: "event.session_id: no such session in the catalog".into(),
                    })
                }
            }
        }
        for (kind, &n) in crate::domain::EventKind::ALL.iter().zip(&accepted) {
            if n > 0 {
                m.events_ingested.get_or_create(&[("type", kind.name().to_owned())]).inc_by(n);
            }
        }
        if let Some(experiments) = &api.experiments {
            for (i, user_id, amount) in &buyers {
                if outcome.statuses[*i] == EventStatus::Accepted {
                    experiments.purchased(user_id, *amount);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, metrics: &crate::telemetry::Telemetry) -> pb::IngestResponse {
        if self.invalid > 0 {
            metrics.metrics.events_rejected.get_or_create(&[("reason", "invalid".to_owned())]).inc_by(self.invalid);
        }
        self.response.rejected.sort_by_key(|r| r.index);
        self.response
    }
}

/// What an `Ingest` stream did next.
enum StreamStep {
    Message(Result<Option<pb::Event>, Status>),
    /// Nothing within the idle timeout.
    Idle,
    /// The server closed its listener.
    Closing,
}

/// Resolves when the server starts closing (never, if the server is gone without closing).
async fn server_closing(closing: &mut tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    async fn ingest(&self, request: Request<Streaming<pb::Event>>) -> Result<Response<pb::IngestResponse>, Status> {
        let mut stream = request.into_inner();
        let mut tally = Tally::default();
        let mut index: u32 = 0;
        let mut closing = self.closing.clone();
        let mut server_closes = false;
        loop {
            // Once the server closes its listener, a stream still sending may finish, but one
            // that goes quiet is ended soon, so shutdown does not wait on it.
            let idle =
                if server_closes { self.stream_idle_timeout.min(CLOSING_IDLE) } else { self.stream_idle_timeout };
            let next = tokio::select! {
                next = tokio::time::timeout(idle, stream.message()) => {
                    next.map_or(StreamStep::Idle, StreamStep::Message)
                }
                () = server_closing(&mut closing), if !server_closes => StreamStep::Closing,
            };
            let why = match next {
                StreamStep::Message(message) => match message? {
                    Some(event) => {
                        tally.push(index, &event);
                        index = index.saturating_add(1);
                        if tally.pending.len() >= STREAM_CHUNK {
                            tally.flush(self).await?;
                        }
                        continue;
                    }
                    None => break,
                },
                StreamStep::Closing => {
                    server_closes = true;
                    continue;
                }
                StreamStep::Idle if server_closes => "the server is shutting down".to_owned(),
                StreamStep::Idle => {
                    format!("the stream sent nothing for {} s and was ended", self.stream_idle_timeout.as_secs())
                }
            };
            tally.flush(self).await?;
            return Err(Status::unavailable(format!(
                "{why}: the events received on this stream are stored; resend the rest on a new stream \
                 (resent events count once)"
            )));
        }
        tally.flush(self).await?;
        Ok(Response::new(tally.finish(&self.telemetry)))
    }

    async fn ingest_batch(
        &self,
        request: Request<pb::IngestBatchRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let events = &request.get_ref().events;
        if events.len() > self.limits.max_batch {
            return Err(Status::invalid_argument(format!(
                "events: has {} events, at most {} allowed per call",
                events.len(),
                self.limits.max_batch
            )));
        }
        let mut tally = Tally::default();
        for (i, event) in events.iter().enumerate() {
            tally.push(i as u32, event);
        }
        tally.flush(self).await?;
        Ok(Response::new(tally.finish(&self.telemetry)))
    }
}
