//! The audit log: every change made through `AdminService` — who, what, when, before and after.
//!
//! An entry is written after the change took effect, by the replica that made it: to
//! `<data_dir>/audit.jsonl` (one JSON object per line, flushed to disk before the call returns)
//! with the embedded store, or to one Redis list shared by every replica with the Redis store.
//! `AdminService.ListAuditLog` (`fitrank call audit`) reads the newest entries back. A failed
//! audit write does not undo the change: it is logged at error level with the entry, and counted
//! in `fitrank_audit_write_failures_total`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::access::Caller;
use crate::store::StoreError;
use crate::store::redis::SharedList;

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the change took effect, Unix ms.
    pub time_unix_ms: i64,
    /// The access file's name of the caller, or `anonymous`.
    pub actor: String,
    /// How the caller proved it: `token`, `certificate` or `open` (no access control).
    pub via: String,
    /// The caller's address, if known.
    pub peer: String,
    /// The `AdminService` method (`CreateExperiment`, `RollbackModel`, ...).
    pub action: String,
    /// What changed: an experiment's name, or the model name.
    pub target: String,
    /// The state before (JSON; `null` when it did not exist).
    pub before: serde_json::Value,
    /// The state after (JSON).
    pub after: serde_json::Value,
}

impl AuditEntry {
    /// An entry for a change `caller` made now.
    pub fn new(
        caller: Option<&Caller>,
        action: &str,
        target: &str,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            time_unix_ms: crate::domain::now_ms(),
            actor: caller.map_or_else(|| "unknown".to_owned(), |c| c.name.to_string()),
            via: caller.map_or("unknown", |c| c.via.name()).to_owned(),
            peer: caller.and_then(|c| c.peer).map(|p| p.to_string()).unwrap_or_default(),
            action: action.to_owned(),
            target: target.to_owned(),
            before,
            after,
        }
    }
}

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audit log: {0}")]
    Store(#[from] StoreError),
}

/// Where entries go.
#[derive(Debug)]
pub enum AuditLog {
    /// A JSON-lines file (the embedded store); the lock keeps appends whole.
    File { path: Arc<PathBuf>, lock: Arc<Mutex<()>> },
    /// A Redis list shared by every replica.
    Shared(SharedList),
}

impl AuditLog {
    /// The log in the file at `path`.
    pub fn file(path: PathBuf) -> AuditLog {
        AuditLog::File { path: Arc::new(path), lock: Arc::new(Mutex::new(())) }
    }

    /// Appends `entry`.
    pub async fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let line = serde_json::to_vec(entry).expect("audit entries serialize");
        match self {
            AuditLog::Shared(list) => Ok(list.push(&line).await?),
            AuditLog::File { path, lock } => {
                let (path, lock) = (path.clone(), lock.clone());
                blocking(path.clone(), move || {
                    let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
                    append_line(&path, &line)
                })
                .await
            }
        }
    }

    /// The newest `limit` entries, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let lines = match self {
            AuditLog::Shared(list) => list.tail(limit).await?,
            AuditLog::File { path, .. } => {
                // A few lines more, for lines a crash cut short.
                let read = path.clone();
                blocking(path.clone(), move || tail_lines(&read, limit + 16)).await?
            }
        };
        // A line cut short by a crash is skipped.
        Ok(lines.iter().rev().filter_map(|l| serde_json::from_slice(l).ok()).take(limit).collect())
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    path: Arc<PathBuf>,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, AuditError> {
    let io = |source| AuditError::Io { path: path.to_path_buf(), source };
    tokio::task::spawn_blocking(f).await.map_err(|e| io(std::io::Error::other(e)))?.map_err(io)
}

/// Appends `line` and a newline, after a newline if a crash left the last line unfinished, and
/// flushes it to disk.
fn append_line(path: &Path, line: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    let mut buf = Vec::with_capacity(line.len() + 2);
    if len > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    buf.extend_from_slice(line);
    buf.push(b'\n');
    let written = file.write_all(&buf).and_then(|()| file.sync_data());
    if written.is_err() {
        // Leave no partial entry behind a failed write (a full disk).
        let _ = file.set_len(len);
    }
    written
}

/// The last `n` lines of the file (fewer if it has fewer), oldest first; reads only the end.
fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut tail = Vec::new();
    // Read blocks from the end until the tail holds n complete lines (or the whole file).
    while start > 0 && tail.iter().filter(|&&b| b == b'\n').count() <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
    }
    let mut lines: Vec<Vec<u8>> = tail.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // the first line may begin before the bytes read
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> AuditEntry {
        AuditEntry::new(
            None,
            "StopExperiment",
            &format!("e{i}"),
            serde_json::Value::Null,
            serde_json::json!({ "i": i }),
        )
    }

    #[tokio::test]
    async fn newest_first_across_blocks_and_after_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::file(path.clone());
        assert!(log.recent(10).await.unwrap().is_empty());
        for i in 0..2_000 {
            log.record(&entry(i)).await.unwrap();
        }
        let recent = log.recent(1_500).await.unwrap();
        assert_eq!(recent.len(), 1_500);
        assert_eq!(recent[0].target, "e1999");
        assert_eq!(recent[1_499].target, "e500");
        // A crash in the middle of a write leaves a torn line; the next entry starts on its own.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"time_unix_").unwrap();
        log.record(&entry(2_000)).await.unwrap();
        let recent = log.recent(3).await.unwrap();
        assert_eq!(recent.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["e2000", "e1999", "e1998"]);
    }
}
