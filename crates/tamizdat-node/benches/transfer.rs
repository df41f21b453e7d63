//! Node-to-node blob transfer on loopback, against a raw TCP copy of the
//! same bytes measured in the same run.
//!
//! The machine this runs on is shared and noisy, so absolute numbers mean
//! little: every figure is paired with a baseline, the two are run
//! interleaved, and their ratio (ours / baseline throughput) is what counts.
//!
//! - Baseline: a sender thread reads the file from disk in 1 MiB buffers and
//!   writes it to a `std::net` socket on 127.0.0.1; the receiver writes what
//!   it reads to a file and fsyncs it (the store fsyncs too).
//! - Ours: two nodes in this process (`tamizdat_node::spawn`, TCP on
//!   127.0.0.1, default [`Config`]); the receiver, with a fresh store each
//!   rep, dials the source (untimed) and runs `Client::fetch(hash, &[source])`
//!   (timed: DHT lookup, size proof, every piece, the final announce).
//!   A fetch that fails is printed, counted, and run again from scratch.
//! - Info rows: the node with `fetch_parallel = 1` (one piece at a time);
//!   and the same `transfer::serve` / `transfer::fetch` pair the node
//!   runs, over plain `std::net` sockets (no noise, yamux, or async bridge),
//!   once as a single request for the whole blob and once in the node's
//!   pieces (one new connection per piece, as `Plan` hands them out). They
//!   split the node's cost into store + verification and libp2p overhead.
//!
//! Peak RSS (`VmHWM`) covers the whole process: both nodes and both stores.
//!
//! Run: `cargo bench -p tamizdat-node --bench transfer`
//! Size: `TAMIZDAT_BENCH_MIB` (default 1024) sets the blob.
//! `TAMIZDAT_BENCH_PARALLEL` overrides the node's `fetch_parallel` (and the
//! plain pieces row's) to try other settings; default: `Config`'s.

use std::{
    error::Error,
    fs::{self, File},
    io::{self, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use tamizdat_node::{Config, Protocol, fetch::Plan, identity, spawn, transfer};
use tamizdat_store::{ChunkRanges, Hash, Options, Store};

#[path = "../../../support/bench_harness.rs"]
mod harness;
use harness::{Row, bytes_rate as rate, machine_facts, table};

const MIB: u64 = 1 << 20;
const REPS: usize = 3;
/// Longest a single node fetch may take before the bench gives up.
const FETCH_TIMEOUT: Duration = Duration::from_secs(900);
/// Times a failed node fetch is run again before the bench gives up.
const MAX_RETRIES: usize = 5;

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(key: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib_of(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// Resets `VmHWM` to the current RSS (Linux >= 4.0); false when refused.
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The baseline: a sender thread streams `src` from disk over loopback TCP
/// in 1 MiB buffers; this thread writes what arrives to `dst` and fsyncs.
/// (Plain loops on purpose: `io::copy` could use sendfile or splice.)
fn tcp_copy(src: &Path, dst: &Path) -> io::Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let src = src.to_owned();
    let sender = thread::spawn(move || -> io::Result<u64> {
        let mut from = File::open(&src)?;
        let mut to = TcpStream::connect(addr)?;
        to.set_nodelay(true)?;
        let (mut buf, mut total) = (vec![0u8; MIB as usize], 0);
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                to.shutdown(Shutdown::Write)?;
                return Ok(total);
            }
            to.write_all(&buf[..n])?;
            total += n as u64;
        }
    });
    let (mut from, _) = listener.accept()?;
    let mut to = File::create(dst)?;
    let (mut buf, mut total) = (vec![0u8; MIB as usize], 0);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    to.sync_all()?;
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    assert_eq!(sent, total, "the receiver got every byte sent");
    Ok(total)
}

/// Serves `store` with `transfer::serve` on plain TCP, one thread per
/// connection, one request per connection, for as long as the process runs.
fn plain_server(store: Arc<Store>) -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let store = store.clone();
            thread::spawn(move || transfer::serve(&store, stream));
        }
    });
    Ok(addr)
}

