//! The store suite: every operation over the sizes around BLAKE3's chunk
//! (1 KiB) and our chunk group (16 KiB) edges, plus faults and corruption.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_store::{
    ChunkRanges, Error, Hash, OpenError, Options, ReadError, Store, WriteError, request_ranges,
    size_proof_ranges,
};
use tempfile::TempDir;

const MIB: usize = 1 << 20;
const INTERESTING_SIZES: &[usize] = &[
    0,
    1,
    1023,
    1024,
    1025,
    16383,
    16384,
    16385,
    MIB + 1,
    3 * MIB + 517,
];

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn open(dir: &Path) -> Store {
    Store::open(dir, Options::default()).unwrap()
}

fn read_range(store: &Store, hash: &Hash, r: std::ops::Range<u64>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    store
        .range_reader(hash, r)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn encode(store: &Store, hash: &Hash, ranges: &ChunkRanges) -> Vec<u8> {
    let mut out = Vec::new();
    store.encode_ranges(hash, ranges, &mut out).unwrap();
    out
}

/// Sends a whole blob from `src` to `dst` as a node would: the size proof
/// (last group) first, then everything.
fn transfer(src: &Store, dst: &Store, hash: &Hash, size: u64) -> tamizdat_store::Received {
    let proof = size_proof_ranges(size);
    dst.receive(*hash, size, &proof, &encode(src, hash, &proof)[..])
        .unwrap();
    let all = request_ranges(0..u64::MAX, size);
    dst.receive(*hash, size, &all, &encode(src, hash, &all)[..])
        .unwrap()
}

fn tmp_is_empty(dir: &Path) -> bool {
    fs::read_dir(dir.join("tmp")).unwrap().next().is_none()
}

fn data_file(dir: &Path, hash: &Hash) -> PathBuf {
    dir.join("blobs")
        .join(&hash.to_string()[..2])
        .join(hash.to_string())
}

#[test]
fn add_and_read_back_every_interesting_size() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    for (i, &size) in INTERESTING_SIZES.iter().enumerate() {
        let bytes = data(size, i as u64);
        let added = store.add_bytes(&bytes).unwrap();
        assert_eq!(
            added.hash.to_string(),
            blake3::hash(&bytes).to_hex().as_str()
        );
        assert_eq!(added.size, size as u64);
        assert!(added.new);
        assert!(
            !store.add_bytes(&bytes).unwrap().new,
            "second add is a no-op"
        );
        assert_eq!(
            store.read_to_vec(&added.hash).unwrap(),
            bytes,
            "size {size}"
        );
        let info = store.info(&added.hash).unwrap().unwrap();
        assert!(info.complete);
        assert_eq!(info.verified_bytes, size as u64);
        let s = size as u64;
        for r in [
            0..1,
            s.saturating_sub(1)..s,
            s / 3..s / 2 + 1,
            0..s,
            5..s + 100,
        ] {
            let want = &bytes[(r.start.min(s)) as usize..(r.end.min(s)) as usize];
            assert_eq!(
                read_range(&store, &added.hash, r.clone()).unwrap(),
                want,
                "{size} {r:?}"
            );
        }
    }
    assert!(tmp_is_empty(dir.path()));
    // Usage counts data and proofs once each.
    let expected: u64 = INTERESTING_SIZES
        .iter()
        .map(|&s| s as u64 + tamizdat_store::outboard_size(s as u64))
        .sum();
    assert_eq!(store.usage().unwrap().used, expected);
}

#[test]
fn add_file_and_stream_agree_with_add_bytes() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir.path().join("s"));
    let bytes = data(MIB + 1, 9);
    let path = dir.path().join("f");
    fs::write(&path, &bytes).unwrap();
    let a = store.add_file(&path).unwrap();
    let b = store.add_reader(&bytes[..], Path::new("-")).unwrap();
    assert_eq!(a.hash, Hash::of(&bytes));
    assert_eq!(a.hash, b.hash);
    assert!(!b.new);
}

