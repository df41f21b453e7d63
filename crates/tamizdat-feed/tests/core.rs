//! The replication core driven by hand, one input at a time: each rule of
//! `tamizdat_feed::sync` seen in the outputs of a single call.

use tamizdat_feed::{
    Acceptance, Config, Feeds, Followed, Hash, Head, Input, MsgId, Output, Policy, Sync,
};
use tamizdat_sign::{Entry, Manifest, SecretKey, Signed, TrustState};

const T0: u64 = 1_780_000_000_000;

fn root() -> SecretKey {
    SecretKey::from_seed(&[7; 32])
}

fn file(n: u64) -> Hash {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

/// A chain of root-signed manifests, seq 1..=n, each with the given files.
fn chain(n: u64, files: &[u64]) -> Vec<(Hash, Vec<u8>)> {
    let key = root();
    let mut out: Vec<(Hash, Vec<u8>)> = Vec::new();
    for seq in 1..=n {
        let m = Manifest {
            publisher: key.public(),
            signer: key.public(),
            delegation: None,
            feed: "main".into(),
            seq,
            prev: out.last().map(|(id, _)| *id),
            created: T0 / 1000 + seq,
            title: format!("Article {seq}"),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries: files
                .iter()
                .map(|f| Entry {
                    path: format!("f{f}"),
                    hash: file(seq * 100 + f),
                    size: 1000,
                    media_type: "text/plain".into(),
                })
                .collect(),
        };
        let s = Signed::sign(m, &key).unwrap();
        out.push((s.id(), s.bytes().to_vec()));
    }
    out
}

fn core() -> Sync<u32> {
    let follows = vec![Followed {
        key: root().public(),
        name: None,
        policy: Policy::default(),
    }];
    Sync::new(
        Feeds::new(TrustState::default(), follows),
        Config::default(),
        1,
    )
}

fn gossip(from: u32, data: &[u8]) -> Input<u32> {
    Input::Gossip {
        from,
        id: MsgId(data[..8].to_vec()),
        topic_of: root().public(),
        data: data.to_vec(),
    }
}

fn fetches(outs: &[Output<u32>]) -> Vec<(u32, Hash)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::FetchManifest { peer, hash } => Some((*peer, *hash)),
            _ => None,
        })
        .collect()
}

fn file_fetches(outs: &[Output<u32>]) -> Vec<(Hash, Vec<u32>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::FetchFile {
                hash, providers, ..
            } => Some((*hash, providers.clone())),
            _ => None,
        })
        .collect()
}

fn validation(outs: &[Output<u32>]) -> Option<Acceptance> {
    outs.iter().find_map(|o| match o {
        Output::Validate { acceptance, .. } => Some(*acceptance),
        _ => None,
    })
}

fn records(outs: &[Output<u32>]) -> usize {
    outs.iter()
        .filter(|o| matches!(o, Output::Record(_)))
        .count()
}

#[test]
fn an_ahead_manifest_walks_back_from_its_giver_at_once() {
    let c = chain(4, &[1]);
    let mut s = core();
    let outs = s.handle(gossip(1, &c[0].1), T0);
    assert_eq!(records(&outs), 1);
    assert_eq!(validation(&outs), Some(Acceptance::Accept));
    // Seq 4 while the head is 1: seq 3 is asked of peer 2 in the same call.
    let outs = s.handle(gossip(2, &c[3].1), T0 + 10);
    assert_eq!(records(&outs), 1);
    assert_eq!(fetches(&outs), vec![(2, c[2].0)]);
    let outs = s.handle(
        Input::Manifest {
            from: 2,
            hash: c[2].0,
            bytes: c[2].1.clone(),
        },
        T0 + 60,
    );
    assert_eq!(records(&outs), 1);
    assert_eq!(fetches(&outs), vec![(2, c[1].0)]);
    // Seq 2 links to seq 1, which is held: the walk stops.
    let outs = s.handle(
        Input::Manifest {
            from: 2,
            hash: c[1].0,
            bytes: c[1].1.clone(),
        },
        T0 + 110,
    );
    assert_eq!(records(&outs), 1);
    assert!(fetches(&outs).is_empty());
    assert_eq!(
        s.feeds()
            .trust()
            .head(&root().public(), "main")
            .unwrap()
            .seq,
        4
    );
}