/// What the node's fetch does for one provider, minus libp2p: the size
/// proof, then `Plan`'s pieces of `piece_bytes`, up to `parallel` at once,
/// each on its own thread over a new connection to `server`, unbuffered,
/// as the node's blocking tasks over its stream bridge are.
fn plain_fetch(
    store: &Store,
    hash: &Hash,
    server: std::net::SocketAddr,
    piece_bytes: u64,
    parallel: usize,
) -> Result<u64, Box<dyn Error>> {
    let connect = || -> io::Result<TcpStream> {
        let s = TcpStream::connect(server)?;
        s.set_nodelay(true)?;
        Ok(s)
    };
    let fail = |(why, _, detail): (_, ChunkRanges, String)| format!("{why:?}: {detail}");
    let size = transfer::fetch(store, hash, None, None, connect()?)
        .map_err(fail)?
        .size;
    let mut plan =
        Plan::new(size, store.verified_ranges(hash)?, piece_bytes).with_per_provider(parallel);
    plan.add_provider(0u8);
    thread::scope(|s| -> Result<(), Box<dyn Error>> {
        // At most `parallel` pieces are in flight, each sending once.
        let (tx, rx) = std::sync::mpsc::sync_channel(parallel.max(1));
        let mut running = 0;
        while !plan.is_complete() {
            for (p, want) in plan.assign() {
                let (tx, stream) = (tx.clone(), connect()?);
                running += 1;
                s.spawn(move || {
                    let r = transfer::fetch(store, hash, Some(size), Some(&want), stream);
                    let _ = tx.send((p, want, r));
                });
            }
            if running == 0 {
                return Err("the plan is stuck".into());
            }
            let (p, asked, r) = rx.recv()?;
            running -= 1;
            plan.done(&p, &asked, &r.map_err(fail)?.got);
        }
        Ok(())
    })?;
    let info = store.info(hash)?.ok_or("nothing stored")?;
    assert!(
        info.complete && info.size == size,
        "complete after the plan"
    );
    Ok(size)
}

