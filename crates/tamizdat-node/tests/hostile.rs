//! R4: 30 % of the peers are hostile. They are bare libp2p swarms that
//! speak gossipsub, the blob protocol and feed sync, and lie in all three.
//!
//! - Gossip: they behave until they are in the honest meshes, then forge,
//!   at rates from 1 to 4 a second: manifests claiming the outlet signed by
//!   another key or by an undelegated one, genuine ones with a flipped
//!   signature or body byte or cut short, garbage, another publisher's
//!   valid manifest on the outlet's topic, and replays of the newest genuine
//!   one. (A replay identical to a message a node has seen stops at the
//!   seen-cache, unjudged; a newcomer judges it.) They never forward honest
//!   gossip.
//! - Blobs: one serves corrupted bytes, one accepts and never answers, one
//!   drops every stream.
//! - Feed sync: one answers with a forged head whose manifest it serves
//!   intact, one never answers, one drops.
//!
//! Three newcomers meet only hostile peers at first, so that the newest
//! article reaches them from a liar, and the liar is the first they ask
//! for its files; then each meets one honest peer. Every follower still
//! gets every article, no honest store keeps anything forged, forgeries are
//! not equivocations, and every honest node scores the hostile peers below
//! zero and out of its mesh.

use std::{
    collections::{BTreeMap, HashSet},
    io::{self, Cursor, Read, Write},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, gossipsub, identify, noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_node::{
    GossipPeer, Multiaddr, PeerId, Protocol, feeds, identity, replicate::Head, transfer, wire,
};
use tamizdat_sign::{Entry, Manifest, PublicKey, SecretKey, Signed, TrustState, Verifier};
use tamizdat_store::{Hash, Options, Store};
use tempfile::TempDir;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_util::{compat::FuturesAsyncReadCompatExt, io::SyncIoBridge};

mod common;

use common::{Flip, TestNode, data, node_with, now};

/// Feed sync, as `replicate` speaks it.
const HEADS: StreamProtocol = StreamProtocol::new("/tamizdat/heads/1");
/// How long the hostile peers behave in the honest meshes before they turn:
/// long enough to earn whatever standing mere presence earns.
const SLEEPER: Duration = Duration::from_secs(5);
const ARTICLES: u64 = 3;
/// When the forgeries claim to have been signed (fixed: they are seeded).
const FORGED_AT: u64 = 1_750_000_000;

// ---------------------------------------------------------------- honest

/// An honest node with a seeded identity.
async fn node(seed: u8) -> TestNode {
    let key = identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    node_with(TempDir::new().unwrap(), key, |_| {}).await
}

fn manifest(publisher: PublicKey, signer: PublicKey, seq: u64, prev: Option<[u8; 32]>) -> Manifest {
    Manifest {
        publisher,
        signer,
        delegation: None,
        feed: "main".into(),
        seq,
        prev,
        created: now(),
        title: format!("Статья {seq}"),
        lang: "ru".into(),
        summary: None,
        supersedes: None,
        entries: Vec::new(),
    }
}

fn entry(path: &str, bytes: &[u8], media: &str) -> Entry {
    Entry {
        path: path.into(),
        hash: *Hash::of(bytes).as_bytes(),
        size: bytes.len() as u64,
        media_type: media.into(),
    }
}

/// An article: its files (stored on `on`) and its signed manifest.
fn article(
    on: &TestNode,
    key: &SecretKey,
    seq: u64,
    prev: Option<[u8; 32]>,
) -> (Signed<Manifest>, Vec<Vec<u8>>) {
    let text = format!("# Статья {seq}\n\nТекст.\n").into_bytes();
    let image = data(200_000 + seq as usize, seq);
    let mut m = manifest(key.public(), key.public(), seq, prev);
    for (path, bytes, media) in [
        ("index.md", &text, "text/markdown"),
        ("photo.jpg", &image, "image/jpeg"),
    ] {
        on.store.add_bytes(bytes).unwrap();
        m.entries.push(entry(path, bytes, media));
    }
    (Signed::sign(m, key).unwrap(), vec![text, image])
}

// --------------------------------------------------------------- hostile

/// How a hostile peer answers blob (and heads) requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Corrupted bytes; a forged head whose manifest it serves intact.
    Corrupt,
    /// Accepts every stream and never answers.
    Withhold,
    /// Drops every stream at once.
    Drop,
}

