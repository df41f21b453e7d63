//! The libp2p node: one task owns the swarm; a cloneable [`Client`] talks to
//! it over a bounded channel. Blob streams run beside it, bounded in number
//! and time, on blocking threads that call the store.
//!
//! Reachability: TCP, QUIC and WebSocket transports; AutoNAT tells the node
//! whether others can dial it; a node found unreachable answers no DHT
//! queries and listens through up to [`MAX_RELAYS`] relay peers instead, and
//! DCUtR tries to turn relayed connections into direct ones. Relaying for
//! others and mDNS are opt-in.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, Ipv6Addr},
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport, autonat, connection_limits,
    core::{muxing::StreamMuxerBox, transport::ListenerId, upgrade},
    dcutr, dns, gossipsub, identify, identity,
    kad::{
        self, Mode, StoreInserts,
        store::{MemoryStore, MemoryStoreConfig, RecordStore},
    },
    mdns, memory_connection_limits,
    metrics::{Metrics as Libp2pMetrics, Recorder},
    multiaddr::Protocol,
    noise, ping, quic, relay,
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, websocket, yamux,
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tamizdat_store::{ChunkRanges, Hash, Store};
use tokio::{
    sync::{Semaphore, mpsc, oneshot, watch},
    task::JoinSet,
};
use tokio_util::{compat::FuturesAsyncReadCompatExt, io::SyncIoBridge};
use tracing::{debug, info, warn};

use crate::{
    bans::BadPeers,
    feeds::{self, Conflict, Feeds, Followed},
    fetch::{self, Failure, Plan},
    have,
    idle::{Idle, PendingPerIp},
    links::Links,
    metrics::NodeMetrics,
    replicate,
    share::{Share, Shares},
    transfer, wire,
};

const BLOB: StreamProtocol = StreamProtocol::new(wire::PROTOCOL);
/// Our own DHT, apart from the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/tamizdat/kad/1.0.0");
const COMMANDS: usize = 64;
/// Gossip messages and new peers waiting for the replication task.
const REPLICATION_EVENTS: usize = 256;
/// Largest gossip message: a manifest envelope and framing.
const MAX_GOSSIP: usize = tamizdat_sign::MAX_MANIFEST_LEN + 16 * 1024;
/// Rounds of asking busy providers for a blob's size before giving up.
const SIZE_PROOF_ROUNDS: usize = 12;
/// How long one provider gets to send a size proof (one 16 KiB group).
const SIZE_PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest an incoming or outgoing TCP or WebSocket connection may take to
/// agree on protocols, authenticate and set up multiplexing: a socket that
/// stays silent is closed after this instead of holding a pending slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming connections still in their handshake, in all.
const MAX_PENDING: u32 = 64;
/// Of those, from one IP address (one /64 for IPv6): one address cannot
/// take them all and lock everyone else out.
const MAX_PENDING_PER_IP: usize = 8;

/// Pieces of a replication fetch: small enough that a 1 MiB file comes
/// from several peers, and that a follower holds a piece to share soon.
const SWARM_PIECE: u64 = 256 * 1024;
/// How long a replication fetch with nobody left to ask waits for a
/// neighbour to say it holds more, before it hands the file back.
const SWARM_STALL: Duration = Duration::from_secs(2);
/// The least a fetch waits for a late piece before it asks another
/// provider for it too (the end game, [`Plan::end_game`]).
const END_GAME_AFTER: Duration = Duration::from_secs(1);
/// Least time between two "have" messages of one fetch's pieces.
const SWARM_TELL_EVERY: Duration = Duration::from_millis(50);

/// How a fetch goes.
#[derive(Debug, Clone, Copy, Default)]
struct How {
    /// The largest size accepted (checked on the size proof), and no
    /// announcement: an object still to be judged.
    max: Option<u64>,
    /// A replication fetch: what neighbours say they hold (pieces too)
    /// joins it as they tell it; pieces of [`SWARM_PIECE`] go rarest
    /// first; the pieces it holds are told to neighbours as they verify;
    /// no DHT lookup of its own (the replication core looks up); and with
    /// nobody left to ask it waits [`SWARM_STALL`] for news before it
    /// fails.
    swarm: bool,
}

/// How often each connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A ping unanswered for this long closes the connection.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays this node listens through at once when it is unreachable.
pub const MAX_RELAYS: usize = 2;
/// Relay-capable peers remembered as candidates.
const MAX_RELAY_CANDIDATES: usize = 16;
/// Peers found by mDNS that are remembered (and dialed) at once.
const MAX_MDNS_PEERS: usize = 64;

// Relay server bounds (only with `Config::relay_server`). A circuit carries
// the hole-punching handshake and, when that fails, small blob transfers:
// enough for a manifest and an article's text, not for video.
/// Reservations held for other peers at once.
const RELAY_MAX_RESERVATIONS: usize = 64;
/// Reservations one peer may hold.
const RELAY_MAX_RESERVATIONS_PER_PEER: usize = 2;
/// Circuits relayed at once.
const RELAY_MAX_CIRCUITS: usize = 16;
/// Circuits relayed at once from one source peer.
const RELAY_MAX_CIRCUITS_PER_PEER: usize = 4;
/// A circuit is closed after this long.
const RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(2 * 60);
/// A circuit is closed after this many bytes (both directions together).
const RELAY_CIRCUIT_BYTES: u64 = 1 << 20;
/// Circuits one source peer may open in a burst; one more each
/// [`RELAY_CIRCUIT_REFILL`]. A fetch goes on in a new circuit each time one
/// reaches its cap, so a 50 MiB blob takes some 60 circuits: libp2p's
/// default (30, then one per 2 minutes) would stall it for an hour. This
/// bounds one peer to about 128 MiB at once and 0.5 MiB/s after.
const RELAY_CIRCUIT_BURST: u32 = 128;
/// The time that gives one source peer one more circuit.
const RELAY_CIRCUIT_REFILL: Duration = Duration::from_secs(2);
/// Pieces asked of a peer reached only through a relay: small enough to
/// finish inside one circuit, even libp2p's default of 128 KiB (both
/// directions, handshakes included), so that a circuit's end cuts at most
/// the pieces in flight, whose verified groups are kept.
const RELAY_PIECE: u64 = 64 * 1024;
/// How often the DHT routing table is refreshed (a Kademlia bootstrap),
/// when it holds anyone to ask. libp2p's own timer is off: it tries with
/// an empty table too, and warns about it.
const KAD_REFRESH: Duration = Duration::from_secs(5 * 60);
/// The first warning that a node is connected to nobody comes this soon
/// after start at the latest (then every [`Config::alone_warning`]).
const ALONE_FIRST_WARNING: Duration = Duration::from_secs(10);

/// Whether others can dial this node, as AutoNAT probes found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatStatus {
    /// Not probed yet, or no peer could probe it.
    #[default]
    Unknown,
    /// Peers dialed this node back at this address.
    Public(Multiaddr),
    /// Peers could not dial this node back: it sits behind a NAT or firewall.
    Private,
}

impl From<autonat::NatStatus> for NatStatus {
    fn from(s: autonat::NatStatus) -> Self {
        match s {
            autonat::NatStatus::Public(a) => Self::Public(a),
            autonat::NatStatus::Private => Self::Private,
            autonat::NatStatus::Unknown => Self::Unknown,
        }
    }
}

