//! Replication: what arrives by gossip or feed sync is judged by the feed
//! rules ([`crate::feeds`]), recorded, and its files fetched, verified and
//! pinned; feed heads are exchanged with each new peer so that a node that
//! was away catches up.
//!
//! [`Queue`] is the I/O-less part: which blob to fetch next. The task in
//! [`run`] does the I/O around it.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol, gossipsub::MessageAcceptance};
use serde::{Deserialize, Serialize};
use tamizdat_sign::{Digest, MAX_MANIFEST_LEN, PublicKey, VerifiedManifest};
use tamizdat_store::{Hash, Store};
use tokio::{sync::mpsc, task::JoinSet};
use tracing::{debug, info, warn};

use crate::{
    feeds::{self, Feeds, Judgement},
    node::Client,
};

/// Feed heads exchanged when peers meet.
pub(crate) const HEADS: StreamProtocol = StreamProtocol::new("/tamizdat/heads/1");
/// Revocation ids exchanged when peers meet, before their heads.
pub(crate) const REVOCATIONS: StreamProtocol = StreamProtocol::new("/tamizdat/revocations/1");
/// Revocation ids in one answer.
const MAX_REVOCATION_IDS: usize = 1024;
/// Largest revocation envelope fetched.
const MAX_REVOCATION_LEN: u64 = 4096;
/// Blob fetches of replication running at once.
const FETCHES: usize = 4;
/// Publishers asked about in one heads request.
const MAX_ASKED: usize = 256;
/// Heads in one answer.
const MAX_HEADS: usize = 1024;
/// Largest heads message.
const MAX_HEADS_BYTES: usize = 256 * 1024;
/// Manifests fetched walking back one feed's `prev` links in one catch-up.
pub const MAX_WALK: usize = 64;
/// Manifests already held in a row after which a catch-up walk stops.
const HELD_RUN: usize = 8;
/// Blobs waiting to be fetched, at most.
const MAX_QUEUED: usize = 100_000;
/// Attempts at one blob before it is left to the next repair pass.
pub const MAX_ATTEMPTS: u32 = 30;
/// Tries at a catch-up with one peer that keeps failing.
const CATCH_UP_TRIES: u32 = 3;
/// How often feed heads are compared with a few peers (anti-entropy): a
/// gossip message lost for any reason is recovered within this.
pub const ANTI_ENTROPY_EVERY: std::time::Duration = std::time::Duration::from_secs(3);
/// Peers asked in each anti-entropy round.
const ANTI_ENTROPY_PEERS: usize = 2;
/// Gaps in feeds (manifests skipped over) looked for in one round.
const MAX_GAPS: usize = 16;
/// How often recorded articles are checked for missing files.
const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// A manifest kept under a feed pin.
#[derive(Debug)]
pub struct Recorded {
    /// The feed pin holding it.
    pub pin: String,
    /// Its id.
    pub id: Hash,
    /// The manifest.
    pub manifest: tamizdat_sign::Signed<tamizdat_sign::Manifest>,
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
            if let Ok(manifest) = tamizdat_sign::Signed::<tamizdat_sign::Manifest>::decode(&bytes) {
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

/// The files of recorded articles that are not complete here.
pub fn missing_files(store: &Store) -> Result<Vec<Want>, String> {
    let mut wants = Vec::new();
    for r in recorded(store, "feed/")? {
        for e in &r.manifest.body().entries {
            let hash = Hash::from_bytes(e.hash);
            let complete = store
                .info_without_pins(&hash)
                .map_err(|e| e.to_string())?
                .is_some_and(|i| i.complete);
            if !complete {
                wants.push(Want {
                    hash,
                    pin: r.pin.clone(),
                    hints: Vec::new(),
                    copies: 0,
                    attempts: 0,
                });
            }
        }
    }
    Ok(wants)
}

/// The wait before attempt `n + 1` at a blob: the copies announced in gossip
/// are often still being fetched by the announcer, so soon, then less often.
pub fn retry_after(attempts: u32) -> std::time::Duration {
    let ms = 250u64.saturating_mul(1 << attempts.min(8));
    std::time::Duration::from_millis(ms.min(30_000))
}

/// What the swarm task hands to replication.
#[derive(Debug)]
pub(crate) enum Event {
    /// A gossip message to judge.
    Gossip {
        /// Who forwarded it.
        source: PeerId,
        /// Who first published it (messages are signed by the peer's key).
        author: Option<PeerId>,
        /// Gossipsub's id for it (our content hash).
        id: libp2p::gossipsub::MessageId,
        /// The topic it came on.
        topic: String,
        /// The envelope.
        data: Vec<u8>,
    },
    /// A new connection: exchange heads.
    Connected(PeerId),
}

/// One head of a feed, as exchanged.
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

/// A blob to fetch for a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The blob.
    pub hash: Hash,
    /// The pin that keeps it.
    pub pin: String,
    /// Peers likely to have it (the announcer first).
    pub hints: Vec<PeerId>,
    /// Copies known on the network: fewer are fetched first.
    pub copies: usize,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// Blobs waiting to be fetched: fewest known copies first, then in the
/// order they were asked for. Each blob is queued once.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: BTreeMap<(usize, u64), Want>,
    queued: HashSet<Hash>,
    next: u64,
}

impl Queue {
    /// Adds a blob; false if it was already waiting or the queue is full.
    pub fn push(&mut self, want: Want) -> bool {
        if self.queued.len() >= MAX_QUEUED || !self.queued.insert(want.hash) {
            return false;
        }
        self.waiting.insert((want.copies, self.next), want);
        self.next += 1;
        true
    }

