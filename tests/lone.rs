//! A node connected to nobody says so: `status`, the gateway's pages,
//! `/metrics`, the log, and `get`. And a node started while a command
//! holds the store waits for it, naming it.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{BIN, Env, http_get, node_command, start_node};

/// A hash nobody has.
fn absent() -> String {
    blake3::hash(b"nobody has this").to_hex().to_string()
}

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

fn status_json(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["status", "--json"])).unwrap()
}

/// The value of an unlabelled sample in a `/metrics` answer.
fn sample(metrics: &str, name: &str) -> Option<String> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
}

#[test]
fn a_lone_node_says_so_everywhere_until_a_peer_joins() {
    let env = Env::new();
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("config.toml"),
        "[node]\nalone_warning_secs = 1\n[store]\nquota = \"1 GiB\"\n",
    )
    .unwrap();
    let mut cmd = node_command(BIN, &env);
    cmd.stderr(Stdio::piped());
    let mut lone = start_node(cmd);
    let log = stderr_lines(&mut lone.child);

    let text = env.ok(&["status"]);
    assert!(
        text.contains(
            "state      alone: connected to nobody: add a card (`tamizdat follow CARD`) \
             or a bootstrap address"
        ),
        "{text}"
    );
    // Sizes for a person, not byte counts.
    let stored = text.lines().find(|l| l.starts_with("stored")).unwrap_or("");
    assert!(stored.ends_with(" of 1.0 GiB (0 %)"), "{text}");
    let status = status_json(&env);
    assert_eq!(status["state"], "alone", "{status}");
    assert_eq!(status["connected_peers"], 0, "{status}");

    let (code, page) = http_get(&lone.gateway, "/");
    assert_eq!(code, 200);
    assert!(page.contains("connected to nobody"), "{page}");
    let (_, metrics) = http_get(&lone.gateway, "/metrics");
    assert_eq!(
        sample(&metrics, "tamizdat_connected_peers").as_deref(),
        Some("0"),
        "{metrics}"
    );

    // Through the lone node: nobody was asked, and it says so at once.
    let hash = absent();
    let err = env.fails(&["get", &hash, "--timeout", "30"]);
    assert!(err.contains("reached no peer"), "{err}");
    assert!(err.contains("--peer"), "{err}");
    assert!(!err.contains("no provider"), "{err}");

    // The log says it in plain words, again and again (every second
    // here), and libp2p's own "No known peers" warning is gone.
    let seen = wait_lines(&log, Duration::from_secs(30), 2, |l| {
        l.contains("WARN") && l.contains("connected to nobody")
    });
    assert!(
        seen.iter()
            .any(|l| l.contains("knows no bootstrap address")),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("Failed to trigger bootstrap")),
        "{seen:?}"
    );

    // A second node joins through it: the state changes everywhere.
    let other = Env::new();
    let mut cmd = node_command(BIN, &other);
    cmd.args(["--bootstrap", &lone.addr]);
    let _joined = start_node(cmd);
    wait_until(Duration::from_secs(30), "the peer is counted", || {
        status_json(&env)["connected_peers"] == 1
    });
    assert_eq!(status_json(&env)["state"], "connected");
    let text = env.ok(&["status"]);
    assert!(text.contains("state      connected\n"), "{text}");
    assert!(!text.contains("nobody"), "{text}");
    let (_, page) = http_get(&lone.gateway, "/");
    assert!(!page.contains("connected to nobody"), "{page}");
    // A scrape is reused for 5 s.
    wait_until(Duration::from_secs(30), "the gauge says 1", || {
        let (_, metrics) = http_get(&lone.gateway, "/metrics");
        sample(&metrics, "tamizdat_connected_peers").as_deref() == Some("1")
    });
    // Now a peer was asked, and had nothing: another failure.
    let err = env.fails(&["get", &hash, "--timeout", "30"]);
    assert!(err.contains(&hash), "{err}");
    assert!(!err.contains("reached no peer"), "{err}");
}

#[test]
fn get_with_no_node_and_no_peer_says_it_reached_no_peer() {
    let env = Env::new();
    let hash = absent();
    let err = env.fails(&["get", &hash, "--timeout", "30"]);
    assert!(err.contains("reached no peer"), "{err}");
    assert!(err.contains("add a card"), "{err}");
    assert!(!err.contains("no provider"), "{err}");
    // A peer named that nobody answers for: reached no peer either.
    let err = env.fails(&[
        "get",
        &hash,
        "--peer",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "--timeout",
        "30",
    ]);
    assert!(err.contains("reached no peer"), "{err}");
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

/// Waits until the node of `env` is connected to someone.
fn wait_connected(env: &Env) {
    let start = Instant::now();
    loop {
        let out = env.run(&["status", "--json"]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if s["connected_peers"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never connected: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn remembered_addresses_are_scored_and_the_one_that_works_goes_first() {
    let a = Env::new();
    let mut na = start_node(node_command(BIN, &a));
    // The peers of an earlier run, as older versions wrote them: a dead
    // address first (a port nobody listens on, another node's id), then
    // a's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = tamizdat_node::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let dead = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{gone}");
    let b = Env::new();
    std::fs::create_dir_all(b.data()).unwrap();
    std::fs::write(
        b.data().join("peers.json"),
        serde_json::to_vec(&[&dead, &na.addr]).unwrap(),
    )
    .unwrap();
    let mut nb = start_node(node_command(BIN, &b));
    wait_connected(&b);
    common::sigterm(&mut nb);
    let saved: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(b.data().join("peers.json")).unwrap()).unwrap();
    let entry = |addr: &str| {
        saved
            .iter()
            .find(|e| e["addr"] == addr)
            .unwrap_or_else(|| panic!("{addr} kept: {saved:?}"))
            .clone()
    };
    assert_eq!(
        saved[0]["addr"],
        na.addr.as_str(),
        "the one that worked first"
    );
    assert!(entry(&na.addr)["successes"].as_u64().unwrap() >= 1);
    assert!(entry(&na.addr)["last_ok"].as_u64().unwrap() > 0);
    assert!(entry(&dead)["failures"].as_u64().unwrap() >= 1, "{saved:?}");
    assert_eq!(entry(&dead)["successes"], 0);
    // The scored book is read back at the next start: it joins again.
    let mut nb = start_node(node_command(BIN, &b));
    wait_connected(&b);
    common::sigterm(&mut nb);
    common::sigterm(&mut na);
}
