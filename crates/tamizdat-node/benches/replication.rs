//! Replication of articles across 50 nodes on loopback, against a direct
//! fetch of the same article between two nodes measured in the same run.
//!
//! - The mesh: 50 nodes in this process (`tamizdat_node::spawn`, TCP on
//!   127.0.0.1 port 0, default [`Config`], a store each). One is the
//!   outlet's node (it follows its own key, as it does after a first
//!   publish); 49 followers follow the outlet and each dials 3 or 4 random
//!   earlier followers (seeded); the outlet's node dials only 2 followers.
//!   The mesh then settles for 3 s (untimed).
//! - Each article: one 1 MiB image of incompressible bytes and a short
//!   `index.md`, stored on the outlet's node (untimed), then `publish` is
//!   called. Every follower is polled every 5 ms from the bench's thread:
//!   *manifest* is the time from the `publish` call until its trust state has
//!   the article's seq as the feed head; *held* until the manifest and both
//!   files are complete (every byte verified) in its store. Articles go one
//!   at a time; the next is published 0.5 s after the last follower holds one.
//! - Upload: the sum over all 50 nodes of `bytes_served` while one article
//!   spread, divided by the number of followers and by the article's size
//!   (manifest + files): 1.0 when each follower downloads it exactly once.
//!   The max row is the most one node sent for one article, in articles.
//! - Baseline: a pair of nodes outside the mesh. A fresh receiver (new node,
//!   new store) dials the source (untimed), then fetches the manifest blob
//!   and then both files at once with `Client::fetch` (timed), one rep per
//!   article, interleaved with the articles, after one untimed rep.
//!
//! Peak RSS (`VmHWM`) covers the whole process (the 50 nodes, the baseline
//! pair) and is divided by 50.
//!
//! CPU: the process's CPU time (user + system) from the `publish` call
//! until the last follower holds the article, per article.
//!
//! Idle: after the settle, the process's CPU time (user + system) is read
//! over `TAMIZDAT_BENCH_IDLE_SECS` (default 5) with nothing published.
//!
//! Run: `cargo bench -p tamizdat-node --bench replication`
//! Articles: `TAMIZDAT_BENCH_ARTICLES` (default 5). Logs: `RUST_LOG`.

