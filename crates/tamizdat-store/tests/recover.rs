//! A lost or damaged index never costs a blob: the store refuses to open as
//! new over blob files, a damaged index is an error (never a panic), and
//! recovery rebuilds the index from the files, each one re-verified.

use std::{fs, path::Path};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_store::{
    Hash, OpenError, Options, RECOVERED_PIN, Store, request_ranges, size_proof_ranges,
};
use tempfile::TempDir;

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn blob_file(dir: &Path, hash: &Hash, ext: &str) -> std::path::PathBuf {
    dir.join("blobs")
        .join(&hash.to_string()[..2])
        .join(format!("{hash}{ext}"))
}

/// A store with blobs across the chunk-group edges, one of them pinned.
fn filled(dir: &Path) -> Vec<(Hash, Vec<u8>)> {
    let store = Store::open(dir, Options::default()).unwrap();
    let blobs: Vec<(Hash, Vec<u8>)> = [1usize, 1024, 16384, 16385, 100_000, 1 << 20]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let bytes = data(n, i as u64);
            (store.add_bytes(&bytes).unwrap().hash, bytes)
        })
        .collect();
    store.pin("mine", &blobs[0].0).unwrap();
    blobs
}

fn lost(r: Result<Store, OpenError>) -> bool {
    matches!(r, Err(OpenError::IndexLost { .. }))
}

#[test]
fn a_missing_or_emptied_index_is_refused_and_gc_cannot_run() {
    let dir = TempDir::new().unwrap();
    let blobs = filled(dir.path());
    let index = dir.path().join("index.redb");

    fs::remove_file(&index).unwrap();
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, OpenError::IndexLost { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("refusing to open it as a new store")
    );
    // Refusing created nothing: a second try refuses again.
    assert!(!index.exists());
    assert!(lost(Store::open(dir.path(), Options::default())));

    fs::write(&index, b"").unwrap();
    assert!(lost(Store::open(dir.path(), Options::default())));

    // An index made afresh by something that did not check (an older
    // version, the database alone) names none of the files: refused too.
    fs::remove_file(&index).unwrap();
    drop(redb::Database::create(&index).unwrap());
    assert!(lost(Store::open(dir.path(), Options::default())));

    for (h, _) in &blobs {
        assert!(blob_file(dir.path(), h, "").exists(), "nothing was deleted");
    }
}

