//! Replication: the node's driver of the I/O-less core
//! ([`tamizdat_feed::Sync`]). The core decides what to accept, forward,
//! fetch, ask and announce; this task feeds it the swarm's events and the
//! results of the I/O it asked for, and carries out its outputs: gossip
//! validation, heads requests (revocations first), manifest and file
//! fetches, DHT lookups and announcements, recording in the store.
//!
//! It owns the feed state. After each change it replaces the snapshot the
//! [`Client`] reads (`Client::trust`, `following`, `conflicts`, the heads
//! and revocations served to peers) and persists it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol, gossipsub::MessageAcceptance};
use tamizdat_feed::{Acceptance, Input, MsgId, Offence, Output};
use tamizdat_sign::{Digest, MAX_MANIFEST_LEN, PublicKey, Revocation, Signed, VerifiedManifest};
use tamizdat_store::{Hash, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::{
    feeds::{self, Feeds},
    have::{self, Have, MAX_HAVE},
    node::Client,
    retention::Policy,
};

pub use tamizdat_feed::Head;

/// Feed heads exchanged when peers meet.
pub(crate) const HEADS: StreamProtocol = StreamProtocol::new("/tamizdat/heads/1");
/// Revocation ids exchanged when peers meet, before their heads.
pub(crate) const REVOCATIONS: StreamProtocol = StreamProtocol::new("/tamizdat/revocations/1");
/// Revocation ids in one answer.
const MAX_REVOCATION_IDS: usize = 1024;
/// Largest revocation envelope fetched.
const MAX_REVOCATION_LEN: u64 = 4096;
/// Publishers asked about in one heads request.
const MAX_ASKED: usize = 256;
/// Heads in one answer.
const MAX_HEADS: usize = 1024;
/// Largest heads message.
const MAX_HEADS_BYTES: usize = 256 * 1024;
/// Publishers' cards newer than the asker's, exchanged when peers meet.
pub(crate) const CARDS: StreamProtocol = StreamProtocol::new("/tamizdat/cards/1");
/// Cards in one answer (a few newer ones at a time: the next exchange
/// brings the rest).
const MAX_CARDS_ANSWER: usize = 16;
/// How long a heads or revocations request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often recorded articles are checked for missing files.
const REPAIR_EVERY: Duration = Duration::from_secs(600);
/// Results of I/O waiting for the replication task.
const RESULTS: usize = 1024;
/// Gossip messages awaiting the core's validation, remembered by id.
const MAX_VALIDATING: usize = 4096;
/// Files remembered with the feed pins that want them.
const MAX_PINNED_WANTS: usize = 100_000;

/// A manifest kept under a feed pin.
#[derive(Debug)]
pub struct Recorded {
    /// The feed pin holding it.
    pub pin: String,
    /// Its id.
    pub id: Hash,
    /// The manifest.
    pub manifest: Signed<tamizdat_sign::Manifest>,
}

/// The manifests kept under pins whose names start with `prefix` (`"feed/"`
/// for every feed). Other blobs under those pins (the files) are skipped.
pub fn recorded(store: &Store, prefix: &str) -> Result<Vec<Recorded>, String> {
    let mut out = Vec::new();
    for (pin, hashes) in store.pins().map_err(|e| e.to_string())? {
        if !pin.starts_with(prefix) {
            continue;
        }
        for id in hashes {
            let small = store
                .info_without_pins(&id)
                .map_err(|e| e.to_string())?
                .is_some_and(|i| i.complete && i.size <= MAX_MANIFEST_LEN as u64);
            if !small {
                continue;
            }
            let Ok(bytes) = store.read_to_vec(&id) else {
                continue;
            };
            if let Ok(manifest) = Signed::<tamizdat_sign::Manifest>::decode(&bytes) {
                out.push(Recorded {
                    pin: pin.clone(),
                    id,
                    manifest,
                });
            }
        }
    }
    Ok(out)
}

/// A recorded article with files that are not complete here.
#[derive(Debug)]
struct Unfinished {
    manifest: Hash,
    pin: String,
    missing: Vec<(Hash, u64)>,
}

/// The files of recorded articles that are not complete here, by article.
fn unfinished(store: &Store) -> Result<(Vec<Unfinished>, Vec<Hash>), String> {
    let mut out = Vec::new();
    let mut held = Vec::new();
    for r in recorded(store, "feed/")? {
        held.push(r.id);
        let mut missing = Vec::new();
        for e in &r.manifest.body().entries {
            let hash = Hash::from_bytes(e.hash);
            let complete = store
                .info_without_pins(&hash)
                .map_err(|e| e.to_string())?
                .is_some_and(|i| i.complete);
            if !complete {
                missing.push((hash, e.size));
            }
        }
        if !missing.is_empty() {
            out.push(Unfinished {
                manifest: r.id,
                pin: r.pin,
                missing,
            });
        }
    }
    Ok((out, held))
}

pub(crate) fn now() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Saves the trust state and follow list (call after changing them).
pub(crate) fn persist(store: &Store, feeds: &Mutex<Feeds>) -> Result<(), String> {
    let (trust, follows) = {
        let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
        (f.trust().encode(), f.encode_follows())
    };
    store
        .state_put(feeds::TRUST, &trust)
        .and_then(|()| store.state_put(feeds::FOLLOWS, &follows))
        .map_err(|e| e.to_string())
}

/// What the swarm task and the [`Client`] hand to replication.
#[derive(Debug)]
pub(crate) enum Event {
    /// A gossip message to judge.
    Gossip {
        /// Who forwarded it.
        source: PeerId,
        /// Gossipsub's id for it (our content hash).
        id: libp2p::gossipsub::MessageId,
        /// The topic it came on.
        topic: String,
        /// The envelope.
        data: Vec<u8>,
    },
    /// A first connection to a peer: exchange heads.
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
    /// A peer says it holds these blobs now.
    Have { from: PeerId, hashes: Vec<Digest> },
    /// Follow a publisher; true if it was not followed.
    Follow {
        key: PublicKey,
        name: Option<String>,
        policy: Policy,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Stop following; true if it was followed.
    Unfollow {
        key: PublicKey,
        reply: oneshot::Sender<bool>,
    },
    /// Replace the trust state (a command restored or changed it).
    SetTrust {
        trust: Box<tamizdat_sign::TrustState>,
        reply: oneshot::Sender<()>,
    },
    /// Apply a revocation made or imported here, followed or not.
    Revoke {
        rev: Box<Signed<Revocation>>,
        reply: oneshot::Sender<()>,
    },
    /// Judge, record and announce a manifest published here; answered
    /// once it is recorded.
    Publish {
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Ask every peer for its heads now and answer, once what they claim is
    /// proven (or at `deadline_ms`), with the heads of `publisher` known here.
    LearnHeads {
        publisher: PublicKey,
        deadline_ms: u64,
        reply: oneshot::Sender<LearnedHeads>,
    },
}

/// What asking every peer for a feed's heads found (see
/// [`crate::Client::learn_heads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LearnedHeads {
    /// The publisher's feeds as known here afterwards: only heads whose
    /// signed manifests were fetched and accepted.
    pub heads: Vec<tamizdat_feed::Head>,
    /// Peers asked.
    pub asked: usize,
    /// Whether every peer asked answered (or gave up) before the deadline.
    pub settled: bool,
}

/// A [`Event::LearnHeads`] waiting for its answer.
struct HeadsWaiter {
    publisher: PublicKey,
    deadline_ms: u64,
    asked: usize,
    reply: oneshot::Sender<LearnedHeads>,
}

/// What the I/O the core asked for came back with.
#[derive(Debug)]
enum Done {
    /// An input for the core.
    Input(Input<PeerId>),
    /// A revocation a peer offered in a heads exchange, fetched and read.
    Revocation { from: PeerId, bytes: Vec<u8> },
    /// The repair pass: articles with files missing, manifests held.
    Repair(Vec<Unfinished>, Vec<Hash>),
}

struct Driver {
    client: Client,
    core: tamizdat_feed::Sync<PeerId>,
    /// The snapshot others read.
    mirror: Arc<Mutex<Feeds>>,
    results: mpsc::Sender<Done>,
    /// Gossip messages handed to the core, by id: who sent each.
    validating: HashMap<MsgId, PeerId>,
    /// Files wanted, with the feed pins that keep them.
    pins: HashMap<Hash, Vec<String>>,
    /// The feed state changed since it was last saved.
    dirty: bool,
    /// Publishers waiting to learn their feeds' heads.
    waiters: Vec<HeadsWaiter>,
}

/// The replication task: builds the core over the feed state the node
/// loaded and drives it until the node stops.
pub(crate) async fn run(client: Client, feeds: Feeds, mut events: mpsc::Receiver<Event>) {
    let seed = u64::from_le_bytes(
        blake3::hash(&client.peer_id().to_bytes()).as_bytes()[..8]
            .try_into()
            .unwrap_or_default(),
    );
    let (results, mut done) = mpsc::channel(RESULTS);
    let config = tamizdat_feed::Config {
        // A heads exchange asks for revocation ids (and fetches those it
        // lacks) before the heads themselves.
        heads_timeout: 2 * ASK_TIMEOUT.as_millis() as u64,
        ..Default::default()
    };
    let mut d = Driver {
        mirror: client.feeds().clone(),
        core: tamizdat_feed::Sync::new(feeds, config, seed),
        client,
        results,
        validating: HashMap::new(),
        pins: HashMap::new(),
        dirty: false,
        waiters: Vec::new(),
    };
    // Files of recorded articles still missing (a restart mid-replication,
    // or attempts given up): looked for at start and then now and again.
    {
        let (client, tx) = (d.client.clone(), d.results.clone());
        tokio::spawn(async move {
            loop {
                let store = client.store().clone();
                if let Ok(Ok((todo, held))) =
                    tokio::task::spawn_blocking(move || unfinished(&store)).await
                {
                    if !todo.is_empty() {
                        info!(articles = todo.len(), "resuming files of recorded articles");
                    }
                    if tx.send(Done::Repair(todo, held)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(REPAIR_EVERY) => {}
                    () = tx.closed() => return,
                }
            }
        });
    }
    loop {
        let next = d
            .waiters
            .iter()
            .map(|w| w.deadline_ms)
            .chain(d.core.next_timer())
            .min();
        let wake = next.map(|at| {
            tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now_ms()))
        });
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            () = timer => d.input(Input::Timer).await,
            ev = events.recv() => match ev {
                None => break,
                Some(ev) => d.event(ev).await,
            },
            Some(r) = done.recv() => d.done(r).await,
            // The node stopped: its tasks (and their clients) let go.
            () = d.client.stopped() => break,
        }
        d.save().await;
        d.answer_waiters();
    }
}

