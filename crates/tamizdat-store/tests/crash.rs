//! Crash safety: a child process writes blobs (whole, and in verified
//! ranges) and reports each acknowledgement; the parent kills it with
//! SIGKILL at random points, many times. After every kill the store must
//! open, hold every acknowledged byte intact, show nothing partial as
//! complete, and leave no temporary debris.
//!
//! The child is this same test binary, re-run with `TAMIZDAT_CRASH_CHILD` set.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tamizdat_store::{Hash, Options, Store, request_ranges};

const TEST_NAME: &str = "acknowledged_blobs_survive_sigkill";
const RUNS: u64 = 30;

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// One acknowledged write.
#[derive(Debug)]
enum Ack {
    Whole {
        seed: u64,
        size: u64,
    },
    Range {
        seed: u64,
        size: u64,
        start: u64,
        end: u64,
    },
}

fn child(dir: PathBuf, run: u64) -> ! {
    let store = Store::open(&dir, Options::default()).expect("child opens store");
    let src = Store::open(dir.with_extension("src"), Options::default()).expect("source store");
    let mut rng = StdRng::seed_from_u64(run);
    let mut out = std::io::stdout();
    for i in 0.. {
        let seed = run * 1_000_000 + i;
        let size = match rng.random_range(0..10) {
            0 => rng.random_range(0..2048),
            1..=6 => rng.random_range(0..300_000),
            _ => rng.random_range(300_000..1_200_000),
        };
        let bytes = data(size, seed);
        if rng.random_bool(0.5) || size <= 16384 {
            store.add_bytes(&bytes).expect("add");
            writeln!(out, "ACK whole {seed} {size}").unwrap();
        } else {
            // Receive the last group, then a random middle range.
            let hash = src.add_bytes(&bytes).expect("source add").hash;
            let s = size as u64;
            for r in [s - 1..s, {
                let a = rng.random_range(0..s);
                a..rng.random_range(a..=s)
            }] {
                let ranges = request_ranges(r.clone(), s);
                let mut enc = Vec::new();
                src.encode_ranges(&hash, &ranges, &mut enc).unwrap();
                store.receive(hash, s, &ranges, &enc[..]).expect("receive");
                writeln!(out, "ACK range {seed} {size} {} {}", r.start, r.end).unwrap();
            }
        }
        out.flush().unwrap();
    }
    unreachable!()
}

fn check(dir: &Path, acks: &[Ack]) {
    let store = Store::open(dir, Options::default()).expect("store opens after SIGKILL");
    assert!(
        std::fs::read_dir(dir.join("tmp")).unwrap().next().is_none(),
        "temp debris left after open"
    );
    for ack in acks {
        match *ack {
            Ack::Whole { seed, size } => {
                let bytes = data(size as usize, seed);
                let h = Hash::of(&bytes);
                let info = store.info(&h).unwrap().expect("acknowledged blob missing");
                assert!(info.complete);
                assert_eq!(store.read_to_vec(&h).unwrap(), bytes);
            }
            Ack::Range {
                seed,
                size,
                start,
                end,
            } => {
                let bytes = data(size as usize, seed);
                let h = Hash::of(&bytes);
                let mut got = Vec::new();
                store
                    .range_reader(&h, start..end)
                    .expect("acknowledged range missing")
                    .read_to_end(&mut got)
                    .unwrap();
                assert_eq!(got, &bytes[start as usize..end as usize]);
            }
        }
    }
    // Nothing in the index is damaged, and nothing partial claims to be complete.
    for info in store.list().unwrap() {
        if info.complete {
            assert_eq!(Hash::of(&store.read_to_vec(&info.hash).unwrap()), info.hash);
        } else {
            assert!(info.verified_bytes < info.size);
            assert!(store.reader(&info.hash).is_err());
        }
    }
}

#[test]
fn acknowledged_blobs_survive_sigkill() {
    if let Ok(dir) = std::env::var("TAMIZDAT_CRASH_CHILD") {
        let run = std::env::var("TAMIZDAT_CRASH_RUN")
            .unwrap()
            .parse()
            .unwrap();
        child(PathBuf::from(dir), run);
    }
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let mut rng = StdRng::seed_from_u64(42);
    let mut acks = Vec::new();
    for run in 0..RUNS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env("TAMIZDAT_CRASH_CHILD", &dir)
            .env("TAMIZDAT_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let want = rng.random_range(1..6);
        let mut seen = 0;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while seen < want {
            let line = lines
                .next()
                .expect("child ended before acknowledging")
                .unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            match f.as_slice() {
                ["ACK", "whole", ..] => acks.push(Ack::Whole {
                    seed: n(2),
                    size: n(3),
                }),
                ["ACK", "range", ..] => acks.push(Ack::Range {
                    seed: n(2),
                    size: n(3),
                    start: n(4),
                    end: n(5),
                }),
                _ => continue, // libtest's own output
            }
            seen += 1;
        }
        // Let the child get some way into its next write, then kill it.
        if rng.random_bool(0.7) {
            std::thread::sleep(std::time::Duration::from_micros(
                rng.random_range(0..20_000),
            ));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check(&dir, &acks);
    }
    assert!(acks.len() as u64 >= RUNS);
    // Finally, every byte in the store still hashes right.
    let report = Store::open(&dir, Options::default())
        .unwrap()
        .scrub()
        .unwrap();
    assert!(report.quarantined.is_empty(), "{report:?}");
    assert!(report.partials_trimmed.is_empty(), "{report:?}");
    assert!(report.outboards_rebuilt.is_empty(), "{report:?}");
}
