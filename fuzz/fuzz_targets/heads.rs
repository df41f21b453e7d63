//! The answers of `/tamizdat/heads/1` and `/tamizdat/revocations/1`, the
//! heads request and the have message (protocol.md §7), decoded as the
//! node's `replicate.rs` decodes them (postcard of `Vec<Head>`,
//! `Vec<[u8; 32]>`, `Vec<PublicKey>`), then handed to the replication core
//! (`tamizdat_feed::Sync`) as the node hands them. The bytes left after the
//! heads answer are the manifest the first claimed head is fetched as.
//!
//! Checks: no panic; decode(encode(x)) == x for each message; from one
//! answer the core asks for at most `MAX_CLAIMS` manifests, each a head of
//! a followed feed past the one held (or at it with another hash), from the
//! peer that claimed it;
//! a manifest fetched in answer is recorded only when its bytes hash to
//! what was asked and a fresh verifier accepts them.

use afl::fuzz;
use tamizdat_feed::{Config, Feeds, Followed, Head, Input, Output, Sync, sync::MAX_CLAIMS};
use tamizdat_fuzz::{NOW, manifest, root};
use tamizdat_sign::{Digest, PublicKey, TrustState, Verifier};

/// The node's limit on heads in one answer (`replicate.rs` MAX_HEADS).
const NODE_MAX_HEADS: usize = 1024;
const PEER: u32 = 1;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // As the node reads them: postcard::from_bytes over the whole answer.
    if let Ok(v) = postcard::from_bytes::<T>(data) {
        let bytes = postcard::to_stdvec(&v).unwrap();
        assert_eq!(postcard::from_bytes::<T>(&bytes).unwrap(), v);
    }
}

fn main() {
    fuzz!(|data: &[u8]| {
        round_trip::<Vec<Head>>(data);
        round_trip::<Vec<Digest>>(data);
        round_trip::<Vec<PublicKey>>(data);
        let Ok((heads, rest)) = postcard::take_from_bytes::<Vec<Head>>(data) else {
            return;
        };
        if heads.len() > NODE_MAX_HEADS {
            return;
        }
        core(heads, rest);
    });
}

fn core(heads: Vec<Head>, rest: &[u8]) {
    // Following the vector root, holding its feed `main` at seq 1.
    let first = manifest(1, None, &[("index.md", b"# Hello\n", "text/markdown")]);
    let mut trust = TrustState::default();
    let m = Verifier::new().verify(first.bytes(), &trust).unwrap();
    trust.accept(&m, NOW).unwrap();
    let followed = Followed {
        key: root().public(),
        name: None,
        policy: Default::default(),
    };
    let mut sync: Sync<u32> = Sync::new(
        Feeds::new(trust.clone(), vec![followed]),
        Config::default(),
        7,
    );
    let now = NOW * 1000;
    sync.handle(Input::PeerUp(PEER), now);
    let out = sync.handle(
        Input::Heads {
            from: PEER,
            heads: heads.clone(),
        },
        now + 1,
    );
    let mut asked = Vec::new();
    for o in &out {
        if let Output::FetchManifest { peer, hash } = o {
            assert_eq!(*peer, PEER, "asked of the peer that claimed it");
            // Some claim of a followed feed at or past the head held here
            // (at it with another hash: fetched to report the equivocation).
            let fits = |h: &Head| {
                trust
                    .head(&h.publisher, &h.feed)
                    .is_none_or(|f| h.seq > f.seq || (h.seq == f.seq && h.hash != f.hash))
            };
            assert!(
                heads
                    .iter()
                    .any(|h| h.hash == *hash && h.publisher == root().public() && fits(h)),
                "asked for {hash:?}, which no claim of a followed feed at or past ours names"
            );
            asked.push(*hash);
        }
    }
    assert!(
        asked.len() <= MAX_CLAIMS,
        "{} manifests asked from one answer",
        asked.len()
    );
    let Some(&hash) = asked.first() else {
        return;
    };
    let out = sync.handle(
        Input::Manifest {
            from: PEER,
            hash,
            bytes: rest.to_vec(),
        },
        now + 2,
    );
    for o in out {
        if let Output::Record(m) = o {
            assert_eq!(m.id(), hash, "recorded under the hash asked for");
            assert_eq!(*blake3::hash(rest).as_bytes(), hash);
            Verifier::new()
                .verify(m.envelope().bytes(), &trust)
                .expect("a recorded manifest verifies afresh");
        }
    }
}
