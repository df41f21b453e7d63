//! The blob transfer protocol `/tamizdat/blob/1`, as bytes.
//!
//! One stream per request:
//!
//! ```text
//! request  = len:u16 LE || postcard(Request)          (len <= MAX_REQUEST)
//! response = status:u8 [ || size:u64 LE || bao ]      (size and bao only when status = 0)
//! ```
//!
//! `bao` is the store's `encode_ranges` output for the requested chunk ranges
//! (widened to 16 KiB groups, clipped to `size`): parent hash pairs and
//! group data in pre-order, verifiable against the hash alone. A
//! [`Want::SizeProof`] asks for the last group, which proves `size`.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use tamizdat_store::{ChunkNum, ChunkRanges, Hash};

/// Protocol name, negotiated by libp2p.
pub const PROTOCOL: &str = "/tamizdat/blob/1";
/// Largest request body accepted.
pub const MAX_REQUEST: usize = 1024;
/// Most range boundaries in one request (32 ranges).
pub const MAX_BOUNDARIES: usize = 64;

/// What a requester wants of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Want {
    /// Its size, proven: the last chunk group and its proof path.
    SizeProof,
    /// These chunk ranges (range-set boundaries, strictly increasing).
    Ranges(Vec<u64>),
}

/// A request for part of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The blob.
    pub hash: [u8; 32],
    /// Which part.
    pub want: Want,
}

/// The first byte of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Size and data follow.
    Ok = 0,
    /// The responder does not hold the blob.
    NotFound = 1,
    /// The responder holds only part of it, not the part asked for.
    NotAvailable = 2,
    /// Too many transfers in progress: ask someone else or later.
    Busy = 3,
    /// The request was malformed.
    BadRequest = 4,
}

/// A protocol violation or I/O failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] io::Error),
    /// A request over [`MAX_REQUEST`] bytes.
    #[error("request of {0} bytes is over the {MAX_REQUEST}-byte limit")]
    TooLarge(usize),
    /// Bytes that are not a request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A status byte this version does not know.
    #[error("unknown response status {0}")]
    UnknownStatus(u8),
}

impl Request {
    /// Asks for chunk ranges of `hash`.
    pub fn ranges(hash: &Hash, ranges: &ChunkRanges) -> Self {
        Self {
            hash: *hash.as_bytes(),
            want: Want::Ranges(ranges.boundaries().iter().map(|c| c.0).collect()),
        }
    }

    /// Asks for the size proof of `hash`.
    pub fn size_proof(hash: &Hash) -> Self {
        Self {
            hash: *hash.as_bytes(),
            want: Want::SizeProof,
        }
    }

    /// The requested ranges, checked; `None` for a size proof.
    pub fn chunk_ranges(&self) -> Result<Option<ChunkRanges>, WireError> {
        match &self.want {
            Want::SizeProof => Ok(None),
            Want::Ranges(b) => {
                if b.len() > MAX_BOUNDARIES {
                    return Err(WireError::Malformed(format!(
                        "{} range boundaries, at most {MAX_BOUNDARIES}",
                        b.len()
                    )));
                }
                ChunkRanges::new(b.iter().map(|&c| ChunkNum(c)).collect())
                    .map(Some)
                    .ok_or_else(|| WireError::Malformed("ranges are not increasing".into()))
            }
        }
    }

    /// Writes the framed request.
    pub fn write(&self, mut w: impl Write) -> Result<(), WireError> {
        let body = postcard::to_stdvec(self).map_err(|e| WireError::Malformed(e.to_string()))?;
        if body.len() > MAX_REQUEST {
            return Err(WireError::TooLarge(body.len()));
        }
        w.write_all(&(body.len() as u16).to_le_bytes())?;
        w.write_all(&body)?;
        w.flush()?;
        Ok(())
    }

    /// Reads a framed request, refusing anything over [`MAX_REQUEST`]
    /// before reading it.
    pub fn read(mut r: impl Read) -> Result<Self, WireError> {
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        let len = u16::from_le_bytes(len) as usize;
        if len > MAX_REQUEST {
            return Err(WireError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        let (req, rest): (Request, _) =
            postcard::take_from_bytes(&body).map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Malformed("trailing bytes".into()));
        }
        req.chunk_ranges()?;
        Ok(req)
    }
}

/// Writes a response header: the status, and the size when it is `Ok`.
pub fn write_header(mut w: impl Write, status: Status, size: Option<u64>) -> io::Result<()> {
    w.write_all(&[status as u8])?;
    if let (Status::Ok, Some(size)) = (status, size) {
        w.write_all(&size.to_le_bytes())?;
    }
    Ok(())
}

/// Reads a response header: `Ok(Ok(size))`, or the refusal status.
pub fn read_header(mut r: impl Read) -> Result<Result<u64, Status>, WireError> {
    let mut status = [0u8; 1];
    r.read_exact(&mut status)?;
    let status = match status[0] {
        0 => Status::Ok,
        1 => Status::NotFound,
        2 => Status::NotAvailable,
        3 => Status::Busy,
        4 => Status::BadRequest,
        other => return Err(WireError::UnknownStatus(other)),
    };
    if status != Status::Ok {
        return Ok(Err(status));
    }
    let mut size = [0u8; 8];
    r.read_exact(&mut size)?;
    Ok(Ok(u64::from_le_bytes(size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn requests_round_trip(hash in any::<[u8; 32]>(), set in proptest::collection::btree_set(any::<u64>(), 0..20), proof in any::<bool>()) {
            let want = if proof { Want::SizeProof } else { Want::Ranges(set.into_iter().collect()) };
            let req = Request { hash, want };
            let mut buf = Vec::new();
            req.write(&mut buf).unwrap();
            prop_assert_eq!(Request::read(&buf[..]).unwrap(), req);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::read(&bytes[..]);
            let _ = read_header(&bytes[..]);
        }

        #[test]
        fn headers_round_trip(size in any::<u64>()) {
            let mut buf = Vec::new();
            write_header(&mut buf, Status::Ok, Some(size)).unwrap();
            prop_assert_eq!(read_header(&buf[..]).unwrap(), Ok(size));
        }
    }

    #[test]
    fn oversized_and_unordered_requests_are_refused() {
        let mut buf = (MAX_REQUEST as u16 + 1).to_le_bytes().to_vec();
        buf.extend(vec![0; MAX_REQUEST + 1]);
        assert!(matches!(
            Request::read(&buf[..]),
            Err(WireError::TooLarge(_))
        ));
        let req = Request {
            hash: [0; 32],
            want: Want::Ranges(vec![5, 3]),
        };
        let mut buf = Vec::new();
        req.write(&mut buf).unwrap();
        assert!(matches!(
            Request::read(&buf[..]),
            Err(WireError::Malformed(_))
        ));
        let req = Request {
            hash: [0; 32],
            want: Want::Ranges((0..100).collect()),
        };
        let mut buf = Vec::new();
        req.write(&mut buf).unwrap();
        assert!(matches!(
            Request::read(&buf[..]),
            Err(WireError::Malformed(_))
        ));
        for status in [Status::NotFound, Status::Busy] {
            let mut buf = Vec::new();
            write_header(&mut buf, status, None).unwrap();
            assert_eq!(read_header(&buf[..]).unwrap(), Err(status));
        }
        assert!(matches!(
            read_header(&[9u8][..]),
            Err(WireError::UnknownStatus(9))
        ));
    }
}
