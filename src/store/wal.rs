//! The store's write-ahead log: one file of [`crate::frames`], each a JSON-encoded mutation.
//!
//! A write is acknowledged after its frame is handed to the kernel (`write(2)`), so it survives
//! the process being killed; with `fsync` on it also survives power loss, at the cost of one
//! `fdatasync` per batch.
//!
//! A write that fails (a full disk, a file size limit, an I/O error) is not acknowledged and
//! leaves the log as it was: the partly written frame is cut off again, so frames acknowledged
//! later are appended after the last good one. If even the cut fails, the writer refuses every
//! write until a later attempt manages it.
//!
//! On open the log is replayed. A damaged frame (a flipped bit, a torn write) costs that frame
//! only: replay resumes at the next intact frame ([`FileScanner`]). Skipped bytes are copied to
//! `<log>.corrupt-<ms>` for inspection and logged as an error; a damaged tail is cut, and damage
//! in the middle is removed by rewriting the log from its intact frames.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Write},
    ops::Range,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use super::StoreError;
use crate::frames::{FileScanner, push_frame};

/// Appends frames to the log.
#[derive(Debug)]
pub struct WalWriter {
    file: File,
    path: PathBuf,
    fsync: bool,
    /// Length of the log's intact frames: everything acknowledged, nothing else.
    len: u64,
    /// A failed write could not be cut off: bytes after `len` must go before the next append.
    dirty: bool,
    buf: Vec<u8>,
    payload: Vec<u8>,
    /// Times of appends (`log_append`) and of fsyncs (`log_fsync`).
    pub timings: crate::telemetry::Timings,
}

impl WalWriter {
    /// Appends one record; durable (per the fsync policy) when this returns. On an error nothing
    /// was appended.
    pub fn append<R: Serialize>(&mut self, record: &R) -> Result<(), StoreError> {
        self.payload.clear();
        serde_json::to_writer(&mut self.payload, record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.payload.len() > crate::frames::MAX_FRAME as usize {
            return Err(StoreError::Corrupt(format!("record of {} bytes exceeds the frame limit", self.payload.len())));
        }
        self.buf.clear();
        push_frame(&mut self.buf, &self.payload);
        if self.dirty {
            self.cut_back().map_err(|e| write_failed(&self.path, "repairing an earlier failed write", e))?;
        }
        let written = self.write_and_sync();
        match written {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.dirty = true;
                if let Err(cut) = self.cut_back() {
                    tracing::error!(log = %self.path.display(), error = %cut, "could not cut a failed write off the log; refusing writes until it can");
                }
                Err(write_failed(&self.path, "appending", e))
            }
        }
    }

    /// Writes the frame in `buf` and fsyncs when configured, timing both.
    fn write_and_sync(&mut self) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        self.file.write_all(&self.buf)?;
        self.timings.observe("log_append", started.elapsed());
        if self.fsync {
            let started = std::time::Instant::now();
            self.file.sync_data()?;
            self.timings.observe("log_fsync", started.elapsed());
        }
        Ok(())
    }

    /// Truncates the file back to its acknowledged length.
    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.len)?;
        self.dirty = false;
        Ok(())
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A failed write: out of space (or over a size limit) is `Exhausted`, anything else
/// `Unavailable`; either way nothing was applied and a retry is safe.
fn write_failed(path: &Path, doing: &str, e: std::io::Error) -> StoreError {
    let message = format!("{doing} {} failed, nothing was stored: {e}", path.display());
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => StoreError::Exhausted(message),
        _ => StoreError::Unavailable(message),
    }
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Intact records applied.
    pub records: u64,
    /// Bytes skipped as damaged (in the middle and at the end).
    pub damaged_bytes: u64,
    /// Damaged regions skipped, the tail included.
    pub damaged_regions: u64,
}