#[test]
fn a_newer_head_is_fetched_from_its_claimant_and_hedged_to_another_holder() {
    let c = chain(2, &[1]);
    let mut s = core();
    for p in [1, 2] {
        let outs = s.handle(Input::PeerUp(p), T0);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::AskHeads { peer, .. } if *peer == p)),
            "a new peer is asked for heads at once"
        );
    }
    let head = Head {
        publisher: root().public(),
        feed: "main".into(),
        seq: 2,
        hash: c[1].0,
    };
    let outs = s.handle(
        Input::Heads {
            from: 1,
            heads: vec![head],
        },
        T0 + 50,
    );
    assert_eq!(fetches(&outs), vec![(1, c[1].0)]);
    // Peer 2 says it has it too; peer 1 stays silent.
    s.handle(
        Input::Have {
            from: 2,
            hash: c[1].0,
        },
        T0 + 60,
    );
    let hedge = T0 + 50 + Config::default().manifest_hedge;
    assert!(s.next_timer().unwrap() <= hedge);
    let outs = s.handle(Input::Timer, hedge);
    assert_eq!(fetches(&outs), vec![(2, c[1].0)]);
}

#[test]
fn holders_are_asked_before_the_announcer_and_a_hint_restarts_a_waiting_file() {
    let c = chain(1, &[1]);
    let f = file(101);
    let mut s = core();
    for p in [1, 5, 6] {
        s.handle(Input::PeerUp(p), T0);
    }
    s.handle(gossip(1, &c[0].1), T0);
    let outs = s.handle(
        Input::Stored {
            manifest: c[0].0,
            missing: vec![(f, 1000)],
        },
        T0,
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Announce(h) if *h == c[0].0))
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::LookupProviders(h) if *h == f))
    );
    // Only the announcer is known: it is asked at once.
    assert_eq!(file_fetches(&outs), vec![(f, vec![1])]);
    let outs = s.handle(
        Input::FileFailed {
            hash: f,
            tried: vec![1],
            bad: vec![],
        },
        T0 + 100,
    );
    assert!(file_fetches(&outs).is_empty(), "backs off");
    // A holder appears: no need to wait for the backoff.
    let outs = s.handle(Input::Have { from: 5, hash: f }, T0 + 120);
    assert_eq!(file_fetches(&outs), vec![(f, vec![5])]);
    let outs = s.handle(
        Input::FileDone {
            hash: f,
            from: vec![5],
        },
        T0 + 300,
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Announce(h) if *h == f))
    );
    assert_eq!(s.files_wanted(), 0);
}

#[test]
fn fetches_are_bounded_and_rarest_first() {
    let c = chain(1, &[1, 2, 3, 4, 5, 6]);
    let mut s = core();
    // File n is held by 7 - n peers: file 6 is the rarest.
    for n in 1..=6u64 {
        for p in 0..(7 - n) as u32 {
            s.handle(
                Input::Have {
                    from: 10 + p,
                    hash: file(100 + n),
                },
                T0,
            );
        }
    }
    s.handle(gossip(1, &c[0].1), T0);
    let missing = (1..=6).map(|n| (file(100 + n), 1000)).collect();
    let outs = s.handle(
        Input::Stored {
            manifest: c[0].0,
            missing,
        },
        T0,
    );
    let started: Vec<Hash> = file_fetches(&outs).into_iter().map(|(h, _)| h).collect();
    let max = Config::default().max_fetches;
    assert_eq!(started.len(), max);
    let rarest: Vec<Hash> = (0..max as u64).map(|i| file(106 - i)).collect();
    assert_eq!(started, rarest);
    // One finishes: the next rarest starts.
    let outs = s.handle(
        Input::FileDone {
            hash: file(106),
            from: vec![10],
        },
        T0 + 200,
    );
    assert_eq!(
        file_fetches(&outs)
            .into_iter()
            .map(|(h, _)| h)
            .collect::<Vec<_>>(),
        vec![file(102)]
    );
}

