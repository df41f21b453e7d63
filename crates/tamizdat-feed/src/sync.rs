//! The replication core: an I/O-less state machine, one per node, in the
//! style of iroh-gossip's `proto`. The driver (the libp2p node, or the
//! simulator) feeds it [`Input`]s with the current time and carries out the
//! [`Output`]s it returns; it never decides anything itself.
//!
//! ```text
//! loop {
//!     let input = next event, or Input::Timer at sync.next_timer();
//!     for output in sync.handle(input, now_ms) { do it; }
//! }
//! ```
//!
//! Time is Unix **milliseconds** (`now`); the feed rules get `now / 1000`.
//!
//! # What each input and output is on the node
//!
//! | core | node operation |
//! |---|---|
//! | `Input::PeerUp(p)` | `SwarmEvent::ConnectionEstablished` (first connection to `p`) |
//! | `Input::PeerDown(p)` | `SwarmEvent::ConnectionClosed` with no connection left to `p` |
//! | `Input::Gossip{from, id, topic_of, data}` | `gossipsub::Event::Message` on `topic(topic_of)` (`propagation_source`, `message_id`) |
//! | `Input::Heads{from, heads}` | `/tamizdat/heads/1` response from `from` |
//! | `Input::HeadsFailed{from}` | `/tamizdat/heads/1` `OutboundFailure` (timeout, refused, closed) |
//! | `Input::Manifest{from, hash, bytes}` | manifest-sized blob fetched from `from` (bytes not yet checked) |
//! | `Input::ManifestFailed{from, hash}` | that fetch failed (not found, timeout, too large) |
//! | `Input::Stored{manifest, missing}` | after `Output::Record`: the store holds and pins it; `missing` are its files not complete here |
//! | `Input::FileDone{hash, from}` | the fetcher completed and verified the blob; `from` served pieces |
//! | `Input::FileFailed{hash, tried, bad}` | the fetcher gave up; `bad` sent bytes that failed verification |
//! | `Input::Providers{hash, peers}` | `kad::Event::OutboundQueryProgressed` with `GetProvidersOk` |
//! | `Input::Have{from, hash}` | a neighbour's "have" hint (sent for its `Output::Announce`) |
//! | `Input::Card{from, data}` | a card in a `/tamizdat/cards/1` answer from `from` |
//! | `Input::Timer` | the node's timer reached [`Sync::next_timer`] |
//! | inbound `/tamizdat/heads/1` request | answer with [`Sync::heads`] (a query, changes nothing) |
//! | local publish / import | [`Sync::publish`] |
//! | `Output::Validate{id, acceptance}` | `gossipsub.report_message_validation_result(id, source, Accept/Ignore/Reject)` |
//! | `Output::Broadcast{topic_of, data}` | `gossipsub.publish(topic(topic_of), data)` (a local publish, or a new head that came by fetch: its gossip was lost somewhere) |
//! | `Output::AskHeads{peer, publishers}` | `/tamizdat/heads/1` request to `peer` |
//! | `Output::FetchManifest{peer, hash}` | fetch a manifest-sized blob from the one named peer |
//! | `Output::Record(m)` | store the envelope, pin it under `feed_pin`, then answer `Input::Stored` |
//! | `Output::FetchFile{hash, size, providers}` | hand the blob to the fetcher, which splits it into pieces across `providers` |
//! | `Output::LookupProviders(hash)` | `kademlia.get_providers(hash)` |
//! | `Output::Announce(hash)` | `kademlia.start_providing(hash)` and a "have" hint to connected peers |
//! | `Output::Persist` | write `feeds().trust()` to the store's `trust` state entry |
//! | `Output::KeepCard{card, replaces}` | keep the card under the `keys` pin, unpin the one it replaces, dial its addresses |
//! | `Output::Penalise{peer, offence}` | lower the peer's score (gossipsub application score, ban list) |
//! | `Output::Conflict(c)` | log and count an equivocation; `feeds().conflicts()` lists them |
//!
//! # What it guarantees
//!
//! - A gap is filled at once: accepting a manifest ahead of the head (or one
//!   behind it) walks back along `prev`, from the peer that gave it, until it
//!   meets what is held (at most [`MAX_WALK`] steps).
//! - Anti-entropy: heads are asked of a few random connected peers every
//!   [`Config::heads_interval`], and of every peer when it connects; a newer
//!   head is fetched from the peer that claimed it.
//! - Every accepted manifest and every completed file is announced at once.
//! - Peers known to hold a blob are asked at once; a provider lookup runs
//!   beside. Every request has a deadline, after which another peer is tried.
//! - Files are fetched rarest first, at most [`Config::max_fetches`] at a
//!   time, from holders before the announcer, with backoff between rounds.
//! - A refused object is never recorded nor forwarded; its sender, and a
//!   peer that claims a head it cannot deliver, is penalised and, after
//!   [`Config::ban_strikes`] offences (one equivocation is enough), no
//!   longer asked anything and not listened to.
//! - An equivocation is reported ([`Output::Conflict`]), never recorded
//!   beside what it contradicts. So is a validly signed manifest whose
//!   `prev` is not the head it follows (a fork: the publisher's key signed
//!   two histories), without penalising the peer that passed it on.
//! - Every map and queue is bounded (the `MAX_*` constants).
//!
//! What it cannot do: a node that holds neither the genuine manifest for a
//! place nor its successor cannot tell a stolen-key fake for that place
//! from the genuine one. It accepts whichever comes first, and reports the
//! conflict when the other history reaches it; the simulator counts such
//! nodes (`deceived`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use tamizdat_sign::{Digest, FeedError, PublicKey, Verdict, VerifiedManifest};

use crate::judge::{Conflict, Feeds, FollowsError, Ignored, Judgement, MAX_FOLLOWS, Refused};
use crate::policy::Policy;

/// A blob's BLAKE3 hash, or a manifest's id (the hash of its envelope).
pub type Hash = Digest;

/// Peers remembered (connected ones and the reputation of past ones).
pub const MAX_PEERS: usize = 4096;
/// Manifests being looked for at once.
pub const MAX_MANIFEST_WANTS: usize = 1024;
/// Files waiting or being fetched at once.
pub const MAX_FILE_WANTS: usize = 4096;
/// Blobs for which holders are remembered.
pub const MAX_TRACKED_BLOBS: usize = 8192;
/// Holders remembered per blob.
pub const MAX_HOLDERS: usize = 32;
/// Peers remembered per wanted manifest as places to fetch it from.
pub const MAX_CANDIDATES: usize = 16;
/// Refused object ids remembered, so a resend costs no signature check.
pub const MAX_REFUSED: usize = 8192;
/// New manifest wants one heads answer may start: a liar naming many heads
/// costs no more than one naming a few.
pub const MAX_CLAIMS: usize = 4;
/// Gaps in feeds asked about in one anti-entropy round.
pub const MAX_GAPS: usize = 16;
/// Longest walk back along `prev` from one accepted manifest.
pub const MAX_WALK: u32 = 64;
/// Manifests handed to the driver to record and not yet stored.
pub const MAX_PENDING: usize = 256;
/// Accepted manifest ids remembered, so a duplicate costs no signature check.
pub const MAX_SEEN: usize = 8192;
/// Heads taken from one answer.
pub const MAX_HEADS: usize = MAX_FOLLOWS;
/// Providers named in one [`Output::FetchFile`].
pub const MAX_PROVIDERS: usize = 4;
/// Heads requests outstanding at once.
pub const MAX_HEADS_OUT: usize = 64;
/// Peers asked for one manifest at once (the first, and one hedge).
pub const MAX_ASKS: usize = 2;
/// Peers remembered per wanted blob as already tried.
pub const MAX_TRIED: usize = MAX_HOLDERS + MAX_CANDIDATES;