/// Opens (creating) the log at `path`, calls `apply` with each intact record in order, repairs
/// damage, and returns a writer positioned at the end.
pub fn open<R: DeserializeOwned>(
    path: &Path,
    fsync: bool,
    mut apply: impl FnMut(R),
) -> Result<(WalWriter, ReplayStats), StoreError> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let mut stats = ReplayStats::default();
    let mut scanner = FileScanner::new(&file)?;
    while let Some(payload) = scanner.next_frame()? {
        match serde_json::from_slice::<R>(&payload) {
            Ok(record) => {
                apply(record);
                stats.records += 1;
            }
            Err(_) => scanner.reject_last(),
        }
    }
    let file_len = scanner.file_len();
    let skipped = std::mem::take(&mut scanner.skipped);
    drop(scanner);
    let mut len = file_len;
    if !skipped.is_empty() {
        stats.damaged_regions = skipped.len() as u64;
        stats.damaged_bytes = skipped.iter().map(|r| r.end - r.start).sum();
        let quarantine = path.with_extension(format!("corrupt-{}", crate::domain::now_ms()));
        write_ranges(&file, &skipped, &quarantine)?;
        let in_middle = skipped.iter().any(|r| r.end < file_len);
        if in_middle {
            file = rewrite_without(&file, path, &skipped)?;
        } else {
            file.set_len(skipped[0].start)?;
            file.sync_all()?;
        }
        len = file.metadata()?.len();
        tracing::error!(
            log = %path.display(),
            damaged_regions = stats.damaged_regions,
            damaged_bytes = stats.damaged_bytes,
            first_offset = skipped[0].start,
            records_kept = stats.records,
            quarantine = %quarantine.display(),
            "log had damaged frames (torn write or corruption); skipped them, kept every intact frame, moved the damaged bytes aside"
        );
    }
    let writer = WalWriter {
        file,
        path: path.to_owned(),
        fsync,
        len,
        dirty: false,
        buf: Vec::with_capacity(4096),
        payload: Vec::new(),
        timings: Default::default(),
    };
    Ok((writer, stats))
}

