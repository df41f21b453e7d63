//! Transfers between real stores over socket pairs: the protocol's logic
//! without libp2p, including hostile providers.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    thread,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_node::{
    fetch::{Failure, Plan, Standing},
    transfer::{Served, fetch, serve},
    wire::{Request, Status, write_header},
};
use tamizdat_store::{ChunkRanges, Hash, Options, Store, request_ranges};
use tempfile::TempDir;

fn store() -> (TempDir, Store) {
    let dir = TempDir::new().unwrap();
    let s = Store::open(dir.path(), Options::default()).unwrap();
    (dir, s)
}

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Runs `serve` on one end of a socket pair in a thread; returns the other end.
fn honest(store: &'static Store) -> UnixStream {
    let (a, b) = UnixStream::pair().unwrap();
    thread::spawn(move || {
        let _ = serve(store, a);
    });
    b
}

fn leak(s: Store) -> &'static Store {
    Box::leak(Box::new(s))
}

/// A provider that answers with `header_size` and then `body`, whatever is asked.
fn scripted(header_size: u64, body: Vec<u8>) -> UnixStream {
    let (mut a, b) = UnixStream::pair().unwrap();
    thread::spawn(move || {
        let _ = Request::read(&mut a);
        let _ = write_header(&mut a, Status::Ok, Some(header_size));
        let _ = a.write_all(&body);
    });
    b
}

#[test]
fn a_blob_moves_in_pieces_from_several_providers() {
    let bytes = data(3 * 1024 * 1024 + 777, 1);
    let hash = Hash::of(&bytes);
    let providers: Vec<&'static Store> = (0..3)
        .map(|_| {
            let (dir, s) = store();
            std::mem::forget(dir);
            s.add_bytes(&bytes).unwrap();
            leak(s)
        })
        .collect();
    let (_d, dst) = store();
    let proof = fetch(&dst, &hash, None, None, honest(providers[0])).unwrap();
    assert_eq!(proof.size, bytes.len() as u64);
    let mut plan = Plan::new(proof.size, dst.verified_ranges(&hash).unwrap(), 1 << 20);
    for p in 0..3 {
        plan.add_provider(p);
    }
    while !plan.is_complete() {
        let work = plan.assign();
        assert!(!work.is_empty());
        for (p, ranges) in work {
            let piece = fetch(
                &dst,
                &hash,
                Some(proof.size),
                Some(&ranges),
                honest(providers[p]),
            )
            .unwrap();
            plan.done(&p, &ranges, &piece.got);
        }
    }
    assert_eq!(dst.read_to_vec(&hash).unwrap(), bytes);
}

#[test]
fn missing_blobs_and_missing_ranges_are_refused_plainly() {
    let (_d, empty) = store();
    let empty = leak(empty);
    let (_d2, dst) = store();
    let hash = Hash::of(b"nobody has this");
    let err = fetch(&dst, &hash, None, None, honest(empty)).unwrap_err();
    assert_eq!(err.0, Failure::Missing);
    // A server answering a malformed request says so.
    let (mut a, b) = UnixStream::pair().unwrap();
    thread::spawn(move || serve(empty, b));
    a.write_all(&[0xff, 0xff]).unwrap();
    let mut status = [0u8; 1];
    a.read_exact(&mut status).unwrap();
    assert_eq!(status[0], Status::BadRequest as u8);
    // Serving returns what it did.
    let (a, b) = UnixStream::pair().unwrap();
    let h = thread::spawn(move || serve(empty, b));
    let _ = fetch(&dst, &hash, None, None, a);
    assert_eq!(
        h.join().unwrap().unwrap(),
        Served::Refused(Status::NotFound)
    );
}

#[test]
fn a_corrupting_provider_is_caught_and_an_honest_one_finishes() {
    let bytes = data(2 * 1024 * 1024, 2);
    let hash = Hash::of(&bytes);
    let (_d, src) = store();
    src.add_bytes(&bytes).unwrap();
    let src = leak(src);
    let (_d2, dst) = store();
    let size = bytes.len() as u64;
    fetch(&dst, &hash, None, None, honest(src)).unwrap();
    let mut plan = Plan::new(size, dst.verified_ranges(&hash).unwrap(), 1 << 20);
    plan.add_provider("liar");
    plan.add_provider("honest");
    let work = plan.assign();
    let (who, ranges) = &work[0];
    assert_eq!(*who, "liar");
    // The liar sends a genuine encoding with one byte flipped in its third group.
    let mut enc = Vec::new();
    src.encode_ranges(&hash, ranges, &mut enc).unwrap();
    let n = enc.len();
    enc[n / 2] ^= 1;
    let err = fetch(&dst, &hash, Some(size), Some(ranges), scripted(size, enc)).unwrap_err();
    assert_eq!(err.0, Failure::Corrupt);
    assert!(!err.1.is_empty(), "groups before the bad byte are kept");
    plan.failed(&"liar", ranges, &err.1, err.0);
    assert_eq!(
        plan.standing(&"liar"),
        Some(&Standing::Bad(Failure::Corrupt))
    );
    plan.done(&"honest", &work[1].1, &ChunkRanges::empty());
    while !plan.is_complete() {
        for (p, r) in plan.assign() {
            assert_eq!(p, "honest");
            let piece = fetch(&dst, &hash, Some(size), Some(&r), honest(src)).unwrap();
            plan.done(&p, &r, &piece.got);
        }
    }
    assert_eq!(dst.read_to_vec(&hash).unwrap(), bytes);
}

