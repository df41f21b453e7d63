//! Volunteers behind NAT, as real processes in network namespaces: one
//! public relay, two home routers that masquerade and let in only what their
//! side started, and a volunteer behind each. Needs root (skipped without).
//!
//! ```text
//!   relay 10.77.0.1 ─┐
//!                    ├─ bridge ("the internet", 10.77.0.0/24)
//!   router1 .11 ─────┤            router2 .12
//!     │ 192.168.1.0/24              │ 192.168.2.0/24
//!   home1 .2                      home2 .2
//! ```

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::BIN;
use tempfile::TempDir;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, removed (with everything in them) on drop.
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn new() -> Self {
        let net = Self {
            prefix: format!("tz{}", std::process::id()),
        };
        let [wan, relay, r1, h1, r2, h2] =
            ["wan", "relay", "r1", "h1", "r2", "h2"].map(|n| net.ns(n));
        let mut s = String::new();
        for ns in [&wan, &relay, &r1, &h1, &r2, &h2] {
            s += &format!("ip netns add {ns}\nip -n {ns} link set lo up\n");
        }
        s += &format!(
            "ip -n {wan} link add br0 type bridge\nip -n {wan} link set br0 up\n\
             ip link add p0 netns {wan} type veth peer name eth0 netns {relay}\n\
             ip -n {wan} link set p0 master br0 up\n\
             ip -n {relay} addr add 10.77.0.1/24 dev eth0\nip -n {relay} link set eth0 up\n"
        );
        for (i, r, h) in [(1, &r1, &h1), (2, &r2, &h2)] {
            s += &format!(
                "ip link add p{i} netns {wan} type veth peer name wan netns {r}\n\
                 ip -n {wan} link set p{i} master br0 up\n\
                 ip -n {r} addr add 10.77.0.1{i}/24 dev wan\nip -n {r} link set wan up\n\
                 ip link add lan netns {r} type veth peer name eth0 netns {h}\n\
                 ip -n {r} addr add 192.168.{i}.1/24 dev lan\nip -n {r} link set lan up\n\
                 ip -n {h} addr add 192.168.{i}.2/24 dev eth0\nip -n {h} link set eth0 up\n\
                 ip -n {h} route add default via 192.168.{i}.1\n\
                 ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1\n\
                 ip netns exec {r} nft -f - <<EOF\n\
                 table ip nat {{ chain post {{ type nat hook postrouting priority 100; oifname \"wan\" masquerade; }}; }}\n\
                 table inet filter {{ chain guard {{ type filter hook forward priority 0; policy drop; ct state established,related accept; iifname \"lan\" accept; }}; }}\n\
                 EOF\n"
            );
        }
        sh(&s);
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["h1", "h2", "r1", "r2", "relay", "wan"] {
            let ns = self.ns(n);
            // Whatever still runs in it first, then the namespace.
            let _ = Command::new("sh")
                .args([
                    "-c",
                    &format!("ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}"),
                ])
                .status();
        }
    }
}

/// A `tamizdat` data dir used inside one namespace.
struct Volunteer {
    ns: String,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Volunteer {
    fn new(tmp: &Path, ns: String, name: &str, config: &str) -> Self {
        let dir = tmp.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.toml"), config).unwrap();
        Self {
            ns,
            log: tmp.join(format!("{name}.log")),
            dir,
            child: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, BIN])
            .env("TAMIZDAT_DIR", &self.dir)
            .env("RUST_LOG", "info,tamizdat_node=debug,libp2p_autonat=debug");
        c
    }

    fn start(&mut self, args: &[&str]) {
        let log = fs::File::create(&self.log).unwrap();
        let child = self
            .cmd()
            .args(["node", "--profile", "server", "--gateway", "off"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn status(&self) -> Option<serde_json::Value> {
        let (ok, out, _) = self.run(&["status", "--json"]);
        ok.then(|| serde_json::from_str(&out).ok()).flatten()
    }

    /// Waits until `status --json` satisfies `f`.
    fn wait_status(&self, what: &str, within: Duration, f: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.status() {
                if f(&s) {
                    return;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{what}: not within {within:?}; last status {last:?}\nlog:\n{}",
            self.tail()
        );
    }

    fn tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Volunteer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const CONFIG: &str = "[node]\nnat_trust_private = true\n";

fn listen(ip: &str) -> Vec<String> {
    vec![
        format!("/ip4/{ip}/tcp/4001"),
        format!("/ip4/{ip}/udp/4001/quic-v1"),
    ]
}

#[test]
fn volunteers_behind_nat_find_out_and_listen_through_the_relay() {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    let net = Net::new();
    let tmp = TempDir::new().unwrap();
    let mut relay = Volunteer::new(
        tmp.path(),
        net.ns("relay"),
        "relay",
        "[node]\nnat_trust_private = true\nrelay_server = true\n",
    );
    let mut args = Vec::new();
    for a in listen("10.77.0.1") {
        args.extend(["--listen".to_owned(), a]);
    }
    relay.start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    relay.wait_status("relay up", Duration::from_secs(30), |s| {
        s["listen"].as_array().is_some_and(|l| l.len() >= 2)
    });
    let id = relay.status().unwrap()["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let boot = format!("/ip4/10.77.0.1/tcp/4001/p2p/{id}");

    let mut homes = Vec::new();
    for (n, ip) in [("h1", "192.168.1.2"), ("h2", "192.168.2.2")] {
        let mut v = Volunteer::new(tmp.path(), net.ns(n), n, CONFIG);
        let mut args = vec!["--bootstrap".to_owned(), boot.clone()];
        for a in listen(ip) {
            args.extend(["--listen".to_owned(), a]);
        }
        v.start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        homes.push(v);
    }
    // AutoNAT: the relay is dialled back, the homes are not. The first probe
    // runs 15 s after start.
    relay.wait_status(
        "the relay finds itself public",
        Duration::from_secs(90),
        |s| s["nat"].as_str().is_some_and(|n| n.starts_with("public")),
    );
    for h in &homes {
        h.wait_status(
            "a home node finds itself private",
            Duration::from_secs(90),
            |s| s["nat"].as_str().is_some_and(|n| n.starts_with("private")),
        );
        h.wait_status(
            "a home node listens through the relay",
            Duration::from_secs(60),
            |s| {
                s["listen"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|a| a.as_str().unwrap().contains("p2p-circuit"))
                })
            },
        );
    }

    drop(homes);
    drop(relay);
    drop(net);
}
