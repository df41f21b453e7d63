//! The publishers this node follows and what it knows of their feeds: the
//! follow list, the trust state (feed heads, revocations), and the judgement
//! of every signed object that arrives, before anything is stored or
//! forwarded. Pure logic over [`TrustState`]; the node persists the result
//! in the store's `state` table.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::retention::Policy;
use tamizdat_sign::{
    Delegation, FeedError, Manifest, PublicKey, Revocation, Signed, TrustState, Verdict,
    VerifiedManifest, Verifier,
};

/// The store state entry holding the [`TrustState`].
pub const TRUST: &str = "trust";
/// The store state entry holding the follow list.
pub const FOLLOWS: &str = "follows";
/// Publishers followed at most.
pub const MAX_FOLLOWS: usize = 1024;
/// Equivocations remembered for reporting.
const MAX_CONFLICTS: usize = 256;

/// The gossip topic of a publisher: one per root key.
pub fn topic(publisher: &PublicKey) -> String {
    format!("tamizdat/feed/1/{publisher}")
}

/// The pin that keeps a feed's manifests and files.
pub fn feed_pin(m: &Manifest) -> String {
    format!("feed/{}/{}", m.publisher.fingerprint(), m.feed)
}

/// A followed publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followed {
    /// Its root key.
    pub key: PublicKey,
    /// A name for humans, if given.
    pub name: Option<String>,
    /// How much of it to keep.
    pub policy: Policy,
}

/// Two different manifests signed for one place in a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The publisher.
    pub publisher: PublicKey,
    /// What the feed rules said.
    pub detail: String,
}

/// What to do with an object that arrived.
#[derive(Debug)]
pub enum Judgement {
    /// A new manifest of a followed publisher: record, forward, replicate.
    Manifest(Box<VerifiedManifest>, Verdict),
    /// A new revocation by a followed publisher: apply and forward.
    Revocation(Box<Signed<Revocation>>),
    /// A valid delegation of a followed publisher: forward.
    Delegation,
    /// Genuine perhaps, but nothing to do (old, duplicate, unfollowed).
    Ignore(String),
    /// Invalid: the sender is penalised.
    Reject(String),
    /// A second, different manifest for a place in a followed feed: refused
    /// like [`Judgement::Reject`], and reported to the user.
    Equivocation(PublicKey, String),
}

/// The follow list and the trust state, with a verifier's caches.
#[derive(Debug, Default)]
pub struct Feeds {
    follows: BTreeMap<PublicKey, (Option<String>, Policy)>,
    trust: TrustState,
    verifier: Verifier,
    conflicts: VecDeque<Conflict>,
}

impl Feeds {
    /// From what the store held (`None` when it held nothing).
    pub fn new(trust: TrustState, follows: Vec<Followed>) -> Self {
        Self {
            follows: follows
                .into_iter()
                .take(MAX_FOLLOWS)
                .map(|f| (f.key, (f.name, f.policy)))
                .collect(),
            trust,
            verifier: Verifier::new(),
            conflicts: VecDeque::new(),
        }
    }

