//! A liar on the real network: a libp2p peer that speaks the blob protocol
//! but flips a byte in everything it sends. The fetch finishes from an
//! honest provider, the liar is reported, and it is not asked again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

mod common;

use futures::StreamExt;
use libp2p::{StreamProtocol, multiaddr::Protocol};
use tamizdat_node::{Multiaddr, PeerId, transfer, wire};
use tamizdat_store::{Options, Store};
use tempfile::TempDir;
use tokio_util::{compat::FuturesAsyncReadCompatExt, io::SyncIoBridge};

use common::{Flip, bare_swarm, data, node};

struct Liar {
    peer: PeerId,
    addr: Multiaddr,
    store: Arc<Store>,
    asked: Arc<AtomicUsize>,
    _dir: TempDir,
}

/// A bare swarm that answers `/tamizdat/blob/1` from its store, corrupted.
async fn liar() -> Liar {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let (mut swarm, addr) = bare_swarm().await;
    let peer = *swarm.local_peer_id();
    let mut incoming = swarm
        .behaviour()
        .new_control()
        .accept(StreamProtocol::new(wire::PROTOCOL))
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let (serve_store, count) = (store.clone(), asked.clone());
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            count.fetch_add(1, Ordering::SeqCst);
            let bridge = SyncIoBridge::new(stream.compat());
            let store = serve_store.clone();
            tokio::task::spawn_blocking(move || {
                // Past the 9-byte header, among the first proof hashes.
                let stream = Flip {
                    inner: bridge,
                    at: 9 + 40,
                    written: 0,
                };
                let _ = transfer::serve(&store, stream);
            });
        }
    });
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    Liar {
        peer,
        addr: addr.with(Protocol::P2p(peer)),
        store,
        asked,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liar_is_caught_dropped_and_not_asked_again() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let liar = liar().await;
        let honest = node().await;
        let (good_store, good, good_addr) = (&honest.store, &honest.client, honest.addr.clone());
        let me = node().await;
        let (store, fetcher) = (&me.store, &me.client);
        let first = data(1_500_000, 1);
        let second = data(700_000, 2);
        for bytes in [&first, &second] {
            liar.store.add_bytes(bytes).unwrap();
            good_store.add_bytes(bytes).unwrap();
        }
        fetcher.dial(liar.addr.clone()).await.unwrap();
        fetcher.dial(good_addr).await.unwrap();

        // The liar is asked first; its first answer fails verification.
        let hash = tamizdat_store::Hash::of(&first);
        let got = fetcher
            .fetch(hash, &[liar.peer, good.peer_id()])
            .await
            .unwrap();
        assert_eq!(store.read_to_vec(&hash).unwrap(), first);
        assert_eq!(got.bad, vec![liar.peer]);
        assert_eq!(got.providers, vec![good.peer_id()]);
        assert_eq!(
            liar.asked.load(Ordering::SeqCst),
            1,
            "one answer was enough"
        );
        assert_eq!(fetcher.bad_peers(), vec![liar.peer]);

        // Remembered: the next fetch does not ask it at all.
        let hash = tamizdat_store::Hash::of(&second);
        let got = fetcher
            .fetch(hash, &[liar.peer, good.peer_id()])
            .await
            .unwrap();
        assert_eq!(store.read_to_vec(&hash).unwrap(), second);
        assert!(got.bad.is_empty());
        assert_eq!(
            liar.asked.load(Ordering::SeqCst),
            1,
            "the liar was not asked again"
        );

        // With only the liar to ask, the failure says why.
        let third = data(50_000, 3);
        liar.store.add_bytes(&third).unwrap();
        let err = fetcher
            .fetch(tamizdat_store::Hash::of(&third), &[liar.peer])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("caught sending bad data"), "{err}");
        for c in [&good, &fetcher] {
            c.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

/// A peer whose connection looks alive but that answers nothing (offline
/// behind a NAT that still holds the mapping, a link cut without a reset):
/// a bare swarm that accepts ping streams and never answers. The node
/// closes the connection once pings time out, so it is not asked for
/// anything meanwhile, and a fresh connection (with its catch-up) follows
/// when the peer comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (mut swarm, addr) = bare_swarm().await;
        let peer = *swarm.local_peer_id();
        let mut pings = swarm
            .behaviour()
            .new_control()
            .accept(StreamProtocol::new("/ipfs/ping/1.0.0"))
            .unwrap();
        let held = Arc::new(AtomicUsize::new(0));
        let count = held.clone();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some((_, stream)) = pings.next().await {
                // Held open, never answered.
                count.fetch_add(1, Ordering::SeqCst);
                kept.push(stream);
            }
        });
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let me = node().await;
        me.client
            .dial(addr.with(Protocol::P2p(peer)))
            .await
            .unwrap();
        assert!(me.client.connected().await.unwrap().contains(&peer));
        let start = tokio::time::Instant::now();
        while me.client.connected().await.unwrap().contains(&peer) {
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "still connected to a peer that answered none of {} pings",
                held.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(held.load(Ordering::SeqCst) >= 1, "it was pinged");
        me.client.shutdown().await;
    })
    .await
    .expect("finished in time");
}

/// A provider that proves a blob's size and then sits on every piece it is
/// asked for, answering nothing (a throttling middlebox, a hostile node):
/// once the other provider has delivered everything else, the pieces the
/// staller holds up are asked of it too (the end game), so the fetch ends
/// long before the staller's stream would time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stalls_does_not_hold_up_the_end_of_a_fetch() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let (mut swarm, addr) = bare_swarm().await;
    let staller = *swarm.local_peer_id();
    let mut incoming = swarm
        .behaviour()
        .new_control()
        .accept(StreamProtocol::new(wire::PROTOCOL))
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let (serve_store, count) = (store.clone(), asked.clone());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            if count.fetch_add(1, Ordering::SeqCst) > 0 {
                // Accepted, never answered, never closed.
                held.push(stream);
                continue;
            }
            let bridge = SyncIoBridge::new(stream.compat());
            let store = serve_store.clone();
            tokio::task::spawn_blocking(move || transfer::serve(&store, bridge));
        }
    });
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    // A stream that makes no progress is dropped after a minute here.
    let patient = |c: &mut tamizdat_node::Config| c.idle_timeout = Duration::from_secs(60);
    let honest = common::node_with(
        TempDir::new().unwrap(),
        libp2p::identity::Keypair::generate_ed25519(),
        patient,
    )
    .await;
    let me = common::node_with(
        TempDir::new().unwrap(),
        libp2p::identity::Keypair::generate_ed25519(),
        patient,
    )
    .await;
    let bytes = data(2 << 20, 5);
    store.add_bytes(&bytes).unwrap();
    honest.store.add_bytes(&bytes).unwrap();
    me.client
        .dial(addr.with(Protocol::P2p(staller)))
        .await
        .unwrap();
    me.client.dial(honest.addr.clone()).await.unwrap();
    let hash = tamizdat_store::Hash::of(&bytes);
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        me.client.fetch(hash, &[staller, honest.client.peer_id()]),
    )
    .await
    .expect("the staller held up the end of the fetch")
    .unwrap();
    assert_eq!(me.store.read_to_vec(&hash).unwrap(), bytes);
    assert_eq!(got.providers, vec![honest.client.peer_id()]);
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "the staller was asked for pieces"
    );
    for c in [&honest.client, &me.client] {
        c.shutdown().await;
    }
}