    /// The blob to fetch next.
    pub fn pop(&mut self) -> Option<Want> {
        let (_, want) = self.waiting.pop_first()?;
        self.queued.remove(&want.hash);
        Some(want)
    }

    /// Blobs waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
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

/// Stores an accepted manifest under its feed's pin, and returns the files
/// to fetch.
pub(crate) fn record(
    store: &Store,
    m: &VerifiedManifest,
    hints: &[PeerId],
) -> Result<Vec<Want>, String> {
    let pin = feeds::feed_pin(m.manifest());
    let added = store
        .add_bytes(m.envelope().bytes())
        .map_err(|e| e.to_string())?;
    store.pin(&pin, &added.hash).map_err(|e| e.to_string())?;
    let mut wants = Vec::new();
    for e in &m.manifest().entries {
        let hash = Hash::from_bytes(e.hash);
        let complete = store
            .info_without_pins(&hash)
            .map_err(|e| e.to_string())?
            .is_some_and(|i| i.complete);
        if complete {
            store.pin(&pin, &hash).map_err(|e| e.to_string())?;
        } else {
            wants.push(Want {
                hash,
                pin: pin.clone(),
                hints: hints.to_vec(),
                copies: hints.len(),
                attempts: 0,
            });
        }
    }
    Ok(wants)
}

/// The replication task: judges what arrives, records it, fetches files.
pub(crate) async fn run(client: Client, mut events: mpsc::Receiver<Event>) {
    let mut queue = Queue::default();
    let mut fetching: JoinSet<Option<Want>> = JoinSet::new();
    let (found_tx, mut found) = mpsc::channel::<Vec<Want>>(64);
    // Files of recorded articles still missing (a restart mid-replication,
    // or attempts given up): looked for at start and then now and again.
    {
        let (client, tx) = (client.clone(), found_tx.clone());
        tokio::spawn(async move {
            loop {
                let store = client.store().clone();
                if let Ok(Ok(wants)) =
                    tokio::task::spawn_blocking(move || missing_files(&store)).await
                    && !wants.is_empty()
                {
                    info!(count = wants.len(), "resuming files of recorded articles");
                    if tx.send(wants).await.is_err() {
                        return;
                    }
                }
                // Ends with the replication task (the node stopped).
                tokio::select! {
                    () = tokio::time::sleep(REPAIR_EVERY) => {}
                    () = tx.closed() => return,
                }
            }
        });
    }
    // Anti-entropy: one round at a time, with a few peers in turn.
    let mut compare = tokio::time::interval(ANTI_ENTROPY_EVERY);
    compare.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut comparing: Option<tokio::task::JoinHandle<()>> = None;
    let mut turn: usize = 0;
    loop {
        while fetching.len() < FETCHES {
            let Some(want) = queue.pop() else { break };
            let client = client.clone();
            fetching.spawn(async move { fetch_one(&client, want).await });
        }
        tokio::select! {
            _ = compare.tick() => {
                if comparing.as_ref().is_none_or(|t| t.is_finished()) {
                    let (client, tx) = (client.clone(), found_tx.clone());
                    turn = turn.wrapping_add(ANTI_ENTROPY_PEERS);
                    comparing = Some(tokio::spawn(async move {
                        compare_round(&client, turn, &tx).await;
                    }));
                }
            }
            ev = events.recv() => match ev {
                None => break,
                Some(Event::Gossip { source, author, id, topic, data }) => {
                    let (acceptance, wants, behind) =
                        on_gossip(&client, source, author, &topic, &data).await;
                    client.validate(id, source, acceptance).await;
                    for w in wants {
                        queue.push(w);
                    }
                    if let Some((publisher, prev)) = behind {
                        // What the sender accepted, it holds what came
                        // before, or can find it: walked back at once.
                        let (client, tx) = (client.clone(), found_tx.clone());
                        tokio::spawn(async move {
                            if let Err(e) = walk(&client, source, publisher, prev, &tx).await {
                                debug!(%source, "walking back from a gossiped manifest: {e}");
                            }
                        });
                    }
                }
                Some(Event::Connected(peer)) => {
                    let (client, tx) = (client.clone(), found_tx.clone());
                    tokio::spawn(async move {
                        // A walk cut short (a busy peer, a fetch that timed
                        // out) is tried again a few times, unless the peer
                        // lied or is gone.
                        for attempt in 0..CATCH_UP_TRIES {
                            match catch_up(&client, peer, &tx, Round::Meet).await {
                                Ok(()) => return,
                                Err(e) => debug!(%peer, attempt, "catch-up: {e}"),
                            }
                            if client.bad_peers().contains(&peer) {
                                return;
                            }
                            tokio::time::sleep(std::time::Duration::from_secs(2 << attempt)).await;
                            if !client.connected().await.is_ok_and(|c| c.contains(&peer)) {
                                return;
                            }
                        }
                    });
                }
            },
            Some(wants) = found.recv() => {
                for w in wants {
                    queue.push(w);
                }
            }
            Some(done) = fetching.join_next(), if !fetching.is_empty() => {
                if let Ok(Some(mut want)) = done {
                    want.attempts += 1;
                    if want.attempts < MAX_ATTEMPTS {
                        let tx = found_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(retry_after(want.attempts)).await;
                            let _ = tx.send(vec![want]).await;
                        });
                    } else {
                        warn!(hash = %want.hash, "gave up replicating after {MAX_ATTEMPTS} attempts");
                    }
                }
            }
        }
    }
}