/// Timing and limits of the core. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How often heads are asked of a few random peers (anti-entropy).
    pub heads_interval: u64,
    /// How many peers are asked each round.
    pub heads_fanout: usize,
    /// How long a heads request may take.
    pub heads_timeout: u64,
    /// How long one manifest fetch from one peer may take.
    pub manifest_timeout: u64,
    /// After this long without an answer, another peer is asked for the
    /// manifest as well (a hedge against one lost request).
    pub manifest_hedge: u64,
    /// How long a wanted manifest is looked for before it is given up.
    pub manifest_give_up: u64,
    /// How long the fetcher may take over one file before the core
    /// counts it as failed (the fetcher's own deadlines are shorter).
    pub file_timeout: u64,
    /// Files fetched at once.
    pub max_fetches: usize,
    /// First retry delay of a failed file; doubled each time.
    pub retry_base: u64,
    /// Longest retry delay.
    pub retry_max: u64,
    /// Failed rounds after which a file is dropped (the node's repair pass
    /// brings it back).
    pub max_file_attempts: u32,
    /// Least time between two provider lookups of one blob.
    pub lookup_interval: u64,
    /// Known holders below which a provider lookup runs beside the fetch.
    pub lookup_below: usize,
    /// Offences after which a peer is no longer asked anything.
    pub ban_strikes: u32,
    /// How long such a peer is left alone.
    pub ban_for: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heads_interval: 3_000,
            heads_fanout: 2,
            heads_timeout: 3_000,
            manifest_timeout: 5_000,
            manifest_hedge: 1_000,
            manifest_give_up: 60_000,
            file_timeout: 120_000,
            max_fetches: 4,
            retry_base: 250,
            retry_max: 30_000,
            max_file_attempts: 32,
            lookup_interval: 10_000,
            lookup_below: 2,
            ban_strikes: 3,
            ban_for: 600_000,
        }
    }
}

/// A gossip message id, as the pubsub layer names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub Vec<u8>);

/// The validation result reported to the pubsub layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Forward it to mesh peers.
    Accept,
    /// Drop it quietly.
    Ignore,
    /// Drop it and score the sender down.
    Reject,
}

/// One head of a feed, as `/tamizdat/heads/1` exchanges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The publisher's root key.
    pub publisher: PublicKey,
    /// The feed's name.
    pub feed: String,
    /// Its latest sequence number.
    pub seq: u64,
    /// The manifest there.
    pub hash: Digest,
}

/// What a peer did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Offence {
    /// Sent an object the feed rules refuse.
    #[error("sent a refused object: {0}")]
    Refused(Refused),
    /// Sent a second manifest for a place in a feed.
    #[error("sent an equivocating manifest: {0}")]
    Equivocation(FeedError),
    /// Answered a fetch with bytes that do not hash to what was asked.
    #[error("sent bytes that do not match the hash asked for")]
    WrongHash,
    /// Claimed a feed head it then could not deliver.
    #[error("claimed head {seq} of a feed and could not deliver it")]
    LyingHead {
        /// The sequence number claimed.
        seq: u64,
    },
    /// Served file bytes that failed verification.
    #[error("served bytes that failed verification")]
    BadData,
    /// Sent something else where only a card may come.
    #[error("sent something else where a card was asked for")]
    NotACard,
}

/// An event for the core.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input<P> {
    /// A peer connected.
    PeerUp(P),
    /// The last connection to a peer closed.
    PeerDown(P),
    /// A gossip message awaiting validation.
    Gossip {
        /// The peer that sent it to us.
        from: P,
        /// Its message id, for [`Output::Validate`].
        id: MsgId,
        /// The publisher whose topic it came on.
        topic_of: PublicKey,
        /// The envelope.
        data: Vec<u8>,
    },
    /// An answer to [`Output::AskHeads`].
    Heads {
        /// Who answered.
        from: P,
        /// Its heads.
        heads: Vec<Head>,
    },
    /// A heads request failed.
    HeadsFailed {
        /// Who was asked.
        from: P,
    },
    /// The bytes fetched for [`Output::FetchManifest`], not yet checked.
    Manifest {
        /// Who sent them.
        from: P,
        /// The hash asked for.
        hash: Hash,
        /// What came.
        bytes: Vec<u8>,
    },
    /// A manifest fetch failed.
    ManifestFailed {
        /// Who was asked.
        from: P,
        /// The hash asked for.
        hash: Hash,
    },
    /// The driver stored and pinned a manifest handed to it by
    /// [`Output::Record`] (or found in the store by a repair pass).
    Stored {
        /// The manifest's id.
        manifest: Hash,
        /// Its files not complete here, with their sizes.
        missing: Vec<(Hash, u64)>,
    },
    /// A file was fetched and verified.
    FileDone {
        /// The file.
        hash: Hash,
        /// The peers that served it.
        from: Vec<P>,
    },
    /// The fetcher gave up on a file.
    FileFailed {
        /// The file.
        hash: Hash,
        /// The peers asked.
        tried: Vec<P>,
        /// Those that sent bytes failing verification.
        bad: Vec<P>,
    },
    /// Providers found in the DHT.
    Providers {
        /// The blob.
        hash: Hash,
        /// Who says it holds it.
        peers: Vec<P>,
    },
    /// A peer says it now holds a blob.
    Have {
        /// The peer.
        from: P,
        /// The blob.
        hash: Hash,
    },
    /// A card a peer sent in the cards exchange, not yet checked.
    Card {
        /// Who sent it.
        from: P,
        /// The envelope.
        data: Vec<u8>,
    },
    /// [`Sync::next_timer`] was reached.
    Timer,
}

