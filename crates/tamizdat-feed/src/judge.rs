//! The publishers this node follows and what it knows of their feeds: the
//! follow list, the trust state (feed heads, revocations), and the judgement
//! of every signed object that arrives, before anything is stored or
//! forwarded. Pure logic over [`TrustState`]; the caller persists the
//! result ([`TRUST`], [`FOLLOWS`]).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use tamizdat_sign::{
    Card, CardError, Delegation, FeedError, Manifest, PublicKey, Revocation, Signed, TrustState,
    Verdict, VerifiedManifest, Verifier, VerifyError,
};

use crate::policy::Policy;

/// The store state entry holding the [`TrustState`].
pub const TRUST: &str = "trust";
/// The store state entry holding the follow list.
pub const FOLLOWS: &str = "follows";
/// Publishers followed at most.
pub const MAX_FOLLOWS: usize = 1024;
/// Equivocations remembered for reporting (oldest dropped first).
pub const MAX_CONFLICTS: usize = 256;
/// Version byte of the stored follow list.
const FOLLOWS_VERSION: u8 = 1;

/// Whether card `new` replaces `old` of the same publisher: issued later,
/// or (two cards signed in the same second) the greater signed bytes, so
/// that every node keeps the same one.
fn newer_card(new: &Card, old: &Card) -> bool {
    new.root == old.root && tamizdat_sign::card_order(new, old).is_gt()
}

/// How far ahead of our clock a card's `issued` may be (clocks differ).
const CARD_AHEAD: u64 = 3600;

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

/// Why a genuine-looking object needs no action: nobody is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ignored {
    /// The publisher is not followed here.
    #[error("not following {0}")]
    NotFollowed(PublicKey),
    /// Already accepted.
    #[error("already have it")]
    Duplicate,
    /// Genuine, but its key was revoked since: not held against a peer
    /// that may not know of the revocation yet.
    #[error(transparent)]
    Revoked(VerifyError),
    /// Genuine but too old to place in its feed.
    #[error(transparent)]
    Replay(FeedError),
    /// A genuine card outside its validity window (expired, or not yet
    /// valid by our clock): kept by nobody, blamed on nobody.
    #[error(transparent)]
    CardOutOfDate(CardError),
    /// A genuine card issued before the one held: the newer one stays.
    #[error("a card issued before the one held here")]
    Superseded,
}

/// Why an object is refused: the sender is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Malformed, badly signed, or not properly delegated.
    #[error(transparent)]
    Invalid(VerifyError),
    /// A valid object of one publisher sent on another publisher's topic.
    #[error("a {kind} on another publisher's topic")]
    WrongTopic {
        /// "manifest", "revocation" or "delegation".
        kind: &'static str,
    },
    /// A valid manifest that breaks its feed's rules.
    #[error(transparent)]
    Feed(FeedError),
    /// A card that does not decode or whose signature does not verify.
    #[error(transparent)]
    Card(CardError),
    /// Bytes that are no tamizdat object at all.
    #[error("not a tamizdat object")]
    NotTamizdat,
}

/// What to do with an object that arrived.
#[derive(Debug)]
#[non_exhaustive]
pub enum Judgement {
    /// A new manifest of a followed publisher: record, forward, replicate.
    Manifest(Box<VerifiedManifest>, Verdict),
    /// A new revocation by a followed publisher: apply and forward.
    Revocation(Box<Signed<Revocation>>),
    /// A valid delegation of a followed publisher: forward.
    Delegation(Box<Signed<Delegation>>),
    /// A card of a followed publisher, valid now and newer than the one
    /// held: keep it ([`Feeds::keep_card`]) and forward.
    Card(Box<Signed<Card>>),
    /// Genuine perhaps, but nothing to do.
    Ignore(Ignored),
    /// Invalid: the sender is penalised.
    Reject(Refused),
    /// A second, different manifest for a place in a followed feed: refused
    /// like [`Judgement::Reject`], and reported to the user.
    Equivocation(PublicKey, FeedError),
}

/// A follow list that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FollowsError {
    /// The record is empty.
    #[error("empty follow list record")]
    Empty,
    /// Written by a version this code does not read.
    #[error("unknown follow list version {0}")]
    UnknownVersion(u8),
    /// The body does not decode.
    #[error("follow list does not decode: {0}")]
    Body(String),
    /// Following one more would pass [`MAX_FOLLOWS`].
    #[error("already following {MAX_FOLLOWS} publishers")]
    TooMany,
}