#[test]
fn source_that_lies_about_its_size_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let bytes = data(40_000, 1);
    let short = store.add_sized(&bytes[..], 50_000, Path::new("x"));
    assert!(
        matches!(short, Err(WriteError::SourceChanged { .. })),
        "{short:?}"
    );
    let long = store.add_sized(&bytes[..], 30_000, Path::new("x"));
    assert!(
        matches!(long, Err(WriteError::SourceChanged { .. })),
        "{long:?}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(tmp_is_empty(dir.path()));
}

#[test]
fn transfer_whole_blob_between_stores() {
    let a_dir = TempDir::new().unwrap();
    let b_dir = TempDir::new().unwrap();
    let a = open(a_dir.path());
    let b = open(b_dir.path());
    for (i, &size) in INTERESTING_SIZES.iter().enumerate() {
        let bytes = data(size, 100 + i as u64);
        let hash = a.add_bytes(&bytes).unwrap().hash;
        let got = transfer(&a, &b, &hash, size as u64);
        assert!(got.complete, "size {size}");
        assert_eq!(b.read_to_vec(&hash).unwrap(), bytes);
    }
}

#[test]
fn partial_blobs_resume_across_restarts_and_never_look_complete() {
    for (i, &size) in INTERESTING_SIZES.iter().enumerate() {
        if size <= 16384 {
            continue; // one group: a blob is either absent or complete
        }
        let size64 = size as u64;
        let bytes = data(size, 200 + i as u64);
        let src_dir = TempDir::new().unwrap();
        let src = open(src_dir.path());
        let hash = src.add_bytes(&bytes).unwrap().hash;
        let dst_dir = TempDir::new().unwrap();

        // Last group first: it proves the size.
        let last = request_ranges(size64 - 1..size64, size64);
        {
            let dst = open(dst_dir.path());
            let got = dst
                .receive(hash, size64, &last, &encode(&src, &hash, &last)[..])
                .unwrap();
            assert!(!got.complete);
            let info = dst.info(&hash).unwrap().unwrap();
            assert!(!info.complete);
            assert_eq!(info.size, size64);
            assert!(matches!(
                dst.reader(&hash),
                Err(ReadError::NotAvailable { .. })
            ));
            assert_eq!(
                read_range(&dst, &hash, size64 - 1..size64).unwrap(),
                &bytes[size - 1..]
            );
            assert!(read_range(&dst, &hash, 0..1).is_err());
            // It can serve what it has, with proof.
            let again = encode(&dst, &hash, &last);
            assert_eq!(again, encode(&src, &hash, &last));
        }
        // First half after a restart.
        let half = request_ranges(0..size64 / 2, size64);
        {
            let dst = open(dst_dir.path());
            assert!(!dst.info(&hash).unwrap().unwrap().complete);
            let got = dst
                .receive(hash, size64, &half, &encode(&src, &hash, &half)[..])
                .unwrap();
            // Only a two-group blob is whole after its first and last groups.
            assert_eq!(got.complete, size <= 2 * 16384);
            assert_eq!(
                read_range(&dst, &hash, 0..size64 / 2).unwrap(),
                &bytes[..size / 2]
            );
        }
        // Everything, after another restart: only the missing groups are new.
        {
            let dst = open(dst_dir.path());
            let all = request_ranges(0..size64, size64);
            let before = dst.info(&hash).unwrap().unwrap().verified_bytes;
            let got = dst
                .receive(hash, size64, &all, &encode(&src, &hash, &all)[..])
                .unwrap();
            assert!(got.complete);
            assert_eq!(got.new_bytes, size64 - before);
            assert_eq!(dst.read_to_vec(&hash).unwrap(), bytes);
            assert!(dst.info(&hash).unwrap().unwrap().complete);
        }
    }
}

