//! A content-addressed blob store you can trust with the only copy.
//!
//! Blobs are named by their plain BLAKE3 hash ([`Hash`], the same 64 hex digits
//! `b3sum` prints). Each blob is stored as a data file plus a post-order bao
//! outboard (16 KiB chunk groups) so that any byte range can be handed out with
//! its proof ([`Store::encode_ranges`]) and any range from an untrusted sender
//! can be verified before it is kept ([`Store::receive`]). Reads verify every
//! chunk group before returning it ([`Store::reader`]).
//!
//! A blob is acknowledged only once its data, its outboard and its index
//! entry are durable. Pins keep blobs alive through [`Store::gc`]; a quota
//! bounds the store; [`Store::scrub`] re-hashes everything and quarantines
//! what rotted.
//!
//! The crate is synchronous, and knows nothing of networking or signatures.
//! Layout and commit protocol: `docs/store.md`.

mod error;
mod hash;
mod lock;
mod record;
mod store;
mod verify;

pub use bao_tree::{ChunkNum, ChunkRanges};
pub use error::{Error, IndexError, IoError, OpenError, ReadError, WriteError};
pub use hash::{Hash, ParseHashError};
pub use record::RecordError;
pub use store::{
    Added, BlobInfo, GcReport, MAX_PIN_NAME, MAX_STATE_LEN, Options, RECOVERED_PIN, Received,
    RecoverReport, ScrubReport, Store, Usage, corrupt_of, range_bytes, request_ranges,
    size_proof_ranges,
};
pub use verify::{BlobReader, CorruptBlob, GROUP_BYTES, chunks as chunk_count, outboard_size};
