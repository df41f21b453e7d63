//! Shared by the node's integration tests: real nodes on loopback, a bare
//! libp2p peer, test data, and a writer that corrupts what passes through it.
#![allow(dead_code)]

use std::{
    io::{self, Read, Write},
    sync::Arc,
};

use futures::StreamExt;
use libp2p::{SwarmBuilder, multiaddr::Protocol, noise, swarm::SwarmEvent, tcp, yamux};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_node::{
    Client, Config, Multiaddr, NodeError, identity, prometheus_client::registry::Registry, spawn,
    spawn_with_metrics,
};
use tamizdat_store::{Options, Store};
use tempfile::TempDir;

/// A node on 127.0.0.1 with its own data dir.
pub struct TestNode {
    pub dir: TempDir,
    pub store: Arc<Store>,
    pub client: Client,
    /// Its dialable address, ending in `/p2p/PEER_ID`.
    pub addr: Multiaddr,
}

/// Starts a node in `dir` with identity `key`, on loopback port 0, with
/// 256 KiB pieces (several per test blob); `tweak` may change the rest.
pub async fn node_with(
    dir: TempDir,
    key: identity::Keypair,
    tweak: impl FnOnce(&mut Config),
) -> TestNode {
    started(dir, key, tweak, spawn).await
}

/// [`node`], with its metrics registered in `registry`.
pub async fn node_with_metrics(registry: &mut Registry) -> TestNode {
    started(
        TempDir::new().unwrap(),
        identity::Keypair::generate_ed25519(),
        |_| {},
        |config, store| spawn_with_metrics(config, store, registry),
    )
    .await
}

async fn started(
    dir: TempDir,
    key: identity::Keypair,
    tweak: impl FnOnce(&mut Config),
    spawn: impl FnOnce(Config, Arc<Store>) -> Result<Client, NodeError>,
) -> TestNode {
    logs();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let mut config = Config::new(key, vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    config.piece_bytes = 256 * 1024;
    tweak(&mut config);
    let client = spawn(config, store.clone()).unwrap();
    let listen = client.wait_listening(1).await.unwrap();
    let addr = listen[0].clone().with(Protocol::P2p(client.peer_id()));
    TestNode {
        dir,
        store,
        client,
        addr,
    }
}

/// A node with a fresh dir and identity and the defaults.
pub async fn node() -> TestNode {
    node_with(
        TempDir::new().unwrap(),
        identity::Keypair::generate_ed25519(),
        |_| {},
    )
    .await
}

/// Logs to stderr when RUST_LOG is set (`RUST_LOG=tamizdat_node=debug`).
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// `size` seeded random bytes.
pub fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Flips one byte of everything written, at offset `at`.
pub struct Flip<S> {
    pub inner: S,
    pub at: usize,
    pub written: usize,
}

impl<S: Read> Read for Flip<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Flip<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut copy = buf.to_vec();
        if (self.written..self.written + buf.len()).contains(&self.at) {
            copy[self.at - self.written] ^= 0x01;
        }
        let n = self.inner.write(&copy)?;
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A bare libp2p swarm on loopback (TCP, noise, yamux) speaking only the
/// protocols a test gives it, and its address.
pub async fn bare_swarm() -> (libp2p::Swarm<libp2p_stream::Behaviour>, Multiaddr) {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(300)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    (swarm, addr)
}