/// The follow list and the trust state, with a verifier's caches.
#[derive(Debug, Default)]
pub struct Feeds {
    follows: BTreeMap<PublicKey, (Option<String>, Policy)>,
    trust: TrustState,
    verifier: Verifier,
    conflicts: VecDeque<Conflict>,
    /// The newest genuine card of each followed publisher.
    cards: BTreeMap<PublicKey, Signed<Card>>,
}

impl Feeds {
    /// From what the store held (defaults when it held nothing).
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
            cards: BTreeMap::new(),
        }
    }

    /// Decodes the follow list as [`Feeds::encode_follows`] wrote it.
    pub fn decode_follows(bytes: &[u8]) -> Result<Vec<Followed>, FollowsError> {
        match bytes.split_first() {
            Some((&FOLLOWS_VERSION, body)) => {
                postcard::from_bytes(body).map_err(|e| FollowsError::Body(e.to_string()))
            }
            Some((v, _)) => Err(FollowsError::UnknownVersion(*v)),
            None => Err(FollowsError::Empty),
        }
    }

    /// The follow list, for storage: a version byte and postcard.
    pub fn encode_follows(&self) -> Vec<u8> {
        let mut out = vec![FOLLOWS_VERSION];
        // Keys, strings and integers: serialization cannot fail.
        out.extend(postcard::to_stdvec(&self.following()).expect("follow list serializes"));
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

    /// The heads this node holds of the feeds of `publishers` (at most
    /// [`MAX_FOLLOWS`] publishers asked, [`MAX_FOLLOWS`] heads answered):
    /// the answer to a peer's heads request.
    pub fn heads(&self, publishers: &[PublicKey]) -> Vec<crate::Head> {
        let wanted: std::collections::BTreeSet<&PublicKey> =
            publishers.iter().take(MAX_FOLLOWS).collect();
        self.trust
            .feeds()
            .filter(|(p, _, _)| wanted.contains(p))
            .take(MAX_FOLLOWS)
            .map(|(p, f, h)| crate::Head {
                publisher: *p,
                feed: f.to_owned(),
                seq: h.seq,
                hash: h.hash,
            })
            .collect()
    }

    /// A copy of the follow list, trust state and conflicts, for readers
    /// that must not hold up the owner (the verifier's caches start empty).
    pub fn snapshot(&self) -> Self {
        Self {
            follows: self.follows.clone(),
            trust: self.trust.clone(),
            verifier: Verifier::new(),
            conflicts: self.conflicts.clone(),
            cards: self.cards.clone(),
        }
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

    /// The keys of the publishers followed, in order.
    pub fn followed_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.follows.keys()
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
    ) -> Result<bool, FollowsError> {
        if !self.follows.contains_key(&key) && self.follows.len() >= MAX_FOLLOWS {
            return Err(FollowsError::TooMany);
        }
        Ok(self.follows.insert(key, (name, policy)).is_none())
    }

    /// The retention policy of a followed publisher.
    pub fn policy(&self, key: &PublicKey) -> Option<Policy> {
        self.follows.get(key).map(|(_, p)| *p)
    }

    /// Stops following `key`; false if it was not followed. Its card is
    /// forgotten too.
    pub fn unfollow(&mut self, key: &PublicKey) -> bool {
        self.cards.remove(key);
        self.follows.remove(key).is_some()
    }

    /// The newest card held of a followed publisher, genuine (its validity
    /// window is the reader's to check against its clock).
    pub fn card(&self, key: &PublicKey) -> Option<&Signed<Card>> {
        self.cards.get(key)
    }

    /// The cards held, one per followed publisher.
    pub fn cards(&self) -> impl Iterator<Item = &Signed<Card>> {
        self.cards.values()
    }

    /// Keeps a card judged new ([`Judgement::Card`]) in place of the one
    /// held, and returns the one it replaces. A card of a publisher not
    /// followed, or one that does not supersede the held one, changes
    /// nothing (`Err` hands it back).
    pub fn keep_card(
        &mut self,
        card: Signed<Card>,
    ) -> Result<Option<Signed<Card>>, Box<Signed<Card>>> {
        let root = card.body().root;
        if !self.follows(&root)
            || self
                .cards
                .get(&root)
                .is_some_and(|old| !newer_card(card.body(), old.body()))
        {
            return Err(Box::new(card));
        }
        Ok(self.cards.insert(root, card))
    }

    /// Equivocations seen, oldest first.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts.iter().cloned().collect()
    }

    /// Judges an envelope that arrived on `topic_of`'s topic (or, for
    /// `None`, from a feed sync). `now` is Unix seconds. Changes nothing;
    /// see [`Feeds::accept`].
    pub fn judge(&self, bytes: &[u8], topic_of: Option<&PublicKey>, now: u64) -> Judgement {
        if bytes.starts_with(b"tamizdat/manifest/") {
            let m = match self.verifier.verify(bytes, &self.trust) {
                Ok(m) => m,
                Err(e @ VerifyError::Revoked { .. }) => {
                    return Judgement::Ignore(Ignored::Revoked(e));
                }
                Err(e) => return Judgement::Reject(Refused::Invalid(e)),
            };
            let publisher = m.manifest().publisher;
            if topic_of.is_some_and(|t| *t != publisher) {
                return Judgement::Reject(Refused::WrongTopic { kind: "manifest" });
            }
            if !self.follows(&publisher) {
                return Judgement::Ignore(Ignored::NotFollowed(publisher));
            }
            match self.trust.check(&m, now) {
                Ok(Verdict::Duplicate) => Judgement::Ignore(Ignored::Duplicate),
                Ok(v) => Judgement::Manifest(Box::new(m), v),
                Err(e @ FeedError::Replay { .. }) => Judgement::Ignore(Ignored::Replay(e)),
                Err(e @ FeedError::Equivocation { .. }) => Judgement::Equivocation(publisher, e),
                Err(e) => Judgement::Reject(Refused::Feed(e)),
            }
        } else if bytes.starts_with(b"tamizdat/revocation/") {
            let rev = match Signed::<Revocation>::decode(bytes) {
                Ok(r) => r,
                Err(e) => return Judgement::Reject(Refused::Invalid(e.into())),
            };
            let root = rev.body().root;
            if topic_of.is_some_and(|t| *t != root) {
                return Judgement::Reject(Refused::WrongTopic { kind: "revocation" });
            }
            if !self.follows(&root) {
                return Judgement::Ignore(Ignored::NotFollowed(root));
            }
            // Checks the signature; applying twice is a no-op.
            let mut probe = self.trust.clone();
            match probe.add_revocation(&rev) {
                Ok(true) => Judgement::Revocation(Box::new(rev)),
                Ok(false) => Judgement::Ignore(Ignored::Duplicate),
                Err(e) => Judgement::Reject(Refused::Invalid(e)),
            }
        } else if bytes.starts_with(b"tamizdat/delegation/") {
            match tamizdat_sign::verify_delegation(bytes) {
                Ok(d) => delegation_judgement(d, topic_of, |k| self.follows(k)),
                Err(e) => Judgement::Reject(Refused::Invalid(e)),
            }
        } else if bytes.starts_with(b"tamizdat/card/") {
            self.judge_card(bytes, topic_of, now)
        } else {
            Judgement::Reject(Refused::NotTamizdat)
        }
    }

    fn judge_card(&self, bytes: &[u8], topic_of: Option<&PublicKey>, now: u64) -> Judgement {
        let card = match tamizdat_sign::verify_card(bytes) {
            Ok(c) => c,
            Err(e) => return Judgement::Reject(Refused::Card(e)),
        };
        let root = card.body().root;
        if topic_of.is_some_and(|t| *t != root) {
            return Judgement::Reject(Refused::WrongTopic { kind: "card" });
        }
        if !self.follows(&root) {
            return Judgement::Ignore(Ignored::NotFollowed(root));
        }
        if let Err(e) = tamizdat_sign::check_card_time(card.body(), now) {
            return Judgement::Ignore(Ignored::CardOutOfDate(e));
        }
        // Issued ahead of our clock: it would outrank the cards made after
        // it until then. Taken once the clocks agree.
        if card.body().issued > now.saturating_add(CARD_AHEAD) {
            return Judgement::Ignore(Ignored::CardOutOfDate(CardError::NotYetValid {
                not_before: card.body().issued,
            }));
        }
        match self.cards.get(&root) {
            Some(old) if old.body() == card.body() => Judgement::Ignore(Ignored::Duplicate),
            Some(old) if !newer_card(card.body(), old.body()) => {
                Judgement::Ignore(Ignored::Superseded)
            }
            _ => Judgement::Card(Box::new(card)),
        }
    }

    /// Records a manifest judged new (`now` in Unix seconds). An
    /// equivocation found now (a second manifest raced in) is remembered
    /// and refused.
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

    /// Remembers an equivocation for reporting (bounded by
    /// [`MAX_CONFLICTS`]).
    pub fn report(&mut self, publisher: PublicKey, detail: String) {
        if self.conflicts.len() >= MAX_CONFLICTS {
            self.conflicts.pop_front();
        }
        self.conflicts.push_back(Conflict { publisher, detail });
    }
}