#[test]
fn absurd_or_wrong_sizes_cost_nothing() {
    let bytes = data(100_000, 3);
    let hash = Hash::of(&bytes);
    let (_d, dst) = store();
    // A size proof claiming a petabyte: refused before anything is allocated
    // or written. Over our own limit, so the provider is not asked again for
    // it, but not called a liar either: the claim is not disproven.
    let err = fetch(&dst, &hash, None, None, scripted(1 << 50, vec![0; 4096])).unwrap_err();
    assert_eq!(err.0, Failure::Missing, "{err:?}");
    assert!(err.2.contains("limit"), "{err:?}");
    assert!(dst.info(&hash).unwrap().is_none());
    assert_eq!(dst.usage().unwrap().used, 0);
    // Once the size is proven, a provider claiming another is caught at once.
    let (_d2, src) = store();
    src.add_bytes(&bytes).unwrap();
    let src = leak(src);
    fetch(&dst, &hash, None, None, honest(src)).unwrap();
    let r = request_ranges(0..16384, 100_000);
    let err = fetch(
        &dst,
        &hash,
        Some(100_000),
        Some(&r),
        scripted(99_999, vec![]),
    )
    .unwrap_err();
    assert_eq!(err.0, Failure::WrongSize);
}

#[test]
fn an_interrupted_provider_costs_only_its_unsent_groups() {
    let bytes = data(1024 * 1024, 4);
    let hash = Hash::of(&bytes);
    let size = bytes.len() as u64;
    let (_d, src) = store();
    src.add_bytes(&bytes).unwrap();
    let src = leak(src);
    let (_d2, dst) = store();
    fetch(&dst, &hash, None, None, honest(src)).unwrap();
    let all = request_ranges(0..size, size);
    let mut enc = Vec::new();
    src.encode_ranges(&hash, &all, &mut enc).unwrap();
    enc.truncate(enc.len() / 2); // the provider dies halfway
    let err = fetch(&dst, &hash, Some(size), Some(&all), scripted(size, enc)).unwrap_err();
    assert_eq!(err.0, Failure::Timeout, "{err:?}");
    let kept = dst.info(&hash).unwrap().unwrap().verified_bytes;
    assert!(kept > size / 3, "kept {kept}");
    // Another provider supplies only what is missing.
    let mut plan = Plan::new(size, dst.verified_ranges(&hash).unwrap(), size);
    plan.add_provider(1);
    let work = plan.assign();
    assert_eq!(work.len(), 1);
    assert!(
        !work[0].1.contains(&tamizdat_store::ChunkNum(0)),
        "verified groups are not asked again"
    );
    let piece = fetch(&dst, &hash, Some(size), Some(&work[0].1), honest(src)).unwrap();
    plan.done(&1, &work[0].1, &piece.got);
    assert!(plan.is_complete());
    assert_eq!(dst.read_to_vec(&hash).unwrap(), bytes);
}

/// A provider that gates a blob (it serves it to a few peers at a time)
/// still proves its size to anyone, but answers "busy" to a request for its
/// ranges while the gate is shut, and serves them once it opens.
#[test]
fn a_gated_blob_proves_its_size_but_its_ranges_wait_for_the_gate() {
    let bytes = data(600_000, 9);
    let hash = Hash::of(&bytes);
    let (_d, source) = store();
    source.add_bytes(&bytes).unwrap();
    let source = leak(source);
    let gated = |open: bool| {
        let (a, b) = UnixStream::pair().unwrap();
        thread::spawn(move || {
            let gate = move |_: &Hash, _: u64, _: u64| -> Option<tamizdat_node::transfer::Ticket> {
                open.then(|| Box::new(()) as tamizdat_node::transfer::Ticket)
            };
            let _ = tamizdat_node::transfer::serve_gated(source, a, &gate);
        });
        b
    };
    let (_d2, here) = store();
    let piece =
        fetch(&here, &hash, None, None, gated(false)).expect("a size proof passes the gate");
    assert_eq!(piece.size, bytes.len() as u64);
    let all = ChunkRanges::all();
    let err = fetch(&here, &hash, Some(piece.size), Some(&all), gated(false)).unwrap_err();
    assert_eq!(err.0, Failure::Busy, "{}", err.2);
    fetch(&here, &hash, Some(piece.size), Some(&all), gated(true)).unwrap();
    assert_eq!(here.read_to_vec(&hash).unwrap(), bytes);
}
