//! End-to-end tests of the real `tamizdat` binary.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use rand::{Rng, SeedableRng, rngs::StdRng};

mod common;
use common::{BIN, Env, is_root, random};
const SIZES: &[usize] = &[
    0,
    1,
    1023,
    1024,
    1025,
    16383,
    16384,
    16385,
    (1 << 20) + 1,
    3 << 20,
];

fn b3sum_available() -> bool {
    Command::new("b3sum")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn add_prints_exactly_what_b3sum_prints() {
    let env = Env::new();
    let mut names = Vec::new();
    let mut expected = String::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let name = format!("file-{size}");
        let bytes = random(size, i as u64);
        env.write(&name, &bytes);
        expected.push_str(&format!("{}  {name}\n", blake3::hash(&bytes).to_hex()));
        names.push(name);
    }
    // Names b3sum escapes.
    env.write("back\\slash", b"a");
    env.write("new\nline", b"b");
    expected.push_str(&format!(
        "\\{}  back\\\\slash\n",
        blake3::hash(b"a").to_hex()
    ));
    expected.push_str(&format!("\\{}  new\\nline\n", blake3::hash(b"b").to_hex()));
    names.push("back\\slash".into());
    names.push("new\nline".into());
    let args: Vec<&str> = std::iter::once("add")
        .chain(names.iter().map(String::as_str))
        .collect();
    let out = env.ok(&args);
    assert_eq!(out, expected);
    if b3sum_available() {
        let b3 = Command::new("b3sum")
            .args(&names)
            .current_dir(env.work())
            .output()
            .unwrap();
        assert_eq!(
            out,
            String::from_utf8(b3.stdout).unwrap(),
            "differs from b3sum"
        );
    } else {
        eprintln!("b3sum not installed: compared with the blake3 crate only");
    }
    // Standard input is `-`, as for b3sum.
    let mut child = env
        .cmd()
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = random(100_000, 99);
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}  -\n", blake3::hash(&bytes).to_hex())
    );
}

#[test]
fn cat_returns_the_verified_bytes() {
    let env = Env::new();
    let bytes = random(200_000, 1);
    env.write("a", &bytes);
    let line = env.ok(&["add", "a"]);
    let hash = &line[..64];
    let out = env.run(&["cat", hash]);
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);
    // The data dir was created on first use, under TAMIZDAT_DIR.
    assert!(env.data().join("store").is_dir());
}

#[test]
fn malformed_and_unknown_hashes_are_named() {
    let env = Env::new();
    let upper = "AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262";
    for bad in [
        "abc",
        upper,
        &format!("{}g", &upper[..63].to_lowercase()),
        "",
    ] {
        let err = env.fails(&["cat", bad]);
        assert!(err.contains("invalid hash"), "{bad:?}: {err}");
        assert!(err.contains("64 lowercase hex digits"), "{err}");
    }
    let absent = blake3::hash(b"absent").to_hex();
    let err = env.fails(&["cat", absent.as_str()]);
    assert!(
        err.contains(absent.as_str()) && err.contains("not in the store"),
        "{err}"
    );
    let err = env.fails(&["add", "no-such-file"]);
    assert!(err.contains("no-such-file"), "{err}");
}

#[test]
fn corrupted_blob_is_never_served_and_scrub_quarantines_it() {
    let env = Env::new();
    let good = random(50_000, 2);
    let bad = random(300_000, 3);
    env.write("good", &good);
    env.write("bad", &bad);
    let out = env.ok(&["add", "good", "bad"]);
    let hashes: Vec<&str> = out.lines().map(|l| &l[..64]).collect();
    let (gh, bh) = (hashes[0], hashes[1]);
    let file = env.data().join("store/blobs").join(&bh[..2]).join(bh);
    let mut on_disk = fs::read(&file).unwrap();
    on_disk[123_456] ^= 0x20;
    fs::write(&file, &on_disk).unwrap();

    let out = env.run(&["cat", bh]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(bh) && err.contains("corrupt"), "{err}");
    // Only verified bytes reached stdout, and none from the damaged group on.
    assert!(out.stdout.len() <= 114_688, "{}", out.stdout.len());
    assert_eq!(out.stdout, bad[..out.stdout.len()]);

    let out = env.run(&["scrub"]);
    assert!(
        !out.status.success(),
        "scrub reports damage with its exit status"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&format!("quarantined  {bh}")), "{report}");
    let err = env.fails(&["cat", bh]);
    assert!(err.contains("not in the store"), "{err}");
    assert_eq!(env.run(&["cat", gh]).stdout, good);
    assert!(
        env.run(&["scrub"]).status.success(),
        "a clean store scrubs clean"
    );
}