impl Driver {
    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Gossip {
                source,
                id,
                topic,
                data,
            } => {
                let Some(publisher) = topic
                    .strip_prefix("tamizdat/feed/1/")
                    .and_then(|k| k.parse::<PublicKey>().ok())
                else {
                    self.client
                        .validate(id, source, MessageAcceptance::Reject)
                        .await;
                    return;
                };
                let id = MsgId(id.0);
                if self.validating.len() >= MAX_VALIDATING {
                    self.validating.clear();
                }
                self.validating.insert(id.clone(), source);
                self.input(Input::Gossip {
                    from: source,
                    id,
                    topic_of: publisher,
                    data,
                })
                .await;
            }
            Event::Connected(peer) => self.input(Input::PeerUp(peer)).await,
            Event::Disconnected(peer) => self.input(Input::PeerDown(peer)).await,
            Event::Have { from, hashes } => {
                for hash in hashes {
                    self.input(Input::Have { from, hash }).await;
                }
            }
            Event::Follow {
                key,
                name,
                policy,
                reply,
            } => {
                let r = self
                    .core
                    .follow(key, name, policy)
                    .map_err(|e| e.to_string());
                self.changed();
                let _ = reply.send(r);
                self.input(Input::Timer).await;
            }
            Event::Unfollow { key, reply } => {
                let was = self.core.unfollow(&key);
                self.changed();
                let _ = reply.send(was);
            }
            Event::SetTrust { trust, reply } => {
                self.core.feeds_mut().set_trust(*trust);
                self.changed();
                let _ = reply.send(());
            }
            Event::Revoke { rev, reply } => {
                if self.core.feeds_mut().revoke(&rev) {
                    self.changed();
                }
                let _ = reply.send(());
            }
            Event::LearnHeads {
                publisher,
                deadline_ms,
                reply,
            } => {
                const MAX_WAITERS: usize = 64;
                if self.waiters.len() >= MAX_WAITERS {
                    // Answered at once with what is known.
                    let _ = reply.send(LearnedHeads {
                        heads: self.core.heads(&[publisher]),
                        asked: 0,
                        settled: false,
                    });
                    return;
                }
                let (asked, outputs) = self.core.ask_every_peer(now_ms());
                self.carry_out(outputs).await;
                self.waiters.push(HeadsWaiter {
                    publisher,
                    deadline_ms,
                    asked,
                    reply,
                });
            }
            Event::Publish { envelope, reply } => match self.core.publish(envelope, now_ms()) {
                Ok(outputs) => {
                    self.carry_out(outputs).await;
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.to_string()));
                }
            },
        }
    }

    /// Answers the publishers whose peers have all answered, or whose
    /// deadline passed.
    fn answer_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let (now, settled) = (now_ms(), self.core.is_settled());
        let waiting = std::mem::take(&mut self.waiters);
        for w in waiting {
            if settled || now >= w.deadline_ms || w.reply.is_closed() {
                let _ = w.reply.send(LearnedHeads {
                    heads: self.core.heads(&[w.publisher]),
                    asked: w.asked,
                    settled,
                });
            } else {
                self.waiters.push(w);
            }
        }
    }

    async fn done(&mut self, r: Done) {
        match r {
            Done::Input(input) => self.input(input).await,
            Done::Revocation { from, bytes } => {
                // Judged by the core like one made here; a forged one
                // marks the peer that offered it.
                match self.core.publish(bytes, now_ms()) {
                    Ok(outputs) => self.carry_out(outputs).await,
                    Err(tamizdat_feed::PublishError::Refused(why)) => {
                        warn!(peer = %from, "offered a refused revocation: {why}");
                        self.client.mark_bad(from);
                    }
                    Err(_) => {}
                }
            }
            Done::Repair(todo, held) => {
                self.core.remember(held.iter().map(|h| *h.as_bytes()));
                for u in todo {
                    for (h, _) in &u.missing {
                        self.want_pin(*h, &u.pin);
                    }
                    let missing = u.missing.iter().map(|(h, s)| (*h.as_bytes(), *s)).collect();
                    self.input(Input::Stored {
                        manifest: *u.manifest.as_bytes(),
                        missing,
                    })
                    .await;
                }
            }
        }
    }

    /// One input for the core, and everything that follows from it.
    async fn input(&mut self, input: Input<PeerId>) {
        let fetched = match &input {
            Input::Manifest { hash, .. } => Some(Hash::from_bytes(*hash)),
            _ => None,
        };
        let outputs = self.core.handle(input, now_ms());
        // A manifest fetched for the core and not taken is not kept.
        if let Some(hash) = fetched
            && !outputs
                .iter()
                .any(|o| matches!(o, Output::Record(m) if m.id() == *hash.as_bytes()))
        {
            discard(&self.client, hash).await;
        }
        self.carry_out(outputs).await;
    }

    /// Carries out the core's outputs, and those that recording them
    /// brings (a recorded manifest names the files to fetch).
    async fn carry_out(&mut self, outputs: Vec<Output<PeerId>>) {
        let mut queue: VecDeque<Output<PeerId>> = outputs.into();
        let mut have: Vec<Have> = Vec::new();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Validate { id, acceptance } => {
                    if let Some(source) = self.validating.remove(&id) {
                        let acceptance = match acceptance {
                            Acceptance::Accept => MessageAcceptance::Accept,
                            Acceptance::Ignore => MessageAcceptance::Ignore,
                            Acceptance::Reject => MessageAcceptance::Reject,
                        };
                        let id = libp2p::gossipsub::MessageId(id.0);
                        self.client.validate(id, source, acceptance).await;
                    }
                }
                Output::Broadcast { topic_of, data } => {
                    if let Err(e) = self.client.gossip(feeds::topic(&topic_of), data).await {
                        debug!("gossip: {e}");
                    }
                }
                Output::AskHeads { peer, publishers } => {
                    let (client, tx) = (self.client.clone(), self.results.clone());
                    let limit = Duration::from_millis(self.core.config().heads_timeout);
                    tokio::spawn(async move {
                        let exchanged = exchange(&client, peer, &publishers, &tx);
                        let done = tokio::time::timeout(limit, exchanged)
                            .await
                            .unwrap_or(Input::HeadsFailed { from: peer });
                        let _ = tx.send(Done::Input(done)).await;
                    });
                }
                Output::FetchManifest { peer, hash } => {
                    let (client, tx) = (self.client.clone(), self.results.clone());
                    // The core asks someone else after this long: no use
                    // going on beyond it.
                    let limit = Duration::from_millis(self.core.config().manifest_timeout);
                    tokio::spawn(async move {
                        let fetched = fetch_manifest(&client, Hash::from_bytes(hash), peer);
                        let fetched = tokio::time::timeout(limit, fetched)
                            .await
                            .unwrap_or_else(|_| Err("timed out".into()));
                        let input = match fetched {
                            Ok(bytes) => Input::Manifest {
                                from: peer,
                                hash,
                                bytes,
                            },
                            Err(e) => {
                                debug!(%peer, "manifest: {e}");
                                Input::ManifestFailed { from: peer, hash }
                            }
                        };
                        let _ = tx.send(Done::Input(input)).await;
                    });
                }
                Output::Record(m) => {
                    let more = self.record(m).await;
                    queue.extend(more);
                }
                Output::FetchFile {
                    hash,
                    size: _,
                    providers,
                } => {
                    let (client, tx) = (self.client.clone(), self.results.clone());
                    let hash = Hash::from_bytes(hash);
                    let pins = self.pins.get(&hash).cloned().unwrap_or_default();
                    let limit = Duration::from_millis(self.core.config().file_timeout);
                    tokio::spawn(async move {
                        let tried = providers.clone();
                        let fetched = fetch_file(&client, hash, providers, pins);
                        let input = tokio::time::timeout(limit, fetched).await.unwrap_or(
                            Input::FileFailed {
                                hash: *hash.as_bytes(),
                                tried,
                                bad: Vec::new(),
                            },
                        );
                        let _ = tx.send(Done::Input(input)).await;
                    });
                }
                Output::LookupProviders(hash) => {
                    let (client, tx) = (self.client.clone(), self.results.clone());
                    tokio::spawn(async move {
                        let peers: Vec<PeerId> = client
                            .providers(Hash::from_bytes(hash))
                            .await
                            .map(|p| p.into_iter().collect())
                            .unwrap_or_default();
                        // A fetch of it under way asks them too.
                        for p in &peers {
                            client.holders().note(Hash::from_bytes(hash), *p, None);
                        }
                        let _ = tx.send(Done::Input(Input::Providers { hash, peers })).await;
                    });
                }
                Output::Announce(raw) => {
                    let hash = Hash::from_bytes(raw);
                    self.pins.remove(&hash);
                    self.client.announce(hash).await;
                    self.client.holders().forget(&hash);
                    if have.len() < MAX_HAVE {
                        have.push(Have {
                            hash: raw,
                            held: None,
                        });
                    }
                }
                Output::Persist => self.changed(),
                Output::Keep(bytes) => {
                    let store = self.client.store().clone();
                    let kept = tokio::task::spawn_blocking(move || {
                        let added = store.add_bytes(&bytes).map_err(|e| e.to_string())?;
                        store.pin("keys", &added.hash).map_err(|e| e.to_string())
                    })
                    .await;
                    if !matches!(kept, Ok(Ok(()))) {
                        warn!("could not keep a revocation");
                    } else {
                        info!("applied a revocation");
                    }
                }
                Output::KeepCard { card, replaces } => {
                    self.changed();
                    let store = self.client.store().clone();
                    let (name, addrs) = (card.body().name.clone(), card.body().addrs.clone());
                    let kept = tokio::task::spawn_blocking(move || {
                        tamizdat_feed::cards::keep(&store, &card, replaces.as_deref())
                    })
                    .await;
                    match kept {
                        Ok(Ok(_)) => info!(outlet = %name, "took a newer card"),
                        _ => warn!(outlet = %name, "could not keep a card"),
                    }
                    // Its addresses are where the outlet says it can be
                    // reached now: tried at once, in the background.
                    let me = self.client.peer_id();
                    for a in addrs.iter().take(tamizdat_sign::MAX_CARD_ADDRS) {
                        if let Ok(addr) = a.parse::<libp2p::Multiaddr>()
                            && !addr
                                .iter()
                                .any(|p| p == libp2p::multiaddr::Protocol::P2p(me))
                        {
                            let client = self.client.clone();
                            tokio::spawn(async move {
                                if let Err(e) = client.dial(addr.clone()).await {
                                    debug!(%addr, "card address: {e}");
                                }
                            });
                        }
                    }
                }
                Output::Penalise { peer, offence } => {
                    debug!(%peer, "penalised: {offence}");
                    if matches!(
                        offence,
                        Offence::BadData
                            | Offence::NotACard
                            | Offence::WrongHash
                            | Offence::Refused(_)
                            | Offence::Equivocation(_)
                    ) {
                        self.client.mark_bad(peer);
                    }
                }
                Output::Conflict(c) => {
                    warn!(publisher = %c.publisher.fingerprint(), "EQUIVOCATION: {}", c.detail);
                    self.changed();
                }
                _ => {}
            }
        }
        have::tell(&self.client, have);
    }

    /// Stores and pins an accepted manifest, applies the publisher's quota
    /// and retention, and tells the core which files are missing.
    async fn record(&mut self, m: Box<VerifiedManifest>) -> Vec<Output<PeerId>> {
        self.changed();
        self.save().await;
        let store = self.client.store().clone();
        let policy = self
            .core
            .feeds()
            .policy(&m.manifest().publisher)
            .unwrap_or_default();
        let done = tokio::task::spawn_blocking(move || record(&store, &m, &policy)).await;
        match done {
            Ok(Ok((id, pin, missing, m))) => {
                let body = m.manifest();
                info!(
                    publisher = %body.publisher.fingerprint(),
                    feed = %body.feed,
                    seq = body.seq,
                    files = body.entries.len(),
                    "accepted a manifest"
                );
                for (h, _) in &missing {
                    self.want_pin(*h, &pin);
                }
                let missing = missing.iter().map(|(h, s)| (*h.as_bytes(), *s)).collect();
                self.core.handle(
                    Input::Stored {
                        manifest: *id.as_bytes(),
                        missing,
                    },
                    now_ms(),
                )
            }
            Ok(Err(e)) => {
                warn!("recording a manifest: {e}");
                Vec::new()
            }
            Err(e) => {
                warn!("recording a manifest: {e}");
                Vec::new()
            }
        }
    }

    fn want_pin(&mut self, hash: Hash, pin: &str) {
        if self.pins.len() >= MAX_PINNED_WANTS && !self.pins.contains_key(&hash) {
            return;
        }
        let pins = self.pins.entry(hash).or_default();
        if !pins.iter().any(|p| p == pin) && pins.len() < 16 {
            pins.push(pin.to_owned());
        }
    }

    /// The feed state changed: the snapshot others read is replaced now,
    /// and the state saved after this round of work.
    fn changed(&mut self) {
        *self.mirror.lock().unwrap_or_else(|p| p.into_inner()) = self.core.feeds().snapshot();
        self.dirty = true;
    }

    async fn save(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let (store, mirror) = (self.client.store().clone(), self.mirror.clone());
        match tokio::task::spawn_blocking(move || persist(&store, &mirror)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("saving the feed state: {e}"),
            Err(e) => warn!("saving the feed state: {e}"),
        }
    }
}

