//! Replication scenarios on loopback, in one process: a publisher's node,
//! volunteers that follow it, gossip, catch-up, equivocation.

use std::time::Duration;

use tamizdat_node::{feeds, identity};
use tamizdat_sign::{Delegation, Entry, Manifest, Revocation, RevocationTarget, SecretKey, Signed};
use tamizdat_store::Hash;
use tempfile::TempDir;

mod common;

use common::{TestNode, data, node, node_with, now};

/// Stores an article's files on `on` and signs its manifest.
fn article(
    on: &TestNode,
    key: &SecretKey,
    seq: u64,
    prev: Option<[u8; 32]>,
    seed: u64,
) -> Signed<Manifest> {
    let text = format!("# Статья {seq}\n\nТекст {seed}.\n").into_bytes();
    let image = data(200_000 + seed as usize, seed);
    let mut entries = Vec::new();
    for (path, bytes, media) in [
        ("index.md", &text, "text/markdown"),
        ("photo.jpg", &image, "image/jpeg"),
    ] {
        let added = on.store.add_bytes(bytes).unwrap();
        entries.push(Entry {
            path: path.into(),
            hash: *added.hash.as_bytes(),
            size: added.size,
            media_type: media.into(),
        });
    }
    let m = Manifest {
        publisher: key.public(),
        signer: key.public(),
        delegation: None,
        feed: "main".into(),
        seq,
        prev,
        created: now(),
        title: format!("Статья {seq}"),
        lang: "ru".into(),
        summary: None,
        supersedes: None,
        entries,
    };
    Signed::sign(m, key).unwrap()
}

/// Whether `n` holds the manifest and every file of it, complete and pinned.
fn holds(n: &TestNode, m: &Signed<Manifest>) -> bool {
    let pin = feeds::feed_pin(m.body());
    let pins = n.store.pins().unwrap();
    let Some(pinned) = pins.get(&pin) else {
        return false;
    };
    let ids = std::iter::once(Hash::of(m.bytes()))
        .chain(m.body().entries.iter().map(|e| Hash::from_bytes(e.hash)));
    for h in ids {
        let complete = n.store.info(&h).unwrap().is_some_and(|i| i.complete);
        if !complete || !pinned.contains(&h) {
            return false;
        }
    }
    true
}

