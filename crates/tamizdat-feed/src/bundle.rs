//! Bundles: signed articles carried by hand (a USB stick, an SD card, a
//! messenger attachment) where the network is cut.
//!
//! A bundle is a stream of framed records: an [`Info`] record, the
//! publishers' delegations and revocations, then each article's manifest
//! followed by its files, and an end record. [`Writer`] writes one as it
//! goes; [`Reader`] reads one frame at a time; [`import`] checks every
//! signature, delegation, revocation, feed rule and file hash and hands
//! each article to its caller only once all of it holds. Neither side
//! holds more than one manifest in memory: files are streamed. The byte
//! layout is in `docs/protocol.md`.
//!
//! No I/O beyond the streams and the staging directory it is given: the
//! caller decides where verified objects go (a store, or a running node).

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tamizdat_sign::{
    Card, Delegation, MAX_MANIFEST_LEN, Manifest, PublicKey, Revocation, Signed, TrustState,
    VerifiedManifest, Verifier,
};
use tamizdat_store::Hash;

use crate::judge::{Feeds, Followed, Ignored, Judgement, Refused};

/// The first 16 bytes of every bundle.
pub const MAGIC: &[u8; 16] = b"TAMIZDAT-BUNDLE\n";
/// The format version, the byte after [`MAGIC`].
pub const VERSION: u8 = 1;
/// Largest info record.
pub const MAX_INFO: u64 = 64 * 1024;
/// Addresses in the bootstrap hint, at most.
pub const MAX_ADDRS: usize = 32;
/// Longest address in the hint.
pub const MAX_ADDR_LEN: usize = 256;
/// Largest delegation or revocation record.
pub const MAX_KEY_LEN: u64 = 4096;
/// Delegations and revocations in one bundle, at most.
pub const MAX_KEYS: u64 = 16_384;
/// Articles in one bundle, at most.
pub const MAX_ARTICLES: u64 = 100_000;
/// Largest file in a bundle.
pub const MAX_BLOB: u64 = 16 * 1024 * 1024 * 1024;
/// Largest end record.
const MAX_END: u64 = 1024;

const INFO: u8 = 1;
const KEY: u8 = 2;
const MANIFEST: u8 = 3;
const BLOB: u8 = 4;
const END: u8 = 5;
/// Domain of a frame header's check value.
const FRAME_CONTEXT: &[u8] = b"tamizdat/bundle/frame/v1\n";

/// What the exporter says about itself and the bundle. Informational only:
/// nothing in it is trusted, and every count is checked against what
/// actually arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// When the bundle was made, Unix seconds.
    pub created: u64,
    /// The exporting node's peer id, if one was running.
    pub peer: Option<String>,
    /// Its addresses (`/ip4/…/tcp/…/p2p/…`): a bootstrap hint for when the
    /// network returns.
    pub addrs: Vec<String>,
    /// Articles in the bundle.
    pub articles: u64,
    /// Delegations and revocations in the bundle.
    pub keys: u64,
    /// Bytes of files in the bundle.
    pub bytes: u64,
}

/// The end record: proof that the bundle is whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EndRecord {
    /// Frames before this one.
    frames: u64,
    /// BLAKE3 of every byte before this frame.
    digest: [u8; 32],
}

/// What went wrong reading a bundle, with the byte offset where it did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle at all, or a version this build cannot read.
    #[error("not a tamizdat bundle: {0}")]
    NotABundle(String),
    /// The frame structure is broken: nothing after `offset` can be read.
    #[error("damaged at byte {offset}: {why}")]
    Damaged {
        /// Where.
        offset: u64,
        /// What.
        why: String,
    },
    /// The bundle ends before its end record.
    #[error("the bundle ends early, at byte {offset} (cut short while copying?)")]
    Truncated {
        /// Where it ends.
        offset: u64,
    },
    /// A limit was exceeded.
    #[error("at byte {offset}: {what} ({claimed}) is over the limit of {limit}")]
    TooLarge {
        /// Where.
        offset: u64,
        /// What claims too much.
        what: &'static str,
        /// The claim.
        claimed: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading failed (the medium, not the bundle).
    #[error("reading the bundle: {0}")]
    Io(#[from] io::Error),
    /// The caller could not keep what was verified.
    #[error("{0}")]
    Commit(String),
}

/// A frame's kind and length as its header states them.
fn check_value(kind: u8, len: u64, hash: Option<&Hash>) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(FRAME_CONTEXT);
    h.update(&[kind]);
    h.update(&len.to_le_bytes());
    if let Some(hash) = hash {
        h.update(hash.as_bytes());
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

/// A writer that hashes everything written through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Keys,
    Articles,
}

/// Writes a bundle, one record at a time, in the order the format requires:
/// keys, then each manifest followed by its files.
pub struct Writer<W: Write> {
    out: Hashing<W>,
    frames: u64,
    section: Section,
    /// Files the current manifest names.
    entries: HashSet<Hash>,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("frames", &self.frames)
            .finish()
    }
}