/// The article's manifest stored and pinned under its feed pin, the
/// publisher's quota and retention applied (with room for what is about to
/// be fetched; the new article may itself be the one let go), and its
/// files not complete here, none if it was let go.
#[allow(clippy::type_complexity)]
fn record(
    store: &Store,
    m: &VerifiedManifest,
    policy: &Policy,
) -> Result<(Hash, String, Vec<(Hash, u64)>, Box<VerifiedManifest>), String> {
    let pin = feeds::feed_pin(m.manifest());
    let added = store
        .add_bytes(m.envelope().bytes())
        .map_err(|e| e.to_string())?;
    store.pin(&pin, &added.hash).map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    for e in &m.manifest().entries {
        let hash = Hash::from_bytes(e.hash);
        let complete = store
            .info_without_pins(&hash)
            .map_err(|e| e.to_string())?
            .is_some_and(|i| i.complete);
        if complete {
            store.pin(&pin, &hash).map_err(|e| e.to_string())?;
        } else if !missing.iter().any(|(h, _)| *h == hash) {
            missing.push((hash, e.size));
        }
    }
    let incoming = missing.iter().map(|(_, s)| s).sum();
    let dropped =
        crate::retention::enforce(store, &m.manifest().publisher, policy, incoming, now())?;
    if dropped > 0 {
        info!(dropped, "articles let go under the publisher's quota");
    }
    let kept = store
        .info(&added.hash)
        .map_err(|e| e.to_string())?
        .is_some_and(|i| !i.pins.is_empty());
    if !kept {
        missing.clear();
    }
    Ok((added.hash, pin, missing, Box::new(m.clone())))
}