#[test]
fn recovery_rebuilds_the_index_re_verifying_every_file() {
    let dir = TempDir::new().unwrap();
    let blobs = filled(dir.path());
    // A partly fetched blob: only its size proof arrived.
    let big = data(200_000, 99);
    let big_hash = {
        let src_dir = TempDir::new().unwrap();
        let src = Store::open(src_dir.path(), Options::default()).unwrap();
        let h = src.add_bytes(&big).unwrap().hash;
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let proof = size_proof_ranges(big.len() as u64);
        let mut enc = Vec::new();
        src.encode_ranges(&h, &proof, &mut enc).unwrap();
        store
            .receive(h, big.len() as u64, &proof, &enc[..])
            .unwrap();
        h
    };
    fs::remove_file(dir.path().join("index.redb")).unwrap();
    // Damage while the index was gone: a small blob's bytes rot, one group
    // of a larger one rots, another loses its outboard, a stray outboard
    // and a foreign file appear.
    let flip = |h: &Hash, at: usize| {
        let mut bytes = fs::read(blob_file(dir.path(), h, "")).unwrap();
        bytes[at] ^= 1;
        fs::write(blob_file(dir.path(), h, ""), bytes).unwrap();
    };
    let rotten = blobs[1].0;
    flip(&rotten, 500);
    let holed = blobs[4].0;
    flip(&holed, 50_000);
    let no_outboard = blobs[5].0;
    fs::remove_file(blob_file(dir.path(), &no_outboard, ".obao")).unwrap();
    let stray = Hash::of(b"gone");
    fs::create_dir_all(blob_file(dir.path(), &stray, "").parent().unwrap()).unwrap();
    fs::write(blob_file(dir.path(), &stray, ".obao"), [0u8; 64]).unwrap();
    let foreign = dir.path().join("blobs").join("00").join("notes.txt");
    fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    fs::write(&foreign, b"mine").unwrap();
    // A link named like a blob, to a file whose bytes do hash to that name:
    // still not a blob of this store.
    let outside = dir.path().join("outside");
    fs::write(&outside, b"linked").unwrap();
    let linked = blob_file(dir.path(), &Hash::of(b"linked"), "");
    fs::create_dir_all(linked.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &linked).unwrap();

    let (store, report) = Store::recover(dir.path(), Options::default()).unwrap();
    assert_eq!(report.complete, 4, "{report:?}");
    assert_eq!(report.partial, 2, "{report:?}");
    assert_eq!(report.outboards_rebuilt, 1, "{report:?}");
    assert_eq!(report.stray_outboards, 1, "{report:?}");
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.quarantined[0].0, rotten);
    let mut unknown = vec![foreign.clone(), linked.clone()];
    unknown.sort();
    assert_eq!(report.unknown, unknown);
    assert!(store.info(&Hash::of(b"linked")).unwrap().is_none());
    assert!(report.old_index.is_none(), "there was no old index");

    for (h, b) in blobs.iter().filter(|(h, _)| *h != rotten && *h != holed) {
        assert_eq!(&store.read_to_vec(h).unwrap(), b, "{h}");
    }
    // The rotten group is gone, the groups around it are kept: only it
    // needs fetching again.
    let holed_info = store.info(&holed).unwrap().unwrap();
    assert!(!holed_info.complete);
    assert_eq!(holed_info.verified_bytes, 100_000 - 16384);
    assert!(
        store.info(&rotten).unwrap().is_none(),
        "rot is never indexed"
    );
    assert!(
        dir.path()
            .join("quarantine")
            .join(rotten.to_string())
            .exists()
    );
    let partial = store.info(&big_hash).unwrap().unwrap();
    assert!(!partial.complete);
    assert!(partial.verified_bytes > 0);
    // The rest of the partial blob can still arrive.
    {
        let src_dir = TempDir::new().unwrap();
        let src = Store::open(src_dir.path(), Options::default()).unwrap();
        src.add_bytes(&big).unwrap();
        let all = request_ranges(0..u64::MAX, big.len() as u64);
        let mut enc = Vec::new();
        src.encode_ranges(&big_hash, &all, &mut enc).unwrap();
        let r = store
            .receive(big_hash, big.len() as u64, &all, &enc[..])
            .unwrap();
        assert!(r.complete);
    }
    assert_eq!(store.read_to_vec(&big_hash).unwrap(), big);
    // Nothing is left for gc to take: every blob is under the recovery pin.
    let dry = store.gc(true).unwrap();
    assert!(dry.removed.is_empty(), "{dry:?}");
    assert_eq!(store.pins().unwrap()[RECOVERED_PIN].len(), 6);
    assert!(foreign.exists(), "a file that is not a blob is left alone");
    assert_eq!(store.quarantined().unwrap().len(), 1);
    let used = store.usage().unwrap().used;
    drop(store);
    // The rebuilt index is an ordinary one.
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.usage().unwrap().used, used);
    assert_eq!(store.list().unwrap().len(), 6);
}

#[test]
fn a_damaged_index_is_an_error_never_a_panic_and_recovery_keeps_it_aside() {
    let dir = TempDir::new().unwrap();
    let blobs = filled(dir.path());
    let index = dir.path().join("index.redb");
    let good = fs::read(&index).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut damaged = 0;
    for _ in 0..400 {
        let mut bytes = good.clone();
        let at = rng.random_range(0..bytes.len());
        bytes[at] ^= 1 << rng.random_range(0..8);
        fs::write(&index, &bytes).unwrap();
        // Whatever the flip hit: an error or a usable store, and closing
        // it never panics (the test would fail on a panic).
        match Store::open(dir.path(), Options::default()) {
            Ok(store) => {
                let _ = store.list();
                let _ = store.pins();
            }
            Err(OpenError::Damaged { path, .. }) => {
                assert_eq!(path, index);
                damaged += 1;
            }
            Err(OpenError::Index { .. }) => damaged += 1,
            Err(e) => panic!("flip at {at}: unexpected {e}"),
        }
    }
    assert!(damaged > 0, "some flips must be seen as damage");

    // Damage to the header: a wrong magic number, a version byte.
    for at in [0, 64] {
        let mut bytes = good.clone();
        bytes[at] ^= 1;
        fs::write(&index, &bytes).unwrap();
        let err = Store::open(dir.path(), Options::default()).unwrap_err();
        assert!(matches!(err, OpenError::Damaged { .. }), "byte {at}: {err}");
    }
    // Damage redb cannot open at all: garbage over the header.
    let mut bytes = good.clone();
    bytes[..512].fill(0xa5);
    fs::write(&index, &bytes).unwrap();
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, OpenError::Damaged { .. }), "{err}");
    let (store, report) = Store::recover(dir.path(), Options::default()).unwrap();
    let aside = report.old_index.expect("the damaged index is kept");
    assert_eq!(fs::read(&aside).unwrap(), bytes, "kept byte for byte");
    for (h, b) in &blobs {
        assert_eq!(&store.read_to_vec(h).unwrap(), b);
    }
}