#[test]
fn pins_ls_and_gc() {
    let env = Env::new();
    env.write("keep", b"keep me");
    env.write("drop", b"drop me");
    let kh = env.ok(&["add", "--pin", "front-page", "keep"])[..64].to_owned();
    let dh = env.ok(&["add", "drop"])[..64].to_owned();
    let ls = env.ok(&["ls"]);
    assert!(ls.contains(&kh) && ls.contains(&dh), "{ls}");
    let keep_line = ls.lines().find(|l| l.starts_with(&kh)).unwrap();
    assert!(
        keep_line.contains("complete") && keep_line.contains("front-page"),
        "{keep_line}"
    );
    assert_eq!(env.ok(&["pins"]), format!("front-page  {kh}\n"));
    let dry = env.ok(&["gc", "--dry-run"]);
    assert!(dry.contains(&dh) && !dry.contains(&kh), "{dry}");
    assert!(env.ok(&["ls"]).contains(&dh));
    env.ok(&["gc"]);
    let ls = env.ok(&["ls"]);
    assert!(ls.contains(&kh) && !ls.contains(&dh), "{ls}");
    let err = env.fails(&["unpin", "no-such-pin"]);
    assert!(err.contains("no-such-pin"), "{err}");
    env.ok(&["pin", "other", &kh]);
    env.ok(&["unpin", "front-page", &kh]);
    env.ok(&["unpin", "other"]);
    env.ok(&["gc"]);
    assert_eq!(env.ok(&["ls"]), "");
}

#[test]
fn quota_from_config_refuses_writes_and_keeps_what_was_there() {
    let env = Env::new();
    fs::create_dir_all(env.data()).unwrap();
    fs::write(
        env.data().join("config.toml"),
        "[store]\nquota = \"100 KiB\"\n",
    )
    .unwrap();
    let small = random(50_000, 4);
    env.write("small", &small);
    env.write("big", &random(80_000, 5));
    let sh = env.ok(&["add", "small"])[..64].to_owned();
    let err = env.fails(&["add", "big"]);
    assert!(
        err.contains("store full") && err.contains("102400"),
        "{err}"
    );
    assert_eq!(env.run(&["cat", &sh]).stdout, small);
    // A bad config names the problem.
    fs::write(
        env.data().join("config.toml"),
        "[store]\nquota = \"lots\"\n",
    )
    .unwrap();
    let err = env.fails(&["ls"]);
    assert!(err.contains("config.toml"), "{err}");
    fs::write(env.data().join("config.toml"), "[store]\nqouta = 1\n").unwrap();
    let err = env.fails(&["ls"]);
    assert!(err.contains("qouta"), "{err}");
}

