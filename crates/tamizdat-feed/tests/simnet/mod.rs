//! A deterministic, seeded network simulator for [`tamizdat_feed::Sync`]:
//! modelled time in milliseconds, no sockets, no threads. Shared by
//! `tests/sim.rs` and `benches/sim.rs`.
//!
//! Every honest node runs a real `Sync<u32>`; the simulator plays the
//! libp2p node around it: gossipsub with validation (a message is forwarded
//! only after its core says Accept, to a mesh of `MESH_D` connected peers
//! redrawn every `MESH_EVERY`, deduplicated by id, never retransmitted; a
//! node's own broadcasts flood every connected peer), the heads protocol,
//! manifest and file fetches (latency + size / bandwidth per link, each
//! node's uploads queued behind one `UPLOAD` capacity, a share of transfers
//! broken part-way; only a holder of the complete blob serves it), a DHT
//! whose records show after 1-3 s, outlive their provider, and whose
//! lookups take 0.5-3 s and find a bounded random subset, churn with
//! reconnection taking 0.5-5 s per link, and hostile nodes (forgers,
//! replayers, withholders, head liars, stolen-key equivocators, and DHT
//! poisoners that announce what they lack and serve corrupted bytes or
//! stall).
//!
//! Simplifications left: the mesh is drawn by each node for itself (not
//! grafted both ways), there is no IHAVE/IWANT lazy gossip, upload is a
//! FIFO queue (no fair sharing, no choking), loss does not slow transfers
//! (it breaks some), and hostile nodes never churn.
//!
//! Latency is counted from the later of an article's publication and the
//! node's last return to the network: how long a reachable node takes to
//! hold the article complete.

#![allow(dead_code)]

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque},
    fmt,
};

use tamizdat_feed::{
    Acceptance, Config, Feeds, Followed, Hash, Head, Input, MsgId, Offence, Output, Policy, Sync,
};
use tamizdat_sign::{Delegation, Entry, Manifest, PublicKey, SecretKey, Signed, TrustState};

/// Modelled wall clock at the start: a plausible Unix time, in ms.
pub const START: u64 = 1_780_000_000_000;
/// How long a fetch waits on a provider that does not answer before its
/// pieces go elsewhere (the node's fetcher), ms.
const PIECE_TIMEOUT: u64 = 500;
/// How long a dial to an unreachable peer takes to fail, ms.
const DIAL_TIMEOUT: u64 = 500;
/// Providers a modelled DHT lookup returns at most.
const DHT_ANSWER: usize = 20;
/// Messages one DHT lookup costs (a few hops, a few parallel queries).
const DHT_MSGS: u64 = 8;
/// How often hostile nodes act, ms.
const HOSTILE_EVERY: u64 = 4_000;
/// How long the fetcher waits on a provider that accepted a request and
/// then sends nothing, before its pieces go elsewhere, ms.
const STALL_TIMEOUT: u64 = 5_000;
/// How long the fetcher waits for a late piece, once every other piece has
/// come, before it asks another provider for it too (the node's end game),
/// ms.
const END_GAME_AFTER: u64 = 1_000;
/// What one node can upload, shared by all its transfers, bytes/s.
const UPLOAD: u64 = 20 << 20;
/// How long a provider record takes to become visible to lookups, ms.
const ANNOUNCE_DELAY: (u64, u64) = (1_000, 3_000);
/// How long a DHT lookup takes, ms.
const LOOKUP_TIME: (u64, u64) = (500, 3_000);
/// A lookup finds each visible record with this chance, per thousand.
const LOOKUP_FINDS: u64 = 800;
/// Gossipsub's mesh degree.
const MESH_D: usize = 6;
/// How often a node redraws its mesh, ms.
const MESH_EVERY: u64 = 30_000;
/// How long a returning node takes to reconnect to each link, ms.
const RECONNECT: (u64, u64) = (500, 5_000);

/// What a hostile node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Sends manifests with broken signatures.
    Forge,
    /// Resends old genuine manifests under fresh message ids.
    Replay,
    /// Accepts nothing, forwards nothing, never serves or answers.
    Withhold,
    /// Answers heads with a higher sequence number and a hash it cannot
    /// deliver.
    LieHeads,
    /// Holds the publisher's stolen root key and signs a second manifest
    /// for a place already taken.
    Equivocate,
    /// Holds the stolen root key and signs a second manifest for the
    /// newest place right after the publisher gossips it (once per run,
    /// for `Params::equivocate_seq`).
    EquivocateNewest,
    /// Announces every blob it hears of in the DHT (and to its
    /// neighbours) without holding it, and serves corrupted bytes.
    PoisonCorrupt,
    /// Announces like `PoisonCorrupt`, accepts fetches and then sends
    /// nothing until the fetcher gives up on it.
    PoisonStall,
}

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Seed of every random choice.
    pub seed: u64,
    /// Nodes, the publisher (node 0) included.
    pub nodes: usize,
    /// Mean connections per node.
    pub degree: usize,
    /// Articles published.
    pub articles: usize,
    /// Time between two articles, ms.
    pub publish_every: u64,
    /// Files per article, inclusive range.
    pub files: (u64, u64),
    /// File size, inclusive range, bytes.
    pub file_size: (u64, u64),
    /// Mean one-way link latency, ms.
    pub latency: u64,
    /// Uniform jitter around it, ms.
    pub jitter: u64,
    /// Messages lost, per thousand.
    pub loss_per_mille: u64,
    /// Bytes per second per link.
    pub bandwidth: u64,
    /// File transfers that break part-way (a reset connection), per
    /// thousand.
    pub transfer_fail_per_mille: u64,
    /// Gossip forwarded along a mesh of `MESH_D` peers (gossipsub), not
    /// every link.
    pub mesh: bool,
    /// The article (seq) an `EquivocateNewest` node fakes.
    pub equivocate_seq: u64,
    /// Share of hostile nodes, percent.
    pub hostile_percent: u64,
    /// Their strategies, dealt out in turn.
    pub strategies: Vec<Strategy>,
    /// Honest nodes going offline per minute, percent.
    pub churn_percent_per_min: u64,
    /// How long a churned node stays away, inclusive range, ms.
    pub offline_for: (u64, u64),
    /// The publisher leaves this long after its last article, ms.
    pub publisher_leaves_after: u64,
    /// Modelled length of the run, ms.
    pub duration: u64,
    /// Churn stops this long before the end, so everyone is back.
    pub calm_before_end: u64,
    /// Articles (by sequence number) whose publication is lost: every copy
    /// the publisher gossips.
    pub lose_gossip_of: Vec<u64>,
    /// Planned outages: (node, from, until), ms since the start.
    pub outages: Vec<(u32, u64, u64)>,
    /// Whether a node tells its neighbours of each blob it completes (the
    /// core's `Announce` as an `Input::Have` hint), as the node does with
    /// `/tamizdat/have/1`. Without the hints the core does much worse (at
    /// 300 nodes delivery fell to about 0.90 and p50 to 24 s in this
    /// model): the bench prints both.
    pub have_hints: bool,
    /// The cores' configuration.
    pub config: Config,
}