/// One anti-entropy round: heads compared with [`ANTI_ENTROPY_PEERS`]
/// connected peers, taken in turn from `turn`, and gaps filled from them.
async fn compare_round(client: &Client, turn: usize, found: &mpsc::Sender<Vec<Want>>) {
    let Ok(mut peers) = client.connected().await else {
        return;
    };
    if peers.is_empty() {
        return;
    }
    let bad = client.bad_peers();
    peers.retain(|p| !bad.contains(p));
    peers.sort();
    let n = peers.len();
    for i in 0..ANTI_ENTROPY_PEERS.min(n) {
        let peer = peers[(turn + i) % n];
        if let Err(e) = catch_up(client, peer, found, Round::Compare).await {
            debug!(%peer, "anti-entropy: {e}");
        }
    }
}

/// Fetches and pins one blob; gives it back when it should be tried again.
async fn fetch_one(client: &Client, want: Want) -> Option<Want> {
    debug!(hash = %want.hash, attempt = want.attempts, hints = ?want.hints, "replicating");
    match client.fetch(want.hash, &want.hints).await {
        Ok(_) => {
            debug!(hash = %want.hash, "replicated");
            let store = client.store().clone();
            let (hash, pin) = (want.hash, want.pin.clone());
            let pinned = tokio::task::spawn_blocking(move || store.pin(&pin, &hash)).await;
            if !matches!(pinned, Ok(Ok(()))) {
                warn!(hash = %want.hash, "replicated but could not pin");
            }
            None
        }
        Err(e) => {
            debug!(hash = %want.hash, attempt = want.attempts, "replication fetch failed: {e}");
            Some(want)
        }
    }
}

