//! Bundle import (`tamizdat_feed::bundle::import`) into a temporary store,
//! as `tamizdat import` does: the store and staging directory live for the
//! whole fuzzing process (on /dev/shm when there is one), the feed state
//! and follow list (the test vectors' root key) start afresh each run.
//!
//! Checks: no panic; every staged file hashes to what it claims and goes
//! into the store under that hash; every article handed over names only
//! files here, and a stricter re-check passes: a fresh verifier, with the
//! revocations this import handed over, accepts its manifest, and a feed
//! state kept here from what was handed over accepts it too; delegations
//! and revocations handed over verify and are from followed publishers,
//! each handed over once; the staging directory is empty afterwards.

use std::{cell::RefCell, collections::HashSet, fs, sync::OnceLock};

use afl::fuzz;
use tamizdat_feed::bundle::{Known, Step, import};
use tamizdat_fuzz::{NOW, root, scratch};
use tamizdat_sign::{Signed, TrustState, Verifier, verify_delegation};
use tamizdat_store::{Hash, Options, Store};

struct Place {
    _dir: tempfile::TempDir,
    store: Store,
    staging: std::path::PathBuf,
}

fn place() -> &'static Place {
    static PLACE: OnceLock<Place> = OnceLock::new();
    PLACE.get_or_init(|| {
        let dir = scratch();
        let store = Store::open(dir.path().join("store"), Options::default()).expect("a store");
        let staging = dir.path().join("staging");
        fs::create_dir_all(&staging).unwrap();
        Place {
            _dir: dir,
            store,
            staging,
        }
    })
}

fn main() {
    fuzz!(|data: &[u8]| run(data));
}

fn run(data: &[u8]) {
    let p = place();
    // What this run put in the store: `have` answers from it alone, so a
    // run does not depend on the ones before.
    let held: RefCell<HashSet<Hash>> = RefCell::default();
    let have = |h: &Hash| held.borrow().contains(h);
    let follows: HashSet<_> = [root().public()].into_iter().collect();
    let known = Known {
        trust: TrustState::default(),
        follows: follows.clone(),
        have: &have,
        now: NOW,
        cards: Vec::new(),
    };
    // The stricter re-check's own state: revocations and accepted articles
    // as they were handed over.
    let mut mirror = TrustState::default();
    let mut keys_seen = HashSet::new();
    let outcome = import(data, &p.staging, known, &mut |step| {
        match step {
            Step::Revocation(rev) => {
                assert!(follows.contains(&rev.body().root));
                rev.check_signature()
                    .expect("a revocation handed over verifies");
                assert!(keys_seen.insert(rev.id()), "a revocation handed over twice");
                assert!(
                    mirror.add_revocation(&rev).expect("applies"),
                    "new each time"
                );
            }
            Step::Delegation(d) => {
                assert!(follows.contains(&d.body().root));
                verify_delegation(d.bytes()).expect("a delegation handed over verifies");
                assert!(keys_seen.insert(d.id()), "a delegation handed over twice");
            }
            Step::Card { card, replaces } => {
                assert!(follows.contains(&card.body().root));
                tamizdat_sign::verify_card(card.bytes()).expect("a card handed over verifies");
                assert!(keys_seen.insert(card.id()), "a card handed over twice");
                if let Some(old) = replaces {
                    assert!(old.body().issued <= card.body().issued, "a newer card only");
                }
            }
            Step::Article(a) => {
                for (hash, file) in &a.files {
                    let bytes = fs::read(file).expect("a staged file");
                    assert_eq!(Hash::of(&bytes), *hash, "staged bytes are what they claim");
                    let added = p
                        .store
                        .add_sized(&bytes[..], bytes.len() as u64, file)
                        .expect("into the store");
                    assert_eq!(added.hash, *hash);
                    held.borrow_mut().insert(*hash);
                }
                let m = a.manifest.manifest();
                assert!(follows.contains(&m.publisher));
                for e in &m.entries {
                    let h = Hash::from_bytes(e.hash);
                    assert!(
                        held.borrow().contains(&h),
                        "an article without its file {h}"
                    );
                    let info = p.store.info(&h).unwrap().expect("in the store");
                    assert_eq!(info.size, e.size, "the signed size");
                }
                let bytes = a.manifest.envelope().bytes();
                let again = Verifier::new()
                    .verify(bytes, &mirror)
                    .expect("a fresh verifier accepts what the import handed over");
                assert_eq!(again, a.manifest);
                Signed::<tamizdat_sign::Manifest>::decode(bytes).unwrap();
                if !a.known {
                    mirror
                        .accept(&again, NOW)
                        .expect("the feed rules accept what the import handed over");
                }
            }
            Step::Skipped(_) => {}
        }
        Ok(())
    });
    let _ = outcome;
    assert_eq!(
        fs::read_dir(&p.staging).unwrap().count(),
        0,
        "staged files are removed"
    );
}