#[test]
fn first_receive_must_prove_the_size() {
    let size = 5 * 16384 + 7;
    let bytes = data(size, 3);
    let src_dir = TempDir::new().unwrap();
    let src = open(src_dir.path());
    let hash = src.add_bytes(&bytes).unwrap().hash;
    let dst_dir = TempDir::new().unwrap();
    let dst = open(dst_dir.path());
    // Anything but the last group alone is refused before a byte is read.
    for first in [
        request_ranges(0..16384, size as u64),
        request_ranges(0..size as u64, size as u64),
    ] {
        let r = dst.receive(hash, size as u64, &first, &encode(&src, &hash, &first)[..]);
        assert!(matches!(r, Err(WriteError::SizeUnproven(_))), "{r:?}");
        assert!(dst.info(&hash).unwrap().is_none());
    }

    // A sender lying about the size cannot get anything stored.
    for lie in [
        size as u64 + 16384,
        size as u64 - 1,
        size as u64 + 1,
        1 << 39,
    ] {
        let ranges = size_proof_ranges(lie);
        let mut encoded = encode(&src, &hash, &size_proof_ranges(size as u64));
        encoded.extend_from_slice(&[0u8; 20000]);
        let r = dst.receive(hash, lie, &ranges, &encoded[..]);
        assert!(r.is_err(), "claimed size {lie} accepted");
    }
    assert!(dst.info(&hash).unwrap().is_none());
    assert_eq!(dst.usage().unwrap().used, 0);
}

#[test]
fn a_flipped_bit_anywhere_in_a_range_is_rejected() {
    let size = 4 * 16384 + 100;
    let bytes = data(size, 4);
    let src_dir = TempDir::new().unwrap();
    let src = open(src_dir.path());
    let hash = src.add_bytes(&bytes).unwrap().hash;
    let all = request_ranges(0..u64::MAX, size as u64);
    let good = encode(&src, &hash, &all);
    let mut rng = StdRng::seed_from_u64(5);
    // Proof bytes come first (pre-order), data after: try both, and random spots.
    let mut spots = vec![0, 63, 64, 200, good.len() / 2, good.len() - 1];
    spots.extend((0..20).map(|_| rng.random_range(0..good.len())));
    for spot in spots {
        let mut bad = good.clone();
        bad[spot] ^= 1 << rng.random_range(0..8);
        let dst_dir = TempDir::new().unwrap();
        let dst = open(dst_dir.path());
        // The size proof, flipped too, is refused outright.
        let proof = size_proof_ranges(size as u64);
        let mut bad_proof = encode(&src, &hash, &proof);
        let p = spot % bad_proof.len();
        bad_proof[p] ^= 0x10;
        let r = dst.receive(hash, size as u64, &proof, &bad_proof[..]);
        assert!(
            matches!(r, Err(WriteError::Verification { .. })),
            "proof flip at {p}: {r:?}"
        );
        assert!(dst.info(&hash).unwrap().is_none());
        dst.receive(hash, size as u64, &proof, &encode(&src, &hash, &proof)[..])
            .unwrap();
        let r = dst.receive(hash, size as u64, &all, &bad[..]);
        assert!(
            matches!(r, Err(WriteError::Verification { .. })),
            "flip at {spot}: {r:?}"
        );
        // Whatever was kept reads back correct and verified.
        if let Some(info) = dst.info(&hash).unwrap() {
            if info.complete {
                // Only possible when the flip hit a group already held from
                // the size proof: then every byte verified anyway.
                assert_eq!(dst.read_to_vec(&hash).unwrap(), bytes, "flip at {spot}");
            }
            let have = dst.verified_ranges(&hash).unwrap();
            assert!(!have.is_empty());
            for g in 0..size.div_ceil(16384) {
                let r = (g * 16384) as u64..((g + 1) * 16384).min(size) as u64;
                if let Ok(got) = read_range(&dst, &hash, r.clone()) {
                    assert_eq!(got, &bytes[r.start as usize..r.end as usize]);
                }
            }
        }
    }
}

