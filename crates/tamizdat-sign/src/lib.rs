//! Publisher identity and signed articles.
//!
//! A publisher's **root key** signs [`Delegation`]s to short-lived signing
//! keys and can sign [`Revocation`]s of them. Articles are described by
//! signed [`Manifest`]s. Every object travels as a [`Signed`] envelope:
//! a type-and-version header (also the signing context), a canonical
//! postcard body, and an ed25519 signature checked with `verify_strict`. An
//! object's id is the BLAKE3 hash of its envelope.
//!
//! [`Verifier`] checks signatures, delegation chains and revocations (in
//! batches where that helps); [`TrustState`] holds feed heads and
//! revocations and applies the feed rules (no replay, rollback,
//! equivocation or absurd jump) as pure functions.
//!
//! This crate knows nothing of storage layout or networking. Byte formats:
//! `docs/protocol.md`.

mod card;
mod envelope;
mod error;
mod feed;
mod keys;
mod objects;
mod verify;

pub use card::{
    CARD_PREFIX, Card, CardError, MAX_CARD_ADDR, MAX_CARD_ADDRS, MAX_CARD_LEN, MAX_CARD_LINE,
    MAX_CARD_NAME, MAX_CARD_WINDOW, card_from_line, card_order, card_supersedes, card_to_line,
    check_card_time, read_card, verify_card,
};
pub use envelope::{Digest, Object, Signed};
pub use error::{DecodeError, FeedError, KeyError, VerifyError};
pub use feed::{FeedHead, MAX_JUMP, MAX_SKEW, RECENT, TrustState, Verdict};
pub use keys::{
    ARGON2_DEFAULT, KeyFileInfo, KeyKind, PublicKey, SecretKey, Signature, key_file_info,
    read_key_file, write_key_file, write_key_file_with,
};
pub use objects::{
    Delegation, Entry, MAX_ENTRIES, MAX_MANIFEST_LEN, Manifest, Revocation, RevocationTarget,
    check_feed_name, check_path, is_language_tag,
};
pub use verify::{VerifiedManifest, Verifier, verify_delegation};