fn misuse(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

impl<W: Write> Writer<W> {
    /// Starts a bundle with its info record.
    pub fn new(out: W, info: &Info) -> io::Result<Self> {
        let mut w = Writer {
            out: Hashing {
                inner: out,
                hasher: blake3::Hasher::new(),
            },
            frames: 0,
            section: Section::Keys,
            entries: HashSet::new(),
        };
        w.out.write_all(MAGIC)?;
        w.out.write_all(&[VERSION])?;
        let body = postcard::to_stdvec(info).map_err(io::Error::other)?;
        if body.len() as u64 > MAX_INFO {
            return Err(misuse("the info record is too large"));
        }
        w.frame(INFO, &body)?;
        Ok(w)
    }

    fn header(&mut self, kind: u8, len: u64, hash: Option<&Hash>) -> io::Result<()> {
        self.out.write_all(&[kind])?;
        self.out.write_all(&len.to_le_bytes())?;
        if let Some(h) = hash {
            self.out.write_all(h.as_bytes())?;
        }
        self.out.write_all(&check_value(kind, len, hash))?;
        self.frames += 1;
        Ok(())
    }

    fn frame(&mut self, kind: u8, body: &[u8]) -> io::Result<()> {
        self.header(kind, body.len() as u64, None)?;
        self.out.write_all(body)
    }

    /// A delegation or revocation envelope. All of them come before the
    /// first manifest.
    pub fn key(&mut self, envelope: &[u8]) -> io::Result<()> {
        if self.section != Section::Keys {
            return Err(misuse("keys must come before the first manifest"));
        }
        if envelope.len() as u64 > MAX_KEY_LEN {
            return Err(misuse("a key record is too large"));
        }
        self.frame(KEY, envelope)
    }

    /// A manifest envelope; its files follow with [`Writer::blob`].
    pub fn manifest(&mut self, envelope: &[u8]) -> io::Result<()> {
        let m = Signed::<Manifest>::decode(envelope).map_err(|e| misuse(&e.to_string()))?;
        self.section = Section::Articles;
        self.entries = m
            .body()
            .entries
            .iter()
            .map(|e| Hash::from_bytes(e.hash))
            .collect();
        self.frame(MANIFEST, envelope)
    }

    /// One file of the last manifest: exactly `size` bytes from `data`.
    pub fn blob(&mut self, hash: &Hash, size: u64, data: impl Read) -> io::Result<()> {
        if !self.entries.contains(hash) {
            return Err(misuse("a file must follow a manifest that names it"));
        }
        self.header(BLOB, size, Some(hash))?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {hash} gave {copied} of its {size} bytes"),
            ));
        }
        Ok(())
    }

    /// Writes the end record and returns the output, flushed, with the
    /// BLAKE3 hash of the whole bundle (what `b3sum` prints for the file).
    pub fn finish(mut self) -> io::Result<(W, Hash)> {
        let end = EndRecord {
            frames: self.frames,
            digest: *self.out.hasher.finalize().as_bytes(),
        };
        let body = postcard::to_stdvec(&end).map_err(io::Error::other)?;
        self.frame(END, &body)?;
        self.out.flush()?;
        let digest = Hash::from_bytes(*self.out.hasher.finalize().as_bytes());
        Ok((self.out.inner, digest))
    }
}

/// A reader that hashes and counts what it reads.
struct Counting<R> {
    inner: R,
    hasher: blake3::Hasher,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// One record of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The exporter's info.
    Info(Info),
    /// A delegation or revocation envelope (not yet checked).
    Key(Vec<u8>),
    /// A manifest envelope (not yet checked).
    Manifest(Vec<u8>),
    /// A file's header: its bytes are read next with [`Reader::blob`].
    Blob {
        /// The hash it claims.
        hash: Hash,
        /// Its length.
        size: u64,
    },
    /// The end record.
    End {
        /// Whether its digest and count match everything before it (when
        /// not, some byte before it changed since the bundle was made).
        intact: bool,
    },
}

/// Reads a bundle frame by frame, checking its structure (not its
/// signatures: see [`import`]).
pub struct Reader<R: Read> {
    inner: Counting<R>,
    frames: u64,
    /// Unread bytes of the current blob frame.
    pending: u64,
    ended: bool,
}

impl<R: Read> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("offset", &self.inner.offset)
            .field("frames", &self.frames)
            .finish()
    }
}

impl<R: Read> Reader<R> {
    /// Checks the magic and version.
    pub fn new(inner: R) -> Result<Self, BundleError> {
        let mut r = Reader {
            inner: Counting {
                inner,
                hasher: blake3::Hasher::new(),
                offset: 0,
            },
            frames: 0,
            pending: 0,
            ended: false,
        };
        let mut head = [0u8; 17];
        let n = read_full(&mut r.inner, &mut head)?;
        if n < head.len() || &head[..16] != MAGIC {
            return Err(BundleError::NotABundle(
                "it does not start with TAMIZDAT-BUNDLE".into(),
            ));
        }
        if head[16] != VERSION {
            return Err(BundleError::NotABundle(format!(
                "format version {} (this tamizdat reads version {VERSION}; a newer one may read it)",
                head[16]
            )));
        }
        Ok(r)
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.inner.offset
    }