fn delegation_judgement(
    d: Signed<Delegation>,
    topic_of: Option<&PublicKey>,
    follows: impl Fn(&PublicKey) -> bool,
) -> Judgement {
    let root = d.body().root;
    if topic_of.is_some_and(|t| *t != root) {
        return Judgement::Reject(Refused::WrongTopic { kind: "delegation" });
    }
    if follows(&root) {
        Judgement::Delegation(Box::new(d))
    } else {
        Judgement::Ignore(Ignored::NotFollowed(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tamizdat_sign::{Entry, SecretKey};

    const NOW: u64 = 1_780_000_000;

    /// The shapes the node wrote before this crate existed, field for field.
    mod old {
        use serde::{Deserialize, Serialize};
        use tamizdat_sign::PublicKey;

        #[derive(Serialize, Deserialize)]
        pub struct Policy {
            pub max_bytes: Option<u64>,
            pub max_age: Option<u64>,
        }

        #[derive(Serialize, Deserialize)]
        pub struct Followed {
            pub key: PublicKey,
            pub name: Option<String>,
            pub policy: Policy,
        }
    }

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    fn manifest(root: &SecretKey, seq: u64, prev: Option<[u8; 32]>, title: &str) -> Vec<u8> {
        let m = Manifest {
            publisher: root.public(),
            signer: root.public(),
            delegation: None,
            feed: "main".into(),
            seq,
            prev,
            created: NOW + seq,
            title: title.into(),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries: vec![Entry {
                path: "index.md".into(),
                hash: [seq as u8; 32],
                size: 7,
                media_type: "text/markdown".into(),
            }],
        };
        Signed::sign(m, root).unwrap().bytes().to_vec()
    }

    #[test]
    fn the_old_follow_list_decodes_identically() {
        let mut list = vec![
            old::Followed {
                key: key(1).public(),
                name: Some("Meduza".into()),
                policy: old::Policy {
                    max_bytes: Some(1 << 30),
                    max_age: None,
                },
            },
            old::Followed {
                key: key(2).public(),
                name: None,
                policy: old::Policy {
                    max_bytes: None,
                    max_age: Some(86_400),
                },
            },
        ];
        // The node wrote the list in key order, as a map iterates.
        list.sort_by_key(|f| f.key);
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_stdvec(&list).unwrap());
        let decoded = Feeds::decode_follows(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        let meduza = decoded.iter().find(|f| f.key == key(1).public()).unwrap();
        assert_eq!(meduza.name.as_deref(), Some("Meduza"));
        assert_eq!(meduza.policy.max_bytes, Some(1 << 30));
        assert_eq!(meduza.policy.max_age, None);
        let other = decoded.iter().find(|f| f.key == key(2).public()).unwrap();
        assert_eq!(other.name, None);
        assert_eq!(other.policy.max_age, Some(86_400));
        // And it encodes back to the very same bytes.
        let feeds = Feeds::new(TrustState::default(), decoded);
        assert_eq!(feeds.encode_follows(), bytes);
    }

    #[test]
    fn bad_follow_lists_are_typed_errors() {
        assert_eq!(Feeds::decode_follows(&[]), Err(FollowsError::Empty));
        assert_eq!(
            Feeds::decode_follows(&[7, 0]),
            Err(FollowsError::UnknownVersion(7))
        );
        assert!(matches!(
            Feeds::decode_follows(&[1, 5]),
            Err(FollowsError::Body(_))
        ));
    }

    #[test]
    fn judgements_are_typed() {
        let root = key(1);
        let mut feeds = Feeds::default();
        let one = manifest(&root, 1, None, "one");
        assert!(matches!(
            feeds.judge(&one, None, NOW + 10),
            Judgement::Ignore(Ignored::NotFollowed(k)) if k == root.public()
        ));
        feeds
            .follow(root.public(), None, Policy::default())
            .unwrap();
        let Judgement::Manifest(m, Verdict::First) = feeds.judge(&one, None, NOW + 10) else {
            panic!("a first manifest")
        };
        assert_eq!(feeds.accept(&m, NOW + 10), Ok(Verdict::First));
        assert!(matches!(
            feeds.judge(&one, None, NOW + 10),
            Judgement::Ignore(Ignored::Duplicate)
        ));
        assert!(matches!(
            feeds.judge(&one, Some(&key(9).public()), NOW + 10),
            Judgement::Reject(Refused::WrongTopic { kind: "manifest" })
        ));
        let mut forged = one.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(
            feeds.judge(&forged, None, NOW + 10),
            Judgement::Reject(Refused::Invalid(_))
        ));
        assert!(matches!(
            feeds.judge(b"hello", None, NOW),
            Judgement::Reject(Refused::NotTamizdat)
        ));
        let other = manifest(&root, 1, None, "another one");
        let Judgement::Equivocation(p, e) = feeds.judge(&other, None, NOW + 10) else {
            panic!("an equivocation")
        };
        assert_eq!(p, root.public());
        assert!(e.to_string().contains("EQUIVOCATION"));
        assert!(feeds.conflicts().is_empty(), "judging changes nothing");
    }

    #[test]
    fn the_follow_list_is_bounded() {
        let mut feeds = Feeds::default();
        for i in 0..MAX_FOLLOWS {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let k = SecretKey::from_seed(&seed).public();
            assert_eq!(feeds.follow(k, None, Policy::default()), Ok(true));
        }
        assert_eq!(
            feeds.follow(key(200).public(), None, Policy::default()),
            Err(FollowsError::TooMany)
        );
        assert_eq!(
            topic(&key(1).public()),
            format!("tamizdat/feed/1/{}", key(1).public())
        );
    }

    proptest! {
        #[test]
        fn follow_lists_round_trip(names in proptest::collection::vec(
            (any::<[u8; 32]>(), proptest::option::of("[a-z]{0,12}"),
             proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>())), 0..8)) {
            let follows: Vec<Followed> = names
                .into_iter()
                .map(|(seed, name, max_bytes, max_age)| Followed {
                    key: SecretKey::from_seed(&seed).public(),
                    name,
                    policy: Policy { max_bytes, max_age },
                })
                .collect();
            let feeds = Feeds::new(TrustState::default(), follows);
            let bytes = feeds.encode_follows();
            prop_assert_eq!(Feeds::decode_follows(&bytes).unwrap(), feeds.following());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Feeds::decode_follows(&bytes);
            let _ = Feeds::default().judge(&bytes, None, NOW);
        }
    }
}

/// Where a manifest whose signature verified stands with this node's feed
/// rules: what a reader may be shown of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Standing {
    /// Accepted into its feed here: the manifest this node holds at its
    /// place.
    Accepted,
    /// Not recorded here, but it fits the feed as this node knows it (a
    /// first, next, later or missing article of the feed).
    Fits(Verdict),
    /// Older than what this node remembers of its feed, and not recorded
    /// here: genuinely signed, but its place in the feed cannot be checked.
    Unplaced(FeedError),
    /// The feed rules refuse it: a second version of an article, a fork, an
    /// absurd jump, a signing time in the future or before its predecessor.
    Refused(FeedError),
}

impl Standing {
    /// Whether it may be shown as a checked article.
    pub fn is_genuine(&self) -> bool {
        matches!(self, Standing::Accepted | Standing::Fits(_))
    }
}

/// The standing of `m` (its signature and delegation already verified
/// against `trust`) under the feed rules, at `now` (Unix seconds).
/// `recorded` says whether the node holds it under its feed pin (it was
/// accepted when it arrived).
pub fn standing(trust: &TrustState, m: &VerifiedManifest, recorded: bool, now: u64) -> Standing {
    match trust.check(m, now) {
        Ok(Verdict::Duplicate) => Standing::Accepted,
        // Recorded, and fits or lies before the remembered window: it was
        // accepted when it arrived.
        Ok(_) | Err(FeedError::Replay { .. }) if recorded => Standing::Accepted,
        Ok(v) => Standing::Fits(v),
        Err(e @ FeedError::Replay { .. }) => Standing::Unplaced(e),
        Err(e) => Standing::Refused(e),
    }
}