#[test]
fn forgeries_and_equivocations_are_refused_and_never_recorded() {
    let c = chain(1, &[1]);
    let mut s = core();
    let mut forged = c[0].1.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let outs = s.handle(gossip(3, &forged), T0);
    assert_eq!(validation(&outs), Some(Acceptance::Reject));
    assert_eq!(records(&outs), 0);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Penalise { peer: 3, .. }))
    );

    s.handle(gossip(1, &c[0].1), T0);
    // The same key signs another seq 1.
    let key = root();
    let mut other = Signed::<Manifest>::decode(&c[0].1).unwrap().body().clone();
    other.title = "Another".into();
    let other = Signed::sign(other, &key).unwrap();
    let outs = s.handle(gossip(4, other.bytes()), T0 + 10);
    assert_eq!(validation(&outs), Some(Acceptance::Reject));
    assert_eq!(records(&outs), 0);
    assert!(outs.iter().any(|o| matches!(o, Output::Conflict(_))));
    assert_eq!(s.feeds().conflicts().len(), 1);
    // One strike only: an honest peer deceived by a stolen key forwards a
    // fake in good faith. The same fake again costs no signature check and
    // is refused again.
    assert_eq!(s.strikes(&4), 1);
    assert!(!s.is_banned(&4, T0 + 10));
    let outs = s.handle(gossip(5, other.bytes()), T0 + 20);
    assert_eq!(validation(&outs), Some(Acceptance::Reject));
    assert_eq!(records(&outs), 0);
}

#[test]
fn heads_are_asked_of_a_few_peers_every_interval() {
    let mut s = core();
    for p in 1..=8 {
        s.handle(Input::PeerUp(p), T0);
    }
    let config = Config::default();
    let mut now = T0;
    let mut asked = 0;
    // Answer nothing: every round asks `heads_fanout` peers anew.
    while now < T0 + 10 * config.heads_interval {
        now = s.next_timer().unwrap();
        let outs = s.handle(Input::Timer, now);
        for o in &outs {
            if let Output::AskHeads { peer, .. } = o {
                asked += 1;
                s.handle(
                    Input::Heads {
                        from: *peer,
                        heads: vec![],
                    },
                    now,
                );
            }
        }
    }
    let rounds = 10;
    assert!(
        (rounds - 1) * config.heads_fanout <= asked && asked <= (rounds + 1) * config.heads_fanout,
        "asked {asked}"
    );
}