    /// The next frame; `None` at the end of the input. A blob's bytes must
    /// be read with [`Reader::blob`] (or are skipped by the next call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, BundleError> {
        if self.pending > 0 {
            let want = self.pending;
            let skipped = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
            self.pending = 0;
            if skipped < want {
                return Err(BundleError::Truncated {
                    offset: self.offset(),
                });
            }
        }
        // The digest covers every byte before the end frame.
        let before = self.inner.hasher.clone();
        let start = self.offset();
        let mut kind = [0u8; 1];
        if read_full(&mut self.inner, &mut kind)? == 0 {
            return if self.ended {
                Ok(None)
            } else {
                Err(BundleError::Truncated { offset: start })
            };
        }
        if self.ended {
            return Err(BundleError::Damaged {
                offset: start,
                why: "data after the end record".into(),
            });
        }
        let kind = kind[0];
        let mut len = [0u8; 8];
        self.exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        let hash = if kind == BLOB {
            let mut h = [0u8; 32];
            self.exact(&mut h)?;
            Some(Hash::from_bytes(h))
        } else {
            None
        };
        let mut check = [0u8; 8];
        self.exact(&mut check)?;
        if check != check_value(kind, len, hash.as_ref()) {
            return Err(BundleError::Damaged {
                offset: start,
                why: "a record header does not match its check value".into(),
            });
        }
        let first = self.frames == 0;
        self.frames += 1;
        if first != (kind == INFO) {
            return Err(BundleError::Damaged {
                offset: start,
                why: "the info record must come first, once".into(),
            });
        }
        let too_large = |what, limit: u64| BundleError::TooLarge {
            offset: start,
            what,
            claimed: len,
            limit,
        };
        match kind {
            INFO => {
                if len > MAX_INFO {
                    return Err(too_large("the info record", MAX_INFO));
                }
                let body = self.body(len)?;
                let info: Info = postcard::from_bytes(&body).map_err(|e| BundleError::Damaged {
                    offset: start,
                    why: format!("the info record does not decode: {e}"),
                })?;
                if info.addrs.len() > MAX_ADDRS || info.addrs.iter().any(|a| a.len() > MAX_ADDR_LEN)
                {
                    return Err(BundleError::Damaged {
                        offset: start,
                        why: format!(
                            "the info record lists over {MAX_ADDRS} addresses, or one over \
                             {MAX_ADDR_LEN} bytes"
                        ),
                    });
                }
                Ok(Some(Frame::Info(info)))
            }
            KEY => {
                if len > MAX_KEY_LEN {
                    return Err(too_large("a key record", MAX_KEY_LEN));
                }
                Ok(Some(Frame::Key(self.body(len)?)))
            }
            MANIFEST => {
                if len > MAX_MANIFEST_LEN as u64 {
                    return Err(too_large("a manifest", MAX_MANIFEST_LEN as u64));
                }
                Ok(Some(Frame::Manifest(self.body(len)?)))
            }
            BLOB => {
                if len > MAX_BLOB {
                    return Err(too_large("a file", MAX_BLOB));
                }
                self.pending = len;
                Ok(Some(Frame::Blob {
                    hash: hash.unwrap_or(Hash::from_bytes([0; 32])),
                    size: len,
                }))
            }
            END => {
                if len > MAX_END {
                    return Err(too_large("the end record", MAX_END));
                }
                let body = self.body(len)?;
                let end: EndRecord =
                    postcard::from_bytes(&body).map_err(|e| BundleError::Damaged {
                        offset: start,
                        why: format!("the end record does not decode: {e}"),
                    })?;
                let intact =
                    end.frames == self.frames - 1 && end.digest == *before.finalize().as_bytes();
                self.ended = true;
                Ok(Some(Frame::End { intact }))
            }
            other => Err(BundleError::Damaged {
                offset: start,
                why: format!("unknown record kind {other}"),
            }),
        }
    }

    /// The bytes of the blob frame just read (at most its length).
    pub fn blob(&mut self) -> impl Read + '_ {
        BlobData { reader: self }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), BundleError> {
        if read_full(&mut self.inner, buf)? < buf.len() {
            return Err(BundleError::Truncated {
                offset: self.offset(),
            });
        }
        Ok(())
    }

    fn body(&mut self, len: u64) -> Result<Vec<u8>, BundleError> {
        // `len` is bounded by the caller's limit (64 KiB at most).
        let mut body = vec![0u8; len as usize];
        self.exact(&mut body)?;
        Ok(body)
    }
}

struct BlobData<'a, R: Read> {
    reader: &'a mut Reader<R>,
}

impl<R: Read> Read for BlobData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.reader.pending).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.reader.inner.read(&mut buf[..want])?;
        self.reader.pending -= n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An article whose manifest and files all verified, its files staged on
/// disk: the caller keeps it.
#[derive(Debug)]
pub struct Staged {
    /// The manifest, verified and placed in its feed.
    pub manifest: VerifiedManifest,
    /// Its files read from the bundle, verified, in the staging directory.
    /// Files the caller already held are not here.
    pub files: Vec<(Hash, PathBuf)>,
    /// The manifest was recorded here before (its feed state already holds
    /// it): only its missing files came with this bundle.
    pub known: bool,
}

/// What [`import`] found, one step at a time, in bundle order.
#[derive(Debug)]
pub enum Step {
    /// A new revocation by a followed publisher, signature checked: keep
    /// and apply it. Later articles are already judged with it.
    Revocation(Box<Signed<Revocation>>),
    /// A delegation by a followed publisher, signature checked.
    Delegation(Box<Signed<Delegation>>),
    /// A publisher's card newer than the one held, valid now: keep it in
    /// place of `replaces`.
    Card {
        /// The card.
        card: Box<Signed<Card>>,
        /// The card it supersedes.
        replaces: Option<Box<Signed<Card>>>,
    },
    /// An article that verified in full.
    Article(Box<Staged>),
    /// An article not imported, and why.
    Skipped(Skip),
}