/// Judges a gossip message and records what it brings.
async fn on_gossip(
    client: &Client,
    source: PeerId,
    author: Option<PeerId>,
    topic: &str,
    data: &[u8],
) -> (MessageAcceptance, Vec<Want>, Option<(PublicKey, Digest)>) {
    let Some(publisher) = topic
        .strip_prefix("tamizdat/feed/1/")
        .and_then(|k| k.parse::<PublicKey>().ok())
    else {
        return (MessageAcceptance::Reject, Vec::new(), None);
    };
    let mut hints = vec![source];
    if let Some(a) = author.filter(|a| *a != source) {
        hints.push(a);
    }
    match admit(client, data, Some(&publisher), &hints).await {
        Admitted::New(wants, behind) => (MessageAcceptance::Accept, wants, behind),
        Admitted::Ignored => (MessageAcceptance::Ignore, Vec::new(), None),
        Admitted::Refused => (MessageAcceptance::Reject, Vec::new(), None),
    }
}

enum Admitted {
    /// Recorded (or applied): the files to fetch, and for a manifest that
    /// did not link to what we held, the `prev` to walk back from.
    New(Vec<Want>, Option<(PublicKey, Digest)>),
    Ignored,
    Refused,
}

/// Judges an envelope and, when it is new, records it: the one door every
/// signed object comes in by (gossip, catch-up, a local publish).
async fn admit(
    client: &Client,
    data: &[u8],
    topic_of: Option<&PublicKey>,
    hints: &[PeerId],
) -> Admitted {
    let feeds = client.feeds().clone();
    let judgement = {
        let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
        f.judge(data, topic_of, now())
    };
    match judgement {
        Judgement::Manifest(m, verdict) => {
            // A manifest that does not follow on from what we hold leaves a
            // gap behind it: walked back at once, from whoever sent it.
            let behind = match verdict {
                tamizdat_sign::Verdict::First | tamizdat_sign::Verdict::Ahead { .. } => {
                    m.manifest().prev.map(|prev| (m.manifest().publisher, prev))
                }
                _ => None,
            };
            let accepted = {
                let mut f = feeds.lock().unwrap_or_else(|p| p.into_inner());
                f.accept(&m, now())
            };
            if let Err(e) = accepted {
                warn!("manifest refused: {e}");
                return Admitted::Refused;
            }
            let store = client.store().clone();
            let hints = hints.to_vec();
            let policy = {
                let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
                f.policy(&m.manifest().publisher).unwrap_or_default()
            };
            let done = tokio::task::spawn_blocking(move || {
                persist(&store, &feeds)?;
                let wants = record(&store, &m, &hints)?;
                // The publisher's quota and retention, with room for what
                // is about to be fetched; the new article may itself be
                // the one let go (too old, or larger than the quota).
                let incoming = m
                    .manifest()
                    .entries
                    .iter()
                    .filter(|e| wants.iter().any(|w| w.hash.as_bytes() == &e.hash))
                    .map(|e| e.size)
                    .sum();
                let id = Hash::of(m.envelope().bytes());
                let dropped = crate::retention::enforce(
                    &store,
                    &m.manifest().publisher,
                    &policy,
                    incoming,
                    now(),
                )?;
                let kept = store
                    .info(&id)
                    .map_err(|e| e.to_string())?
                    .is_some_and(|i| !i.pins.is_empty());
                if dropped > 0 {
                    info!(dropped, "articles let go under the publisher's quota");
                }
                Ok::<_, String>((if kept { wants } else { Vec::new() }, m, kept))
            })
            .await;
            match done {
                Ok(Ok((wants, m, kept))) => {
                    // Held now: a reader who knows only this node and the
                    // article's hash finds it in the DHT.
                    if kept {
                        client.announce(Hash::of(m.envelope().bytes())).await;
                    }
                    let body = m.manifest();
                    info!(
                        publisher = %body.publisher.fingerprint(),
                        feed = %body.feed,
                        seq = body.seq,
                        files = body.entries.len(),
                        "accepted a manifest"
                    );
                    Admitted::New(wants, behind)
                }
                Ok(Err(e)) => {
                    warn!("recording a manifest: {e}");
                    Admitted::Ignored
                }
                Err(e) => {
                    warn!("recording a manifest: {e}");
                    Admitted::Ignored
                }
            }
        }
        Judgement::Revocation(rev) => {
            feeds.lock().unwrap_or_else(|p| p.into_inner()).revoke(&rev);
            let store = client.store().clone();
            let bytes = rev.bytes().to_vec();
            let _ = tokio::task::spawn_blocking(move || {
                persist(&store, &feeds)?;
                let added = store.add_bytes(&bytes).map_err(|e| e.to_string())?;
                store.pin("keys", &added.hash).map_err(|e| e.to_string())
            })
            .await;
            info!(root = %rev.body().root.fingerprint(), "applied a revocation");
            Admitted::New(Vec::new(), None)
        }
        Judgement::Delegation => Admitted::New(Vec::new(), None),
        Judgement::Ignore(why) => {
            debug!("ignored: {why}");
            Admitted::Ignored
        }
        Judgement::Reject(why) => {
            debug!("rejected: {why}");
            Admitted::Refused
        }
        Judgement::Equivocation(publisher, why) => {
            warn!(publisher = %publisher.fingerprint(), "EQUIVOCATION: {why}");
            feeds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report(publisher, why);
            Admitted::Refused
        }
    }
}