#[test]
fn a_bad_sender_mid_stream_costs_only_what_follows() {
    let size = 8 * 16384;
    let bytes = data(size, 6);
    let src_dir = TempDir::new().unwrap();
    let src = open(src_dir.path());
    let hash = src.add_bytes(&bytes).unwrap().hash;
    let dst_dir = TempDir::new().unwrap();
    let dst = open(dst_dir.path());
    let last = request_ranges(size as u64 - 1..size as u64, size as u64);
    dst.receive(hash, size as u64, &last, &encode(&src, &hash, &last)[..])
        .unwrap();
    let first_half = request_ranges(0..(size / 2) as u64, size as u64);
    let mut bad = encode(&src, &hash, &first_half);
    let n = bad.len();
    bad[n - 10] ^= 0xff; // in the fourth group's data
    let err = dst
        .receive(hash, size as u64, &first_half, &bad[..])
        .unwrap_err();
    match err {
        WriteError::Verification { kept, .. } => assert_eq!(kept, 3 * 16384),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read_range(&dst, &hash, 0..3 * 16384).unwrap(),
        &bytes[..3 * 16384]
    );
    assert!(read_range(&dst, &hash, 3 * 16384..4 * 16384).is_err());
}

#[test]
fn concurrent_writers_of_one_blob_end_with_one_correct_copy() {
    let bytes = Arc::new(data(2 * MIB + 3, 7));
    let hash = Hash::of(&bytes);
    let src_dir = TempDir::new().unwrap();
    let src = open(src_dir.path());
    src.add_bytes(&bytes).unwrap();
    let all = request_ranges(0..u64::MAX, bytes.len() as u64);
    let encoded = Arc::new(encode(&src, &hash, &all));
    let proof = Arc::new(encode(&src, &hash, &size_proof_ranges(bytes.len() as u64)));
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (store, bytes, encoded, all, proof) = (
                store.clone(),
                bytes.clone(),
                encoded.clone(),
                all.clone(),
                proof.clone(),
            );
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    store.add_bytes(&bytes).map(|a| a.hash).unwrap()
                } else {
                    let size = bytes.len() as u64;
                    store
                        .receive(hash, size, &size_proof_ranges(size), &proof[..])
                        .unwrap();
                    store.receive(hash, size, &all, &encoded[..]).unwrap();
                    hash
                }
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), hash);
    }
    assert_eq!(store.read_to_vec(&hash).unwrap(), *bytes);
    assert_eq!(store.list().unwrap().len(), 1);
    let expected = bytes.len() as u64 + tamizdat_store::outboard_size(bytes.len() as u64);
    assert_eq!(store.usage().unwrap().used, expected);
    assert!(tmp_is_empty(dir.path()));
}

#[test]
fn quota_refuses_the_write_and_harms_nothing() {
    let dir = TempDir::new().unwrap();
    let quota = 100_000;
    let store = Store::open(dir.path(), Options::default().with_quota(Some(quota))).unwrap();
    let first = data(60_000, 8);
    let h = store.add_bytes(&first).unwrap().hash;
    let used = store.usage().unwrap().used;
    for attempt in [
        store.add_bytes(&data(60_000, 9)),
        store.add_reader(&data(60_000, 10)[..], Path::new("-")),
    ] {
        match attempt {
            Err(WriteError::StoreFull { quota: q, .. }) => assert_eq!(q, quota),
            other => panic!("expected StoreFull, got {other:?}"),
        }
    }
    // Adding what is already stored needs no room, even at the quota.
    assert!(!store.add_bytes(&first).unwrap().new);
    let msg = store.add_bytes(&data(60_000, 9)).unwrap_err().to_string();
    assert!(msg.contains("100000"), "{msg}");
    assert_eq!(store.read_to_vec(&h).unwrap(), first);
    assert_eq!(store.usage().unwrap().used, used);
    assert!(tmp_is_empty(dir.path()));
    // A partial that would not fit is refused before anything is written.
    let other = TempDir::new().unwrap();
    let src = open(other.path());
    let big = data(200_000, 11);
    let bh = src.add_bytes(&big).unwrap().hash;
    let last = request_ranges(199_999..200_000, 200_000);
    let r = store.receive(bh, 200_000, &last, &encode(&src, &bh, &last)[..]);
    assert!(matches!(r, Err(WriteError::StoreFull { .. })), "{r:?}");
    // Deleting frees room again.
    assert!(store.delete(&h).unwrap());
    assert_eq!(store.usage().unwrap().used, 0);
    store.add_bytes(&data(60_000, 9)).unwrap();
}