/// Why an article (or a key record) was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Already here: importing twice is harmless.
    Present {
        /// Manifest id.
        id: Hash,
    },
    /// Older than the feed's history known here; genuine, but not placed.
    Old {
        /// Manifest id.
        id: Hash,
        /// The feed rule's words.
        why: String,
    },
    /// Its publisher is not followed here.
    Unfollowed {
        /// Manifest id.
        id: Hash,
        /// The publisher.
        publisher: PublicKey,
    },
    /// Forged, tampered, revoked, incomplete or against the feed rules:
    /// nothing of it was kept.
    Refused {
        /// Manifest or record id (the hash of the bytes as they arrived).
        id: Hash,
        /// The title, when the manifest could be read.
        title: Option<String>,
        /// Byte offset of its record in the bundle.
        offset: u64,
        /// What was wrong.
        why: String,
    },
}

/// Totals of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The exporter's info record.
    pub info: Info,
    /// Articles handed over.
    pub imported: u64,
    /// Articles already here.
    pub present: u64,
    /// Articles skipped as old or unfollowed.
    pub skipped: u64,
    /// Articles and key records refused.
    pub refused: u64,
    /// Revocations applied.
    pub revocations: u64,
    /// Publishers' cards taken (newer than the ones held).
    pub cards: u64,
    /// Key records read past as copies of one earlier in the bundle.
    pub duplicates: u64,
    /// Whether the whole bundle was read to its end record.
    pub complete: bool,
}

/// How an import went: what it did, and the error that stopped it early
/// (after everything before it was kept).
#[derive(Debug)]
pub struct Outcome {
    /// The totals.
    pub summary: Summary,
    /// What stopped the import before the end, if anything.
    pub error: Option<BundleError>,
}

/// What the importer knows beforehand.
pub struct Known<'a> {
    /// The feed state here (heads, revocations).
    pub trust: TrustState,
    /// The publishers followed here.
    pub follows: HashSet<PublicKey>,
    /// Whether a blob is already complete here.
    pub have: &'a dyn Fn(&Hash) -> bool,
    /// The time now, Unix seconds (for the feed rules).
    pub now: u64,
    /// The cards held here (a card in the bundle replaces one only if it
    /// is newer).
    pub cards: Vec<Signed<Card>>,
}

impl std::fmt::Debug for Known<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Known")
            .field("follows", &self.follows.len())
            .field("now", &self.now)
            .finish()
    }
}

/// An article being read: its manifest and the files that arrived so far.
struct Pending {
    manifest: VerifiedManifest,
    offset: u64,
    /// Entries still wanted from the bundle, by hash → (path, size).
    wanted: BTreeMap<Hash, (String, u64)>,
    files: Vec<(Hash, PathBuf)>,
    problem: Option<String>,
    known: bool,
}