#[test]
fn a_publisher_asks_every_peer_and_is_settled_once_the_head_they_claim_is_proven() {
    let c = chain(2, &[1]);
    let mut s = core();
    for p in [1, 2, 3] {
        s.handle(Input::PeerUp(p), T0);
        s.handle(
            Input::Heads {
                from: p,
                heads: vec![],
            },
            T0 + 10,
        );
    }
    assert!(s.is_settled());
    let (asked, outs) = s.ask_every_peer(T0 + 100);
    assert_eq!(asked, 3);
    let mut peers: Vec<u32> = outs
        .iter()
        .filter_map(|o| match o {
            Output::AskHeads { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    peers.sort();
    assert_eq!(peers, vec![1, 2, 3]);
    assert!(!s.is_settled(), "answers are awaited");
    // Asking again while they are out sends nothing twice, and still
    // waits for them.
    let (asked, outs) = s.ask_every_peer(T0 + 110);
    assert_eq!(asked, 3);
    assert!(!outs.iter().any(|o| matches!(o, Output::AskHeads { .. })));
    assert!(!s.is_settled());
    for p in [2, 3] {
        s.handle(
            Input::Heads {
                from: p,
                heads: vec![],
            },
            T0 + 150,
        );
    }
    let claim = Head {
        publisher: root().public(),
        feed: "main".into(),
        seq: 2,
        hash: c[1].0,
    };
    let outs = s.handle(
        Input::Heads {
            from: 1,
            heads: vec![claim],
        },
        T0 + 200,
    );
    assert_eq!(fetches(&outs), vec![(1, c[1].0)]);
    assert!(!s.is_settled(), "a claimed head is not proven yet");
    assert!(s.heads(&[root().public()]).is_empty());
    s.handle(
        Input::Manifest {
            from: 1,
            hash: c[1].0,
            bytes: c[1].1.clone(),
        },
        T0 + 250,
    );
    assert!(s.is_settled(), "the claimed head is proven and recorded");
    // The walk back fetches seq 1 too.
    s.handle(
        Input::Manifest {
            from: 1,
            hash: c[0].0,
            bytes: c[0].1.clone(),
        },
        T0 + 300,
    );
    assert!(s.is_settled());
    let heads = s.heads(&[root().public()]);
    assert_eq!(heads.len(), 1);
    assert_eq!((heads[0].seq, heads[0].hash), (2, c[1].0));
}

#[test]
fn an_article_dated_ahead_of_our_clock_blames_nobody_and_fits_once_clocks_agree() {
    let c = chain(1, &[1]);
    let mut s = core();
    s.handle(Input::PeerUp(1), T0);
    // Our clock is two hours behind the publisher's.
    let behind = T0 - 2 * 3600 * 1000;
    let outs = s.handle(gossip(1, &c[0].1), behind);
    assert_eq!(validation(&outs), Some(Acceptance::Ignore));
    assert_eq!(records(&outs), 0);
    assert_eq!(s.strikes(&1), 0, "the forwarder did nothing wrong");
    let outs = s.handle(
        Input::Manifest {
            from: 1,
            hash: c[0].0,
            bytes: c[0].1.clone(),
        },
        behind + 10,
    );
    assert_eq!(records(&outs), 0);
    assert_eq!(s.strikes(&1), 0);
    // Once the clocks agree, the same article is taken.
    let outs = s.handle(gossip(1, &c[0].1), T0 + 1000);
    assert_eq!(validation(&outs), Some(Acceptance::Accept));
    assert_eq!(records(&outs), 1);
}

fn card(key: &SecretKey, issued_s: u64, addr: &str) -> Vec<u8> {
    let c = tamizdat_sign::Card {
        root: key.public(),
        name: "Outlet".into(),
        addrs: vec![addr.into()],
        issued: issued_s,
        not_before: issued_s - 60,
        not_after: issued_s + 86_400,
    };
    Signed::sign(c, key).unwrap().bytes().to_vec()
}

fn card_gossip(from: u32, data: &[u8]) -> Input<u32> {
    Input::Gossip {
        from,
        id: MsgId(blake3::hash(data).as_bytes().to_vec()),
        topic_of: root().public(),
        data: data.to_vec(),
    }
}

fn validated(outs: &[Output<u32>]) -> Option<Acceptance> {
    outs.iter().find_map(|o| match o {
        Output::Validate { acceptance, .. } => Some(*acceptance),
        _ => None,
    })
}

#[test]
fn a_newer_card_is_kept_and_forwarded_an_older_forged_or_stray_one_is_not() {
    let mut core = core();
    let now_s = T0 / 1000;
    let first = card(&root(), now_s - 100, "/ip4/203.0.113.1/tcp/4001");
    let newer = card(&root(), now_s - 10, "/ip4/203.0.113.2/tcp/4001");

    // The first card: kept (nothing to replace) and forwarded.
    let outs = core.handle(card_gossip(1, &first), T0);
    assert_eq!(validated(&outs), Some(Acceptance::Accept));
    assert!(outs.iter().any(|o| matches!(o,
        Output::KeepCard { card, replaces: None } if card.bytes() == first.as_slice())));
    // A newer one replaces it, and says which.
    let outs = core.handle(card_gossip(2, &newer), T0);
    assert_eq!(validated(&outs), Some(Acceptance::Accept));
    assert!(outs.iter().any(|o| matches!(o,
        Output::KeepCard { card, replaces: Some(old) }
            if card.bytes() == newer.as_slice() && old.bytes() == first.as_slice())));
    assert_eq!(
        core.feeds().card(&root().public()).unwrap().bytes(),
        newer.as_slice()
    );

    // The older one again, or the same one: dropped quietly, nothing kept.
    for (from, data) in [(3, &first), (4, &newer)] {
        let outs = core.handle(card_gossip(from, data), T0);
        assert_eq!(validated(&outs), Some(Acceptance::Ignore));
        assert!(!outs.iter().any(|o| matches!(o, Output::KeepCard { .. })));
    }
    // Expired by our clock: ignored, nobody blamed.
    let stale = card(&root(), now_s - 200_000, "/ip4/203.0.113.3/tcp/4001");
    let outs = core.handle(card_gossip(5, &stale), T0);
    assert_eq!(validated(&outs), Some(Acceptance::Ignore));
    assert!(!outs.iter().any(|o| matches!(o, Output::Penalise { .. })));

    // Forged (a flipped signature bit) or another outlet's card on this
    // outlet's topic: rejected, and the sender penalised.
    let mut forged = card(&root(), now_s, "/ip4/198.51.100.9/tcp/4001");
    *forged.last_mut().unwrap() ^= 1;
    let stranger = card(
        &SecretKey::from_seed(&[9; 32]),
        now_s,
        "/ip4/198.51.100.9/tcp/4001",
    );
    for (from, data) in [(6, &forged), (7, &stranger)] {
        let outs = core.handle(card_gossip(from, data), T0);
        assert_eq!(validated(&outs), Some(Acceptance::Reject));
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Penalise { peer, .. } if *peer == from))
        );
        assert!(!outs.iter().any(|o| matches!(o, Output::KeepCard { .. })));
    }
    assert_eq!(
        core.feeds().card(&root().public()).unwrap().bytes(),
        newer.as_slice(),
        "the newer card stays"
    );

    // The cards exchange: only a card is taken from it. A manifest (which
    // would skip the gossip rules that way), a forged card: the sender is
    // penalised and nothing is kept.
    let (_, manifest) = chain(1, &[1]).remove(0);
    for (from, data) in [(8, manifest), (9, forged)] {
        let outs = core.handle(Input::Card { from, data }, T0);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Penalise { peer, .. } if *peer == from)),
            "{from}: {outs:?}"
        );
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::KeepCard { .. } | Output::Record(_)))
        );
    }
    // A genuine newer one is kept.
    let newest = card(&root(), now_s, "/ip4/203.0.113.4/tcp/4001");
    let outs = core.handle(
        Input::Card {
            from: 10,
            data: newest.clone(),
        },
        T0,
    );
    assert!(outs.iter().any(|o| matches!(o,
        Output::KeepCard { card, .. } if card.bytes() == newest.as_slice())));
    // One issued far ahead of our clock would outrank every later card:
    // not taken (it fits once the clocks agree).
    let ahead = tamizdat_sign::Card {
        root: root().public(),
        name: "Outlet".into(),
        addrs: vec!["/ip4/203.0.113.5/tcp/4001".into()],
        issued: now_s + 30 * 86_400,
        not_before: now_s - 60,
        not_after: now_s + 60 * 86_400,
    };
    let ahead = Signed::sign(ahead, &root()).unwrap().bytes().to_vec();
    let outs = core.handle(card_gossip(11, &ahead), T0);
    assert_eq!(validated(&outs), Some(Acceptance::Ignore));
    assert!(!outs.iter().any(|o| matches!(o, Output::KeepCard { .. })));
}
