//! A node started while a command holds the store waits for it, naming it.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{BIN, Env, node_command};

/// Every line the child writes on stderr, as it comes (drained by a
/// thread, so the child never blocks on a full pipe).
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(4096);
    let err = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads lines until `count` of them match `want`, within `limit`; every
/// line read is returned.
fn wait_lines(
    rx: &mpsc::Receiver<String>,
    limit: Duration,
    count: usize,
    want: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen: Vec<String> = Vec::new();
    while seen.iter().filter(|l| want(l.as_str())).count() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the line never came within {limit:?}; saw {seen:?}"),
        }
    }
    seen
}

/// Asks `check` again until it holds, within `limit`.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_waits_for_a_command_holding_the_store_and_names_it() {
    let env = Env::new();
    // `add -` holds the store for as long as its standard input is open.
    let mut holder = env
        .cmd()
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = holder.id();
    let lock = env.data().join("store").join("lock");
    wait_until(Duration::from_secs(30), "the holder wrote its PID", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t == format!("{pid}\n"))
    });

    // Past its bound, the node gives up, naming the holder.
    let out = node_command(BIN, &env)
        .args(["--store-wait", "1"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches(&format!("held by process {pid}")).count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("--store-wait"), "{err}");

    // Within it, the node starts once the holder is done.
    let mut cmd = node_command(BIN, &env);
    cmd.args(["--store-wait", "60"]).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let log = stderr_lines(&mut child);
    wait_lines(&log, Duration::from_secs(30), 1, |l| {
        l.contains(&format!("held by process {pid}")) && l.contains("waiting up to 60 s")
    });
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success(), "the holder finished");
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "ready");
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the node started once the store was free");
}
