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
    time::{Duration, Instant},
};

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use tamizdat_store::{ChunkRanges, Options, Store, outboard_size, size_proof_ranges};

const MIB: u64 = 1 << 20;
const REPS: usize = 3;
const RANGE_MIB: u64 = 64;

/// Repeated timings of one side of a figure.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push(t.elapsed());
        out
    }
    fn best(&self) -> Duration {
        *self.0.iter().min().unwrap()
    }
    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v[v.len() / 2]
    }
    fn millis(&self) -> Vec<u64> {
        self.0.iter().map(|d| d.as_millis() as u64).collect()
    }
}

/// One figure: our timings, the baseline's, and the target for their ratio.
#[derive(Default)]
struct Row {
    name: String,
    bytes: u64,
    ours: Samples,
    base: Samples,
    target: &'static str,
}

impl Row {
    fn new(name: String, bytes: u64, target: &'static str) -> Self {
        let mut row = Row::default();
        (row.name, row.bytes, row.target) = (name, bytes, target);
        row
    }
    /// Our throughput over the baseline's (> 1: we are faster).
    fn ratio(&self, pick: fn(&Samples) -> Duration) -> f64 {
        pick(&self.base).as_secs_f64() / pick(&self.ours).as_secs_f64()
    }
    /// Every repetition's raw time, for judging the noise.
    fn log(&self) {
        let (o, b) = (self.ours.millis(), self.base.millis());
        println!("  {}: ours ms {o:?}, baseline ms {b:?}", self.name);
    }
}

/// Bytes per second as MiB/s or GiB/s.
fn rate(bytes: u64, d: Duration) -> String {
    let mib = bytes as f64 / MIB as f64 / d.as_secs_f64();
    if mib >= 1024.0 {
        format!("{:.2} GiB/s", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB/s")
    }
}

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

/// Cheap facts about the machine, so runs can be compared.
fn machine_facts() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        let line = cpuinfo.lines().find(|l| l.starts_with(key));
        line.and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim()
    };
    let flags: Vec<_> = field("flags").split(' ').collect();
    let simd = ["avx512f", "avx2", "sse4_1"];
    let simd = simd.into_iter().find(|f| flags.contains(f));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem: Vec<_> = meminfo.split_whitespace().take(3).collect();
    let (cpu, simd) = (field("model name"), simd.unwrap_or("none"));
    println!(
        "machine: nproc {nproc}, cpu \"{cpu}\", simd {simd}, {}",
        mem.join(" ")
    );
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

    // The table: throughput of the best repetition of each side, the ratio
    // of bests, and the ratio of medians as a check on the noise.
    let head = ["figure", "ours", "baseline", "ratio", "median"];
    let line = |c: [&str; 5], t: &str| {
        println!(
            "{:<36} {:>11} {:>11} {:>6} {:>6}  {t}",
            c[0], c[1], c[2], c[3], c[4]
        );
    };
    println!();
    line(head, "target");
    for r in &rows {
        let (o, b) = (rate(r.bytes, r.ours.best()), rate(r.bytes, r.base.best()));
        let (best, med) = (r.ratio(Samples::best), r.ratio(Samples::median));
        let (best, med) = (format!("{best:.2}"), format!("{med:.2}"));
        line([&r.name, &o, &b, &best, &med], r.target);
    }
    if let Some(s) = b3sum {
        let name = format!("b3sum --num-threads 1 {mib} MiB file");
        line([&name, "-", &rate(n, s.best()), "-", "-"], "info");
    }
    Ok(())
}