/// Fetches a file for the core and pins it under the feed pins that want it.
async fn fetch_file(
    client: &Client,
    hash: Hash,
    providers: Vec<PeerId>,
    pins: Vec<String>,
) -> Input<PeerId> {
    debug!(%hash, ?providers, "replicating");
    match client.fetch_replica(hash, &providers).await {
        Ok(fetched) => {
            let store = client.store().clone();
            let pinned = tokio::task::spawn_blocking(move || {
                pins.iter().try_for_each(|p| store.pin(p, &hash))
            })
            .await;
            if !matches!(pinned, Ok(Ok(()))) {
                warn!(%hash, "replicated but could not pin");
            }
            Input::FileDone {
                hash: *hash.as_bytes(),
                from: fetched.providers,
            }
        }
        Err(e) => {
            debug!(%hash, "replication fetch failed: {e}");
            let bad = client.bad_peers();
            Input::FileFailed {
                hash: *hash.as_bytes(),
                bad: providers
                    .iter()
                    .copied()
                    .filter(|p| bad.contains(p))
                    .collect(),
                tried: providers,
            }
        }
    }
}

/// A heads exchange with `peer`: the revocations it knows that we lack
/// first (handed to the core before its heads, so that an article signed
/// by a key revoked while we were away is not accepted on the way) and its
/// newer cards, then its heads.
async fn exchange(
    client: &Client,
    peer: PeerId,
    asked: &[PublicKey],
    tx: &mpsc::Sender<Done>,
) -> Input<PeerId> {
    let asked: Vec<PublicKey> = asked.iter().take(MAX_ASKED).copied().collect();
    // Cards beside the revocations: the exchange takes no longer.
    tokio::join!(
        catch_up_revocations(client, peer, &asked, tx),
        catch_up_cards(client, peer, &asked, tx)
    );
    match ask::<Vec<Head>>(client, peer, HEADS, &asked).await {
        Ok(heads) if heads.len() <= MAX_HEADS => Input::Heads { from: peer, heads },
        Ok(_) => Input::HeadsFailed { from: peer },
        Err(e) => {
            debug!(%peer, "heads: {e}");
            Input::HeadsFailed { from: peer }
        }
    }
}