#[derive(NetworkBehaviour)]
struct Evil {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
}

enum Order {
    Dial(Multiaddr),
    /// Stop behaving: spam forgeries, race to announce genuine manifests.
    Turn,
}

struct Hostile {
    role: Role,
    peer: PeerId,
    addr: Multiaddr,
    store: Arc<Store>,
    orders: mpsc::Sender<Order>,
    tasks: Vec<JoinHandle<()>>,
    _dir: TempDir,
}

impl Hostile {
    async fn order(&self, o: Order) {
        self.orders.send(o).await.unwrap();
    }
}

/// Everything the hostile peers made up, by id: no honest store may hold any.
type Forged = Arc<Mutex<HashSet<Hash>>>;

/// A stream whose first bytes (a request already read) are given back.
struct Prefixed<S> {
    prefix: Cursor<Vec<u8>>,
    inner: S,
}

impl<S: Read> Read for Prefixed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.prefix.read(buf)? {
            0 => self.inner.read(buf),
            n => Ok(n),
        }
    }
}

impl<S: Write> Write for Prefixed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Serves its own forgeries intact (so that they are worth fetching) and
/// everything else with a flipped byte: past the 9-byte header, in the first
/// proof hash of a large blob or the data of a small one.
fn serve_lies(store: &Store, own: &HashSet<Hash>, mut stream: impl Read + Write) {
    let Ok(req) = wire::Request::read(&mut stream) else {
        return;
    };
    let mut prefix = Vec::new();
    if req.write(&mut prefix).is_err() {
        return;
    }
    let stream = Prefixed {
        prefix: Cursor::new(prefix),
        inner: stream,
    };
    if own.contains(&Hash::from_bytes(req.hash)) {
        let _ = transfer::serve(store, stream);
    } else {
        let flipped = Flip {
            inner: stream,
            at: 9 + 8,
            written: 0,
        };
        let _ = transfer::serve(store, flipped);
    }
}