/// Records a manifest published on this node and returns the files it
/// names that are not here (normally none).
pub(crate) async fn admit_own(client: &Client, data: &[u8]) -> Result<(), String> {
    let feeds = client.feeds().clone();
    let judgement = {
        let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
        f.judge(data, None, now())
    };
    match judgement {
        Judgement::Manifest(..) => match admit(client, data, None, &[]).await {
            Admitted::New(..) => Ok(()),
            _ => Err("the manifest could not be recorded".into()),
        },
        Judgement::Ignore(why) | Judgement::Reject(why) | Judgement::Equivocation(_, why) => {
            Err(why)
        }
        Judgement::Revocation(_) | Judgement::Delegation => Err("not a manifest".into()),
    }
}

/// How a catch-up with one peer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// A new connection: walk back from each of its heads, even one we
    /// hold (a gap may lie behind it).
    Meet,
    /// Anti-entropy: walk only from heads newer than ours, then look for
    /// the manifests our feeds skipped over.
    Compare,
}

/// Asks `peer` for the heads of the feeds we follow, then fetches the
/// manifests we miss, walking back each feed's `prev` links (bounded).
/// Files found by a catch-up are handed over as each manifest is accepted,
/// so a walk cut short loses none of them.
async fn catch_up(
    client: &Client,
    peer: PeerId,
    found: &mpsc::Sender<Vec<Want>>,
    round: Round,
) -> Result<(), String> {
    let asked: Vec<PublicKey> = {
        let f = client.feeds().lock().unwrap_or_else(|p| p.into_inner());
        f.following()
            .into_iter()
            .map(|f| f.key)
            .take(MAX_ASKED)
            .collect()
    };
    if asked.is_empty() {
        return Ok(());
    }
    // Revocations first: an article signed by a key revoked while we were
    // away must not be accepted on the way.
    catch_up_revocations(client, peer, &asked).await?;
    let heads = ask_heads(client, peer, &asked).await?;
    for head in heads {
        if !asked.contains(&head.publisher) {
            continue;
        }
        if round == Round::Compare {
            let ours = client
                .trust()
                .head(&head.publisher, &head.feed)
                .map(|h| h.seq);
            if ours.is_some_and(|seq| seq >= head.seq) {
                continue;
            }
        }
        walk(client, peer, head.publisher, head.hash, found).await?;
    }
    if round == Round::Compare {
        // Manifests our feeds skipped (a gossip message lost, a walk cut
        // short): asked of this peer, and of any provider the DHT knows.
        let gaps: Vec<(PublicKey, Digest)> = {
            let trust = client.trust();
            trust
                .feeds()
                .filter(|(p, _, _)| asked.contains(p))
                .flat_map(|(p, _, h)| h.gaps().map(|(_, id)| (*p, id)).collect::<Vec<_>>())
                .take(MAX_GAPS)
                .collect()
        };
        for (publisher, id) in gaps {
            if let Err(e) = walk(client, peer, publisher, id, found).await {
                debug!(%peer, "filling a gap: {e}");
            }
        }
    }
    Ok(())
}

