//! What a node remembers of each publisher: feed heads and revocations, and
//! the pure rules that decide whether a verified manifest fits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    envelope::{Digest, Signed},
    error::{DecodeError, FeedError, VerifyError},
    keys::PublicKey,
    objects::{Revocation, RevocationTarget},
    verify::VerifiedManifest,
};

/// Sequence numbers remembered per feed, for equivocation and backfill checks.
pub const RECENT: u64 = 256;
/// Largest forward jump accepted in one step.
pub const MAX_JUMP: u64 = 10_000;
/// Clock skew allowed for a signing time in the future, seconds.
pub const MAX_SKEW: u64 = 3600;
/// Revocations remembered per publisher.
pub const MAX_REVOCATIONS: usize = 4096;

/// The known head of one feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedHead {
    /// Highest sequence number accepted.
    pub seq: u64,
    /// Its manifest id.
    pub hash: Digest,
    /// Its signing time.
    pub created: u64,
    /// seq → what was accepted there, for the last [`RECENT`] sequence numbers.
    recent: BTreeMap<u64, Recent>,
}

impl FeedHead {
    /// The manifests skipped over inside the remembered window: for each
    /// remembered manifest whose predecessor was never accepted, that
    /// predecessor's sequence number and id (named by the successor's
    /// `prev`). What lies before the oldest remembered manifest is history,
    /// not a gap.
    pub fn gaps(&self) -> impl Iterator<Item = (u64, Digest)> + '_ {
        let oldest = self.recent.keys().next().copied();
        self.recent.iter().filter_map(move |(seq, r)| {
            let before = seq.checked_sub(1)?;
            if Some(*seq) == oldest || self.recent.contains_key(&before) {
                return None;
            }
            r.prev.map(|prev| (before, prev))
        })
    }
}

/// One remembered manifest of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recent {
    id: Digest,
    prev: Option<Digest>,
    created: u64,
}

/// How a manifest fits its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first manifest seen for this feed.
    First,
    /// The next in sequence, linked to the head.
    Next,
    /// Ahead of the head by more than one: `missing` manifests in between.
    Ahead {
        /// How many sequence numbers are missing.
        missing: u64,
    },
    /// Fills a gap behind the head, linked to its successor.
    Backfill,
    /// Already accepted: nothing to do.
    Duplicate,
}

impl Verdict {
    /// True when accepting changes the state.
    pub fn is_new(self) -> bool {
        self != Verdict::Duplicate
    }
}

/// Everything the feed rules need to remember, persisted between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    feeds: BTreeMap<(PublicKey, String), FeedHead>,
    /// root → revocation id → what it withdrew.
    revocations: BTreeMap<PublicKey, BTreeMap<Digest, RevocationTarget>>,
}

const STATE_VERSION: u8 = 1;

