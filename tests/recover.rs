//! A lost store index through the real binary: nothing opens it as an empty
//! store, `gc` deletes nothing, and `recover` brings back the blobs, the
//! articles under their feeds, the feed position and the revocations.

mod common;

use std::fs;

use common::{Env, random};

fn signing_key(env: &Env, name: &str) {
    env.ok(&[
        "key",
        "delegate",
        "--root",
        "outlet",
        "--name",
        name,
        "--valid-for",
        "30d",
        "--no-passphrase",
    ]);
}

fn publish(env: &Env, title: &str, key: &str) -> String {
    let dir = env.work().join(title);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("index.md"), format!("# {title}\n\nText.\n")).unwrap();
    fs::write(dir.join("photo.jpg"), random(40_000, title.len() as u64)).unwrap();
    let out = env.ok(&[
        "publish",
        dir.to_str().unwrap(),
        "--key",
        key,
        "--no-passphrase",
    ]);
    out.trim().to_owned()
}

#[test]
fn a_lost_index_is_refused_and_recover_brings_back_articles_and_feed_position() {
    let env = Env::new();
    let root = env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    let root = root.trim();
    signing_key(&env, "desk");
    signing_key(&env, "old");
    let first = publish(&env, "first", "desk");
    let stolen = publish(&env, "stolen", "old");
    env.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "old",
        "--reason",
        "laptop seized",
        "--no-passphrase",
    ]);
    let note = env.write("note.txt", b"kept by hand");
    let added = env.ok(&["add", note.to_str().unwrap(), "--pin", "mine"]);
    let note_hash = &added[..64];
    let before = env.ok(&["ls"]);

    let index = env.data().join("store").join("index.redb");
    fs::remove_file(&index).unwrap();
    for cmd in [&["ls"][..], &["gc"], &["gc", "--dry-run"], &["following"]] {
        let err = env.fails(cmd);
        assert!(err.contains("tamizdat recover"), "{cmd:?}: {err}");
    }
    assert!(!index.exists(), "refusing made no empty index");

    let out = env.run(&["recover"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("found  {root}  1 article(s)")),
        "{stdout}"
    );
    assert!(stderr.contains("follow again"), "{stderr}");
    assert!(stderr.contains("1 revocation(s)"), "{stderr}");
    // Every blob is back, complete.
    let blobs = |ls: &str| {
        ls.lines()
            .map(|l| (l[..64].to_owned(), l.contains("complete")))
            .collect::<Vec<_>>()
    };
    assert_eq!(blobs(&env.ok(&["ls"])), blobs(&before));
    // The article verifies and its feed pin holds it again; the revoked
    // key's article is refused, as before the loss.
    env.ok(&["verify", &first]);
    let out = env.run(&["verify", &stolen]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let pins = env.ok(&["pins"]);
    assert!(
        pins.lines()
            .any(|l| l.starts_with("feed/") && l.ends_with(&first)),
        "{pins}"
    );
    // What no article names stays kept until its owner says otherwise.
    assert!(pins.contains(&format!("recovered  {note_hash}")), "{pins}");
    let dry = env.ok(&["gc", "--dry-run"]);
    assert!(!dry.contains("would remove"), "{dry}");
    // A blob on disk does not say its publisher was followed: the follow
    // list comes back only when asked.
    assert!(!env.ok(&["following"]).contains(root));
    // The feed position came back: the next article continues the feed
    // instead of signing seq 1 again. Seq 2 was signed (by the key revoked
    // since) and stays taken, though the revoked article is not restored.
    let next = publish(&env, "next", "desk");
    let shown = env.ok(&["show", &next]);
    assert!(shown.contains("\"seq\": 3"), "{shown}");
    // A healthy index is left alone.
    let again = env.ok(&["recover"]);
    assert!(again.contains("nothing to recover"), "{again}");
    let out = env.ok(&["recover", "--force", "--follow-found"]);
    assert!(
        out.contains(&format!("following  {root}  2 article(s)")),
        "{out}"
    );
    assert!(env.ok(&["following"]).contains(root));
}

#[test]
fn an_article_whose_files_are_missing_is_restored_and_the_rest_follows() {
    let env = Env::new();
    env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"]);
    signing_key(&env, "desk");
    let hash = publish(&env, "partly", "desk");
    let shown: serde_json::Value = serde_json::from_str(&env.ok(&["show", &hash])).unwrap();
    let photo = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "photo.jpg")
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    // The photo had not arrived yet when the index was lost.
    let store = env.data().join("store");
    fs::remove_file(store.join("blobs").join(&photo[..2]).join(&photo)).unwrap();
    let _ = fs::remove_file(
        store
            .join("blobs")
            .join(&photo[..2])
            .join(format!("{photo}.obao")),
    );
    fs::remove_file(store.join("index.redb")).unwrap();
    let out = env.run(&["recover"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins = env.ok(&["pins"]);
    assert!(
        pins.lines()
            .any(|l| l.starts_with("feed/") && l.ends_with(&hash)),
        "{pins}"
    );
    let out = env.run(&["verify", &hash]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "signature holds, a file is missing"
    );
}

#[test]
fn a_flipped_bit_in_the_index_gives_a_clear_error_never_a_crash() {
    let env = Env::new();
    let note = env.write("note.txt", &random(50_000, 3));
    env.ok(&["add", note.to_str().unwrap(), "--pin", "mine"]);
    let index = env.data().join("store").join("index.redb");
    let good = fs::read(&index).unwrap();
    let mut refused = 0;
    // Sixty bytes spread over the whole file, one bit each.
    for (n, at) in (0..good.len()).step_by(good.len() / 60).enumerate() {
        let mut bytes = good.clone();
        bytes[at] ^= 1 << (n % 8);
        fs::write(&index, &bytes).unwrap();
        for cmd in [&["ls"][..], &["pins"]] {
            let out = env.run(cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_ne!(
                out.status.code(),
                Some(101),
                "flip at {at}: {cmd:?} panicked: {err}"
            );
            assert!(!err.contains("panicked"), "flip at {at}: {err}");
            if !out.status.success() {
                assert!(err.contains("index.redb"), "flip at {at}: {err}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some flips must be seen");
    fs::write(&index, &good).unwrap();
    assert!(env.ok(&["ls"]).contains("mine"));
}
