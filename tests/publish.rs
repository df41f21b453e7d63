//! End to end, with the real binary: a newsroom creates its keys, publishes
//! an article, and a reader verifies it; then the ways it must fail.

mod common;

use std::{fs, path::PathBuf};

use common::{Env, random};

/// A newsroom: root and signing key (passphrase-protected) and an article.
struct Newsroom {
    env: Env,
    /// The root key's passphrase file (the offline machine's).
    root_pass: PathBuf,
    /// The signing key's passphrase file (the newsroom laptop's).
    pass: PathBuf,
    photo: Vec<u8>,
}

impl Newsroom {
    fn new() -> Self {
        let env = Env::new();
        let root_pass = env.write("root-pass", b"correct horse battery staple\n");
        let pass = env.write("pass", b"laptop passphrase\n");
        let p = root_pass.to_str().unwrap().to_owned();
        let sp = pass.to_str().unwrap().to_owned();
        env.ok(&["key", "new", "--name", "outlet", "--passphrase-file", &p]);
        env.ok(&[
            "key",
            "delegate",
            "--root",
            "outlet",
            "--name",
            "laptop",
            "--valid-for",
            "30d",
            "--passphrase-file",
            &p,
            "--new-passphrase-file",
            &sp,
        ]);
        let art = env.work().join("article");
        fs::create_dir_all(art.join("img")).unwrap();
        fs::write(
            art.join("index.md"),
            "# Выборы: что произошло на самом деле\n\nТекст.\n\n![фото](img/photo.jpg)\n",
        )
        .unwrap();
        let photo = random(120_000, 1);
        fs::write(art.join("img/photo.jpg"), &photo).unwrap();
        fs::write(art.join("report.pdf"), random(30_000, 2)).unwrap();
        Self {
            env,
            root_pass,
            pass,
            photo,
        }
    }

    fn pass(&self) -> &str {
        self.pass.to_str().unwrap()
    }

    fn root_pass(&self) -> &str {
        self.root_pass.to_str().unwrap()
    }

    fn publish(&self, extra: &[&str]) -> String {
        let mut args = vec!["publish", "article", "--key", "laptop", "--lang", "ru"];
        args.extend_from_slice(&["--passphrase-file", self.pass()]);
        args.extend_from_slice(extra);
        let out = self.env.ok(&args);
        let hash = out.trim().to_owned();
        assert_eq!(hash.len(), 64, "{out}");
        hash
    }

    fn blob_file(&self, hash: &str) -> PathBuf {
        self.env
            .data()
            .join("store/blobs")
            .join(&hash[..2])
            .join(hash)
    }

    fn verify(&self, target: &str) -> (i32, String) {
        let out = self.env.run(&["verify", target]);
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

#[test]
fn publish_then_verify_then_a_flipped_image_byte_fails_naming_the_entry() {
    let n = Newsroom::new();
    let root_pk = n.env.ok(&["key", "list"]);
    let root_pk = root_pk
        .lines()
        .find(|l| l.starts_with("outlet "))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    let hash = n.publish(&[]);
    let (code, out) = n.verify(&hash);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result       VERIFIED"), "{out}");
    assert!(out.contains(&root_pk), "names the publisher: {out}");
    assert!(
        out.contains("Выборы: что произошло на самом деле"),
        "title from index.md: {out}"
    );
    assert!(out.contains("seq 1"), "{out}");
    for path in ["index.md", "img/photo.jpg", "report.pdf"] {
        assert!(out.contains(path), "{path}: {out}");
    }

    // Flip one byte of the image in the store.
    let photo_hash = blake3::hash(&n.photo).to_hex().to_string();
    let file = n.blob_file(&photo_hash);
    let mut bytes = fs::read(&file).unwrap();
    bytes[77_777] ^= 0x01;
    fs::write(&file, &bytes).unwrap();
    let (code, out) = n.verify(&hash);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NOT VERIFIED") && out.contains("img/photo.jpg"),
        "{out}"
    );
    assert!(out.contains(&photo_hash), "{out}");
}

#[test]
fn mix_and_match_bytes_of_another_entry_fail() {
    let n = Newsroom::new();
    let hash = n.publish(&[]);
    let photo_hash = blake3::hash(&n.photo).to_hex().to_string();
    let md = fs::read(n.env.work().join("article/index.md")).unwrap();
    let md_hash = blake3::hash(&md).to_hex().to_string();
    // The photo's file now holds the (genuine, signed) bytes of index.md.
    fs::copy(n.blob_file(&md_hash), n.blob_file(&photo_hash)).unwrap();
    let (code, out) = n.verify(&hash);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("img/photo.jpg"), "{out}");
}