/// Reads a bundle from `input`, verifying everything, and hands each
/// verified object to `keep` as it completes. Files are staged in
/// `staging` (removed once `keep` returns). Per-article problems are
/// reported as [`Step::Skipped`] and the import goes on; a broken frame
/// structure stops it with an error after what came before was kept
/// (everything before is whole and verified: see `docs/protocol.md` on
/// truncated bundles). `keep` failing stops the import.
pub fn import(
    input: impl Read,
    staging: &Path,
    mut known: Known<'_>,
    keep: &mut dyn FnMut(Step) -> Result<(), String>,
) -> Outcome {
    let mut summary = Summary::default();
    let mut reader = match Reader::new(input) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                summary,
                error: Some(e),
            };
        }
    };
    // Every object is judged by the same door as gossip: the feed rules
    // of `tamizdat-feed`, over what the importer knows.
    let mut feeds = Feeds::new(
        std::mem::take(&mut known.trust),
        known
            .follows
            .iter()
            .map(|key| Followed {
                key: *key,
                name: None,
                policy: Default::default(),
            })
            .collect(),
    );
    for c in std::mem::take(&mut known.cards) {
        let _ = feeds.keep_card(c);
    }
    let verifier = Verifier::new();
    let mut pending: Option<Pending> = None;
    let mut keys = 0u64;
    // Ids of the key records read so far.
    let mut key_ids: HashSet<Hash> = HashSet::new();
    let mut articles = 0u64;
    let mut serial = 0u64;
    let result = (|| -> Result<(), BundleError> {
        loop {
            let offset = reader.offset();
            let frame = match reader.next_frame()? {
                Some(f) => f,
                None => return Ok(()),
            };
            // Out of order before anything is finished: an article
            // followed by a key record (a revocation placed after what it
            // revokes) is not kept.
            if matches!(frame, Frame::Key(_)) && articles > 0 {
                return Err(BundleError::Damaged {
                    offset,
                    why: "a key record after the first manifest".into(),
                });
            }
            if !matches!(frame, Frame::Blob { .. })
                && let Some(p) = pending.take()
            {
                finish(p, &mut feeds, &known, &mut summary, keep)?;
            }
            match frame {
                Frame::Info(info) => summary.info = info,
                Frame::Key(bytes) => {
                    keys += 1;
                    if keys > MAX_KEYS {
                        return Err(BundleError::TooLarge {
                            offset,
                            what: if summary.duplicates > 0 {
                                "the number of key records, copies of earlier ones included"
                            } else {
                                "the number of key records"
                            },
                            claimed: keys,
                            limit: MAX_KEYS,
                        });
                    }
                    // A copy of a record already read was judged, and handed
                    // over if good, the first time: it costs a hash, not a
                    // signature check and a store write. At most MAX_KEYS ids.
                    if !key_ids.insert(Hash::of(&bytes)) {
                        summary.duplicates += 1;
                        continue;
                    }
                    key_record(&bytes, offset, &mut feeds, &known, &mut summary, keep)?;
                }
                Frame::Manifest(bytes) => {
                    articles += 1;
                    if articles > MAX_ARTICLES {
                        return Err(BundleError::TooLarge {
                            offset,
                            what: "the number of articles",
                            claimed: articles,
                            limit: MAX_ARTICLES,
                        });
                    }
                    pending = open_article(
                        &bytes,
                        offset,
                        &verifier,
                        &feeds,
                        &known,
                        &mut summary,
                        keep,
                    )?;
                }
                Frame::Blob { hash, size } => {
                    let Some(p) = pending.as_mut() else {
                        // The files of a skipped article, or stray: skipped.
                        if articles == 0 {
                            return Err(BundleError::Damaged {
                                offset,
                                why: "a file before any manifest".into(),
                            });
                        }
                        continue;
                    };
                    let Some((path, signed_size)) = p.wanted.get(&hash).cloned() else {
                        // Already here, or a second copy: read past it.
                        if !p
                            .manifest
                            .manifest()
                            .entries
                            .iter()
                            .any(|e| e.hash == *hash.as_bytes())
                        {
                            p.problem.get_or_insert(format!(
                                "the bundle holds a file {hash} that the manifest does not name"
                            ));
                        }
                        continue;
                    };
                    if size != signed_size {
                        p.wanted.remove(&hash);
                        p.problem.get_or_insert(format!(
                            "{path}: the bundle gives {size} bytes, the signed manifest says \
                             {signed_size}"
                        ));
                        continue;
                    }
                    serial += 1;
                    let file = staging.join(format!("{serial}.part"));
                    // Wanted until every byte of it arrived and checked.
                    match stage(&mut reader, &file, size)? {
                        Some(actual) if actual == hash => {
                            p.wanted.remove(&hash);
                            p.files.push((hash, file));
                        }
                        Some(actual) => {
                            p.wanted.remove(&hash);
                            let _ = fs::remove_file(&file);
                            p.problem.get_or_insert(format!(
                                "{path}: its bytes in the bundle hash to {actual}, not to {hash} \
                                 as the manifest signed"
                            ));
                        }
                        None => {
                            let _ = fs::remove_file(&file);
                            return Err(BundleError::Truncated {
                                offset: reader.offset(),
                            });
                        }
                    }
                }
                Frame::End { intact } => {
                    summary.complete = true;
                    // Damage inside an article was reported with it; damage
                    // nothing else explains (in the info record, or in the
                    // files of an article skipped unread) is reported here.
                    if !intact && summary.refused == 0 {
                        return Err(BundleError::Damaged {
                            offset,
                            why: "the end record does not match the bundle's contents: bytes \
                                  before it were changed (nothing imported depends on them)"
                                .into(),
                        });
                    }
                }
            }
        }
    })();
    // An article whose files had all arrived when the input ended is whole:
    // it is kept like any other.
    let result = match (result, pending.take()) {
        (Err(BundleError::Truncated { offset }), Some(p))
            if p.problem.is_none() && p.wanted.is_empty() =>
        {
            finish(p, &mut feeds, &known, &mut summary, keep)
                .and(Err(BundleError::Truncated { offset }))
        }
        (r, p) => {
            pending = p;
            r
        }
    };
    // What remains of a cut-short article is dropped with its staged files.
    if let Some(p) = pending.take() {
        for (_, f) in &p.files {
            let _ = fs::remove_file(f);
        }
        if result.is_err() {
            summary.refused += 1;
            let _ = keep(Step::Skipped(Skip::Refused {
                id: Hash::of(p.manifest.envelope().bytes()),
                title: Some(p.manifest.manifest().title.clone()),
                offset: p.offset,
                why: "the bundle breaks off within this article".into(),
            }));
        }
    }
    Outcome {
        summary,
        error: result.err(),
    }
}

/// Copies `size` bytes of the current blob to `file`, hashing them.
/// `None` when the input ended first.
fn stage<R: Read>(
    reader: &mut Reader<R>,
    file: &Path,
    size: u64,
) -> Result<Option<Hash>, BundleError> {
    let mut out = io::BufWriter::new(fs::File::create(file)?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut data = reader.blob();
    let mut copied = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        copied += n as u64;
    }
    out.flush()?;
    if copied < size {
        return Ok(None);
    }
    Ok(Some(Hash::from_bytes(*hasher.finalize().as_bytes())))
}