/// An action for the driver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output<P> {
    /// Report the validation result of a gossip message.
    Validate {
        /// The message.
        id: MsgId,
        /// Forward, drop, or drop and score down.
        acceptance: Acceptance,
    },
    /// Publish a locally made object on `topic_of`'s topic.
    Broadcast {
        /// The publisher.
        topic_of: PublicKey,
        /// The envelope.
        data: Vec<u8>,
    },
    /// Ask a peer for its heads of these publishers.
    AskHeads {
        /// Whom to ask.
        peer: P,
        /// The publishers followed here.
        publishers: Vec<PublicKey>,
    },
    /// Fetch a manifest from one peer; answer with [`Input::Manifest`] or
    /// [`Input::ManifestFailed`].
    FetchManifest {
        /// Whom to ask.
        peer: P,
        /// The manifest id.
        hash: Hash,
    },
    /// Store and pin an accepted manifest, then answer [`Input::Stored`].
    Record(Box<VerifiedManifest>),
    /// Fetch a file from these providers; answer with [`Input::FileDone`]
    /// or [`Input::FileFailed`].
    FetchFile {
        /// The file.
        hash: Hash,
        /// Its size, from the signed manifest.
        size: u64,
        /// Whom to fetch from, best first.
        providers: Vec<P>,
    },
    /// Look the blob's providers up in the DHT; answer with
    /// [`Input::Providers`].
    LookupProviders(Hash),
    /// Provide the blob in the DHT and tell the neighbours we have it.
    Announce(Hash),
    /// The trust state changed: persist it.
    Persist,
    /// A key object (a revocation) newly applied: keep its envelope, so
    /// that it can be handed on (bundles, peers that ask).
    Keep(Vec<u8>),
    /// A publisher's newer card, now held by [`Feeds::card`]: keep its
    /// envelope in place of the one it replaces, and join through its
    /// addresses.
    KeepCard {
        /// The card taken.
        card: Box<tamizdat_sign::Signed<tamizdat_sign::Card>>,
        /// The card it replaces, to be dropped.
        replaces: Option<Box<tamizdat_sign::Signed<tamizdat_sign::Card>>>,
    },
    /// Score a peer down.
    Penalise {
        /// The peer.
        peer: P,
        /// What it did.
        offence: Offence,
    },
    /// An equivocation was seen.
    Conflict(Conflict),
}

/// Why [`Sync::publish`] did not take an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Nothing to do (already published, or the publisher is not followed).
    #[error("{0}")]
    Ignored(Ignored),
    /// The feed rules refuse it.
    #[error("{0}")]
    Refused(Refused),
    /// Another manifest already holds its place in the feed.
    #[error("{0}")]
    Equivocation(FeedError),
}

/// What the core knows of one peer.
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    connected: bool,
    strikes: u32,
    banned_until: u64,
    /// Requests that went unanswered since the last answer.
    unanswered: u32,
}

#[derive(Debug)]
struct ManifestWant<P> {
    candidates: Vec<P>,
    tried: BTreeSet<P>,
    /// Peers that claimed it as a head: liars if they cannot deliver it.
    claimed: BTreeMap<P, u64>,
    /// Peers asked and their deadlines.
    asked: Vec<(P, u64)>,
    last_ask: u64,
    walk: u32,
    since: u64,
    next_lookup: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Queued,
    Fetching { deadline: u64 },
    Waiting { until: u64 },
}

#[derive(Debug)]
struct FileWant<P> {
    size: u64,
    /// Where its manifest came from: asked after known holders.
    sources: Vec<P>,
    tried: BTreeSet<P>,
    attempts: u32,
    state: FileState,
    order: u64,
    next_lookup: u64,
}

#[derive(Debug)]
struct Pending<P> {
    sources: Vec<P>,
    files: Vec<(Hash, u64)>,
}

/// A small, seeded, non-cryptographic generator (xorshift64*): the core's
/// random choices are reproducible from its seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64, so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The replication state machine of one node. See the [module](self) docs.
#[derive(Debug)]
pub struct Sync<P> {
    feeds: Feeds,
    config: Config,
    rng: Rng,
    peers: BTreeMap<P, Peer>,
    heads_out: BTreeMap<P, u64>,
    /// The peers [`Sync::ask_every_peer`] asked last, with the deadline of
    /// the request awaited (a later request to one is not waited for).
    asked_all: BTreeMap<P, u64>,
    next_round: Option<u64>,
    manifests: BTreeMap<Hash, ManifestWant<P>>,
    files: BTreeMap<Hash, FileWant<P>>,
    holders: BTreeMap<Hash, BTreeSet<P>>,
    pending: BTreeMap<Hash, Pending<P>>,
    seen: BTreeSet<Hash>,
    seen_order: VecDeque<Hash>,
    refused: BTreeSet<Hash>,
    refused_order: VecDeque<Hash>,
    order: u64,
    last_now: u64,
}

