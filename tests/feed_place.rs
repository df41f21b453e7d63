//! `publish` never signs a place in a feed it cannot show is free: after a
//! lost store, an old backup, or on a second machine given the key files,
//! it continues the feed or refuses; it never signs seq 1 again.

mod common;

use std::{fs, path::Path, time::Duration};

use common::{BIN, Env, node_command, random, sigterm, start_node};

/// A newsroom: root `outlet`, signing key `desk`; returns the root key.
fn newsroom(env: &Env) -> String {
    let root = env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    env.ok(&[
        "key",
        "delegate",
        "--root",
        "outlet",
        "--name",
        "desk",
        "--valid-for",
        "30d",
        "--no-passphrase",
    ]);
    root.trim().to_owned()
}

fn story(env: &Env, title: &str) -> std::path::PathBuf {
    let dir = env.work().join(title);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("index.md"), format!("# {title}\n\nText.\n")).unwrap();
    fs::write(dir.join("photo.jpg"), random(5000, title.len() as u64)).unwrap();
    dir
}

fn publish(env: &Env, title: &str, extra: &[&str]) -> Result<String, String> {
    let dir = story(env, title);
    let mut args = vec![
        "publish",
        dir.to_str().unwrap(),
        "--key",
        "desk",
        "--no-passphrase",
    ];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    } else {
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

/// (seq, prev) of a published article, from `show`.
fn place(env: &Env, hash: &str) -> (u64, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["show", hash])).unwrap();
    (
        v["seq"].as_u64().unwrap(),
        v["prev"].as_str().map(str::to_owned),
    )
}

