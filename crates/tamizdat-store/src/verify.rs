//! Reading stored bytes back out, verifying every chunk group against the
//! bao tree before a single byte of it is handed to the caller.

use std::{
    fs::File,
    io::{self, Read},
    ops::Range,
};

use bao_tree::{
    BaoTree, BlockSize, ChunkNum, ChunkRanges,
    io::sync::{Outboard, ReadAt, Size, WriteAt},
    iter::BaoChunk,
};
use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::Hash;

/// 16 KiB chunk groups: 0.4 % outboard overhead, the size iroh-blobs uses.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// Bytes in one chunk group.
pub const GROUP_BYTES: u64 = 16 * 1024;

/// The tree of a blob of `size` bytes.
pub(crate) fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// Size of the outboard file for a blob of `size` bytes (zero up to one group).
pub fn outboard_size(size: u64) -> u64 {
    tree(size).outboard_size()
}

/// Chunk ranges covering the byte range, widened to whole chunk groups and
/// clipped to the blob.
pub(crate) fn group_ranges(bytes: Range<u64>, size: u64) -> ChunkRanges {
    if bytes.start >= bytes.end.min(size) {
        return ChunkRanges::empty();
    }
    let per = GROUP_BYTES;
    let start = bytes.start / per * (per / 1024);
    let end_bytes = bytes.end.min(size);
    let end = end_bytes.div_ceil(per) * (per / 1024);
    ChunkRanges::from(ChunkNum(start)..ChunkNum(end.min(chunks(size))))
}

/// Number of 1 KiB chunks in a blob (at least one: the empty blob has one empty chunk).
pub fn chunks(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

/// Hash of one chunk group, as a subtree of the whole blob.
pub(crate) fn hash_subtree(start_chunk: u64, data: &[u8], is_root: bool) -> blake3::Hash {
    if is_root {
        blake3::hash(data)
    } else {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(start_chunk * 1024);
        hasher.update(data);
        blake3::Hash::from(hasher.finalize_non_root())
    }
}

fn parent_cv(left: &blake3::Hash, right: &blake3::Hash, is_root: bool) -> blake3::Hash {
    let l: ChainingValue = *left.as_bytes();
    let r: ChainingValue = *right.as_bytes();
    if is_root {
        merge_subtrees_root(&l, &r, Mode::Hash)
    } else {
        blake3::Hash::from(merge_subtrees_non_root(&l, &r, Mode::Hash))
    }
}

/// The stored outboard of a blob: a post-order file, or nothing for blobs of
/// one chunk group or less.
#[derive(Debug)]
pub(crate) enum ObFile {
    Empty,
    File(File),
}

impl ReadAt for ObFile {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObFile::Empty => Ok(0),
            ObFile::File(f) => f.read_at(pos, buf),
        }
    }
}

