//! `fitrank bench verify`: exactly-once ingest, checked while the service and its store fail.
//!
//! Workers send `IngestBatch` calls of unique event ids, as many as they can for `--duration`, and
//! retry a batch with the *same* ids after any failure until it is acknowledged, as a feed service
//! must. Whatever happens meanwhile (a replica killed, Redis restarted: the script around it does
//! that), every batch ends acknowledged. The verifier then reads every benchmark session's
//! counters and compares their growth over the run with what was acknowledged, per kind of event:
//! a counter short of it lost acknowledged events, one past it counted an event twice.
//!
//! The sessions' counters before the run are read first, so a store that already holds the
//! benchmark catalog can be verified again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fitrank::cli::connect::Conn as Channel;
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
};
use serde::Serialize;

use crate::load::{BenchResult, SESSIONS};

/// The kinds of event a verification sends, with the counter each one adds to.
const KINDS: [(pb::EventType, &str); 4] = [
    (pb::EventType::Impression, "impressions"),
    (pb::EventType::View, "views"),
    (pb::EventType::Like, "interactions"),
    (pb::EventType::Purchase, "purchases"),
];

/// The per-kind totals of the benchmark sessions' counters.
type Totals = [u64; KINDS.len()];

fn totals(stats: &pb::LiveStats) -> Totals {
    [stats.impressions, stats.views, stats.interactions, stats.purchases]
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub seconds: f64,
    /// Batches acknowledged, and the attempts that failed before their retry succeeded.
    pub batches: u64,
    pub failed_attempts: u64,
    /// Per kind of event: acknowledged, counted by the store, lost (acknowledged, not counted) and
    /// counted twice (counted beyond acknowledged).
    pub kinds: Vec<KindCheck>,
    pub lost: u64,
    pub counted_twice: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindCheck {
    pub counter: &'static str,
    pub acknowledged: u64,
    pub counted: u64,
}

/// Reads every benchmark session's counters (retrying while the service is down), summed.
async fn read_totals(channel: &Channel) -> BenchResult<Totals> {
    let mut sum = [0u64; KINDS.len()];
    for i in 0..SESSIONS {
        let request = pb::GetSessionRequest { session_id: format!("bench-s{i}") };
        let stats = retry(|| {
            let (channel, request) = (channel.clone(), request.clone());
            async move { CatalogServiceClient::new(channel).get_session(request).await }
        })
        .await
        .0
        .into_inner();
        if stats.degraded {
            return Err(format!("bench-s{i}: the service answered from a stale copy; verify with the store up").into());
        }
        let t = totals(&stats.stats.unwrap_or_default());
        for (s, x) in sum.iter_mut().zip(t) {
            *s += x;
        }
    }
    Ok(sum)
}

/// Calls `f` until it succeeds (every 100 ms); returns its answer and the failed attempts.
async fn retry<T, F, Fut>(f: F) -> (T, u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut failed = 0;
    loop {
        match f().await {
            Ok(v) => return (v, failed),
            Err(_) => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The events of batch `n` of this run: ids unique to the run, the kinds in turn, shown by
/// `ranking_id` (impressions must name the ranking that showed them).
fn batch(run: &str, n: u64, size: usize, users: u64, ranking_id: &str) -> (Vec<pb::Event>, Totals) {
    let mut sent = [0u64; KINDS.len()];
    let events = (0..size as u64)
        .map(|k| {
            let id = n * size as u64 + k;
            let kind = (id % KINDS.len() as u64) as usize;
            sent[kind] += 1;
            pb::Event {
                event_id: format!("verify-{run}-{id}"),
                r#type: KINDS[kind].0 as i32,
                user_id: format!("bench-u{}", id % users),
                session_id: format!("bench-s{}", id % SESSIONS as u64),
                time_unix_ms: 0,
                ranking_id: ranking_id.to_owned(),
                position: 0,
                watch_seconds: 0.0,
                amount: 10.0,
                order_id: String::new(),
            }
        })
        .collect();
    (events, sent)
}

/// Sends batches for `duration` from `concurrency` workers, each retried until acknowledged, then
/// compares the counters' growth with what was acknowledged.
pub async fn verify(
    channel: Channel,
    duration: Duration,
    batch_size: usize,
    concurrency: usize,
    users: u64,
) -> BenchResult<Verification> {
    let before = read_totals(&channel).await?;
    let run = format!("{:x}", rand::random::<u64>());
    let acknowledged = Arc::new(Mutex::new(([0u64; KINDS.len()], 0u64, 0u64)));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (channel, acknowledged, next, run) = (channel.clone(), acknowledged.clone(), next.clone(), run.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let (events, sent) = batch(&run, n, batch_size, users, &fitrank::ranking::new_ranking_id());
                let (response, failed) = retry(|| {
                    let (channel, events) = (channel.clone(), events.clone());
                    async move { EventServiceClient::new(channel).ingest_batch(pb::IngestBatchRequest { events }).await }
                })
                .await;
                let r = response.into_inner();
                if let Some(refused) = r.rejected.first() {
                    return Err(format!("{}: refused: {}", refused.event_id, refused.reason));
                }
                let mut a = acknowledged.lock().unwrap_or_else(|e| e.into_inner());
                for (t, s) in a.0.iter_mut().zip(sent) {
                    *t += s;
                }
                a.1 += 1;
                a.2 += failed;
            }
            Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    // A replica reuses counters it read for `stats_ttl_ms` (100 ms by default): read them after.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = read_totals(&channel).await?;
    let (sent, batches, failed_attempts) = *acknowledged.lock().unwrap_or_else(|e| e.into_inner());
    let kinds: Vec<KindCheck> = KINDS
        .iter()
        .enumerate()
        .map(|(i, (_, counter))| KindCheck { counter, acknowledged: sent[i], counted: after[i] - before[i] })
        .collect();
    Ok(Verification {
        seconds,
        batches,
        failed_attempts,
        lost: kinds.iter().map(|k| k.acknowledged.saturating_sub(k.counted)).sum(),
        counted_twice: kinds.iter().map(|k| k.counted.saturating_sub(k.acknowledged)).sum(),
        kinds,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_batch_is_the_same_on_every_retry_and_counts_its_kinds() {
        let (a, sent) = super::batch("r", 3, 10, 7, "x");
        let (b, _) = super::batch("r", 3, 10, 7, "x");
        assert_eq!(a, b);
        assert_eq!(sent.iter().sum::<u64>(), 10);
        assert_eq!(a[0].event_id, "verify-r-30");
        let (c, _) = super::batch("s", 3, 10, 7, "x");
        assert_ne!(a[0].event_id, c[0].event_id, "runs never share ids");
    }
}