#[test]
fn missing_files_are_reported_as_missing_not_forged() {
    let n = Newsroom::new();
    let hash = n.publish(&[]);
    let pins = n.env.ok(&["pins"]);
    let pin = pins
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .next()
        .unwrap()
        .to_owned();
    assert!(pin.starts_with("feed/") && pin.ends_with("/main"), "{pin}");
    let photo_hash = blake3::hash(&n.photo).to_hex().to_string();
    n.env.ok(&["unpin", &pin, &photo_hash]);
    n.env.ok(&["gc"]);
    let (code, out) = n.verify(&hash);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("MISSING") && out.contains("not forged"),
        "{out}"
    );
    assert!(out.contains("SIGNATURE VERIFIED"), "{out}");
}

#[test]
fn a_manifest_file_verifies_as_well_as_a_hash() {
    let n = Newsroom::new();
    let hash = n.publish(&[]);
    let bytes = n.env.run(&["cat", &hash]).stdout;
    let file = n.env.write("article.manifest", &bytes);
    let (code, out) = n.verify(file.to_str().unwrap());
    assert_eq!(code, 0, "{out}");
    // A tampered copy of the file does not.
    let mut bad = bytes.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x04;
    let file = n.env.write("tampered.manifest", &bad);
    let (code, out) = n.verify(file.to_str().unwrap());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT VERIFIED"), "{out}");
}

#[test]
fn feeds_chain_and_show_prints_json() {
    let n = Newsroom::new();
    let first = n.publish(&[]);
    let second = n.publish(&["--title", "Поправка", "--supersedes", &first]);
    let json: serde_json::Value = serde_json::from_str(&n.env.ok(&["show", &second])).unwrap();
    assert_eq!(json["seq"], 2);
    assert_eq!(json["prev"], first.as_str());
    assert_eq!(json["supersedes"], first.as_str());
    assert_eq!(json["title"], "Поправка");
    assert_eq!(json["lang"], "ru");
    assert_eq!(json["verified"], true);
    assert_eq!(json["entries"].as_array().unwrap().len(), 3);
    // The first is older now, and still genuine.
    let (code, out) = n.verify(&first);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("older article"), "{out}");
}

#[test]
fn a_revoked_signing_key_no_longer_verifies() {
    let n = Newsroom::new();
    let hash = n.publish(&[]);
    let out = n.env.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "laptop",
        "--reason",
        "laptop seized",
        "--passphrase-file",
        n.root_pass(),
    ]);
    assert_eq!(out.trim().len(), 64);
    let (code, out) = n.verify(&hash);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("revoked"), "{out}");
    let show = n.env.ok(&["key", "show", "outlet"]);
    assert!(show.contains("REVOKED"), "{show}");
}

