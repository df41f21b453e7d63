//! Real nodes on loopback, in one process.

use std::{sync::Arc, time::Duration};

use libp2p::multiaddr::Protocol;
use tamizdat_node::{Config, identity, spawn};
use tamizdat_store::{Hash, Options, Store};
use tempfile::TempDir;

mod common;

use common::{TestNode, data, node_with};

/// A node that joins through `bootstrap`, if given.
async fn node(bootstrap: Option<&TestNode>) -> TestNode {
    let boot = bootstrap.map(|b| b.addr.clone());
    node_with(
        TempDir::new().unwrap(),
        identity::Keypair::generate_ed25519(),
        |c| c.bootstrap = boot.into_iter().collect(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_find_and_fetch_a_blob_through_the_dht() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let hub = node(None).await;
        let mut nodes = vec![];
        for _ in 0..8 {
            let n = node(Some(&hub)).await;
            n.client.dial(hub.addr.clone()).await.unwrap();
            nodes.push(n);
        }
        let bytes = data(3 * 1024 * 1024 + 11, 1);
        let hash = nodes[3].store.add_bytes(&bytes).unwrap().hash;
        nodes[3].client.provide(hash).await.unwrap();
        // The tenth node joins afterwards, knowing only the hub.
        let fetcher = node(Some(&hub)).await;
        fetcher.client.dial(hub.addr.clone()).await.unwrap();
        let before = fetcher.client.connected().await.unwrap();
        assert_eq!(
            before,
            vec![hub.client.peer_id()],
            "only the hub, not the provider"
        );
        let got = fetcher.client.fetch(hash, &[]).await.unwrap();
        assert_eq!(got.size, bytes.len() as u64);
        assert!(got.providers.contains(&nodes[3].client.peer_id()));
        assert!(got.bad.is_empty());
        assert_eq!(fetcher.store.read_to_vec(&hash).unwrap(), bytes);
        // Now two providers: a third node fetches from both.
        let third = &nodes[5];
        let got = third.client.fetch(hash, &[]).await.unwrap();
        assert_eq!(third.store.read_to_vec(&hash).unwrap(), bytes);
        assert_eq!(got.new_bytes, bytes.len() as u64);
        // Nobody has this one.
        let absent = Hash::of(b"absent");
        assert!(nodes[0].client.fetch(absent, &[]).await.is_err());
        for n in nodes.iter().chain([&hub, &fetcher]) {
            n.client.shutdown().await;
        }
    })
    .await
    .expect("the network test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_rotten_bytes_never_sends_them_and_others_finish_the_job() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let hub = node(None).await;
        let rotten = node(Some(&hub)).await;
        let good = node(Some(&hub)).await;
        let fetcher = node(Some(&hub)).await;
        for n in [&rotten, &good, &fetcher] {
            n.client.dial(hub.addr.clone()).await.unwrap();
        }
        let bytes = data(2 * 1024 * 1024, 2);
        let hash = rotten.store.add_bytes(&bytes).unwrap().hash;
        good.store.add_bytes(&bytes).unwrap();
        // Flip a byte in the rotten node's copy on disk.
        let file = rotten
            .store
            .dir()
            .join("blobs")
            .join(&hash.to_string()[..2])
            .join(hash.to_string());
        let mut on_disk = std::fs::read(&file).unwrap();
        on_disk[1_500_000] ^= 0x40;
        std::fs::write(&file, &on_disk).unwrap();
        // Ask the rotten one first.
        let hint = [rotten.client.peer_id(), good.client.peer_id()];
        for a in [&rotten.addr, &good.addr] {
            fetcher.client.dial(a.clone()).await.unwrap();
        }
        let got = fetcher.client.fetch(hash, &hint).await.unwrap();
        assert!(got.providers.contains(&good.client.peer_id()));
        assert_eq!(fetcher.store.read_to_vec(&hash).unwrap(), bytes);
        for n in [&hub, &rotten, &good, &fetcher] {
            n.client.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_cut_off_halfway_resumes_from_another_provider() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let first = node(None).await;
        let second = node(None).await;
        let fetcher = node(None).await;
        let bytes = data(48 * 1024 * 1024, 3);
        let hash = first.store.add_bytes(&bytes).unwrap().hash;
        second.store.add_bytes(&bytes).unwrap();
        fetcher.client.dial(first.addr.clone()).await.unwrap();
        let (tx, mut rx) = tokio::sync::watch::channel(tamizdat_node::Progress::default());
        let client = fetcher.client.clone();
        let only_first = [first.client.peer_id()];
        let fetch = tokio::spawn(async move {
            client
                .fetch_with_progress(hash, &only_first, Some(tx))
                .await
        });
        // The first provider goes away once half the blob has arrived.
        if rx
            .wait_for(|p| p.size > 0 && p.verified >= p.size / 2)
            .await
            .is_err()
        {
            panic!("fetch ended early: {:?}", fetch.await);
        }
        first.client.shutdown().await;
        let cut = fetch.await.unwrap();
        let have = fetcher.store.info(&hash).unwrap().unwrap().verified_bytes;
        assert!(cut.is_err(), "the only provider left before the end");
        assert!(have >= bytes.len() as u64 / 2 && have < bytes.len() as u64);
        // Another provider supplies only what is missing.
        fetcher.client.dial(second.addr.clone()).await.unwrap();
        let done = fetcher
            .client
            .fetch(hash, &[second.client.peer_id()])
            .await
            .unwrap();
        assert_eq!(
            done.new_bytes,
            bytes.len() as u64 - have,
            "nothing fetched twice"
        );
        assert_eq!(fetcher.store.read_to_vec(&hash).unwrap(), bytes);
        for n in [&second, &fetcher] {
            n.client.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_serving_one_stream_at_a_time_still_serves_everyone() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = TempDir::new().unwrap();
        let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
        let mut config = Config::new(
            identity::Keypair::generate_ed25519(),
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        );
        config.max_streams = 1;
        config.max_streams_per_peer = 1;
        let provider = spawn(config, store.clone()).unwrap();
        let addr = provider.wait_listening(1).await.unwrap()[0]
            .clone()
            .with(Protocol::P2p(provider.peer_id()));
        let bytes = data(3 * 1024 * 1024, 7);
        let hash = store.add_bytes(&bytes).unwrap().hash;
        // Three fetchers at once, each asking for two pieces at a time.
        let mut fetchers = Vec::new();
        for _ in 0..3 {
            let n = node(None).await;
            n.client.dial(addr.clone()).await.unwrap();
            fetchers.push(n);
        }
        let mut jobs = Vec::new();
        for n in &fetchers {
            let client = n.client.clone();
            let peer = provider.peer_id();
            jobs.push(tokio::spawn(
                async move { client.fetch(hash, &[peer]).await },
            ));
        }
        for (job, n) in jobs.into_iter().zip(&fetchers) {
            let got = job.await.unwrap().expect("busy is not failure");
            assert!(got.bad.is_empty(), "busy is not misbehaviour");
            assert_eq!(n.store.read_to_vec(&hash).unwrap(), bytes);
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_address_without_a_peer_id_is_dialled_and_learnt() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let first = node(None).await;
        // `/ip4/127.0.0.1/tcp/PORT`, as a container names its neighbour.
        let bare: libp2p::Multiaddr = first
            .addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let second = node_with(
            TempDir::new().unwrap(),
            identity::Keypair::generate_ed25519(),
            |c| c.bootstrap = vec![bare],
        )
        .await;
        // Connected to the right peer, and it serves blobs like any other.
        let bytes = data(100_000, 4);
        let hash = first.store.add_bytes(&bytes).unwrap().hash;
        loop {
            if second.client.connected().await.unwrap() == vec![first.client.peer_id()] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = second
            .client
            .fetch(hash, &[first.client.peer_id()])
            .await
            .unwrap();
        assert_eq!(got.size, bytes.len() as u64);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_dials_its_bootstrap_again_until_the_neighbour_is_up() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // A port with nobody behind it yet.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let there: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let early = node_with(
            TempDir::new().unwrap(),
            identity::Keypair::generate_ed25519(),
            |c| {
                c.bootstrap = vec![there.clone()];
                c.bootstrap_retry = Duration::from_millis(500);
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(early.client.connected().await.unwrap().is_empty());
        // The neighbour starts later, on that port.
        let late = node_with(
            TempDir::new().unwrap(),
            identity::Keypair::generate_ed25519(),
            |c| c.listen = vec![there.clone()],
        )
        .await;
        loop {
            if early.client.connected().await.unwrap() == vec![late.client.peer_id()] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
}