#[test]
fn disk_full_mid_write_is_typed_and_keeps_earlier_blobs() {
    let dir = TempDir::new().unwrap();
    let early = data(50_000, 12);
    let h = open(dir.path()).add_bytes(&early).unwrap().hash;
    let mut opts = Options::default();
    opts.fail_writes_after = Some(3 * MIB as u64);
    let store = Store::open(dir.path(), opts).unwrap();
    let big = data(5 * MIB, 13);
    let err = store.add_bytes(&big).unwrap_err();
    assert!(matches!(err, WriteError::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
    let err = store.add_reader(&big[..], Path::new("-")).unwrap_err();
    assert!(matches!(err, WriteError::DiskFull { .. }), "{err:?}");
    assert_eq!(store.read_to_vec(&h).unwrap(), early);
    assert!(store.info(&Hash::of(&big)).unwrap().is_none());
    assert!(tmp_is_empty(dir.path()));
    // Deletes still work.
    assert!(store.delete(&h).unwrap());
    drop(store);
    assert!(open(dir.path()).list().unwrap().is_empty());
}

#[test]
fn corrupt_data_is_never_served_and_scrub_quarantines_it() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let good = data(100_000, 14);
    let bad = data(100_000, 15);
    let gh = store.add_bytes(&good).unwrap().hash;
    let bh = store.add_bytes(&bad).unwrap().hash;
    let path = data_file(dir.path(), &bh);
    let mut on_disk = fs::read(&path).unwrap();
    on_disk[70_000] ^= 0x01;
    fs::write(&path, &on_disk).unwrap();

    let mut out = Vec::new();
    let err = store
        .reader(&bh)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    let corrupt = tamizdat_store::corrupt_of(&err).expect("a CorruptBlob error");
    assert_eq!(corrupt.hash, bh);
    assert_eq!(corrupt.offset, 65536);
    assert!(
        out.len() <= 65536,
        "nothing past the bad group was returned"
    );
    assert_eq!(out, bad[..out.len()]);
    assert!(matches!(
        store.encode_ranges(&bh, &ChunkRanges::all(), &mut Vec::new()),
        Err(ReadError::Corrupt { .. })
    ));

    let report = store.scrub().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].0, bh);
    assert!(store.info(&bh).unwrap().is_none());
    assert!(matches!(store.reader(&bh), Err(ReadError::NotFound(_))));
    assert_eq!(store.quarantined().unwrap()[0].0, bh);
    assert!(dir.path().join("quarantine").join(bh.to_string()).exists());
    assert_eq!(store.read_to_vec(&gh).unwrap(), good);
    // The good copy comes back and leaves quarantine.
    store.add_bytes(&bad).unwrap();
    assert_eq!(store.read_to_vec(&bh).unwrap(), bad);
    assert!(store.quarantined().unwrap().is_empty());
    assert!(store.scrub().unwrap().quarantined.is_empty());
}

