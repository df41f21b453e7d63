//! Shared by the end-to-end tests: a temporary data dir and a way to run
//! the real binary against it.
#![allow(dead_code)]

use std::{
    fs,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tamizdat");

/// A data dir plus a scratch dir, and a way to run the binary against them.
pub struct Env {
    pub tmp: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            tmp: TempDir::new().unwrap(),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    pub fn work(&self) -> PathBuf {
        let p = self.tmp.path().join("work");
        fs::create_dir_all(&p).unwrap();
        p
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.work())
            .env("TAMIZDAT_DIR", self.data())
            .env_remove("RUST_LOG");
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tamizdat {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "tamizdat {args:?} should have failed"
        );
        String::from_utf8(out.stderr).unwrap()
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.work().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
}

pub fn random(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// A `tamizdat node` process; killed if the test ends before stopping it.
pub struct RunningNode {
    pub child: Child,
    /// Its dialable address, ending in `/p2p/PEER_ID`.
    pub addr: String,
    /// The gateway's base URL, `http://127.0.0.1:PORT`.
    pub gateway: String,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `BIN node` on `env`'s data dir, on loopback port 0 with its gateway on
/// a free loopback port, with the server profile (no multicast discovery).
pub fn node_command(bin: &str, env: &Env) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("TAMIZDAT_DIR", env.data())
        .env_remove("RUST_LOG")
        .args([
            "node",
            "--profile",
            "server",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Spawns a node command and waits for its `ready` line.
pub fn start_node(mut cmd: Command) -> RunningNode {
    let mut child = cmd.spawn().unwrap();
    let (mut addr, mut gateway) = (None, None);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listen ") {
            addr = Some(a.to_owned());
        }
        if let Some(g) = line.strip_prefix("gateway ") {
            gateway = Some(g.to_owned());
        }
        if line == "ready" {
            break;
        }
    }
    RunningNode {
        child,
        addr: addr.expect("the node printed its address"),
        gateway: gateway.expect("the node printed its gateway"),
    }
}

/// Stops a node with SIGTERM and checks it exits cleanly.
pub fn sigterm(node: &mut RunningNode) {
    let pid = node.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        node.child.wait().unwrap().success(),
        "clean exit on SIGTERM"
    );
}

/// A plain HTTP/1.1 GET: status code and body.
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until `verify MANIFEST` passes on `env`: the article and all its
/// files are there and genuine (a minute at most).
pub fn wait_verified(env: &Env, manifest: &str) {
    let start = std::time::Instant::now();
    loop {
        let v = env.run(&["verify", manifest]);
        if v.status.success() {
            assert!(String::from_utf8_lossy(&v.stdout).contains("VERIFIED"));
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "never verified: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Whether the tests run as root (network namespaces, file modes that
/// root ignores).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
