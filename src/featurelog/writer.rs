//! [`FeatureLog`]: the writers of both streams.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, sync_channel},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde::Deserialize;

use super::ServedRanking;
use super::dictionary::Dictionary;
use super::queue::{Pushed, Queue};
use super::segments::{Rotation, SegmentKind, SegmentWriter};
use crate::domain::Event;

/// Settings of the feature log (`[feature_log]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureLogConfig {
    /// Write the feature log at all.
    pub enabled: bool,
    /// Folder of the segments; default `<data_dir>/featurelog`.
    pub dir: Option<PathBuf>,
    /// Rotate a segment when it would exceed this size.
    pub max_segment_mb: u64,
    /// Rotate a segment after this long.
    pub max_segment_age_secs: u64,
    /// Flush buffered served records at least this often.
    pub flush_interval_ms: u64,
    /// fdatasync on every flush and outcome batch.
    pub fsync: bool,
    /// Rankings queued for the writer before new ones are dropped from the log.
    pub queue_capacity: usize,
    /// Scored candidates that were not returned, logged per ranking (the best by the logging
    /// policy's own score, after the returned items, with propensity 0): what lets a candidate
    /// policy re-rank what the logging policy saw (`fitrank export --candidates`). 0 logs only
    /// the returned items.
    pub unreturned_candidates: usize,
}

impl Default for FeatureLogConfig {
    fn default() -> Self {
        FeatureLogConfig {
            enabled: true,
            dir: None,
            max_segment_mb: 64,
            max_segment_age_secs: 3_600,
            flush_interval_ms: 1_000,
            fsync: false,
            queue_capacity: 4_096,
            unreturned_candidates: 50,
        }
    }
}

enum Message {
    /// A served ranking for the writer thread to encode.
    Served(Box<ServedRanking>),
    Flush(SyncSender<std::io::Result<()>>),
}

/// Writes served rankings (asynchronously) and outcomes (synchronously).
pub struct FeatureLog {
    dir: PathBuf,
    queue: Arc<Queue<Message>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    outcomes: Mutex<SegmentWriter>,
    dropped: AtomicU64,
    logged: AtomicU64,
    unreturned_candidates: usize,
    /// Bytes written to served-ranking and outcome segments.
    served_bytes: Arc<AtomicU64>,
    outcome_bytes: Arc<AtomicU64>,
}

impl std::fmt::Debug for FeatureLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl FeatureLog {
    /// Opens the log in `dir` and starts its writer thread.
    pub fn open(dir: PathBuf, config: &FeatureLogConfig) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        let instance = format!("{:08x}", rand::random::<u32>());
        let rotation = Rotation {
            max_bytes: config.max_segment_mb.max(1) << 20,
            max_age_ms: (config.max_segment_age_secs.max(1) * 1000) as i64,
        };
        let served = SegmentWriter::new(&dir, SegmentKind::Served, &instance, rotation, config.fsync, 1 << 20);
        let outcomes = SegmentWriter::new(&dir, SegmentKind::Outcomes, &instance, rotation, config.fsync, 0);
        let (served_bytes, outcome_bytes) = (served.written(), outcomes.written());
        let queue = Arc::new(Queue::new(config.queue_capacity));
        let interval = Duration::from_millis(config.flush_interval_ms.max(1));
        let consumer = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("featurelog".into())
            .spawn(move || run_writer(&consumer, served, interval))?;
        Ok(Arc::new(FeatureLog {
            dir,
            queue,
            thread: Mutex::new(Some(thread)),
            outcomes: Mutex::new(outcomes),
            dropped: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            unreturned_candidates: config.unreturned_candidates,
            served_bytes,
            outcome_bytes,
        }))
    }

    /// The folder of the segments.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Queues a served ranking; the writer thread computes its items' feature rows
    /// ([`ServedRanking::extract_rows`], replacing whatever `features` the caller set) and encodes
    /// it, off the request thread (the ranker's copies — `Arc`s of the sessions, the stats — cost
    /// less than encoding: a ranking of 500 with the log on went from 147.2 to 133.2 µs when the
    /// encoding moved, `cargo bench --bench ranking`). Never blocks; dropped (and counted) when the
    /// queue is full.
    /// How many scored candidates that were not returned a ranking logs
    /// ([`FeatureLogConfig::unreturned_candidates`]).
    pub fn unreturned_candidates(&self) -> usize {
        self.unreturned_candidates
    }

    pub fn log_served(&self, ranking: ServedRanking) {
        self.send(Message::Served(Box::new(ranking)));
    }

    fn send(&self, message: Message) {
        match self.queue.push(message, false) {
            Pushed::Queued => {
                self.logged.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Full => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "feature log queue full; rankings dropped from the log");
                }
            }
            Pushed::Closed => {}
        }
    }

    /// Appends a batch of events to the outcome log; returns once written.
    pub fn log_outcomes(&self, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut w = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let result = w.append(&events).and_then(|()| w.flush());
        if result.is_err() {
            // A partly written frame ends its segment: later outcomes go to a new one, where a
            // reader finds them (it reads a segment up to its first damaged frame).
            let _ = w.close();
        }
        result
    }

    /// Rankings waiting in the queue for the writer thread.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// Bytes written to served-ranking segments and to outcome segments since start.
    pub fn bytes_written(&self) -> (u64, u64) {
        (self.served_bytes.load(Ordering::Relaxed), self.outcome_bytes.load(Ordering::Relaxed))
    }

    /// Rankings queued so far, and rankings dropped because the queue was full.
    pub fn counts(&self) -> (u64, u64) {
        (self.logged.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }

    /// Waits until every ranking queued before this call is written and flushed.
    pub fn flush(&self) -> std::io::Result<()> {
        let (done_tx, done_rx) = sync_channel(1);
        if self.queue.push(Message::Flush(done_tx), true) == Pushed::Closed {
            return Ok(());
        }
        done_rx.recv().map_err(|_| std::io::Error::other("feature log writer stopped"))?
    }

    /// Writes everything queued, closes the segments and stops the writer thread.
    pub fn close(&self) {
        self.queue.close();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
        if let Err(e) = self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).close() {
            tracing::error!(error = %e, "closing the outcome log failed");
        }
    }
}