fn main() -> Result<(), Box<dyn Error>> {
    let var = std::env::var("TAMIZDAT_BENCH_MIB").ok();
    let mib = var.and_then(|s| s.parse().ok()).unwrap_or(1024u64).max(4);
    let n = mib * MIB;
    machine_facts();
    // Under the target dir: the same filesystem for the stores and the baseline.
    let tmp = tempfile::Builder::new()
        .prefix("transfer-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    println!("dir {}, blob {mib} MiB, reps {REPS}", tmp.path().display());

    // The source file: incompressible bytes, written once and made durable.
    let src = tmp.path().join("source");
    let mut rng = SmallRng::seed_from_u64(0x7a31_2d48);
    let mut f = File::create(&src)?;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..mib {
        rng.fill_bytes(&mut buf);
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    drop((f, buf));
    let source_store = Arc::new(Store::open(
        tmp.path().join("source-store"),
        Options::default(),
    )?);
    let t = Instant::now();
    let hash = source_store.add_file(&src)?.hash;
    println!(
        "source store: add_file {} ms, hash {hash}",
        t.elapsed().as_millis()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listen = || vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let config = |key| Config::new(key, listen());
    let mut defaults = config(identity::Keypair::generate_ed25519());
    let var = std::env::var("TAMIZDAT_BENCH_PARALLEL").ok();
    if let Some(p) = var.and_then(|s| s.parse().ok()) {
        defaults.fetch_parallel = p;
    }
    let (piece_bytes, parallel) = (defaults.piece_bytes, defaults.fetch_parallel);
    println!(
        "node config: piece_bytes {} KiB, fetch_parallel {}, max_streams_per_peer {}, \
         tokio workers {}",
        defaults.piece_bytes / 1024,
        defaults.fetch_parallel,
        defaults.max_streams_per_peer,
        runtime.metrics().num_workers(),
    );
    let (source, source_addr) = runtime.block_on(async {
        let client = spawn(defaults, source_store.clone())?;
        let addr = client.wait_listening(1).await?[0].clone();
        Ok::<_, Box<dyn Error>>((client.clone(), addr.with(Protocol::P2p(client.peer_id()))))
    })?;
    println!("source node {source_addr}");
    let server = plain_server(source_store.clone())?;

    // An untimed copy first: the first big write after creating the source is
    // reliably slow (writeback, allocator), and would otherwise count as a rep.
    let copy = tmp.path().join("copy");
    assert_eq!(tcp_copy(&src, &copy)?, n);
    fs::remove_file(&copy)?;

    let mut node = Row::new(format!("node fetch {mib} MiB / tcp+fsync"), n, ">= 0.50");
    let mut serial = Row::new("node fetch_parallel 1 / tcp+fsync", n, "info");
    let mut whole = Row::new("serve/fetch 1 req / tcp+fsync", n, "info");
    let name = format!(
        "serve/fetch {} MiB x{parallel} / tcp+fsync",
        piece_bytes / MIB
    );
    let mut pieces = Row::new(name, n, "info");
    let peak_before = status_kib("VmHWM");
    let mut peak_all = peak_before;
    let mut node_peaks = Vec::new();
    let mut lookups = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for i in 0..REPS * 2 {
        // Order copy, ours, ours, copy, copy, ours: neither always goes first.
        let base_first = (i + i / 2) % 2 == 0;
        let rows = [&mut node, &mut serial, &mut whole, &mut pieces];
        for (k, row) in rows.into_iter().enumerate() {
            if base_first {
                assert_eq!(row.base.time(|| tcp_copy(&src, &copy))?, n);
                fs::remove_file(&copy)?;
                continue;
            }
            // A node fetch that fails is reported and run again from scratch
            // (fresh store), so that every figure is a whole transfer.
            for attempt in 0..=MAX_RETRIES {
                let dir = tmp.path().join(format!("recv-{i}-{k}-{attempt}"));
                let store = Arc::new(Store::open(&dir, Options::default())?);
                let done = match k {
                    0 | 1 => {
                        let mut cfg = config(identity::Keypair::generate_ed25519());
                        cfg.fetch_parallel = if k == 1 { 1 } else { parallel };
                        let client = runtime.block_on(async {
                            let client = spawn(cfg, store.clone())?;
                            client.dial(source_addr.clone()).await?;
                            Ok::<_, Box<dyn Error>>(client)
                        })?;
                        peak_all = peak_all.max(status_kib("VmHWM"));
                        let rss = status_kib("VmRSS");
                        let reset = reset_peak();
                        let hint = [source.peer_id()];
                        let t = Instant::now();
                        let fetch = client.fetch(hash, &hint);
                        let got = runtime
                            .block_on(async { tokio::time::timeout(FETCH_TIMEOUT, fetch).await })?;
                        let took = t.elapsed();
                        let peak = status_kib("VmHWM");
                        peak_all = peak_all.max(peak);
                        let done = match got {
                            Ok(got) => {
                                assert_eq!((got.size, got.new_bytes), (n, n));
                                assert_eq!(got.providers, vec![source.peer_id()]);
                                row.ours.0.push(took);
                                if k == 0 {
                                    node_peaks.push((rss, peak, reset));
                                }
                                // How long the DHT lookup inside every fetch takes alone.
                                let t = Instant::now();
                                runtime.block_on(client.providers(hash))?;
                                lookups.push(t.elapsed().as_millis() as u64);
                                true
                            }
                            Err(e) => {
                                let ms = took.as_millis();
                                let msg =
                                    format!("{} rep {i}: failed after {ms} ms: {e}", row.name);
                                println!("  {msg}");
                                failures.push(msg);
                                false
                            }
                        };
                        runtime.block_on(client.shutdown());
                        done
                    }
                    2 => {
                        let whole_blob = || -> Result<u64, Box<dyn Error>> {
                            let connect = || -> io::Result<TcpStream> {
                                let s = TcpStream::connect(server)?;
                                s.set_nodelay(true)?;
                                Ok(s)
                            };
                            let fail = |e: (_, _, String)| e.2;
                            let size = transfer::fetch(&store, &hash, None, None, connect()?)
                                .map_err(fail)?
                                .size;
                            let all = ChunkRanges::all();
                            transfer::fetch(&store, &hash, Some(size), Some(&all), connect()?)
                                .map_err(fail)?;
                            Ok(size)
                        };
                        assert_eq!(row.ours.time(whole_blob)?, n);
                        true
                    }
                    _ => {
                        let by_piece = || plain_fetch(&store, &hash, server, piece_bytes, parallel);
                        assert_eq!(row.ours.time(by_piece)?, n);
                        true
                    }
                };
                if done {
                    let info = store.info(&hash)?.ok_or("nothing received")?;
                    assert!(info.complete && info.size == n, "{}: complete", row.name);
                }
                drop(store);
                fs::remove_dir_all(&dir)?;
                if done {
                    break;
                }
                if attempt == MAX_RETRIES {
                    return Err(format!("{}: {} failed attempts", row.name, attempt + 1).into());
                }
            }
        }
    }
    let peak_all = peak_all.max(status_kib("VmHWM"));
    runtime.block_on(source.shutdown());
    let rows = [node, serial, whole, pieces];
    for row in &rows {
        row.log();
    }

    table(&rows, rate);
    println!();
    let attempts = rows[..2].iter().map(|r| r.ours.0.len()).sum::<usize>() + failures.len();
    println!(
        "node fetches that failed and were run again: {} of {attempts}",
        failures.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    println!("info: DHT providers lookup alone after each node fetch, ms {lookups:?}");
    println!(
        "info: peak RSS (VmHWM, whole process) before the node transfers {}, after {}",
        mib_of(peak_before),
        mib_of(peak_all)
    );
    for (i, (rss, peak, reset)) in node_peaks.iter().enumerate() {
        let what = if *reset {
            "peak during the fetch"
        } else {
            "VmHWM after (could not reset)"
        };
        println!(
            "info: node fetch rep {i}: VmRSS before {}, {what} {}",
            mib_of(*rss),
            mib_of(*peak)
        );
    }
    Ok(())
}
