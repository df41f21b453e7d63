//! Reachability on loopback: WebSocket, AutoNAT, relays, mDNS. Real sockets
//! on 127.0.0.1, several nodes in one process.

use std::{sync::Arc, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_node::{Client, Config, Multiaddr, NatConfig, NatStatus, Protocol, identity, spawn};
use tamizdat_store::{Options, Store};
use tempfile::TempDir;

struct TestNode {
    _dir: TempDir,
    store: Arc<Store>,
    client: Client,
}

impl TestNode {
    fn id(&self) -> tamizdat_node::PeerId {
        self.client.peer_id()
    }

    /// Its first listen address, dialable (ending in `/p2p/ID`).
    async fn addr(&self) -> Multiaddr {
        let listen = self.client.wait_listening(1).await.unwrap();
        p2p(&listen[0], self.id())
    }
}

/// `addr` ending in `/p2p/peer` (once).
fn p2p(addr: &Multiaddr, peer: tamizdat_node::PeerId) -> Multiaddr {
    if addr.iter().last() == Some(Protocol::P2p(peer)) {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer))
    }
}

/// A node listening on `listen` (none: it can only dial out, like a peer
/// behind a NAT), with `tweak` applied to the default config.
fn node(listen: &[&str], tweak: impl FnOnce(&mut Config)) -> TestNode {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let mut config = Config::new(
        identity::Keypair::generate_ed25519(),
        listen.iter().map(|a| a.parse().unwrap()).collect(),
    );
    tweak(&mut config);
    let client = spawn(config, store.clone()).unwrap();
    TestNode {
        _dir: dir,
        store,
        client,
    }
}

/// AutoNAT that trusts loopback peers and probes at once.
fn loopback_nat() -> NatConfig {
    NatConfig {
        only_global_ips: false,
        boot_delay: Duration::from_millis(300),
        retry_interval: Duration::from_secs(1),
        refresh_interval: Duration::from_secs(60),
    }
}

const TCP: &str = "/ip4/127.0.0.1/tcp/0";
const WS: &str = "/ip4/127.0.0.1/tcp/0/ws";

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_moves_over_websocket_and_over_tcp_and_quic_beside_it() {
    within(30, async {
        let server = node(&[TCP, "/ip4/127.0.0.1/udp/0/quic-v1", WS], |_| {});
        let listen = server.client.wait_listening(3).await.unwrap();
        let ws = Protocol::Ws("/".into());
        assert!(
            listen.iter().any(|a| a.iter().any(|p| p == ws)),
            "{listen:?}"
        );
        let bytes = data(700 * 1024 + 3, 11);
        let hash = server.store.add_bytes(&bytes).unwrap().hash;
        // A fresh fetcher per address, so each fetch uses that transport only.
        for addr in listen {
            let fetcher = node(&[], |_| {});
            fetcher.client.dial(p2p(&addr, server.id())).await.unwrap();
            let got = fetcher.client.fetch(hash, &[server.id()]).await.unwrap();
            assert_eq!(got.providers, vec![server.id()], "over {addr}");
            assert_eq!(fetcher.store.read_to_vec(&hash).unwrap(), bytes);
            fetcher.client.shutdown().await;
        }
        server.client.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_others_can_dial_back_learns_it_is_public() {
    within(30, async {
        let server = node(&[TCP], |c| c.nat = loopback_nat());
        let probed = node(&[TCP], |c| c.nat = loopback_nat());
        assert_eq!(probed.client.nat_status(), NatStatus::Unknown);
        let own = probed.addr().await;
        probed.client.dial(server.addr().await).await.unwrap();
        let status = probed
            .client
            .wait_nat_status(|s| matches!(s, NatStatus::Public(_)))
            .await
            .unwrap();
        let NatStatus::Public(at) = status else {
            unreachable!()
        };
        // Dialed back where it listens.
        let port = |a: &Multiaddr| {
            a.iter().find_map(|p| match p {
                Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        };
        assert_eq!(port(&at), port(&own), "{at} vs {own}");
        for n in [&server, &probed] {
            n.client.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_behind_a_relay_serves_a_blob_through_it() {
    within(30, async {
        let relay = node(&[TCP], |c| c.relay_server = true);
        let relay_addr = relay.addr().await;
        // Neither A nor B listens: nobody can dial them directly, and hole
        // punching has no port to aim at, so every byte crosses the relay.
        let a = node(&[], |_| {});
        a.client.dial(relay_addr.clone()).await.unwrap();
        a.client
            .listen_on(relay_addr.clone().with(Protocol::P2pCircuit))
            .await
            .unwrap();
        let listen = a.client.wait_listening(1).await.unwrap();
        assert!(is_circuit(&listen[0]), "{listen:?}");
        // Small enough for one circuit's byte cap.
        let bytes = data(200 * 1024, 7);
        let hash = a.store.add_bytes(&bytes).unwrap().hash;
        let b = node(&[], |_| {});
        b.client.dial(p2p(&listen[0], a.id())).await.unwrap();
        let mut connected = b.client.connected().await.unwrap();
        connected.sort();
        let mut expected = vec![relay.id(), a.id()];
        expected.sort();
        assert_eq!(connected, expected, "B reaches A, and R for it");
        let got = b.client.fetch(hash, &[a.id()]).await.unwrap();
        assert_eq!(got.providers, vec![a.id()]);
        assert_eq!(b.store.read_to_vec(&hash).unwrap(), bytes);
        for n in [&relay, &a, &b] {
            n.client.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_finds_out_and_listens_through_a_relay_by_itself() {
    within(30, async {
        let relay = node(&[TCP], |c| {
            c.relay_server = true;
            c.nat = loopback_nat();
        });
        // A listens nowhere: the relay's dial-back to the port it saw fails.
        let a = node(&[], |c| c.nat = loopback_nat());
        assert_eq!(a.client.nat_status(), NatStatus::Unknown);
        a.client.dial(relay.addr().await).await.unwrap();
        a.client
            .wait_nat_status(|s| *s == NatStatus::Private)
            .await
            .unwrap();
        let listen = a.client.wait_listening(1).await.unwrap();
        assert!(is_circuit(&listen[0]), "{listen:?}");
        assert!(
            listen[0].iter().any(|p| p == Protocol::P2p(relay.id())),
            "through the relay: {listen:?}"
        );
        let bytes = data(100 * 1024 + 1, 8);
        let hash = a.store.add_bytes(&bytes).unwrap().hash;
        let b = node(&[], |_| {});
        b.client.dial(p2p(&listen[0], a.id())).await.unwrap();
        b.client.fetch(hash, &[a.id()]).await.unwrap();
        assert_eq!(b.store.read_to_vec(&hash).unwrap(), bytes);
        for n in [&relay, &a, &b] {
            n.client.shutdown().await;
        }
    })
    .await;
}

/// Multicast may not reach across this host's loopback (containers, CI), so
/// discovery itself is not asserted: only that a node with mDNS on starts,
/// listens and serves like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_mdns_runs_and_serves() {
    within(30, async {
        let server = node(&[TCP], |c| c.mdns = true);
        let bytes = data(64 * 1024, 9);
        let hash = server.store.add_bytes(&bytes).unwrap().hash;
        let fetcher = node(&[], |_| {});
        fetcher.client.dial(server.addr().await).await.unwrap();
        fetcher.client.fetch(hash, &[server.id()]).await.unwrap();
        assert_eq!(fetcher.store.read_to_vec(&hash).unwrap(), bytes);
        for n in [&server, &fetcher] {
            n.client.shutdown().await;
        }
    })
    .await;
}