/// From `start` back along `prev`: fetches what is missing from `peer`,
/// reads what is here (a gap may lie behind it), and stops after a run of
/// manifests already held, or at the bound.
async fn walk(
    client: &Client,
    peer: PeerId,
    publisher: PublicKey,
    start: Digest,
    found: &mpsc::Sender<Vec<Want>>,
) -> Result<(), String> {
    let mut next = Some(start);
    let mut held_run = 0;
    for _ in 0..MAX_WALK {
        let Some(hash) = next.take().map(Hash::from_bytes) else {
            break;
        };
        let here = client
            .store()
            .info_without_pins(&hash)
            .map_err(|e| e.to_string())?
            .is_some_and(|i| i.complete);
        let bytes = if here {
            held_run += 1;
            if held_run > HELD_RUN {
                break;
            }
            let store = client.store().clone();
            tokio::task::spawn_blocking(move || store.read_to_vec(&hash))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        } else {
            held_run = 0;
            fetch_manifest(client, hash, peer).await?
        };
        match admit(client, &bytes, Some(&publisher), &[peer]).await {
            Admitted::New(w, _) => {
                if !w.is_empty() {
                    let _ = found.send(w).await;
                }
                next = manifest_prev(&bytes);
            }
            // Held already: look behind it.
            Admitted::Ignored if here => next = manifest_prev(&bytes),
            // Fetched, and taken meanwhile by a catch-up with another
            // peer (or gossip): held now, so look behind it too; that
            // walk may have stopped short.
            Admitted::Ignored
                if recorded_now(client, hash).await || accepted_already(client, &bytes) =>
            {
                next = manifest_prev(&bytes);
            }
            // Fetched but of no use (too old to place): not kept.
            Admitted::Ignored => {
                discard(client, hash).await;
                break;
            }
            Admitted::Refused => {
                if !here {
                    discard(client, hash).await;
                }
                client.mark_bad(peer);
                return Err(format!("{peer} offered a refused manifest"));
            }
        }
    }
    Ok(())
}

/// Asks `peer` which revocations it holds for the publishers we follow, and
/// fetches, checks and applies those we lack.
async fn catch_up_revocations(
    client: &Client,
    peer: PeerId,
    asked: &[PublicKey],
) -> Result<(), String> {
    // A peer that does not answer (or not this protocol) still has its
    // heads asked for: only a forged revocation ends the exchange.
    let ids: Vec<Digest> = match ask(client, peer, REVOCATIONS, asked).await {
        Ok(ids) => ids,
        Err(e) => {
            debug!(%peer, "revocations: {e}");
            return Ok(());
        }
    };
    if ids.len() > MAX_REVOCATION_IDS {
        debug!(%peer, "revocations: too many ids");
        return Ok(());
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
        let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || store.read_to_vec(&hash)).await
        else {
            continue;
        };
        let root = tamizdat_sign::Signed::<tamizdat_sign::Revocation>::decode(&bytes)
            .map(|r| r.body().root)
            .ok();
        match admit(client, &bytes, root.as_ref(), &[peer]).await {
            Admitted::New(..) => {}
            Admitted::Ignored => discard(client, hash).await,
            Admitted::Refused => {
                discard(client, hash).await;
                client.mark_bad(peer);
                return Err(format!("{peer} offered a refused revocation"));
            }
        }
    }
    Ok(())
}

/// Whether the feed state holds this manifest already: another walk or
/// gossip accepted it and may not have pinned it yet, so it must not be
/// deleted here.
fn accepted_already(client: &Client, bytes: &[u8]) -> bool {
    let trust = client.trust();
    tamizdat_sign::Verifier::new()
        .verify(bytes, &trust)
        .is_ok_and(|v| {
            matches!(
                trust.check(&v, now()),
                Ok(tamizdat_sign::Verdict::Duplicate)
            )
        })
}