/// `add` acknowledges a file by printing its line; SIGKILL at random points
/// must never lose an acknowledged blob nor leave one half-written.
#[test]
fn sigkill_during_add_loses_nothing_acknowledged() {
    let env = Env::new();
    let mut rng = StdRng::seed_from_u64(7);
    let mut files = Vec::new();
    for i in 0..24 {
        let size = rng.random_range(0..600_000);
        let name = format!("f{i}");
        files.push((name.clone(), random(size, 1000 + i)));
        env.write(&name, &files.last().unwrap().1);
    }
    let mut acked: Vec<(String, usize)> = Vec::new();
    for run in 0..15 {
        let mut child = env
            .cmd()
            .arg("add")
            .args(files.iter().map(|(n, _)| n))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let want = rng.random_range(0..files.len());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..want {
            let Some(Ok(line)) = lines.next() else { break };
            let name = line[66..].to_owned();
            let i = files.iter().position(|(n, _)| *n == name).unwrap();
            acked.push((line[..64].to_owned(), i));
        }
        if rng.random_bool(0.5) {
            std::thread::sleep(std::time::Duration::from_micros(rng.random_range(0..5000)));
        }
        let _ = child.kill();
        child.wait().unwrap();
        for (hash, i) in &acked {
            let out = env.run(&["cat", hash]);
            assert!(out.status.success(), "run {run}: acknowledged {hash} lost");
            assert_eq!(out.stdout, files[*i].1);
        }
        let ls = env.ok(&["ls"]);
        assert!(!ls.contains("partial"), "{ls}");
        assert!(
            fs::read_dir(env.data().join("store/tmp"))
                .unwrap()
                .next()
                .is_none(),
            "temporary files left visible"
        );
    }
    assert!(env.run(&["scrub"]).status.success());
}

/// A real full disk: a 2 MiB tmpfs in a private mount namespace.
#[test]
fn full_disk_gives_a_clear_error_and_keeps_reads_and_deletes_working() {
    if !is_root() {
        eprintln!(
            "needs root for a private tmpfs: the fault-injection store test covers this path"
        );
        return;
    }
    let env = Env::new();
    let mnt = env.tmp.path().join("tiny");
    fs::create_dir_all(&mnt).unwrap();
    let small = random(100_000, 8);
    let small_path = env.write("small", &small);
    let big_path = env.write("big", &random(3 << 20, 9));
    let expect_small = blake3::hash(&small).to_hex().to_string();
    let script = format!(
        r#"
set -u
mount -t tmpfs -o size=2m tmpfs "$MNT" || exit 90
T() {{ "$BIN" --data-dir "$MNT/data" "$@"; }}
T add --pin keep "{small}" > "$OUT/add-small" || exit 91
T add "{big}" 2> "$OUT/add-big-err" && exit 92
T cat {hash} > "$OUT/cat1" || exit 93
head -c 3000000 /dev/zero > "$MNT/filler" 2>/dev/null
T cat {hash} > "$OUT/cat2" || exit 94
T ls > "$OUT/ls" || exit 95
T unpin keep || exit 96
T gc || exit 97
T ls > "$OUT/ls2" || exit 98
exit 0
"#,
        small = small_path.display(),
        big = big_path.display(),
        hash = expect_small,
    );
    let out_dir = env.tmp.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("MNT", &mnt)
        .env("BIN", BIN)
        .env("OUT", &out_dir)
        .output()
        .unwrap();
    let read = |n: &str| fs::read(out_dir.join(n)).unwrap_or_default();
    assert!(
        out.status.success(),
        "step failed with {:?}: {}\nadd-big stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&read("add-big-err"))
    );
    let err = String::from_utf8(read("add-big-err")).unwrap();
    assert!(err.contains("disk full") && err.contains("big"), "{err}");
    assert_eq!(read("cat1"), small);
    assert_eq!(read("cat2"), small, "reads work at a full disk");
    assert!(
        String::from_utf8(read("ls"))
            .unwrap()
            .contains(&expect_small)
    );
    assert_eq!(read("ls2"), b"", "deletes work at a full disk");
}

#[test]
fn the_committed_example_config_is_valid() {
    let env = Env::new();
    fs::create_dir_all(env.data()).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/example.toml");
    fs::copy(&example, env.data().join("config.toml")).unwrap();
    env.write("a", b"x");
    env.ok(&["add", "a"]);
    assert_eq!(env.ok(&["ls"]).lines().count(), 1);
}