/// Asks `peer` which revocations it holds for the publishers we follow, and
/// fetches those we lack for the core to judge.
async fn catch_up_revocations(
    client: &Client,
    peer: PeerId,
    asked: &[PublicKey],
    tx: &mpsc::Sender<Done>,
) {
    // A peer that does not answer (or not this protocol) still has its
    // heads asked for.
    let ids: Vec<Digest> = match ask(client, peer, REVOCATIONS, asked).await {
        Ok(ids) => ids,
        Err(e) => {
            debug!(%peer, "revocations: {e}");
            return;
        }
    };
    if ids.len() > MAX_REVOCATION_IDS {
        debug!(%peer, "revocations: too many ids");
        return;
    }
    let trust = client.trust();
    let known = |id: &Digest| {
        asked
            .iter()
            .any(|r| trust.revocations_of(r).any(|k| k == id))
    };
    for id in ids.iter().filter(|id| !known(id)) {
        let hash = Hash::from_bytes(*id);
        if let Err(e) = client
            .fetch_bounded(hash, &[peer], MAX_REVOCATION_LEN)
            .await
        {
            debug!(%peer, "revocation {hash}: {e}");
            continue;
        }
        let store = client.store().clone();
        let read = tokio::task::spawn_blocking(move || store.read_to_vec(&hash)).await;
        // Kept under the `keys` pin by the core's decision, or let go.
        discard(client, hash).await;
        match read {
            // What the id names must be a revocation: anything else sent
            // this way (a manifest, say) skips the rules it would meet.
            Ok(Ok(bytes)) if bytes.starts_with(b"tamizdat/revocation/") => {
                let _ = tx.send(Done::Revocation { from: peer, bytes }).await;
            }
            Ok(Ok(_)) => {
                debug!(%peer, "offered {hash} as a revocation, and it is none");
                client.mark_bad(peer);
            }
            _ => {}
        }
    }
}

