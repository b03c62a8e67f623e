//! The checksummed frame format shared by every append-only file fitrank writes (the store's
//! write-ahead log and the feature-log segments):
//!
//! `len: u32 LE | crc32(payload): u32 LE | payload`
//!
//! [`FrameReader`] yields intact payloads and stops at the first frame that is torn (the file ends
//! inside it) or damaged (bad checksum, absurd length), reporting how many bytes were good.
//! [`FileScanner`] reads a whole file the way recovery must: after a damaged frame it resumes at
//! the next offset where an intact frame starts, and reports the byte ranges it skipped, so one
//! flipped bit costs one frame and not everything written after it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Largest accepted payload (64 MiB).
pub const MAX_FRAME: u32 = 64 << 20;

/// Bytes of a frame before its payload: length and checksum.
pub const HEADER_LEN: usize = 8;

/// Appends one frame holding `payload` to `out`.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).ok().filter(|l| *l <= MAX_FRAME).expect("frame payload within MAX_FRAME");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Clean end of input after a whole frame.
    Clean,
    /// The input ended inside a frame (a crash mid-write).
    Torn,
    /// A frame failed its checksum or declared an impossible length.
    Damaged,
}

/// Iterates the intact frames of a reader.
pub struct FrameReader<R> {
    reader: R,
    /// Bytes of intact frames read so far.
    pub good_bytes: u64,
    /// Set once iteration has stopped.
    pub end: Option<End>,
}

impl<R: Read> FrameReader<R> {
    /// Reads frames from `reader` (wrap files in a `BufReader`).
    pub fn new(reader: R) -> Self {
        FrameReader { reader, good_bytes: 0, end: None }
    }

    /// The next intact payload, or `None` at the end (see [`Self::end`]).
    pub fn next_frame(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.end.is_some() {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut self.reader, &mut header)? {
            0 => return self.stop(End::Clean),
            HEADER_LEN => {}
            _ => return self.stop(End::Torn),
        }
        let (len, crc) = parse_header(&header);
        if len > MAX_FRAME {
            return self.stop(End::Damaged);
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.reader, &mut payload)? < payload.len() {
            return self.stop(End::Torn);
        }
        if crc32fast::hash(&payload) != crc {
            return self.stop(End::Damaged);
        }
        self.good_bytes += (HEADER_LEN as u64) + u64::from(len);
        Ok(Some(payload))
    }

    fn stop(&mut self, end: End) -> std::io::Result<Option<Vec<u8>>> {
        self.end = Some(end);
        Ok(None)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match r.read(&mut buf[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// Reads every intact frame of a file in order, skipping damaged regions.
///
/// A position holds a frame when its header declares a length that fits in the file and the
/// payload's CRC-32 matches: a region that fails is skipped byte by byte until such a position
/// (a random match is a 1 in 2³² event per plausible header). Bytes after the last intact frame
/// that hold none are the tail: a torn write or damage at the end.
pub struct FileScanner<'f> {
    file: &'f File,
    reader: BufReader<&'f File>,
    len: u64,
    pos: u64,
    last: Option<Range<u64>>,
    /// Byte ranges skipped so far, in file order (the last may run to the end: the tail).
    pub skipped: Vec<Range<u64>>,
}

impl<'f> FileScanner<'f> {
    /// Scans `file` from its start.
    pub fn new(file: &'f File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        reader.seek(SeekFrom::Start(0))?;
        Ok(FileScanner { file, reader, len, pos: 0, last: None, skipped: Vec::new() })
    }

    /// Size of the file scanned.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The next intact payload, or `None` at the end of the file.
    pub fn next_frame(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        while self.pos < self.len {
            if let Some(payload) = self.frame_here()? {
                let start = self.pos;
                self.pos += (HEADER_LEN + payload.len()) as u64;
                self.last = Some(start..self.pos);
                return Ok(Some(payload));
            }
            let next = self.resync(self.pos + 1)?;
            self.skip(self.pos..next);
            self.pos = next;
            self.reader.seek(SeekFrom::Start(next))?;
        }
        Ok(None)
    }

    /// Counts the frame just returned as skipped: it was intact but its payload was unusable.
    pub fn reject_last(&mut self) {
        if let Some(range) = self.last.take() {
            self.skip(range);
        }
    }

    fn skip(&mut self, range: Range<u64>) {
        match self.skipped.last_mut() {
            Some(prev) if prev.end == range.start => prev.end = range.end,
            _ => self.skipped.push(range),
        }
    }

    /// Reads the frame at the reader's position (`self.pos`), if one is intact there.
    fn frame_here(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut header = [0u8; HEADER_LEN];
        if read_full(&mut self.reader, &mut header)? < HEADER_LEN {
            return Ok(None);
        }
        let (len, crc) = parse_header(&header);
        if !self.fits(self.pos, len) {
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.reader, &mut payload)? < payload.len() || crc32fast::hash(&payload) != crc {
            return Ok(None);
        }
        Ok(Some(payload))
    }

    fn fits(&self, at: u64, len: u32) -> bool {
        len <= MAX_FRAME && at + HEADER_LEN as u64 + u64::from(len) <= self.len
    }

    /// The first offset at or after `from` where an intact frame starts, or the file's length.
    fn resync(&self, from: u64) -> std::io::Result<u64> {
        const WINDOW: usize = 1 << 16;
        let mut window = vec![0u8; WINDOW + HEADER_LEN];
        let mut base = from;
        while base + HEADER_LEN as u64 <= self.len {
            let n = read_at_full(self.file, &mut window, base)?;
            let last_start = n.saturating_sub(HEADER_LEN - 1);
            for i in 0..last_start.min(WINDOW) {
                let (len, crc) = parse_header(window[i..i + HEADER_LEN].try_into().expect("header"));
                let at = base + i as u64;
                if self.fits(at, len) && self.crc_matches(at + HEADER_LEN as u64, len, crc)? {
                    return Ok(at);
                }
            }
            base += WINDOW as u64;
        }
        Ok(self.len)
    }

    fn crc_matches(&self, at: u64, len: u32, crc: u32) -> std::io::Result<bool> {
        let mut payload = vec![0u8; len as usize];
        Ok(read_at_full(self.file, &mut payload, at)? == payload.len() && crc32fast::hash(&payload) == crc)
    }
}

fn parse_header(header: &[u8; HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    (len, crc)
}

/// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read_at(&mut buf[read..], offset + read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut buf = Vec::new();
        push_frame(&mut buf, b"one");
        push_frame(&mut buf, b"");
        push_frame(&mut buf, b"three");
        let whole = buf.len() as u64;
        buf.extend_from_slice(&[1, 0, 0]);
        let mut r = FrameReader::new(&buf[..]);
        let mut got = Vec::new();
        while let Some(p) = r.next_frame().unwrap() {
            got.push(p);
        }
        assert_eq!(got, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!((r.end, r.good_bytes), (Some(End::Torn), whole));
    }
}
