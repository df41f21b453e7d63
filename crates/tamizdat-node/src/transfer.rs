//! Both ends of one blob transfer over any byte stream, synchronously: the
//! network layer runs these on blocking threads over libp2p streams, and
//! tests run them over socket pairs.

use std::io::{Read, Write};

use tamizdat_store::{
    ChunkRanges, Hash, ReadError, Store, WriteError, range_bytes, size_proof_ranges,
};
use tracing::debug;

use crate::{
    fetch::Failure,
    wire::{Request, Status, WireError, read_header, write_header},
};

/// Buffer size for both directions of a transfer.
const IO_BUF: usize = 256 * 1024;

/// What serving one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Data was sent.
    Sent,
    /// A refusal status was sent.
    Refused(Status),
}

/// Answers one request read from `stream` from `store`. Only verified
/// bytes leave: the store checks every group before it is written.
pub fn serve(store: &Store, stream: impl Read + Write) -> Result<Served, WireError> {
    serve_gated(store, stream, &|_, _, _| Some(Box::new(())))
}

/// A claim on serving one blob, released when dropped.
pub type Ticket = Box<dyn Send>;

/// [`serve`], asking `gate` with the blob, its size and the bytes asked
/// before sending ranges of a blob (a size proof is always answered):
/// `None` answers "busy". A node uses it to serve one blob to a few peers
/// at a time and to send only its share of it (see [`crate::share`]), so
/// that the others fetch from those as soon as they hold pieces rather
/// than all from the first provider.
pub fn serve_gated(
    store: &Store,
    mut stream: impl Read + Write,
    gate: &dyn Fn(&Hash, u64, u64) -> Option<Ticket>,
) -> Result<Served, WireError> {
    let req = match Request::read(&mut stream) {
        Ok(r) => r,
        Err(e @ (WireError::Malformed(_) | WireError::TooLarge(_))) => {
            write_header(&mut stream, Status::BadRequest, None)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let hash = Hash::from_bytes(req.hash);
    let refuse = |mut s: &mut dyn Write, status| -> Result<Served, WireError> {
        write_header(&mut s, status, None)?;
        s.flush()?;
        Ok(Served::Refused(status))
    };
    let info = match store.info_without_pins(&hash) {
        Ok(Some(info)) => info,
        Ok(None) => return refuse(&mut stream, Status::NotFound),
        Err(e) => {
            debug!(%hash, "index error while serving: {e}");
            return refuse(&mut stream, Status::NotFound);
        }
    };
    let asked = req.chunk_ranges()?;
    let ranges = asked
        .clone()
        .unwrap_or_else(|| size_proof_ranges(info.size));
    if !info.complete {
        let have = store
            .verified_ranges(&hash)
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        let wanted: ChunkRanges = ranges.intersection(&ChunkRanges::from(
            ..tamizdat_store::ChunkNum(tamizdat_store::chunk_count(info.size)),
        ));
        if !have.is_superset(&wanted) {
            return refuse(&mut stream, Status::NotAvailable);
        }
    }
    let _ticket = match &asked {
        None => None,
        Some(r) => match gate(&hash, info.size, range_bytes(r, info.size)) {
            Some(t) => Some(t),
            None => return refuse(&mut stream, Status::Busy),
        },
    };
    // Proof entries are 64 bytes and groups 16 KiB: buffer them into large
    // frames rather than one encrypted message each.
    let mut out = std::io::BufWriter::with_capacity(IO_BUF, &mut stream);
    write_header(&mut out, Status::Ok, Some(info.size))?;
    let sent = store.encode_ranges(&hash, &ranges, &mut out);
    let flushed = out.flush();
    drop(out);
    match sent {
        Ok(()) => {
            flushed?;
            stream.flush()?;
            Ok(Served::Sent)
        }
        // Rot found while serving: stop; the peer sees a short stream.
        Err(ReadError::Corrupt { hash, offset, what }) => Err(WireError::Malformed(format!(
            "local blob {hash} is corrupt ({what} at {offset}); run scrub"
        ))),
        Err(ReadError::Io(e)) => Err(WireError::Io(e.source)),
        Err(other) => Err(WireError::Malformed(other.to_string())),
    }
}

/// What one request to a provider yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The blob's size as the provider stated it (verified when `got` holds
    /// the size proof or any group, since every group checks against it).
    pub size: u64,
    /// Chunk ranges now verified in the store that this request asked for.
    pub got: ChunkRanges,
}

/// Asks a provider for the size proof of `hash` (when `want` is `None`) or
/// for `want`, and verifies what comes back into `store`. `known_size` is
/// the size already proven, if any: a provider claiming another is a liar.
///
/// On failure, returns what verified before it and why it failed.
pub fn fetch(
    store: &Store,
    hash: &Hash,
    known_size: Option<u64>,
    want: Option<&ChunkRanges>,
    mut stream: impl Read + Write,
) -> Result<Piece, (Failure, ChunkRanges, String)> {
    let io = |e: WireError| (Failure::Timeout, ChunkRanges::empty(), e.to_string());
    let req = match want {
        None => Request::size_proof(hash),
        Some(r) => Request::ranges(hash, r),
    };
    if let Err(e) = req.write(&mut stream) {
        // Nothing was answered: the responder closed or dropped the stream.
        return Err((Failure::Busy, ChunkRanges::empty(), e.to_string()));
    }
    let mut stream = std::io::BufReader::with_capacity(IO_BUF, stream);
    let header = match read_header(&mut stream) {
        // Closed before a word: the responder dropped the stream unread (it
        // was busy accepting others). Not misbehaviour; ask again.
        Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err((
                Failure::Busy,
                ChunkRanges::empty(),
                "stream dropped unanswered".into(),
            ));
        }
        other => other.map_err(io)?,
    };
    let size = match header {
        Ok(size) => size,
        Err(status) => {
            let why = match status {
                Status::Busy => Failure::Busy,
                _ => Failure::Missing,
            };
            return Err((why, ChunkRanges::empty(), format!("{status:?}")));
        }
    };
    if known_size.is_some_and(|k| k != size) {
        return Err((
            Failure::WrongSize,
            ChunkRanges::empty(),
            format!("claims {size} bytes, proven {}", known_size.unwrap_or(0)),
        ));
    }
    let ranges = want.cloned().unwrap_or_else(|| size_proof_ranges(size));
    let got = |store: &Store| {
        store
            .verified_ranges(hash)
            .map(|v| v.intersection(&ranges))
            .unwrap_or_default()
    };
    match store.receive(*hash, size, &ranges, &mut stream) {
        Ok(_) => Ok(Piece {
            size,
            got: got(store),
        }),
        Err(WriteError::Verification { detail, .. }) => Err((Failure::Corrupt, got(store), detail)),
        Err(WriteError::Interrupted { detail, .. }) => Err((Failure::Timeout, got(store), detail)),
        Err(e @ WriteError::SizeMismatch { .. }) => {
            Err((Failure::WrongSize, got(store), e.to_string()))
        }
        // Over our own size limit: the provider may be honest; just not
        // worth asking again for this blob.
        Err(e @ WriteError::TooLarge { .. }) => Err((Failure::Missing, got(store), e.to_string())),
        Err(e @ WriteError::SizeUnproven(_)) => Err((Failure::Missing, got(store), e.to_string())),
        Err(e) => Err((Failure::Timeout, got(store), e.to_string())),
    }
}