/// Asks `peer` for the cards it holds of the publishers we follow that are
/// newer than ours, for the core to judge.
async fn catch_up_cards(
    client: &Client,
    peer: PeerId,
    asked: &[PublicKey],
    tx: &mpsc::Sender<Done>,
) {
    let ours: Vec<(PublicKey, u64)> = asked
        .iter()
        .map(|r| (*r, client.card(r).map_or(0, |c| c.body().issued)))
        .collect();
    let cards: Vec<Vec<u8>> = match ask(client, peer, CARDS, &ours).await {
        Ok(cards) => cards,
        Err(e) => {
            debug!(%peer, "cards: {e}");
            return;
        }
    };
    for data in cards.into_iter().take(MAX_CARDS_ANSWER) {
        if data.len() <= tamizdat_sign::MAX_CARD_LEN {
            // Judged by the core; it takes only a card.
            let input = Input::Card { from: peer, data };
            let _ = tx.send(Done::Input(input)).await;
        }
    }
}

/// Deletes a fetched object that was not accepted, unless something pins it.
async fn discard(client: &Client, hash: Hash) {
    let store = client.store().clone();
    let _ = tokio::task::spawn_blocking(move || {
        if store
            .info(&hash)
            .ok()
            .flatten()
            .is_some_and(|i| i.pins.is_empty())
        {
            let _ = store.delete(&hash);
        }
    })
    .await;
}

