//! Errors, one enum per kind of operation.

use crate::keys::PublicKey;

/// A problem with a key or key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Text that is not 64 lowercase hex digits.
    #[error("a public key is 64 lowercase hex digits, got {0:?}")]
    ParsePublic(String),
    /// 32 bytes that do not encode a curve point.
    #[error("public key {0} is not a valid ed25519 point")]
    NotAPoint(PublicKey),
    /// A small-order key, for which a signature proves nothing.
    #[error("public key {0} is a weak (small-order) key")]
    Weak(PublicKey),
    /// A non-canonical encoding, or a point with a small-order component:
    /// never produced by honest key generation.
    #[error("public key {0} is not a canonical prime-order point")]
    NotPrimeOrder(PublicKey),
    /// The signature does not verify under the key.
    #[error("signature does not verify under key {0}")]
    BadSignature(PublicKey),
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// The key file is not one this version reads.
    #[error("damaged or unreadable key file: {0}")]
    Damaged(String),
    /// The key file is encrypted and no passphrase was given.
    #[error("this key file is encrypted: give its passphrase")]
    NeedsPassphrase,
    /// Decryption failed: the passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
}

/// Bytes that are not a well-formed signed object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Over the size limit for this kind of object.
    #[error("{kind} of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Object kind.
        kind: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The header names another kind of object, or none.
    #[error("not a {expected}: the bytes do not start with its header")]
    WrongType {
        /// What was expected.
        expected: &'static str,
    },
    /// A version of the format this code does not know.
    #[error("{kind} format version {found:?} is not supported (this version reads v1)")]
    UnknownVersion {
        /// Object kind.
        kind: &'static str,
        /// The version text found.
        found: String,
    },
    /// Too short to hold a body and a signature.
    #[error("{0} is truncated")]
    Truncated(&'static str),
    /// The body does not decode.
    #[error("{kind} body does not decode: {why}")]
    Body {
        /// Object kind.
        kind: &'static str,
        /// Decoder message.
        why: String,
    },
    /// Bytes left between the body and the signature.
    #[error("{0} has trailing bytes after its body")]
    TrailingBytes(&'static str),
    /// The body decodes but is not in canonical form.
    #[error("{0} body is not canonically encoded")]
    NonCanonical(&'static str),
    /// A field breaks the format's rules.
    #[error("{kind}: field {field}: {why}")]
    Field {
        /// Object kind.
        kind: &'static str,
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Why a signed object is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not well-formed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A key or signature problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signed by a key other than the root, with no delegation.
    #[error(
        "signed by {signer}, which the publisher {root} has not delegated (no delegation attached)"
    )]
    NotDelegated {
        /// Claimed publisher.
        root: PublicKey,
        /// Actual signer.
        signer: PublicKey,
    },
    /// The attached delegation is for another root or another key.
    #[error("the attached delegation does not match: {0}")]
    DelegationMismatch(String),
    /// A root-signed manifest must not carry a delegation.
    #[error("signed by the root key itself but carries a delegation")]
    UnexpectedDelegation,
    /// Signed outside the delegation's validity window.
    #[error(
        "signed at {at}, outside the delegation's window {not_before}..{not_after} (Unix seconds)"
    )]
    OutsideDelegation {
        /// Signing time.
        at: u64,
        /// Window start.
        not_before: u64,
        /// Window end.
        not_after: u64,
    },
    /// The delegation is for another feed.
    #[error("the delegation covers feed {allowed:?}, not {feed:?}")]
    WrongFeed {
        /// Feed allowed.
        allowed: String,
        /// Feed of the manifest.
        feed: String,
    },
    /// The signing key (or its delegation) was revoked by the root.
    #[error("signing key {key} was revoked by the publisher (revocation {revocation})")]
    Revoked {
        /// The revoked key.
        key: PublicKey,
        /// Hash of the revocation, hex.
        revocation: String,
    },
}

/// Why a valid manifest does not fit its feed's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// An older manifest than the feed already has: a replay or rollback.
    #[error("replay or rollback: feed {feed:?} is at sequence {head}, this is {seq}")]
    Replay {
        /// Feed name.
        feed: String,
        /// Current head.
        head: u64,
        /// Offered sequence number.
        seq: u64,
    },
    /// Two different manifests with one sequence number: the key is
    /// compromised or misbehaving.
    #[error(
        "EQUIVOCATION in feed {feed:?}: sequence {seq} is already {existing}, this is {offered}; the publisher's key may be compromised"
    )]
    Equivocation {
        /// Feed name.
        feed: String,
        /// Sequence number.
        seq: u64,
        /// Hash already accepted (hex).
        existing: String,
        /// Hash offered (hex).
        offered: String,
    },
    /// The next manifest does not link to the current head.
    #[error("feed {feed:?}: sequence {seq} names {prev} as previous, but the head is {head}")]
    Fork {
        /// Feed name.
        feed: String,
        /// Sequence number.
        seq: u64,
        /// `prev` of the offered manifest (hex or "none").
        prev: String,
        /// Current head hash (hex).
        head: String,
    },
    /// A sequence number implausibly far ahead.
    #[error("feed {feed:?}: sequence {seq} is an absurd jump from {head} (limit {limit})")]
    AbsurdJump {
        /// Feed name.
        feed: String,
        /// Current head.
        head: u64,
        /// Offered.
        seq: u64,
        /// Largest jump allowed.
        limit: u64,
    },
    /// Signed earlier than the current head: time does not run backwards in a feed.
    #[error("feed {feed:?}: signed at {created}, before the head's {head_created}")]
    TimeTravel {
        /// Feed name.
        feed: String,
        /// Offered creation time.
        created: u64,
        /// Head's creation time.
        head_created: u64,
    },
    /// Signed in the future.
    #[error("signed at {created}, more than {skew} s after now ({now})")]
    FromFuture {
        /// Offered creation time.
        created: u64,
        /// Now.
        now: u64,
        /// Allowed clock skew.
        skew: u64,
    },
}