impl Params {
    /// The full model at `nodes` nodes: 50 ± 20 ms, 1 % loss, 30 % hostile
    /// with every strategy, 10 % churn per minute.
    pub fn full(nodes: usize, seed: u64) -> Self {
        Self {
            seed,
            nodes,
            degree: 8,
            articles: 10,
            publish_every: 2_000,
            files: (1, 3),
            file_size: (64 << 10, 1 << 20),
            latency: 50,
            jitter: 20,
            loss_per_mille: 10,
            bandwidth: 10 << 20,
            transfer_fail_per_mille: 20,
            mesh: true,
            equivocate_seq: 5,
            hostile_percent: 30,
            strategies: vec![
                Strategy::Forge,
                Strategy::Replay,
                Strategy::Withhold,
                Strategy::LieHeads,
                Strategy::Equivocate,
                Strategy::PoisonCorrupt,
                Strategy::PoisonStall,
            ],
            churn_percent_per_min: 10,
            offline_for: (5_000, 20_000),
            publisher_leaves_after: 10_000,
            duration: 90_000,
            calm_before_end: 30_000,
            lose_gossip_of: Vec::new(),
            outages: Vec::new(),
            have_hints: true,
            config: Config::default(),
        }
    }

    /// A small, calm network: no loss, no hostiles, no churn.
    pub fn calm(nodes: usize, seed: u64) -> Self {
        Self {
            articles: 3,
            loss_per_mille: 0,
            transfer_fail_per_mille: 0,
            hostile_percent: 0,
            churn_percent_per_min: 0,
            duration: 30_000,
            calm_before_end: 0,
            ..Self::full(nodes, seed)
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Nodes in the run.
    pub nodes: usize,
    /// Honest followers online at the end (the publisher not counted).
    pub honest: usize,
    /// Articles published.
    pub articles: usize,
    /// (node, article) pairs that should be complete.
    pub expected: usize,
    /// Those that are.
    pub delivered: usize,
    /// Those that cannot be, and are reported: articles at or after a place
    /// where the node took a stolen-key fake (it then sees the genuine
    /// history as a fork of the publisher's key) at nodes that reported
    /// the conflict.
    pub excused: usize,
    /// `delivered / expected`.
    pub delivery: f64,
    /// Median delivery latency, modelled ms.
    pub p50_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// 99th percentile of the articles published while the node was
    /// online (since its last return), and how many they are.
    pub p99_online_ms: u64,
    pub online_pairs: usize,
    /// 99th percentile of those published before the node's last return
    /// (counted from it: reconnection included), and how many.
    pub p99_returned_ms: u64,
    pub returned_pairs: usize,
    /// 99th percentile of the time until the manifest was recorded, and
    /// of the time from then until the files were complete.
    pub p99_manifest_ms: u64,
    pub p99_files_ms: u64,
    /// Slowest.
    pub max_ms: u64,
    /// Messages sent per node per article (all nodes, all kinds).
    pub msgs_per_node_article: f64,
    /// Bytes sent per node per article (files included).
    pub bytes_per_node_article: f64,
    /// Forged (badly signed) or otherwise invalid manifests recorded by an
    /// honest node: must be 0.
    pub refused_recorded: usize,
    /// Honest nodes that recorded a stolen-key fake (validly signed, for a
    /// place whose genuine manifest they had not seen yet, nor its
    /// successor): no rule can tell it from the genuine one.
    pub deceived: usize,
    /// Of those, the ones that never reported the conflict.
    pub deceived_silent: usize,
    /// Of those, the ones with an honest link that recorded the genuine
    /// manifest for the faked place (the genuine history could reach
    /// them): must be 0.
    pub deceived_silent_reachable: usize,
    /// Honest nodes that recorded two manifests for one place: must be 0.
    pub double_shown: usize,
    /// Honest nodes that reported an equivocation.
    pub conflict_reporters: usize,
    /// Penalties honest cores gave hostile peers.
    pub penalised_hostile: u64,
    /// Penalties honest cores gave honest peers.
    pub penalised_honest: u64,
    /// Manifest fetches honest cores sent to head liars.
    pub asked_liars: u64,
    /// The most manifest fetches one honest core sent to one liar.
    pub asked_one_liar_max: u64,
    /// Hostile gossip messages sent.
    pub hostile_sent: u64,
    /// Most file bytes one honest node served, as a share of all served.
    pub max_served_share: f64,
    /// The publisher's share of all file bytes served: low when the load
    /// spreads.
    pub publisher_served_share: f64,
    /// File transfers that failed (broken, corrupted, stalled, gone).
    pub failed_transfers: u64,
    /// Penalties for bad file data or wrong manifest bytes given to
    /// hostile peers.
    pub bad_data_penalties: u64,
    /// (node, article) pairs delivered, of articles no `EquivocateNewest`
    /// node faked.
    pub delivered_unfaked: usize,
    /// Those expected.
    pub expected_unfaked: usize,
    /// Events processed.
    pub events: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes {} (honest followers {}), articles {}",
            self.nodes, self.honest, self.articles
        )?;
        writeln!(
            f,
            "delivery {:.4} ({}/{}, {} excused), latency p50 {} ms, p99 {} ms, max {} ms",
            self.delivery,
            self.delivered,
            self.expected,
            self.excused,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )?;
        writeln!(
            f,
            "p99 of articles published while the node was online {} ms ({} of them), of those published before its return {} ms ({})",
            self.p99_online_ms, self.online_pairs, self.p99_returned_ms, self.returned_pairs
        )?;
        writeln!(
            f,
            "p99 until the manifest was recorded {} ms, from then until the files were complete {} ms",
            self.p99_manifest_ms, self.p99_files_ms
        )?;
        writeln!(
            f,
            "per node per article: {:.1} messages, {:.0} bytes",
            self.msgs_per_node_article, self.bytes_per_node_article
        )?;
        writeln!(
            f,
            "refused recorded {}, deceived by a stolen key {} (silent {}, of which reachable {}), double shown {}, conflict reporters {}, penalties hostile {} honest {}",
            self.refused_recorded,
            self.deceived,
            self.deceived_silent,
            self.deceived_silent_reachable,
            self.double_shown,
            self.conflict_reporters,
            self.penalised_hostile,
            self.penalised_honest
        )?;
        write!(
            f,
            "fetches to liars {} (max {} per pair), hostile messages {}, busiest follower served {:.1} %, publisher {:.1} %, events {}",
            self.asked_liars,
            self.asked_one_liar_max,
            self.hostile_sent,
            self.max_served_share * 100.0,
            self.publisher_served_share * 100.0,
            self.events
        )?;
        write!(
            f,
            "\nfailed transfers {}, bad-data penalties {}, unfaked delivered {}/{}",
            self.failed_transfers,
            self.bad_data_penalties,
            self.delivered_unfaked,
            self.expected_unfaked
        )
    }
}

/// xorshift64* for the simulator's own choices.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
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
    fn range(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn per_mille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Publisher,
    Honest,
    Hostile(Strategy),
}

#[derive(Debug)]
enum Held {
    Manifest(Vec<u8>),
    File,
}

