//! Segment files: naming, rotation, reading.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::ServedRanking;
use super::dictionary::{ActivityV2, Resolver};
use crate::domain::{Event, EventV1, UnixMs, now_ms};
use crate::frames::{End, FrameReader, push_frame};

/// The two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    Served,
    Outcomes,
}

impl SegmentKind {
    fn prefix(self) -> &'static str {
        match self {
            SegmentKind::Served => "served4-",
            SegmentKind::Outcomes => "outcomes2-",
        }
    }
}

/// Served segments of the first format, which wrote every item whole (sessions and stats
/// included, [`ServedRanking`] per frame); still read, so logs written before an upgrade export.
const SERVED_V1_PREFIX: &str = "served-";
/// Served segments of the second format: the third's, with user activity lacking impressions and
/// views per category (until 2026-12-05); still read, with those at zero.
const SERVED_V2_PREFIX: &str = "served2-";
/// Served segments of the third format: the fourth's, with user activity lacking purchases,
/// returns and the price bands (until 2026-12-06); still read, with those at zero.
const SERVED_V3_PREFIX: &str = "served3-";

/// Rotation limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rotation {
    pub max_bytes: u64,
    pub max_age_ms: i64,
}

/// Appends frames to the current segment of one stream, rotating by size and age.
pub(super) struct SegmentWriter {
    dir: PathBuf,
    kind: SegmentKind,
    instance: String,
    rotation: Rotation,
    fsync: bool,
    buffer: usize,
    file: Option<BufWriter<File>>,
    bytes: u64,
    opened_ms: UnixMs,
    seq: u32,
    frame: Vec<u8>,
    payload: Vec<u8>,
    /// Bytes of frames written over the writer's life, shared with whoever reports them.
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SegmentWriter {
    /// A writer creating segments in `dir`; `buffer` bytes are buffered before a write(2)
    /// (0 = write through).
    pub fn new(dir: &Path, kind: SegmentKind, instance: &str, rotation: Rotation, fsync: bool, buffer: usize) -> Self {
        SegmentWriter {
            buffer,
            dir: dir.to_owned(),
            kind,
            instance: instance.to_owned(),
            rotation,
            fsync,
            file: None,
            bytes: 0,
            opened_ms: 0,
            seq: 0,
            frame: Vec::new(),
            payload: Vec::new(),
            written: Default::default(),
        }
    }

    /// The count of bytes written, shared.
    pub fn written(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.written.clone()
    }

    /// Encodes and appends one record (buffered; see [`Self::flush`]).
    pub fn append<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        payload = postcard::to_extend(record, payload)
            .map_err(|e| std::io::Error::other(format!("encoding a log record: {e}")))?;
        let result = self.append_encoded(&payload);
        self.payload = payload;
        result
    }

    /// Appends one record already encoded with postcard, in a new segment when the current one
    /// is full or old.
    pub fn append_encoded(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.start_segment_if_due(payload.len())?;
        self.write_frame(payload)
    }

    /// Closes the current segment if a frame of `payload_len` bytes would overfill it or it is
    /// too old, and opens a new one if none is open; returns whether it opened one.
    pub fn start_segment_if_due(&mut self, payload_len: usize) -> std::io::Result<bool> {
        let now = now_ms();
        let frame_len = (payload_len + crate::frames::HEADER_LEN) as u64;
        let rotate = self.file.is_some()
            && (self.bytes + frame_len > self.rotation.max_bytes || now - self.opened_ms > self.rotation.max_age_ms);
        if rotate {
            self.close()?;
        }
        if self.file.is_some() {
            return Ok(false);
        }
        self.seq += 1;
        let name = format!("{}{:013}-{}-{:04}.seg", self.kind.prefix(), now, self.instance, self.seq);
        let file = OpenOptions::new().create_new(true).append(true).open(self.dir.join(name))?;
        self.file = Some(BufWriter::with_capacity(self.buffer, file));
        self.bytes = 0;
        self.opened_ms = now;
        Ok(true)
    }