impl WriteAt for ObFile {
    fn write_at(&mut self, pos: u64, buf: &[u8]) -> io::Result<usize> {
        match self {
            ObFile::Empty => Err(io::Error::other("no outboard for a single-group blob")),
            ObFile::File(f) => f.write_at(pos, buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Size for ObFile {
    fn size(&self) -> io::Result<Option<u64>> {
        match self {
            ObFile::Empty => Ok(Some(0)),
            ObFile::File(f) => Ok(Some(f.metadata()?.len())),
        }
    }
}

/// Why a stored blob failed verification while being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The chunk group at this byte offset does not hash to what the tree says.
    Data(u64),
    /// The outboard's hash pair covering this byte offset is wrong.
    Outboard(u64),
}

/// Groups read and verified at a time by a [`BlobReader`] (1 MiB).
const WINDOW_GROUPS: u64 = 64;

/// A `Read` over a byte range of a stored blob that verifies each chunk group
/// before returning any byte of it.
///
/// It works through the range a window of groups at a time, checking the
/// proof path from the root down to each window, so memory stays bounded
/// whatever the blob's size.
///
/// A mismatch surfaces as an `io::Error` of kind `InvalidData` whose inner error
/// is [`CorruptBlob`].
#[derive(Debug)]
pub struct BlobReader {
    data: File,
    outboard: bao_tree::io::outboard::PostOrderOutboard<ObFile>,
    /// Next chunk to verify, and the end of the groups to verify.
    next_chunk: u64,
    end_chunk: u64,
    /// Requested bytes.
    want: Range<u64>,
    /// Verified bytes of the current window, starting at byte `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    pos: usize,
    end: usize,
    hash: Hash,
    failed: bool,
}

/// The error inside the `io::Error` a [`BlobReader`] returns on bad bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("blob {hash} is corrupt on disk: {what} at byte offset {offset}")]
pub struct CorruptBlob {
    /// The blob.
    pub hash: Hash,
    /// Start of the chunk group that failed.
    pub offset: u64,
    /// `"data"` or `"outboard"`.
    pub what: &'static str,
}

impl BlobReader {
    pub(crate) fn new(
        hash: Hash,
        size: u64,
        data: File,
        outboard: ObFile,
        want: Range<u64>,
    ) -> Self {
        let tree = tree(size);
        let want = want.start.min(size)..want.end.min(size).max(want.start.min(size));
        let (next_chunk, end_chunk) = if size == 0 {
            // The empty blob is one empty chunk: verify it too.
            (0, 1)
        } else if want.is_empty() {
            (0, 0)
        } else {
            let per = GROUP_BYTES / 1024;
            (
                want.start / GROUP_BYTES * per,
                (want.end.div_ceil(GROUP_BYTES) * per).min(chunks(size)),
            )
        };
        Self {
            data,
            outboard: bao_tree::io::outboard::PostOrderOutboard {
                root: hash.to_blake3(),
                tree,
                data: outboard,
            },
            next_chunk,
            end_chunk,
            want,
            buf: Vec::new(),
            buf_start: 0,
            pos: 0,
            end: 0,
            hash,
            failed: false,
        }
    }

    fn corrupt(&mut self, m: Mismatch) -> io::Error {
        self.failed = true;
        let (offset, what) = match m {
            Mismatch::Data(o) => (o, "data"),
            Mismatch::Outboard(o) => (o, "outboard"),
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            CorruptBlob {
                hash: self.hash,
                offset,
                what,
            },
        )
    }

    /// Reads and verifies the next window of groups; `false` at the end.
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            if self.next_chunk >= self.end_chunk {
                return Ok(false);
            }
            let per = GROUP_BYTES / 1024;
            let stop = (self.next_chunk + WINDOW_GROUPS * per).min(self.end_chunk);
            let window = ChunkRanges::from(ChunkNum(self.next_chunk)..ChunkNum(stop));
            self.buf_start = self.next_chunk * 1024;
            self.next_chunk = stop;
            self.buf.clear();
            if let Err(e) = self.verify_window(&window) {
                // Never resume past a window that was not verified.
                self.failed = true;
                return Err(e);
            }
            let lo = self.want.start.max(self.buf_start);
            let hi = self.want.end.min(self.buf_start + self.buf.len() as u64);
            if lo < hi {
                self.pos = (lo - self.buf_start) as usize;
                self.end = (hi - self.buf_start) as usize;
                return Ok(true);
            }
        }
    }

    /// Verifies the proof path and every group of `window`, appending the
    /// groups' bytes to `buf`.
    fn verify_window(&mut self, window: &ChunkRanges) -> io::Result<()> {
        let tree = self.outboard.tree;
        let mut stack = vec![self.hash.to_blake3()];
        let mut group = vec![0u8; GROUP_BYTES as usize];
        for item in tree.ranges_pre_order_chunks_iter_ref(window, 0) {
            match item {
                BaoChunk::Parent {
                    node,
                    is_root,
                    left,
                    right,
                    ..
                } => {
                    let offset = node.chunk_range().start.to_bytes();
                    let Some((l, r)) = self.outboard.load(node)? else {
                        return Err(self.corrupt(Mismatch::Outboard(offset)));
                    };
                    let expected = stack.pop();
                    if Some(parent_cv(&l, &r, is_root)) != expected {
                        return Err(self.corrupt(Mismatch::Outboard(offset)));
                    }
                    if right {
                        stack.push(r);
                    }
                    if left {
                        stack.push(l);
                    }
                }
                BaoChunk::Leaf {
                    start_chunk,
                    size,
                    is_root,
                    ..
                } => {
                    let start = start_chunk.to_bytes();
                    let bytes = &mut group[..size];
                    if let Err(e) = self.data.read_exact_at(start, bytes) {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            return Err(self.corrupt(Mismatch::Data(start)));
                        }
                        return Err(e);
                    }
                    let expected = stack.pop();
                    if Some(hash_subtree(start_chunk.0, bytes, is_root)) != expected {
                        return Err(self.corrupt(Mismatch::Data(start)));
                    }
                    self.buf.extend_from_slice(bytes);
                }
            }
        }
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} failed verification earlier", self.hash),
            ));
        }
        if self.pos == self.end && !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