    /// Decodes the follow list as [`Feeds::encode_follows`] wrote it.
    pub fn decode_follows(bytes: &[u8]) -> Result<Vec<Followed>, String> {
        match bytes.split_first() {
            Some((1, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
            Some((v, _)) => Err(format!("unknown follow list version {v}")),
            None => Err("empty follow list record".into()),
        }
    }

    /// The follow list, for storage: a version byte and postcard.
    pub fn encode_follows(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend(postcard::to_stdvec(&self.following()).unwrap_or_default());
        out
    }

    /// The trust state.
    pub fn trust(&self) -> &TrustState {
        &self.trust
    }

    /// Replaces the trust state (a command applied a revocation, say).
    pub fn set_trust(&mut self, trust: TrustState) {
        self.trust = trust;
    }

    /// Publishers followed, by key.
    pub fn following(&self) -> Vec<Followed> {
        self.follows
            .iter()
            .map(|(key, (name, policy))| Followed {
                key: *key,
                name: name.clone(),
                policy: *policy,
            })
            .collect()
    }

    /// Whether `key` is followed.
    pub fn follows(&self, key: &PublicKey) -> bool {
        self.follows.contains_key(key)
    }

    /// Follows `key`; false if it already was (the name and policy are
    /// updated).
    pub fn follow(
        &mut self,
        key: PublicKey,
        name: Option<String>,
        policy: Policy,
    ) -> Result<bool, String> {
        if !self.follows.contains_key(&key) && self.follows.len() >= MAX_FOLLOWS {
            return Err(format!("already following {MAX_FOLLOWS} publishers"));
        }
        Ok(self.follows.insert(key, (name, policy)).is_none())
    }

    /// The retention policy of a followed publisher.
    pub fn policy(&self, key: &PublicKey) -> Option<Policy> {
        self.follows.get(key).map(|(_, p)| *p)
    }

    /// Stops following `key`; false if it was not followed.
    pub fn unfollow(&mut self, key: &PublicKey) -> bool {
        self.follows.remove(key).is_some()
    }

    /// Equivocations seen, oldest first.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts.iter().cloned().collect()
    }

    /// Judges an envelope that arrived on `topic_of`'s topic (or, for
    /// `None`, from a feed sync). Changes nothing; see [`Feeds::accept`].
    pub fn judge(&self, bytes: &[u8], topic_of: Option<&PublicKey>, now: u64) -> Judgement {
        if bytes.starts_with(b"tamizdat/manifest/") {
            let m = match self.verifier.verify(bytes, &self.trust) {
                Ok(m) => m,
                // Genuine, but its key was revoked since: dropped, not held
                // against a peer that may not know of the revocation yet.
                Err(e @ tamizdat_sign::VerifyError::Revoked { .. }) => {
                    return Judgement::Ignore(e.to_string());
                }
                Err(e) => return Judgement::Reject(e.to_string()),
            };
            let publisher = m.manifest().publisher;
            if topic_of.is_some_and(|t| *t != publisher) {
                return Judgement::Reject("a manifest on another publisher's topic".into());
            }
            if !self.follows(&publisher) {
                return Judgement::Ignore(format!("not following {publisher}"));
            }
            match self.trust.check(&m, now) {
                Ok(Verdict::Duplicate) => Judgement::Ignore("already have it".into()),
                Ok(v) => Judgement::Manifest(Box::new(m), v),
                // Genuine but too old to place: not the sender's fault.
                Err(e @ FeedError::Replay { .. }) => Judgement::Ignore(e.to_string()),
                Err(e @ FeedError::Equivocation { .. }) => {
                    Judgement::Equivocation(publisher, e.to_string())
                }
                Err(e) => Judgement::Reject(e.to_string()),
            }
        } else if bytes.starts_with(b"tamizdat/revocation/") {
            let rev = match Signed::<Revocation>::decode(bytes) {
                Ok(r) => r,
                Err(e) => return Judgement::Reject(e.to_string()),
            };
            let root = rev.body().root;
            if topic_of.is_some_and(|t| *t != root) {
                return Judgement::Reject("a revocation on another publisher's topic".into());
            }
            if !self.follows(&root) {
                return Judgement::Ignore(format!("not following {root}"));
            }
            // Checks the signature; applying twice is a no-op.
            let mut probe = self.trust.clone();
            match probe.add_revocation(&rev) {
                Ok(true) => Judgement::Revocation(Box::new(rev)),
                Ok(false) => Judgement::Ignore("already have it".into()),
                Err(e) => Judgement::Reject(e.to_string()),
            }
        } else if bytes.starts_with(b"tamizdat/delegation/") {
            match tamizdat_sign::verify_delegation(bytes) {
                Ok(d) => delegation_judgement(&d, topic_of, |k| self.follows(k)),
                Err(e) => Judgement::Reject(e.to_string()),
            }
        } else {
            Judgement::Reject("not a tamizdat object".into())
        }
    }

    /// Records a manifest judged new. An equivocation found now (a second
    /// manifest raced in) is remembered and refused.
    pub fn accept(&mut self, m: &VerifiedManifest, now: u64) -> Result<Verdict, FeedError> {
        let r = self.trust.accept(m, now);
        if let Err(e @ FeedError::Equivocation { .. }) = &r {
            self.report(m.manifest().publisher, e.to_string());
        }
        r
    }

    /// Applies a revocation judged new.
    pub fn revoke(&mut self, rev: &Signed<Revocation>) -> bool {
        self.trust.add_revocation(rev).unwrap_or(false)
    }

    /// Remembers an equivocation for reporting (bounded).
    pub fn report(&mut self, publisher: PublicKey, detail: String) {
        if self.conflicts.len() >= MAX_CONFLICTS {
            self.conflicts.pop_front();
        }
        self.conflicts.push_back(Conflict { publisher, detail });
    }
}

fn delegation_judgement(
    d: &Signed<Delegation>,
    topic_of: Option<&PublicKey>,
    follows: impl Fn(&PublicKey) -> bool,
) -> Judgement {
    let root = d.body().root;
    if topic_of.is_some_and(|t| *t != root) {
        return Judgement::Reject("a delegation on another publisher's topic".into());
    }
    if follows(&root) {
        Judgement::Delegation
    } else {
        Judgement::Ignore(format!("not following {root}"))
    }
}