fn key_record(
    bytes: &[u8],
    offset: u64,
    feeds: &mut Feeds,
    known: &Known<'_>,
    summary: &mut Summary,
    keep: &mut dyn FnMut(Step) -> Result<(), String>,
) -> Result<(), BundleError> {
    let refuse = |why: String| Skip::Refused {
        id: Hash::of(bytes),
        title: None,
        offset,
        why,
    };
    let revocation = bytes.starts_with(b"tamizdat/revocation/");
    let step = match feeds.judge(bytes, None, known.now) {
        Judgement::Revocation(rev) => {
            feeds.revoke(&rev);
            summary.revocations += 1;
            Step::Revocation(rev)
        }
        Judgement::Delegation(d) => Step::Delegation(d),
        Judgement::Card(c) => match feeds.keep_card((*c).clone()) {
            Ok(replaces) => {
                summary.cards += 1;
                Step::Card {
                    card: c,
                    replaces: replaces.map(Box::new),
                }
            }
            Err(_) => return Ok(()),
        },
        // Not followed here, or known already: nothing to do.
        Judgement::Ignore(_) => return Ok(()),
        Judgement::Reject(Refused::NotTamizdat) | Judgement::Manifest(..) => Step::Skipped(refuse(
            "a key record that is neither a delegation, a revocation nor a card".into(),
        )),
        Judgement::Reject(why) if revocation => {
            Step::Skipped(refuse(format!("a revocation that does not verify: {why}")))
        }
        Judgement::Reject(why) if bytes.starts_with(b"tamizdat/card/") => {
            Step::Skipped(refuse(format!("a card that does not verify: {why}")))
        }
        Judgement::Reject(why) => {
            Step::Skipped(refuse(format!("a delegation that does not verify: {why}")))
        }
        Judgement::Equivocation(_, e) => {
            Step::Skipped(refuse(format!("against the feed rules: {e}")))
        }
    };
    if matches!(step, Step::Skipped(_)) {
        summary.refused += 1;
    }
    keep(step).map_err(BundleError::Commit)
}

/// Judges a manifest record: an article to read the files of, or a skip.
fn open_article(
    bytes: &[u8],
    offset: u64,
    verifier: &Verifier,
    feeds: &Feeds,
    known: &Known<'_>,
    summary: &mut Summary,
    keep: &mut dyn FnMut(Step) -> Result<(), String>,
) -> Result<Option<Pending>, BundleError> {
    let id = Hash::of(bytes);
    // The title, for the message, only when refusing (it may not decode).
    let refuse = |why: String| Skip::Refused {
        id,
        title: Signed::<Manifest>::decode(bytes)
            .ok()
            .map(|m| m.body().title.clone()),
        offset,
        why,
    };
    let open = |m: VerifiedManifest, recorded: bool| {
        let mut wanted = BTreeMap::new();
        for e in &m.manifest().entries {
            let hash = Hash::from_bytes(e.hash);
            if !(known.have)(&hash) {
                wanted.insert(hash, (e.path.clone(), e.size));
            }
        }
        Pending {
            manifest: m,
            offset,
            wanted,
            files: Vec::new(),
            problem: None,
            known: recorded,
        }
    };
    if !bytes.starts_with(b"tamizdat/manifest/") {
        let skip = refuse("the manifest does not verify: not a manifest".into());
        summary.refused += 1;
        keep(Step::Skipped(skip)).map_err(BundleError::Commit)?;
        return Ok(None);
    }
    let skip = match feeds.judge(bytes, None, known.now) {
        Judgement::Manifest(m, _) => return Ok(Some(open(*m, false))),
        Judgement::Ignore(Ignored::Duplicate) => match verifier.verify(bytes, feeds.trust()) {
            Ok(m)
                if m.manifest()
                    .entries
                    .iter()
                    .all(|e| (known.have)(&Hash::from_bytes(e.hash))) =>
            {
                Skip::Present { id }
            }
            // Recorded here before, but files are missing (a download the
            // shutdown cut off): the bundle completes it.
            Ok(m) => return Ok(Some(open(m, true))),
            Err(e) => refuse(format!("the manifest does not verify: {e}")),
        },
        Judgement::Ignore(Ignored::NotFollowed(publisher)) => Skip::Unfollowed { id, publisher },
        Judgement::Ignore(Ignored::Revoked(e)) => refuse(format!("signed by a revoked key: {e}")),
        Judgement::Ignore(Ignored::Replay(e)) => Skip::Old {
            id,
            why: e.to_string(),
        },
        Judgement::Reject(Refused::Feed(e)) | Judgement::Equivocation(_, e) => {
            refuse(format!("against the feed rules: {e}"))
        }
        Judgement::Reject(why) => refuse(format!("the manifest does not verify: {why}")),
        Judgement::Revocation(_)
        | Judgement::Delegation(_)
        | Judgement::Card(_)
        | Judgement::Ignore(Ignored::CardOutOfDate(_) | Ignored::Superseded) => {
            refuse("the manifest does not verify: not a manifest".into())
        }
    };
    match &skip {
        Skip::Present { .. } => summary.present += 1,
        Skip::Refused { .. } => summary.refused += 1,
        _ => summary.skipped += 1,
    }
    keep(Step::Skipped(skip)).map_err(BundleError::Commit)?;
    Ok(None)
}

