//! Running a node for real: `init`, `node --init`, `config check`,
//! `health`, systemd readiness, completions and the man page.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Env, RunningNode, node_command, sigterm, start_node};

/// Starts `BIN node --init ...` in `env`'s data dir and waits for `ready`;
/// `notify` is the systemd socket to announce readiness on.
fn node_init(bin: &str, env: &Env, notify: Option<&std::path::Path>) -> RunningNode {
    let mut cmd = node_command(bin, env);
    cmd.arg("--init");
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    start_node(cmd)
}

#[test]
fn init_writes_a_key_and_a_commented_config_and_never_overwrites() {
    let env = Env::new();
    let out = env.ok(&["init", "--profile", "lowpower"]);
    assert!(out.contains("lowpower profile"), "{out}");
    assert!(env.data().join("node.key").exists());
    let config = std::fs::read_to_string(env.data().join("config.toml")).unwrap();
    assert!(config.contains("lowpower"), "{config}");
    assert!(
        config
            .lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 5,
        "commented"
    );
    assert!(env.ok(&["config", "check"]).starts_with("ok: "));
    // A second init leaves the config alone.
    std::fs::write(
        env.data().join("config.toml"),
        "[store]\nquota = \"1 GiB\"\n",
    )
    .unwrap();
    let err = env.fails(&["init"]);
    assert!(err.contains("already exists"), "{err}");
    let kept = std::fs::read_to_string(env.data().join("config.toml")).unwrap();
    assert_eq!(kept, "[store]\nquota = \"1 GiB\"\n");
}

#[test]
fn config_check_names_the_bad_key_and_its_line() {
    let env = Env::new();
    let bad = env.write(
        "syntax.toml",
        b"[node]\nprofile = \"server\"\nlisten_on = [\"/ip4/0.0.0.0/tcp/4001\"]\n",
    );
    let err = env.fails(&["config", "check", bad.to_str().unwrap()]);
    assert!(err.contains("syntax.toml:3:"), "{err}");
    assert!(err.contains("listen_on"), "{err}");
    // Values serde accepts but the node would not.
    for (text, line, key) in [
        (
            "[node]\n\nbootstrap = [\"not-an-address\"]\n",
            3,
            "bootstrap",
        ),
        ("[node]\nfollow = [\"abc\"]\n", 2, "follow"),
        (
            "[store]\nquota = \"1 GiB\"\n[gateway]\naddr = \"localhost\"\n",
            4,
            "addr",
        ),
        (
            "[gateway]\ntrusted_proxies = [\"proxy.local\"]\n",
            2,
            "trusted_proxies",
        ),
    ] {
        let f = env.write("values.toml", text.as_bytes());
        let err = env.fails(&["config", "check", f.to_str().unwrap()]);
        assert!(err.contains(&format!("values.toml:{line}:")), "{err}");
        assert!(err.contains(key), "{err}");
    }
    // Every other command refuses a bad config the same way.
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("config.toml"),
        "[node]\nfollow = [\"abc\"]\n",
    )
    .unwrap();
    let err = env.fails(&["ls"]);
    assert!(
        err.contains("config.toml:2:") && err.contains("follow"),
        "{err}"
    );
}

#[test]
fn node_init_in_an_empty_dir_tells_systemd_and_reports_healthy() {
    let env = Env::new();
    assert!(env.fails(&["health"]).contains("no node is running"));
    // The socket systemd would listen on for Type=notify.
    let sockdir = tempfile::tempdir().unwrap();
    let path = sockdir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut node = node_init(BIN, &env, Some(&path));
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // It set up the data dir: key, config for the profile asked for.
    let config = std::fs::read_to_string(env.data().join("config.toml")).unwrap();
    assert!(config.contains("server"));
    let health = env.ok(&["health"]);
    assert!(health.starts_with("ok: node "), "{health}");
    assert!(health.contains("gateway http://127.0.0.1:"), "{health}");
    // Stopping says so too.
    sigterm(&mut node);
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(env.fails(&["health"]).contains("no node is running"));
}

#[test]
fn the_release_binary_inits_runs_and_is_healthy() {
    // Built as an operator builds it (a no-op when it is up to date).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let built = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--locked", "--bin", "tamizdat"])
        .status()
        .unwrap();
    assert!(built.success(), "cargo build --release failed");
    let release = format!("{root}/target/release/tamizdat");
    let env = Env::new();
    let init = Command::new(&release)
        .env("TAMIZDAT_DIR", env.data())
        .args(["init", "--profile", "server"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let _node = node_init(&release, &env, None);
    let start = Instant::now();
    loop {
        let h = Command::new(&release)
            .env("TAMIZDAT_DIR", env.data())
            .arg("health")
            .output()
            .unwrap();
        if h.status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]);
    assert!(bash.contains("tamizdat") && bash.contains("publish") && bash.contains("--gateway"));
    let zsh = env.ok(&["completions", "zsh"]);
    assert!(zsh.contains("#compdef tamizdat"));
    let man = env.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH"),
        "{}",
        &man[..80]
    );
    assert!(man.contains(".TH tamizdat"));
    assert!(man.contains("publish") && man.contains("health"));
    assert!(man.contains(".SH \"EXIT STATUS\""), "{man}");
    // One page per command, and every page a page refers to exists.
    let dir = env.work().join("man1");
    std::fs::create_dir_all(&dir).unwrap();
    let listed = env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let mut pages = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(listed.contains(&name), "{name} printed: {listed}");
        pages.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    for want in [
        "tamizdat.1",
        "tamizdat-get.1",
        "tamizdat-key.1",
        "tamizdat-key-new.1",
    ] {
        assert!(pages.contains_key(want), "{want}: {:?}", pages.keys());
    }
    for (name, page) in &pages {
        assert!(page.contains(".SH \"EXIT STATUS\""), "{name}");
        let mut rest = page.as_str();
        while let Some(at) = rest.find("tamizdat\\-") {
            let tail = &rest[at..];
            let end = tail.find("(1)").unwrap_or(0);
            if end > 0 && !tail[..end].contains(char::is_whitespace) {
                let file = format!("{}.1", tail[..end].replace("\\-", "-"));
                assert!(
                    pages.contains_key(&file),
                    "{name} refers to {file}, not written"
                );
            }
            rest = &tail[1..];
        }
    }
    // One command's page, with what its exit statuses mean.
    let get = env.ok(&["man", "get"]);
    assert!(get.contains(".TH tamizdat-get"), "{get}");
    assert!(get.contains("some of its files did not arrive"), "{get}");
    let err = env.fails(&["man", "nope"]);
    assert!(err.contains("no such command"), "{err}");
}

/// `--help` lists commands by what people do most: trying it, running a
/// node, following, reading, publishing; store plumbing after.
#[test]
fn help_lists_what_people_do_first() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    let at = |name: &str| {
        help.find(&format!("\n  {name} "))
            .unwrap_or_else(|| panic!("{name} in --help: {help}"))
    };
    let order = [
        "demo", "node", "follow", "get", "verify", "publish", "export", "add", "gc", "man",
    ];
    for pair in order.windows(2) {
        assert!(
            at(pair[0]) < at(pair[1]),
            "{} before {}: {help}",
            pair[0],
            pair[1]
        );
    }
}
