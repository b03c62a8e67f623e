//! The store's write-ahead log: one file of [`crate::frames`], each a JSON-encoded mutation.
//!
//! A write is acknowledged after its frame is handed to the kernel (`write(2)`), so it survives
//! the process being killed; with `fsync` on it also survives power loss, at the cost of one
//! `fdatasync` per batch.
//!
//! On open the log is replayed. A torn last frame (a crash mid-write) or a damaged frame ends
//! replay: the bytes from there on are copied to `<log>.corrupt-<ms>` for inspection and cut from
//! the log, so that new frames are appended after the last good one.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use super::StoreError;
use crate::frames::{FrameReader, push_frame};

/// Appends frames to the log.
#[derive(Debug)]
pub struct WalWriter {
    file: File,
    path: PathBuf,
    fsync: bool,
    buf: Vec<u8>,
    payload: Vec<u8>,
}

impl WalWriter {
    /// Appends one record; durable (per the fsync policy) when this returns.
    pub fn append<R: Serialize>(&mut self, record: &R) -> Result<(), StoreError> {
        self.payload.clear();
        serde_json::to_writer(&mut self.payload, record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.payload.len() > crate::frames::MAX_FRAME as usize {
            return Err(StoreError::Corrupt(format!("record of {} bytes exceeds the frame limit", self.payload.len())));
        }
        self.buf.clear();
        push_frame(&mut self.buf, &self.payload);
        self.file.write_all(&self.buf)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Intact records applied.
    pub records: u64,
    /// Bytes cut from a damaged tail.
    pub damaged_bytes: u64,
}

/// Opens (creating) the log at `path`, calls `apply` with each intact record in order, repairs a
/// damaged tail, and returns a writer positioned at the end.
pub fn open<R: DeserializeOwned>(
    path: &Path,
    fsync: bool,
    mut apply: impl FnMut(R),
) -> Result<(WalWriter, ReplayStats), StoreError> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let file_len = file.metadata()?.len();
    let mut stats = ReplayStats::default();
    let mut frames = FrameReader::new(BufReader::new(&mut file));
    let mut good_end = 0;
    while let Some(payload) = frames.next_frame()? {
        match serde_json::from_slice::<R>(&payload) {
            Ok(record) => apply(record),
            Err(_) => break,
        }
        stats.records += 1;
        good_end = frames.good_bytes;
    }
    drop(frames);
    if good_end < file_len {
        stats.damaged_bytes = file_len - good_end;
        let quarantine = path.with_extension(format!("corrupt-{}", crate::domain::now_ms()));
        let mut tail = Vec::new();
        let mut src = File::open(path)?;
        src.seek(SeekFrom::Start(good_end))?;
        src.read_to_end(&mut tail)?;
        std::fs::write(&quarantine, &tail)?;
        file.set_len(good_end)?;
        file.sync_all()?;
        tracing::warn!(
            log = %path.display(),
            damaged_bytes = stats.damaged_bytes,
            quarantine = %quarantine.display(),
            "log tail was damaged (torn write or corruption); moved it aside"
        );
    }
    Ok((WalWriter { file, path: path.to_owned(), fsync, buf: Vec::with_capacity(4096), payload: Vec::new() }, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        {
            let (mut w, stats) = open::<u32>(&path, false, |_| {}).unwrap();
            assert_eq!(stats.records, 0);
            for i in 0..5u32 {
                w.append(&i).unwrap();
            }
        }
        // a torn write: half a frame at the end
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1]).unwrap();
        drop(f);

        let mut seen = Vec::new();
        let (mut w, stats) = open::<u32>(&path, false, |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(stats, ReplayStats { records: 5, damaged_bytes: 5 });
        w.append(&5).unwrap();
        drop(w);

        let mut seen = Vec::new();
        let (_, stats) = open::<u32>(&path, false, |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(stats.damaged_bytes, 0);
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_the_last_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        {
            let (mut w, _) = open::<String>(&path, false, |_| {}).unwrap();
            w.append(&"first".to_owned()).unwrap();
            w.append(&"second".to_owned()).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let mut seen = Vec::new();
        let (_, stats) = open::<String>(&path, false, |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec!["first".to_owned()]);
        assert!(stats.damaged_bytes > 0);
    }
}