/// `config check` on `text`: Ok(stdout) or Err(stderr).
fn config_check(env: &Env, name: &str, text: &str) -> Result<String, String> {
    let file = env.write(name, text.as_bytes());
    let out = env.run(&["config", "check", file.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

#[test]
fn config_check_refuses_numbers_out_of_range_naming_key_value_and_range() {
    let env = Env::new();
    for (text, key, value, range) in [
        (
            "[gateway]\nmax_connections = 18446744073709551615\n",
            "gateway.max_connections",
            "18446744073709551615",
            "1 to 65536",
        ),
        (
            "[gateway]\nmax_connections_per_ip = 0\n",
            "gateway.max_connections_per_ip",
            "0",
            "1 to 65536",
        ),
        (
            "[gateway]\nfetches_per_client = 1000000\n",
            "gateway.fetches_per_client",
            "1000000",
            "1 to 32",
        ),
        (
            "[node]\nmax_connections = 4294967296\n",
            "node.max_connections",
            "4294967296",
            "1 to 16384",
        ),
        (
            "[store]\nquota = 0\n",
            "store.quota",
            "0",
            "at least 65536 bytes",
        ),
    ] {
        let err = config_check(&env, "range.toml", text).expect_err(text);
        assert!(err.contains("range.toml:2:"), "{err}");
        for want in [key, value, range] {
            assert!(err.contains(want), "{text}: {want:?} missing from {err}");
        }
    }
    // A node refuses to start on such a file the same way.
    fs::create_dir_all(env.data()).unwrap();
    fs::write(
        env.data().join("config.toml"),
        "[gateway]\nmax_connections = 18446744073709551615\n",
    )
    .unwrap();
    let err = env.fails(&["node", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert!(err.contains("gateway.max_connections"), "{err}");
    // A value no number type holds names its key too.
    let err = config_check(&env, "neg.toml", "[node]\nmax_connections = -1\n").unwrap_err();
    assert!(err.contains("node.max_connections"), "{err}");
}

/// Every numeric key the committed configs document (set or commented
/// out), with values inside its range and values outside it.
const NUMERIC_KEYS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "node",
        "alone_warning_secs",
        &["0", "60", "86400"],
        &["86401", "18446744073709551615"],
    ),
    (
        "node",
        "max_connections",
        &["1", "64", "16384"],
        &["0", "16385", "18446744073709551615"],
    ),
    (
        "gateway",
        "max_connections",
        &["1", "1024", "65536"],
        &["0", "65537", "18446744073709551615"],
    ),
    (
        "gateway",
        "max_connections_per_ip",
        &["1", "64", "65536"],
        &["0", "65537", "9223372036854775807"],
    ),
    (
        "gateway",
        "fetches_per_client",
        &["1", "4", "32"],
        &["0", "33", "4294967296"],
    ),
    (
        "store",
        "quota",
        &["65536", "\"64 KiB\"", "\"20 GiB\"", "18446744073709551615"],
        &["0", "\"0 B\"", "65535", "\"1 KiB\""],
    ),
];

/// `(section, key, value)` of every `key = NUMBER` or `key = "N UNIT"` line
/// in `text`, commented out or not.
fn documented_numbers(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        let t = line.trim().trim_start_matches('#').trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let plain = value.trim_matches('"');
        let numeric = plain.starts_with(|c: char| c.is_ascii_digit())
            && plain
                .split(' ')
                .next()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
            && (plain == value || plain.contains(' '));
        if !key.contains(' ') && numeric {
            found.push((section.clone(), key.to_owned(), value.to_owned()));
        }
    }
    found
}

#[test]
fn every_numeric_key_in_the_example_configs_has_a_range_that_is_enforced() {
    let env = Env::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    let mut seen = 0;
    for file in fs::read_dir(&dir).unwrap() {
        let file = file.unwrap().path();
        let text = fs::read_to_string(&file).unwrap();
        for (section, key, value) in documented_numbers(&text) {
            seen += 1;
            assert!(
                NUMERIC_KEYS
                    .iter()
                    .any(|(s, k, _, _)| *s == section && *k == key),
                "{}: {section}.{key} is not in the table of ranges",
                file.display()
            );
            // The documented value itself is accepted.
            let doc = format!("[{section}]\n{key} = {value}\n");
            config_check(&env, "doc.toml", &doc)
                .unwrap_or_else(|e| panic!("{}: {doc}: {e}", file.display()));
        }
    }
    assert!(
        seen >= 5,
        "found only {seen} numeric keys in {}",
        dir.display()
    );
    for (section, key, good, bad) in NUMERIC_KEYS {
        for v in *good {
            let text = format!("[{section}]\n{key} = {v}\n");
            config_check(&env, "good.toml", &text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        for v in *bad {
            let text = format!("[{section}]\n{key} = {v}\n");
            let err = config_check(&env, "bad.toml", &text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text}"));
            assert!(err.contains(&format!("{section}.{key}")), "{text}: {err}");
        }
    }
}

#[test]
fn config_check_refuses_more_publishers_than_a_node_can_follow() {
    let env = Env::new();
    let list = |n: usize| {
        // Real publisher keys: parsing refuses points no one could sign with.
        let keys: Vec<String> = (1..=n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                format!(
                    "\"{}\"",
                    tamizdat_sign::SecretKey::from_seed(&seed).public()
                )
            })
            .collect();
        format!("[node]\nfollow = [{}]\n", keys.join(", "))
    };
    config_check(&env, "most.toml", &list(1024)).expect("1024 publishers");
    let err = config_check(&env, "over.toml", &list(1025)).expect_err("1025 publishers");
    assert!(
        err.contains("node.follow") && err.contains("1025") && err.contains("1024"),
        "{err}"
    );
}

/// Waits for `child` to exit, for at most `secs`; kills it if it has not.
fn exit_within(mut child: std::process::Child, secs: u64) -> Option<std::process::Output> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut err = Vec::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_end(&mut s, &mut err);
        }
        let status = child.wait();
        let _ = tx.send((status, err));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok((status, stderr)) => Some(std::process::Output {
            status: status.unwrap(),
            stdout: Vec::new(),
            stderr,
        }),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            None
        }
    }
}