#[test]
fn scrub_rebuilds_a_damaged_outboard_and_trims_damaged_partials() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let bytes = data(300_000, 16);
    let h = store.add_bytes(&bytes).unwrap().hash;
    let ob = data_file(dir.path(), &h).with_extension("obao");
    let mut o = fs::read(&ob).unwrap();
    o[10] ^= 0x80;
    fs::write(&ob, &o).unwrap();
    assert!(store.read_to_vec(&h).is_err());
    let report = store.scrub().unwrap();
    assert_eq!(report.outboards_rebuilt, vec![h]);
    assert_eq!(store.read_to_vec(&h).unwrap(), bytes);

    // A partial with one rotten group loses that group only.
    let src = store;
    let pdir = TempDir::new().unwrap();
    let p = open(pdir.path());
    let size = bytes.len() as u64;
    let last = request_ranges(size - 1..size, size);
    p.receive(h, size, &last, &encode(&src, &h, &last)[..])
        .unwrap();
    let first = request_ranges(0..3 * 16384, size);
    p.receive(h, size, &first, &encode(&src, &h, &first)[..])
        .unwrap();
    let before = p.info(&h).unwrap().unwrap().verified_bytes;
    let path = data_file(pdir.path(), &h);
    let mut d = fs::read(&path).unwrap();
    d[16384 + 5] ^= 0x01;
    fs::write(&path, &d).unwrap();
    let report = p.scrub().unwrap();
    assert_eq!(report.partials_trimmed, vec![h]);
    let after = p.info(&h).unwrap().unwrap().verified_bytes;
    assert_eq!(after, before - 16384);
    assert!(read_range(&p, &h, 16384..16385).is_err());
    assert_eq!(read_range(&p, &h, 0..16384).unwrap(), &bytes[..16384]);
}

#[test]
fn pins_keep_blobs_through_gc() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let a = store.add_bytes(b"kept").unwrap().hash;
    let b = store.add_bytes(b"dropped").unwrap().hash;
    store.pin("articles", &a).unwrap();
    // The quick lookup says the same as `info`, without the pin names.
    let full = store.info(&a).unwrap().unwrap();
    let quick = store.info_without_pins(&a).unwrap().unwrap();
    assert_eq!(full.pins, vec!["articles".to_owned()]);
    assert!(quick.pins.is_empty());
    assert_eq!(
        (quick.size, quick.complete, quick.added),
        (full.size, full.complete, full.added)
    );
    assert!(
        store
            .info_without_pins(&Hash::of(b"absent"))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.pin("articles", &Hash::of(b"absent")),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(store.pin("", &a), Err(Error::InvalidPinName(_))));
    assert!(matches!(
        store.pin("a\nb", &a),
        Err(Error::InvalidPinName(_))
    ));
    let dry = store.gc(true).unwrap();
    assert_eq!(dry.removed, vec![(b, 7)]);
    assert!(store.info(&b).unwrap().is_some(), "dry run deletes nothing");
    // Debris of a crashed writer: a data file with no index entry.
    let orphan = Hash::of(b"orphan");
    let shard = dir.path().join("blobs").join(&orphan.to_string()[..2]);
    fs::create_dir_all(&shard).unwrap();
    fs::write(shard.join(orphan.to_string()), b"orphan").unwrap();
    let report = store.gc(false).unwrap();
    assert_eq!(report.removed, vec![(b, 7)]);
    assert_eq!(report.orphans, 1);
    assert!(store.info(&b).unwrap().is_none());
    assert!(!data_file(dir.path(), &b).exists());
    assert_eq!(store.read_to_vec(&a).unwrap(), b"kept");
    assert_eq!(store.info(&a).unwrap().unwrap().pins, vec!["articles"]);
    assert!(matches!(
        store.unpin("nope", None),
        Err(Error::NoSuchPin(_))
    ));
    assert_eq!(store.unpin("articles", None).unwrap(), 1);
    assert_eq!(store.gc(false).unwrap().removed.len(), 1);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.usage().unwrap().used, 0);
}