/// Fetches a manifest-sized blob from `peer` and reads it back.
async fn fetch_manifest(client: &Client, hash: Hash, peer: PeerId) -> Result<Vec<u8>, String> {
    client
        .fetch_bounded(hash, &[peer], MAX_MANIFEST_LEN as u64)
        .await
        .map_err(|e| e.to_string())?;
    let store = client.store().clone();
    tokio::task::spawn_blocking(move || store.read_to_vec(&hash))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// One request of the publishers `asked` about on `protocol`, and its
/// answer (bounded in size and time).
async fn ask<T: serde::de::DeserializeOwned>(
    client: &Client,
    peer: PeerId,
    protocol: StreamProtocol,
    asked: &(impl serde::Serialize + ?Sized),
) -> Result<T, String> {
    let mut stream = client
        .open_stream(peer, protocol)
        .await
        .map_err(|e| e.to_string())?;
    let req = postcard::to_stdvec(asked).map_err(|e| e.to_string())?;
    let io = async {
        stream.write_all(&(req.len() as u32).to_be_bytes()).await?;
        stream.write_all(&req).await?;
        stream.flush().await?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_HEADS_BYTES {
            return Err(std::io::Error::other("answer too large"));
        }
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(ASK_TIMEOUT, io)
        .await
        .map_err(|_| "heads: timed out".to_string())?
        .map_err(|e| e.to_string())?;
    decode_exact(&buf)
}

/// A whole postcard message: bytes after its end are refused, so one
/// answer has one encoding.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(buf).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the end of the message", rest.len()));
    }
    Ok(value)
}