async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A follower of `publisher` that was started and stopped: its data dir
/// and identity, to bring it back later.
async fn gone_away_following(publisher: &tamizdat_sign::PublicKey) -> (TempDir, identity::Keypair) {
    let key = identity::Keypair::generate_ed25519();
    let away = node_with(TempDir::new().unwrap(), key.clone(), |_| {}).await;
    away.client.follow(*publisher, None).await.unwrap();
    away.client.shutdown().await;
    let dir = away.dir;
    drop(away.client);
    drop(away.store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    (dir, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_followers_get_an_article_the_publisher_gave_to_one() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let outlet = SecretKey::generate().unwrap();
        let publisher = node().await;
        let mut followers: Vec<TestNode> = Vec::new();
        for i in 0..20 {
            let f = node().await;
            f.client
                .follow(outlet.public(), Some("outlet".into()))
                .await
                .unwrap();
            // A loose mesh: each knows the previous one and the first.
            if i > 0 {
                f.client.dial(followers[i - 1].addr.clone()).await.unwrap();
                f.client.dial(followers[0].addr.clone()).await.unwrap();
            }
            followers.push(f);
        }
        // The publisher's node reaches only one volunteer.
        publisher
            .client
            .dial(followers[7].addr.clone())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = article(&publisher, &outlet, 1, None, 1);
        publisher.client.publish(first.bytes()).await.unwrap();
        until("all 20 hold the article", Duration::from_secs(120), || {
            followers.iter().all(|f| holds(f, &first))
        })
        .await;

        // R5: the publisher goes away; a newcomer still gets it from volunteers.
        publisher.client.shutdown().await;
        drop(publisher);
        let newcomer = node().await;
        newcomer
            .client
            .dial(followers[12].addr.clone())
            .await
            .unwrap();
        newcomer.client.follow(outlet.public(), None).await.unwrap();
        until(
            "the newcomer holds the article",
            Duration::from_secs(60),
            || holds(&newcomer, &first),
        )
        .await;
        assert!(newcomer.client.conflicts().is_empty());
        for f in followers.iter().chain([&newcomer]) {
            f.client.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_away_for_ten_articles_catches_up_and_refuses_a_second_version() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let (outlet, publisher, volunteer) = outlet_and_follower().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The away follower exists, follows, and goes offline.
        let (away_dir, away_key) = gone_away_following(&outlet.public()).await;

        let mut published = Vec::new();
        let mut prev = None;
        for seq in 1..=10 {
            let m = article(&publisher, &outlet, seq, prev, seq);
            publisher.client.publish(m.bytes()).await.unwrap();
            prev = Some(*Hash::of(m.bytes()).as_bytes());
            published.push(m);
        }
        until(
            "the volunteer holds all ten",
            Duration::from_secs(60),
            || published.iter().all(|m| holds(&volunteer, m)),
        )
        .await;

        // Back online, knowing only the volunteer.
        let away = node_with(away_dir, away_key, |_| {}).await;
        away.client.dial(volunteer.addr.clone()).await.unwrap();
        until(
            "the returning follower holds all ten",
            Duration::from_secs(90),
            || published.iter().all(|m| holds(&away, m)),
        )
        .await;
        let head = away.client.trust();
        assert_eq!(head.head(&outlet.public(), "main").unwrap().seq, 10);

        // Someone with the outlet's key signs a different tenth article.
        let rogue = node().await;
        rogue.client.dial(volunteer.addr.clone()).await.unwrap();
        rogue.client.dial(away.addr.clone()).await.unwrap();
        let second = article(
            &rogue,
            &outlet,
            10,
            Some(*Hash::of(published[8].bytes()).as_bytes()),
            99,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        rogue.client.publish(second.bytes()).await.unwrap();
        until(
            "the equivocation is reported",
            Duration::from_secs(30),
            || !volunteer.client.conflicts().is_empty(),
        )
        .await;
        assert!(
            volunteer.client.conflicts()[0]
                .detail
                .contains("EQUIVOCATION")
        );
        assert!(
            !holds(&volunteer, &second),
            "the second version is not kept"
        );
        assert!(holds(&volunteer, &published[9]), "the first stays");
        assert_eq!(
            volunteer
                .client
                .trust()
                .head(&outlet.public(), "main")
                .unwrap()
                .hash,
            *Hash::of(published[9].bytes()).as_bytes()
        );
        for n in [
            &publisher.client,
            &volunteer.client,
            &away.client,
            &rogue.client,
        ] {
            n.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_mid_replication_resumes_and_refuses_a_replay() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let outlet = SecretKey::generate().unwrap();
        let publisher = node().await;
        let (dir, key) = (
            TempDir::new().unwrap(),
            identity::Keypair::generate_ed25519(),
        );
        let follower = node_with(dir, key.clone(), |_| {}).await;
        follower.client.follow(outlet.public(), None).await.unwrap();
        follower.client.dial(publisher.addr.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = article(&publisher, &outlet, 1, None, 1);
        publisher.client.publish(first.bytes()).await.unwrap();
        until("the first article", Duration::from_secs(60), || {
            holds(&follower, &first)
        })
        .await;

        // A large second article: the follower is stopped as soon as it has
        // recorded the manifest, long before the file can be complete.
        let big = data(48 << 20, 7);
        let big_hash = publisher.store.add_bytes(&big).unwrap().hash;
        let mut m = first.body().clone();
        m.seq = 2;
        m.prev = Some(*Hash::of(first.bytes()).as_bytes());
        m.title = "Большая".into();
        m.entries.push(Entry {
            path: "video.bin".into(),
            hash: *big_hash.as_bytes(),
            size: big.len() as u64,
            media_type: "application/octet-stream".into(),
        });
        let second = Signed::sign(m, &outlet).unwrap();
        publisher.client.publish(second.bytes()).await.unwrap();
        let start = tokio::time::Instant::now();
        while follower
            .client
            .trust()
            .head(&outlet.public(), "main")
            .unwrap()
            .seq
            < 2
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "manifest not recorded"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        follower.client.shutdown().await;
        let TestNode {
            dir, store, client, ..
        } = follower;
        let partial = store.info(&big_hash).unwrap();
        assert!(
            partial.is_none_or(|i| !i.complete),
            "stopped before the file was complete"
        );
        drop((client, store));
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Back up, same data dir and identity: it resumes on its own.
        let follower = node_with(dir, key, |_| {}).await;
        follower.client.dial(publisher.addr.clone()).await.unwrap();
        until(
            "the big article after the restart",
            Duration::from_secs(90),
            || holds(&follower, &second),
        )
        .await;
        assert_eq!(follower.store.read_to_vec(&big_hash).unwrap(), big);

        // A replay of the first article, relayed by a peer with no history:
        // ignored, the head stays where it was.
        let relay = node().await;
        relay.client.dial(follower.addr.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        relay.client.publish(first.bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let head = follower.client.trust();
        let head = head.head(&outlet.public(), "main").unwrap();
        assert_eq!(
            (head.seq, head.hash),
            (2, *Hash::of(second.bytes()).as_bytes())
        );
        assert!(follower.client.conflicts().is_empty());
        for c in [&publisher.client, &follower.client, &relay.client] {
            c.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_quota_lets_the_oldest_go_but_keeps_what_the_user_pinned() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let outlet = SecretKey::generate().unwrap();
        let publisher = node().await;
        let follower = node().await;
        let policy = tamizdat_node::retention::Policy {
            max_bytes: Some(650_000),
            max_age: None,
        };
        follower
            .client
            .follow_with(outlet.public(), None, policy)
            .await
            .unwrap();
        follower.client.dial(publisher.addr.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut published: Vec<Signed<Manifest>> = Vec::new();
        for seq in 1..=4u64 {
            let prev = published.last().map(|m| *Hash::of(m.bytes()).as_bytes());
            let m = article(&publisher, &outlet, seq, prev, seq);
            publisher.client.publish(m.bytes()).await.unwrap();
            until("the article", Duration::from_secs(30), || {
                holds(&follower, &m)
            })
            .await;
            if seq == 1 {
                // The reader keeps this one whatever the quota says.
                follower.store.pin("mine", &Hash::of(m.bytes())).unwrap();
            }
            published.push(m);
        }
        // Four articles of about 200 kB against 650 kB: the oldest one not
        // pinned by the user went.
        assert!(holds(&follower, &published[0]), "pinned by the user");
        let second = Hash::of(published[1].bytes());
        assert!(follower.store.info(&second).unwrap().is_none(), "let go");
        let image = Hash::from_bytes(published[1].body().entries[1].hash);
        assert!(
            follower.store.info(&image).unwrap().is_none(),
            "its files too"
        );
        assert!(holds(&follower, &published[2]) && holds(&follower, &published[3]));
        let used: u64 = tamizdat_node::retention::stored(&follower.store, &outlet.public())
            .unwrap()
            .iter()
            .map(|a| a.bytes)
            .sum();
        assert!(used <= 650_000, "{used}");
        for c in [&publisher.client, &follower.client] {
            c.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_away_during_a_revocation_learns_it_on_return() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let root = SecretKey::generate().unwrap();
        let signing = SecretKey::generate().unwrap();
        let delegation = Signed::sign(
            Delegation {
                root: root.public(),
                key: signing.public(),
                not_before: now() - 60,
                not_after: now() + 86400,
                feed: None,
            },
            &root,
        )
        .unwrap();
        let publisher = node().await;
        let volunteer = node().await;
        volunteer.client.follow(root.public(), None).await.unwrap();
        publisher.client.dial(volunteer.addr.clone()).await.unwrap();
        // The away follower follows, then goes offline.
        let (away_dir, away_key) = gone_away_following(&root.public()).await;

        // An article signed with the delegated key, then the key is revoked.
        let text = publisher.store.add_bytes(b"# Stolen\n").unwrap();
        let m = Signed::sign(
            Manifest {
                publisher: root.public(),
                signer: signing.public(),
                delegation: Some(delegation.bytes().to_vec()),
                feed: "main".into(),
                seq: 1,
                prev: None,
                created: now(),
                title: "Signed with a key later revoked".into(),
                lang: "en".into(),
                summary: None,
                supersedes: None,
                entries: vec![Entry {
                    path: "index.md".into(),
                    hash: *text.hash.as_bytes(),
                    size: text.size,
                    media_type: "text/markdown".into(),
                }],
            },
            &signing,
        )
        .unwrap();
        publisher.client.publish(m.bytes()).await.unwrap();
        until("the volunteer holds it", Duration::from_secs(30), || {
            holds(&volunteer, &m)
        })
        .await;
        let revocation = Signed::sign(
            Revocation {
                root: root.public(),
                target: RevocationTarget::Key(signing.public()),
                created: now(),
                reason: "laptop seized".into(),
            },
            &root,
        )
        .unwrap();
        publisher
            .client
            .announce_key_object(revocation.bytes())
            .await
            .unwrap();
        let revoked = |n: &TestNode| {
            n.client
                .trust()
                .revoked(&root.public(), &signing.public(), Some(&delegation.id()))
                .is_some()
        };
        until(
            "the volunteer applies the revocation",
            Duration::from_secs(30),
            || revoked(&volunteer),
        )
        .await;

        // Back online, knowing only the volunteer: it learns the revocation
        // in the catch-up, and so never takes the article as genuine.
        let away = node_with(away_dir, away_key, |_| {}).await;
        away.client.dial(volunteer.addr.clone()).await.unwrap();
        until(
            "the returning follower learns the revocation",
            Duration::from_secs(30),
            || revoked(&away),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!holds(&away, &m), "an article of a revoked key was kept");
        assert!(
            !away
                .client
                .bad_peers()
                .contains(&volunteer.client.peer_id()),
            "the honest volunteer was not taken for a liar"
        );
    })
    .await
    .unwrap();
}

/// A follower that accepted an article whose predecessor it never saw (its
/// gossip message lost, or published where it could not reach) gets the
/// predecessor as soon as a peer it is connected to holds it: no new
/// connection needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_skipped_over_is_fetched_without_a_reconnect() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let outlet = SecretKey::generate().unwrap();
        let newsroom = node().await;
        // One connection at most: the one to the newsroom's node, so that
        // what it learns must come over that connection (no peer found
        // through the DHT meanwhile brings a catch-up of its own).
        let volunteer = node_with(
            TempDir::new().unwrap(),
            identity::Keypair::generate_ed25519(),
            |c| {
                c.max_connections = 1;
            },
        )
        .await;
        volunteer
            .client
            .follow(outlet.public(), None)
            .await
            .unwrap();
        newsroom.client.dial(volunteer.addr.clone()).await.unwrap();
        let first = article(&newsroom, &outlet, 1, None, 1);
        newsroom.client.publish(first.bytes()).await.unwrap();
        until("the volunteer holds #1", Duration::from_secs(30), || {
            holds(&volunteer, &first)
        })
        .await;
        // #2 is signed on a laptop that reaches nobody; #3 follows it on
        // the newsroom's node, which has never seen #2.
        let laptop = node().await;
        let second = article(
            &laptop,
            &outlet,
            2,
            Some(*Hash::of(first.bytes()).as_bytes()),
            2,
        );
        laptop.client.publish(second.bytes()).await.unwrap();
        let third = article(
            &newsroom,
            &outlet,
            3,
            Some(*Hash::of(second.bytes()).as_bytes()),
            3,
        );
        newsroom.client.publish(third.bytes()).await.unwrap();
        until("the volunteer holds #3", Duration::from_secs(30), || {
            holds(&volunteer, &third)
        })
        .await;
        assert!(
            !holds(&volunteer, &second),
            "nobody it can reach has #2 yet"
        );
        // The laptop comes online and reaches the newsroom's node only.
        laptop.client.dial(newsroom.addr.clone()).await.unwrap();
        until(
            "the newsroom's node holds #2",
            Duration::from_secs(30),
            || holds(&newsroom, &second),
        )
        .await;
        until(
            "the volunteer holds #2 over the connection it had",
            Duration::from_secs(30),
            || holds(&volunteer, &second),
        )
        .await;
        assert_eq!(
            volunteer
                .client
                .trust()
                .head(&outlet.public(), "main")
                .unwrap()
                .seq,
            3
        );
        assert!(volunteer.client.conflicts().is_empty());
        for n in [&newsroom.client, &volunteer.client, &laptop.client] {
            n.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

/// An outlet's key, its newsroom's node, and a volunteer's node that
/// follows it and is connected to the newsroom.
async fn outlet_and_follower() -> (SecretKey, TestNode, TestNode) {
    let outlet = SecretKey::generate().unwrap();
    let newsroom = node().await;
    let volunteer = node().await;
    volunteer
        .client
        .follow(outlet.public(), None)
        .await
        .unwrap();
    newsroom.client.dial(volunteer.addr.clone()).await.unwrap();
    (outlet, newsroom, volunteer)
}

/// A manifest a volunteer accepted by gossip is announced in the DHT: once
/// the outlet is gone, a reader who knows only the volunteer and the
/// article's hash finds it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_accepted_by_gossip_is_found_in_the_dht_after_the_outlet_left() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let (outlet, newsroom, volunteer) = outlet_and_follower().await;
        let m = article(&newsroom, &outlet, 1, None, 1);
        newsroom.client.publish(m.bytes()).await.unwrap();
        until(
            "the volunteer holds the article",
            Duration::from_secs(30),
            || holds(&volunteer, &m),
        )
        .await;
        newsroom.client.shutdown().await;
        drop(newsroom);

        let reader = node().await;
        reader.client.dial(volunteer.addr.clone()).await.unwrap();
        let id = Hash::of(m.bytes());
        // The volunteer's announcement needs no reply: the reader asks until
        // the DHT answers, within a deadline.
        let start = tokio::time::Instant::now();
        let found = loop {
            let providers = reader.client.providers(id).await.unwrap();
            if providers.contains(&volunteer.client.peer_id()) {
                break providers;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the volunteer never announced the manifest (providers: {providers:?})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(found.contains(&volunteer.client.peer_id()));
        // And the reader gets it with no hint at all.
        reader.client.fetch(id, &[]).await.unwrap();
        assert_eq!(reader.store.read_to_vec(&id).unwrap(), m.bytes());
        for n in [&volunteer.client, &reader.client] {
            n.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

/// A follower tells the peers it is connected to of each blob it now holds
/// (`/tamizdat/have/1`): the manifest as soon as it is recorded, each file
/// as soon as it is complete, so neighbours fetch from it rather than all
/// from the outlet. The listener is a bare libp2p peer that reads what it
/// is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_tells_its_peers_what_it_now_holds() {
    use futures::{AsyncReadExt, StreamExt};
    tokio::time::timeout(Duration::from_secs(60), async {
        let (swarm, listener_addr) = common::bare_swarm().await;
        let listener = *swarm.local_peer_id();
        let mut haves = swarm
            .behaviour()
            .new_control()
            .accept(libp2p::StreamProtocol::new("/tamizdat/have/1"))
            .unwrap();
        let (told_tx, mut told) = tokio::sync::mpsc::channel::<(libp2p::PeerId, Vec<[u8; 32]>)>(64);
        tokio::spawn(async move {
            while let Some((from, mut stream)) = haves.next().await {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                stream.read_exact(&mut buf).await.unwrap();
                let _ = told_tx
                    .send((from, postcard::from_bytes(&buf).unwrap()))
                    .await;
            }
        });
        let mut swarm = swarm;
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });

        let (outlet, newsroom, volunteer) = outlet_and_follower().await;
        volunteer
            .client
            .dial(listener_addr.with(libp2p::multiaddr::Protocol::P2p(listener)))
            .await
            .unwrap();
        let m = article(&newsroom, &outlet, 1, None, 1);
        newsroom.client.publish(m.bytes()).await.unwrap();
        let mut wanted: std::collections::HashSet<[u8; 32]> =
            std::iter::once(*Hash::of(m.bytes()).as_bytes())
                .chain(m.body().entries.iter().map(|e| e.hash))
                .collect();
        while !wanted.is_empty() {
            let (from, hashes) = told.recv().await.unwrap();
            assert_eq!(from, volunteer.client.peer_id());
            for h in hashes {
                wanted.remove(&h);
            }
        }
        assert!(holds(&volunteer, &m));
        for n in [&newsroom.client, &volunteer.client] {
            n.shutdown().await;
        }
    })
    .await
    .expect("every blob the follower took was told of in time");
}

/// A neighbour that said it holds an article's blobs is not told of them
/// again when the follower has them too; a neighbour that said nothing is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_does_not_tell_a_neighbour_what_that_neighbour_said_it_holds() {
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    use libp2p::StreamProtocol;
    tokio::time::timeout(Duration::from_secs(60), async {
        let (outlet, newsroom, volunteer) = outlet_and_follower().await;
        let m = article(&newsroom, &outlet, 1, None, 1);
        let blobs: std::collections::HashSet<[u8; 32]> =
            std::iter::once(*Hash::of(m.bytes()).as_bytes())
                .chain(m.body().entries.iter().map(|e| e.hash))
                .collect();
        // Two bare neighbours of the volunteer, each reporting every blob
        // named in what it is told, in either version.
        let mut neighbours = Vec::new();
        for _ in 0..2 {
            let (swarm, addr) = common::bare_swarm().await;
            let id = *swarm.local_peer_id();
            let mut control = swarm.behaviour().new_control();
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<[u8; 32]>>(64);
            for (version, name) in [(1u8, "/tamizdat/have/1"), (2, "/tamizdat/have/2")] {
                let mut incoming = control.accept(StreamProtocol::new(name)).unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some((_, mut stream)) = incoming.next().await {
                        let mut len = [0u8; 4];
                        stream.read_exact(&mut len).await.unwrap();
                        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                        stream.read_exact(&mut buf).await.unwrap();
                        let told = tamizdat_node::have::decode(version, &buf).unwrap();
                        let _ = tx.send(told.into_iter().map(|(h, _)| h).collect()).await;
                    }
                });
            }
            let mut swarm = swarm;
            tokio::spawn(async move {
                loop {
                    swarm.select_next_some().await;
                }
            });
            volunteer
                .client
                .dial(addr.with(libp2p::multiaddr::Protocol::P2p(id)))
                .await
                .unwrap();
            neighbours.push((control, rx));
        }
        let (mut other, mut holder) = (neighbours.pop().unwrap(), neighbours.pop().unwrap());
        // The holder says it holds every blob of the article, whole.
        let said: Vec<tamizdat_node::have::Have> = blobs
            .iter()
            .map(|h| tamizdat_node::have::Have {
                hash: *h,
                held: None,
            })
            .collect();
        let msg = postcard::to_stdvec(&said).unwrap();
        let mut s = holder
            .0
            .open_stream(
                volunteer.client.peer_id(),
                StreamProtocol::new("/tamizdat/have/2"),
            )
            .await
            .unwrap();
        s.write_all(&(msg.len() as u32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&msg).await.unwrap();
        s.close().await.unwrap();

        newsroom.client.publish(m.bytes()).await.unwrap();
        // The other neighbour is told of every blob as the volunteer takes it.
        let mut wanted = blobs.clone();
        while !wanted.is_empty() {
            for h in other.1.recv().await.unwrap() {
                wanted.remove(&h);
            }
        }
        assert!(holds(&volunteer, &m));
        // Told at the same moment, the holder would have heard by now; it
        // is given two seconds more.
        let window = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                told = holder.1.recv() => {
                    let told = told.unwrap();
                    assert!(
                        !told.iter().any(|h| blobs.contains(h)),
                        "the holder was told of what it said it holds"
                    );
                }
            }
        }
        for n in [&newsroom.client, &volunteer.client] {
            n.shutdown().await;
        }
    })
    .await
    .expect("the other neighbour was told in time");
}

/// Eight followers, each connected to the outlet's node (the worst case:
/// every one of them learns of the article from it and may ask it) and to
/// two other followers: the outlet sends no more than its share of the
/// article (twice its size) and the followers take the rest from each
/// other, piece by piece, as they verify it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_take_a_new_article_from_each_other_not_all_from_the_outlet() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let outlet = SecretKey::generate().unwrap();
        let newsroom = node().await;
        let mut followers: Vec<TestNode> = Vec::new();
        for i in 0..8 {
            let f = node().await;
            f.client.follow(outlet.public(), None).await.unwrap();
            newsroom.client.dial(f.addr.clone()).await.unwrap();
            if i > 1 {
                f.client.dial(followers[i - 1].addr.clone()).await.unwrap();
                f.client.dial(followers[i - 2].addr.clone()).await.unwrap();
            }
            followers.push(f);
        }
        // A 2 MiB photo: eight pieces of 256 KiB.
        let m = article(&newsroom, &outlet, 1, None, 2 << 20);
        let size = m.bytes().len() as u64 + m.body().entries.iter().map(|e| e.size).sum::<u64>();
        let before = newsroom.client.bytes_served();
        newsroom.client.publish(m.bytes()).await.unwrap();
        until("all 8 hold the article", Duration::from_secs(90), || {
            followers.iter().all(|f| holds(f, &m))
        })
        .await;
        let sent = newsroom.client.bytes_served() - before;
        let by_followers: u64 = followers.iter().map(|f| f.client.bytes_served()).sum();
        eprintln!(
            "outlet sent {:.2}× the article, followers {:.2}×",
            sent as f64 / size as f64,
            by_followers as f64 / size as f64
        );
        assert!(
            sent <= 3 * size,
            "the outlet sent {sent} bytes of a {size}-byte article to 8 followers"
        );
        for n in followers
            .iter()
            .map(|f| &f.client)
            .chain([&newsroom.client])
        {
            n.shutdown().await;
        }
    })
    .await
    .expect("finished in time");
}

/// While it fetches a file, a follower tells its neighbours which pieces
/// of it have verified (`/tamizdat/have/2`), so that they can take those
/// from it before it holds the whole file; then it tells them it holds it
/// all. The listener is a bare libp2p peer that speaks version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_tells_its_peers_the_pieces_it_holds_while_it_fetches() {
    use futures::{AsyncReadExt, StreamExt};
    use tamizdat_node::have::decode;
    tokio::time::timeout(Duration::from_secs(60), async {
        let (swarm, listener_addr) = common::bare_swarm().await;
        let listener = *swarm.local_peer_id();
        let mut haves = swarm
            .behaviour()
            .new_control()
            .accept(libp2p::StreamProtocol::new("/tamizdat/have/2"))
            .unwrap();
        type Told = (
            libp2p::PeerId,
            Vec<([u8; 32], Option<tamizdat_store::ChunkRanges>)>,
        );
        let (told_tx, mut told) = tokio::sync::mpsc::channel::<Told>(64);
        tokio::spawn(async move {
            while let Some((from, mut stream)) = haves.next().await {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                stream.read_exact(&mut buf).await.unwrap();
                let _ = told_tx.send((from, decode(2, &buf).unwrap())).await;
            }
        });
        let mut swarm = swarm;
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });

        let (outlet, newsroom, volunteer) = outlet_and_follower().await;
        volunteer
            .client
            .dial(listener_addr.with(libp2p::multiaddr::Protocol::P2p(listener)))
            .await
            .unwrap();
        let m = article(&newsroom, &outlet, 1, None, 4 << 20);
        let photo = m.body().entries[1].hash;
        newsroom.client.publish(m.bytes()).await.unwrap();
        let (mut pieces, mut whole) = (false, false);
        while !whole {
            let (from, entries) = told.recv().await.unwrap();
            assert_eq!(from, volunteer.client.peer_id());
            for (_, held) in entries.into_iter().filter(|(h, _)| *h == photo) {
                match held {
                    Some(r) => {
                        assert!(!whole, "pieces told after the whole");
                        assert!(!r.is_empty());
                        pieces = true;
                    }
                    None => whole = true,
                }
            }
        }
        assert!(pieces, "pieces were told before the whole file");
        until(
            "the volunteer holds the article",
            Duration::from_secs(30),
            || holds(&volunteer, &m),
        )
        .await;
        for n in [&newsroom.client, &volunteer.client] {
            n.shutdown().await;
        }
    })
    .await
    .expect("the follower told of its pieces in time");
}