/// An article's records are all read: hand it over if all of it holds.
fn finish(
    p: Pending,
    feeds: &mut Feeds,
    known: &Known<'_>,
    summary: &mut Summary,
    keep: &mut dyn FnMut(Step) -> Result<(), String>,
) -> Result<(), BundleError> {
    let id = Hash::of(p.manifest.envelope().bytes());
    let problem = p.problem.or_else(|| {
        // A file named but neither here nor in the bundle (nor arrived for
        // an earlier article of this bundle).
        let missing: Vec<_> = p
            .wanted
            .iter()
            .filter(|(h, _)| !(known.have)(h))
            .map(|(h, (path, _))| format!("{path} ({h})"))
            .collect();
        (!missing.is_empty()).then(|| format!("files not in the bundle: {}", missing.join(", ")))
    });
    let problem = problem.or_else(|| {
        feeds
            .accept(&p.manifest, known.now)
            .err()
            .map(|e| format!("against the feed rules: {e}"))
    });
    let completed = p.known;
    let step = match problem {
        Some(why) => {
            for (_, f) in &p.files {
                let _ = fs::remove_file(f);
            }
            summary.refused += 1;
            Step::Skipped(Skip::Refused {
                id,
                title: Some(p.manifest.manifest().title.clone()),
                offset: p.offset,
                why,
            })
        }
        None => {
            summary.imported += 1;
            Step::Article(Box::new(Staged {
                manifest: p.manifest,
                files: p.files,
                known: completed,
            }))
        }
    };
    let files: Vec<PathBuf> = match &step {
        Step::Article(s) => s.files.iter().map(|(_, f)| f.clone()).collect(),
        _ => Vec::new(),
    };
    let kept = keep(step);
    for f in files {
        let _ = fs::remove_file(f);
    }
    kept.map_err(BundleError::Commit)
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, collections::HashMap};

    use proptest::prelude::*;
    use tamizdat_sign::{Entry, SecretKey};

    use super::*;

    const NOW: u64 = 1_750_000_000;

    /// A feed of `n` root-signed articles; article i has a text file and
    /// shares one image with the others. Returns (manifest envelopes, blobs).
    fn feed(n: u64) -> (SecretKey, Vec<Vec<u8>>, HashMap<Hash, Vec<u8>>) {
        let key = SecretKey::from_seed(&[7; 32]);
        let image: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut blobs = HashMap::new();
        blobs.insert(Hash::of(&image), image.clone());
        let mut prev = None;
        let mut manifests = Vec::new();
        for seq in 1..=n {
            let text = format!("# Article {seq}\n\ntext").into_bytes();
            blobs.insert(Hash::of(&text), text.clone());
            let entry = |path: &str, b: &[u8], t: &str| Entry {
                path: path.into(),
                hash: *Hash::of(b).as_bytes(),
                size: b.len() as u64,
                media_type: t.into(),
            };
            let m = Manifest {
                publisher: key.public(),
                signer: key.public(),
                delegation: None,
                feed: "main".into(),
                seq,
                prev,
                created: NOW + seq,
                title: format!("Article {seq}"),
                lang: "en".into(),
                summary: None,
                supersedes: None,
                entries: vec![
                    entry("index.md", &text, "text/markdown"),
                    entry("photo.png", &image, "image/png"),
                ],
            };
            let signed = Signed::sign(m, &key).unwrap();
            prev = Some(signed.id());
            manifests.push(signed.bytes().to_vec());
        }
        (key, manifests, blobs)
    }

    /// A bundle of the whole feed, each blob written once.
    fn bundle(manifests: &[Vec<u8>], blobs: &HashMap<Hash, Vec<u8>>) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
        let mut written = HashSet::new();
        for m in manifests {
            w.manifest(m).unwrap();
            for e in &Signed::<Manifest>::decode(m).unwrap().body().entries {
                let h = Hash::from_bytes(e.hash);
                if written.insert(h) {
                    w.blob(&h, e.size, &blobs[&h][..]).unwrap();
                }
            }
        }
        w.finish().unwrap().0
    }

    /// Imports into a simulated store: returns the manifests kept (in
    /// order), the outcome, and checks every staged file against its hash.
    fn run(bytes: &[u8], key: &SecretKey) -> (Vec<Vec<u8>>, Outcome) {
        let staging = tempfile::tempdir().unwrap();
        let store: RefCell<HashSet<Hash>> = RefCell::default();
        let have = |h: &Hash| store.borrow().contains(h);
        let known = Known {
            trust: TrustState::default(),
            follows: [key.public()].into_iter().collect(),
            have: &have,
            now: NOW + 100,
            cards: Vec::new(),
        };
        let mut kept = Vec::new();
        let outcome = import(bytes, staging.path(), known, &mut |step| {
            if let Step::Article(a) = step {
                for (h, f) in &a.files {
                    assert_eq!(Hash::of(&fs::read(f).unwrap()), *h, "staged bytes verified");
                    store.borrow_mut().insert(*h);
                }
                for e in &a.manifest.manifest().entries {
                    assert!(store.borrow().contains(&Hash::from_bytes(e.hash)));
                }
                kept.push(a.manifest.envelope().bytes().to_vec());
            }
            Ok(())
        });
        assert_eq!(
            fs::read_dir(staging.path()).unwrap().count(),
            0,
            "staged files removed"
        );
        (kept, outcome)
    }

    #[test]
    fn frames_come_back_as_written() {
        let (_, manifests, blobs) = feed(2);
        let bytes = bundle(&manifests, &blobs);
        let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
        w.manifest(&manifests[0]).unwrap();
        let (out, digest) = w.finish().unwrap();
        assert_eq!(digest, Hash::of(&out), "the digest is the whole file's");
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Info(Info::default())));
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Manifest(manifests[0].clone()))
        );
        let Some(Frame::Blob { hash, size }) = r.next_frame().unwrap() else {
            panic!("a file")
        };
        let mut data = Vec::new();
        r.blob().read_to_end(&mut data).unwrap();
        assert_eq!((data.len() as u64, Hash::of(&data)), (size, hash));
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f);
        }
        assert_eq!(last, Some(Frame::End { intact: true }));
    }

    #[test]
    fn the_writer_refuses_what_the_format_forbids() {
        let (_, manifests, blobs) = feed(1);
        let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
        let (h, b) = blobs.iter().next().unwrap();
        assert!(
            w.blob(h, b.len() as u64, &b[..]).is_err(),
            "a file before its manifest"
        );
        w.manifest(&manifests[0]).unwrap();
        assert!(
            w.key(b"tamizdat/revocation/v1\n").is_err(),
            "a key after a manifest"
        );
        assert!(w.blob(h, b.len() as u64 + 1, &b[..]).is_err(), "short data");
    }

    #[test]
    fn a_cut_anywhere_keeps_a_verified_prefix_of_whole_articles() {
        let (key, manifests, blobs) = feed(3);
        let bytes = bundle(&manifests, &blobs);
        let (kept, outcome) = run(&bytes, &key);
        assert_eq!(kept, manifests);
        assert!(outcome.error.is_none() && outcome.summary.complete);
        for cut in 0..bytes.len() {
            let (kept, outcome) = run(&bytes[..cut], &key);
            assert_eq!(kept[..], manifests[..kept.len()], "cut at {cut}");
            assert!(outcome.error.is_some(), "cut at {cut} reported");
            assert!(!outcome.summary.complete);
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_it_is_allocated() {
        let (key, manifests, blobs) = feed(1);
        let bytes = bundle(&manifests, &blobs);
        // The manifest frame's header starts after the magic and the info frame.
        let info_len = 17 + 1 + 8 + 8 + postcard::to_stdvec(&Info::default()).unwrap().len();
        let mut bad = bytes.clone();
        assert_eq!(bad[info_len], MANIFEST);
        let huge = u64::MAX;
        bad[info_len + 1..info_len + 9].copy_from_slice(&huge.to_le_bytes());
        bad[info_len + 9..info_len + 17].copy_from_slice(&check_value(MANIFEST, huge, None));
        let (kept, outcome) = run(&bad, &key);
        assert!(kept.is_empty());
        assert!(
            matches!(outcome.error, Some(BundleError::TooLarge { claimed, .. }) if claimed == huge),
            "{:?}",
            outcome.error
        );
    }

    /// Byte offsets where each frame of `bytes` starts.
    fn frame_starts(bytes: &[u8]) -> Vec<usize> {
        let mut r = Reader::new(bytes).unwrap();
        let mut starts = vec![r.offset() as usize];
        while let Some(f) = r.next_frame().unwrap() {
            if matches!(f, Frame::Blob { .. }) {
                io::copy(&mut r.blob(), &mut io::sink()).unwrap();
            }
            starts.push(r.offset() as usize);
        }
        starts
    }

    #[test]
    fn a_key_record_after_an_article_stops_the_import_before_it_is_kept() {
        let (key, manifests, blobs) = feed(1);
        let article = bundle(&manifests, &blobs);
        let revocation = Signed::sign(
            Revocation {
                root: key.public(),
                target: tamizdat_sign::RevocationTarget::Key(
                    SecretKey::from_seed(&[8; 32]).public(),
                ),
                created: NOW,
                reason: String::new(),
            },
            &key,
        )
        .unwrap();
        let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
        w.key(revocation.bytes()).unwrap();
        let keys = w.finish().unwrap().0;
        // The article's frames without its end, then the revocation's frame.
        let a = frame_starts(&article);
        let k = frame_starts(&keys);
        let mut spliced = article[..a[a.len() - 2]].to_vec();
        spliced.extend(&keys[k[1]..k[2]]);
        let (kept, outcome) = run(&spliced, &key);
        assert!(
            kept.is_empty(),
            "the article before the revocation is not kept"
        );
        assert!(
            matches!(&outcome.error, Some(BundleError::Damaged { why, .. }) if why.contains("after the first manifest")),
            "{:?}",
            outcome.error
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(VERSION);
            bytes.extend(tail);
            let (kept, _) = run(&bytes, &SecretKey::from_seed(&[7; 32]));
            prop_assert!(kept.is_empty());
        }

        #[test]
        fn a_flipped_bit_never_lets_a_changed_article_in(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (key, manifests, blobs) = feed(2);
            let mut bytes = bundle(&manifests, &blobs);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let (kept, outcome) = run(&bytes, &key);
            // What is kept is genuine (run checks every file), and the damage is reported.
            prop_assert!(kept.iter().all(|k| manifests.contains(k)));
            prop_assert!(outcome.error.is_some() || outcome.summary.refused > 0, "a flip at {i} went unreported");
        }
    }
}
