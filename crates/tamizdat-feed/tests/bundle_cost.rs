//! What a bundle of many copies of one key record costs the importer: a
//! copy of a record already read is recognised by its hash and goes no
//! further (no second signature check, nothing handed to the caller to
//! store), and the record limit still stops the import, saying that
//! copies made up the count.

use std::collections::HashSet;

use tamizdat_feed::bundle::{self, BundleError, Info, Known, MAX_KEYS, Step, Writer};
use tamizdat_sign::{Delegation, SecretKey, Signed, TrustState};
use tamizdat_store::Hash;

const NOW: u64 = 1_780_000_000;

fn root() -> SecretKey {
    SecretKey::from_seed(&[1; 32])
}

/// A genuine delegation of the root's.
fn delegation() -> Vec<u8> {
    Signed::sign(
        Delegation {
            root: root().public(),
            key: SecretKey::from_seed(&[2; 32]).public(),
            not_before: NOW - 1000,
            not_after: NOW + 1000,
            feed: None,
        },
        &root(),
    )
    .unwrap()
    .bytes()
    .to_vec()
}

/// A bundle of `n` copies of one delegation, and nothing else (the
/// writer leaves the record limit to the reader).
fn copies(n: u64) -> Vec<u8> {
    let d = delegation();
    let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
    for _ in 0..n {
        w.key(&d).unwrap();
    }
    w.finish().unwrap().0
}

/// Imports `bytes` following the root; returns the delegations handed to
/// the caller (each one a store write in `tamizdat import`) and the outcome.
fn import(bytes: &[u8]) -> (Vec<Vec<u8>>, bundle::Outcome) {
    let staging = tempfile::tempdir().unwrap();
    let have = |_: &Hash| false;
    let known = Known {
        trust: TrustState::default(),
        follows: [root().public()].into_iter().collect::<HashSet<_>>(),
        have: &have,
        now: NOW,
        cards: Vec::new(),
    };
    let mut handed = Vec::new();
    let outcome = bundle::import(bytes, staging.path(), known, &mut |step| {
        if let Step::Delegation(d) = step {
            handed.push(d.bytes().to_vec());
        }
        Ok(())
    });
    (handed, outcome)
}

#[test]
fn copies_of_one_delegation_are_handed_over_once() {
    let (handed, outcome) = import(&copies(100));
    assert_eq!(
        handed,
        vec![delegation()],
        "one delegation, handed over once"
    );
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert!(outcome.summary.complete);
    assert_eq!(outcome.summary.duplicates, 99);
    assert_eq!(outcome.summary.refused, 0);
}

#[test]
fn a_bundle_of_copies_past_the_limit_costs_one_check_and_stops_at_the_limit() {
    let (handed, outcome) = import(&copies(MAX_KEYS + 1));
    // The work done: the caller was asked to keep one delegation, not
    // 16,384 of them (each a store write and, before it, a signature check).
    assert_eq!(handed.len(), 1, "delegations handed over");
    assert_eq!(outcome.summary.duplicates, MAX_KEYS - 1);
    match outcome.error {
        Some(BundleError::TooLarge {
            what,
            claimed,
            limit,
            ..
        }) => {
            assert_eq!((claimed, limit), (MAX_KEYS + 1, MAX_KEYS));
            assert!(
                what.contains("copies"),
                "the error names the copies: {what}"
            );
        }
        other => panic!("stopped at the record limit, not {other:?}"),
    }
    assert!(!outcome.summary.complete);
}