impl TrustState {
    /// Encodes for storage: a version byte and postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        // Plain maps, strings and integers: serialization cannot fail, and
        // silently writing an empty state would reopen the door to replays.
        out.extend(postcard::to_stdvec(self).expect("trust state serializes"));
        out
    }

    /// Decodes what [`TrustState::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body_err = |why: String| DecodeError::Body {
            kind: "trust state",
            why,
        };
        match bytes.split_first() {
            Some((&STATE_VERSION, body)) => {
                let (state, rest) =
                    postcard::take_from_bytes(body).map_err(|e| body_err(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(DecodeError::TrailingBytes("trust state"));
                }
                Ok(state)
            }
            Some((v, _)) => Err(DecodeError::UnknownVersion {
                kind: "trust state",
                found: v.to_string(),
            }),
            None => Err(DecodeError::Truncated("trust state")),
        }
    }

    /// The head of a feed, if any manifest of it was accepted.
    pub fn head(&self, publisher: &PublicKey, feed: &str) -> Option<&FeedHead> {
        self.feeds.get(&(*publisher, feed.to_owned()))
    }

    /// Every feed with its head.
    pub fn feeds(&self) -> impl Iterator<Item = (&PublicKey, &str, &FeedHead)> {
        self.feeds.iter().map(|((p, f), h)| (p, f.as_str(), h))
    }

    /// The ids of the revocations known for `root`.
    pub fn revocations_of(&self, root: &PublicKey) -> impl Iterator<Item = &Digest> {
        self.revocations
            .get(root)
            .into_iter()
            .flat_map(|m| m.keys())
    }

    /// The revocation that withdraws `key` (or its delegation `delegation`),
    /// if there is one.
    pub fn revoked(
        &self,
        root: &PublicKey,
        key: &PublicKey,
        delegation: Option<&Digest>,
    ) -> Option<Digest> {
        self.revocations.get(root)?.iter().find_map(|(id, t)| {
            let hit = match t {
                RevocationTarget::Key(k) => k == key,
                RevocationTarget::Delegation(d) => Some(d) == delegation,
            };
            hit.then_some(*id)
        })
    }

    /// Verifies a revocation (signed by the root it names) and remembers it.
    /// Returns false when it was already known.
    pub fn add_revocation(&mut self, rev: &Signed<Revocation>) -> Result<bool, VerifyError> {
        rev.check_signature()?;
        let root = rev.body().root;
        let list = self.revocations.entry(root).or_default();
        if list.contains_key(&rev.id()) {
            return Ok(false);
        }
        if list.len() >= MAX_REVOCATIONS {
            return Err(VerifyError::Decode(DecodeError::Field {
                kind: "revocation",
                field: "root",
                why: format!("over {MAX_REVOCATIONS} revocations for one publisher"),
            }));
        }
        list.insert(rev.id(), rev.body().target);
        Ok(true)
    }

    /// The feed rules: does this verified manifest fit what we know? Pure:
    /// it changes nothing (see [`TrustState::accept`]). A manifest older
    /// than the remembered window is a [`FeedError::Replay`]: genuine,
    /// perhaps, but not one this state can place.
    pub fn check(&self, m: &VerifiedManifest, now: u64) -> Result<Verdict, FeedError> {
        let verdict = self.place(m)?;
        // What was already accepted stays accepted if the local clock steps back.
        let created = m.manifest().created;
        if verdict.is_new() && created > now.saturating_add(MAX_SKEW) {
            return Err(FeedError::FromFuture {
                created,
                now,
                skew: MAX_SKEW,
            });
        }
        Ok(verdict)
    }

    /// Where the manifest falls in its feed's known history.
    fn place(&self, m: &VerifiedManifest) -> Result<Verdict, FeedError> {
        let body = m.manifest();
        let feed = &body.feed;
        let id = m.id();
        let Some(head) = self.head(&body.publisher, feed) else {
            return Ok(Verdict::First);
        };
        let hex = |d: Digest| hex::encode(d);
        let fork = |prev: Option<Digest>, expected: Digest| FeedError::Fork {
            feed: feed.clone(),
            seq: body.seq,
            prev: prev.map(hex).unwrap_or_else(|| "none".into()),
            head: hex(expected),
        };
        let equivocation = |existing: Digest| FeedError::Equivocation {
            feed: feed.clone(),
            seq: body.seq,
            existing: hex(existing),
            offered: hex(id),
        };
        let time_travel = |head_created: u64| FeedError::TimeTravel {
            feed: feed.clone(),
            created: body.created,
            head_created,
        };
        if body.seq <= head.seq {
            if let Some(known) = head.recent.get(&body.seq) {
                return if known.id == id {
                    Ok(Verdict::Duplicate)
                } else {
                    Err(equivocation(known.id))
                };
            }
            // A gap behind the head: it must link both ways to what is known.
            if let Some(next) = head.recent.get(&(body.seq + 1)) {
                if next.prev != Some(id) {
                    // The known successor names another predecessor.
                    return Err(equivocation(next.prev.unwrap_or_default()));
                }
                if let Some(before) = body.seq.checked_sub(1).and_then(|s| head.recent.get(&s)) {
                    if body.prev != Some(before.id) {
                        return Err(fork(body.prev, before.id));
                    }
                    if body.created < before.created {
                        return Err(time_travel(before.created));
                    }
                }
                if body.created > next.created {
                    return Err(time_travel(next.created));
                }
                return Ok(Verdict::Backfill);
            }
            return Err(FeedError::Replay {
                feed: feed.clone(),
                head: head.seq,
                seq: body.seq,
            });
        }
        if body.seq - head.seq > MAX_JUMP {
            return Err(FeedError::AbsurdJump {
                feed: feed.clone(),
                head: head.seq,
                seq: body.seq,
                limit: MAX_JUMP,
            });
        }
        if body.created < head.created {
            return Err(time_travel(head.created));
        }
        if body.seq == head.seq + 1 {
            if body.prev != Some(head.hash) {
                return Err(fork(body.prev, head.hash));
            }
            return Ok(Verdict::Next);
        }
        Ok(Verdict::Ahead {
            missing: body.seq - head.seq - 1,
        })
    }

    /// Checks and, when it fits, records the manifest.
    pub fn accept(&mut self, m: &VerifiedManifest, now: u64) -> Result<Verdict, FeedError> {
        let verdict = self.check(m, now)?;
        let body = m.manifest();
        let key = (body.publisher, body.feed.clone());
        let entry = Recent {
            id: m.id(),
            prev: body.prev,
            created: body.created,
        };
        match verdict {
            Verdict::Duplicate => {}
            Verdict::Backfill => {
                if let Some(h) = self.feeds.get_mut(&key) {
                    h.recent.insert(body.seq, entry);
                }
            }
            Verdict::First | Verdict::Next | Verdict::Ahead { .. } => {
                let h = self.feeds.entry(key).or_insert_with(|| FeedHead {
                    seq: body.seq,
                    hash: m.id(),
                    created: body.created,
                    recent: BTreeMap::new(),
                });
                h.seq = body.seq;
                h.hash = m.id();
                h.created = body.created;
                h.recent.insert(body.seq, entry);
                while h.recent.len() as u64 > RECENT {
                    h.recent.pop_first();
                }
            }
        }
        Ok(verdict)
    }
}