/// Whether a manifest is kept under a pin now.
async fn recorded_now(client: &Client, hash: Hash) -> bool {
    let store = client.store().clone();
    tokio::task::spawn_blocking(move || {
        store
            .info(&hash)
            .ok()
            .flatten()
            .is_some_and(|i| i.complete && !i.pins.is_empty())
    })
    .await
    .unwrap_or(false)
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

fn manifest_prev(bytes: &[u8]) -> Option<Digest> {
    tamizdat_sign::Signed::<tamizdat_sign::Manifest>::decode(bytes)
        .ok()
        .and_then(|m| m.body().prev)
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

async fn ask_heads(
    client: &Client,
    peer: PeerId,
    asked: &[PublicKey],
) -> Result<Vec<Head>, String> {
    let heads: Vec<Head> = ask(client, peer, HEADS, asked).await?;
    if heads.len() > MAX_HEADS {
        return Err("too many heads".into());
    }
    Ok(heads)
}

/// One request of the publishers `asked` about on `protocol`, and its
/// answer (bounded in size and time).
async fn ask<T: serde::de::DeserializeOwned>(
    client: &Client,
    peer: PeerId,
    protocol: StreamProtocol,
    asked: &[PublicKey],
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
    let buf = tokio::time::timeout(std::time::Duration::from_secs(20), io)
        .await
        .map_err(|_| "heads: timed out".to_string())?
        .map_err(|e| e.to_string())?;
    postcard::from_bytes(&buf).map_err(|e| e.to_string())
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

/// Answers heads requests: the heads we hold of the feeds asked about.
pub(crate) async fn serve_heads(
    incoming: libp2p_stream::IncomingStreams,
    feeds: Arc<Mutex<Feeds>>,
) {
    serve_asked(incoming, move |asked| {
        let heads: Vec<Head> = {
            let f = feeds.lock().unwrap_or_else(|p| p.into_inner());
            f.trust()
                .feeds()
                .filter(|(p, _, _)| asked.contains(p))
                .take(MAX_HEADS)
                .map(|(p, feed, h)| Head {
                    publisher: *p,
                    feed: feed.to_owned(),
                    seq: h.seq,
                    hash: h.hash,
                })
                .collect()
        };
        postcard::to_stdvec(&heads)
    })
    .await
}

/// Serves requests naming publishers: at most 16 at once, 20 s each.
async fn serve_asked(
    mut incoming: libp2p_stream::IncomingStreams,
    answer: impl Fn(&[PublicKey]) -> Result<Vec<u8>, postcard::Error> + Send + Sync + 'static,
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
                if len > MAX_ASKED * 40 {
                    return Err(std::io::Error::other("heads request too large"));
                }
                let mut buf = vec![0u8; len];
                stream.read_exact(&mut buf).await?;
                let asked: Vec<PublicKey> =
                    postcard::from_bytes(&buf).map_err(std::io::Error::other)?;
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
    use super::*;

    fn want(n: u8, copies: usize) -> Want {
        Want {
            hash: Hash::of(&[n]),
            pin: "p".into(),
            hints: vec![],
            copies,
            attempts: 0,
        }
    }

    #[test]
    fn fewest_copies_first_then_in_order_and_once_each() {
        let mut q = Queue::default();
        assert!(q.push(want(1, 3)));
        assert!(q.push(want(2, 1)));
        assert!(q.push(want(3, 1)));
        assert!(!q.push(want(2, 0)), "queued once");
        assert!(q.push(want(4, 2)));
        let order: Vec<Hash> = std::iter::from_fn(|| q.pop()).map(|w| w.hash).collect();
        assert_eq!(
            order,
            vec![
                Hash::of(&[2]),
                Hash::of(&[3]),
                Hash::of(&[4]),
                Hash::of(&[1])
            ]
        );
        assert!(q.is_empty());
        assert!(q.push(want(2, 0)), "may be queued again once taken");
    }

    #[test]
    fn retries_come_soon_then_seldom() {
        assert!(retry_after(1) < retry_after(3));
        assert_eq!(retry_after(20), std::time::Duration::from_secs(30));
    }
}