/// Reads whatever comes until the other side gives up; answers nothing.
async fn withhold(mut stream: libp2p::Stream) {
    let mut buf = [0u8; 512];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Answers a heads request with one forged head.
async fn lie_about_heads(mut stream: libp2p::Stream, head: Head) -> io::Result<()> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 {
        return Err(io::Error::other("request too large"));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    let out = postcard::to_stdvec(&vec![head]).map_err(io::Error::other)?;
    stream.write_all(&(out.len() as u32).to_be_bytes()).await?;
    stream.write_all(&out).await?;
    stream.close().await
}

/// Makes up what a hostile peer gossips on the outlet's topic: a different
/// object each time (an identical one would only hit the receivers'
/// seen-cache), from a seeded generator.
struct Forger {
    rng: StdRng,
    outlet: PublicKey,
    mallory: SecretKey,
    /// Genuine manifests of the outlet seen in gossip, by sequence number.
    genuine: BTreeMap<u64, Vec<u8>>,
    forged: Forged,
    /// Junk files the forged manifests name.
    junk: Arc<Store>,
    made: u64,
}

impl Forger {
    fn junk_entry(&mut self) -> Entry {
        let mut bytes = vec![0u8; self.rng.random_range(100..3000)];
        self.rng.fill(&mut bytes[..]);
        self.junk.add_bytes(&bytes).unwrap();
        self.forged.lock().unwrap().insert(Hash::of(&bytes));
        entry("index.md", &bytes, "text/markdown")
    }

    fn prev(&mut self, seq: u64) -> Option<[u8; 32]> {
        (seq > 1).then(|| self.rng.random())
    }

    /// A manifest claiming to be the outlet's, signed with another key.
    fn impostor(&mut self, seq: u64) -> Vec<u8> {
        let prev = self.prev(seq);
        let mut m = manifest(self.outlet, self.outlet, seq, prev);
        m.title = format!("Поддельная статья {}", self.made);
        m.created = FORGED_AT;
        m.entries.push(self.junk_entry());
        Signed::sign(m, &self.mallory).unwrap().bytes().to_vec()
    }

    fn a_genuine(&mut self) -> Option<Vec<u8>> {
        if self.genuine.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.genuine.len());
        self.genuine.values().nth(i).cloned()
    }

    /// The newest genuine manifest: replayed to a newcomer, it is all the
    /// newcomer learns of the feed until it meets an honest peer.
    fn latest(&self) -> Option<Vec<u8>> {
        self.genuine.values().next_back().cloned()
    }

    fn garbage(&mut self) -> Vec<u8> {
        let mut bytes = if self.rng.random_bool(0.5) {
            b"tamizdat/manifest/v1\n".to_vec()
        } else {
            Vec::new()
        };
        let n = self.rng.random_range(1..2000);
        bytes.extend((0..n).map(|_| self.rng.random::<u8>()));
        bytes
    }

    /// The next message to gossip; forgeries are remembered as such.
    fn next(&mut self) -> Vec<u8> {
        self.made += 1;
        let seq = self.rng.random_range(1..=ARTICLES + 2);
        let (bytes, forged) = match self.made % 8 {
            0 => (self.impostor(seq), true),
            // Signed by a key of its own that the outlet never delegated to.
            1 => {
                let prev = self.prev(seq);
                let mut m = manifest(self.outlet, self.mallory.public(), seq, prev);
                m.created = FORGED_AT;
                m.entries.push(self.junk_entry());
                (
                    Signed::sign(m, &self.mallory).unwrap().bytes().to_vec(),
                    true,
                )
            }
            // A genuine manifest with a flipped signature byte...
            2 => match self.a_genuine() {
                Some(mut b) => {
                    let i = b.len() - 1 - self.rng.random_range(0..64);
                    b[i] ^= 1 << self.rng.random_range(0..8);
                    (b, true)
                }
                None => (self.garbage(), true),
            },
            // ... or body byte ...
            3 => match self.a_genuine() {
                Some(mut b) => {
                    let i = self.rng.random_range(21..b.len() - 64);
                    b[i] ^= 1 << self.rng.random_range(0..8);
                    (b, true)
                }
                None => (self.garbage(), true),
            },
            // ... or cut short.
            4 => match self.a_genuine() {
                Some(mut b) => {
                    b.truncate(self.rng.random_range(1..b.len()));
                    (b, true)
                }
                None => (self.garbage(), true),
            },
            5 => (self.garbage(), true),
            // A valid manifest of another publisher, on the outlet's topic.
            6 => {
                let mut m = manifest(self.mallory.public(), self.mallory.public(), 1, None);
                m.created = FORGED_AT;
                m.title = format!("Чужая статья {}", self.made);
                m.entries.push(self.junk_entry());
                (
                    Signed::sign(m, &self.mallory).unwrap().bytes().to_vec(),
                    true,
                )
            }
            // A replay of a genuine manifest, byte for byte.
            _ => match self.latest() {
                Some(b) => (b, false),
                None => (self.impostor(seq), true),
            },
        };
        if forged {
            self.forged.lock().unwrap().insert(Hash::of(&bytes));
        }
        bytes
    }
}