#[test]
fn wrong_passphrase_and_damaged_key_files_give_clear_errors() {
    let n = Newsroom::new();
    let wrong = n.env.write("wrong", b"not it\n");
    let err = n.env.fails(&[
        "publish",
        "article",
        "--key",
        "laptop",
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(err.contains("wrong passphrase"), "{err}");
    let err = n
        .env
        .fails(&["publish", "article", "--key", "laptop", "--no-passphrase"]);
    assert!(err.contains("encrypted"), "{err}");
    let key_file = n.env.data().join("keys/laptop.key");
    let mut bytes = fs::read(&key_file).unwrap();
    bytes.truncate(40);
    fs::write(&key_file, &bytes).unwrap();
    let err = n.env.fails(&[
        "publish",
        "article",
        "--key",
        "laptop",
        "--passphrase-file",
        n.pass(),
    ]);
    assert!(
        err.contains("laptop.key") && err.contains("damaged"),
        "{err}"
    );
    let err = n
        .env
        .fails(&["publish", "article", "--key", "nobody", "--no-passphrase"]);
    assert!(err.contains("no key named"), "{err}");
    // Key files are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(n.env.data().join("keys/outlet.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_root_key_can_sign_directly_and_keys_show_their_delegations() {
    let env = Env::new();
    env.ok(&["key", "new", "--name", "solo", "--no-passphrase"]);
    env.ok(&[
        "key",
        "delegate",
        "--root",
        "solo",
        "--name",
        "desk",
        "--valid-for",
        "90d",
        "--feed",
        "sport",
        "--no-passphrase",
    ]);
    let show = env.ok(&["key", "show", "solo"]);
    assert!(
        show.contains("kind         root") && show.contains("feed sport"),
        "{show}"
    );
    env.write("note.txt", b"A short statement.");
    let hash = env.ok(&["publish", "note.txt", "--key", "solo", "--no-passphrase"]);
    let out = env.ok(&["verify", hash.trim()]);
    assert!(
        out.contains("the publisher's root key") && out.contains("VERIFIED"),
        "{out}"
    );
    // A feed-limited key cannot publish elsewhere.
    let err = env.fails(&[
        "publish",
        "note.txt",
        "--key",
        "desk",
        "--feed",
        "politics",
        "--no-passphrase",
    ]);
    assert!(err.contains("sport"), "{err}");
}

/// The same key signing two different articles as sequence 2 (a stolen key,
/// or a newsroom whose machine was cloned) is caught by any node that saw
/// one of them, across restarts.
#[test]
fn equivocation_is_reported_by_verify() {
    let n = Newsroom::new();
    n.publish(&[]);
    // Clone the newsroom's data dir: both copies are now at seq 1.
    let clone = n.env.tmp.path().join("clone");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(n.env.data())
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    let ours = n.publish(&["--title", "Ours"]);
    let theirs = n
        .env
        .cmd()
        .env("TAMIZDAT_DIR", &clone)
        .args(["publish", "article", "--key", "laptop", "--title", "Theirs"])
        .args(["--passphrase-file", n.pass()])
        .output()
        .unwrap();
    assert!(theirs.status.success());
    let theirs = String::from_utf8(theirs.stdout).unwrap().trim().to_owned();
    assert_ne!(ours, theirs);
    let bytes = n
        .env
        .cmd()
        .env("TAMIZDAT_DIR", &clone)
        .args(["cat", &theirs])
        .output()
        .unwrap()
        .stdout;
    let file = n.env.write("theirs.manifest", &bytes);
    let (code, out) = n.verify(file.to_str().unwrap());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("EQUIVOCATION") && out.contains(&ours), "{out}");
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), typing `input`.
fn on_terminal(env: &Env, args: &str, input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{} {args}", common::BIN), "/dev/null"])
        .current_dir(env.work())
        .env("TAMIZDAT_DIR", env.data())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_terminal_asks_twice_for_a_new_passphrase() {
    let env = Env::new();
    let (ok, out) = on_terminal(
        &env,
        "key new --name typed",
        "hunter2 hunter2\nhunter2 hunter2\n",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("New passphrase") && out.contains("Repeat"),
        "{out}"
    );
    let info = fs::read(env.data().join("keys/typed.key")).unwrap();
    assert_eq!(info.len(), 150, "stored encrypted");
    // The typed passphrase unlocks it.
    let pass = env.write("pass", b"hunter2 hunter2\n");
    env.ok(&[
        "key",
        "delegate",
        "--root",
        "typed",
        "--name",
        "d",
        "--valid-for",
        "1d",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--new-passphrase-file",
        env.write("desk", b"desk passphrase\n").to_str().unwrap(),
    ]);
    // Two different answers create nothing.
    let (ok, out) = on_terminal(&env, "key new --name typo", "one\ntwo\n");
    assert!(!ok && out.contains("differ"), "{out}");
    assert!(!env.data().join("keys/typo.key").exists());
}

/// The root key stays offline: its revocation reaches the online node as a
/// file, and takes effect there on import.
#[test]
fn a_revocation_made_offline_takes_effect_where_it_is_imported() {
    let n = Newsroom::new();
    // The newsroom's online node: only the signing key, its delegation, and
    // the record of where the feeds stand.
    let online = Env::new();
    let keys = online.data().join("keys");
    fs::create_dir_all(&keys).unwrap();
    for f in ["laptop.key", "laptop.delegation", "heads.json"] {
        fs::copy(n.env.data().join("keys").join(f), keys.join(f)).unwrap();
    }
    fs::create_dir_all(online.work().join("article")).unwrap();
    fs::write(online.work().join("article/index.md"), "# Online\n").unwrap();
    // The feed's first article, made on a machine other than the root's:
    // it cannot know that no other machine published, so it says so.
    let hash = online.ok(&[
        "publish",
        "article",
        "--key",
        "laptop",
        "--first",
        "--passphrase-file",
        n.pass(),
    ]);
    let hash = hash.trim();
    assert!(online.run(&["verify", hash]).status.success());
    // Offline: revoke. Online: nothing changes until the file is imported.
    let rev_id = n.env.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "laptop",
        "--passphrase-file",
        n.root_pass(),
    ]);
    let rev_file = n
        .env
        .data()
        .join("keys/revocations")
        .join(format!("{}.revocation", rev_id.trim()));
    assert!(online.run(&["verify", hash]).status.success());
    online.ok(&["key", "import", rev_file.to_str().unwrap()]);
    let out = online.run(&["verify", hash]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let err = online.fails(&[
        "publish",
        "article",
        "--key",
        "laptop",
        "--passphrase-file",
        n.pass(),
    ]);
    assert!(err.contains("revoked"), "{err}");
    // A tampered revocation is refused.
    let mut bad = fs::read(&rev_file).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad_file = online.write("bad.revocation", &bad);
    let err = online.fails(&["key", "import", bad_file.to_str().unwrap()]);
    assert!(err.contains("bad.revocation"), "{err}");
}

#[test]
fn a_signing_key_never_shares_the_roots_passphrase() {
    let env = Env::new();
    let pass = env.write("p", b"same\n");
    let p = pass.to_str().unwrap();
    env.ok(&["key", "new", "--name", "root", "--passphrase-file", p]);
    let delegate = |extra: &[&str]| {
        let mut args = vec![
            "key",
            "delegate",
            "--root",
            "root",
            "--name",
            "desk",
            "--valid-for",
            "1d",
            "--passphrase-file",
            p,
        ];
        args.extend_from_slice(extra);
        env.fails(&args)
    };
    assert!(delegate(&[]).contains("--new-passphrase-file"));
    assert!(delegate(&["--new-passphrase-file", p]).contains("must differ"));
    assert!(!env.data().join("keys/desk.key").exists());
}

/// Blob files in the store, and what `keys/heads.json` says: what a publish
/// that was refused must leave as it was.
fn stored(env: &Env) -> (usize, Option<Vec<u8>>) {
    let blobs = walk(&env.data().join("store/blobs"));
    (blobs, fs::read(env.data().join("keys/heads.json")).ok())
}

fn walk(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// A signature is for good: `publish` checks the article before it signs,
/// and the path before it asks for a passphrase.
#[test]
fn publish_checks_before_it_signs() {
    let n = Newsroom::new();
    let art = n.env.work().join("article");
    fs::write(
        art.join("index.md"),
        "# Заголовок\n\n![фото](img/photo.jpg) ![нет](img/missing.jpg)\n\n\
         ![трекер](https://tracker.example/pixel.png) [источник](https://example.org/)\n",
    )
    .unwrap();
    let before = stored(&n.env);
    let base = ["publish", "article", "--key", "laptop", "--passphrase-file"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.push(n.pass());
        args.extend_from_slice(extra);
        n.env.run(&args)
    };

    // --strict: each reference named, nothing signed, nothing stored.
    let out = run(&["--lang", "ru", "--strict"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("img/missing.jpg") && err.contains("no such file"),
        "{err}"
    );
    assert!(
        err.contains("tracker.example") && err.contains("another server"),
        "{err}"
    );
    assert!(
        !err.contains("example.org/"),
        "a link the reader follows is kept: {err}"
    );
    assert!(err.contains("nothing signed or stored"), "{err}");
    assert_eq!(stored(&n.env), before);

    // A language that is not one: refused before anything happens.
    for bad in ["russian", "ru_RU", "xx-ZZZZ"] {
        let out = run(&["--lang", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(
            err.contains("--lang") && err.contains("BCP 47"),
            "{bad}: {err}"
        );
        assert_eq!(stored(&n.env), before, "{bad}");
    }

    // A path that does not exist is named before any passphrase is asked.
    let (ok, term) = on_terminal(&n.env, "publish artcle --key laptop", "");
    assert!(!ok);
    assert!(term.contains("artcle"), "{term}");
    assert!(!term.contains("Passphrase"), "{term}");

    // Without --strict: warned, summarised, signed.
    let out = run(&["--lang", "fa-ir"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: index.md: img src \"img/missing.jpg\""),
        "{err}"
    );
    assert!(
        err.contains("signing \"Заголовок\" (fa-IR): 3 files"),
        "{err}"
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let shown: serde_json::Value = serde_json::from_str(&n.env.ok(&["show", &hash])).unwrap();
    assert_eq!(shown["lang"], "fa-IR", "{shown}");
}
