//! The three signed objects: delegations, revocations and manifests.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    envelope::{Digest, Object},
    error::DecodeError,
    keys::PublicKey,
};

/// Largest manifest envelope: 64 KiB.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// Most entries in one manifest.
pub const MAX_ENTRIES: usize = 1024;
/// Largest delegation or revocation envelope.
pub const MAX_SMALL_LEN: usize = 1024;
/// Longest entry path, in bytes.
pub const MAX_PATH: usize = 512;
/// Longest title, in bytes.
pub const MAX_TITLE: usize = 512;
/// Longest summary, in bytes.
pub const MAX_SUMMARY: usize = 4096;
/// Longest feed name.
pub const MAX_FEED: usize = 64;

/// The root key's statement that `key` may sign for it from `not_before`
/// to `not_after` (Unix seconds), for one feed or for all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The publisher's root key (the signer of this delegation).
    pub root: PublicKey,
    /// The delegated signing key.
    pub key: PublicKey,
    /// Start of validity, Unix seconds.
    pub not_before: u64,
    /// End of validity, Unix seconds (inclusive).
    pub not_after: u64,
    /// The one feed it may sign, or all feeds.
    pub feed: Option<String>,
}

/// What a revocation withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RevocationTarget {
    /// Every delegation of this signing key.
    Key(PublicKey),
    /// One delegation, by its id.
    Delegation(Digest),
}

/// The root key's statement that a signing key or delegation is no longer trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The publisher's root key (the signer).
    pub root: PublicKey,
    /// What is withdrawn.
    pub target: RevocationTarget,
    /// When, Unix seconds.
    pub created: u64,
    /// A short human reason (at most 256 bytes).
    pub reason: String,
}

/// One file of an article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path inside the article, `/`-separated (`index.md`, `img/a.jpg`).
    pub path: String,
    /// BLAKE3 hash of the file.
    pub hash: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type (`text/markdown`, `image/jpeg`).
    pub media_type: String,
}

/// The signed description of one article or release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The publisher's root key: who this is from.
    pub publisher: PublicKey,
    /// The key that signed it: the root itself, or a delegated key.
    pub signer: PublicKey,
    /// The delegation envelope for `signer` (absent when the root signed).
    pub delegation: Option<Vec<u8>>,
    /// Feed name (`main`, `en`, `podcast`).
    pub feed: String,
    /// Position in the feed, from 1.
    pub seq: u64,
    /// Id of the feed's previous manifest (absent only at sequence 1).
    pub prev: Option<Digest>,
    /// Signing time, Unix seconds.
    pub created: u64,
    /// Title.
    pub title: String,
    /// Language tag (BCP 47: `en`, `ru`, `uk`, `fa-IR`).
    pub lang: String,
    /// Optional summary.
    pub summary: Option<String>,
    /// An earlier manifest this corrects or retracts.
    pub supersedes: Option<Digest>,
    /// The files.
    pub entries: Vec<Entry>,
}

fn field(kind: &'static str, field: &'static str, why: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        kind,
        field,
        why: why.into(),
    }
}

/// Checks a feed name: 1 to 64 of `a-z 0-9 . _ -`.
pub fn check_feed_name(kind: &'static str, feed: &str) -> Result<(), DecodeError> {
    let ok = !feed.is_empty()
        && feed.len() <= MAX_FEED
        && feed
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(field(
            kind,
            "feed",
            format!("{feed:?}: 1 to 64 of a-z 0-9 . _ -"),
        ))
    }
}

/// A BCP 47-shaped language tag: a primary subtag of 2 to 8 letters, then
/// subtags of 1 to 8 letters or digits, joined by `-` (`en`, `fa-IR`,
/// `sr-Latn-RS`, `und`), at most 35 bytes.
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    tag.len() <= 35
        && first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Checks an entry path: relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslash or control characters.
pub fn check_path(path: &str) -> Result<(), DecodeError> {
    let bad = path.is_empty()
        || path.len() > MAX_PATH
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(field(
            "manifest",
            "entries.path",
            format!("{path:?} is not a safe relative path"),
        ));
    }
    Ok(())
}

impl Object for Delegation {
    const KIND: &'static str = "delegation";
    const HEADER: &'static [u8] = b"tamizdat/delegation/v1\n";
    const MAX_LEN: usize = MAX_SMALL_LEN;

    fn signer(&self) -> PublicKey {
        self.root
    }