/// Answers revocation requests: the ids of the revocations we know for the
/// publishers asked about.
pub(crate) async fn serve_revocations(
    incoming: libp2p_stream::IncomingStreams,
    feeds: Arc<Mutex<Feeds>>,
) {
    serve_asked(incoming, move |asked| {
        let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<Digest> = asked
            .iter()
            .flat_map(|r| f.trust().revocations_of(r).copied().collect::<Vec<_>>())
            .take(MAX_REVOCATION_IDS)
            .collect();
        postcard::to_stdvec(&ids)
    })
    .await
}

/// Answers cards requests: the cards we hold, of the publishers asked
/// about, issued after what the asker holds (at most [`MAX_CARDS_ANSWER`]).
pub(crate) async fn serve_cards(
    incoming: libp2p_stream::IncomingStreams,
    feeds: Arc<Mutex<Feeds>>,
) {
    serve_asked(incoming, move |asked: &[(PublicKey, u64)]| {
        let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
        let cards: Vec<&[u8]> = asked
            .iter()
            .filter_map(|(r, issued)| f.card(r).filter(|c| c.body().issued > *issued))
            .take(MAX_CARDS_ANSWER)
            .map(|c| c.bytes())
            .collect();
        postcard::to_stdvec(&cards)
    })
    .await
}

/// Answers heads requests: the heads we hold of the feeds asked about.
pub(crate) async fn serve_heads(
    incoming: libp2p_stream::IncomingStreams,
    feeds: Arc<Mutex<Feeds>>,
) {
    serve_asked(incoming, move |asked| {
        let heads = feeds.lock().unwrap_or_else(|p| p.into_inner()).heads(asked);
        postcard::to_stdvec(&heads)
    })
    .await
}

/// Serves requests naming publishers: at most 16 at once, 20 s each.
async fn serve_asked<T: serde::de::DeserializeOwned + Send + 'static>(
    mut incoming: libp2p_stream::IncomingStreams,
    answer: impl Fn(&[T]) -> Result<Vec<u8>, postcard::Error> + Send + Sync + 'static,
) {
    let answer = Arc::new(answer);
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let io = async {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).await?;
                let len = u32::from_be_bytes(len) as usize;
                // A key (33 bytes with its length) and a number each.
                if len > MAX_ASKED * 48 {
                    return Err(std::io::Error::other("heads request too large"));
                }
                let mut buf = vec![0u8; len];
                stream.read_exact(&mut buf).await?;
                let asked: Vec<T> = decode_exact(&buf).map_err(std::io::Error::other)?;
                if asked.len() > MAX_ASKED {
                    return Err(std::io::Error::other("too many publishers asked"));
                }
                let out = answer(&asked).map_err(std::io::Error::other)?;
                stream.write_all(&(out.len() as u32).to_be_bytes()).await?;
                stream.write_all(&out).await?;
                stream.close().await
            };
            if let Err(e) = tokio::time::timeout(std::time::Duration::from_secs(20), io).await {
                debug!(%peer, "answering: {e}");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::decode_exact;

    #[test]
    fn a_message_with_bytes_after_its_end_is_refused() {
        let mut buf = postcard::to_stdvec(&vec![[7u8; 32]; 2]).unwrap();
        let back: Vec<[u8; 32]> = decode_exact(&buf).unwrap();
        assert_eq!(back, vec![[7u8; 32]; 2]);
        buf.push(0);
        let err = decode_exact::<Vec<[u8; 32]>>(&buf).unwrap_err();
        assert!(err.contains("1 bytes after the end"), "{err}");
    }
}