#[test]
fn a_key_file_replaced_by_a_fifo_is_refused_at_once() {
    let env = Env::new();
    env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    env.write("note.md", b"# Title\n\nText.\n");
    let key = env.data().join("keys/outlet.key");
    fs::remove_file(&key).unwrap();
    let made = Command::new("mkfifo").arg(&key).status().unwrap();
    assert!(made.success(), "mkfifo");
    let child = env
        .cmd()
        .args(["publish", "note.md", "--key", "outlet", "--no-passphrase"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exit_within(child, 30).expect("publish hung on a FIFO key file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("outlet.key") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_key_file_others_can_read_is_used_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    env.write("note.md", b"# Title\n\nText.\n");
    let key = env.data().join("keys/outlet.key");
    let publish = || {
        env.cmd()
            .args(["publish", "note.md", "--key", "outlet", "--no-passphrase"])
            .output()
            .unwrap()
    };
    let quiet = publish();
    assert!(quiet.status.success());
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("chmod"),
        "no warning for mode 0600"
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = publish();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning")
            && err.contains(&key.display().to_string())
            && err.contains("chmod 600"),
        "{err}"
    );
}

/// A command whose stdout is a pipe nobody reads any more (`tamizdat man |
/// head`) ends quietly with the status a shell gives a process ended by
/// SIGPIPE, whether it writes through `write!` or `println!`.
#[test]
fn a_closed_output_pipe_ends_a_command_quietly() {
    let env = Env::new();
    let key = env.ok(&["key", "new", "--name", "o", "--no-passphrase"]);
    let key = key.split_whitespace().next().unwrap().to_owned();
    env.ok(&["follow", &key]);
    for args in [&["man"][..], &["following"], &["completions", "bash"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.cmd().args(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn verify_of_a_directory_says_what_it_takes() {
    let env = Env::new();
    env.ok(&["init"]);
    fs::create_dir_all(env.work().join("article")).unwrap();
    let err = env.fails(&["verify", "article"]);
    assert!(err.contains("article is a directory"), "{err}");
    assert!(err.contains("manifest"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

/// `follow` again changes the limits given and keeps the others, says what
/// changed, and `following` shows durations as `--keep` takes them.
#[test]
fn following_again_updates_limits_and_keeps_the_rest() {
    let env = Env::new();
    let key = env.ok(&["key", "new", "--name", "o", "--no-passphrase"]);
    let key = key.split_whitespace().next().unwrap().to_owned();
    let said = |args: &[&str]| {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let first = said(&["follow", &key, "--keep", "365d"]);
    assert!(
        first.contains("following") && first.ends_with(": keep 365d\n"),
        "{first}"
    );
    let again = said(&["follow", &key, "--max-bytes", "2 GiB", "--name", "Outlet"]);
    assert!(
        again.contains("now max 2.0 GiB, keep 365d (was keep 365d)"),
        "{again}"
    );
    let list = env.ok(&["following"]);
    assert!(list.contains("  Outlet  max 2.0 GiB, keep 365d"), "{list}");
    let same = said(&["follow", &key]);
    assert!(
        same.ends_with("max 2.0 GiB, keep 365d; nothing changed\n"),
        "{same}"
    );
    let shorter = said(&["follow", &key, "--keep", "36h"]);
    assert!(
        shorter.contains("now max 2.0 GiB, keep 1d 12h"),
        "{shorter}"
    );
}

/// Every command that prints state has `--json` for scripts: one object
/// (verify) or one object per line (the lists), with the same facts as
/// the lines for people.
#[test]
fn state_comes_as_json_for_scripts() {
    let env = Env::new();
    let key = env.ok(&["key", "new", "--name", "desk", "--no-passphrase"]);
    let key = key.split_whitespace().next().unwrap().to_owned();
    env.ok(&["follow", &key, "--name", "The Desk", "--keep", "30d"]);
    fs::create_dir_all(env.work().join("story")).unwrap();
    env.write("story/index.md", b"# Title\n\nText.\n");
    env.write("story/data.csv", b"a,b\n");
    let id = env
        .ok(&["publish", "story", "--key", "desk", "--no-passphrase"])
        .trim()
        .to_owned();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        env.ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {l}: {e}")))
            .collect()
    };
    let keys = lines(&["key", "list", "--json"]);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "desk");
    assert_eq!(keys[0]["public"], key.as_str());
    assert_eq!(keys[0]["encrypted"], false);
    let following = lines(&["following", "--json"]);
    assert_eq!(following[0]["key"], key.as_str());
    assert_eq!(following[0]["name"], "The Desk");
    assert_eq!(following[0]["max_age_secs"], 30 * 86_400);
    let blobs = lines(&["ls", "--json"]);
    let manifest = blobs.iter().find(|b| b["hash"] == id.as_str()).unwrap();
    assert_eq!(manifest["complete"], true);
    assert!(manifest["pins"][0].as_str().unwrap().starts_with("feed/"));
    assert_eq!(blobs.len(), 3, "the manifest and its two files: {blobs:?}");
    let pins = lines(&["pins", "--json"]);
    assert_eq!(pins[0]["blobs"].as_array().unwrap().len(), 3, "{pins:?}");

    let verify = |want: i32| -> serde_json::Value {
        let out = env.run(&["verify", &id, "--json"]);
        assert_eq!(out.status.code(), Some(want));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = verify(0);
    // The lines for people line up as before, one label column.
    let text = env.ok(&["verify", &id]);
    for line in [
        "feed         main  seq 1  prev none",
        "title        Title",
        "result       VERIFIED",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
    }
    assert_eq!(v["result"], "verified");
    assert_eq!(v["publisher"], key.as_str());
    assert_eq!(v["title"], "Title");
    assert_eq!(v["seq"], 1);
    assert_eq!(v["feed_check"]["ok"], true);
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    // A file gone: the same facts, and exit 3 as without --json.
    let csv = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "data.csv")
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let pin = manifest["pins"][0].as_str().unwrap().to_owned();
    env.ok(&["unpin", &pin, &csv]);
    env.ok(&["gc"]);
    let v = verify(3);
    assert_eq!(v["result"], "incomplete");
    assert_eq!(v["missing"], 1);
}