    fn check_fields(&self) -> Result<(), DecodeError> {
        if self.not_after < self.not_before {
            return Err(field(Self::KIND, "not_after", "ends before it starts"));
        }
        if self.root == self.key {
            return Err(field(
                Self::KIND,
                "key",
                "a root key cannot delegate to itself",
            ));
        }
        if let Some(feed) = &self.feed {
            check_feed_name(Self::KIND, feed)?;
        }
        Ok(())
    }
}

impl Object for Revocation {
    const KIND: &'static str = "revocation";
    const HEADER: &'static [u8] = b"tamizdat/revocation/v1\n";
    const MAX_LEN: usize = MAX_SMALL_LEN;

    fn signer(&self) -> PublicKey {
        self.root
    }

    fn check_fields(&self) -> Result<(), DecodeError> {
        if self.reason.len() > 256 || self.reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err(field(
                Self::KIND,
                "reason",
                "at most 256 bytes, no control characters but newlines",
            ));
        }
        if self.target == RevocationTarget::Key(self.root) {
            return Err(field(
                Self::KIND,
                "target",
                "a root key cannot revoke itself",
            ));
        }
        Ok(())
    }
}

impl Object for Manifest {
    const KIND: &'static str = "manifest";
    const HEADER: &'static [u8] = b"tamizdat/manifest/v1\n";
    const MAX_LEN: usize = MAX_MANIFEST_LEN;

    fn signer(&self) -> PublicKey {
        self.signer
    }

    fn check_fields(&self) -> Result<(), DecodeError> {
        const K: &str = "manifest";
        check_feed_name(K, &self.feed)?;
        if self.seq == 0 {
            return Err(field(K, "seq", "sequence numbers start at 1"));
        }
        match (self.seq, &self.prev) {
            (1, Some(_)) => return Err(field(K, "prev", "sequence 1 has no previous manifest")),
            (s, None) if s > 1 => {
                return Err(field(K, "prev", "missing: only sequence 1 has none"));
            }
            _ => {}
        }
        if self.title.len() > MAX_TITLE || self.title.chars().any(char::is_control) {
            return Err(field(
                K,
                "title",
                format!("at most {MAX_TITLE} bytes, no control characters"),
            ));
        }
        if !is_language_tag(&self.lang) {
            return Err(field(
                K,
                "lang",
                format!("{:?} is not a language tag", self.lang),
            ));
        }
        let summary_ok =
            |s: &String| s.len() <= MAX_SUMMARY && !s.chars().any(|c| c.is_control() && c != '\n');
        if self.summary.as_ref().is_some_and(|s| !summary_ok(s)) {
            return Err(field(
                K,
                "summary",
                format!("at most {MAX_SUMMARY} bytes, no control characters but newlines"),
            ));
        }
        if self.entries.is_empty() || self.entries.len() > MAX_ENTRIES {
            return Err(field(K, "entries", format!("1 to {MAX_ENTRIES} entries")));
        }
        // Compared with ASCII case folded (a fixed rule every implementation and
        // toolchain agrees on), so no two entries collide on a case-insensitive disk.
        let mut paths = BTreeSet::new();
        for e in &self.entries {
            check_path(&e.path)?;
            if !paths.insert(e.path.to_ascii_lowercase()) {
                return Err(field(
                    K,
                    "entries.path",
                    format!("{:?} appears twice", e.path),
                ));
            }
            let mt_ok = !e.media_type.is_empty()
                && e.media_type.len() <= 127
                && e.media_type.contains('/')
                && e.media_type.bytes().all(|b| b.is_ascii_graphic());
            if !mt_ok {
                return Err(field(
                    K,
                    "entries.media_type",
                    format!("{:?}", e.media_type),
                ));
            }
        }
        for path in &paths {
            let mut prefix = path.clone();
            while let Some(cut) = prefix.rfind('/') {
                prefix.truncate(cut);
                if paths.contains(&prefix) {
                    return Err(field(
                        K,
                        "entries.path",
                        format!("{prefix:?} is both a file and a folder"),
                    ));
                }
            }
        }
        if self
            .delegation
            .as_ref()
            .is_some_and(|d| d.len() > MAX_SMALL_LEN)
        {
            return Err(field(
                K,
                "delegation",
                format!("over {MAX_SMALL_LEN} bytes"),
            ));
        }
        Ok(())
    }
}