impl<P> Sync<P>
where
    P: Copy + Ord + std::hash::Hash + std::fmt::Debug,
{
    /// A core owning `feeds`, with its random choices drawn from `seed`.
    pub fn new(feeds: Feeds, config: Config, seed: u64) -> Self {
        Self {
            feeds,
            config,
            rng: Rng::new(seed),
            peers: BTreeMap::new(),
            heads_out: BTreeMap::new(),
            asked_all: BTreeMap::new(),
            next_round: None,
            manifests: BTreeMap::new(),
            files: BTreeMap::new(),
            holders: BTreeMap::new(),
            pending: BTreeMap::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            refused: BTreeSet::new(),
            refused_order: VecDeque::new(),
            order: 0,
            last_now: 0,
        }
    }

    /// The follow list and trust state, for snapshots and queries.
    pub fn feeds(&self) -> &Feeds {
        &self.feeds
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Follows a publisher; its heads are asked at the next round.
    pub fn follow(
        &mut self,
        key: PublicKey,
        name: Option<String>,
        policy: Policy,
    ) -> Result<bool, FollowsError> {
        let new = self.feeds.follow(key, name, policy)?;
        if new {
            // Ask at once rather than in a full interval.
            self.next_round = Some(self.last_now + 1);
        }
        Ok(new)
    }

    /// Stops following a publisher.
    pub fn unfollow(&mut self, key: &PublicKey) -> bool {
        self.feeds.unfollow(key)
    }

    /// The feeds, for a change made here rather than learned from peers:
    /// a revocation signed on this machine, a trust state restored by a
    /// command. The caller persists the result.
    pub fn feeds_mut(&mut self) -> &mut Feeds {
        &mut self.feeds
    }

    /// Tells the core which manifests the store already holds (at start),
    /// so that walks stop at them without fetching them again.
    pub fn remember(&mut self, ids: impl IntoIterator<Item = Hash>) {
        for id in ids {
            self.see(id);
        }
    }

    /// The answer to a peer's heads request for `publishers`.
    pub fn heads(&self, publishers: &[PublicKey]) -> Vec<Head> {
        self.feeds.heads(publishers)
    }

    /// Whether the core leaves `peer` alone for now (too many offences).
    pub fn is_banned(&self, peer: &P, now: u64) -> bool {
        self.peers.get(peer).is_some_and(|p| p.banned_until > now)
    }

    /// Offences counted against `peer`.
    pub fn strikes(&self, peer: &P) -> u32 {
        self.peers.get(peer).map_or(0, |p| p.strikes)
    }

    /// Asks every connected peer (not banned, not asked already, at most
    /// [`MAX_HEADS_OUT`] in flight) for its heads at once, and says how many
    /// were asked. A publisher about to sign learns where its feed stands
    /// this way; what the answers prove arrives as usual (manifests fetched,
    /// judged, recorded) and [`Sync::is_settled`] says when it has.
    pub fn ask_every_peer(&mut self, now: u64) -> (usize, Vec<Output<P>>) {
        let mut out = Vec::new();
        let peers: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, i)| i.connected && i.banned_until <= now)
            .map(|(p, _)| *p)
            .collect();
        self.asked_all.clear();
        for p in peers {
            self.ask_heads(p, now, &mut out);
            // Asked now, or asked already (a request in flight, say the one
            // made when it connected): its answer is awaited all the same.
            if let Some(deadline) = self.heads_out.get(&p) {
                self.asked_all.insert(p, *deadline);
            }
        }
        let asked = self.asked_all.len();
        self.tick(now, &mut out);
        (asked, out)
    }

    /// True once every peer [`Sync::ask_every_peer`] asked has answered
    /// (or timed out) and no head a peer claimed is still unproven: what
    /// the feeds' heads say now is all those peers could show.
    pub fn is_settled(&self) -> bool {
        !self
            .asked_all
            .iter()
            .any(|(p, d)| self.heads_out.get(p) == Some(d))
            && self.manifests.values().all(|w| w.claimed.is_empty())
    }

    /// Files waiting or being fetched.
    pub fn files_wanted(&self) -> usize {
        self.files.len()
    }

    /// Judges and accepts an object made here (publish, import): on success
    /// the outputs record and broadcast it.
    pub fn publish(&mut self, data: Vec<u8>, now: u64) -> Result<Vec<Output<P>>, PublishError> {
        let mut out = Vec::new();
        match self.feeds.judge(&data, None, now / 1000) {
            Judgement::Manifest(m, _) => {
                let publisher = m.manifest().publisher;
                match self.feeds.accept(&m, now / 1000) {
                    Ok(v) if v.is_new() => {}
                    Ok(_) => return Err(PublishError::Ignored(Ignored::Duplicate)),
                    Err(e @ FeedError::Equivocation { .. }) => {
                        return Err(PublishError::Equivocation(e));
                    }
                    Err(e) => return Err(PublishError::Refused(Refused::Feed(e))),
                }
                self.accepted(&m, Vec::new(), &mut out);
                out.push(Output::Record(m));
                out.push(Output::Broadcast {
                    topic_of: publisher,
                    data,
                });
            }
            Judgement::Revocation(r) => {
                let root = r.body().root;
                if self.feeds.revoke(&r) {
                    out.push(Output::Persist);
                    out.push(Output::Keep(data.clone()));
                }
                out.push(Output::Broadcast {
                    topic_of: root,
                    data,
                });
            }
            Judgement::Delegation(d) => {
                out.push(Output::Broadcast {
                    topic_of: d.body().root,
                    data,
                });
            }
            Judgement::Card(c) => {
                let root = c.body().root;
                self.take_card(*c, &mut out);
                out.push(Output::Broadcast {
                    topic_of: root,
                    data,
                });
            }
            Judgement::Ignore(i) => return Err(PublishError::Ignored(i)),
            Judgement::Reject(r) => return Err(PublishError::Refused(r)),
            Judgement::Equivocation(_, e) => return Err(PublishError::Equivocation(e)),
        }
        self.tick(now, &mut out);
        Ok(out)
    }

    /// A card offered by a peer (the cards exchange): judged as from
    /// gossip, without a topic; only a card is taken, and the sender of a
    /// forged card, or of anything else, is penalised.
    fn offered_card(&mut self, from: P, data: &[u8], now: u64, out: &mut Vec<Output<P>>) {
        if self.banned_at(&from, now) {
            return;
        }
        if !data.starts_with(b"tamizdat/card/") {
            self.penalise(from, Offence::NotACard, now, out);
            return;
        }
        match self.feeds.judge(data, None, now / 1000) {
            Judgement::Card(c) => self.take_card(*c, out),
            Judgement::Reject(r) => self.penalise(from, Offence::Refused(r), now, out),
            _ => {}
        }
    }

    /// Keeps a card judged new, and says so.
    fn take_card(
        &mut self,
        card: tamizdat_sign::Signed<tamizdat_sign::Card>,
        out: &mut Vec<Output<P>>,
    ) {
        let kept = card.clone();
        if let Ok(replaces) = self.feeds.keep_card(card) {
            out.push(Output::KeepCard {
                card: Box::new(kept),
                replaces: replaces.map(Box::new),
            });
        }
    }

    /// Takes one input at time `now` (Unix ms) and returns what to do.
    pub fn handle(&mut self, input: Input<P>, now: u64) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::PeerUp(p) => self.peer_up(p, now, &mut out),
            Input::PeerDown(p) => self.peer_down(p),
            Input::Gossip {
                from,
                id,
                topic_of,
                data,
            } => self.gossip(from, id, topic_of, &data, now, &mut out),
            Input::Heads { from, heads } => self.on_heads(from, heads, now),
            Input::HeadsFailed { from } => {
                if self.heads_out.remove(&from).is_some() {
                    self.peer_mut(from).unanswered += 1;
                }
            }
            Input::Manifest { from, hash, bytes } => {
                self.on_manifest(from, hash, &bytes, now, &mut out)
            }
            Input::ManifestFailed { from, hash } => self.manifest_failed(from, hash, now, &mut out),
            Input::Stored { manifest, missing } => self.stored(manifest, missing, now, &mut out),
            Input::FileDone { hash, from } => {
                self.files.remove(&hash);
                for p in from {
                    self.add_holder(hash, p);
                }
                out.push(Output::Announce(hash));
            }
            Input::FileFailed { hash, tried, bad } => {
                self.file_failed(hash, tried, bad, now, &mut out)
            }
            Input::Providers { hash, peers } => {
                for p in peers.into_iter().take(MAX_HOLDERS) {
                    self.hint(p, hash);
                }
            }
            Input::Have { from, hash } => self.hint(from, hash),
            Input::Card { from, data } => self.offered_card(from, &data, now, &mut out),
            Input::Timer => {}
        }
        self.tick(now, &mut out);
        out
    }

    /// When the core next wants [`Input::Timer`] (Unix ms), if ever.
    pub fn next_timer(&self) -> Option<u64> {
        let mut t = None;
        // What was due by the last call was done then; a time already past
        // (the lookup of a file waiting for a free slot) needs no wake-up.
        let last = self.last_now;
        let mut at = |x: u64| {
            if x > last {
                t = Some(t.map_or(x, |t: u64| t.min(x)));
            }
        };
        if let Some(r) = self.next_round {
            at(r);
        }
        for d in self.heads_out.values() {
            at(*d);
        }
        for w in self.manifests.values() {
            if w.asked.is_empty() {
                at(w.next_lookup);
                at(w.since + self.config.manifest_give_up);
            } else {
                for (_, d) in &w.asked {
                    at(*d);
                }
                if w.asked.len() < MAX_ASKS {
                    at(w.last_ask + self.config.manifest_hedge);
                }
            }
        }
        for w in self.files.values() {
            match w.state {
                FileState::Fetching { deadline } => at(deadline),
                FileState::Waiting { until } => at(until),
                FileState::Queued => at(w.next_lookup),
            }
        }
        t
    }

    // ---- inputs ----

    fn peer_up(&mut self, p: P, now: u64, out: &mut Vec<Output<P>>) {
        self.peer_mut(p).connected = true;
        // Back: what it could not give before, it may give now.
        for w in self.manifests.values_mut() {
            w.tried.remove(&p);
        }
        // A returning peer may hold what we missed, or miss what we hold:
        // ask it at once rather than at the next round.
        self.ask_heads(p, now, out);
    }

    fn peer_down(&mut self, p: P) {
        if let Some(peer) = self.peers.get_mut(&p) {
            peer.connected = false;
        }
        self.heads_out.remove(&p);
        for w in self.manifests.values_mut() {
            if w.asked.iter().any(|(a, _)| *a == p) {
                w.asked.retain(|(a, _)| *a != p);
                w.tried.insert(p);
            }
        }
    }

    fn gossip(
        &mut self,
        from: P,
        id: MsgId,
        topic_of: PublicKey,
        data: &[u8],
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        let hash = *blake3::hash(data).as_bytes();
        // Already accepted: the same bytes, so no signature to check.
        if self.seen.contains(&hash) {
            out.push(Output::Validate {
                id,
                acceptance: Acceptance::Ignore,
            });
            return;
        }
        // Known refused: refused again without a signature check.
        if self.refused.contains(&hash) {
            out.push(Output::Validate {
                id,
                acceptance: Acceptance::Reject,
            });
            return;
        }
        // A peer caught cheating is not heard until its ban ends: what it
        // forwards honestly, others forward too. What it forwards is still
        // judged, so that the pubsub layer keeps scoring its forgeries down.
        let banned = self.banned_at(&from, now);
        let acceptance = match self.feeds.judge(data, Some(&topic_of), now / 1000) {
            Judgement::Manifest(_, _)
            | Judgement::Revocation(_)
            | Judgement::Delegation(_)
            | Judgement::Card(_)
                if banned =>
            {
                Acceptance::Ignore
            }
            Judgement::Manifest(m, _) => {
                if self.admit(m, vec![from], MAX_WALK, false, now, out) {
                    Acceptance::Accept
                } else {
                    Acceptance::Ignore
                }
            }
            Judgement::Revocation(r) => {
                if self.feeds.revoke(&r) {
                    out.push(Output::Persist);
                    out.push(Output::Keep(data.to_vec()));
                }
                Acceptance::Accept
            }
            Judgement::Delegation(_) => Acceptance::Accept,
            Judgement::Card(c) => {
                self.take_card(*c, out);
                Acceptance::Accept
            }
            Judgement::Ignore(_) => Acceptance::Ignore,
            Judgement::Reject(Refused::Feed(e @ FeedError::Fork { .. })) => {
                self.refuse(hash);
                self.fork(topic_of, e, out);
                Acceptance::Ignore
            }
            // Dated ahead of our clock: the publisher's clock or ours is
            // wrong, not the forwarder. Neither remembered nor blamed: it
            // fits once the clocks agree.
            Judgement::Reject(Refused::Feed(FeedError::FromFuture { .. })) => Acceptance::Ignore,
            Judgement::Reject(r) => {
                self.refuse(hash);
                self.penalise(from, Offence::Refused(r), now, out);
                Acceptance::Reject
            }
            Judgement::Equivocation(publisher, e) => {
                self.refuse(hash);
                self.equivocation(from, publisher, e, now, out);
                Acceptance::Reject
            }
        };
        out.push(Output::Validate { id, acceptance });
    }

    fn on_heads(&mut self, from: P, heads: Vec<Head>, now: u64) {
        self.heads_out.remove(&from);
        self.peer_mut(from).unanswered = 0;
        if self.is_banned(&from, now) {
            return;
        }
        // One head per feed, the highest, and only a few claims per answer:
        // a liar naming a thousand heads costs no more than one naming a few.
        let mut best: BTreeMap<(PublicKey, String), Head> = BTreeMap::new();
        for h in heads.into_iter().take(MAX_HEADS) {
            if !self.feeds.follows(&h.publisher)
                || self.seen.contains(&h.hash)
                || self.refused.contains(&h.hash)
            {
                continue;
            }
            let key = (h.publisher, h.feed.clone());
            if best.get(&key).is_none_or(|b| b.seq < h.seq) {
                best.insert(key, h);
            }
        }
        let claims_before = self.manifests.len();
        for h in best.into_values() {
            if self.manifests.len() >= claims_before + MAX_CLAIMS {
                break;
            }
            let ours = self
                .feeds
                .trust()
                .head(&h.publisher, &h.feed)
                .map(|x| x.seq);
            // A head at our head's place with another hash (neither seen
            // nor refused, filtered above) is a second manifest for that
            // place: fetched, so that the equivocation is reported. Without
            // this, a node that took a stolen-key fake of the newest
            // article never learns of the genuine one from anti-entropy.
            if ours.is_some_and(|s| h.seq < s) {
                continue;
            }
            self.want_manifest(h.hash, from, Some(h.seq), MAX_WALK, now);
        }
    }

    fn on_manifest(
        &mut self,
        from: P,
        hash: Hash,
        bytes: &[u8],
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        let Some(mut w) = self.manifests.remove(&hash) else {
            // Not (or no longer) wanted: a late answer. Nothing to do.
            return;
        };
        w.asked.retain(|(a, _)| *a != from);
        self.peer_mut(from).unanswered = 0;
        if *blake3::hash(bytes).as_bytes() != hash {
            self.penalise(from, Offence::WrongHash, now, out);
            w.tried.insert(from);
            self.manifests.insert(hash, w);
            return;
        }
        match self.feeds.judge(bytes, None, now / 1000) {
            Judgement::Manifest(m, _) => {
                self.forgive(from);
                let mut sources = vec![from];
                sources.extend(w.candidates.iter().copied().filter(|c| *c != from));
                sources.truncate(MAX_CANDIDATES);
                self.admit(m, sources, w.walk, true, now, out);
            }
            Judgement::Ignore(Ignored::Duplicate) => self.see(hash),
            Judgement::Ignore(_)
            | Judgement::Revocation(_)
            | Judgement::Delegation(_)
            | Judgement::Card(_) => {}
            Judgement::Reject(Refused::Feed(e @ FeedError::Fork { .. })) => {
                self.refuse(hash);
                if let Ok(s) = tamizdat_sign::Signed::<tamizdat_sign::Manifest>::decode(bytes) {
                    self.fork(s.body().publisher, e, out);
                }
            }
            // See the same case in gossip: nobody's fault we can tell.
            Judgement::Reject(Refused::Feed(FeedError::FromFuture { .. })) => {}
            Judgement::Reject(r) => {
                // The bytes are what was named: whoever named them lied.
                self.refuse(hash);
                self.penalise(from, Offence::Refused(r), now, out);
            }
            Judgement::Equivocation(publisher, e) => {
                self.refuse(hash);
                self.equivocation(from, publisher, e, now, out)
            }
        }
    }

    fn manifest_failed(&mut self, from: P, hash: Hash, now: u64, out: &mut Vec<Output<P>>) {
        let Some(w) = self.manifests.get_mut(&hash) else {
            return;
        };
        if !w.asked.iter().any(|(a, _)| *a == from) {
            // Not asked now (its deadline passed and was counted): nothing
            // more to learn.
            return;
        }
        w.asked.retain(|(a, _)| *a != from);
        w.tried.insert(from);
        if let Some(seq) = w.claimed.remove(&from) {
            self.penalise(from, Offence::LyingHead { seq }, now, out);
        }
    }

    fn stored(
        &mut self,
        manifest: Hash,
        missing: Vec<(Hash, u64)>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        self.see(manifest);
        out.push(Output::Announce(manifest));
        let pending = self.pending.remove(&manifest);
        let sources = pending
            .as_ref()
            .map(|p| p.sources.clone())
            .unwrap_or_default();
        let missing_set: BTreeSet<Hash> = missing.iter().map(|(h, _)| *h).collect();
        if let Some(p) = &pending {
            for (h, _) in &p.files {
                if !missing_set.contains(h) {
                    out.push(Output::Announce(*h));
                }
            }
        }
        for (hash, size) in missing {
            self.want_file(hash, size, &sources, now, out);
        }
    }

    fn file_failed(
        &mut self,
        hash: Hash,
        tried: Vec<P>,
        bad: Vec<P>,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        for b in &bad {
            if let Some(h) = self.holders.get_mut(&hash) {
                h.remove(b);
            }
            self.penalise(*b, Offence::BadData, now, out);
        }
        let Some(w) = self.files.get_mut(&hash) else {
            return;
        };
        if !bad.is_empty() {
            // The attempt broke on bytes proven bad: those peers are out
            // (tried, penalised, no longer holders). That says nothing of
            // the others asked nor of the blob's availability, so it is
            // retried at once with them, without a backoff step. (Found by
            // the simulator: corrupting DHT poisoners drove honest files
            // into 30 s backoffs and marked honest servers as tried.)
            for b in bad {
                if w.tried.len() < MAX_TRIED {
                    w.tried.insert(b);
                }
            }
            w.state = FileState::Queued;
            return;
        }
        for p in tried.into_iter().chain(bad) {
            if w.tried.len() >= MAX_TRIED {
                break;
            }
            w.tried.insert(p);
        }
        w.attempts += 1;
        if w.attempts >= self.config.max_file_attempts {
            self.files.remove(&hash);
            return;
        }
        let shift = (w.attempts - 1).min(16);
        let delay = (self.config.retry_base << shift).min(self.config.retry_max);
        w.state = FileState::Waiting { until: now + delay };
    }

    /// A peer is known to hold `hash`: remember it, and use it at once for
    /// whatever waits on that blob.
    fn hint(&mut self, p: P, hash: Hash) {
        self.add_holder(hash, p);
        if let Some(w) = self.manifests.get_mut(&hash)
            && !w.candidates.contains(&p)
            && w.candidates.len() < MAX_CANDIDATES
        {
            w.candidates.push(p);
        }
        if let Some(w) = self.files.get_mut(&hash)
            && matches!(w.state, FileState::Waiting { .. })
            && !w.tried.contains(&p)
        {
            w.state = FileState::Queued;
        }
    }

    // ---- decisions ----

    /// Accepts a manifest judged new; false if the feed rules refused it
    /// after all (a race). A new head that came by a fetch rather than by
    /// gossip (its gossip was lost somewhere) is put back into gossip when
    /// `rebroadcast`, so the peers that missed it need not wait for their
    /// own heads round.
    fn admit(
        &mut self,
        m: Box<VerifiedManifest>,
        sources: Vec<P>,
        walk: u32,
        rebroadcast: bool,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) -> bool {
        let verdict = match self.feeds.accept(&m, now / 1000) {
            Ok(v) if v.is_new() => v,
            Ok(_) => {
                self.see(m.id());
                return false;
            }
            Err(e @ FeedError::Equivocation { .. }) => {
                // `accept` already remembered it.
                out.push(Output::Conflict(Conflict {
                    publisher: m.manifest().publisher,
                    detail: e.to_string(),
                }));
                return false;
            }
            Err(_) => return false,
        };
        let body = m.manifest();
        let walk_back = match verdict {
            Verdict::Ahead { .. } | Verdict::Backfill => true,
            Verdict::First => body.seq > 1,
            Verdict::Next | Verdict::Duplicate => false,
        };
        if walk_back
            && walk > 0
            && let Some(prev) = body.prev
            && !self.seen.contains(&prev)
        {
            for s in &sources {
                self.want_manifest(prev, *s, None, walk - 1, now);
            }
        }
        let new_head = matches!(
            verdict,
            Verdict::First | Verdict::Next | Verdict::Ahead { .. }
        );
        let publisher = body.publisher;
        self.accepted(&m, sources, out);
        if rebroadcast && new_head {
            out.push(Output::Broadcast {
                topic_of: publisher,
                data: m.envelope().bytes().to_vec(),
            });
        }
        out.push(Output::Record(m));
        true
    }

    /// Bookkeeping for an accepted manifest.
    fn accepted(&mut self, m: &VerifiedManifest, sources: Vec<P>, out: &mut Vec<Output<P>>) {
        let id = m.id();
        self.see(id);
        self.manifests.remove(&id);
        out.push(Output::Persist);
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_first();
        }
        let files = m
            .manifest()
            .entries
            .iter()
            .map(|e| (e.hash, e.size))
            .collect();
        self.pending.insert(id, Pending { sources, files });
    }

    /// A validly signed manifest whose `prev` is not the head it follows:
    /// the publisher's key signed two histories. That is no fault of the
    /// peer that passed it on (it fits that peer's history), so it is
    /// reported, not forwarded, and nobody is penalised.
    fn fork(&mut self, publisher: PublicKey, e: FeedError, out: &mut Vec<Output<P>>) {
        tracing::warn!(%publisher, error = %e, "a fork in a followed feed");
        self.feeds.report(publisher, e.to_string());
        out.push(Output::Conflict(Conflict {
            publisher,
            detail: e.to_string(),
        }));
    }

    fn equivocation(
        &mut self,
        from: P,
        publisher: PublicKey,
        e: FeedError,
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        tracing::warn!(%publisher, peer = ?from, error = %e, "an equivocation");
        self.feeds.report(publisher, e.to_string());
        out.push(Output::Conflict(Conflict {
            publisher,
            detail: e.to_string(),
        }));
        self.penalise(from, Offence::Equivocation(e), now, out);
    }

    fn want_manifest(&mut self, hash: Hash, from: P, claimed: Option<u64>, walk: u32, now: u64) {
        if self.seen.contains(&hash) {
            return;
        }
        if !self.manifests.contains_key(&hash) && self.manifests.len() >= MAX_MANIFEST_WANTS {
            return;
        }
        let w = self.manifests.entry(hash).or_insert_with(|| ManifestWant {
            candidates: Vec::new(),
            tried: BTreeSet::new(),
            claimed: BTreeMap::new(),
            asked: Vec::new(),
            last_ask: now,
            walk,
            since: now,
            // Looked up as soon as no candidate is left.
            next_lookup: now,
        });
        w.walk = w.walk.max(walk);
        if !w.candidates.contains(&from) && w.candidates.len() < MAX_CANDIDATES {
            w.candidates.push(from);
        }
        if let Some(seq) = claimed
            && w.claimed.len() < MAX_CANDIDATES
        {
            w.claimed.insert(from, seq);
        }
    }

    fn want_file(
        &mut self,
        hash: Hash,
        size: u64,
        sources: &[P],
        now: u64,
        out: &mut Vec<Output<P>>,
    ) {
        if self.files.contains_key(&hash) || self.files.len() >= MAX_FILE_WANTS {
            return;
        }
        self.order += 1;
        let known = self.holders.get(&hash).map_or(0, |h| h.len());
        let mut next_lookup = now;
        if known < self.config.lookup_below {
            out.push(Output::LookupProviders(hash));
            next_lookup = now + self.config.lookup_interval;
        }
        self.files.insert(
            hash,
            FileWant {
                size,
                sources: sources.iter().copied().take(MAX_CANDIDATES).collect(),
                tried: BTreeSet::new(),
                attempts: 0,
                state: FileState::Queued,
                order: self.order,
                next_lookup,
            },
        );
    }

    fn ask_heads(&mut self, p: P, now: u64, out: &mut Vec<Output<P>>) {
        if self.is_banned(&p, now)
            || self.heads_out.contains_key(&p)
            || self.heads_out.len() >= MAX_HEADS_OUT
        {
            return;
        }
        let publishers: Vec<PublicKey> = self.feeds.followed_keys().copied().collect();
        if publishers.is_empty() {
            return;
        }
        self.heads_out.insert(p, now + self.config.heads_timeout);
        out.push(Output::AskHeads {
            peer: p,
            publishers,
        });
    }

    /// Deadlines, the anti-entropy round, and starting what can start.
    fn tick(&mut self, now: u64, out: &mut Vec<Output<P>>) {
        self.last_now = now;
        // Heads requests that timed out.
        let late: Vec<P> = self
            .heads_out
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in late {
            self.heads_out.remove(&p);
            self.peer_mut(p).unanswered += 1;
        }
        self.round(now, out);
        self.dispatch_manifests(now, out);
        self.dispatch_files(now, out);
    }

    fn round(&mut self, now: u64, out: &mut Vec<Output<P>>) {
        let interval = self.config.heads_interval.max(1);
        let due = match self.next_round {
            None => {
                // Spread the nodes' rounds over the interval.
                self.next_round = Some(now + self.rng.below(interval));
                return;
            }
            Some(t) => t <= now,
        };
        if !due {
            return;
        }
        self.next_round = Some(now + interval);
        let mut eligible: Vec<(u32, P)> = self
            .peers
            .iter()
            .filter(|(p, i)| {
                i.connected && i.banned_until <= now && !self.heads_out.contains_key(p)
            })
            .map(|(p, i)| (i.unanswered.min(2), *p))
            .collect();
        self.rng.shuffle(&mut eligible);
        // Responsive peers first; random among equals.
        eligible.sort_by_key(|(u, _)| *u);
        let chosen: Vec<P> = eligible
            .into_iter()
            .take(self.config.heads_fanout)
            .map(|(_, p)| p)
            .collect();
        for p in &chosen {
            self.ask_heads(*p, now, out);
        }
        // Manifests a feed skipped over (a walk that found nobody holding
        // them then): asked of this round's peers, which may hold them now.
        let gaps: Vec<Hash> = self
            .feeds
            .trust()
            .feeds()
            .filter(|(p, _, _)| self.feeds.follows(p))
            .flat_map(|(_, _, h)| h.gaps().map(|(_, id)| id).collect::<Vec<_>>())
            .filter(|id| !self.seen.contains(id))
            .take(MAX_GAPS)
            .collect();
        for id in gaps {
            for p in &chosen {
                self.want_manifest(id, *p, None, MAX_WALK, now);
                if let Some(w) = self.manifests.get_mut(&id) {
                    w.tried.remove(p);
                }
            }
        }
    }

    fn dispatch_manifests(&mut self, now: u64, out: &mut Vec<Output<P>>) {
        let mut offences = Vec::new();
        let mut gone = Vec::new();
        for (hash, w) in self.manifests.iter_mut() {
            // Unresponsive: try another. A peer that claimed the head and
            // cannot deliver it lied.
            for (p, _) in w.asked.iter().filter(|(_, d)| *d <= now) {
                w.tried.insert(*p);
                if let Some(seq) = w.claimed.remove(p) {
                    offences.push((*p, Offence::LyingHead { seq }));
                }
                if let Some(i) = self.peers.get_mut(p) {
                    i.unanswered += 1;
                }
            }
            w.asked.retain(|(_, d)| *d > now);
            let hedge = w.asked.len() < MAX_ASKS && now >= w.last_ask + self.config.manifest_hedge;
            if !w.asked.is_empty() && !hedge {
                continue;
            }
            let peers = &self.peers;
            let score = |p: &P| {
                let i = peers.get(p).copied().unwrap_or_default();
                // A peer that let a request time out is asked after any
                // other, even one that must be dialled first.
                (
                    i.banned_until > now,
                    i.unanswered > 0,
                    i.strikes,
                    !i.connected,
                )
            };
            let next = w
                .candidates
                .iter()
                .filter(|c| {
                    !w.tried.contains(c)
                        && !w.asked.iter().any(|(a, _)| a == *c)
                        && !offences.iter().any(|(o, _)| o == *c)
                })
                .min_by_key(|c| score(c))
                .copied()
                .filter(|c| !score(c).0);
            match next {
                Some(p) => {
                    w.asked.push((p, now + self.config.manifest_timeout));
                    w.last_ask = now;
                    out.push(Output::FetchManifest {
                        peer: p,
                        hash: *hash,
                    });
                }
                None if !w.asked.is_empty() => {
                    // No one else to hedge with: look for more holders.
                    if now >= w.next_lookup {
                        w.next_lookup = now + self.config.lookup_interval;
                        out.push(Output::LookupProviders(*hash));
                    }
                }
                None => {
                    if now >= w.since + self.config.manifest_give_up {
                        gone.push(*hash);
                    } else if now >= w.next_lookup {
                        w.next_lookup = now + self.config.lookup_interval;
                        out.push(Output::LookupProviders(*hash));
                    }
                }
            }
        }
        for h in gone {
            self.manifests.remove(&h);
        }
        for (p, o) in offences {
            self.penalise(p, o, now, out);
        }
    }

    fn dispatch_files(&mut self, now: u64, out: &mut Vec<Output<P>>) {
        let mut fetching = 0;
        let mut gone = Vec::new();
        for (hash, w) in self.files.iter_mut() {
            match w.state {
                FileState::Fetching { deadline } if deadline <= now => {
                    w.attempts += 1;
                    w.state = FileState::Queued;
                }
                FileState::Fetching { .. } => fetching += 1,
                FileState::Waiting { until } if until <= now => {
                    w.state = FileState::Queued;
                }
                _ => {}
            }
            if w.attempts >= self.config.max_file_attempts {
                gone.push(*hash);
            }
        }
        for h in gone {
            self.files.remove(&h);
        }
        if fetching >= self.config.max_fetches {
            return;
        }
        // Rarest first among the files that can start: fewest known
        // holders, files with none known (only their announcer) last.
        let mut ready: Vec<(bool, usize, u64, Hash)> = Vec::new();
        let mut lookups = Vec::new();
        for (hash, w) in &self.files {
            if w.state != FileState::Queued {
                continue;
            }
            let holders = self.holders.get(hash);
            let untried = |p: &P| !w.tried.contains(p) && !self.banned_at(p, now);
            let n = holders.map_or(0, |h| h.iter().filter(|p| untried(p)).count());
            let any = n > 0 || w.sources.iter().any(untried);
            if any {
                ready.push((n == 0, n, w.order, *hash));
            } else if now >= w.next_lookup {
                lookups.push(*hash);
            }
        }
        ready.sort();
        for (_, _, _, hash) in ready.into_iter().take(self.config.max_fetches - fetching) {
            let providers = self.providers(&hash, now);
            let deadline = now + self.config.file_timeout;
            let Some(w) = self.files.get_mut(&hash) else {
                continue;
            };
            w.state = FileState::Fetching { deadline };
            out.push(Output::FetchFile {
                hash,
                size: w.size,
                providers,
            });
        }
        for hash in lookups {
            if let Some(w) = self.files.get_mut(&hash) {
                w.next_lookup = now + self.config.lookup_interval;
                // All tried: the next round may ask them again.
                w.tried.clear();
            }
            out.push(Output::LookupProviders(hash));
        }
    }

    /// Whom to fetch a file from: untried known holders, connected ones,
    /// those that did not announce the article to us and those with a clean
    /// record first, random among equals (so the load spreads); then where
    /// its manifest came from.
    fn providers(&mut self, hash: &Hash, now: u64) -> Vec<P> {
        let Some(w) = self.files.get(hash) else {
            return Vec::new();
        };
        let usable = |p: &P| !w.tried.contains(p) && !self.banned_at(p, now);
        let mut holders: Vec<P> = self
            .holders
            .get(hash)
            .map(|h| h.iter().copied().filter(usable).collect())
            .unwrap_or_default();
        let sources: Vec<P> = w
            .sources
            .iter()
            .copied()
            .filter(|p| usable(p) && !holders.contains(p))
            .collect();
        self.rng.shuffle(&mut holders);
        let peers = &self.peers;
        // The announcer is asked by everyone first: spare it.
        holders.sort_by_key(|p| {
            let i = peers.get(p).copied().unwrap_or_default();
            (!i.connected, w.sources.contains(p), i.strikes)
        });
        holders.extend(sources);
        holders.truncate(MAX_PROVIDERS);
        holders
    }

    // ---- bookkeeping ----

    /// A manifest delivered that the feed rules accept: one strike
    /// forgiven, so that an honest peer's losses and restarts do not add up
    /// to a ban over time. (A heads answer proves nothing: a liar answers.)
    fn forgive(&mut self, p: P) {
        if let Some(i) = self.peers.get_mut(&p) {
            i.strikes = i.strikes.saturating_sub(1);
        }
    }

    /// Remembers an object refused, so that it costs no second check.
    fn refuse(&mut self, id: Hash) {
        if self.refused.insert(id) {
            self.refused_order.push_back(id);
            if self.refused_order.len() > MAX_REFUSED
                && let Some(old) = self.refused_order.pop_front()
            {
                self.refused.remove(&old);
            }
        }
    }

    fn banned_at(&self, p: &P, now: u64) -> bool {
        self.peers.get(p).is_some_and(|i| i.banned_until > now)
    }

    fn penalise(&mut self, peer: P, offence: Offence, now: u64, out: &mut Vec<Output<P>>) {
        let strikes = self.config.ban_strikes;
        let ban_for = self.config.ban_for;
        // One strike each, an equivocation too: an honest peer deceived by
        // a stolen key (it took the fake first) forwards one in good faith.
        let weight = 1;
        tracing::debug!(?peer, %offence, "penalised");
        let i = self.peer_mut(peer);
        i.strikes = i.strikes.saturating_add(weight);
        if i.strikes >= strikes {
            i.banned_until = now + ban_for;
        }
        out.push(Output::Penalise { peer, offence });
    }

    fn peer_mut(&mut self, p: P) -> &mut Peer {
        if !self.peers.contains_key(&p) && self.peers.len() >= MAX_PEERS {
            // Forget a disconnected peer with a clean record, else any
            // disconnected one.
            let victim = self
                .peers
                .iter()
                .filter(|(_, i)| !i.connected)
                .min_by_key(|(_, i)| i.strikes)
                .map(|(p, _)| *p);
            if let Some(v) = victim {
                self.peers.remove(&v);
            } else {
                self.peers.pop_first();
            }
        }
        self.peers.entry(p).or_default()
    }

    fn add_holder(&mut self, hash: Hash, p: P) {
        if !self.holders.contains_key(&hash) && self.holders.len() >= MAX_TRACKED_BLOBS {
            // Prefer forgetting a blob nothing waits on.
            let victim = self
                .holders
                .keys()
                .find(|h| !self.files.contains_key(*h) && !self.manifests.contains_key(*h))
                .copied();
            match victim {
                Some(v) => {
                    self.holders.remove(&v);
                }
                None => return,
            }
        }
        let peers = &self.peers;
        let set = self.holders.entry(hash).or_default();
        if set.len() >= MAX_HOLDERS && !set.contains(&p) {
            // Full: a holder that is gone, or has a record, makes room, so
            // that claims made once (or by liars) do not crowd out the
            // holders found since.
            let victim = set
                .iter()
                .max_by_key(|h| {
                    let i = peers.get(h).copied().unwrap_or_default();
                    (!i.connected, i.strikes, i.unanswered)
                })
                .copied();
            if let Some(v) = victim {
                set.remove(&v);
            }
        }
        if set.len() < MAX_HOLDERS {
            set.insert(p);
        }
    }

    fn see(&mut self, id: Hash) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            if self.seen_order.len() > MAX_SEEN
                && let Some(old) = self.seen_order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
    }
}
