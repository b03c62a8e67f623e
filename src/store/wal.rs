//! An append-only, checksummed log of store mutations.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload (JSON of a record)`. A write is
//! acknowledged after the frame is handed to the kernel (`write(2)`), so it survives the process
//! being killed; with `fsync` on it also survives power loss, at the cost of one `fdatasync` per
//! batch.
//!
//! On open the log is replayed. A torn last frame (a crash mid-write) or a frame whose checksum
//! fails ends replay: the bytes from there on are copied to `<log>.corrupt-<ms>` for inspection
//! and cut from the log, so that new frames are appended after the last good one.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use super::StoreError;

/// Largest accepted frame payload (64 MiB).
const MAX_FRAME: u32 = 64 << 20;

/// Appends frames to the log.
#[derive(Debug)]
pub struct WalWriter {
    file: File,
    path: PathBuf,
    fsync: bool,
    buf: Vec<u8>,
}

impl WalWriter {
    /// Appends one record; durable (per the fsync policy) when this returns.
    pub fn append<R: Serialize>(&mut self, record: &R) -> Result<(), StoreError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 8]);
        serde_json::to_writer(&mut self.buf, record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let len = u32::try_from(self.buf.len() - 8)
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "record of {} bytes exceeds the frame limit",
                    self.buf.len()
                ))
            })?;
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
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

/// Opens (creating) the log at `path`, calls `apply` with each intact record in order, repairs a
/// damaged tail, and returns a writer positioned at the end.
pub fn open<R: DeserializeOwned>(
    path: &Path,
    fsync: bool,
    mut apply: impl FnMut(R),
) -> Result<(WalWriter, ReplayStats), StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut stats = ReplayStats::default();
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(&mut file);
    let mut good_end: u64 = 0;
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match read_exact_or_eof(&mut reader, &mut header)? {
            ReadOutcome::Eof => break,
            ReadOutcome::Partial => break,
            ReadOutcome::Full => {}
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            break;
        }
        payload.resize(len as usize, 0);
        if !matches!(
            read_exact_or_eof(&mut reader, &mut payload)?,
            ReadOutcome::Full
        ) {
            break;
        }
        if crc32fast::hash(&payload) != crc {
            break;
        }
        match serde_json::from_slice::<R>(&payload) {
            Ok(record) => apply(record),
            Err(_) => break,
        }
        stats.records += 1;
        good_end += 8 + u64::from(len);
    }
    drop(reader);
    if good_end < file_len {
        stats.damaged_bytes = file_len - good_end;
        let quarantine = path.with_extension(format!("corrupt-{}", crate::domain::now_ms()));
        let mut tail = Vec::new();
        let mut src = File::open(path)?;
        std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(good_end))?;
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
    Ok((
        WalWriter {
            file,
            path: path.to_owned(),
            fsync,
            buf: Vec::with_capacity(4096),
        },
        stats,
    ))
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Intact records applied.
    pub records: u64,
    /// Bytes cut from a damaged tail.
    pub damaged_bytes: u64,
}

enum ReadOutcome {
    Full,
    Partial,
    Eof,
}

fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<ReadOutcome> {
    let mut read = 0;
    while read < buf.len() {
        match r.read(&mut buf[read..]) {
            Ok(0) => {
                return Ok(if read == 0 {
                    ReadOutcome::Eof
                } else {
                    ReadOutcome::Partial
                });
            }
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ReadOutcome::Full)
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
        assert_eq!(
            stats,
            ReplayStats {
                records: 5,
                damaged_bytes: 5
            }
        );
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