/// A hostile peer with `role`, that gossips one made-up message per
/// `every` once it turns.
async fn hostile(role: Role, every: Duration, n: u8, outlet: PublicKey, forged: Forged) -> Hostile {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let key = identity::Keypair::ed25519_from_bytes([200 + n; 32]).unwrap();
    let mut swarm: Swarm<Evil> = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            // Compatible with the honest nodes' gossip, but every message is
            // held for a validation that never says "accept": nothing honest
            // is forwarded. Its own message ids are per message, so that it
            // can send the same bytes again.
            let config = gossipsub::ConfigBuilder::default()
                .validate_messages()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .max_transmit_size(tamizdat_sign::MAX_MANIFEST_LEN + 16 * 1024)
                .heartbeat_interval(Duration::from_millis(700))
                .build()?;
            Ok(Evil {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )?,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/tamizdat/id/1.0.0".into(),
                    key.public(),
                )),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer = *swarm.local_peer_id();
    let topic = gossipsub::IdentTopic::new(feeds::topic(&outlet));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    let mallory = SecretKey::from_seed(&[100 + n; 32]);
    let mut forger = Forger {
        rng: StdRng::seed_from_u64(1000 + u64::from(n)),
        outlet,
        mallory,
        genuine: BTreeMap::new(),
        forged: forged.clone(),
        junk: store.clone(),
        made: 0,
    };
    // Feed sync: a forged head far ahead, whose manifest it serves intact.
    let bait = forger.impostor(50);
    let bait_id = store.add_bytes(&bait).unwrap().hash;
    forged.lock().unwrap().insert(bait_id);
    let own: HashSet<Hash> = forged.lock().unwrap().clone();
    let head = Head {
        publisher: outlet,
        feed: "main".into(),
        seq: 50,
        hash: *bait_id.as_bytes(),
    };

    let mut control = swarm.behaviour().stream.new_control();
    let mut blobs = control.accept(StreamProtocol::new(wire::PROTOCOL)).unwrap();
    let mut heads = control.accept(HEADS).unwrap();
    let serve_store = store.clone();
    let blob_task = tokio::spawn(async move {
        while let Some((_, stream)) = blobs.next().await {
            match role {
                Role::Corrupt => {
                    let (store, own) = (serve_store.clone(), own.clone());
                    let bridge = SyncIoBridge::new(stream.compat());
                    tokio::task::spawn_blocking(move || serve_lies(&store, &own, bridge));
                }
                Role::Withhold => {
                    tokio::spawn(withhold(stream));
                }
                Role::Drop => drop(stream),
            }
        }
    });
    let heads_task = tokio::spawn(async move {
        while let Some((_, stream)) = heads.next().await {
            match role {
                Role::Corrupt => {
                    tokio::spawn(lie_about_heads(stream, head.clone()));
                }
                Role::Withhold => {
                    tokio::spawn(withhold(stream));
                }
                Role::Drop => drop(stream),
            }
        }
    });

    let (orders, mut rx) = mpsc::channel(16);
    let swarm_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut turned = false;
        let verifier = Verifier::new();
        loop {
            tokio::select! {
                ev = swarm.select_next_some() => {
                    let SwarmEvent::Behaviour(EvilEvent::Gossipsub(ev)) = ev else {
                        continue;
                    };
                    let gs = &mut swarm.behaviour_mut().gossipsub;
                    match ev {
                        gossipsub::Event::Message {
                            propagation_source,
                            message_id,
                            message,
                        } => {
                            // Withholding: nothing is forwarded.
                            gs.report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                gossipsub::MessageAcceptance::Ignore,
                            );
                            let Ok(m) = verifier.verify(&message.data, &TrustState::default())
                            else {
                                continue;
                            };
                            let seq = m.manifest().seq;
                            if m.manifest().publisher != outlet
                                || forger.genuine.insert(seq, message.data.clone()).is_some()
                            {
                                continue;
                            }
                            if turned {
                                // Announces it too, hoping to be first.
                                let _ = gs.publish(topic.clone(), message.data);
                            }
                        }
                        // A newcomer hears the newest article from it first.
                        gossipsub::Event::Subscribed { .. } if turned => {
                            if let Some(b) = forger.latest() {
                                let _ = gs.publish(topic.clone(), b);
                            }
                        }
                        _ => {}
                    }
                }
                order = rx.recv() => match order {
                    None => break,
                    Some(Order::Dial(addr)) => {
                        let _ = swarm.dial(addr);
                    }
                    Some(Order::Turn) => {
                        turned = true;
                        tick.reset();
                    }
                },
                _ = tick.tick(), if turned => {
                    let bytes = forger.next();
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes);
                }
            }
        }
    });
    Hostile {
        role,
        peer,
        addr: addr.with(Protocol::P2p(peer)),
        store,
        orders,
        tasks: vec![blob_task, heads_task, swarm_task],
        _dir: dir,
    }
}

// ------------------------------------------------------------------ test

/// What `node` sees of `peer` in gossip.
async fn seen_by(node: &TestNode, peer: PeerId) -> Option<GossipPeer> {
    node.client
        .gossip_peers()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.peer == peer)
}

