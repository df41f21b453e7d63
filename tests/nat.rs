//! Nodes as real processes in network namespaces. Needs root (skipped
//! without).
//!
//! Behind NAT: one public relay, two home routers that masquerade and let
//! in only what their side started (dropping the rest, as home routers do,
//! rather than answering it), and a volunteer behind each. The routers map
//! either as most do (one outside port per inside port, whoever is
//! talked to: a hole can be punched) or a new random port per connection
//! (it cannot).
//!
//! ```text
//!   relay 10.77.0.1 ─┐
//!                    ├─ bridge ("the internet", 10.77.0.0/24)
//!   router1 .11 ─────┤            router2 .12
//!     │ 192.168.1.0/24              │ 192.168.2.0/24
//!   home1 .2                      home2 .2
//! ```
//!
//! On one network: hosts `a1`, `a2`, ... at 10.78.0.1, .2, ... on a bridge,
//! each with its own loopback, and a censor's firewall where a test adds one.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{BIN, is_root};
use tempfile::TempDir;

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the home routers of [`Net::new`] map their side's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nat {
    /// Each inside port keeps its number outside, whoever it talks to
    /// (endpoint-independent mapping): the address the relay saw is the
    /// one another peer can punch through to.
    Cone,
    /// A random outside port for each connection: what the relay saw is
    /// no use to anyone else, and hole punching cannot work.
    Symmetric,
}

/// The namespaces, removed (with everything in them) on drop.
struct Net {
    prefix: String,
    names: Vec<&'static str>,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Hosts `a1`..`aN` at 10.78.0.1..N on one bridge (in namespace `lan`).
    /// `tag` keeps tests running at once apart.
    fn lan(tag: &str, hosts: usize) -> Self {
        const HOSTS: [&str; 4] = ["a1", "a2", "a3", "a4"];
        let mut names = vec!["lan"];
        names.extend(&HOSTS[..hosts]);
        let net = Self {
            prefix: format!("tz{}{tag}", std::process::id()),
            names,
        };
        let lan = net.ns("lan");
        let mut s = format!(
            "ip netns add {lan}
ip -n {lan} link add br0 type bridge
ip -n {lan} link set br0 up
"
        );
        for i in 1..=hosts {
            let h = net.ns(HOSTS[i - 1]);
            s += &format!(
                "ip netns add {h}
ip -n {h} link set lo up
                 ip link add p{i} netns {lan} type veth peer name eth0 netns {h}
                 ip -n {lan} link set p{i} master br0 up
                 ip -n {h} addr add 10.78.0.{i}/24 dev eth0
ip -n {h} link set eth0 up
"
            );
        }
        sh(&s);
        net
    }