#[test]
fn opening_reads_no_blob_and_lookups_do_not_scan() {
    let dir = TempDir::new().unwrap();
    let hashes: Vec<Hash> = {
        let store = open(dir.path());
        (0..300u32)
            .map(|i| store.add_bytes(&i.to_le_bytes()).unwrap().hash)
            .collect()
    };
    // Remove every blob file: open and lookups must not notice, since they
    // never touch blob files.
    fs::remove_dir_all(dir.path().join("blobs")).unwrap();
    let store = open(dir.path());
    for h in &hashes {
        assert_eq!(store.info(h).unwrap().unwrap().size, 4);
    }
    // Reading now says what is wrong, naming the blob.
    let err = store.read_to_vec(&hashes[0]).unwrap_err().to_string();
    assert!(err.contains(&hashes[0].to_string()), "{err}");
}

#[test]
fn a_second_process_handle_is_refused_clearly() {
    let dir = TempDir::new().unwrap();
    let _first = open(dir.path());
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    // The holder is named, from the lock file it wrote.
    let me = std::process::id();
    assert!(
        matches!(err, OpenError::InUse { pid: Some(p), .. } if p == me),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("pid {me}")), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lock")).unwrap(),
        format!("{me}\n")
    );
    // Released with the store: the next one opens.
    drop(_first);
    Store::open(dir.path(), Options::default()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hash_text_round_trips(bytes in any::<[u8; 32]>()) {
        let h = Hash::from_bytes(bytes);
        let text = h.to_string();
        prop_assert_eq!(text.len(), 64);
        prop_assert_eq!(text.parse::<Hash>().unwrap(), h);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in ".{0,80}") {
        if let Ok(h) = s.parse::<Hash>() {
            prop_assert_eq!(h.to_string(), s);
        }
    }

    #[test]
    fn any_range_reads_back_exactly(start in 0u64..70_000, len in 0u64..70_000) {
        use std::sync::OnceLock;
        static FIXTURE: OnceLock<(TempDir, Store, Vec<u8>, Hash)> = OnceLock::new();
        let (_dir, store, bytes, hash) = FIXTURE.get_or_init(|| {
            let dir = TempDir::new().unwrap();
            let store = open(dir.path());
            let bytes = data(65_537, 17);
            let hash = store.add_bytes(&bytes).unwrap().hash;
            (dir, store, bytes, hash)
        });
        let s = bytes.len() as u64;
        let r = start..start + len;
        let want = &bytes[r.start.min(s) as usize..r.end.min(s) as usize];
        prop_assert_eq!(read_range(store, hash, r).unwrap(), want);
    }
}

#[test]
fn re_adding_repairs_a_blob_whose_files_vanished() {
    let dir = TempDir::new().unwrap();
    let store = open(dir.path());
    let bytes = data(70_000, 20);
    let h = store.add_bytes(&bytes).unwrap().hash;
    fs::remove_file(data_file(dir.path(), &h)).unwrap();
    assert!(store.read_to_vec(&h).is_err());
    // The good copy is not thrown away as "already stored".
    store.add_bytes(&bytes).unwrap();
    assert_eq!(store.read_to_vec(&h).unwrap(), bytes);
    let used = store.usage().unwrap().used;
    assert_eq!(used, 70_000 + tamizdat_store::outboard_size(70_000));
}

#[test]
fn small_streams_fit_a_small_quota_exactly() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), Options::default().with_quota(Some(1_000))).unwrap();
    store.add_reader(&b"hello"[..], Path::new("-")).unwrap();
    store.add_reader(&[7u8; 995][..], Path::new("-")).unwrap();
    let err = store.add_reader(&b"!"[..], Path::new("-")).unwrap_err();
    match err {
        WriteError::StoreFull { needed, used, .. } => assert_eq!((needed, used), (1, 1000)),
        other => panic!("{other:?}"),
    }
}
