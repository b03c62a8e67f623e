//! The checksummed frame format shared by every append-only file fitrank writes (the store's
//! write-ahead log and the feature-log segments):
//!
//! `len: u32 LE | crc32(payload): u32 LE | payload`
//!
//! [`FrameReader`] yields intact payloads and stops at the first frame that is torn (the file ends
//! inside it) or damaged (bad checksum, absurd length), reporting how many bytes were good.

use std::io::Read;

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
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
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