use std::{
    error::Error,
    fs,
    path::Path,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use rand::{Rng, RngCore, SeedableRng, rngs::SmallRng, seq::index};
use tamizdat_node::{Client, Config, Multiaddr, Protocol, identity, spawn};
use tamizdat_sign::{Entry, Manifest, PublicKey, SecretKey, Signed};
use tamizdat_store::{Hash, Options, Store};

#[path = "../../../support/bench_harness.rs"]
mod harness;
use harness::{Samples, machine_facts};

const MIB: usize = 1 << 20;
const NODES: usize = 50;
/// Followers the outlet's node dials.
const PUBLISHER_DIALS: usize = 2;
const SETTLE: Duration = Duration::from_secs(3);
/// Pause between articles, so that one has stopped moving before the next.
const BETWEEN: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(5);
/// Longest one article may take to reach every follower.
const ARTICLE_TIMEOUT: Duration = Duration::from_secs(30);
const FEED: &str = "main";

type Res<T> = Result<T, Box<dyn Error>>;

struct Node {
    client: Client,
    store: Arc<Store>,
    addr: Multiaddr,
}

async fn start(dir: &Path) -> Res<Node> {
    let store = Arc::new(Store::open(dir, Options::default())?);
    let key = identity::Keypair::generate_ed25519();
    let config = Config::new(key, vec!["/ip4/127.0.0.1/tcp/0".parse()?]);
    let client = spawn(config, store.clone())?;
    let addr = client.wait_listening(1).await?[0].clone();
    let addr = addr.with(Protocol::P2p(client.peer_id()));
    Ok(Node {
        client,
        store,
        addr,
    })
}

/// One article: its signed manifest, its blobs (manifest first) and their bytes.
struct Article {
    signed: Signed<Manifest>,
    blobs: Vec<Hash>,
    files: Vec<Vec<u8>>,
    size: u64,
}

fn article(key: &SecretKey, seq: u64, prev: Option<[u8; 32]>, rng: &mut SmallRng) -> Res<Article> {
    let text = format!("# Статья {seq}\n\nТекст статьи {seq}.\n").into_bytes();
    let mut image = vec![0u8; MIB];
    rng.fill_bytes(&mut image);
    let mut entries = Vec::new();
    for (path, bytes, media) in [
        ("index.md", &text, "text/markdown"),
        ("photo.jpg", &image, "image/jpeg"),
    ] {
        entries.push(Entry {
            path: path.into(),
            hash: *Hash::of(bytes).as_bytes(),
            size: bytes.len() as u64,
            media_type: media.into(),
        });
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let m = Manifest {
        publisher: key.public(),
        signer: key.public(),
        delegation: None,
        feed: FEED.into(),
        seq,
        prev,
        created,
        title: format!("Статья {seq}"),
        lang: "ru".into(),
        summary: None,
        supersedes: None,
        entries,
    };
    let signed = Signed::sign(m, key)?;
    let files = vec![signed.bytes().to_vec(), text, image];
    let blobs = files.iter().map(|f| Hash::of(f)).collect();
    let size = files.iter().map(|f| f.len() as u64).sum();
    Ok(Article {
        signed,
        blobs,
        files,
        size,
    })
}

/// Stores an article's files (not its manifest: `publish` records that).
fn store_files(store: &Store, a: &Article) -> Res<()> {
    for (f, h) in a.files.iter().zip(&a.blobs).skip(1) {
        assert_eq!(store.add_bytes(f)?.hash, *h, "the store hashes as Hash::of");
    }
    Ok(())
}

fn complete(store: &Store, h: &Hash) -> bool {
    store.info(h).ok().flatten().is_some_and(|i| i.complete)
}

fn has_head(client: &Client, outlet: &PublicKey, seq: u64) -> bool {
    client
        .trust()
        .head(outlet, FEED)
        .is_some_and(|h| h.seq >= seq)
}

/// The baseline: a fresh receiver dials `source` (untimed), then fetches the
/// manifest and then both files at once (timed).
fn direct_fetch(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    source: &Node,
    a: &Article,
    samples: &mut Samples,
) -> Res<()> {
    let receiver = runtime.block_on(async {
        let n = start(dir).await?;
        n.client.dial(source.addr.clone()).await?;
        Res::Ok(n)
    })?;
    let hint = [source.client.peer_id()];
    let c = &receiver.client;
    let got = samples.time(|| {
        runtime.block_on(async {
            c.fetch(a.blobs[0], &hint).await?;
            let (x, y) = tokio::join!(c.fetch(a.blobs[1], &hint), c.fetch(a.blobs[2], &hint));
            Res::Ok(x?.size + y?.size)
        })
    });
    runtime.block_on(receiver.client.shutdown());
    assert_eq!(got?, a.size - a.files[0].len() as u64);
    assert!(a.blobs.iter().all(|h| complete(&receiver.store, h)));
    Ok(())
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(key: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's user + system CPU time so far, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

/// How long the idle mesh is watched: `TAMIZDAT_BENCH_IDLE_SECS` (default 5).
fn idle_window() -> Duration {
    let v = std::env::var("TAMIZDAT_BENCH_IDLE_SECS").ok();
    Duration::from_secs(v.and_then(|s| s.parse().ok()).unwrap_or(5))
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Res<()> {
    // RUST_LOG=tamizdat_node=debug shows what the nodes do, on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let var = std::env::var("TAMIZDAT_BENCH_ARTICLES").ok();
    let articles: u64 = var.and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    machine_facts();
    let tmp = tempfile::Builder::new()
        .prefix("replication-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let defaults = Config::new(identity::Keypair::generate_ed25519(), Vec::new());
    println!(
        "dir {}, nodes {NODES}, articles {articles}, node config: piece_bytes {} KiB, \
         fetch_parallel {}, tokio workers {}",
        tmp.path().display(),
        defaults.piece_bytes / 1024,
        defaults.fetch_parallel,
        runtime.metrics().num_workers(),
    );

    // The mesh (untimed).
    let outlet = SecretKey::generate()?;
    let mut rng = SmallRng::seed_from_u64(0x7a31_5e9d);
    let t = Instant::now();
    let (nodes, base_source) = runtime.block_on(async {
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..NODES {
            let n = start(&tmp.path().join(format!("node-{i}"))).await?;
            n.client
                .follow(outlet.public(), Some("outlet".into()))
                .await?;
            // Node 0 is the outlet's; followers are 1.. and dial earlier followers.
            let earlier = i.saturating_sub(1);
            let want = rng.random_range(3..=4).min(earlier);
            for j in index::sample(&mut rng, earlier, want) {
                n.client.dial(nodes[j + 1].addr.clone()).await?;
            }
            nodes.push(n);
        }
        for j in index::sample(&mut rng, NODES - 1, PUBLISHER_DIALS) {
            nodes[0].client.dial(nodes[j + 1].addr.clone()).await?;
        }
        let base_source = start(&tmp.path().join("base-source")).await?;
        tokio::time::sleep(SETTLE).await;
        Res::Ok((nodes, base_source))
    })?;
    let mut conns = Vec::new();
    for n in &nodes {
        conns.push(runtime.block_on(n.client.connected())?.len());
    }
    let outlet_conns = conns[0];
    conns.sort();
    println!(
        "mesh up in {} ms (incl. {} s settle); connections per node: min {}, median {}, \
         max {}, outlet's node {outlet_conns}",
        t.elapsed().as_millis(),
        SETTLE.as_secs(),
        conns[0],
        conns[NODES / 2],
        conns[NODES - 1],
    );

    // The idle mesh: CPU the process spends with no article moving.
    let idle = idle_window();
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    thread::sleep(idle);
    let idle_cpu = (cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64();
    println!(
        "idle mesh: {:.2} CPU-seconds per second over {} s ({:.1} % of a core per node)",
        idle_cpu,
        idle.as_secs(),
        idle_cpu * 100.0 / NODES as f64
    );

    let (publisher, followers) = nodes.split_first().ok_or("no nodes")?;
    let mut manifest_at: Vec<Duration> = Vec::new();
    let mut held_at: Vec<Duration> = Vec::new();
    let mut base = Samples::default();
    let mut missing: Vec<String> = Vec::new();
    let (mut upload_ratios, mut max_node, mut outlet_sent) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_per_article: Vec<f64> = Vec::new();
    let mut prev = None;
    for seq in 1..=articles {
        let a = article(&outlet, seq, prev, &mut rng)?;
        prev = Some(*a.blobs[0].as_bytes());
        store_files(&publisher.store, &a)?;
        store_files(&base_source.store, &a)?;
        base_source.store.add_bytes(&a.files[0])?;
        let base_dir = tmp.path().join(format!("base-recv-{seq}"));
        if seq == 1 {
            // An untimed rep first: the first fetch of the run is reliably slow.
            let warm = tmp.path().join("base-recv-warm");
            direct_fetch(&runtime, &warm, &base_source, &a, &mut Samples::default())?;
            fs::remove_dir_all(&warm)?;
        }
        // Neither always goes first.
        let base_first = seq % 2 == 0;
        if base_first {
            direct_fetch(&runtime, &base_dir, &base_source, &a, &mut base)?;
        }

        let before: Vec<u64> = nodes.iter().map(|n| n.client.bytes_served()).collect();
        let (mut head, mut held) = (vec![None; followers.len()], vec![None; followers.len()]);
        let t0 = Instant::now();
        let cpu_before = cpu_seconds();
        let publish = {
            let (c, bytes) = (publisher.client.clone(), a.signed.bytes().to_vec());
            runtime.spawn(async move { c.publish(&bytes).await })
        };
        while held.iter().any(Option::is_none) && t0.elapsed() < ARTICLE_TIMEOUT {
            for (i, f) in followers.iter().enumerate() {
                if held[i].is_some() {
                    continue;
                }
                if head[i].is_none() && has_head(&f.client, &outlet.public(), seq) {
                    head[i] = Some(t0.elapsed());
                }
                // The image first: it is the last to arrive.
                if head[i].is_some() && a.blobs.iter().rev().all(|h| complete(&f.store, h)) {
                    held[i] = Some(t0.elapsed());
                }
            }
            thread::sleep(POLL);
        }
        let cpu = cpu_seconds() - cpu_before;
        cpu_per_article.push(cpu);
        runtime.block_on(publish)??;
        thread::sleep(BETWEEN);
        let sent: Vec<u64> = nodes
            .iter()
            .zip(&before)
            .map(|(n, b)| n.client.bytes_served() - b)
            .collect();

        if !base_first {
            direct_fetch(&runtime, &base_dir, &base_source, &a, &mut base)?;
        }
        fs::remove_dir_all(&base_dir)?;

        let total: u64 = sent.iter().sum();
        let ratio = total as f64 / followers.len() as f64 / a.size as f64;
        let top = *sent.iter().max().unwrap_or(&0) as f64 / a.size as f64;
        let from_outlet = sent[0] as f64 / a.size as f64;
        upload_ratios.push(ratio);
        max_node.push(top);
        outlet_sent.push(from_outlet);
        let mut hs: Vec<_> = head.iter().flatten().copied().collect();
        let mut ds: Vec<_> = held.iter().flatten().copied().collect();
        hs.sort();
        ds.sort();
        for (i, (h, d)) in head.iter().zip(&held).enumerate() {
            if d.is_none() {
                let what = if h.is_some() { "files" } else { "manifest" };
                missing.push(format!(
                    "article {seq}: follower {} lacks the {what}",
                    i + 1
                ));
            }
        }
        println!(
            "  article {seq} ({} B): manifest p50 {} max {}; held p50 {} max {}; \
             uploaded/follower {ratio:.2}x, max node {top:.2}x, outlet's node {from_outlet:.2}x; \
             direct fetch {}; CPU {cpu:.1} s",
            a.size,
            ms(pct(&hs, 0.5)),
            ms(hs.last().copied().unwrap_or_default()),
            ms(pct(&ds, 0.5)),
            ms(ds.last().copied().unwrap_or_default()),
            ms(base.0.last().copied().unwrap_or_default()),
        );
        manifest_at.extend(hs);
        held_at.extend(ds);
    }
    let peak = status_kib("VmHWM");
    for n in nodes.iter().chain([&base_source]) {
        runtime.block_on(n.client.shutdown());
    }
    runtime.shutdown_timeout(Duration::from_secs(10));

    manifest_at.sort();
    held_at.sort();
    let expected = followers.len() * articles as usize;
    let line = |c: [&str; 5], t: &str| {
        println!(
            "{:<42} {:>9} {:>9} {:>9} {:>7}  {t}",
            c[0], c[1], c[2], c[3], c[4]
        );
    };
    let times = |name: &str, v: &[Duration], t: &str| {
        let n = format!("{}/{expected}", v.len());
        let (p50, p99, max) = (pct(v, 0.5), pct(v, 0.99), v.last().copied());
        line(
            [name, &ms(p50), &ms(p99), &ms(max.unwrap_or_default()), &n],
            t,
        );
    };
    println!();
    line(["figure", "p50", "p99", "max", "n"], "target");
    times(
        "manifest arrival (publish -> head)",
        &manifest_at,
        "p99 < 500 ms",
    );
    times("article held verified (publish -> files)", &held_at, "info");
    let mut b = base.0.clone();
    b.sort();
    let n = format!("{}", b.len());
    let (b50, b99) = (pct(&b, 0.5), pct(&b, 0.99));
    let bmax = b.last().copied().unwrap_or_default();
    line(
        [
            "direct fetch of the article (baseline)",
            &ms(b50),
            &ms(b99),
            &ms(bmax),
            &n,
        ],
        "info",
    );
    let r = |x: Duration| format!("{:.2}x", x.as_secs_f64() / b50.as_secs_f64());
    let (h50, h99) = (pct(&held_at, 0.5), pct(&held_at, 0.99));
    let hmax = held_at.last().copied().unwrap_or_default();
    line(
        ["held / direct fetch p50", &r(h50), &r(h99), &r(hmax), ""],
        "info",
    );
    let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let x = |f: f64| format!("{f:.2}x");
    line(
        [
            "CPU-seconds while an article spreads",
            &format!("{:.1} s", mean(&cpu_per_article)),
            "",
            &format!("{:.1} s", worst(&cpu_per_article)),
            "",
        ],
        "info (all 50 nodes; mean, max over articles)",
    );
    line(
        [
            "uploaded per follower per article",
            &x(mean(&upload_ratios)),
            "",
            &x(worst(&upload_ratios)),
            "",
        ],
        "<= 1.30x (mean, max over articles)",
    );
    line(
        [
            "most one node uploaded for one article",
            &x(mean(&max_node)),
            "",
            &x(worst(&max_node)),
            "",
        ],
        "info (mean, max over articles)",
    );
    line(
        [
            "outlet's node uploaded per article",
            &x(mean(&outlet_sent)),
            "",
            &x(worst(&outlet_sent)),
            "",
        ],
        "info (mean, max over articles)",
    );
    let per_node = peak.map_or("?".into(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0 / NODES as f64)
    });
    line(
        ["peak RSS per node (VmHWM / 50)", &per_node, "", "", ""],
        "info",
    );
    println!();
    println!(
        "followers that did not hold an article within {} s: {}",
        ARTICLE_TIMEOUT.as_secs(),
        missing.len()
    );
    for m in &missing {
        println!("  {m}");
    }
    Ok(())
}