/// How AutoNAT probes this node's reachability.
#[derive(Debug, Clone)]
pub struct NatConfig {
    /// Probe, and answer probes, only through peers seen at global IP
    /// addresses. Keep `true` on the internet: a peer on the same LAN or host
    /// can always dial back, which proves nothing. Loopback tests turn it off.
    pub only_global_ips: bool,
    /// Wait this long after start before the first probe.
    pub boot_delay: Duration,
    /// Probe again this often while the status is unknown or unconfirmed.
    pub retry_interval: Duration,
    /// Probe again this often once the status is confirmed.
    pub refresh_interval: Duration,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            only_global_ips: true,
            boot_delay: Duration::from_secs(15),
            retry_interval: Duration::from_secs(90),
            refresh_interval: Duration::from_secs(15 * 60),
        }
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's identity (kept in the data dir; not a publisher key).
    pub keypair: identity::Keypair,
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/4001`, `/ip4/127.0.0.1/udp/0/quic-v1`).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through; each address ends in `/p2p/PEER_ID`.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses of peers met in earlier runs, with how dialling them went
    /// (`peers.json`): dialled after `bootstrap`, best first, each failing
    /// one held back longer each time (see [`crate::book`]).
    pub remembered: Vec<crate::book::Entry>,
    /// Blob streams served at once, in total.
    pub max_streams: usize,
    /// Blob streams served at once to one peer.
    pub max_streams_per_peer: usize,
    /// Streams sending ranges of one blob at once; more are told "busy"
    /// (size proofs are always answered). A new article's followers then
    /// fetch from the first few to hold it, not all from the outlet.
    pub max_streams_per_blob: usize,
    /// How much of one blob is sent before further requests for it are
    /// told "busy" (see [`crate::share`]).
    pub upload_share: Share,
    /// A stream that makes no progress for this long is dropped.
    pub idle_timeout: Duration,
    /// Requests in flight at once while fetching one blob.
    pub fetch_parallel: usize,
    /// Bytes asked of one provider per request.
    pub piece_bytes: u64,
    /// Connections held at once.
    pub max_connections: u32,
    /// Blobs announced to the DHT at start.
    pub max_provided: usize,
    /// Answer DHT queries: `Some(true)` always, `Some(false)` never, `None`
    /// unless AutoNAT finds the node unreachable (until then it answers).
    pub kad_server: Option<bool>,
    /// Relay circuits for unreachable peers, within fixed bounds (64
    /// reservations, 16 circuits of at most 2 minutes and 1 MiB each).
    pub relay_server: bool,
    /// Find and dial peers on the local network by multicast DNS.
    pub mdns: bool,
    /// Reachability probing.
    pub nat: NatConfig,
    /// How often a node with no connection at all dials its bootstrap
    /// addresses again (neighbours may start after it).
    pub bootstrap_retry: Duration,
    /// While the node is connected to nobody, a warning is logged this
    /// often (the first at most 10 s after start); `None`: never, for a
    /// node kept apart on purpose, fed by bundles.
    pub alone_warning: Option<Duration>,
}

impl Config {
    /// Defaults for a node with the given identity and listen addresses.
    pub fn new(keypair: identity::Keypair, listen: Vec<Multiaddr>) -> Self {
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            remembered: Vec::new(),
            max_streams: 32,
            max_streams_per_peer: 4,
            max_streams_per_blob: 8,
            upload_share: Share::default(),
            idle_timeout: Duration::from_secs(20),
            fetch_parallel: 2,
            piece_bytes: 4 << 20,
            max_connections: 256,
            max_provided: 65_536,
            kad_server: None,
            relay_server: false,
            mdns: false,
            nat: NatConfig::default(),
            bootstrap_retry: Duration::from_secs(5),
            alone_warning: Some(Duration::from_secs(60)),
        }
    }
}

/// Why a node could not start or a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The swarm could not be built or could not listen.
    #[error("starting the node: {0}")]
    Start(String),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// One of the node's tasks panicked or ended while the node was meant
    /// to run; the node is down (see [`Client::failed`]).
    #[error("the node failed: {0}")]
    Failed(String),
    /// The node is connected to nobody, so nobody could be asked for the
    /// blob (not even through the DHT).
    #[error("reached no peer: nobody could be asked for {0}")]
    NoPeers(Hash),
    /// Peers were asked, and none knows anyone who has the blob.
    #[error("the peers asked know no provider of {0}")]
    NoProviders(Hash),
    /// The peers asked could not prove the blob's size (they lack it, or lied).
    #[error("none of the {asked} peers asked could deliver {hash} (last: {detail})")]
    NotFound {
        /// The blob.
        hash: Hash,
        /// How many peers were asked.
        asked: usize,
        /// The last refusal or failure.
        detail: String,
    },
    /// Providers were found but could not deliver all of it.
    #[error("blob {hash}: {verified} of {size} bytes verified; every provider failed ({detail})")]
    Incomplete {
        /// The blob.
        hash: Hash,
        /// Bytes verified and kept.
        verified: u64,
        /// Its size.
        size: u64,
        /// The last failures.
        detail: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    pending: PendingPerIp,
    memory: memory_connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    stream: libp2p_stream::Behaviour,
    autonat: autonat::Behaviour,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    links: Links,
}

/// The DHT mode for a configured choice and the reachability found.
fn kad_mode(fixed: Option<bool>, nat: &NatStatus) -> Mode {
    match (fixed, nat) {
        (Some(true), _) => Mode::Server,
        (Some(false), _) | (None, NatStatus::Private) => Mode::Client,
        (None, NatStatus::Unknown | NatStatus::Public(_)) => Mode::Server,
    }
}

/// Addresses dialled at once, at start and each time the node is alone.
const FIRST_DIALS: usize = 32;

/// `addr` ending in `/p2p/peer` (added when it has none).
fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

/// The address to listen on through `relay`, reached at `addr`.
fn circuit_addr(addr: &Multiaddr, relay: PeerId) -> Multiaddr {
    let mut base = addr.clone();
    if matches!(base.iter().last(), Some(Protocol::P2p(_))) {
        base.pop();
    }
    base.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit)
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// How far an address reaches: this host only, its local network, or the
/// internet. Ordered: a wider scope is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Loopback: this host only.
    Host,
    /// Private, link-local, shared or unique-local: one network.
    Local,
    /// Anything else: the internet.
    Global,
}

/// The scope of an address: loopback is this host's; private, link-local,
/// shared (100.64/10) and unique-local ones are a local network's;
/// anything else, DNS names and relayed addresses included, is global.
pub fn scope(addr: &Multiaddr) -> Scope {
    if is_relayed(addr) {
        return Scope::Global;
    }
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) if ip.is_loopback() || ip.is_unspecified() => Scope::Host,
        Some(Protocol::Ip4(ip))
            if ip.is_private()
                || ip.is_link_local()
                || (ip.octets()[0] == 100 && ip.octets()[1] & 0xc0 == 64) =>
        {
            Scope::Local
        }
        Some(Protocol::Ip6(ip)) if ip.is_loopback() || ip.is_unspecified() => Scope::Host,
        Some(Protocol::Ip6(ip)) if ip.is_unique_local() || ip.is_unicast_link_local() => {
            Scope::Local
        }
        _ => Scope::Global,
    }
}

/// The addresses a peer announced that are worth dialling for a node that
/// reached it over a connection of scope `via`: over the internet, only
/// its global addresses (its loopback one is the dialler's own host, its
/// private ones another network's); over a local network, no loopback; on
/// the same host, all.
pub(crate) fn reachable(addrs: Vec<Multiaddr>, via: Scope) -> Vec<Multiaddr> {
    addrs.into_iter().filter(|a| scope(a) >= via).collect()
}

/// `addr` without a trailing `/p2p/PEER`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
        a.pop();
    }
    a
}

/// The addresses of `addrs` that are not `ours` (whatever peer id either
/// names): another peer passing on one of our own addresses (our loopback
/// one, seen from this host, or one we listen on) would have us dial
/// ourselves.
pub(crate) fn not_ours(addrs: Vec<Multiaddr>, ours: &[Multiaddr]) -> Vec<Multiaddr> {
    let ours: HashSet<Multiaddr> = ours.iter().map(without_peer).collect();
    addrs
        .into_iter()
        .filter(|a| !ours.contains(&without_peer(a)))
        .collect()
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    /// Dials a peer at the addresses it was last reached at
    /// ([`Links::dialled`]), beside any dial under way (a hole punch that
    /// may fail).
    Redial(PeerId, oneshot::Sender<Result<PeerId, String>>),
    Listen(Multiaddr, oneshot::Sender<Result<(), String>>),
    Provide(Hash, Option<oneshot::Sender<Result<(), String>>>),
    Providers(Hash, oneshot::Sender<HashSet<PeerId>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
    Known(oneshot::Sender<Vec<crate::book::Entry>>),
    /// Join (true) or leave a publisher's topic.
    Subscribe(String, bool),
    Gossip(String, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Validate(gossipsub::MessageId, PeerId, gossipsub::MessageAcceptance),
    CatchUp(PeerId),
    GossipPeers(oneshot::Sender<Vec<GossipPeer>>),
    Shutdown,
}

/// A peer as gossip sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipPeer {
    /// The peer.
    pub peer: PeerId,
    /// Its gossipsub score: it falls for peers that forward invalid objects.
    pub score: f64,
    /// Whether it is in the mesh of any topic we follow.
    pub in_mesh: bool,
}

/// A handle on a running node. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    control: libp2p_stream::Control,
    addrs: watch::Receiver<Vec<Multiaddr>>,
    /// How many listeners have at least one address.
    listening: watch::Receiver<usize>,
    nat: watch::Receiver<NatStatus>,
    /// Peers connected now, as the event loop last counted them.
    peers: watch::Receiver<usize>,
    store: Arc<Store>,
    config: Arc<Config>,
    bad: Arc<BadPeers>,
    /// What neighbours said they hold, for fetches.
    holders: Arc<have::Holders>,
    /// The feed state as the replication task last left it: read here,
    /// changed only there.
    feeds: Arc<Mutex<Feeds>>,
    /// The replication task, which owns the feed state.
    repl: mpsc::Sender<replicate::Event>,
    metrics: NodeMetrics,
    /// Why the node failed, once it has (see [`Supervisor`]).
    failure: watch::Receiver<Option<String>>,
    /// Which peers are reached only through relays.
    links: Links,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// How far a fetch has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The blob's size (0 until the size proof arrived).
    pub size: u64,
    /// Bytes verified so far.
    pub verified: u64,
    /// Providers that delivered so far.
    pub providers: usize,
}

/// What one fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Size of the blob.
    pub size: u64,
    /// Bytes verified by this fetch (0 when it was already complete).
    pub new_bytes: u64,
    /// Providers that delivered.
    pub providers: Vec<PeerId>,
    /// Providers caught sending bad data or lying about the size.
    pub bad: Vec<PeerId>,
}

/// Gossipsub for an adversarial network: our own validation before anything
/// is forwarded, content-derived message ids, bounded messages, peer scoring,
/// and flood publishing of our own messages.
fn gossip_behaviour(
    key: &identity::Keypair,
) -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(MAX_GOSSIP)
        .flood_publish(true)
        .heartbeat_interval(Duration::from_millis(700))
        .build()?;
    let mut gs =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)?;
    // Many peers behind one address count against each other (a Sybil
    // defence), except on this machine itself.
    let params = gossipsub::PeerScoreParams {
        ip_colocation_factor_whitelist: [Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
            .into(),
        ..Default::default()
    };
    gs.with_peer_score(
        params,
        gossipsub::PeerScoreThresholds {
            gossip_threshold: -10.0,
            publish_threshold: -50.0,
            graylist_threshold: -80.0,
            ..Default::default()
        },
    )?;
    Ok(gs)
}

/// Joins or leaves a topic, with scoring that punishes invalid messages.
fn subscribe(gs: &mut gossipsub::Behaviour, topic: &str, on: bool) {
    let topic = gossipsub::IdentTopic::new(topic);
    if !on {
        gs.unsubscribe(&topic);
        return;
    }
    let params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        // A peer that forwards forged or malformed objects loses standing fast.
        invalid_message_deliveries_weight: -100.0,
        // Remembered for a while: a slow forger must not outlive its penalty.
        invalid_message_deliveries_decay: 0.9,
        // Feeds are quiet: no penalty for sending little.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // No credit for merely being there, and little for being first:
        // neither may outweigh forgeries.
        time_in_mesh_weight: 0.0,
        first_message_deliveries_cap: 10.0,
        ..Default::default()
    };
    if let Err(e) = gs.set_topic_params(topic.clone(), params) {
        warn!("gossip scoring for {topic}: {e}");
    }
    if let Err(e) = gs.subscribe(&topic) {
        warn!("cannot subscribe to {topic}: {e}");
    }
}

/// The follow list and trust state as the store holds them.
fn load_feeds(store: &Store) -> Result<Feeds, NodeError> {
    let damaged = |what: &str, e: &dyn std::fmt::Display| {
        NodeError::Start(format!("the stored {what} is damaged: {e}"))
    };
    let trust = match store
        .state_get(feeds::TRUST)
        .map_err(|e| NodeError::Store(e.to_string()))?
    {
        None => tamizdat_sign::TrustState::default(),
        Some(b) => tamizdat_sign::TrustState::decode(&b).map_err(|e| damaged("feed state", &e))?,
    };
    let follows = match store
        .state_get(feeds::FOLLOWS)
        .map_err(|e| NodeError::Store(e.to_string()))?
    {
        None => Vec::new(),
        Some(b) => Feeds::decode_follows(&b).map_err(|e| damaged("follow list", &e))?,
    };
    let mut feeds = Feeds::new(trust, follows);
    // The cards kept (of the publishers followed), oldest first, so the
    // newest of each stays.
    let mut cards =
        tamizdat_feed::cards::held(store).map_err(|e| NodeError::Store(e.to_string()))?;
    cards.sort_by_key(|(_, c)| c.body().issued);
    for (_, c) in cards {
        let _ = feeds.keep_card(c);
    }
    Ok(feeds)
}

/// Starts a node on the current tokio runtime. It runs until
/// [`Client::shutdown`] (or until every client is dropped).
pub fn spawn(config: Config, store: Arc<Store>) -> Result<Client, NodeError> {
    spawn_with_metrics(config, store, &mut Registry::default())
}

/// [`spawn`], registering the node's metrics in `registry`: libp2p's under
/// the `libp2p_` prefix (connections, bandwidth, DHT, gossip, identify,
/// ping, relay, hole punching) and the node's own under `tamizdat_`
/// (fetches, fetched and served bytes, dials by transport). One node per
/// registry: a second would register the same names again.
pub fn spawn_with_metrics(
    config: Config,
    store: Arc<Store>,
    registry: &mut Registry,
) -> Result<Client, NodeError> {
    let start = |e: &dyn std::fmt::Display| NodeError::Start(e.to_string());
    let peer_id = config.keypair.public().to_peer_id();
    let max_conn = config.max_connections;
    let (relay_server, use_mdns, nat) = (config.relay_server, config.mdns, config.nat.clone());
    let links = Links::default();
    let mut swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        // `/tcp/PORT/ws`, e.g. port 443 behind a CDN. It resolves names
        // itself, so that the name reaches the request's Host header.
        .with_other_transport(|key| {
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
            let ws = websocket::Config::new(dns::tokio::Transport::system(tcp)?);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                ws.upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .timeout(HANDSHAKE_TIMEOUT),
            )
        })
        .map_err(|e| start(&e))?
        // TCP and QUIC (whose own handshake timeout is 5 s), behind DNS.
        .with_other_transport(|key| {
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .upgrade(upgrade::Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .timeout(HANDSHAKE_TIMEOUT)
                .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
            let quic = quic::tokio::Transport::new(quic::Config::new(key))
                .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
            let both = quic.or_transport(tcp).map(|either, _| either.into_inner());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(dns::tokio::Transport::system(both)?)
        })
        .map_err(|e| start(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| start(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            let store_cfg = MemoryStoreConfig {
                max_records: 1024,
                max_value_bytes: 16 * 1024,
                max_providers_per_key: 32,
                max_provided_keys: 1 << 20,
            };
            let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
            kad_cfg
                .set_record_filtering(StoreInserts::FilterBoth)
                .set_query_timeout(Duration::from_secs(30))
                // The event loop refreshes the table itself (KAD_REFRESH).
                .set_periodic_bootstrap_interval(None);
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(MAX_PENDING))
                .with_max_established(Some(max_conn))
                .with_max_established_per_peer(Some(4));
            let autonat_cfg = autonat::Config {
                boot_delay: nat.boot_delay,
                retry_interval: nat.retry_interval,
                refresh_interval: nat.refresh_interval,
                only_global_ips: nat.only_global_ips,
                ..Default::default()
            };
            let relay_cfg = relay::Config {
                max_reservations: RELAY_MAX_RESERVATIONS,
                max_reservations_per_peer: RELAY_MAX_RESERVATIONS_PER_PEER,
                max_circuits: RELAY_MAX_CIRCUITS,
                max_circuits_per_peer: RELAY_MAX_CIRCUITS_PER_PEER,
                max_circuit_duration: RELAY_CIRCUIT_DURATION,
                max_circuit_bytes: RELAY_CIRCUIT_BYTES,
                circuit_src_rate_limiters: Vec::new(),
                // Keeps the default reservation rate limits.
                ..Default::default()
            }
            .circuit_src_per_peer(
                NonZeroU32::new(RELAY_CIRCUIT_BURST).unwrap_or(NonZeroU32::MIN),
                RELAY_CIRCUIT_REFILL,
            )
            // Peers behind one address (a carrier's NAT) share twice that.
            .circuit_src_per_ip(
                NonZeroU32::new(2 * RELAY_CIRCUIT_BURST).unwrap_or(NonZeroU32::MIN),
                RELAY_CIRCUIT_REFILL / 2,
            );
            let mdns = if use_mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                pending: PendingPerIp::new(MAX_PENDING_PER_IP),
                memory: memory_connection_limits::Behaviour::with_max_percentage(0.9),
                identify: identify::Behaviour::new(
                    // Peers learn a relayed address as soon as there is one.
                    identify::Config::new("/tamizdat/id/1.0.0".into(), key.public())
                        .with_push_listen_addr_updates(true)
                        // Its cache would offer every announced address when
                        // dialling; the DHT gets only the reachable ones.
                        .with_cache_size(0),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(PING_EVERY)
                        .with_timeout(PING_TIMEOUT),
                ),
                kad: kad::Behaviour::with_config(
                    peer_id,
                    MemoryStore::with_config(peer_id, store_cfg),
                    kad_cfg,
                ),
                stream: libp2p_stream::Behaviour::new(),
                gossipsub: gossip_behaviour(key)?,
                autonat: autonat::Behaviour::new(peer_id, autonat_cfg),
                relay_client,
                relay: relay_server
                    .then(|| relay::Behaviour::new(peer_id, relay_cfg))
                    .into(),
                dcutr: dcutr::Behaviour::new(peer_id),
                mdns: mdns.into(),
                links: links.clone(),
            })
        })
        .map_err(|e| start(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    swarm
        .behaviour_mut()
        .kad
        .set_mode(Some(kad_mode(config.kad_server, &NatStatus::Unknown)));
    if let Some(relay) = swarm.behaviour_mut().relay.as_mut() {
        // Opted in: offer it whatever addresses AutoNAT confirms.
        relay.set_status(Some(relay::Status::Enable));
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Start(format!("listen on {addr}: {e}")))?;
    }
    let mut book = crate::book::Book::from_saved(peer_id, config.remembered.iter().cloned());
    for addr in &config.bootstrap {
        book.pin(addr.clone());
    }
    // The bootstrap addresses, then the best of those remembered; never
    // this node itself (its own card names it).
    let mut first: Vec<Multiaddr> = config
        .bootstrap
        .iter()
        .filter(|a| !a.iter().any(|p| p == Protocol::P2p(peer_id)))
        .cloned()
        .collect();
    for addr in book.due(0, FIRST_DIALS) {
        if !first.contains(&addr) {
            first.push(addr);
        }
    }
    for addr in &first {
        // Without /p2p/PEER_ID (a container's `/dns4/node1/tcp/4001`) the
        // peer is dialled and identified like any other: noise proves who it
        // is, identify adds it to the DHT.
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!("cannot dial bootstrap {addr}: {e}");
        }
    }
    let control = swarm.behaviour().stream.new_control();
    let incoming = control
        .clone()
        .accept(BLOB)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let heads_incoming = control
        .clone()
        .accept(replicate::HEADS)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let revocations_incoming = control
        .clone()
        .accept(replicate::REVOCATIONS)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let cards_incoming = control
        .clone()
        .accept(replicate::CARDS)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let have_1 = control
        .clone()
        .accept(have::HAVE_1)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let have_2 = control
        .clone()
        .accept(have::HAVE_2)
        .map_err(|e| NodeError::Start(e.to_string()))?;
    let loaded = load_feeds(&store)?;
    let feeds = Arc::new(Mutex::new(loaded.snapshot()));
    for f in loaded.following() {
        subscribe(
            &mut swarm.behaviour_mut().gossipsub,
            &feeds::topic(&f.key),
            true,
        );
    }
    let (repl_tx, repl_rx) = mpsc::channel(REPLICATION_EVENTS);
    let (tx, commands) = mpsc::channel(COMMANDS);
    let (addr_tx, addrs) = watch::channel(Vec::new());
    let (listening_tx, listening) = watch::channel(0);
    let (nat_tx, nat) = watch::channel(NatStatus::Unknown);
    let (peers_tx, peers) = watch::channel(0);
    let config = Arc::new(config);
    let metrics = NodeMetrics::register(registry);
    let (failure_tx, failure) = watch::channel(None);
    let stopping = Arc::new(AtomicBool::new(false));
    let client = Client {
        tx,
        peer_id,
        control,
        addrs,
        listening,
        nat,
        peers,
        store: store.clone(),
        config: config.clone(),
        bad: Arc::default(),
        holders: Arc::default(),
        feeds: feeds.clone(),
        repl: repl_tx.clone(),
        metrics: metrics.clone(),
        failure,
        links,
    };
    let event_loop = EventLoop {
        swarm,
        bootstrap: config.bootstrap.clone(),
        book,
        started: std::time::Instant::now(),
        bootstrap_retry: config.bootstrap_retry,
        alone_warning: config.alone_warning,
        warned_alone: false,
        peers_tx,
        commands,
        addr_tx,
        listening_tx,
        nat_tx,
        kad_server: config.kad_server,
        relay_candidates: HashMap::new(),
        relay_listeners: HashMap::new(),
        relayed: HashMap::new(),
        conn_scope: HashMap::new(),
        mdns_peers: HashSet::new(),
        listeners: HashMap::new(),
        pending_dial: HashMap::new(),
        pending_conn: HashMap::new(),
        pending_providers: HashMap::new(),
        pending_provide: HashMap::new(),
        reannounce: true,
        announced: HashMap::new(),
        repl_tx,
        libp2p_metrics: Libp2pMetrics::new(registry),
        metrics,
        stopping: stopping.clone(),
    };
    let mut tasks = Supervisor::default();
    tasks.spawn("event loop", event_loop.run());
    tasks.spawn(
        "blob server",
        serve_incoming(
            incoming,
            store.clone(),
            config.clone(),
            client.metrics.served_bytes().clone(),
        ),
    );
    tasks.spawn(
        "revocations server",
        replicate::serve_revocations(revocations_incoming, feeds.clone()),
    );
    tasks.spawn(
        "cards server",
        replicate::serve_cards(cards_incoming, feeds.clone()),
    );
    tasks.spawn(
        "heads server",
        replicate::serve_heads(heads_incoming, feeds),
    );
    tasks.spawn(
        "have reader",
        have::serve(have_1, have_2, client.holders.clone(), client.repl.clone()),
    );
    tasks.spawn(
        "replication",
        replicate::run(client.clone(), loaded, repl_rx),
    );
    tokio::spawn(tasks.run(stopping, failure_tx));
    // Announce what we hold.
    let announcer = client.clone();
    tokio::spawn(async move {
        let list = tokio::task::spawn_blocking(move || store.list()).await;
        if let Ok(Ok(list)) = list {
            for b in list
                .into_iter()
                .filter(|b| b.complete)
                .take(config.max_provided)
            {
                if announcer
                    .tx
                    .send(Command::Provide(b.hash, None))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    info!(%peer_id, "node started");
    Ok(client)
}

/// The node's long-running tasks. One that panics, or ends before the node
/// is stopped, takes the node down: the others are aborted (so every
/// [`Client`] call then fails with [`NodeError::Stopped`]) and
/// [`Client::failed`] says which task and why. A node is never left running
/// without its swarm, its blob server or its replication.
#[derive(Default)]
struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Supervisor {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let id = self.tasks.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Watches the tasks until the node stops (`stopping` is set by the
    /// event loop as it returns) or one of them fails.
    async fn run(mut self, stopping: Arc<AtomicBool>, failure: watch::Sender<Option<String>>) {
        // The first task to end decides.
        let Some(done) = self.tasks.join_next_with_id().await else {
            return;
        };
        let (id, what) = match done {
            Ok((id, ())) if stopping.load(Ordering::SeqCst) => {
                debug!(task = self.names.get(&id).copied(), "ended with the node");
                // The rest end with the swarm, on their own.
                self.tasks.detach_all();
                return;
            }
            Ok((id, ())) => (id, "ended while the node was running".to_owned()),
            Err(e) if e.is_panic() => {
                let id = e.id();
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                (id, format!("panicked: {message}"))
            }
            Err(e) => (e.id(), "was cancelled".to_owned()),
        };
        let name = self.names.get(&id).copied().unwrap_or("unnamed");
        tracing::error!("the node's {name} task {what}: stopping the node");
        failure.send_replace(Some(format!("its {name} task {what}")));
        self.tasks.shutdown().await;
    }
}

/// Serves incoming blob streams within the configured bounds.
async fn serve_incoming(
    mut incoming: libp2p_stream::IncomingStreams,
    store: Arc<Store>,
    config: Arc<Config>,
    served: Counter,
) {
    let total = Arc::new(Semaphore::new(config.max_streams));
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    let per_blob: Arc<Mutex<HashMap<Hash, usize>>> = Arc::default();
    let shares = Arc::new(Shares::new(config.upload_share));
    while let Some((peer, stream)) = incoming.next().await {
        let stream = Idle::new(stream.compat(), config.idle_timeout);
        let slot = total.clone().try_acquire_owned();
        let peer_ok = {
            let mut map = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(peer).or_default();
            if *n < config.max_streams_per_peer {
                *n += 1;
                true
            } else {
                false
            }
        };
        let store = store.clone();
        let per_peer = per_peer.clone();
        let per_blob = per_blob.clone();
        let blob_limit = config.max_streams_per_blob;
        let shares = shares.clone();
        let served = served.clone();
        tokio::spawn(async move {
            let Ok(permit) = slot
                .map_err(|_| ())
                .and_then(|p| peer_ok.then_some(p).ok_or(()))
            else {
                // Too busy: say so and close, without reading the request.
                let mut bridge = SyncIoBridge::new(stream);
                let _ = tokio::task::spawn_blocking(move || {
                    wire::write_header(&mut bridge, wire::Status::Busy, None)
                })
                .await;
                if peer_ok {
                    release(&per_peer, &peer);
                }
                return;
            };
            let bridge = Counted {
                inner: SyncIoBridge::new(stream),
                sent: served,
            };
            let gate = move |hash: &Hash, size: u64, bytes: u64| -> Option<transfer::Ticket> {
                let ticket = BlobTicket::take(&per_blob, *hash, blob_limit)?;
                shares
                    .take(hash, size, bytes)
                    .then(|| Box::new(ticket) as transfer::Ticket)
            };
            let result =
                tokio::task::spawn_blocking(move || transfer::serve_gated(&store, bridge, &gate))
                    .await;
            match result {
                Ok(Ok(served)) => debug!(%peer, ?served, "served"),
                Ok(Err(e)) => debug!(%peer, "serving failed: {e}"),
                Err(e) => warn!(%peer, "serving task failed: {e}"),
            }
            drop(permit);
            release(&per_peer, &peer);
        });
    }
}

/// One stream's claim on serving a blob; released when dropped.
struct BlobTicket {
    map: Arc<Mutex<HashMap<Hash, usize>>>,
    hash: Hash,
}

impl BlobTicket {
    fn take(map: &Arc<Mutex<HashMap<Hash, usize>>>, hash: Hash, limit: usize) -> Option<Self> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(hash).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Self {
            map: map.clone(),
            hash,
        })
    }
}

impl Drop for BlobTicket {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.hash);
            }
        }
    }
}

/// Counts the bytes written through it.
struct Counted<S> {
    inner: S,
    sent: Counter,
}

impl<S: std::io::Read> std::io::Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: std::io::Write> std::io::Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sent.inc_by(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn release(map: &Mutex<HashMap<PeerId, usize>>, peer: &PeerId) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = map.get_mut(peer) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(peer);
        }
    }
}

impl Client {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Addresses the node listens on now.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.addrs.borrow().clone()
    }

    /// Waits until `n` listeners have an address each, and returns every
    /// address. (One listener on `0.0.0.0` has an address per interface:
    /// counting addresses would return before a slower listener, QUIC's
    /// say, has any.)
    pub async fn wait_listening(&self, n: usize) -> Result<Vec<Multiaddr>, NodeError> {
        let mut rx = self.listening.clone();
        rx.wait_for(|l| *l >= n)
            .await
            .map_err(|_| NodeError::Stopped)?;
        Ok(self.addrs.borrow().clone())
    }

    /// How many peers the node is connected to now; 0 when it is alone
    /// (it can then neither receive articles nor pass them on). Unlike
    /// [`Client::connected`], it does not wait for the event loop.
    pub fn peer_count(&self) -> usize {
        *self.peers.borrow()
    }

    /// Whether others can dial this node, as last found.
    pub fn nat_status(&self) -> NatStatus {
        self.nat.borrow().clone()
    }

    /// Waits until the reachability status satisfies `f`; returns it.
    pub async fn wait_nat_status(
        &self,
        f: impl FnMut(&NatStatus) -> bool,
    ) -> Result<NatStatus, NodeError> {
        let mut rx = self.nat.clone();
        let status = rx.wait_for(f).await.map_err(|_| NodeError::Stopped)?;
        Ok(status.clone())
    }

    /// Listens on one more address: `/ip4/0.0.0.0/tcp/443/ws`, or
    /// `RELAY_ADDR/p2p/RELAY_ID/p2p-circuit` to be reachable through a relay.
    /// Returns once the listener is set up; the address appears in
    /// [`Client::listen_addrs`] once bound (for a relay: once it accepted the
    /// reservation).
    pub async fn listen_on(&self, addr: Multiaddr) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Listen(addr, tx)).await?;
        rx.await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Start)
    }

    async fn send(&self, c: Command) -> Result<(), NodeError> {
        self.tx.send(c).await.map_err(|_| NodeError::Stopped)
    }

    /// Connects to a peer at `addr`, with or without `/p2p/PEER_ID` at its
    /// end; returns who answered once connected (or the dial failed).
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Dial(addr, tx)).await?;
        rx.await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Start)
    }

    /// Peers connected now.
    pub async fn connected(&self) -> Result<Vec<PeerId>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Connected(tx)).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The address book, best first (see [`crate::book`]): addresses that
    /// connected, those connected peers announced, bootstrap and remembered
    /// ones, with how dialling each went. Worth keeping for the next start.
    pub async fn known_addrs(&self) -> Result<Vec<crate::book::Entry>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Known(tx)).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Tells the DHT this node holds `hash`; returns once the closest peers
    /// have the record (or the query failed, which is only logged: the
    /// record is republished periodically anyway).
    pub async fn provide(&self, hash: Hash) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Provide(hash, Some(tx))).await?;
        if let Ok(Err(e)) = rx.await {
            debug!(%hash, "announcing: {e}");
        }
        Ok(())
    }

    /// Like [`Client::provide`], without waiting for the DHT to confirm.
    pub async fn announce(&self, hash: Hash) {
        let _ = self.tx.send(Command::Provide(hash, None)).await;
    }

    /// Asks the DHT who holds `hash`.
    pub async fn providers(&self, hash: Hash) -> Result<HashSet<PeerId>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Providers(hash, tx)).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Peers caught sending bad data within the last [`crate::BAN_FOR`]; no
    /// fetch asks them again meanwhile.
    pub fn bad_peers(&self) -> Vec<PeerId> {
        self.bad.list()
    }

    /// The store this node serves from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Remembers a peer caught lying (a forged object, bad bytes).
    pub(crate) fn mark_bad(&self, peer: PeerId) {
        self.bad.mark(peer);
    }

    pub(crate) fn holders(&self) -> &have::Holders {
        &self.holders
    }

    pub(crate) fn feeds(&self) -> &Arc<Mutex<Feeds>> {
        &self.feeds
    }

    pub(crate) async fn validate(
        &self,
        id: gossipsub::MessageId,
        source: PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        let _ = self
            .tx
            .send(Command::Validate(id, source, acceptance))
            .await;
    }

    pub(crate) async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, NodeError> {
        let mut control = self.control.clone();
        tokio::time::timeout(
            self.config.idle_timeout,
            control.open_stream(peer, protocol),
        )
        .await
        .map_err(|_| NodeError::Start(format!("no stream to {peer} in time")))?
        .map_err(|e| NodeError::Start(format!("stream to {peer}: {e}")))
    }

    /// Follows a publisher: its feed is replicated and forwarded from now
    /// on, and caught up from peers. False if it was followed already.
    pub async fn follow(
        &self,
        key: tamizdat_sign::PublicKey,
        name: Option<String>,
    ) -> Result<bool, NodeError> {
        self.follow_with(key, name, Default::default()).await
    }

    /// [`Client::follow`] with a quota and retention for the publisher,
    /// applied at once and whenever one of its articles is recorded.
    pub async fn follow_with(
        &self,
        key: tamizdat_sign::PublicKey,
        name: Option<String>,
        policy: crate::retention::Policy,
    ) -> Result<bool, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.to_replication(replicate::Event::Follow {
            key,
            name,
            policy,
            reply,
        })
        .await?;
        let new = rx
            .await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Store)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            crate::retention::enforce(&store, &key, &policy, 0, replicate::now())
        })
        .await
        .map_err(|e| NodeError::Store(e.to_string()))?
        .map_err(NodeError::Store)?;
        self.send(Command::Subscribe(feeds::topic(&key), true))
            .await?;
        if new {
            // Catch up from everyone connected now.
            for peer in self.connected().await? {
                self.catch_up(peer).await;
            }
        }
        Ok(new)
    }

    /// Stops following a publisher. What is stored stays until unpinned.
    pub async fn unfollow(&self, key: &tamizdat_sign::PublicKey) -> Result<bool, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.to_replication(replicate::Event::Unfollow { key: *key, reply })
            .await?;
        let was = rx.await.map_err(|_| NodeError::Stopped)?;
        self.send(Command::Subscribe(feeds::topic(key), false))
            .await?;
        Ok(was)
    }

    /// Resolves if the node fails: one of its tasks (the event loop that
    /// owns the swarm, the blob server, replication, ...) panicked or ended
    /// while the node was meant to run. By then the node is down, its other
    /// tasks stopped, and the error names the task and what happened. Never
    /// resolves while the node runs well, nor after [`Client::shutdown`].
    pub async fn failed(&self) -> NodeError {
        let mut failure = self.failure.clone();
        match failure.wait_for(Option::is_some).await {
            Ok(why) => NodeError::Failed(why.clone().unwrap_or_default()),
            Err(_) => futures::future::pending().await,
        }
    }

    /// Resolves once the node has stopped.
    pub(crate) async fn stopped(&self) {
        self.tx.closed().await
    }

    async fn to_replication(&self, ev: replicate::Event) -> Result<(), NodeError> {
        self.repl.send(ev).await.map_err(|_| NodeError::Stopped)
    }

    /// Publishes an object on a topic (its validation is the caller's).
    pub(crate) async fn gossip(&self, topic: String, data: Vec<u8>) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Gossip(topic, data, tx)).await?;
        rx.await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Store)
    }

    /// The publishers followed.
    pub fn following(&self) -> Vec<Followed> {
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .following()
    }

    /// Equivocations seen: two different manifests for one place in a feed.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conflicts()
    }

    /// The newest genuine card held of a followed publisher (its validity
    /// window is the caller's to check).
    pub fn card(
        &self,
        key: &tamizdat_sign::PublicKey,
    ) -> Option<tamizdat_sign::Signed<tamizdat_sign::Card>> {
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .card(key)
            .cloned()
    }

    /// A card made or given here: judged like one from a peer, kept when
    /// it is new (in place of the older one) and told to the followers.
    /// A card of a publisher not followed here is passed on all the same.
    async fn announce_card(&self, envelope: &[u8]) -> Result<(), NodeError> {
        let card =
            tamizdat_sign::verify_card(envelope).map_err(|e| NodeError::Store(e.to_string()))?;
        let root = card.body().root;
        let (reply, rx) = oneshot::channel();
        self.to_replication(replicate::Event::Publish {
            envelope: envelope.to_vec(),
            reply,
        })
        .await?;
        // Refused or old: the judgement says why; a card of an outlet not
        // followed here is only passed on (its followers judge it).
        let judged = rx.await.map_err(|_| NodeError::Stopped)?;
        let followed = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .follows(&root);
        match judged {
            Ok(()) => Ok(()),
            // Held already (given twice): told again, harmlessly.
            Err(_) if !followed || self.card(&root).as_ref() == Some(&card) => {
                self.gossip(feeds::topic(&root), envelope.to_vec()).await
            }
            Err(why) => Err(NodeError::Store(why)),
        }
    }

    /// The trust state (feed heads, revocations) as this node holds it.
    pub fn trust(&self) -> tamizdat_sign::TrustState {
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trust()
            .clone()
    }

    /// Replaces the trust state (a command applied a revocation) and saves it.
    pub async fn set_trust(&self, trust: tamizdat_sign::TrustState) -> Result<(), NodeError> {
        let (reply, rx) = oneshot::channel();
        self.to_replication(replicate::Event::SetTrust {
            trust: Box::new(trust),
            reply,
        })
        .await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Publishes a signed manifest made on this machine: checks it with the
    /// feed rules, records it (and follows its publisher), and announces it
    /// on the publisher's topic. Its files must be in the store already.
    pub async fn publish(&self, envelope: &[u8]) -> Result<Hash, NodeError> {
        let m = tamizdat_sign::Signed::<tamizdat_sign::Manifest>::decode(envelope)
            .map_err(|e| NodeError::Store(e.to_string()))?;
        let publisher = m.body().publisher;
        if !self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .follows(&publisher)
        {
            self.follow(publisher, None).await?;
        }
        let (reply, rx) = oneshot::channel();
        self.to_replication(replicate::Event::Publish {
            envelope: envelope.to_vec(),
            reply,
        })
        .await?;
        rx.await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Store)?;
        // Tell the DHT we hold the article, so that followers who missed the
        // announcement (or restart mid-way) find a provider.
        for h in std::iter::once(Hash::of(envelope))
            .chain(m.body().entries.iter().map(|e| Hash::from_bytes(e.hash)))
        {
            self.announce(h).await;
        }
        Ok(Hash::of(envelope))
    }

    /// Asks every connected peer for its heads now, follows up what they
    /// claim (fetching and judging the manifests), and answers with the
    /// publisher's heads as known here once all have answered, or after
    /// `wait`. A publisher calls this before signing the next article of a
    /// feed, so that it never signs a place in the feed that is taken.
    /// Follows the publisher first when it is not followed.
    pub async fn learn_heads(
        &self,
        publisher: tamizdat_sign::PublicKey,
        wait: Duration,
    ) -> Result<replicate::LearnedHeads, NodeError> {
        if !self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .follows(&publisher)
        {
            self.follow(publisher, None).await?;
        }
        let (reply, rx) = oneshot::channel();
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_add(wait.as_millis() as u64);
        self.to_replication(replicate::Event::LearnHeads {
            publisher,
            deadline_ms,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Applies a revocation (to the feed state this node holds) or keeps a
    /// delegation made or imported here, and tells the publisher's
    /// followers; they apply a revocation as soon as it arrives. The
    /// signature is checked first.
    pub async fn announce_key_object(&self, envelope: &[u8]) -> Result<(), NodeError> {
        let bad = |e: &dyn std::fmt::Display| NodeError::Store(e.to_string());
        if envelope.starts_with(b"tamizdat/card/") {
            return self.announce_card(envelope).await;
        }
        let root =
            if let Ok(rev) = tamizdat_sign::Signed::<tamizdat_sign::Revocation>::decode(envelope) {
                // Checks the root's signature before anything changes.
                tamizdat_sign::TrustState::default()
                    .add_revocation(&rev)
                    .map_err(|e| bad(&e))?;
                let root = rev.body().root;
                let (reply, rx) = oneshot::channel();
                self.to_replication(replicate::Event::Revoke {
                    rev: Box::new(rev),
                    reply,
                })
                .await?;
                rx.await.map_err(|_| NodeError::Stopped)?;
                root
            } else {
                tamizdat_sign::verify_delegation(envelope)
                    .map_err(|e| bad(&e))?
                    .body()
                    .root
            };
        let store = self.store.clone();
        let bytes = envelope.to_vec();
        tokio::task::spawn_blocking(move || {
            let added = store.add_bytes(&bytes).map_err(|e| e.to_string())?;
            store.pin("keys", &added.hash).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| bad(&e))?
        .map_err(NodeError::Store)?;
        let (tx, rx) = oneshot::channel();
        self.send(Command::Gossip(feeds::topic(&root), envelope.to_vec(), tx))
            .await?;
        rx.await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::Store)
    }

    /// Exchanges feed heads with `peer` and fetches what we miss.
    pub async fn catch_up(&self, peer: PeerId) {
        let _ = self.tx.send(Command::CatchUp(peer)).await;
    }

    /// Fetches a blob that must not be larger than `max` bytes (checked on
    /// its size proof, before any more is fetched), without announcing it:
    /// for objects still to be judged.
    pub async fn fetch_bounded(
        &self,
        hash: Hash,
        hint: &[PeerId],
        max: u64,
    ) -> Result<Fetched, NodeError> {
        let how = How {
            max: Some(max),
            ..How::default()
        };
        self.fetch_inner(hash, hint, None, how).await
    }

    /// Blob bytes this node has sent to peers since it started.
    pub fn bytes_served(&self) -> u64 {
        self.metrics.served_bytes().get()
    }

    /// The peers gossip knows, with their scores.
    pub async fn gossip_peers(&self) -> Result<Vec<GossipPeer>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::GossipPeers(tx)).await?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }

    /// Runs one request to `peer` on a blocking thread over a fresh stream.
    async fn request(
        &self,
        peer: PeerId,
        hash: Hash,
        size: Option<u64>,
        want: Option<ChunkRanges>,
    ) -> Result<transfer::Piece, (Failure, ChunkRanges, String)> {
        let mut control = self.control.clone();
        // Dialing and protocol negotiation get the same bound as a silent stream.
        let bound = self.config.idle_timeout;
        let late = |_| {
            let why = "no stream opened in time".to_owned();
            (Failure::Timeout, ChunkRanges::empty(), why)
        };
        let stream = match tokio::time::timeout(bound, control.open_stream(peer, BLOB))
            .await
            .map_err(late)?
        {
            Ok(s) => s,
            // A peer reached before (through a relay whose circuit has just
            // closed) whose dial failed, or was taken over by a hole punch
            // that failed: dialled once more where it was reached, then
            // asked once more.
            Err(e) if !self.links.dialled(&peer).is_empty() => {
                debug!(%peer, "no stream ({e}); dialling it where it was reached");
                let (tx, rx) = oneshot::channel();
                let redialled = async {
                    self.send(Command::Redial(peer, tx)).await.ok()?;
                    rx.await.ok()?.ok()
                };
                let again = async {
                    tokio::time::timeout(bound, redialled)
                        .await
                        .ok()
                        .flatten()?;
                    tokio::time::timeout(bound, control.open_stream(peer, BLOB))
                        .await
                        .ok()
                };
                match again.await {
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        return Err((Failure::Timeout, ChunkRanges::empty(), e.to_string()));
                    }
                    None => return Err((Failure::Timeout, ChunkRanges::empty(), e.to_string())),
                }
            }
            Err(e) => return Err((Failure::Timeout, ChunkRanges::empty(), e.to_string())),
        };
        let bridge = SyncIoBridge::new(Idle::new(stream.compat(), self.config.idle_timeout));
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            transfer::fetch(&store, &hash, size, want.as_ref(), bridge)
        })
        .await
        .unwrap_or_else(|e| Err((Failure::Timeout, ChunkRanges::empty(), e.to_string())))
    }

    /// Fetches `hash` into the store from whoever has it: `hint` peers and
    /// connected peers first, then providers found in the DHT; several in
    /// parallel by range; every group verified before it is kept; liars
    /// dropped. Resumes whatever part is already verified.
    pub async fn fetch(&self, hash: Hash, hint: &[PeerId]) -> Result<Fetched, NodeError> {
        self.fetch_with_progress(hash, hint, None).await
    }

    /// [`Client::fetch`], reporting progress on `progress` as it goes.
    pub async fn fetch_with_progress(
        &self,
        hash: Hash,
        hint: &[PeerId],
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<Fetched, NodeError> {
        self.fetch_inner(hash, hint, progress, How::default()).await
    }

    /// [`Client::fetch`] for replication (see `How::swarm`): the holders
    /// neighbours tell of join the fetch as they are told of, and it
    /// hands the file back to the replication core only when nobody has
    /// had anything for it for a while.
    pub(crate) async fn fetch_replica(
        &self,
        hash: Hash,
        providers: &[PeerId],
    ) -> Result<Fetched, NodeError> {
        let how = How {
            swarm: true,
            ..How::default()
        };
        self.fetch_inner(hash, providers, None, how).await
    }

    /// Every fetch goes through here, to be counted once.
    async fn fetch_inner(
        &self,
        hash: Hash,
        hint: &[PeerId],
        progress: Option<watch::Sender<Progress>>,
        how: How,
    ) -> Result<Fetched, NodeError> {
        let result = self.fetch_unrecorded(hash, hint, progress, how).await;
        self.metrics.fetched(&result);
        result
    }

    /// Adds the peers of `found` that may be asked: not this node, not
    /// caught lying (counted in `shunned`), not already there.
    fn add_candidates(
        &self,
        found: impl IntoIterator<Item = PeerId>,
        candidates: &mut Vec<PeerId>,
        shunned: &mut usize,
    ) {
        for p in found {
            if self.bad.is_bad(&p) {
                *shunned += 1;
            } else if !candidates.contains(&p) && p != self.peer_id {
                candidates.push(p);
            }
        }
    }

    /// The providers a lookup found: those connected already (no dial, no
    /// handshake) first, each fetcher ordering them its own way to spread
    /// the load, then the rest.
    async fn ordered_providers(
        &self,
        lookup: Result<Result<HashSet<PeerId>, NodeError>, tokio::task::JoinError>,
    ) -> Result<Vec<PeerId>, NodeError> {
        let found = lookup.map_err(|_| NodeError::Stopped)??;
        debug!(%self.peer_id, found = found.len(), "providers found");
        let connected: HashSet<PeerId> = self.connected().await?.into_iter().collect();
        let (mut near, far): (Vec<PeerId>, Vec<PeerId>) =
            found.into_iter().partition(|p| connected.contains(p));
        let me = self.peer_id.to_bytes();
        near.sort_by_cached_key(|p| {
            let mut h = blake3::Hasher::new();
            h.update(&me);
            h.update(&p.to_bytes());
            *h.finalize().as_bytes()
        });
        near.extend(far);
        Ok(near)
    }

    async fn fetch_unrecorded(
        &self,
        hash: Hash,
        hint: &[PeerId],
        progress: Option<watch::Sender<Progress>>,
        how: How,
    ) -> Result<Fetched, NodeError> {
        let max = how.max;
        let store_err = |e: &dyn std::fmt::Display| NodeError::Store(e.to_string());
        let initial = self
            .store
            .info_without_pins(&hash)
            .map_err(|e| store_err(&e))?;
        let before = initial.as_ref().map(|i| i.verified_bytes).unwrap_or(0);
        let initial_size = initial.as_ref().map(|i| i.size);
        if let Some(info) = initial
            && info.complete
        {
            self.announce(hash).await;
            return Ok(Fetched {
                size: info.size,
                new_bytes: 0,
                providers: Vec::new(),
                bad: Vec::new(),
            });
        }
        // What neighbours tell of this blob while it is fetched: watched by
        // a replication fetch only.
        let mut told = how.swarm.then(|| self.holders.watch(hash));
        // Peers known to hold it (the hints) are asked at once. The DHT
        // lookup runs beside them, and the providers it finds join the fetch
        // when they come: no fetch waits on a lookup it does not need. A
        // replication fetch has none: the core looks up.
        let mut lookup = (!how.swarm).then(|| {
            let this = self.clone();
            tokio::spawn(async move { this.providers(hash).await })
        });
        let mut candidates: Vec<PeerId> = Vec::new();
        let mut shunned = 0;
        self.add_candidates(hint.iter().copied(), &mut candidates, &mut shunned);
        if told.is_some() {
            self.add_told(hash, &mut candidates, &mut shunned);
            if candidates.is_empty() {
                self.wait_told(hash, &mut told, &mut candidates, &mut shunned)
                    .await;
            }
        }
        if candidates.is_empty()
            && let Some(found) = lookup.take()
        {
            let found = self.ordered_providers(found.await).await?;
            self.add_candidates(found, &mut candidates, &mut shunned);
        }
        if candidates.is_empty() {
            if shunned > 0 {
                return Err(NodeError::NotFound {
                    hash,
                    asked: 0,
                    detail: format!(
                        "the only providers known were caught sending bad data ({shunned})"
                    ),
                });
            }
            // The lookup is over: connected to nobody now, nobody was asked.
            if self.connected().await?.is_empty() {
                return Err(NodeError::NoPeers(hash));
            }
            return Err(NodeError::NoProviders(hash));
        }
        let mut last_error = String::new();
        let mut bad = Vec::new();
        // The size proof, from the first provider that gives a good one.
        // A partial blob here has its size proven already.
        let mut size = initial_size;
        // Providers that answered "busy" are asked again, a few rounds,
        // waiting longer each time.
        let mut ask = if size.is_none() {
            candidates.clone()
        } else {
            Vec::new()
        };
        let mut wait = Duration::ZERO;
        let mut silent = HashSet::new();
        // Peers asked again after a broken stream (once each).
        let mut retried = HashSet::new();
        // Who sent bytes of the blob with its size proof.
        let mut proved_by = None;
        for round in 0..SIZE_PROOF_ROUNDS {
            if size.is_some() {
                break;
            }
            if let Some(found) = lookup.take_if(|_| round > 0) {
                // No peer known at first could prove it: those the lookup
                // finds are asked next, at once, then the busy ones again.
                let before = candidates.len();
                let found = self.ordered_providers(found.await).await?;
                self.add_candidates(found, &mut candidates, &mut shunned);
                let busy = std::mem::take(&mut ask);
                ask = candidates[before..].to_vec();
                ask.extend(busy);
            } else if ask.is_empty() && told.is_some() {
                // Nobody asked could prove it (a peer that forwarded the
                // article before it held it): wait for a neighbour to hold
                // some of it. Anyone holding a piece holds the size proof.
                let before = candidates.len();
                self.wait_told(hash, &mut told, &mut candidates, &mut shunned)
                    .await;
                ask = candidates[before..].to_vec();
            } else if ask.is_empty() {
                break;
            } else {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).clamp(fetch::FIRST_BACKOFF, fetch::MAX_BACKOFF);
            }
            if ask.is_empty() {
                break;
            }
            let mut busy = Vec::new();
            for p in ask {
                // One small group: a provider that cannot send it promptly
                // is passed over rather than waited for.
                let asked =
                    tokio::time::timeout(SIZE_PROOF_TIMEOUT, self.request(p, hash, None, None))
                        .await
                        .unwrap_or_else(|_| {
                            Err((
                                Failure::Timeout,
                                ChunkRanges::empty(),
                                "no size proof in time".into(),
                            ))
                        });
                match asked {
                    Ok(piece) => {
                        size = Some(piece.size);
                        // A small blob comes whole with its size proof.
                        if !piece.got.is_empty() {
                            proved_by = Some(p);
                        }
                        break;
                    }
                    Err((why, _, detail)) => {
                        if matches!(why, Failure::Corrupt | Failure::WrongSize) {
                            warn!(peer = %p, %hash, "provider lied about the size; remembered");
                            self.bad.mark(p);
                            bad.push(p);
                        } else if why == Failure::Busy {
                            busy.push(p);
                        } else if why == Failure::Timeout
                            && self.links.connected(&p)
                            && retried.insert(p)
                        {
                            // Its stream broke but it is still connected
                            // (a hole punched just then closes the relayed
                            // connection under the request): asked once more.
                            busy.push(p);
                        } else if why == Failure::Timeout {
                            silent.insert(p);
                        }
                        last_error = format!("{p}: {detail}");
                    }
                }
            }
            ask = busy;
        }
        if let (Some(size), Some(max)) = (size, max)
            && size > max
        {
            return Err(NodeError::NotFound {
                hash,
                asked: candidates.len(),
                detail: format!("it is {size} bytes, over the {max} expected"),
            });
        }
        let Some(size) = size else {
            // Nobody answered at all (no stream could even be opened), and
            // nobody is connected: the peers named could not be reached.
            if candidates.iter().all(|p| silent.contains(p)) && self.connected().await?.is_empty() {
                return Err(NodeError::NoPeers(hash));
            }
            return Err(NodeError::NotFound {
                hash,
                asked: candidates.len(),
                detail: last_error,
            });
        };
        let have = self
            .store
            .verified_ranges(&hash)
            .map_err(|e| store_err(&e))?;
        let piece = if how.swarm {
            SWARM_PIECE
        } else {
            self.config.piece_bytes
        };
        let mut plan = Plan::new(size, have, piece).with_per_provider(self.config.fetch_parallel);
        if how.swarm {
            let seed = blake3::hash(&self.peer_id.to_bytes());
            let seed = u64::from_le_bytes(seed.as_bytes()[..8].try_into().unwrap_or_default());
            plan = plan.with_spread(seed);
        }
        // Providers that stayed silent on the size proof come last, and only
        // if nobody else is left. What neighbours said they hold is asked
        // of them, not more.
        let held: HashMap<PeerId, Option<ChunkRanges>> = if told.is_some() {
            self.holders.of(&hash).into_iter().collect()
        } else {
            HashMap::new()
        };
        let add = |plan: &mut Plan<PeerId>, p: &PeerId| match held.get(p) {
            Some(Some(r)) => plan.add_partial(*p, r),
            _ => plan.add_provider(*p),
        };
        let mut added = 0;
        for p in candidates
            .iter()
            .filter(|p| !bad.contains(p) && !silent.contains(*p))
        {
            add(&mut plan, p);
            added += 1;
        }
        if added == 0 {
            for p in candidates.iter().filter(|p| !bad.contains(p)) {
                add(&mut plan, p);
            }
        }
        let mut delivered = HashSet::new();
        let mut running = JoinSet::new();
        let mut last_told: Option<std::time::Instant> = None;
        // When the last piece came, and the longest one took: the end game
        // starts when pieces are later than twice that.
        let mut last_piece = tokio::time::Instant::now();
        let mut slowest = Duration::ZERO;
        let start = |running: &mut JoinSet<_>, peer: PeerId, ranges: ChunkRanges, wait| {
            let this = self.clone();
            running.spawn(async move {
                tokio::time::sleep(wait).await;
                let started = tokio::time::Instant::now();
                let r = this
                    .request(peer, hash, Some(size), Some(ranges.clone()))
                    .await;
                (peer, ranges, r, started.elapsed())
            });
        };
        loop {
            // A peer reached only through a relay is asked for pieces that
            // fit in one circuit.
            for p in plan.providers() {
                plan.cap_pieces(&p, self.links.relayed_only(&p).then_some(RELAY_PIECE));
            }
            // Every piece assigned is started: the plan bounds how many each
            // provider carries at once.
            for (peer, ranges) in plan.assign() {
                let wait = plan.backoff(&peer);
                start(&mut running, peer, ranges, wait);
            }
            let late = last_piece + (slowest * 2).max(END_GAME_AFTER);
            let done = tokio::select! {
                _ = tokio::time::sleep_until(late), if !running.is_empty() && plan.unassigned().is_empty() => {
                    // Nothing left to hand out and nothing came for a
                    // while: a provider may be stalling. Others that hold
                    // its pieces are asked too.
                    for (peer, ranges) in plan.end_game() {
                        debug!(%peer, %hash, "end game");
                        start(&mut running, peer, ranges, Duration::ZERO);
                    }
                    last_piece = tokio::time::Instant::now();
                    continue;
                }
                found = async { lookup.as_mut().expect("guarded").await }, if lookup.is_some() => {
                    // More providers: they share the pieces still to fetch.
                    lookup = None;
                    let before = candidates.len();
                    let found = self.ordered_providers(found).await?;
                    self.add_candidates(found, &mut candidates, &mut shunned);
                    for p in &candidates[before..] {
                        plan.add_provider(*p);
                    }
                    continue;
                }
                news = async { told.as_mut().expect("guarded").changed().await }, if told.is_some() => {
                    if news.is_err() {
                        // Nothing more will be told (no room to remember it).
                        told = None;
                        continue;
                    }
                    // A neighbour holds more of it: it shares what is left.
                    for (p, held) in self.holders.of(&hash) {
                        if bad.contains(&p) || self.bad.is_bad(&p) || p == self.peer_id {
                            continue;
                        }
                        match held {
                            Some(r) => plan.add_partial(p, &r),
                            None => plan.add_provider(p),
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep(SWARM_STALL), if told.is_some() && running.is_empty() => break,
                // The node stopped: nothing more will come.
                _ = self.tx.closed(), if told.is_some() => break,
                done = running.join_next(), if !running.is_empty() => done,
                else => break,
            };
            let Some(Ok((peer, asked, result, took))) = done else {
                continue;
            };
            match result {
                Ok(piece) => {
                    last_piece = tokio::time::Instant::now();
                    slowest = slowest.max(took);
                    delivered.insert(peer);
                    plan.done(&peer, &asked, &piece.got);
                    if let Some(tx) = &progress {
                        let _ = tx.send(Progress {
                            size,
                            verified: plan.verified_bytes(),
                            providers: delivered.len(),
                        });
                    }
                    // Neighbours fetching it too may take what verified
                    // from here at once.
                    if told.is_some()
                        && max.is_none()
                        && !plan.is_complete()
                        && last_told.is_none_or(|t| t.elapsed() >= SWARM_TELL_EVERY)
                    {
                        last_told = Some(std::time::Instant::now());
                        let held = have::Held::of(plan.verified(), size);
                        have::tell(
                            self,
                            vec![have::Have {
                                hash: *hash.as_bytes(),
                                held: Some(held),
                            }],
                        );
                    }
                }
                Err((why, got, detail)) => {
                    debug!(%peer, ?why, "fetch failed: {detail}");
                    last_error = format!("{peer}: {detail}");
                    plan.failed(&peer, &asked, &got, why);
                }
            }
            if plan.is_complete() {
                break;
            }
        }
        if let Some(l) = lookup {
            l.abort();
        }
        for p in plan.bad() {
            warn!(peer = %p, %hash, "provider sent bad data; dropped and remembered");
            self.bad.mark(p);
            bad.push(p);
        }
        let complete = self
            .store
            .info_without_pins(&hash)
            .map_err(|e| store_err(&e))?
            .is_some_and(|i| i.complete);
        let new_bytes = plan.verified_bytes().saturating_sub(before);
        self.metrics.fetched_bytes(new_bytes);
        if !complete {
            return Err(NodeError::Incomplete {
                hash,
                verified: plan.verified_bytes(),
                size,
                detail: last_error,
            });
        }
        // A bounded fetch is a manifest still to be judged: announced only
        // once accepted.
        if max.is_none() {
            self.announce(hash).await;
        }
        // A small blob came whole with its size proof: no piece was asked.
        if delivered.is_empty() {
            delivered.extend(proved_by);
        }
        Ok(Fetched {
            size,
            new_bytes,
            providers: delivered.into_iter().collect(),
            bad,
        })
    }

    /// Adds the peers neighbours told of as holders of `hash` (whole
    /// holders first) to `candidates`.
    fn add_told(&self, hash: Hash, candidates: &mut Vec<PeerId>, shunned: &mut usize) {
        let mut told = self.holders.of(&hash);
        told.sort_by_key(|(_, held)| held.is_some());
        self.add_candidates(told.into_iter().map(|(p, _)| p), candidates, shunned);
    }

    /// Waits up to [`SWARM_STALL`] for a neighbour to tell of a holder of
    /// `hash` not among `candidates`, and adds it.
    async fn wait_told(
        &self,
        hash: Hash,
        told: &mut Option<watch::Receiver<u64>>,
        candidates: &mut Vec<PeerId>,
        shunned: &mut usize,
    ) {
        let Some(rx) = told.as_mut() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + SWARM_STALL;
        let before = candidates.len();
        while candidates.len() == before {
            tokio::select! {
                news = tokio::time::timeout_at(deadline, rx.changed()) => match news {
                    Ok(Ok(())) => self.add_told(hash, candidates, shunned),
                    Ok(Err(_)) => {
                        *told = None;
                        return;
                    }
                    Err(_) => return,
                },
                _ = self.tx.closed() => return,
            }
        }
    }
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// Set when it stops as asked (see [`Supervisor`]).
    stopping: Arc<AtomicBool>,
    /// `Config::bootstrap`, dialled again while the node is alone.
    bootstrap: Vec<Multiaddr>,
    /// Every address known for reaching the network, scored.
    book: crate::book::Book,
    /// The book's clock starts here.
    started: std::time::Instant,
    bootstrap_retry: Duration,
    /// `Config::alone_warning`.
    alone_warning: Option<Duration>,
    /// A warning that the node is alone went out since it last had a peer.
    warned_alone: bool,
    /// Peers connected now, for [`Client::peer_count`].
    peers_tx: watch::Sender<usize>,
    commands: mpsc::Receiver<Command>,
    addr_tx: watch::Sender<Vec<Multiaddr>>,
    listening_tx: watch::Sender<usize>,
    nat_tx: watch::Sender<NatStatus>,
    /// `Config::kad_server`.
    kad_server: Option<bool>,
    /// Peers that offer relaying, and an address of each (bounded).
    relay_candidates: HashMap<PeerId, Multiaddr>,
    /// Gossip and new peers, for the replication task (bounded).
    repl_tx: mpsc::Sender<replicate::Event>,
    /// Listeners through a relay, at most [`MAX_RELAYS`].
    relay_listeners: HashMap<ListenerId, PeerId>,
    /// Relayed connections open now, closed once DCUtR finds a direct one.
    relayed: HashMap<ConnectionId, PeerId>,
    /// Peers found by mDNS (bounded).
    mdns_peers: HashSet<PeerId>,
    listeners: HashMap<ListenerId, Vec<Multiaddr>>,
    pending_dial: HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, String>>>>,
    /// Dials to an address without a peer id, by connection.
    pending_conn: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, String>>>,
    pending_providers: HashMap<kad::QueryId, (oneshot::Sender<HashSet<PeerId>>, HashSet<PeerId>)>,
    pending_provide: HashMap<kad::QueryId, oneshot::Sender<Result<(), String>>>,
    /// Listen addresses peers announced through identify (bounded), only
    /// those reachable from here (see [`reachable`]).
    announced: HashMap<PeerId, Vec<Multiaddr>>,
    /// The scope of each open connection's remote address: what a peer
    /// announces over it is kept only where it could be reached from here.
    conn_scope: HashMap<ConnectionId, Scope>,
    /// Announcements made while the routing table was empty reached nobody:
    /// they are made again once the first peer is known.
    reannounce: bool,
    /// libp2p's metrics, fed every swarm event and the protocols' events.
    libp2p_metrics: Libp2pMetrics,
    /// The node's own, shared with every [`Client`].
    metrics: NodeMetrics,
}

impl EventLoop {
    async fn run(mut self) {
        let mut retry = tokio::time::interval(self.bootstrap_retry);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        retry.tick().await;
        let mut refresh = tokio::time::interval(KAD_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        // Every `alone_warning` (never, when it is `None`).
        self.alone_warning = self.alone_warning.filter(|d| !d.is_zero());
        let every = self.alone_warning.unwrap_or(Duration::from_secs(86_400));
        let mut alone = tokio::time::interval_at(
            tokio::time::Instant::now() + every.min(ALONE_FIRST_WARNING),
            every,
        );
        alone.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    let lost_last = matches!(
                        ev,
                        SwarmEvent::ConnectionClosed { num_established: 0, .. }
                    );
                    let peers_changed = matches!(
                        ev,
                        SwarmEvent::ConnectionClosed { num_established: 0, .. }
                            | SwarmEvent::ConnectionEstablished { .. }
                    );
                    self.on_swarm_event(ev);
                    if peers_changed {
                        self.count_peers();
                    }
                    // Alone again (a link cut, pings unanswered): the way
                    // back in is tried at once, then on the usual beat.
                    if lost_last && self.swarm.connected_peers().next().is_none() {
                        retry.reset_after(Duration::from_secs(1));
                    }
                }
                _ = retry.tick() => self.redial_bootstrap(),
                _ = refresh.tick() => self.refresh_routing_table(),
                _ = alone.tick(), if self.alone_warning.is_some() => self.warn_if_alone(),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => {
                        info!("node stopping");
                        // Before the swarm goes: the tasks that end with it
                        // are not failures.
                        self.stopping.store(true, Ordering::SeqCst);
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                },
            }
        }
    }

    /// Counts the peers connected now, for [`Client::peer_count`] and the
    /// `tamizdat_connected_peers` gauge.
    fn count_peers(&mut self) {
        let n = self.swarm.connected_peers().count();
        self.metrics.connected_peers(n);
        let before = self.peers_tx.send_replace(n);
        if before == 0 && n > 0 && std::mem::take(&mut self.warned_alone) {
            info!("connected to a peer again");
        }
    }

    /// Says, in plain words, that a node connected to nobody can neither
    /// receive articles nor pass them on, and what it is trying.
    fn warn_if_alone(&mut self) {
        if self.swarm.connected_peers().next().is_some() {
            return;
        }
        self.warned_alone = true;
        let trying = match (self.bootstrap.len(), self.book.len()) {
            (0, 0) => "it knows no bootstrap address to dial".to_owned(),
            (n, known) => format!(
                "none of the {known} address(es) it knows answers ({n} of them bootstrap; each \
                 dialled again after 5 s, waiting longer after each failure, at most {} s for a \
                 bootstrap address)",
                crate::book::PINNED_BACKOFF.as_secs()
            ),
        };
        warn!(
            "connected to nobody: this node can neither receive articles nor pass them on, \
             and {trying}. Give it a publisher's card or a bootstrap address"
        );
    }

    /// Whether the DHT's routing table is empty: nobody to ask.
    fn routing_table_is_empty(&mut self) -> bool {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .all(|b| b.num_entries() == 0)
    }

    /// Refreshes the DHT routing table, when there is anyone to ask.
    fn refresh_routing_table(&mut self) {
        if !self.routing_table_is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    /// A node connected to nobody dials its bootstrap addresses again.
    fn redial_bootstrap(&mut self) {
        if self.book.is_empty() || self.swarm.connected_peers().next().is_some() {
            return;
        }
        // Every address known, each when its backoff allows, best first: a
        // blocked transport waits while the peer's others are tried.
        let due = self.book.due(self.now_ms(), FIRST_DIALS);
        debug!(due = due.len(), "alone: dialling known addresses again");
        for addr in due {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!("cannot dial {addr}: {e}");
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Scores the address book with how a dial went.
    fn note_dial(&mut self, event: &SwarmEvent<BehaviourEvent>) {
        let now = self.now_ms();
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint: libp2p::core::ConnectedPoint::Dialer { address, .. },
                ..
            } => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let full = with_peer(address, *peer_id);
                // An address that worked is worth keeping, wherever it came from.
                if !is_relayed(address) {
                    self.book.learn(full.clone());
                }
                self.book.succeeded(address, now, unix);
                if full != *address {
                    self.book.succeeded(&full, now, unix);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                use libp2p::swarm::DialError;
                // Each address once: libp2p reports what it dialled, which
                // already ends in /p2p/ when the peer was known.
                let mut fail = |addr: &Multiaddr| {
                    self.book.failed(addr, now);
                    if let Some(p) = peer_id
                        && with_peer(addr, *p) != *addr
                    {
                        self.book.failed(&with_peer(addr, *p), now);
                    }
                };
                match error {
                    DialError::Transport(tried) => tried.iter().for_each(|(a, _)| fail(a)),
                    DialError::WrongPeerId { address, .. } => fail(address),
                    // It answered as this very node: never dialled again.
                    DialError::LocalPeerId { address } => self.book.forget(address),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn publish_addrs(&mut self) {
        let all: Vec<Multiaddr> = self.listeners.values().flatten().cloned().collect();
        let _ = self.addr_tx.send(all);
        let _ = self
            .listening_tx
            .send(self.listeners.values().filter(|a| !a.is_empty()).count());
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Redial(peer, reply) => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::Disconnected)
                    .build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_conn.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Command::Dial(addr, reply) => {
                let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                    // Whoever answers there (noise proves who it is): wait
                    // on this connection rather than on a peer id.
                    let opts = DialOpts::unknown_peer_id().address(addr).build();
                    let id = opts.connection_id();
                    match self.swarm.dial(opts) {
                        Ok(()) => {
                            self.pending_conn.insert(id, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                    return;
                };
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
                let opts = DialOpts::peer_id(peer).addresses(vec![addr]).build();
                match self.swarm.dial(opts) {
                    // A dial already under way answers this one too.
                    Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                        self.pending_dial.entry(peer).or_default().push(reply)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Command::Listen(addr, reply) => {
                let r = self.swarm.listen_on(addr).map(drop);
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Command::Provide(hash, reply) => {
                let key = kad::RecordKey::new(hash.as_bytes());
                match self.swarm.behaviour_mut().kad.start_providing(key) {
                    Ok(id) => {
                        if let Some(reply) = reply {
                            self.pending_provide.insert(id, reply);
                        }
                    }
                    Err(e) => {
                        warn!(%hash, "cannot announce: {e:?}");
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(format!("{e:?}")));
                        }
                    }
                }
            }
            Command::Providers(hash, reply) => {
                let key = kad::RecordKey::new(hash.as_bytes());
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.pending_providers.insert(id, (reply, HashSet::new()));
            }
            Command::Connected(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Known(reply) => {
                // What connected peers announce (and could be reached by)
                // joins the book before it is handed out.
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                for peer in peers {
                    for addr in self.announced.get(&peer).into_iter().flatten().take(8) {
                        self.book.learn(with_peer(addr, peer));
                    }
                }
                let _ = reply.send(self.book.saved());
            }
            Command::Subscribe(topic, on) => {
                subscribe(&mut self.swarm.behaviour_mut().gossipsub, &topic, on);
            }
            Command::Gossip(topic, data, reply) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic), data);
                let _ = reply.send(match r {
                    Ok(_) => Ok(()),
                    // Nobody to tell yet: peers catch up when they connect.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    // Sent already (the same object announced again, by an
                    // import or `key import`): peers have it or will.
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(e.to_string()),
                });
            }
            Command::Validate(id, source, acceptance) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::GossipPeers(reply) => {
                let gs = &self.swarm.behaviour().gossipsub;
                let mesh: HashSet<PeerId> = gs.all_mesh_peers().copied().collect();
                let peers = gs
                    .all_peers()
                    .map(|(p, _)| GossipPeer {
                        peer: *p,
                        score: gs.peer_score(p).unwrap_or(0.0),
                        in_mesh: mesh.contains(p),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::CatchUp(peer) => {
                let _ = self.repl_tx.try_send(replicate::Event::Connected(peer));
            }
            Command::Shutdown => {}
        }
    }

    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        let m = &self.libp2p_metrics;
        m.record(event);
        match event {
            SwarmEvent::ConnectionEstablished { endpoint, .. } if endpoint.is_dialer() => {
                self.metrics.dialed(endpoint.get_remote_address());
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => self.metrics.dial_failed(error),
            SwarmEvent::Behaviour(ev) => match ev {
                BehaviourEvent::Identify(e) => m.record(e),
                BehaviourEvent::Ping(e) => m.record(e),
                BehaviourEvent::Kad(e) => m.record(e),
                BehaviourEvent::Gossipsub(e) => m.record(e),
                BehaviourEvent::Relay(e) => m.record(e),
                BehaviourEvent::Dcutr(e) => m.record(e),
                _ => {}
            },
            _ => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record(&event);
        self.note_dial(&event);
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                info!("listening on {address}");
                // Kademlia schedules a bootstrap when a listen address comes
                // while it has no connection; with an empty routing table
                // that can only fail, and libp2p warns "No known peers". The
                // failed call made here, at once, cancels the one scheduled
                // (the node says it is alone in its own words).
                if self.routing_table_is_empty() {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                self.swarm.add_external_address(address.clone());
                // A private node's records name the addresses it had when it
                // announced, none of which others can dial: once a relay
                // gives it one they can, it announces again (once per relay).
                let first_relayed = is_relayed(&address)
                    && self
                        .listeners
                        .get(&listener_id)
                        .is_none_or(|l| l.is_empty());
                self.listeners.entry(listener_id).or_default().push(address);
                self.publish_addrs();
                if first_relayed {
                    if self.routing_table_is_empty() {
                        self.reannounce = true;
                    } else {
                        self.announce_all("with an address through a relay");
                    }
                }
            }
            SwarmEvent::ExpiredListenAddr {
                listener_id,
                address,
            } => {
                if let Some(list) = self.listeners.get_mut(&listener_id) {
                    list.retain(|a| *a != address);
                }
                self.publish_addrs();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                self.listeners.remove(&listener_id);
                self.publish_addrs();
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    if let Err(e) = reason {
                        // Not tried again until identify offers it anew.
                        debug!(%relay, "relay listener failed: {e}");
                        self.relay_candidates.remove(&relay);
                    }
                    self.listen_via_relays();
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established.get() == 1 {
                    // Best effort: a full queue only delays catch-up to the
                    // next connection.
                    let _ = self.repl_tx.try_send(replicate::Event::Connected(peer_id));
                }
                if endpoint.is_relayed() {
                    self.relayed.insert(connection_id, peer_id);
                }
                self.conn_scope
                    .insert(connection_id, scope(endpoint.get_remote_address()));
                for reply in self.pending_dial.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(peer_id));
                }
                if let Some(reply) = self.pending_conn.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                debug!(peer = ?peer_id, "dial failed: {error}");
                if let Some(reply) = self.pending_conn.remove(&connection_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
                if let Some(peer) = peer_id {
                    for reply in self.pending_dial.remove(&peer).unwrap_or_default() {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                mut info,
            })) => {
                let via = self
                    .conn_scope
                    .get(&connection_id)
                    .copied()
                    .unwrap_or(Scope::Global);
                let ours: Vec<Multiaddr> = self
                    .listeners
                    .values()
                    .flatten()
                    .chain(self.swarm.external_addresses())
                    .cloned()
                    .collect();
                info.listen_addrs = not_ours(reachable(info.listen_addrs, via), &ours);
                self.on_identified(peer_id, info);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.relayed.remove(&connection_id);
                self.conn_scope.remove(&connection_id);
                if num_established == 0 {
                    let _ = self
                        .repl_tx
                        .try_send(replicate::Event::Disconnected(peer_id));
                    self.announced.remove(&peer_id);
                    if !self.relay_listeners.values().any(|r| *r == peer_id) {
                        self.relay_candidates.remove(&peer_id);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let event = replicate::Event::Gossip {
                    source: propagation_source,
                    id: message_id.clone(),
                    topic: message.topic.into_string(),
                    data: message.data,
                };
                if self.repl_tx.try_send(event).is_err() {
                    // Overloaded: let it go without penalty; the feed chain
                    // brings it later.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged {
                new,
                ..
            })) => self.on_nat_status(new.into()),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => {
                    // The direct connection carries everything from now on:
                    // the relayed one has a byte cap.
                    debug!(peer = %remote_peer_id, "hole punched; closing the relayed connection");
                    let old: Vec<ConnectionId> = self
                        .relayed
                        .iter()
                        .filter(|(_, p)| **p == remote_peer_id)
                        .map(|(c, _)| *c)
                        .collect();
                    for c in old {
                        self.swarm.close_connection(c);
                    }
                }
                Err(e) => debug!(peer = %remote_peer_id, "hole punching failed: {e}"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(ev)) => self.on_mdns_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e @ (ping::Failure::Timeout | ping::Failure::Other { .. })),
            })) => {
                // A peer that stopped answering (offline, its link cut) would
                // otherwise keep a connection that only looks alive: nothing
                // is asked of it, and it gets no fresh connection, hence no
                // catch-up, when it comes back.
                debug!(%peer, "ping failed, closing the connection: {e}");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    fn on_identified(&mut self, peer_id: PeerId, info: identify::Info) {
        if info.protocols.contains(&relay::HOP_PROTOCOL_NAME)
            && (self.relay_candidates.len() < MAX_RELAY_CANDIDATES
                || self.relay_candidates.contains_key(&peer_id))
            && let Some(addr) = info.listen_addrs.iter().take(8).find(|a| !is_relayed(a))
        {
            let new = self
                .relay_candidates
                .insert(peer_id, addr.clone())
                .is_none();
            if new {
                self.listen_via_relays();
            }
        }
        if info.protocols.contains(&KAD_PROTOCOL) {
            let addrs: Vec<Multiaddr> = info.listen_addrs.into_iter().take(8).collect();
            for addr in &addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, addr.clone());
            }
            if self.announced.len() < 1024 || self.announced.contains_key(&peer_id) {
                self.announced.insert(peer_id, addrs);
            }
        }
    }

    fn on_nat_status(&mut self, status: NatStatus) {
        info!(?status, "reachability changed");
        let mode = kad_mode(self.kad_server, &status);
        self.swarm.behaviour_mut().kad.set_mode(Some(mode));
        let _ = self.nat_tx.send(status.clone());
        match status {
            NatStatus::Private => self.listen_via_relays(),
            NatStatus::Public(_) => {
                // Dialable directly: stop using up relays' reservations.
                for id in std::mem::take(&mut self.relay_listeners).into_keys() {
                    self.swarm.remove_listener(id);
                }
            }
            NatStatus::Unknown => {}
        }
    }

    /// While unreachable, listens through known relays, up to [`MAX_RELAYS`].
    fn listen_via_relays(&mut self) {
        if *self.nat_tx.borrow() != NatStatus::Private {
            return;
        }
        let mut candidates: Vec<(PeerId, Multiaddr)> = self
            .relay_candidates
            .iter()
            .filter(|(p, _)| !self.relay_listeners.values().any(|r| r == *p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        // Connected relays first: no dial needed.
        candidates.sort_by_key(|(p, _)| !self.swarm.is_connected(p));
        for (relay, addr) in candidates {
            if self.relay_listeners.len() >= MAX_RELAYS {
                break;
            }
            let circuit = circuit_addr(&addr, relay);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    info!("asking {relay} to relay: {circuit}");
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => {
                    debug!("cannot listen on {circuit}: {e}");
                    self.relay_candidates.remove(&relay);
                }
            }
        }
    }

    fn on_mdns_event(&mut self, ev: mdns::Event) {
        match ev {
            mdns::Event::Discovered(found) => {
                let me = *self.swarm.local_peer_id();
                for (peer, addr) in found.into_iter().take(MAX_MDNS_PEERS) {
                    if peer == me
                        || (self.mdns_peers.len() >= MAX_MDNS_PEERS
                            && !self.mdns_peers.contains(&peer))
                    {
                        continue;
                    }
                    debug!(%peer, "found on the local network at {addr}");
                    self.mdns_peers.insert(peer);
                    // Only dialed: the mDNS service name is shared by every
                    // libp2p program, so identify decides (as for any peer)
                    // whether it speaks our DHT before it enters the table.
                    if !self.swarm.is_connected(&peer) {
                        // Refused while a dial is under way; that one is enough.
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                    }
                }
            }
            mdns::Event::Expired(gone) => {
                for (peer, addr) in gone.into_iter().take(MAX_MDNS_PEERS) {
                    self.mdns_peers.remove(&peer);
                    self.swarm.behaviour_mut().kad.remove_address(&peer, &addr);
                }
            }
        }
    }

    /// Announces every blob held again (as many as at start, at most
    /// `Config::max_provided`): the records carry the addresses the node
    /// has now.
    fn announce_all(&mut self, why: &str) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let keys: Vec<kad::RecordKey> = kad.store_mut().provided().map(|r| r.key.clone()).collect();
        debug!(count = keys.len(), "announcing held blobs {why}");
        for key in keys {
            let _ = kad.start_providing(key);
        }
    }

    fn on_kad_event(&mut self, ev: kad::Event) {
        match ev {
            // Inbound writes are validated here: provider records for 32-byte
            // keys only; no free-form records are stored.
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::AddProvider { record: Some(rec) }
                    if rec.key.as_ref().len() == 32 =>
                {
                    debug!(provider = %rec.provider, addresses = ?rec.addresses, "provider record");
                    let _ = self.swarm.behaviour_mut().kad.store_mut().add_provider(rec);
                }
                kad::InboundRequest::PutRecord { source, .. } => {
                    debug!(%source, "refused a DHT record: this network stores none");
                }
                _ => {}
            },
            kad::Event::RoutingUpdated {
                is_new_peer: true, ..
            } if self.reannounce => {
                self.reannounce = false;
                self.announce_all("to the first peers");
            }
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => {
                if let kad::QueryResult::StartProviding(r) = &result
                    && let Some(reply) = self.pending_provide.remove(&id)
                {
                    let _ = reply.send(r.clone().map(drop).map_err(|e| format!("{e:?}")));
                }
                if let kad::QueryResult::GetProviders(r) = result {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r
                        && let Some((_, found)) = self.pending_providers.get_mut(&id)
                    {
                        found.extend(providers);
                    }
                    let enough = self
                        .pending_providers
                        .get(&id)
                        .is_some_and(|(_, f)| f.len() >= 8);
                    if step.last || enough {
                        if let Some((reply, found)) = self.pending_providers.remove(&id) {
                            // Dial now, while the query still knows their addresses.
                            for p in &found {
                                if !self.swarm.is_connected(p) {
                                    let _ = self.swarm.dial(*p);
                                }
                            }
                            let _ = reply.send(found);
                        }
                        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            q.finish();
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_addresses_are_kept_only_where_they_can_be_reached() {
        let a = |s: &str| s.parse::<Multiaddr>().unwrap();
        let announced = vec![
            a("/ip4/127.0.0.1/tcp/4001"),
            a("/ip6/::1/udp/4001/quic-v1"),
            a("/ip4/192.168.1.2/tcp/4001"),
            a("/ip4/100.64.3.4/tcp/4001"),
            a("/ip6/fd00::2/tcp/4001"),
            a("/ip4/203.0.113.7/tcp/4001"),
            a("/dns4/node.example.org/tcp/443/ws"),
            a(
                "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
            ),
        ];
        assert_eq!(reachable(announced.clone(), Scope::Host), announced);
        assert_eq!(
            reachable(announced.clone(), Scope::Local),
            announced[2..].to_vec()
        );
        assert_eq!(
            reachable(announced.clone(), Scope::Global),
            announced[5..].to_vec()
        );
        assert_eq!(scope(&a("/ip4/100.128.0.1/tcp/1")), Scope::Global);
        assert_eq!(scope(&a("/ip4/0.0.0.0/tcp/1")), Scope::Host);
    }

    /// A node whose tasks are `tasks`, watched as `spawn` watches them.
    fn supervised(
        tasks: Vec<(&'static str, futures::future::BoxFuture<'static, ()>)>,
    ) -> (Arc<AtomicBool>, watch::Receiver<Option<String>>) {
        let mut s = Supervisor::default();
        for (name, task) in tasks {
            s.spawn(name, task);
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(None);
        tokio::spawn(s.run(stopping.clone(), tx));
        (stopping, rx)
    }

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_takes_the_node_down() {
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let (_stopping, mut failure) = supervised(vec![
            (
                "event loop",
                Box::pin(async move {
                    // Holds the channel open until it is aborted.
                    let _alive = alive_tx;
                    futures::future::pending::<()>().await
                }),
            ),
            ("blob server", Box::pin(async { panic!("bad request") })),
        ]);
        let why = failure.wait_for(Option::is_some).await.unwrap().clone();
        let why = why.unwrap();
        assert!(
            why.contains("blob server") && why.contains("panicked: bad request"),
            "{why}"
        );
        assert!(
            alive_rx.recv().await.is_none(),
            "the other tasks are stopped"
        );

        let (_stopping, mut failure) = supervised(vec![("replication", Box::pin(async {}))]);
        let why = failure.wait_for(Option::is_some).await.unwrap().clone();
        assert!(why.unwrap().contains("replication task ended"));
    }

    #[tokio::test]
    async fn tasks_that_end_with_a_stopped_node_are_no_failure() {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let mut s = Supervisor::default();
        s.spawn("event loop", async move {
            let _ = stop_rx.await;
            flag.store(true, Ordering::SeqCst);
        });
        s.spawn("blob server", futures::future::pending());
        let (tx, mut failure) = watch::channel(None);
        let watcher = tokio::spawn(s.run(stopping, tx));
        stop_tx.send(()).unwrap();
        watcher.await.unwrap();
        assert!(
            failure.wait_for(Option::is_some).await.is_err(),
            "no failure"
        );
    }

    #[test]
    fn the_dht_mode_follows_reachability_unless_fixed() {
        let public = NatStatus::Public("/ip4/1.2.3.4/tcp/1".parse().unwrap());
        for nat in [NatStatus::Unknown, public.clone()] {
            assert_eq!(kad_mode(None, &nat), Mode::Server);
        }
        assert_eq!(kad_mode(None, &NatStatus::Private), Mode::Client);
        for nat in [NatStatus::Unknown, public, NatStatus::Private] {
            assert_eq!(kad_mode(Some(true), &nat), Mode::Server);
            assert_eq!(kad_mode(Some(false), &nat), Mode::Client);
        }
    }

    #[test]
    fn addresses_of_our_own_are_never_taken_from_a_peer() {
        let a = |s: &str| s.parse::<Multiaddr>().unwrap();
        let me = identity::Keypair::generate_ed25519().public().to_peer_id();
        let other = identity::Keypair::generate_ed25519().public().to_peer_id();
        let ours = vec![
            a("/ip4/127.0.0.1/tcp/4001"),
            a(&format!("/ip4/10.78.0.1/udp/4001/quic-v1/p2p/{me}")),
        ];
        let told = vec![
            // Our loopback address, from a peer on this host.
            a("/ip4/127.0.0.1/tcp/4001"),
            // Our address, with another peer's id.
            a(&format!("/ip4/10.78.0.1/udp/4001/quic-v1/p2p/{other}")),
            // Its own, on this host and on the network.
            a("/ip4/127.0.0.1/tcp/4002"),
            a("/ip4/10.78.0.2/udp/4001/quic-v1"),
        ];
        assert_eq!(
            not_ours(told, &ours),
            vec![
                a("/ip4/127.0.0.1/tcp/4002"),
                a("/ip4/10.78.0.2/udp/4001/quic-v1")
            ]
        );
    }

    #[test]
    fn a_circuit_address_names_the_relay_once() {
        let relay = identity::Keypair::generate_ed25519().public().to_peer_id();
        let want: Multiaddr = format!("/ip4/1.2.3.4/tcp/7/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        let bare: Multiaddr = "/ip4/1.2.3.4/tcp/7".parse().unwrap();
        assert_eq!(circuit_addr(&bare, relay), want);
        assert_eq!(circuit_addr(&bare.with(Protocol::P2p(relay)), relay), want);
        assert!(is_relayed(&want));
    }
}