    /// Appends one frame to the segment [`Self::start_segment_if_due`] opened, never rotating.
    pub fn write_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if payload.len() > crate::frames::MAX_FRAME as usize {
            return Err(std::io::Error::other(format!("a {}-byte record exceeds the frame limit", payload.len())));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("no open segment: start_segment_if_due first"));
        };
        self.frame.clear();
        push_frame(&mut self.frame, payload);
        file.write_all(&self.frame)?;
        self.bytes += self.frame.len() as u64;
        self.written.fetch_add(self.frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Hands buffered frames to the kernel (and fsyncs when configured).
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
            if self.fsync {
                f.get_ref().sync_data()?;
            }
        }
        Ok(())
    }

    /// Flushes, syncs and closes the current segment.
    pub fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
            f.get_ref().sync_all()?;
        }
        Ok(())
    }
}

/// What reading the segments found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub segments: u64,
    /// Records (frames) read: rankings, or outcome batches.
    pub records: u64,
    /// Segments that ended inside a frame (a crash mid-write; the rest of that segment is skipped).
    pub torn_segments: u64,
    /// Segments with a damaged frame or an undecodable record (the rest of that segment is skipped).
    pub damaged_segments: u64,
}

/// Segment files in `dirs` whose names start with one of `prefixes`, with the prefix, in the
/// order of the name after it (start time, instance, sequence).
fn segment_files(dirs: &[PathBuf], prefixes: &[&'static str]) -> std::io::Result<Vec<(PathBuf, &'static str)>> {
    let mut files = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(prefix) = prefixes.iter().find(|p| name.starts_with(**p))
                && name.ends_with(".seg")
            {
                files.push((entry.path(), *prefix));
            }
        }
    }
    let rest = |(path, prefix): &(PathBuf, &str)| {
        path.file_name().map(|n| n.to_string_lossy()[prefix.len()..].to_owned()).unwrap_or_default()
    };
    files.sort_by_cached_key(rest);
    Ok(files)
}

/// Calls `each(prefix, first_in_segment, payload)` for every intact frame of the segments;
/// `each` returns false for a payload it cannot decode, which ends that segment as damaged.
fn read_frames(
    dirs: &[PathBuf],
    prefixes: &[&'static str],
    mut each: impl FnMut(&str, bool, &[u8]) -> bool,
) -> std::io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    for (path, prefix) in segment_files(dirs, prefixes)? {
        stats.segments += 1;
        let mut frames = FrameReader::new(BufReader::new(File::open(&path)?));
        let mut damaged = false;
        let mut first = true;
        while let Some(payload) = frames.next_frame()? {
            if !each(prefix, first, &payload) {
                damaged = true;
                break;
            }
            first = false;
            stats.records += 1;
        }
        match frames.end {
            Some(End::Torn) => stats.torn_segments += 1,
            Some(End::Damaged) => damaged = true,
            _ => {}
        }
        if damaged {
            stats.damaged_segments += 1;
            tracing::warn!(segment = %path.display(), "damaged feature-log segment; read up to the damage");
        }
    }
    Ok(stats)
}

/// Outcome segments of the first format, whose events had no order id (until 2026-12-05); still
/// read, with empty order ids.
const OUTCOMES_V1_PREFIX: &str = "outcomes-";

/// [`ServedRanking`] as the first format wrote it (its activity without impressions and views per
/// category).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct ServedRankingV1 {
    ranking_id: String,
    user_id: String,
    user: crate::domain::UserProfile,
    activity: ActivityV2,
    context: crate::domain::RequestContext,
    schema_hash: String,
    model_version: String,
    experiment: String,
    arm: String,
    items: Vec<super::record::ServedItem>,
}

impl From<ServedRankingV1> for ServedRanking {
    fn from(r: ServedRankingV1) -> Self {
        ServedRanking {
            ranking_id: r.ranking_id,
            user_id: r.user_id,
            user: r.user,
            activity: r.activity.into(),
            context: r.context,
            schema_hash: r.schema_hash,
            model_version: r.model_version,
            experiment: r.experiment,
            arm: r.arm,
            items: r.items,
        }
    }
}

