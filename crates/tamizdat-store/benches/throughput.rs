//! Store throughput, each figure against a baseline measured in the same run.
//!
//! The machine this runs on is shared and noisy, so absolute numbers mean
//! little: every figure is paired with a physical baseline, the two are run
//! interleaved, and their ratio (ours / baseline throughput) is what counts.
//!
//! Run: `cargo bench -p tamizdat-store --bench throughput`
//! Size: `TAMIZDAT_BENCH_MIB` (default 1024) sets the file for the add test;
//! the hash test uses a quarter of it in memory; the range test uses 64 MiB.

use std::{
    error::Error,
    fs::{self, File},
    io::{self, Read, Write},
    path::Path,
    process::{Command, Stdio},
};

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use tamizdat_store::{ChunkRanges, Options, Store, outboard_size, size_proof_ranges};

#[path = "../../../support/bench_harness.rs"]
mod harness;
use harness::{Row, Samples, bytes_rate as rate, machine_facts, table};

const MIB: u64 = 1 << 20;
const REPS: usize = 3;
const RANGE_MIB: u64 = 64;

/// What `cp SRC DST && sync DST` does: stream in 1 MiB buffers, then fsync.
/// (A plain loop on purpose: `io::copy` would use `copy_file_range`.)
fn copy_and_sync(src: &Path, dst: &Path) -> io::Result<u64> {
    let (mut from, mut to) = (File::open(src)?, File::create(dst)?);
    let (mut buf, mut total) = (vec![0u8; MIB as usize], 0);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            to.sync_all()?;
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let var = std::env::var("TAMIZDAT_BENCH_MIB").ok();
    let mib = var.and_then(|s| s.parse().ok()).unwrap_or(1024u64).max(4);
    let n = mib * MIB;
    machine_facts();
    // Under the target dir: the same filesystem for the store and the baseline.
    let tmp = tempfile::Builder::new()
        .prefix("throughput-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    println!("dir {}, add {mib} MiB, reps {REPS}", tmp.path().display());

    // The source file: incompressible bytes, written once and made durable.
    let src = tmp.path().join("source");
    let mut rng = SmallRng::seed_from_u64(0x7a31_2d47);
    let mut f = File::create(&src)?;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..mib {
        rng.fill_bytes(&mut buf);
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    drop(f);
    let mut rows = Vec::new();

    // 1. add_file into a fresh store (opened untimed) vs cp + fsync of the file.
    let mut add = Row::new(format!("add_file {mib} MiB / cp+fsync"), n, ">= 0.80");
    // An untimed copy first: the first big write after creating the source is
    // reliably slow (writeback, allocator), and would otherwise count as a rep.
    let copy = tmp.path().join("copy");
    copy_and_sync(&src, &copy)?;
    fs::remove_file(&copy)?;
    for i in 0..REPS * 2 {
        // Order copy, add, add, copy, copy, add: neither always goes first.
        if (i + i / 2) % 2 == 0 {
            assert_eq!(add.base.time(|| copy_and_sync(&src, &copy))?, n);
            fs::remove_file(&copy)?;
        } else {
            let dir = tmp.path().join(format!("add-{i}"));
            let store = Store::open(&dir, Options::default())?;
            assert_eq!(add.ours.time(|| store.add_file(&src))?.size, n);
            drop(store);
            fs::remove_dir_all(&dir)?;
        }
    }
    add.log();
    rows.push(add);

    // 2. Our outboard (the tree the store builds: 16 KiB chunk groups) vs
    //    single-threaded blake3, which is what `b3sum --num-threads 1` does.
    let len = n / 4;
    let mut buf = vec![0u8; len as usize];
    File::open(&src)?.read_exact(&mut buf)?;
    let tree = bao_tree::BaoTree::new(len, bao_tree::BlockSize::from_chunk_log(4));
    let name = format!("outboard {} MiB / blake3 1 thread", len / MIB);
    let mut hash = Row::new(name, len, ">= 0.90");
    for _ in 0..REPS {
        let blake3 = || blake3::Hasher::new().update(&buf).finalize();
        let plain = hash.base.time(blake3);
        let outboard = || bao_tree::io::sync::outboard_post_order(&buf[..], tree, io::sink());
        assert_eq!(hash.ours.time(outboard)?, plain);
    }
    hash.log();
    rows.push(hash);
    drop(buf);

    // Optional: `b3sum --num-threads 1` on the whole file (process start and
    // mmap included); skipped silently when it is not on PATH.
    let b3sum = (0..REPS).try_fold(Samples::default(), |mut s, _| {
        let mut cmd = Command::new("b3sum");
        cmd.args(["--num-threads", "1"]).arg(&src);
        let status = s.time(|| cmd.stdout(Stdio::null()).status());
        status.ok().filter(|st| st.success()).map(|_| s)
    });

    // 3. Ranges with proof, verified receive (into a fresh store, opened
    //    untimed) and verified read of a 64 MiB blob, each against a plain
    //    in-memory blake3 hash of the same bytes timed right beside it.
    let size = RANGE_MIB * MIB;
    let mut blob = vec![0u8; size as usize];
    rng.fill_bytes(&mut blob);
    let store = Store::open(tmp.path().join("range-src"), Options::default())?;
    let h = store.add_bytes(&blob)?.hash;
    assert_eq!(h, blake3::hash(&blob).into());
    let all = ChunkRanges::all();
    let names = ["encode_ranges", "receive", "reader -> sink"];
    let [mut enc, mut recv, mut read] =
        names.map(|s| Row::new(format!("{s} {RANGE_MIB} MiB / blake3"), size, "info"));
    let mut encoded = Vec::with_capacity((size + outboard_size(size) + 8) as usize);
    for i in 0..REPS {
        enc.base.time(|| blake3::hash(&blob));
        encoded.clear();
        let encode = || store.encode_ranges(&h, &all, &mut encoded);
        enc.ours.time(encode)?;

        recv.base.time(|| blake3::hash(&blob));
        let dir = tmp.path().join(format!("recv-{i}"));
        let store2 = Store::open(&dir, Options::default())?;
        // The size proof (last group) first, untimed: a few KiB.
        let proof = size_proof_ranges(size);
        let mut proof_bytes = Vec::new();
        store.encode_ranges(&h, &proof, &mut proof_bytes)?;
        store2.receive(h, size, &proof, &proof_bytes[..])?;
        let receive = || store2.receive(h, size, &all, &encoded[..]);
        let got = recv.ours.time(receive)?;
        assert!(got.complete && got.new_bytes == size - 16384);
        drop(store2);
        fs::remove_dir_all(&dir)?;

        read.base.time(|| blake3::hash(&blob));
        let copy = || -> Result<u64, Box<dyn Error>> {
            Ok(io::copy(&mut store.reader(&h)?, &mut io::sink())?)
        };
        assert_eq!(read.ours.time(copy)?, size);
    }
    for row in [enc, recv, read] {
        row.log();
        rows.push(row);
    }

    table(&rows, rate);
    if let Some(s) = b3sum {
        let name = format!("b3sum --num-threads 1 {mib} MiB file");
        println!("{name:<38} {:>11} {:>11}", "-", rate(n, s.best()));
    }
    Ok(())
}