/// Copies the signing key's files (and, when asked, heads.json) to another
/// machine's data dir.
fn carry_keys(from: &Env, to: &Env, heads: bool) {
    let (src, dst) = (from.data().join("keys"), to.data().join("keys"));
    fs::create_dir_all(&dst).unwrap();
    let mut names = vec!["desk.key", "desk.delegation"];
    if heads {
        names.push("heads.json");
    }
    for name in names {
        fs::copy(src.join(name), dst.join(name)).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_second_machine_with_only_the_key_files_refuses_and_continues_with_heads() {
    let a = Env::new();
    newsroom(&a);
    let first = publish(&a, "one", &[]).unwrap();
    let second = publish(&a, "two", &[]).unwrap();
    assert_eq!(place(&a, &first), (1, None));
    assert_eq!(place(&a, &second), (2, Some(first.clone())));

    let b = Env::new();
    carry_keys(&a, &b, false);
    let err = publish(&b, "three", &[]).unwrap_err();
    assert!(
        err.contains("cannot tell where feed \"main\" stands"),
        "{err}"
    );
    assert!(err.contains("--after HASH"), "{err}");
    assert!(err.contains("heads.json"), "{err}");
    assert!(
        b.ok(&["ls"]).lines().count() <= 2,
        "nothing was signed: only the article's files were stored"
    );

    carry_keys(&a, &b, true);
    let third = publish(&b, "three", &[]).unwrap();
    assert_eq!(place(&b, &third), (3, Some(second.clone())));
    // --first is refused once the feed's place is known.
    let err = publish(&b, "again", &["--first"]).unwrap_err();
    assert!(err.contains("already has articles"), "{err}");
}

#[test]
fn after_names_the_latest_article_explicitly() {
    let a = Env::new();
    let root = newsroom(&a);
    publish(&a, "one", &[]).unwrap();
    let second = publish(&a, "two", &[]).unwrap();
    let b = Env::new();
    carry_keys(&a, &b, false);
    // Without the article itself, --after cannot be checked.
    let err = publish(&b, "three", &["--after", &second]).unwrap_err();
    assert!(err.contains("not in the store"), "{err}");
    let bundle = a.work().join("feed.bundle");
    a.ok(&["export", "-o", bundle.to_str().unwrap()]);
    // A bundle carries the feed's place too (import records its state).
    b.ok(&["follow", &root]);
    b.ok(&["import", bundle.to_str().unwrap()]);
    let third = publish(&b, "three", &[]).unwrap();
    assert_eq!(place(&b, &third), (3, Some(second.clone())));

    // Or the article alone, added to the store by hand.
    let c = Env::new();
    carry_keys(&a, &c, false);
    c.ok(&["add", blob_path(&a, &second).to_str().unwrap()]);
    let other = publish(&c, "three", &["--after", &second]).unwrap();
    assert_eq!(place(&c, &other), (3, Some(second)));
}

fn blob_path(env: &Env, hash: &str) -> std::path::PathBuf {
    env.data()
        .join("store")
        .join("blobs")
        .join(&hash[..2])
        .join(hash)
}

#[test]
fn an_old_backup_of_the_store_does_not_rewind_the_feed() {
    let a = Env::new();
    newsroom(&a);
    publish(&a, "one", &[]).unwrap();
    let backup = a.tmp.path().join("backup");
    copy_dir(&a.data().join("store"), &backup);
    let second = publish(&a, "two", &[]).unwrap();
    fs::remove_dir_all(a.data().join("store")).unwrap();
    copy_dir(&backup, &a.data().join("store"));
    let third = publish(&a, "three", &[]).unwrap();
    assert_eq!(place(&a, &third), (3, Some(second)));
}

#[test]
fn through_a_running_node_the_feed_place_is_learned_from_its_peers() {
    // The newsroom's node holds the feed at seq 2.
    let a = Env::new();
    newsroom(&a);
    publish(&a, "one", &[]).unwrap();
    let second = publish(&a, "two", &[]).unwrap();
    let mut desk = start_node(node_command(BIN, &a));
    // A second machine with only the key files, and a node that knows
    // nothing of the feed (it does not even follow it) but reaches the
    // newsroom's node.
    let b = Env::new();
    carry_keys(&a, &b, false);
    let mut laptop = start_node({
        let mut c = node_command(BIN, &b);
        c.args(["--bootstrap", &desk.addr]);
        c
    });
    // Once the laptop's node is connected to the newsroom's, a publish
    // there asks it where the feed stands before signing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = serde_json::from_str(&b.ok(&["status", "--json"])).unwrap();
        if status["connected"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let third = publish(&b, "three", &[]).unwrap();
    assert_eq!(place(&b, &third), (3, Some(second)));
    sigterm(&mut laptop);
    sigterm(&mut desk);
}

#[test]
fn the_mark_of_a_new_root_does_not_travel_to_another_machine() {
    // The offline machine makes the root and a delegation; heads.json says
    // the root was made there, and nothing was published yet.
    let offline = Env::new();
    newsroom(&offline);
    // The newsroom laptop gets the key files and heads.json, as the
    // publisher guide says. It cannot know that no other machine published
    // already, so its first article needs --first.
    let laptop = Env::new();
    carry_keys(&offline, &laptop, true);
    let err = publish(&laptop, "one", &[]).unwrap_err();
    assert!(err.contains("cannot tell where feed"), "{err}");
    let first = publish(&laptop, "one", &["--first"]).unwrap();
    assert_eq!(place(&laptop, &first), (1, None));
    // On the machine where the root was made, the first needs no flag.
    let own = publish(&offline, "own", &["--feed", "notes"]).unwrap();
    assert_eq!(place(&offline, &own), (1, None));
}

#[test]
fn after_refuses_an_article_whose_signature_does_not_hold() {
    let a = Env::new();
    newsroom(&a);
    let second = {
        publish(&a, "one", &[]).unwrap();
        publish(&a, "two", &[]).unwrap()
    };
    let mut forged = fs::read(blob_path(&a, &second)).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let b = Env::new();
    carry_keys(&a, &b, false);
    let file = b.write("forged.manifest", &forged);
    let added = b.ok(&["add", file.to_str().unwrap()]);
    let err = publish(&b, "three", &["--after", &added[..64]]).unwrap_err();
    assert!(err.contains("not a genuine article"), "{err}");
}