impl Drop for FeatureLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Lowers the calling thread's CPU priority so that, on a busy machine, request threads run first
/// and the log writer uses what is left (its queue absorbs the delay).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; failure only leaves the priority unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

fn run_writer(queue: &Queue<Message>, mut served: SegmentWriter, interval: Duration) {
    lower_priority();
    let report = |r: std::io::Result<()>| {
        if let Err(e) = r {
            tracing::error!(error = %e, "feature log write failed");
        }
    };
    let mut dictionary = Dictionary::default();
    let mut last_flush = std::time::Instant::now();
    let mut batch = Vec::new();
    loop {
        let open = queue.take(interval, &mut batch);
        for message in batch.drain(..) {
            match message {
                Message::Served(mut record) => {
                    record.extract_rows();
                    report(write_ranking(&mut served, &mut dictionary, &record));
                    // A batch is about 1.4 ms of work (32 rankings). At nice 10 the scheduler
                    // may let it finish its slice before a request thread that wakes on this
                    // core runs; yielding after each ranking (about 45 µs) hands the core over
                    // at once to any thread that is waiting for it.
                    std::thread::yield_now();
                }
                Message::Flush(done) => {
                    let _ = done.send(flush_served(&mut served, &mut dictionary));
                    last_flush = std::time::Instant::now();
                }
            }
        }
        if last_flush.elapsed() >= interval {
            report(flush_served(&mut served, &mut dictionary));
            last_flush = std::time::Instant::now();
        }
        if !open {
            break;
        }
    }
    report(served.close());
}

/// Flushes the served stream; after a failure the segment is closed and its dictionary
/// forgotten, as after a failed write: buffered frames may be lost, and later frames must not
/// name definitions that were among them.
fn flush_served(w: &mut SegmentWriter, dictionary: &mut Dictionary) -> std::io::Result<()> {
    let result = w.flush();
    abandon_segment_on_error(&result, w, dictionary);
    result
}

/// Writes one ranking as a frame of the served stream: encoded against the segment's dictionary,
/// and encoded again, with a fresh dictionary, if the frame starts a new segment. After a failed
/// write the segment is closed and its dictionary forgotten, so that no later frame names a
/// definition that may not have reached the file.
fn write_ranking(w: &mut SegmentWriter, dictionary: &mut Dictionary, r: &ServedRanking) -> std::io::Result<()> {
    let result = (|| {
        let mut payload = dictionary.encode(r);
        if w.start_segment_if_due(payload.len())? {
            dictionary.clear();
            payload = dictionary.encode(r);
        }
        w.write_frame(&payload)
    })();
    abandon_segment_on_error(&result, w, dictionary);
    result
}

/// After a failed write or flush: closes the segment and forgets its dictionary, so the next
/// frame starts a new segment with its own definitions.
fn abandon_segment_on_error(result: &std::io::Result<()>, w: &mut SegmentWriter, dictionary: &mut Dictionary) {
    if result.is_err() {
        dictionary.clear();
        let _ = w.close();
    }
}

#[cfg(test)]
mod tests {
    use super::super::dictionary::tests::{ranking, session, stats};
    use super::*;
    use crate::featurelog::read_served;

    #[test]
    fn every_segment_reads_on_its_own_and_first_format_segments_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let sessions: Vec<_> = (0..6).map(|i| session(&format!("s{i}"), "US")).collect();
        let rankings: Vec<ServedRanking> = (0..40u64)
            .map(|i| {
                let items: Vec<_> = (0..3).map(|j| (&sessions[((i + j) % 6) as usize], stats(i / 7))).collect();
                ranking(&format!("r{i:02}"), &items)
            })
            .collect();
        // A segment of the first format, written as that version did (its name sorts first).
        let mut v1 = Vec::new();
        for r in &rankings[..2] {
            crate::frames::push_frame(
                &mut v1,
                &postcard::to_allocvec(&crate::featurelog::segments::ServedRankingV1::from(r)).unwrap(),
            );
        }
        std::fs::write(dir.path().join("served-0000000000001-old-0001.seg"), v1).unwrap();

        let rotation = Rotation { max_bytes: 1_500, max_age_ms: i64::MAX };
        let mut w = SegmentWriter::new(dir.path(), SegmentKind::Served, "test", rotation, false, 0);
        let mut dictionary = Dictionary::default();
        for r in &rankings[2..] {
            write_ranking(&mut w, &mut dictionary, r).unwrap();
        }
        w.close().unwrap();
        let segments = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(segments > 4, "{segments} segments");

        let mut read = Vec::new();
        let stats = read_served(&[dir.path().to_owned()], |r| read.push(r)).unwrap();
        assert_eq!(read, rankings);
        assert_eq!((stats.segments, stats.records), (segments as u64, 40));
        assert_eq!((stats.torn_segments, stats.damaged_segments), (0, 0));
    }
}