/// Copies the bytes of `ranges` of `file` into a new file at `to`.
fn write_ranges(file: &File, ranges: &[Range<u64>], to: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(File::create(to)?);
    copy_ranges(file, ranges, &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

fn copy_ranges(file: &File, ranges: &[Range<u64>], out: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    for range in ranges {
        let mut at = range.start;
        while at < range.end {
            let n = ((range.end - at) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], at)?;
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
    }
    Ok(())
}

/// Replaces the log with its bytes outside `skipped` (written beside it, synced, renamed over
/// it), and returns the new file opened for appending.
fn rewrite_without(file: &File, path: &Path, skipped: &[Range<u64>]) -> std::io::Result<File> {
    let len = file.metadata()?.len();
    let mut keep = Vec::new();
    let mut at = 0;
    for r in skipped {
        keep.push(at..r.start);
        at = r.end;
    }
    keep.push(at..len);
    let tmp = path.with_extension("repair");
    let mut out = std::io::BufWriter::new(File::create(&tmp)?);
    copy_ranges(file, &keep, &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().read(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn replay(path: &Path) -> (Vec<String>, ReplayStats, WalWriter) {
        let mut seen = Vec::new();
        let (w, stats) = open::<String>(path, false, |r| seen.push(r)).unwrap();
        (seen, stats, w)
    }

    fn records(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("record {i} {}", "x".repeat(i * 7 % 40))).collect()
    }

    fn write_log(path: &Path, records: &[String]) {
        let (mut w, _) = open::<String>(path, false, |_| {}).unwrap();
        for r in records {
            w.append(r).unwrap();
        }
    }

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let written = records(5);
        write_log(&path, &written);
        // a torn write: half a frame at the end
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1]).unwrap();
        drop(f);

        let (seen, stats, mut w) = replay(&path);
        assert_eq!(seen, written);
        assert_eq!(stats, ReplayStats { records: 5, damaged_bytes: 5, damaged_regions: 1 });
        w.append(&"after".to_owned()).unwrap();
        drop(w);

        let (seen, stats, _) = replay(&path);
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[5], "after");
        assert_eq!(stats.damaged_bytes, 0);
    }

    #[test]
    fn a_half_written_frame_in_the_middle_costs_nothing_acknowledged() {
        // What a full disk used to leave: a partial frame, then frames acknowledged later.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        write_log(&path, &records(3));
        let mut frame = Vec::new();
        push_frame(&mut frame, br#""never acknowledged""#);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&frame[..frame.len() / 2]).unwrap();
        let (mut w, _) = {
            // Appending straight after it, as the old writer did.
            let file = OpenOptions::new().read(true).append(true).open(&path).unwrap();
            let len = file.metadata().unwrap().len();
            (
                WalWriter {
                    file,
                    path: path.clone(),
                    fsync: false,
                    len,
                    dirty: false,
                    buf: vec![],
                    payload: vec![],
                    timings: Default::default(),
                },
                (),
            )
        };
        w.append(&"later".to_owned()).unwrap();
        drop(w);
        let (seen, stats, _) = replay(&path);
        assert_eq!(seen, [records(3), vec!["later".to_owned()]].concat());
        assert_eq!((stats.damaged_regions, stats.damaged_bytes), (1, (frame.len() / 2) as u64));
        let quarantined: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("log.corrupt-"))
            .collect();
        assert_eq!(quarantined.len(), 1, "the damaged bytes are kept for inspection");
        // The log was rewritten without them: a second replay finds nothing to repair.
        let (seen, stats, _) = replay(&path);
        assert_eq!((seen.len(), stats.damaged_regions), (4, 0));
    }

    #[test]
    fn an_intact_frame_that_does_not_decode_is_skipped_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut w, _) = open::<String>(&path, false, |_| {}).unwrap();
        w.append(&"a".to_owned()).unwrap();
        w.append(&42u32).unwrap();
        w.append(&"b".to_owned()).unwrap();
        drop(w);
        let (seen, stats, _) = replay(&path);
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(stats.damaged_regions, 1);
    }

    /// Whether `seen` is `written` with some records left out, in order.
    fn is_subsequence(seen: &[String], written: &[String]) -> bool {
        let mut rest = written.iter();
        seen.iter().all(|s| rest.any(|w| w == s))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Recovery under arbitrary damage (overwritten runs, cut tails, inserted garbage): it
        /// never panics, never invents or reorders a record, and leaves a log that replays clean
        /// and takes appends.
        #[test]
        fn recovery_survives_arbitrary_damage(
            n in 0usize..40,
            damage in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::collection::vec(any::<u8>(), 1..40)), 1..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let written = records(n);
            write_log(&path, &written);
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, kind, garbage) in &damage {
                let at = if bytes.is_empty() { 0 } else { at.index(bytes.len()) };
                match kind {
                    0 => {
                        let end = (at + garbage.len()).min(bytes.len());
                        bytes[at..end].copy_from_slice(&garbage[..end - at]);
                    }
                    1 => bytes.truncate(at),
                    _ => {
                        bytes.splice(at..at, garbage.iter().copied());
                    }
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let (seen, _, mut w) = replay(&path);
            prop_assert!(is_subsequence(&seen, &written), "{seen:?}");
            w.append(&"after".to_owned()).unwrap();
            drop(w);
            let (again, stats, _) = replay(&path);
            prop_assert_eq!(stats.damaged_regions, 0);
            prop_assert_eq!(&again[..seen.len()], &seen[..]);
            prop_assert_eq!(again.last().map(String::as_str), Some("after"));
        }

        /// One flipped bit anywhere costs exactly the frame that holds it.
        #[test]
        fn a_flipped_bit_costs_only_its_frame(n in 1usize..30, at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let written = records(n);
            write_log(&path, &written);
            let mut bytes = std::fs::read(&path).unwrap();
            let flip = at.index(bytes.len());
            bytes[flip] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            // The frame that holds the flipped byte.
            let mut start = 0;
            let mut damaged = 0;
            for (i, r) in written.iter().enumerate() {
                let end = start + crate::frames::HEADER_LEN + serde_json::to_vec(r).unwrap().len();
                if (start..end).contains(&flip) {
                    damaged = i;
                }
                start = end;
            }
            let (seen, stats, mut w) = replay(&path);
            let mut expected = written.clone();
            expected.remove(damaged);
            prop_assert_eq!(&seen, &expected);
            prop_assert_eq!(stats.damaged_regions, 1);
            w.append(&"after".to_owned()).unwrap();
            drop(w);
            let (seen, stats, _) = replay(&path);
            prop_assert_eq!(seen.len(), n);
            prop_assert_eq!(stats.damaged_regions, 0);
        }
    }
}
