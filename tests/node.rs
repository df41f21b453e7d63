//! The real binary as a network: `tamizdat node` processes on 127.0.0.1,
//! port 0, and `tamizdat get` fetching through them.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Env, RunningNode, http_get, node_command, random, sigterm, start_node};

/// Starts `tamizdat node` on a loopback port 0 and waits for its `ready` line.
fn start(env: &Env, bootstrap: Option<&str>) -> RunningNode {
    let mut cmd = node_command(BIN, env);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    start_node(cmd)
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
    get_into(&reader, &hash, &third.addr, &out);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(
        reader.run(&["cat", &hash]).stdout,
        bytes,
        "kept in the store, verified"
    );
    // A blob nobody has: a clear, prompt failure.
    let absent = blake3::hash(b"nobody").to_hex().to_string();
    let none = reader.work().join("none.bin");
    let err = reader.fails(&[
        "get",
        &absent,
        "--peer",
        &third.addr,
        "--timeout",
        "30",
        "-o",
        none.to_str().unwrap(),
    ]);
    assert!(err.contains(&absent), "{err}");
    assert!(!none.exists(), "no file for a failed fetch");
    let leftovers: Vec<_> = std::fs::read_dir(reader.work())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tamizdat-"))
        .collect();
    assert!(leftovers.is_empty(), "and no leftovers: {leftovers:?}");
    // A clean stop (SIGTERM) remembers the peers for the next start.
    let mut third = third;
    sigterm(&mut third);
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

/// `tamizdat get HASH --peer PEER -o OUT`, which must succeed.
fn get_into(env: &Env, hash: &str, peer: &str, out: &std::path::Path) {
    let got = env.run(&[
        "get",
        hash,
        "--peer",
        peer,
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
}

#[test]
fn commands_work_through_a_running_node_and_alone_after_it_stops() {
    use std::{io::Write, os::unix::fs::PermissionsExt};

    let env = Env::new();
    let bytes = random(3_000_000, 21);
    env.write("big.bin", &bytes);
    let mut node = start(&env, None);
    let socket = env.data().join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the owner's only"
    );

    // The store is the node's; add, cat, ls, pin go through it.
    let line = env.ok(&["add", "big.bin", "--pin", "mine"]);
    let hash = line[..64].to_owned();
    assert_eq!(
        line,
        format!("{}  big.bin\n", blake3::hash(&bytes).to_hex())
    );
    assert_eq!(env.run(&["cat", &hash]).stdout, bytes);
    let mut child = env
        .cmd()
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from a pipe")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let piped = String::from_utf8(out.stdout).unwrap()[..64].to_owned();
    assert_eq!(piped, blake3::hash(b"from a pipe").to_hex().as_str());
    let ls = env.ok(&["ls"]);
    assert!(
        ls.contains(&hash) && ls.contains(&piped) && ls.contains("mine"),
        "{ls}"
    );
    assert!(env.ok(&["pins"]).contains(&format!("mine  {hash}")));
    assert!(
        env.ok(&["gc", "--dry-run"]).contains(&piped),
        "unpinned: collectable"
    );
    env.ok(&["scrub"]);
    let err = env.fails(&["cat", &blake3::hash(b"absent").to_hex()]);
    assert!(err.contains("not in the store"), "{err}");

    // Publishing and verifying work through it too.
    env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    env.write("note.md", "# Заголовок\n\nТекст.\n".as_bytes());
    let manifest = env.ok(&["publish", "note.md", "--key", "outlet", "--no-passphrase"]);
    let manifest = manifest.trim();
    assert!(env.ok(&["verify", manifest]).contains("VERIFIED"));

    // The node reports itself, and a second node on the same dir is refused.
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["running"], true);
    assert_eq!(status["pid"], node.child.id());
    assert!(status["stored_bytes"].as_u64().unwrap() >= bytes.len() as u64);
    let err = env.fails(&["node", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert!(err.contains("already running"), "{err}");

    // After a clean stop the socket is gone and commands open the store.
    sigterm(&mut node);
    assert!(!socket.exists());
    assert_eq!(env.run(&["cat", &hash]).stdout, bytes);
    assert!(env.ok(&["verify", manifest]).contains("VERIFIED"));

    // A node killed outright leaves its socket behind; nothing is confused.
    let mut node = start(&env, None);
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    assert!(socket.exists(), "a killed node cannot clean up");
    assert_eq!(env.run(&["cat", &hash]).stdout, bytes);
    let mut node = start(&env, None);
    assert_eq!(
        env.run(&["cat", &hash]).stdout,
        bytes,
        "through the new node"
    );
    sigterm(&mut node);
}

#[test]
fn get_goes_through_the_running_node_of_its_data_dir() {
    let provider = Env::new();
    let bytes = random(1_200_000, 33);
    provider.write("a.bin", &bytes);
    let hash = provider.ok(&["add", "a.bin"])[..64].to_owned();
    let first = start(&provider, None);
    let reader = Env::new();
    let mut second = start(&reader, None);
    let out = reader.work().join("got.bin");
    get_into(&reader, &hash, &first.addr, &out);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // The running node fetched it: it is in its store, and it now connects
    // to the provider.
    let status: serde_json::Value =
        serde_json::from_str(&reader.ok(&["status", "--json"])).unwrap();
    let first_id = first.addr.rsplit('/').next().unwrap();
    assert!(
        status["connected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == first_id),
        "{status}"
    );
    assert!(reader.ok(&["ls"]).contains(&hash));
    sigterm(&mut second);
    drop(first);
}

#[test]
fn an_article_published_on_one_node_reaches_a_follower_verified() {
    let newsroom = Env::new();
    let volunteer = Env::new();
    let key = newsroom.ok(&["key", "new", "--name", "desk", "--no-passphrase"]);
    let key = key.trim();
    assert!(volunteer.ok(&["following"]).is_empty(), "nobody by default");
    volunteer.ok(&["follow", key, "--name", "The Desk"]);
    assert!(volunteer.ok(&["following"]).contains("The Desk"));
    // Listing it in the config as well keeps the name given.
    std::fs::write(
        volunteer.data().join("config.toml"),
        format!("[node]\nfollow = [\"{key}\"]\n"),
    )
    .unwrap();
    let mut desk = start(&newsroom, None);
    let mut home = start(&volunteer, Some(&desk.addr));
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::create_dir_all(newsroom.work().join("story")).unwrap();
    newsroom.write("story/index.md", "# Новости\n\nСегодня.\n".as_bytes());
    newsroom.write("story/photo.jpg", &random(300_000, 5));
    let out = newsroom.ok(&["publish", "story", "--key", "desk", "--no-passphrase"]);
    let manifest = out.trim().to_owned();
    // The volunteer's node receives it, checks it and fetches its files.
    let start = std::time::Instant::now();
    loop {
        let v = volunteer.run(&["verify", &manifest]);
        if v.status.success() {
            assert!(String::from_utf8_lossy(&v.stdout).contains("VERIFIED"));
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "not replicated: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status: serde_json::Value =
        serde_json::from_str(&volunteer.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["following"], 1);
    assert_eq!(status["gateway"], home.gateway.as_str());
    // A reader opens it in the volunteer's gateway, with its badge.
    let (code, page) = http_get(&home.gateway, &format!("/m/{manifest}"));
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("<h1><bdi>Новости</bdi></h1>") && page.contains("Сегодня."),
        "{page}"
    );
    assert!(page.contains("The Desk"), "the name the volunteer gave");
    assert!(page.contains(key), "the publisher's key");
    assert!(page.contains("This node checked"));
    let (code, front) = http_get(&home.gateway, "/");
    assert_eq!(code, 200);
    assert!(front.contains("The Desk"));
    sigterm(&mut home);
    sigterm(&mut desk);
    // Offline, the follower still has it, verified.
    assert!(volunteer.ok(&["verify", &manifest]).contains("VERIFIED"));
    volunteer.ok(&["unfollow", key]);
    assert!(volunteer.ok(&["following"]).is_empty());
}

/// Runs `verify` on `env` until its exit status is `want` (or a minute passed).
fn verify_until(env: &Env, manifest: &str, want: i32) -> String {
    let start = std::time::Instant::now();
    loop {
        let v = env.run(&["verify", manifest]);
        let out = String::from_utf8_lossy(&v.stdout).into_owned();
        if v.status.code() == Some(want) {
            return out;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "verify never exited {want}: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_revocation_made_on_the_newsroom_node_reaches_its_followers() {
    let newsroom = Env::new();
    let volunteer = Env::new();
    let root_pass = newsroom.write("root-pass", b"correct horse battery staple\n");
    let pass = newsroom.write("pass", b"laptop passphrase\n");
    let (rp, sp) = (root_pass.to_str().unwrap(), pass.to_str().unwrap());
    let root = newsroom.ok(&["key", "new", "--name", "outlet", "--passphrase-file", rp]);
    newsroom.ok(&[
        "key",
        "delegate",
        "--root",
        "outlet",
        "--name",
        "laptop",
        "--valid-for",
        "30d",
        "--passphrase-file",
        rp,
        "--new-passphrase-file",
        sp,
    ]);
    volunteer.ok(&["follow", root.trim()]);
    let mut desk = start(&newsroom, None);
    let mut home = start(&volunteer, Some(&desk.addr));
    std::thread::sleep(std::time::Duration::from_secs(2));
    newsroom.write("note.md", "# Срочно\n\nТекст.\n".as_bytes());
    let manifest = newsroom.ok(&[
        "publish",
        "note.md",
        "--key",
        "laptop",
        "--passphrase-file",
        sp,
    ]);
    let manifest = manifest.trim();
    verify_until(&volunteer, manifest, 0);
    // The laptop is seized: the root revokes its key, on the running node.
    newsroom.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "laptop",
        "--reason",
        "seized",
        "--passphrase-file",
        rp,
    ]);
    let out = verify_until(&volunteer, manifest, 1);
    assert!(out.contains("revoked"), "{out}");
    sigterm(&mut home);
    sigterm(&mut desk);
}

/// Idle TCP connections from 127.0.0.2 to `to`: `count` are kept open, and
/// each one the node closes is opened again (after a short pause, as a
/// patient attacker would) until the runtime is dropped. `held` counts the
/// connections the node closed after they had been open at least `HELD`: the
/// ones it accepted and then gave up on because they never spoke.
struct Flood {
    rt: tokio::runtime::Runtime,
    opened: tokio::sync::watch::Receiver<usize>,
    held: tokio::sync::watch::Receiver<usize>,
}

/// Longer than it takes a node to refuse a connection outright, shorter than
/// its handshake timeout.
const HELD: std::time::Duration = std::time::Duration::from_secs(2);

impl Flood {
    fn start(to: std::net::SocketAddr, count: usize) -> Self {
        use tokio::io::AsyncReadExt;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (opened_tx, opened) = tokio::sync::watch::channel(0);
        let (held_tx, held) = tokio::sync::watch::channel(0);
        let (opened_tx, held_tx) = (std::sync::Arc::new(opened_tx), std::sync::Arc::new(held_tx));
        for _ in 0..count {
            let (opened_tx, held_tx) = (opened_tx.clone(), held_tx.clone());
            rt.spawn(async move {
                loop {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                    if let Ok(mut s) = socket.connect(to).await {
                        opened_tx.send_modify(|n| *n += 1);
                        let since = std::time::Instant::now();
                        let mut buf = [0u8; 512];
                        // Never a byte sent; read until the node hangs up.
                        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        if since.elapsed() >= HELD {
                            held_tx.send_modify(|n| *n += 1);
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            });
        }
        Self { rt, opened, held }
    }

    /// Waits until `rx` (one of the counters) reaches `at_least`, or fails
    /// after `secs`.
    fn wait(&self, rx: &tokio::sync::watch::Receiver<usize>, at_least: usize, secs: u64) {
        let mut rx = rx.clone();
        let reached = self.rt.block_on(async {
            let wait = rx.wait_for(|n| *n >= at_least);
            matches!(
                tokio::time::timeout(std::time::Duration::from_secs(secs), wait).await,
                Ok(Ok(_))
            )
        });
        assert!(reached, "{} of {at_least} after {secs} s", *rx.borrow());
    }
}

#[test]
fn idle_sockets_from_one_address_do_not_lock_others_out() {
    let provider = Env::new();
    let bytes = random(300_000, 44);
    provider.write("a.bin", &bytes);
    let hash = provider.ok(&["add", "a.bin"])[..64].to_owned();
    let node = start(&provider, None);
    let port: u16 = node
        .addr
        .split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .expect("/ip4/127.0.0.1/tcp/PORT/p2p/ID");
    // 100 connections that never say a word, all from one address.
    let flood = Flood::start(([127, 0, 0, 1], port).into(), 100);
    flood.wait(&flood.opened, 100, 60);
    // A reader from another address still gets through, every time.
    for round in 0..3 {
        let reader = Env::new();
        let out = reader.work().join("got.bin");
        let got = reader.run(&[
            "get",
            &hash,
            "--peer",
            &node.addr,
            "-o",
            out.to_str().unwrap(),
            "--timeout",
            "30",
        ]);
        assert!(
            got.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(std::fs::read(&out).unwrap(), bytes);
    }
    // And the silent connections the node took on are closed in time.
    flood.wait(&flood.held, 1, 60);
    drop(flood);
    drop(node);
}

#[test]
fn the_data_dir_and_what_the_node_writes_in_it_are_the_users_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let env = Env::new();
    assert!(!env.data().exists());
    env.ok(&["ls"]);
    assert_eq!(mode(&env.data()), 0o700, "a data dir tamizdat creates");
    let mut node = start(&env, None);
    let info = env.data().join("node.json");
    assert!(std::fs::read_to_string(&info).unwrap().contains("peer_id"));
    assert_eq!(mode(&info), 0o600, "node.json");
    sigterm(&mut node);
    // One left by an older version, readable by all, is made private too.
    std::fs::write(&info, b"{}").unwrap();
    std::fs::set_permissions(&info, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut node = start(&env, None);
    assert_eq!(mode(&info), 0o600, "an old node.json");
    sigterm(&mut node);
}

#[test]
fn a_second_node_on_a_busy_tcp_port_is_refused_naming_the_port() {
    let bin = BIN;
    let first_env = Env::new();
    let first = start_node(node_command(bin, &first_env));
    let port = first
        .addr
        .split('/')
        .nth(4)
        .expect("a port in the address")
        .to_owned();
    let second_env = Env::new();
    let out = Command::new(bin)
        .env("TAMIZDAT_DIR", second_env.data())
        .env_remove("RUST_LOG")
        .args(["node", "--profile", "server", "--gateway", "127.0.0.1:0"])
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second node must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("TCP port {port} is in use")), "{err}");
    drop(first);
}

#[test]
fn node_logs_carry_no_colour_codes_when_stderr_is_a_pipe() {
    let bin = BIN;
    let env = Env::new();
    let mut cmd = node_command(bin, &env);
    cmd.env("RUST_LOG", "info").stderr(Stdio::piped());
    let mut node = start_node(cmd);
    sigterm(&mut node);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut node.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.is_empty(), "info logs were written");
    assert!(!err.contains("\x1b["), "{err}");
}

/// The article page's "Check it yourself" line, as a reader copies it.
fn check_command(page: &str) -> String {
    let start = page
        .find("<pre class=\"command\">")
        .expect("the page shows the command")
        + "<pre class=\"command\">".len();
    let end = start + page[start..].find("</pre>").unwrap();
    page[start..end].replace("&amp;", "&")
}

#[test]
fn the_pages_check_it_yourself_commands_work_as_printed_on_a_fresh_machine() {
    let newsroom = Env::new();
    newsroom.ok(&["key", "new", "--name", "desk", "--no-passphrase"]);
    std::fs::create_dir_all(newsroom.work().join("story/img")).unwrap();
    newsroom.write("story/index.md", b"# Report\n\n![map](img/map.png)\n");
    let photo = random(700_000, 31);
    newsroom.write("story/img/map.png", &photo);
    newsroom.write("story/data.csv", b"a,b\n1,2\n");
    let manifest = newsroom
        .ok(&["publish", "story", "--key", "desk", "--no-passphrase"])
        .trim()
        .to_owned();
    let desk = start(&newsroom, None);
    let (code, page) = http_get(&desk.gateway, &format!("/m/{manifest}"));
    assert_eq!(code, 200, "{page}");
    let line = check_command(&page);
    assert!(line.contains("--peer /ip4/127.0.0.1/tcp/"), "{line}");

    // A reader with nothing: no data dir, no config, no node; the line as
    // printed, one command after the other as a shell runs `&&`.
    let reader = Env::new();
    for part in line.split(" && ") {
        let args: Vec<&str> = part.split_whitespace().collect();
        assert_eq!(args[0], "tamizdat", "{line}");
        let out = reader.run(&args[1..]);
        assert!(
            out.status.success(),
            "`{part}` failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if args[1] == "verify" {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(said.contains("result       VERIFIED"), "{said}");
        } else {
            // Each blob says who delivered it, small ones too.
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(said.matches("from 1 provider(s)").count(), 4, "{said}");
        }
    }
    // The article is kept as a whole: pinned, so gc keeps every file.
    let pins = reader.ok(&["pins"]);
    assert!(pins.contains(&format!("get/{manifest}")), "{pins}");
    reader.ok(&["gc"]);
    let verify = reader.ok(&["verify", &manifest]);
    assert!(verify.contains("result       VERIFIED"), "{verify}");

    // -o writes the article's files under their signed paths; an address
    // without /p2p/ is taken as --bootstrap takes it.
    let other = Env::new();
    let out = other.work().join("article");
    let plain = desk.addr.rsplit_once("/p2p/").unwrap().0;
    get_into(&other, &manifest, plain, &out);
    assert_eq!(std::fs::read(out.join("img/map.png")).unwrap(), photo);
    assert_eq!(std::fs::read(out.join("data.csv")).unwrap(), b"a,b\n1,2\n");
    assert!(out.join("index.md").is_file());
    // --raw keeps the old meaning: the manifest's own bytes.
    let raw = other.work().join("manifest.bin");
    other.ok(&["get", &manifest, "--raw", "-o", raw.to_str().unwrap()]);
    assert_eq!(
        blake3::hash(&std::fs::read(&raw).unwrap())
            .to_hex()
            .as_str(),
        manifest
    );
    drop(desk);
}