/// What of `m` `n` lacks: the manifest (`'m'`), some file (`'f'`), the
/// feed's pin on any of them (`'p'`). Empty when it holds the article.
fn lacks(n: &TestNode, m: &Signed<Manifest>) -> String {
    let has = |h: &Hash| n.store.info(h).unwrap().is_some_and(|i| i.complete);
    let pins = n.store.pins().unwrap();
    let pinned = pins.get(&feeds::feed_pin(m.body()));
    let manifest = Hash::of(m.bytes());
    let files: Vec<Hash> = m
        .body()
        .entries
        .iter()
        .map(|e| Hash::from_bytes(e.hash))
        .collect();
    let mut out = String::new();
    if !has(&manifest) {
        out.push('m');
    }
    if !files.iter().all(has) {
        out.push('f');
    }
    if !std::iter::once(&manifest)
        .chain(&files)
        .all(|h| pinned.is_some_and(|p| p.contains(h)))
    {
        out.push('p');
    }
    out
}

/// A follower that joins late and meets only `hostiles` at first, `greeter`
/// first of all: what it learns first it learns from their replay, and it
/// asks them for the files. Then it finds one honest peer.
async fn join_late(
    seed: u8,
    outlet: PublicKey,
    hostiles: &[Hostile],
    greeter: usize,
    honest: Multiaddr,
) -> (TestNode, Instant) {
    let f = node(seed).await;
    f.client.follow(outlet, None).await.unwrap();
    f.client.dial(hostiles[greeter].addr.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while f.client.trust().head(&outlet, "main").is_none() {
        let role = hostiles[greeter].role;
        assert!(Instant::now() < deadline, "{role:?} greeted no newcomer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in hostiles {
        f.client.dial(h.addr.clone()).await.unwrap();
    }
    f.client.dial(honest).await.unwrap();
    (f, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_hostile_peers_neither_stop_nor_poison_replication() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let start = Instant::now();
        let outlet = SecretKey::from_seed(&[1; 32]);
        let forged: Forged = Arc::default();
        let publisher = node(1).await;
        let mut followers = Vec::new();
        for i in 0..4 {
            let f = node(10 + i).await;
            f.client.follow(outlet.public(), None).await.unwrap();
            followers.push(f);
        }
        // One forges fast, the others at rates a patient adversary keeps
        // up for ever.
        let mut hostiles = Vec::new();
        for (n, (role, every)) in [
            (Role::Corrupt, Duration::from_millis(250)),
            (Role::Withhold, Duration::from_millis(1000)),
            (Role::Drop, Duration::from_millis(500)),
        ]
        .into_iter()
        .enumerate()
        {
            let h = hostile(role, every, n as u8, outlet.public(), forged.clone()).await;
            hostiles.push(h);
        }

        // Honest links: a chain, and the publisher reaches two followers
        // (the DHT adds more). Each follower also dials two hostile peers;
        // each hostile peer dials the publisher, to hear every article
        // first hand.
        let mut links: Vec<(usize, usize)> = Vec::new();
        for f in [0, 2] {
            let addr = followers[f].addr.clone();
            publisher.client.dial(addr).await.unwrap();
        }
        for i in 0..followers.len() {
            if i > 0 {
                let prev = followers[i - 1].addr.clone();
                followers[i].client.dial(prev).await.unwrap();
            }
            for h in [i % 3, (i + 1) % 3] {
                let addr = hostiles[h].addr.clone();
                followers[i].client.dial(addr).await.unwrap();
                links.push((i, h));
            }
        }
        for h in &hostiles {
            h.order(Order::Dial(publisher.addr.clone())).await;
        }

        // The hostile peers behave until they are in every honest mesh they
        // reach, and a while longer: long enough to earn whatever standing
        // mere presence earns.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut all = true;
            for &(f, h) in &links {
                let g = seen_by(&followers[f], hostiles[h].peer).await;
                all &= g.is_some_and(|g| g.in_mesh);
            }
            if all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "hostile peers never joined the meshes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(SLEEPER).await;
        for h in &hostiles {
            h.order(Order::Turn).await;
        }
        eprintln!("{:?}: the hostile peers turn", start.elapsed());

        // Three articles, forgeries before and between them.
        let mut published = Vec::new();
        let mut prev = None;
        for seq in 1..=ARTICLES {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (m, files) = article(&publisher, &outlet, seq, prev);
            // The hostile peers hold the real files, to serve them corrupted.
            for h in &hostiles {
                for f in &files {
                    h.store.add_bytes(f).unwrap();
                }
            }
            publisher.client.publish(m.bytes()).await.unwrap();
            eprintln!("{:?}: published {seq}", start.elapsed());
            prev = Some(*Hash::of(m.bytes()).as_bytes());
            published.push(m);
        }

        // Three newcomers, each greeted first by another kind of liar.
        let first_late = followers.len();
        let honest = followers[1].addr.clone();
        let late = futures::future::join_all(
            (0..hostiles.len())
                .map(|g| join_late(30 + g as u8, outlet.public(), &hostiles, g, honest.clone())),
        )
        .await;
        let mut met_honest = Vec::new();
        for (g, (f, at)) in late.into_iter().enumerate() {
            for h in 0..hostiles.len() {
                links.push((followers.len(), h));
            }
            eprintln!(
                "{:?}: follower {} (greeted by {:?}) meets an honest peer",
                start.elapsed(),
                followers.len(),
                hostiles[g].role
            );
            met_honest.push(at);
            followers.push(f);
        }

        // Every follower gets every article. Failures from here on are
        // gathered, to report every one at the end.
        let mut failures = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(45);
        let mut done = vec![None; followers.len()];
        loop {
            let mut missing = Vec::new();
            for (i, f) in followers.iter().enumerate() {
                let lack: Vec<(u64, String)> = published
                    .iter()
                    .map(|m| (m.body().seq, lacks(f, m)))
                    .filter(|(_, l)| !l.is_empty())
                    .collect();
                if lack.is_empty() {
                    done[i].get_or_insert_with(|| {
                        let since = met_honest.get(i.wrapping_sub(first_late)).unwrap_or(&start);
                        since.elapsed()
                    });
                } else {
                    missing.push((i, lack));
                }
            }
            if missing.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                failures.push(format!(
                    "(follower, [(seq, lacking m=manifest f=files p=pin)]) still missing \
                     (followers {first_late}.. joined late): {missing:?}"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{:?}: delivery done; late followers complete after meeting an honest peer: {:?}",
            start.elapsed(),
            &done[first_late..]
        );

        // Nothing forged is kept or counted as an equivocation.
        let forged = forged.lock().unwrap().clone();
        let last = published.last().unwrap();
        for (i, f) in followers.iter().enumerate() {
            let trust = f.client.trust();
            let head = trust
                .head(&outlet.public(), "main")
                .map(|h| (h.seq, h.hash));
            if head != Some((ARTICLES, *Hash::of(last.bytes()).as_bytes())) {
                failures.push(format!("follower {i}: feed head {head:?}"));
            }
            let conflicts = f.client.conflicts();
            if !conflicts.is_empty() {
                failures.push(format!("follower {i}: conflicts {conflicts:?}"));
            }
            let kept: Vec<Hash> = forged
                .iter()
                .filter(|h| f.store.info(h).unwrap().is_some())
                .copied()
                .collect();
            if !kept.is_empty() {
                failures.push(format!("follower {i} stores forged objects {kept:?}"));
            }
            let bad = f.client.bad_peers();
            let caught: Vec<Role> = hostiles
                .iter()
                .filter(|h| bad.contains(&h.peer))
                .map(|h| h.role)
                .collect();
            eprintln!("follower {i} caught sending bad data: {caught:?}");
        }
        eprintln!("{} forgeries made", forged.len());

        // Every honest node scores the hostile peers it knows down and out
        // of its mesh.
        const PUBLISHER: usize = usize::MAX;
        for h in 0..hostiles.len() {
            links.push((PUBLISHER, h));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut standing = Vec::new();
            for &(f, h) in &links {
                let node = followers.get(f).unwrap_or(&publisher);
                let g = seen_by(node, hostiles[h].peer).await;
                if !g.as_ref().is_some_and(|g| g.score < 0.0 && !g.in_mesh) {
                    let view = g.map(|g| (g.score.round(), g.in_mesh));
                    standing.push((f, hostiles[h].role, view));
                }
            }
            if standing.is_empty() {
                eprintln!("{:?}: every hostile peer is scored out", start.elapsed());
                break;
            }
            if Instant::now() > deadline {
                failures.push(format!(
                    "hostile peers in good standing, as (follower, role, (score, in mesh)) \
                     (follower {PUBLISHER} is the publisher): {standing:?}"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        for h in &hostiles {
            for t in &h.tasks {
                t.abort();
            }
        }
        for n in followers.iter().chain([&publisher]) {
            n.client.shutdown().await;
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    })
    .await
    .expect("finished in time");
}
