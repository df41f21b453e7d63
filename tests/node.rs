//! The real binary as a network: `tamizdat node` processes on 127.0.0.1,
//! port 0, and `tamizdat get` fetching through them.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use common::{BIN, Env, random};

struct RunningNode {
    child: Child,
    addr: String,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tamizdat node` on a loopback port 0 and waits for its `ready` line.
fn start(env: &Env, bootstrap: Option<&str>) -> RunningNode {
    let mut cmd = Command::new(BIN);
    cmd.env("TAMIZDAT_DIR", env.data())
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut addr = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listen ") {
            addr = Some(a.to_owned());
        }
        if line == "ready" {
            break;
        }
    }
    RunningNode {
        child,
        addr: addr.expect("the node printed its address"),
    }
}

#[test]
fn three_nodes_and_a_getter_move_a_blob_byte_for_byte() {
    let envs: Vec<Env> = (0..3).map(|_| Env::new()).collect();
    let bytes = random(2_500_000, 9);
    envs[0].write("article.bin", &bytes);
    let hash = envs[0].ok(&["add", "article.bin"])[..64].to_owned();
    let first = start(&envs[0], None);
    let second = start(&envs[1], Some(&first.addr));
    let third = start(&envs[2], Some(&second.addr));
    // status finds the running node.
    let status: serde_json::Value =
        serde_json::from_str(&envs[2].ok(&["status", "--json"])).unwrap();
    assert_eq!(status["running"], true);
    assert!(status["listen"][0].as_str().unwrap().contains("/p2p/"));
    // A reader that knows only the third node gets the blob from the first.
    let reader = Env::new();
    let out = reader.work().join("fetched.bin");
    let got = reader.run(&[
        "get",
        &hash,
        "--peer",
        &third.addr,
        "-o",
        out.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(
        reader.run(&["cat", &hash]).stdout,
        bytes,
        "kept in the store, verified"
    );
    // A blob nobody has: a clear, prompt failure.
    let absent = blake3::hash(b"nobody").to_hex().to_string();
    let err = reader.fails(&["get", &absent, "--peer", &third.addr, "--timeout", "30"]);
    assert!(err.contains(&absent), "{err}");
    // A clean stop (SIGTERM) remembers the peers for the next start.
    let mut third = third;
    let pid = third.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        third.child.wait().unwrap().success(),
        "clean exit on SIGTERM"
    );
    let peers = std::fs::read_to_string(envs[2].data().join("peers.json")).unwrap();
    let second_id = second.addr.rsplit('/').next().unwrap();
    assert!(peers.contains(second_id), "{peers}");
    let status = envs[2].run(&["status"]);
    assert_eq!(
        status.status.code(),
        Some(3),
        "not running after it stopped"
    );
    drop((first, second));
}