impl From<&ServedRanking> for ServedRankingV1 {
    fn from(r: &ServedRanking) -> Self {
        ServedRankingV1 {
            ranking_id: r.ranking_id.clone(),
            user_id: r.user_id.clone(),
            user: r.user.clone(),
            activity: (&r.activity).into(),
            context: r.context,
            schema_hash: r.schema_hash.clone(),
            model_version: r.model_version.clone(),
            experiment: r.experiment.clone(),
            arm: r.arm.clone(),
            items: r.items.clone(),
        }
    }
}

/// Reads every served ranking in `dirs`, of every format.
pub fn read_served(dirs: &[PathBuf], mut each: impl FnMut(ServedRanking)) -> std::io::Result<ReadStats> {
    let mut resolver = Resolver::default();
    let prefixes = [SegmentKind::Served.prefix(), SERVED_V3_PREFIX, SERVED_V2_PREFIX, SERVED_V1_PREFIX];
    read_frames(dirs, &prefixes, |prefix, first, payload| {
        if first {
            resolver = Resolver::default();
        }
        let ranking = match prefix {
            SERVED_V1_PREFIX => postcard::from_bytes::<ServedRankingV1>(payload).ok().map(ServedRanking::from),
            SERVED_V2_PREFIX => resolver.decode_v2(payload).ok(),
            SERVED_V3_PREFIX => resolver.decode_v3(payload).ok(),
            _ => resolver.decode(payload).ok(),
        };
        ranking.map(&mut each).is_some()
    })
}

/// Reads every outcome event in `dirs` (batches flattened).
pub fn read_outcomes(dirs: &[PathBuf], mut each: impl FnMut(Event)) -> std::io::Result<ReadStats> {
    read_frames(dirs, &[SegmentKind::Outcomes.prefix(), OUTCOMES_V1_PREFIX], |prefix, _, payload| {
        if prefix == OUTCOMES_V1_PREFIX {
            let batch = postcard::from_bytes::<Vec<EventV1>>(payload);
            return batch.map(|batch| batch.into_iter().map(Event::from).for_each(&mut each)).is_ok();
        }
        postcard::from_bytes::<Vec<Event>>(payload).map(|batch| batch.into_iter().for_each(&mut each)).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_reads_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation { max_bytes: 200, max_age_ms: i64::MAX };
        let mut w = SegmentWriter::new(dir.path(), SegmentKind::Outcomes, "test", rotation, false, 0);
        let event = |i: u32| Event {
            event_id: format!("e{i}"),
            kind: crate::domain::EventKind::View,
            user_id: "u".into(),
            session_id: "s".into(),
            time_ms: i64::from(i),
            ranking_id: String::new(),
            position: 0,
            watch_seconds: 0.0,
            amount: 0.0,
            order_id: format!("o{i}"),
        };
        for i in 0..20 {
            w.append(&vec![event(i)]).unwrap();
        }
        w.close().unwrap();
        // A segment of the first format, without order ids (its name sorts first).
        let mut v1 = Vec::new();
        let old: Vec<EventV1> = vec![(&Event { event_id: "old".into(), ..event(0) }).into()];
        crate::frames::push_frame(&mut v1, &postcard::to_allocvec(&old).unwrap());
        std::fs::write(dir.path().join("outcomes-0000000000001-old-0001.seg"), v1).unwrap();
        let files = segment_files(&[dir.path().to_owned()], &[SegmentKind::Outcomes.prefix()]).unwrap();
        assert!(files.len() > 3, "{} segments", files.len());
        for (f, _) in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 200);
        }
        let mut ids = Vec::new();
        let stats = read_outcomes(&[dir.path().to_owned()], |e| ids.push((e.event_id, e.order_id))).unwrap();
        let mut expected = vec![("old".to_owned(), String::new())];
        expected.extend((0..20).map(|i| (format!("e{i}"), format!("o{i}"))));
        assert_eq!(ids, expected);
        assert_eq!(stats.segments, files.len() as u64 + 1);
        assert_eq!((stats.torn_segments, stats.damaged_segments), (0, 0));
    }
}