#[derive(Debug)]
struct Node {
    role: Role,
    sync: Option<Sync<u32>>,
    online: bool,
    epoch: u32,
    online_since: u64,
    links: Vec<u32>,
    /// Links with a live connection now.
    linked: BTreeSet<u32>,
    /// When its uploader has sent everything queued so far.
    busy_until: u64,
    /// Gossipsub mesh peers, and when they were drawn.
    mesh: Vec<u32>,
    mesh_at: u64,
    held: HashMap<Hash, Held>,
    seen_gossip: HashSet<MsgId>,
    pending_gossip: HashMap<MsgId, (u32, Vec<u8>)>,
    timer_at: u64,
    /// seq → manifest recorded there.
    recorded: BTreeMap<u64, Hash>,
    delivered: BTreeMap<usize, u64>,
    /// Articles of `delivered` published before the node's last return:
    /// their latency counts from that return.
    after_return: BTreeSet<usize>,
    /// When each article (by seq) was first recorded, modelled ms.
    recorded_at: BTreeMap<u64, u64>,
    /// Of `delivered`: how long the manifest took (from the same start).
    manifest_took: BTreeMap<usize, u64>,
    conflicts: u64,
    double_shown: bool,
    backlog: Vec<Input<u32>>,
    sent_msgs: u64,
    sent_bytes: u64,
    served: u64,
    acted: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
enum Msg {
    Gossip { id: MsgId, data: Vec<u8> },
    HeadsReq { publishers: Vec<PublicKey> },
    HeadsResp { heads: Vec<Head> },
    ManifestReq { hash: Hash },
    ManifestResp { hash: Hash, bytes: Option<Vec<u8>> },
    Have { hash: Hash },
}

impl Msg {
    fn size(&self) -> u64 {
        match self {
            Msg::Gossip { data, .. } => data.len() as u64 + 48,
            Msg::HeadsReq { publishers } => 16 + 32 * publishers.len() as u64,
            Msg::HeadsResp { heads } => 16 + 80 * heads.len() as u64,
            Msg::ManifestReq { .. } | Msg::Have { .. } => 48,
            Msg::ManifestResp { bytes, .. } => 48 + bytes.as_ref().map_or(0, |b| b.len() as u64),
        }
    }
}

#[derive(Debug)]
enum Ev {
    Msg {
        to: u32,
        from: u32,
        epochs: (u32, u32),
        msg: Msg,
    },
    /// A local result for a core (fetch outcome, DHT answer).
    Local {
        to: u32,
        epoch: u32,
        input: Input<u32>,
    },
    FileEnd {
        to: u32,
        epoch: u32,
        hash: Hash,
        size: u64,
        from: Vec<(u32, u32)>,
        tried: Vec<u32>,
    },
    Lookup {
        to: u32,
        epoch: u32,
        hash: Hash,
    },
    Timer {
        node: u32,
        at: u64,
    },
    Publish(usize),
    PublisherLeaves,
    Churn,
    Down(u32),
    Up(u32),
    Hostile,
    /// A returning node's connection to one link comes up.
    Connect {
        a: u32,
        b: u32,
        epoch: u32,
    },
    /// `EquivocateNewest` nodes fake article `k` right after its gossip.
    Fake(usize),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug)]
struct Article {
    seq: u64,
    id: Hash,
    bytes: Vec<u8>,
    files: Vec<(Hash, u64)>,
    at: u64,
}

/// One simulated network.
pub struct Sim {
    p: Params,
    now: u64,
    rng: Rng,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    nodes: Vec<Node>,
    root: SecretKey,
    signer: SecretKey,
    delegation: Vec<u8>,
    articles: Vec<Article>,
    by_id: HashMap<Hash, usize>,
    by_file: HashMap<Hash, Vec<usize>>,
    /// Ids of forged manifests.
    bad_ids: HashSet<Hash>,
    /// Ids of the stolen-key fakes.
    fake_ids: HashSet<Hash>,
    /// Provider records: provider → when lookups start to see it. Records
    /// outlive their provider's presence (stale).
    dht: HashMap<Hash, BTreeMap<u32, u64>>,
    failed_transfers: u64,
    bad_data_penalties: u64,
    work: VecDeque<(u32, Input<u32>)>,
    penalised_hostile: u64,
    penalised_honest: u64,
    asked_liars: BTreeMap<(u32, u32), u64>,
    hostile_sent: u64,
    events: u64,
    counter: u64,
}