#[test]
fn gc_dry_run_lists_exactly_what_gc_deletes() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let kept = store.add_bytes(b"kept").unwrap().hash;
    store.pin("p", &kept).unwrap();
    let dropped = store.add_bytes(b"dropped").unwrap().hash;
    let orphan = Hash::of(b"orphan");
    let path = blob_file(dir.path(), &orphan, "");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"orphan").unwrap();

    let dry = store.gc(true).unwrap();
    assert_eq!(dry.removed, vec![(dropped, 7)]);
    assert_eq!(dry.orphans, 1);
    assert_eq!(dry.orphan_files, vec![path.clone()]);
    assert!(path.exists(), "a dry run deletes nothing");
    let real = store.gc(false).unwrap();
    assert_eq!(real, dry, "gc did exactly what the dry run said");
    assert!(!path.exists());
}

#[test]
fn recovery_refuses_a_store_in_use() {
    let dir = TempDir::new().unwrap();
    filled(dir.path());
    let held = Store::open(dir.path(), Options::default()).unwrap();
    let err = Store::recover(dir.path(), Options::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    assert_eq!(held.list().unwrap().len(), 6, "the open store is untouched");
}

#[cfg(unix)]
#[test]
fn the_index_is_readable_by_its_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let index = dir.path().join("index.redb");
    drop(Store::open(dir.path(), Options::default()).unwrap());
    fs::set_permissions(&index, fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(dir.path(), Options::default()).unwrap());
    let mode = fs::metadata(&index).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

#[test]
fn an_interrupted_recovery_is_never_taken_for_a_whole_index() {
    let dir = TempDir::new().unwrap();
    let blobs = filled(dir.path());
    fs::remove_file(dir.path().join("index.redb")).unwrap();
    let (store, _) = Store::recover(dir.path(), Options::default()).unwrap();
    drop(store);
    // What a recovery killed half-way leaves (docs/store.md): its marker
    // beside an index that names only some of the blobs.
    fs::write(dir.path().join("RECOVERY-NEEDED"), "interrupted").unwrap();
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, OpenError::Damaged { .. }), "{err}");
    let (store, report) = Store::recover(dir.path(), Options::default()).unwrap();
    assert_eq!(report.complete as usize, blobs.len());
    assert!(!dir.path().join("RECOVERY-NEEDED").exists());
    drop(store);
    Store::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn crash_debris_in_a_new_store_is_not_a_lost_index() {
    // A first `add` killed after its file was renamed into place but before
    // the index commit: the store made its index itself, so that file is an
    // orphan for gc, not a sign that the index was lost.
    let dir = TempDir::new().unwrap();
    drop(Store::open(dir.path(), Options::default()).unwrap());
    let orphan = Hash::of(b"debris");
    let path = blob_file(dir.path(), &orphan, "");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"debris").unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.gc(true).unwrap().orphan_files, vec![path]);
    // A lone outboard where the index is missing holds no data either.
    let fresh = TempDir::new().unwrap();
    let ob = blob_file(fresh.path(), &orphan, ".obao");
    fs::create_dir_all(ob.parent().unwrap()).unwrap();
    fs::write(&ob, [0u8; 64]).unwrap();
    Store::open(fresh.path(), Options::default()).unwrap();
}