    /// The relay, the routers and the homes; `tag` keeps tests running at
    /// once apart.
    fn new(tag: &str, nat: Nat) -> Self {
        let net = Self {
            prefix: format!("tz{}{tag}", std::process::id()),
            names: vec!["h1", "h2", "r1", "r2", "relay", "wan"],
        };
        let masquerade = match nat {
            Nat::Cone => "masquerade",
            Nat::Symmetric => "masquerade random",
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
                 table ip nat {{ chain post {{ type nat hook postrouting priority 100; oifname \"wan\" {masquerade}; }}; }}\n\
                 table inet filter {{ chain guard {{ type filter hook forward priority 0; policy drop; ct state established,related accept; iifname \"lan\" accept; }}; \
                 chain input {{ type filter hook input priority 0; iifname \"wan\" ct state new drop; }}; }}\n\
                 EOF\n"
            );
        }
        sh(&s);
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
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
            .env(
                "RUST_LOG",
                "info,tamizdat_node=debug,libp2p_autonat=debug,libp2p_dcutr=debug",
            );
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

    /// Starts the node and reads its standard output up to `ready`; the
    /// addresses it printed (`listen ADDR` lines).
    fn start_until_ready(&mut self, args: &[&str]) -> Vec<String> {
        use std::io::{BufRead, BufReader};
        let log = fs::File::create(&self.log).unwrap();
        let mut child = self
            .cmd()
            .args(["node", "--profile", "server", "--gateway", "off"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut listen = Vec::new();
        let mut ready = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("listen ") {
                listen.push(a.to_owned());
            }
            if line == "ready" {
                ready = true;
                break;
            }
        }
        self.child = Some(child);
        assert!(ready, "the node never printed ready:\n{}", self.tail());
        listen
    }

    /// Stops the node with SIGTERM, as systemd does, and waits for it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sh(&format!("kill -TERM {}", c.id()));
            let status = c.wait().unwrap();
            assert!(status.success(), "clean exit: {status}\n{}", self.tail());
        }
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "tamizdat {args:?}: {err}");
        out
    }

    /// Waits until `verify MANIFEST` passes: the article and its files are
    /// here and genuine.
    fn wait_verified(&self, manifest: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (ok, out, _) = self.run(&["verify", manifest]);
            if ok && out.contains("VERIFIED") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not replicated within {within:?}: {out}\nlog:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
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

/// `--listen` on TCP and QUIC, port 4001 of `ip`: arguments for `node`.
fn listen(ip: &str) -> Vec<String> {
    [
        format!("/ip4/{ip}/tcp/4001"),
        format!("/ip4/{ip}/udp/4001/quic-v1"),
    ]
    .into_iter()
    .flat_map(|a| ["--listen".to_owned(), a])
    .collect()
}

/// A relay and two volunteers behind NAT, each having found out (AutoNAT)
/// that it is private and listening through the relay. Dropped in order:
/// the nodes, then the namespaces, then their files.
struct BehindNat {
    homes: Vec<Volunteer>,
    relay: Volunteer,
    /// Kept until the nodes are gone.
    _net: Net,
    tmp: TempDir,
}

/// Starts [`BehindNat`]: `files` are added to home 1's store first.
fn behind_nat(tag: &str, nat: Nat, files: &[&Path]) -> BehindNat {
    let net = Net::new(tag, nat);
    let tmp = TempDir::new().unwrap();
    let mut relay = Volunteer::new(
        tmp.path(),
        net.ns("relay"),
        "relay",
        "[node]\nnat_trust_private = true\nrelay_server = true\n",
    );
    let args = listen("10.77.0.1");
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
        if n == "h1" {
            for f in files {
                v.ok(&["add", f.to_str().unwrap()]);
            }
        }
        let mut args = listen(ip);
        args.extend(["--bootstrap".to_owned(), boot.clone()]);
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
    BehindNat {
        homes,
        relay,
        _net: net,
        tmp,
    }
}

#[test]
fn volunteers_behind_nat_find_out_and_listen_through_the_relay() {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    drop(behind_nat("v", Nat::Cone, &[]));
}

/// The size of the blob carried from one home to the other.
const BIG: usize = 50 << 20;

/// `BIG` random bytes in `dir`: the file and its BLAKE3 hash.
fn big_file(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("big.bin");
    sh(&format!(
        "head -c {BIG} /dev/urandom > {}",
        path.to_str().unwrap()
    ));
    let hash = blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string();
    (path, hash)
}

/// Home 2 gets the blob home 1 holds, as a user would (`tamizdat get HASH
/// -o FILE`, the node finding it in the DHT), and checks what came.
fn carry(set: &BehindNat, hash: &str) -> Duration {
    // Home 1 announced the blob at start, with addresses nobody outside
    // can dial, and again once it listened through the relay: the DHT
    // (the relay) has that record before a user could know the hash.
    let h1 = set.homes[0].status().unwrap()["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_log(
        &set.relay,
        "home 1's record with its relayed address",
        Duration::from_secs(30),
        |l| l.contains("provider record") && l.contains(&h1) && l.contains("p2p-circuit"),
    );
    let out = set.tmp.path().join("got.bin");
    let started = Instant::now();
    let (ok, _, err) =
        set.homes[1].run(&["get", hash, "-o", out.to_str().unwrap(), "--timeout", "150"]);
    let took = started.elapsed();
    assert!(
        ok,
        "get: {err}\nh2's log:\n{}\nh1's log:\n{}\nrelay's log:\n{}",
        set.homes[1].tail(),
        set.homes[0].tail(),
        set.relay.tail()
    );
    let got = blake3::hash(&fs::read(&out).unwrap()).to_hex().to_string();
    assert_eq!(got, hash, "the file fetched is the one added");
    eprintln!("{BIG} bytes from home 1 to home 2 in {took:?}");
    took
}

fn log(v: &Volunteer) -> String {
    fs::read_to_string(&v.log).unwrap_or_default()
}

/// Waits until a line of `v`'s log satisfies `f`.
fn wait_log(v: &Volunteer, what: &str, within: Duration, f: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if log(v).lines().any(&f) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: not within {within:?}\nlog:\n{}", v.tail());
}

#[test]
fn behind_routers_that_allow_it_the_homes_punch_a_hole_and_the_blob_goes_direct() {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    let src = TempDir::new().unwrap();
    let (file, hash) = big_file(src.path());
    let set = behind_nat("c", Nat::Cone, &[&file]);
    carry(&set, &hash);
    let punched = set
        .homes
        .iter()
        .any(|h| log(h).contains("hole punched; closing the relayed connection"));
    assert!(
        punched,
        "no hole punched\nh2:\n{}\nh1:\n{}",
        set.homes[1].tail(),
        set.homes[0].tail()
    );
    drop(set);
}

#[test]
fn behind_routers_that_map_each_connection_anew_the_blob_comes_through_the_relay_circuit_after_circuit()
 {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    let src = TempDir::new().unwrap();
    let (file, hash) = big_file(src.path());
    let set = behind_nat("s", Nat::Symmetric, &[&file]);
    carry(&set, &hash);
    // Each circuit closes after 1 MiB, cutting the pieces in flight: the
    // fetch went on circuit after circuit.
    let cuts = log(&set.homes[1])
        .lines()
        .filter(|l| l.contains("fetch failed"))
        .count();
    eprintln!("{cuts} pieces cut off by the relay's circuit cap");
    assert!(
        cuts >= (BIG >> 20) / 2,
        "only {cuts} cuts: not through the relay?"
    );
    for h in &set.homes {
        assert!(
            !log(h).contains("hole punched"),
            "no hole can be punched here:\n{}",
            h.tail()
        );
    }
    drop(set);
}

/// A publisher's node at `a1` (TCP and QUIC on 10.78.0.1:4001) holding
/// one article; returns it, the article's hash and the node's peer id.
fn newsroom(net: &Net, tmp: &Path) -> (Volunteer, String, String) {
    let mut desk = Volunteer::new(tmp, net.ns("a1"), "desk", "");
    desk.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    let story = tmp.join("story.md");
    fs::write(&story, "# Новости\n\nСегодня.\n").unwrap();
    let manifest = desk
        .ok(&[
            "publish",
            story.to_str().unwrap(),
            "--key",
            "outlet",
            "--no-passphrase",
        ])
        .trim()
        .to_owned();
    let args = listen("10.78.0.1");
    desk.start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    desk.wait_status("the newsroom's node up", Duration::from_secs(30), |s| {
        s["listen"].as_array().is_some_and(|l| l.len() >= 2)
    });
    let id = desk.status().unwrap()["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (desk, manifest, id)
}

#[test]
fn with_tcp_blocked_the_cards_quic_address_still_brings_the_articles() {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    let net = Net::lan("q", 2);
    let tmp = TempDir::new().unwrap();
    let (desk, manifest, id) = newsroom(&net, tmp.path());
    let tcp = format!("/ip4/10.78.0.1/tcp/4001/p2p/{id}");
    let quic = format!("/ip4/10.78.0.1/udp/4001/quic-v1/p2p/{id}");
    let card = desk
        .ok(&[
            "card",
            "new",
            "--root",
            "outlet",
            "--name",
            "The Outlet",
            "--addr",
            &tcp,
            "--addr",
            &quic,
            "--no-passphrase",
        ])
        .trim()
        .to_owned();

    // The censor drops every TCP packet, on both hosts.
    for h in ["a1", "a2"] {
        sh(&format!(
            "ip netns exec {} nft -f - <<EOF\n\
             table inet censor {{ chain input {{ type filter hook input priority 0; meta l4proto tcp drop; }}; }}\n\
             EOF",
            net.ns(h)
        ));
    }
    let probe = Command::new("ip")
        .args(["netns", "exec", &net.ns("a2"), "timeout", "3", "bash", "-c"])
        .arg("exec 3<>/dev/tcp/10.78.0.1/4001")
        .status()
        .unwrap();
    assert!(!probe.success(), "TCP to the newsroom is blocked");

    // The volunteer's config knows only the TCP address; the card knows both.
    let mut v = Volunteer::new(
        tmp.path(),
        net.ns("a2"),
        "volunteer",
        &format!("[node]\nbootstrap = [\"{tcp}\"]\n"),
    );
    v.ok(&["follow", &card]);
    let args = listen("10.78.0.2");
    v.start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Up first: a `verify` that opened the store before the node did
    // would keep it from starting.
    v.wait_status("the volunteer's node up", Duration::from_secs(30), |s| {
        s["listen"].as_array().is_some_and(|l| l.len() >= 2)
    });
    v.wait_verified(&manifest, Duration::from_secs(60));
    drop(v);
    drop(desk);
    drop(net);
}

#[test]
fn every_address_is_printed_before_ready_and_no_loopback_is_kept_across_hosts() {
    if !is_root() {
        eprintln!("needs root for network namespaces: skipped");
        return;
    }
    let net = Net::lan("l", 2);
    let tmp = TempDir::new().unwrap();
    // Both listen on every interface: loopback and the network.
    let all = [
        "--listen",
        "/ip4/0.0.0.0/tcp/4001",
        "--listen",
        "/ip4/0.0.0.0/udp/4001/quic-v1",
    ];
    let mut a = Volunteer::new(tmp.path(), net.ns("a1"), "a", "");
    // Every address is printed before `ready`, QUIC's included, although
    // TCP on two interfaces has two before QUIC has one.
    let printed = a.start_until_ready(&all);
    for want in ["/tcp/4001/p2p/", "/udp/4001/quic-v1/p2p/"] {
        assert!(
            printed.iter().any(|p| p.contains(want)),
            "{want} in {printed:?}"
        );
    }
    a.wait_status("a up", Duration::from_secs(30), |s| {
        s["listen"].as_array().is_some_and(|l| {
            l.iter().any(|x| x.as_str().unwrap().contains("127.0.0.1"))
                && l.iter().any(|x| x.as_str().unwrap().contains("10.78.0.1"))
        })
    });
    let id = a.status().unwrap()["peer_id"].as_str().unwrap().to_owned();
    let mut b = Volunteer::new(tmp.path(), net.ns("a2"), "b", "");
    let boot = format!("/ip4/10.78.0.1/tcp/4001/p2p/{id}");
    let mut args = all.to_vec();
    args.extend(["--bootstrap", &boot]);
    // Stopped as systemd stops it, a node writes the addresses of its peers
    // worth dialling at the next start: what identify told it, filtered.
    // Identify runs just after connecting; a run stopped before it answered
    // writes nothing, and is run again.
    let mut peers = String::new();
    for _ in 0..3 {
        b.start(&args);
        b.wait_status("b connected to a", Duration::from_secs(30), |s| {
            s["connected"].as_array().is_some_and(|c| !c.is_empty())
        });
        b.stop();
        peers = fs::read_to_string(b.dir.join("peers.json")).unwrap_or_default();
        if peers.contains("10.78.0.1") {
            break;
        }
    }
    assert!(peers.contains("/ip4/10.78.0.1/tcp/4001"), "{peers}");
    assert!(peers.contains("/ip4/10.78.0.1/udp/4001/quic-v1"), "{peers}");
    assert!(
        !peers.contains("127.0.0.1"),
        "a's loopback, b's own host: {peers}"
    );
    drop(a);
    drop(net);
}