impl Sim {
    /// Builds the network: keys, graph, cores, and the first events.
    pub fn new(p: Params) -> Self {
        let mut rng = Rng::new(p.seed);
        let root = SecretKey::from_seed(&seed_bytes(p.seed, 1));
        let signer = SecretKey::from_seed(&seed_bytes(p.seed, 2));
        let start_s = START / 1000;
        let delegation = Signed::sign(
            Delegation {
                root: root.public(),
                key: signer.public(),
                not_before: start_s - 86_400,
                not_after: start_s + 30 * 86_400,
                feed: Some("main".into()),
            },
            &root,
        )
        .expect("delegation signs")
        .bytes()
        .to_vec();

        let n = p.nodes;
        let hostile = n * p.hostile_percent as usize / 100;
        // Hostile nodes are spread over the ids, never node 0.
        let mut ids: Vec<u32> = (1..n as u32).collect();
        shuffle(&mut rng, &mut ids);
        let hostile_ids: BTreeSet<u32> = ids.iter().copied().take(hostile).collect();
        let mut next_strategy = 0;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let role = if i == 0 {
                Role::Publisher
            } else if hostile_ids.contains(&i) && !p.strategies.is_empty() {
                next_strategy += 1;
                Role::Hostile(p.strategies[(next_strategy - 1) % p.strategies.len()])
            } else {
                Role::Honest
            };
            let sync = match role {
                Role::Hostile(_) => None,
                _ => {
                    let follows = vec![Followed {
                        key: root.public(),
                        name: None,
                        policy: Policy::default(),
                    }];
                    let feeds = Feeds::new(TrustState::default(), follows);
                    Some(Sync::new(feeds, p.config, p.seed ^ u64::from(i) << 20))
                }
            };
            nodes.push(Node {
                role,
                sync,
                online: true,
                epoch: 0,
                online_since: 0,
                links: Vec::new(),
                linked: BTreeSet::new(),
                busy_until: 0,
                mesh: Vec::new(),
                mesh_at: 0,
                held: HashMap::new(),
                seen_gossip: HashSet::new(),
                pending_gossip: HashMap::new(),
                timer_at: u64::MAX,
                recorded: BTreeMap::new(),
                delivered: BTreeMap::new(),
                after_return: BTreeSet::new(),
                recorded_at: BTreeMap::new(),
                manifest_took: BTreeMap::new(),
                conflicts: 0,
                double_shown: false,
                backlog: Vec::new(),
                sent_msgs: 0,
                sent_bytes: 0,
                served: 0,
                acted: BTreeSet::new(),
            });
        }
        // A random ring (connected), then random edges up to the degree.
        let mut edges = BTreeSet::new();
        let mut ring: Vec<u32> = (0..n as u32).collect();
        shuffle(&mut rng, &mut ring);
        for w in 0..n {
            let (a, b) = (ring[w], ring[(w + 1) % n]);
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        }
        let extra = (p.degree / 2).saturating_sub(1);
        for a in 0..n as u32 {
            for _ in 0..extra {
                let b = rng.below(n as u64) as u32;
                if a != b {
                    edges.insert((a.min(b), a.max(b)));
                }
            }
        }
        for (a, b) in &edges {
            nodes[*a as usize].links.push(*b);
            nodes[*b as usize].links.push(*a);
            nodes[*a as usize].linked.insert(*b);
            nodes[*b as usize].linked.insert(*a);
        }
        let mut sim = Sim {
            now: 0,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes,
            root,
            signer,
            delegation,
            articles: Vec::new(),
            by_id: HashMap::new(),
            by_file: HashMap::new(),
            bad_ids: HashSet::new(),
            fake_ids: HashSet::new(),
            dht: HashMap::new(),
            failed_transfers: 0,
            bad_data_penalties: 0,
            work: VecDeque::new(),
            penalised_hostile: 0,
            penalised_honest: 0,
            asked_liars: BTreeMap::new(),
            hostile_sent: 0,
            events: 0,
            counter: 0,
            p,
        };
        for (a, b) in edges {
            sim.work.push_back((a, Input::PeerUp(b)));
            sim.work.push_back((b, Input::PeerUp(a)));
        }
        sim.drain();
        for k in 0..sim.p.articles {
            let at = 2_000 + k as u64 * sim.p.publish_every;
            sim.at(at, Ev::Publish(k));
        }
        let last = 2_000 + (sim.p.articles as u64).saturating_sub(1) * sim.p.publish_every;
        sim.at(last + sim.p.publisher_leaves_after, Ev::PublisherLeaves);
        if sim.p.churn_percent_per_min > 0 {
            sim.at(1_000, Ev::Churn);
        }
        if sim.nodes.iter().any(|n| matches!(n.role, Role::Hostile(_))) {
            sim.at(2_500, Ev::Hostile);
        }
        for (node, from, until) in sim.p.outages.clone() {
            sim.at(from, Ev::Down(node));
            sim.at(until, Ev::Up(node));
        }
        sim
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > self.p.duration {
                break;
            }
            self.now = q.at;
            self.events += 1;
            self.event(q.ev);
            self.drain();
        }
        self.now = self.p.duration;
        self.report()
    }

    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn wall(&self) -> u64 {
        START + self.now
    }

    fn link_delay(&mut self) -> u64 {
        let j = self.p.jitter;
        self.p.latency - j + self.rng.below(2 * j + 1)
    }

    fn connected(&self, a: u32, b: u32) -> bool {
        self.nodes[a as usize].online
            && self.nodes[b as usize].online
            && self.nodes[a as usize].linked.contains(&b)
    }

    /// Links connected now.
    fn live_links(&self, n: u32) -> Vec<u32> {
        self.nodes[n as usize]
            .linked
            .iter()
            .copied()
            .filter(|m| self.connected(n, *m))
            .collect()
    }

    /// Where `n` forwards gossip: its mesh (redrawn every `MESH_EVERY`, or
    /// when fewer than 4 of its members are still connected), or every
    /// link without a mesh.
    fn forward_to(&mut self, n: u32) -> Vec<u32> {
        let live = self.live_links(n);
        if !self.p.mesh {
            return live;
        }
        let node = &self.nodes[n as usize];
        let alive = node.mesh.iter().filter(|m| live.contains(m)).count();
        if self.now >= node.mesh_at + MESH_EVERY || alive < 4.min(live.len()) {
            let mut pick = live.clone();
            shuffle(&mut self.rng, &mut pick);
            pick.truncate(MESH_D);
            let node = &mut self.nodes[n as usize];
            node.mesh = pick;
            node.mesh_at = self.now;
        }
        let node = &self.nodes[n as usize];
        node.mesh
            .iter()
            .copied()
            .filter(|m| live.contains(m))
            .collect()
    }

    /// Records `n` as a provider of `hash`, visible after a delay.
    fn provide(&mut self, n: u32, hash: Hash) {
        let at = self.now + self.rng.range(ANNOUNCE_DELAY);
        let e = self.dht.entry(hash).or_default().entry(n).or_insert(at);
        *e = (*e).min(at);
        self.nodes[n as usize].sent_msgs += DHT_MSGS;
        self.nodes[n as usize].sent_bytes += DHT_MSGS * 100;
    }

    /// Sends a message over the link (or a dialled connection when `dial`).
    fn send(&mut self, from: u32, to: u32, msg: Msg, dial: bool) -> bool {
        if !(self.connected(from, to) || dial && self.nodes[to as usize].online) {
            return false;
        }
        let f = &mut self.nodes[from as usize];
        f.sent_msgs += 1;
        f.sent_bytes += msg.size();
        if self.rng.per_mille(self.p.loss_per_mille) {
            return true;
        }
        let delay = self.link_delay();
        let epochs = (
            self.nodes[from as usize].epoch,
            self.nodes[to as usize].epoch,
        );
        self.at(
            self.now + delay,
            Ev::Msg {
                to,
                from,
                epochs,
                msg,
            },
        );
        true
    }

    fn local(&mut self, to: u32, after: u64, input: Input<u32>) {
        let epoch = self.nodes[to as usize].epoch;
        self.at(self.now + after, Ev::Local { to, epoch, input });
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Msg {
                to,
                from,
                epochs,
                msg,
            } => {
                let ok = self.nodes[from as usize].epoch == epochs.0
                    && self.nodes[to as usize].epoch == epochs.1
                    && self.nodes[to as usize].online;
                if ok {
                    self.receive(to, from, msg);
                }
            }
            Ev::Local { to, epoch, input } => {
                let node = &mut self.nodes[to as usize];
                if node.epoch == epoch && node.online {
                    self.work.push_back((to, input));
                } else if let Input::FileDone { hash, .. } | Input::FileFailed { hash, .. } = input
                {
                    // The fetch broke when the node lost the network.
                    node.backlog.push(Input::FileFailed {
                        hash,
                        tried: Vec::new(),
                        bad: Vec::new(),
                    });
                }
            }
            Ev::FileEnd {
                to,
                epoch,
                hash,
                size,
                from,
                tried,
            } => self.file_end(to, epoch, hash, size, from, tried),
            Ev::Lookup { to, epoch, hash } => {
                // Records already visible, whether or not their provider is
                // still there (stale), each found with some chance: a
                // lookup reaches only some of the closest nodes.
                let visible: Vec<u32> = self
                    .dht
                    .get(&hash)
                    .map(|s| {
                        s.iter()
                            .filter(|(p, at)| **at <= self.now && **p != to)
                            .map(|(p, _)| *p)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut peers = Vec::new();
                for p in visible {
                    if self.rng.per_mille(LOOKUP_FINDS) {
                        peers.push(p);
                    }
                }
                shuffle(&mut self.rng, &mut peers);
                peers.truncate(DHT_ANSWER);
                let node = &self.nodes[to as usize];
                if node.epoch == epoch && node.online {
                    self.work.push_back((to, Input::Providers { hash, peers }));
                }
            }
            Ev::Timer { node, at } => {
                let n = &mut self.nodes[node as usize];
                if n.timer_at == at {
                    n.timer_at = u64::MAX;
                    if n.online {
                        self.work.push_back((node, Input::Timer));
                    }
                }
            }
            Ev::Publish(k) => self.publish(k),
            Ev::PublisherLeaves => self.down(0),
            Ev::Churn => {
                if self.now + self.p.calm_before_end < self.p.duration {
                    let p = self.p.churn_percent_per_min * 1000 / 60;
                    for i in 1..self.nodes.len() as u32 {
                        let n = &self.nodes[i as usize];
                        if n.role == Role::Honest && n.online && self.rng.below(100_000) < p {
                            let away = self.rng.range(self.p.offline_for);
                            self.down(i);
                            self.at(self.now + away, Ev::Up(i));
                        }
                    }
                    self.at(self.now + 1_000, Ev::Churn);
                }
            }
            Ev::Down(i) => self.down(i),
            Ev::Up(i) => self.up(i),
            Ev::Connect { a, b, epoch } => {
                let (na, nb) = (&self.nodes[a as usize], &self.nodes[b as usize]);
                if na.epoch == epoch && na.online && nb.online && !na.linked.contains(&b) {
                    self.nodes[a as usize].linked.insert(b);
                    self.nodes[b as usize].linked.insert(a);
                    self.work.push_back((b, Input::PeerUp(a)));
                    self.work.push_back((a, Input::PeerUp(b)));
                }
            }
            Ev::Fake(k) => {
                for i in 0..self.nodes.len() as u32 {
                    if self.nodes[i as usize].role == Role::Hostile(Strategy::EquivocateNewest) {
                        self.fake(i, k);
                    }
                }
            }
            Ev::Hostile => {
                for i in 0..self.nodes.len() as u32 {
                    if let Role::Hostile(s) = self.nodes[i as usize].role {
                        self.act(i, s);
                    }
                }
                self.at(self.now + HOSTILE_EVERY, Ev::Hostile);
            }
        }
    }

    fn down(&mut self, i: u32) {
        if !self.nodes[i as usize].online {
            return;
        }
        for m in self.live_links(i) {
            self.work.push_back((m, Input::PeerDown(i)));
            self.work.push_back((i, Input::PeerDown(m)));
        }
        // The node's own PeerDowns are taken before it goes.
        self.drain();
        for m in std::mem::take(&mut self.nodes[i as usize].linked) {
            self.nodes[m as usize].linked.remove(&i);
        }
        let n = &mut self.nodes[i as usize];
        n.online = false;
        n.mesh.clear();
        n.epoch += 1;
        n.pending_gossip.clear();
    }

    fn up(&mut self, i: u32) {
        if self.nodes[i as usize].online || i == 0 && self.publisher_gone() {
            return;
        }
        if i == 0 {
            for a in &mut self.articles {
                a.at = a.at.min(self.now);
            }
        }
        let n = &mut self.nodes[i as usize];
        n.online = true;
        n.epoch += 1;
        n.online_since = self.now;
        n.timer_at = u64::MAX;
        let backlog = std::mem::take(&mut n.backlog);
        let (links, epoch) = (n.links.clone(), n.epoch);
        // Each link is dialled again, and comes up after a while.
        for b in links {
            let after = self.rng.range(RECONNECT);
            self.at(self.now + after, Ev::Connect { a: i, b, epoch });
        }
        for input in backlog {
            self.work.push_back((i, input));
        }
        self.work.push_back((i, Input::Timer));
    }

    fn publisher_gone(&self) -> bool {
        let last = 2_000 + (self.p.articles as u64).saturating_sub(1) * self.p.publish_every;
        self.now >= last + self.p.publisher_leaves_after
    }

    fn receive(&mut self, to: u32, from: u32, msg: Msg) {
        let role = self.nodes[to as usize].role;
        match msg {
            Msg::Gossip { id, data } => {
                if from == 0
                    && let Some(&k) = self.by_id.get(blake3::hash(&data).as_bytes())
                    && self.p.lose_gossip_of.contains(&self.articles[k].seq)
                {
                    return;
                }
                let node = &mut self.nodes[to as usize];
                if !node.seen_gossip.insert(id.clone()) {
                    return;
                }
                if matches!(role, Role::Hostile(_)) {
                    return;
                }
                let node = &mut self.nodes[to as usize];
                node.pending_gossip.insert(id.clone(), (from, data.clone()));
                let topic_of = self.root.public();
                self.work.push_back((
                    to,
                    Input::Gossip {
                        from,
                        id,
                        topic_of,
                        data,
                    },
                ));
            }
            Msg::HeadsReq { publishers } => match role {
                Role::Hostile(Strategy::LieHeads) => {
                    self.counter += 1;
                    let seq = self.articles.len() as u64 + 3;
                    let heads = vec![Head {
                        publisher: self.root.public(),
                        feed: "main".into(),
                        seq,
                        hash: *blake3::hash(&self.counter.to_le_bytes()).as_bytes(),
                    }];
                    self.send(to, from, Msg::HeadsResp { heads }, true);
                }
                Role::Hostile(_) => {}
                _ => {
                    let heads = self.nodes[to as usize]
                        .sync
                        .as_ref()
                        .map(|s| s.heads(&publishers))
                        .unwrap_or_default();
                    self.send(to, from, Msg::HeadsResp { heads }, true);
                }
            },
            Msg::HeadsResp { heads } => {
                self.work.push_back((to, Input::Heads { from, heads }));
            }
            Msg::ManifestReq { hash } => {
                if role == Role::Hostile(Strategy::PoisonCorrupt) {
                    // Announced it, does not hold it: sends garbage.
                    let bytes = Some(hash.iter().rev().copied().collect());
                    self.send(to, from, Msg::ManifestResp { hash, bytes }, true);
                    return;
                }
                if matches!(role, Role::Hostile(_)) {
                    return;
                }
                let bytes = match self.nodes[to as usize].held.get(&hash) {
                    Some(Held::Manifest(b)) => Some(b.clone()),
                    _ => None,
                };
                self.send(to, from, Msg::ManifestResp { hash, bytes }, true);
            }
            Msg::ManifestResp { hash, bytes } => {
                let input = match bytes {
                    Some(bytes) => Input::Manifest { from, hash, bytes },
                    None => Input::ManifestFailed { from, hash },
                };
                self.work.push_back((to, input));
            }
            Msg::Have { hash } => {
                if !matches!(role, Role::Hostile(_)) {
                    self.work.push_back((to, Input::Have { from, hash }));
                }
            }
        }
    }

    /// Feeds queued inputs to their cores and carries out the outputs.
    fn drain(&mut self) {
        while let Some((n, input)) = self.work.pop_front() {
            let now = self.wall();
            let Some(sync) = self.nodes[n as usize].sync.as_mut() else {
                continue;
            };
            let outs = sync.handle(input, now);
            self.apply(n, outs);
            self.schedule_timer(n);
        }
    }

    fn schedule_timer(&mut self, n: u32) {
        let Some(t) = self.nodes[n as usize]
            .sync
            .as_ref()
            .and_then(|s| s.next_timer())
        else {
            return;
        };
        let at = t.saturating_sub(START).max(self.now + 1);
        let node = &mut self.nodes[n as usize];
        if at < node.timer_at {
            node.timer_at = at;
            self.at(at, Ev::Timer { node: n, at });
        }
    }

    fn apply(&mut self, n: u32, outs: Vec<Output<u32>>) {
        for o in outs {
            match o {
                Output::Validate { id, acceptance } => {
                    let Some((from, data)) = self.nodes[n as usize].pending_gossip.remove(&id)
                    else {
                        continue;
                    };
                    if acceptance == Acceptance::Accept {
                        for m in self.forward_to(n) {
                            if m != from {
                                let msg = Msg::Gossip {
                                    id: id.clone(),
                                    data: data.clone(),
                                };
                                self.send(n, m, msg, false);
                            }
                        }
                    }
                }
                Output::Broadcast { data, .. } => {
                    let id = MsgId(blake3::hash(&data).as_bytes().to_vec());
                    self.nodes[n as usize].seen_gossip.insert(id.clone());
                    // Flood publish (gossipsub's default): every connected
                    // peer, not only the mesh.
                    for m in self.live_links(n) {
                        let msg = Msg::Gossip {
                            id: id.clone(),
                            data: data.clone(),
                        };
                        self.send(n, m, msg, false);
                    }
                }
                Output::AskHeads { peer, publishers } => {
                    self.send(n, peer, Msg::HeadsReq { publishers }, false);
                }
                Output::FetchManifest { peer, hash } => {
                    if matches!(
                        self.nodes[peer as usize].role,
                        Role::Hostile(Strategy::LieHeads)
                    ) {
                        *self.asked_liars.entry((n, peer)).or_default() += 1;
                    }
                    if !self.send(n, peer, Msg::ManifestReq { hash }, true) {
                        self.local(n, DIAL_TIMEOUT, Input::ManifestFailed { from: peer, hash });
                    }
                }
                Output::Record(m) => {
                    let id = m.id();
                    let seq = m.manifest().seq;
                    let now = self.now;
                    let node = &mut self.nodes[n as usize];
                    node.recorded_at.entry(seq).or_insert(now);
                    node.held
                        .insert(id, Held::Manifest(m.envelope().bytes().to_vec()));
                    if let Some(old) = node.recorded.insert(seq, id)
                        && old != id
                    {
                        node.double_shown = true;
                    }
                    let missing: Vec<(Hash, u64)> = m
                        .manifest()
                        .entries
                        .iter()
                        .filter(|e| !node.held.contains_key(&e.hash))
                        .map(|e| (e.hash, e.size))
                        .collect();
                    self.work.push_front((
                        n,
                        Input::Stored {
                            manifest: id,
                            missing,
                        },
                    ));
                    if let Some(&k) = self.by_id.get(&id) {
                        self.check_delivered(n, k);
                    }
                }
                Output::FetchFile {
                    hash,
                    size,
                    providers,
                } => self.fetch_file(n, hash, size, providers),
                Output::LookupProviders(hash) => {
                    self.nodes[n as usize].sent_msgs += DHT_MSGS;
                    self.nodes[n as usize].sent_bytes += DHT_MSGS * 100;
                    let delay = self.rng.range(LOOKUP_TIME);
                    let epoch = self.nodes[n as usize].epoch;
                    self.at(self.now + delay, Ev::Lookup { to: n, epoch, hash });
                }
                Output::Announce(hash) => {
                    self.provide(n, hash);
                    if self.p.have_hints {
                        for m in self.live_links(n) {
                            self.send(n, m, Msg::Have { hash }, false);
                        }
                    }
                }
                Output::Persist | Output::Keep(_) => {}
                Output::Penalise { peer, offence } => {
                    let hostile = matches!(self.nodes[peer as usize].role, Role::Hostile(_));
                    if hostile && matches!(offence, Offence::BadData | Offence::WrongHash) {
                        self.bad_data_penalties += 1;
                    }
                    if hostile {
                        self.penalised_hostile += 1;
                    } else {
                        self.penalised_honest += 1;
                    }
                }
                Output::Conflict(_) => self.nodes[n as usize].conflicts += 1,
                _ => {}
            }
        }
    }

    fn fetch_file(&mut self, n: u32, hash: Hash, size: u64, providers: Vec<u32>) {
        let mut serving = Vec::new();
        let mut silent = false;
        let mut stalled = false;
        let mut bad = Vec::new();
        for &p in &providers {
            self.nodes[n as usize].sent_msgs += 1;
            self.nodes[n as usize].sent_bytes += 48;
            let node = &self.nodes[p as usize];
            if !node.online {
                // A stale record: the dial times out.
                silent = true;
                continue;
            }
            match node.role {
                Role::Hostile(Strategy::PoisonCorrupt) => bad.push(p),
                Role::Hostile(Strategy::PoisonStall) => stalled = true,
                Role::Hostile(_) => silent = true,
                _ if matches!(node.held.get(&hash), Some(Held::File)) => serving.push(p),
                // Answers "not here" at once.
                _ => {}
            }
        }
        if !bad.is_empty() {
            // The first chunk group from a corrupting provider fails
            // verification: the fetcher drops the attempt and names it.
            self.failed_transfers += 1;
            let after = 2 * self.link_delay() + (16 << 10) * 1000 / self.p.bandwidth + 1;
            let input = Input::FileFailed {
                hash,
                tried: providers,
                bad,
            };
            self.local(n, after, input);
            return;
        }
        if serving.is_empty() {
            let after = if stalled {
                self.failed_transfers += 1;
                STALL_TIMEOUT
            } else if silent {
                PIECE_TIMEOUT
            } else {
                2 * self.p.latency
            };
            let input = Input::FileFailed {
                hash,
                tried: providers,
                bad: Vec::new(),
            };
            self.local(n, after.max(1), input);
            return;
        }
        // Pieces split evenly. Each server's uploader is shared by all its
        // transfers (a queue at `UPLOAD`), and each link is capped at the
        // link bandwidth. A silent provider's share goes to the others after
        // the fetcher's timeout; a stalling one's in the end game, once the
        // others have sent theirs.
        let k = serving.len() as u64;
        let share = size.div_ceil(k);
        let mut finish = 0;
        for &p in &serving {
            let up_ms = share * 1000 / UPLOAD;
            let link_ms = share * 1000 / self.p.bandwidth;
            let start = self.nodes[p as usize].busy_until.max(self.now);
            self.nodes[p as usize].busy_until = start + up_ms;
            let t = 2 * self.link_delay() + (start - self.now + up_ms).max(link_ms);
            finish = finish.max(t);
        }
        if stalled {
            finish += END_GAME_AFTER + share * 1000 / self.p.bandwidth;
        } else if silent {
            finish += PIECE_TIMEOUT + share * 1000 / self.p.bandwidth;
        }
        if self.rng.per_mille(self.p.transfer_fail_per_mille) {
            // A connection reset part-way: the fetcher gives up this round.
            self.failed_transfers += 1;
            let at = 1 + self.rng.below(finish.max(1));
            let input = Input::FileFailed {
                hash,
                tried: providers,
                bad: Vec::new(),
            };
            self.local(n, at, input);
            return;
        }
        let from = serving
            .iter()
            .map(|p| (*p, self.nodes[*p as usize].epoch))
            .collect();
        let epoch = self.nodes[n as usize].epoch;
        self.at(
            self.now + finish,
            Ev::FileEnd {
                to: n,
                epoch,
                hash,
                size,
                from,
                tried: providers,
            },
        );
    }

    fn file_end(
        &mut self,
        to: u32,
        epoch: u32,
        hash: Hash,
        size: u64,
        from: Vec<(u32, u32)>,
        tried: Vec<u32>,
    ) {
        let alive: Vec<u32> = from
            .iter()
            .filter(|(p, e)| {
                let n = &self.nodes[*p as usize];
                n.online && n.epoch == *e
            })
            .map(|(p, _)| *p)
            .collect();
        let node = &mut self.nodes[to as usize];
        if node.epoch != epoch || !node.online {
            node.backlog.push(Input::FileFailed {
                hash,
                tried,
                bad: Vec::new(),
            });
            return;
        }
        if alive.len() < from.len() {
            // A server left mid-transfer: the fetcher tries again.
            self.failed_transfers += 1;
            self.work.push_back((
                to,
                Input::FileFailed {
                    hash,
                    tried,
                    bad: Vec::new(),
                },
            ));
            return;
        }
        let share = size.div_ceil(alive.len() as u64);
        for p in &alive {
            let s = &mut self.nodes[*p as usize];
            s.sent_bytes += share;
            s.served += share;
        }
        self.nodes[to as usize].held.insert(hash, Held::File);
        self.work
            .push_back((to, Input::FileDone { hash, from: alive }));
        if let Some(ks) = self.by_file.get(&hash).cloned() {
            for k in ks {
                self.check_delivered(to, k);
            }
        }
    }

    fn check_delivered(&mut self, n: u32, k: usize) {
        let a = &self.articles[k];
        let node = &mut self.nodes[n as usize];
        if node.delivered.contains_key(&k) || node.role != Role::Honest {
            return;
        }
        if node.recorded.get(&a.seq) == Some(&a.id)
            && a.files
                .iter()
                .all(|(h, _)| matches!(node.held.get(h), Some(Held::File)))
        {
            let from = a.at.max(node.online_since);
            if node.online_since > a.at {
                node.after_return.insert(k);
            }
            let recorded = node.recorded_at.get(&a.seq).copied().unwrap_or(self.now);
            node.manifest_took.insert(k, recorded.saturating_sub(from));
            node.delivered.insert(k, self.now - from);
        }
    }

    fn publish(&mut self, k: usize) {
        let seq = k as u64 + 1;
        let prev = self.articles.last().map(|a| a.id);
        let count = self.rng.range(self.p.files);
        let mut entries = Vec::new();
        for f in 0..count {
            let size = self.rng.range(self.p.file_size);
            let hash = *blake3::hash(format!("{} {seq} {f}", self.p.seed).as_bytes()).as_bytes();
            entries.push(Entry {
                path: format!("f{f}.bin"),
                hash,
                size,
                media_type: "application/octet-stream".into(),
            });
        }
        let m = Manifest {
            publisher: self.root.public(),
            signer: self.signer.public(),
            delegation: Some(self.delegation.clone()),
            feed: "main".into(),
            seq,
            prev,
            created: self.wall() / 1000,
            title: format!("Article {seq}"),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries,
        };
        let files: Vec<(Hash, u64)> = m.entries.iter().map(|e| (e.hash, e.size)).collect();
        let signed = Signed::sign(m, &self.signer).expect("manifest signs");
        let bytes = signed.bytes().to_vec();
        let id = signed.id();
        for (h, _) in &files {
            self.nodes[0].held.insert(*h, Held::File);
            self.by_file.entry(*h).or_default().push(k);
        }
        self.by_id.insert(id, k);
        self.articles.push(Article {
            seq,
            id,
            bytes: bytes.clone(),
            files,
            at: self.now,
        });
        if !self.nodes[0].online {
            // Published offline: it counts from the publisher's return.
            self.articles[k].at = u64::MAX;
        }
        let now = self.wall();
        let sync = self.nodes[0]
            .sync
            .as_mut()
            .expect("the publisher runs a core");
        let outs = sync
            .publish(bytes, now)
            .expect("the publisher accepts its own");
        self.apply(0, outs);
        self.schedule_timer(0);
        if seq == self.p.equivocate_seq && self.faked() {
            self.at(self.now + 1, Ev::Fake(k));
        }
    }

    /// One move of a hostile node.
    fn act(&mut self, i: u32, s: Strategy) {
        if !self.nodes[i as usize].online || self.articles.is_empty() {
            return;
        }
        let data = match s {
            Strategy::Forge => {
                let mut bytes = self
                    .articles
                    .last()
                    .map(|a| a.bytes.clone())
                    .unwrap_or_default();
                // A new, wrong signature each time.
                let len = bytes.len();
                self.counter += 1;
                bytes[len - 1 - (self.counter % 32) as usize] ^= 1;
                bytes
            }
            Strategy::Replay => {
                let k = self.rng.below(self.articles.len() as u64) as usize;
                self.articles[k].bytes.clone()
            }
            Strategy::Equivocate => {
                // A second manifest for a place already well spread.
                let Some(target) = self
                    .articles
                    .iter()
                    .rev()
                    .skip(1)
                    .find(|a| self.now >= a.at + 3_000)
                    .map(|a| a.seq)
                else {
                    return;
                };
                if !self.nodes[i as usize].acted.insert(target) {
                    return;
                }
                let a = &self.articles[(target - 1) as usize];
                let genuine = Signed::<Manifest>::decode(&a.bytes).expect("genuine decodes");
                let mut body = genuine.body().clone();
                body.title = format!("FAKE {target} by {i}");
                body.signer = self.root.public();
                body.delegation = None;
                let fake = Signed::sign(body, &self.root).expect("fake signs");
                self.fake_ids.insert(fake.id());
                fake.bytes().to_vec()
            }
            Strategy::PoisonCorrupt | Strategy::PoisonStall => {
                // Claims every new blob: in the DHT and to its neighbours.
                for k in 0..self.articles.len() {
                    let seq = self.articles[k].seq;
                    if !self.nodes[i as usize].acted.insert(seq) {
                        continue;
                    }
                    let a = &self.articles[k];
                    let mut blobs = vec![a.id];
                    blobs.extend(a.files.iter().map(|(h, _)| *h));
                    for hash in blobs {
                        self.provide(i, hash);
                        if !self.p.have_hints {
                            continue;
                        }
                        for m in self.live_links(i) {
                            if self.send(i, m, Msg::Have { hash }, false) {
                                self.hostile_sent += 1;
                            }
                        }
                    }
                }
                return;
            }
            Strategy::Withhold | Strategy::LieHeads | Strategy::EquivocateNewest => return,
        };
        if s == Strategy::Forge {
            self.bad_ids.insert(*blake3::hash(&data).as_bytes());
        }
        self.counter += 1;
        let mut id = blake3::hash(&data).as_bytes().to_vec();
        id.extend(self.counter.to_le_bytes());
        for m in self.nodes[i as usize].links.clone() {
            let msg = Msg::Gossip {
                id: MsgId(id.clone()),
                data: data.clone(),
            };
            if self.send(i, m, msg, false) {
                self.hostile_sent += 1;
            }
        }
    }

    /// An `EquivocateNewest` move: a second manifest for article `k`,
    /// gossiped the moment the genuine one is.
    fn fake(&mut self, i: u32, k: usize) {
        if !self.nodes[i as usize].online || !self.nodes[i as usize].acted.insert(k as u64) {
            return;
        }
        let a = &self.articles[k];
        let genuine = Signed::<Manifest>::decode(&a.bytes).expect("genuine decodes");
        let mut body = genuine.body().clone();
        body.title = format!("FAKE {} by {i}", a.seq);
        body.signer = self.root.public();
        body.delegation = None;
        let fake = Signed::sign(body, &self.root).expect("fake signs");
        self.fake_ids.insert(fake.id());
        let data = fake.bytes().to_vec();
        self.counter += 1;
        let id = MsgId(blake3::hash(&data).as_bytes().to_vec());
        for m in self.live_links(i) {
            let msg = Msg::Gossip {
                id: id.clone(),
                data: data.clone(),
            };
            if self.send(i, m, msg, false) {
                self.hostile_sent += 1;
            }
        }
    }

    fn faked(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.role == Role::Hostile(Strategy::EquivocateNewest))
    }

    fn report(&self) -> Report {
        let mut lat = Vec::new();
        let (mut lat_online, mut lat_returned) = (Vec::new(), Vec::new());
        let (mut lat_manifest, mut lat_files) = (Vec::new(), Vec::new());
        let mut honest = 0;
        let mut delivered = 0;
        let mut excused = 0;
        let mut refused_recorded = 0;
        let mut deceived = 0;
        let mut deceived_silent = 0;
        let mut deceived_silent_reachable = 0;
        let mut double_shown = 0;
        let mut conflict_reporters = 0;
        let mut delivered_unfaked = 0;
        let faked = self.faked();
        let served_total: u64 = self.nodes.iter().map(|n| n.served).sum();
        let mut served_max = 0;
        for node in &self.nodes {
            if node.role != Role::Honest {
                continue;
            }
            served_max = served_max.max(node.served);
            refused_recorded += node
                .recorded
                .values()
                .filter(|id| {
                    self.bad_ids.contains(*id)
                        || !self.by_id.contains_key(*id) && !self.fake_ids.contains(*id)
                })
                .count();
            let fakes: Vec<u64> = node
                .recorded
                .iter()
                .filter(|(_, id)| self.fake_ids.contains(*id))
                .map(|(seq, _)| *seq)
                .collect();
            if !fakes.is_empty() {
                deceived += 1;
                if node.conflicts == 0 {
                    deceived_silent += 1;
                    let reachable = node.links.iter().any(|m| {
                        let m = &self.nodes[*m as usize];
                        !matches!(m.role, Role::Hostile(_))
                            && fakes.iter().any(|seq| {
                                m.recorded.get(seq) == Some(&self.articles[(*seq - 1) as usize].id)
                            })
                    });
                    if reachable {
                        deceived_silent_reachable += 1;
                    }
                }
            }
            if node.double_shown {
                double_shown += 1;
            }
            if node.conflicts > 0 {
                conflict_reporters += 1;
            }
            if !node.online {
                continue;
            }
            honest += 1;
            if node.conflicts > 0
                && let Some(first) = fakes.iter().min()
            {
                excused += self
                    .articles
                    .iter()
                    .enumerate()
                    .filter(|(k, a)| a.seq >= *first && !node.delivered.contains_key(k))
                    .count();
            }
            delivered += node.delivered.len();
            delivered_unfaked += node
                .delivered
                .keys()
                .filter(|k| !(faked && self.articles[**k].seq == self.p.equivocate_seq))
                .count();
            lat.extend(node.delivered.values().copied());
            for (k, l) in &node.delivered {
                if node.after_return.contains(k) {
                    lat_returned.push(*l);
                } else {
                    lat_online.push(*l);
                }
                let m = node.manifest_took.get(k).copied().unwrap_or(0);
                lat_manifest.push(m);
                lat_files.push(l.saturating_sub(m));
            }
        }
        lat.sort_unstable();
        lat_online.sort_unstable();
        lat_returned.sort_unstable();
        lat_manifest.sort_unstable();
        lat_files.sort_unstable();
        let p99_of = |v: &[u64]| -> u64 {
            if v.is_empty() {
                return 0;
            }
            v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
        };
        let pct = |q: f64| -> u64 {
            if lat.is_empty() {
                return 0;
            }
            let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i]
        };
        let expected = honest * self.articles.len();
        let msgs: u64 = self.nodes.iter().map(|n| n.sent_msgs).sum();
        let bytes: u64 = self.nodes.iter().map(|n| n.sent_bytes).sum();
        let per = (self.nodes.len() * self.articles.len().max(1)) as f64;
        Report {
            nodes: self.nodes.len(),
            honest,
            articles: self.articles.len(),
            expected,
            delivered,
            excused,
            delivery: if expected == 0 {
                0.0
            } else {
                delivered as f64 / expected as f64
            },
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p99_online_ms: p99_of(&lat_online),
            online_pairs: lat_online.len(),
            p99_returned_ms: p99_of(&lat_returned),
            returned_pairs: lat_returned.len(),
            p99_manifest_ms: p99_of(&lat_manifest),
            p99_files_ms: p99_of(&lat_files),
            max_ms: lat.last().copied().unwrap_or(0),
            msgs_per_node_article: msgs as f64 / per,
            bytes_per_node_article: bytes as f64 / per,
            refused_recorded,
            deceived,
            deceived_silent,
            deceived_silent_reachable,
            double_shown,
            conflict_reporters,
            penalised_hostile: self.penalised_hostile,
            penalised_honest: self.penalised_honest,
            asked_liars: self.asked_liars.values().sum(),
            asked_one_liar_max: self.asked_liars.values().copied().max().unwrap_or(0),
            hostile_sent: self.hostile_sent,
            max_served_share: if served_total == 0 {
                0.0
            } else {
                served_max as f64 / served_total as f64
            },
            publisher_served_share: if served_total == 0 {
                0.0
            } else {
                self.nodes[0].served as f64 / served_total as f64
            },
            failed_transfers: self.failed_transfers,
            bad_data_penalties: self.bad_data_penalties,
            delivered_unfaked,
            expected_unfaked: honest
                * self
                    .articles
                    .iter()
                    .filter(|a| !(faked && a.seq == self.p.equivocate_seq))
                    .count(),
            events: self.events,
        }
    }
}

/// Runs one simulation.
pub fn run(p: Params) -> Report {
    Sim::new(p).run()
}

fn seed_bytes(seed: u64, n: u8) -> [u8; 32] {
    let mut s = [n; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}
