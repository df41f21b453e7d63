//! Bundles through the real binary: `tamizdat export` on one data dir,
//! `tamizdat import` on another, genuine and damaged, offline and between
//! two groups of running nodes with no connection between them.

mod common;

use std::{collections::BTreeSet, path::Path};

use common::{BIN, Env, http_get, node_command, random, sigterm, start_node, wait_verified};

/// A newsroom data dir with a root key `outlet` and a signing key `desk`;
/// returns the root public key.
fn outlet_keys(env: &Env) -> String {
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

/// Publishes an article with an index.md and an image; returns its hash.
fn article(env: &Env, title: &str, image: &[u8]) -> String {
    let dir = env.work().join(format!("story-{title}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.md"),
        format!("# {title}\n\nWhat happened.\n\n![photo](photo.png)\n"),
    )
    .unwrap();
    std::fs::write(dir.join("photo.png"), image).unwrap();
    let out = env.ok(&[
        "publish",
        dir.to_str().unwrap(),
        "--key",
        "desk",
        "--no-passphrase",
    ]);
    out.trim().to_owned()
}

/// The blob hashes `ls` lists.
fn hashes(env: &Env) -> BTreeSet<String> {
    env.ok(&["ls"])
        .lines()
        .map(|l| l[..64].to_owned())
        .collect()
}

/// A reader's data dir that follows `root`.
fn reader(root: &str) -> Env {
    let env = Env::new();
    env.ok(&["follow", root, "--name", "The Outlet"]);
    env
}

/// Imports `bundle` into `env`: (exit code, stdout, stderr).
fn import(env: &Env, bundle: &Path) -> (i32, String, String) {
    let out = env.run(&["import", bundle.to_str().unwrap()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("found in the bundle")
}

/// Three articles of one outlet; the second reuses the first's image.
struct Fixture {
    newsroom: Env,
    root: String,
    ids: Vec<String>,
    images: Vec<Vec<u8>>,
    bundle: Vec<u8>,
}

fn fixture() -> Fixture {
    let newsroom = Env::new();
    let root = outlet_keys(&newsroom);
    let images = vec![random(40_000, 1), random(60_000, 3)];
    let ids = vec![
        article(&newsroom, "First", &images[0]),
        article(&newsroom, "Second", &images[0]),
        article(&newsroom, "Third", &images[1]),
    ];
    let out = newsroom.work().join("all.bundle");
    let printed = newsroom.ok(&["export", "-o", out.to_str().unwrap()]);
    let bundle = std::fs::read(&out).unwrap();
    // It prints the file's BLAKE3 hash, as b3sum does, for the carrier.
    assert_eq!(
        printed,
        format!("{}  {}\n", blake3::hash(&bundle), out.display())
    );
    Fixture {
        newsroom,
        root,
        ids,
        images,
        bundle,
    }
}

impl Fixture {
    /// The manifest envelope of article `i`, as the newsroom stores it.
    fn manifest(&self, i: usize) -> Vec<u8> {
        let out = self
            .newsroom
            .cmd()
            .args(["cat", &self.ids[i]])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        self.newsroom.write(name, bytes)
    }
}

#[test]
fn a_bundle_carries_a_feed_to_a_follower_and_importing_twice_is_harmless() {
    let f = fixture();
    let home = reader(&f.root);
    let path = f.write("copy.bundle", &f.bundle);
    let (code, out, err) = import(&home, &path);
    assert_eq!(code, 0, "{err}");
    for (id, title) in f.ids.iter().zip(["First", "Second", "Third"]) {
        assert!(
            out.lines()
                .any(|l| l.starts_with("imported  ") && l.contains(id) && l.ends_with(title)),
            "{out}"
        );
        let v = home.ok(&["verify", id]);
        assert!(v.contains("VERIFIED"), "{v}");
    }
    assert!(err.contains("imported 3 articles"), "{err}");
    // Exactly what the newsroom holds of them, nothing else.
    assert_eq!(hashes(&home), hashes(&f.newsroom));
    // An article recorded here whose files went missing (a download the
    // shutdown cut off) is completed by the bundle.
    let image = blake3::hash(&f.images[1]).to_string();
    let pin = home
        .ok(&["pins"])
        .lines()
        .find(|l| l.ends_with(&image))
        .unwrap()
        .split("  ")
        .next()
        .unwrap()
        .to_owned();
    home.ok(&["unpin", &pin, &image]);
    home.ok(&["gc"]);
    assert_eq!(home.run(&["verify", &f.ids[2]]).status.code(), Some(3));
    let (code, out, err) = import(&home, &path);
    assert_eq!(code, 0, "{err}");
    assert!(imported(&out, &f.ids[2]), "{out}");
    assert!(home.ok(&["verify", &f.ids[2]]).contains("VERIFIED"));
    // Again: nothing changes, nothing is refused.
    let (code, out, err) = import(&home, &path);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("present")).count(), 3);
    assert_eq!(hashes(&home), hashes(&f.newsroom));
    // The same report as JSON, one object per line, for scripts.
    let out = home.ok(&["import", path.to_str().unwrap(), "--json"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l["status"] == "present"), "{out}");
    let ids: BTreeSet<String> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, f.ids.iter().cloned().collect::<BTreeSet<_>>(), "{out}");

    // Choosing: from the second article on; one article by hash.
    let later = f.newsroom.work().join("later.bundle");
    f.newsroom
        .ok(&["export", "--since-seq", "2", "-o", later.to_str().unwrap()]);
    let one = f.newsroom.work().join("one.bundle");
    f.newsroom.ok(&[
        "export",
        "--manifest",
        &f.ids[2],
        "-o",
        one.to_str().unwrap(),
    ]);
    let other = reader(&f.root);
    let (code, out, err) = import(&other, &later);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&f.ids[0]) && out.contains(&f.ids[1]) && out.contains(&f.ids[2]));
    let third = reader(&f.root);
    let (code, out, _) = import(&third, &one);
    assert_eq!((code, out.lines().count()), (0, 1), "{out}");
    assert!(out.contains(&f.ids[2]));
    assert_eq!(
        third.run(&["verify", &f.ids[0]]).status.code(),
        Some(1),
        "only the chosen article came"
    );
    // A filter that matches nothing is an error, not an empty bundle.
    let err = f.newsroom.fails(&[
        "export",
        "--publisher",
        // A real key of a publisher this machine holds nothing of.
        &tamizdat_sign::SecretKey::from_seed(&[9; 32])
            .public()
            .to_string(),
        "-o",
        "none.bundle",
    ]);
    assert!(err.contains("nothing to export"), "{err}");
    assert!(!f.newsroom.work().join("none.bundle").exists());
}

#[test]
fn a_publisher_not_followed_is_skipped_with_what_to_do() {
    let f = fixture();
    let stranger = Env::new();
    let path = f.write("copy.bundle", &f.bundle);
    let (code, _, err) = import(&stranger, &path);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not follow") && err.contains(&format!("tamizdat follow {}", f.root)),
        "{err}"
    );
    assert!(hashes(&stranger).is_empty(), "nothing kept");
}

/// Imports a damaged copy into a fresh follower; returns it with the
/// command's stdout and stderr, after checking the exit status and that
/// nothing but the newsroom's own blobs was kept.
fn import_damaged(f: &Fixture, name: &str, bytes: &[u8]) -> (Env, String, String) {
    let home = reader(&f.root);
    let path = f.write(name, bytes);
    let (code, out, err) = import(&home, &path);
    assert_eq!(code, 1, "{name}: {out}{err}");
    let kept = hashes(&home);
    assert!(
        kept.is_subset(&hashes(&f.newsroom)),
        "{name}: a blob the newsroom never made was kept"
    );
    (home, out, err)
}

fn imported(out: &str, id: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with("imported  ") && l.contains(id))
}

#[test]
fn a_flipped_byte_in_a_file_a_manifest_or_a_signature_refuses_that_article_only() {
    let f = fixture();
    let third_image = blake3::hash(&f.images[1]).to_string();

    // In the third article's image.
    let mut bad = f.bundle.clone();
    let at = find(&bad, &f.images[1][1000..1064]);
    bad[at + 7] ^= 0x01;
    let (home, out, err) = import_damaged(&f, "blob.bundle", &bad);
    assert!(
        imported(&out, &f.ids[0]) && imported(&out, &f.ids[1]),
        "{out}"
    );
    assert!(!imported(&out, &f.ids[2]));
    assert!(
        err.contains("\"Third\"") && err.contains("photo.png") && err.contains(&third_image),
        "names the article, the file and its hash: {err}"
    );
    assert!(err.contains("Nothing of it was kept"), "{err}");
    assert!(!hashes(&home).contains(&third_image));
    assert!(!hashes(&home).contains(&f.ids[2]));

    // In the second article's manifest (its title).
    let mut bad = f.bundle.clone();
    let m = f.manifest(1);
    let at = find(&bad, &m) + find(&m, b"Second");
    bad[at] ^= 0x20;
    let (home, out, err) = import_damaged(&f, "manifest.bundle", &bad);
    assert!(imported(&out, &f.ids[0]), "{out}");
    assert!(
        !hashes(&home).contains(&f.ids[1]),
        "the damaged manifest is not kept"
    );
    assert!(err.contains("does not verify"), "{err}");
    // The third article still holds: its image came with it.
    assert!(imported(&out, &f.ids[2]), "{out}");

    // In the first article's signature.
    let mut bad = f.bundle.clone();
    let m = f.manifest(0);
    let at = find(&bad, &m) + m.len() - 10;
    bad[at] ^= 0x80;
    let (home, out, err) = import_damaged(&f, "signature.bundle", &bad);
    assert!(!imported(&out, &f.ids[0]), "{out}");
    assert!(err.contains("signature"), "{err}");
    assert!(!hashes(&home).contains(&f.ids[0]));
    // The second shares its image, and carries it too: it stands alone.
    assert!(imported(&out, &f.ids[1]), "{out}");
}

#[test]
fn a_truncated_bundle_keeps_only_the_whole_verified_articles_before_the_cut() {
    let f = fixture();
    let cut = find(&f.bundle, &f.images[1][30_000..30_064]);
    let (home, out, err) = import_damaged(&f, "cut.bundle", &f.bundle[..cut]);
    assert!(
        imported(&out, &f.ids[0]) && imported(&out, &f.ids[1]),
        "{out}"
    );
    assert!(!imported(&out, &f.ids[2]));
    assert!(err.contains("ends early"), "{err}");
    assert!(
        err.contains("The 2 articles imported before that point were each verified"),
        "{err}"
    );
    assert!(!hashes(&home).contains(&f.ids[2]));
    // Cut anywhere, it never keeps a byte the newsroom did not make, and a
    // later whole copy completes it.
    for cut in [0, 10, 17, 40, 300, f.bundle.len() / 2, f.bundle.len() - 1] {
        let (home, _, _) = import_damaged(&f, "cut.bundle", &f.bundle[..cut]);
        let path = f.write("whole.bundle", &f.bundle);
        let (code, _, err) = import(&home, &path);
        assert_eq!(code, 0, "after a cut at {cut}: {err}");
        assert_eq!(hashes(&home), hashes(&f.newsroom));
    }
}

/// The check value of a frame header, as `docs/protocol.md` defines it.
fn check(kind: u8, len: u64, hash: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(b"tamizdat/bundle/frame/v1\n");
    h.update(&[kind]);
    h.update(&len.to_le_bytes());
    h.update(hash);
    h.finalize().as_bytes()[..8].try_into().unwrap()
}

#[test]
fn a_bundle_claiming_huge_sizes_is_refused_before_anything_is_read() {
    let f = fixture();
    let image = blake3::hash(&f.images[0]);
    // The first image's frame header, rewritten with a valid check value
    // around a claim of 4 EiB.
    let mut bad = f.bundle.clone();
    let mut header = vec![4u8];
    header.extend((f.images[0].len() as u64).to_le_bytes());
    header.extend(image.as_bytes());
    let at = find(&bad, &header);
    let huge = 1u64 << 62;
    bad[at + 1..at + 9].copy_from_slice(&huge.to_le_bytes());
    bad[at + 41..at + 49].copy_from_slice(&check(4, huge, image.as_bytes()));
    let (home, out, err) = import_damaged(&f, "huge.bundle", &bad);
    assert!(err.contains("over the limit"), "{err}");
    assert!(out.lines().all(|l| !l.starts_with("imported")), "{out}");
    assert!(!hashes(&home).contains(&f.ids[0]));
    // A header whose length was changed without its check value.
    let mut bad = f.bundle.clone();
    bad[at + 8] = 0x7f;
    let (_, _, err) = import_damaged(&f, "header.bundle", &bad);
    assert!(err.contains("does not match its check value"), "{err}");
    // Not a bundle at all.
    let home = reader(&f.root);
    let path = f.write("not.bundle", b"PK\x03\x04 a zip file");
    let (code, _, err) = import(&home, &path);
    assert_eq!(code, 1);
    assert!(err.contains("not a tamizdat bundle"), "{err}");
}

/// Articles their publisher withdrew (by revoking the key that signed
/// them) are left out of an export as the publisher wants: said, and no
/// error, so a nightly export keeps working.
#[test]
fn withdrawn_articles_are_left_out_of_an_export_without_an_error() {
    let f = fixture();
    f.newsroom.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "desk",
        "--no-passphrase",
    ]);
    // The root signs a new article itself.
    let dir = f.newsroom.work().join("story-after");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.md"), "# After\n\nStill here.\n").unwrap();
    let after = f.newsroom.ok(&[
        "publish",
        dir.to_str().unwrap(),
        "--key",
        "outlet",
        "--no-passphrase",
    ]);
    let after = after.trim().to_owned();
    let out = f.newsroom.work().join("nightly.bundle");
    for html in [false, true] {
        let args: Vec<String> = if html {
            vec![
                "export".into(),
                "--html".into(),
                f.newsroom.work().join("site").display().to_string(),
            ]
        } else {
            vec!["export".into(), "-o".into(), out.display().to_string()]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = f.newsroom.run(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains("3 withdrawn article(s) left out: their publisher revoked the key"),
            "{err}"
        );
    }
    let home = reader(&f.root);
    let (code, listed, err) = import(&home, &out);
    assert_eq!(code, 0, "{err}");
    assert!(listed.contains(&after), "{listed}");
    for id in &f.ids {
        assert!(!listed.contains(id.as_str()), "{listed}");
    }
}

#[test]
fn a_revoked_keys_article_is_refused_with_the_revocation_the_bundle_carries() {
    use tamizdat_node::bundle::{Info, Writer};
    let f = fixture();
    let manifest = f.manifest(0);
    // The newsroom learns its signing key leaked and revokes it.
    f.newsroom.ok(&[
        "key",
        "revoke",
        "--root",
        "outlet",
        "desk",
        "--no-passphrase",
    ]);
    let revocation = std::fs::read_dir(f.newsroom.data().join("keys/revocations"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let revocation = std::fs::read(revocation).unwrap();
    // Its own export now leaves the article out.
    let err = f.newsroom.fails(&["export", "-o", "after.bundle"]);
    assert!(err.contains("revoked"), "{err}");
    // An old bundle, made before the revocation, still circulates: where
    // the revocation is known, its articles are refused.
    let informed = reader(&f.root);
    let rev_file = f.write("leak.revocation", &revocation);
    informed.ok(&["key", "import", rev_file.to_str().unwrap()]);
    let old = f.write("old.bundle", &f.bundle);
    let (code, out, err) = import(&informed, &old);
    assert_eq!(code, 1);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("refused")).count(),
        3,
        "{out}"
    );
    assert!(err.contains("revoked"), "{err}");
    for id in &f.ids {
        assert!(!hashes(&informed).contains(id));
    }
    // A bundle made by someone else still carries the article, and the
    // revocation: the importer must apply the one before judging the other.
    let mut w = Writer::new(Vec::new(), &Info::default()).unwrap();
    w.key(&revocation).unwrap();
    w.manifest(&manifest).unwrap();
    w.blob(
        &blake3::hash(&f.images[0]).to_string().parse().unwrap(),
        f.images[0].len() as u64,
        &f.images[0][..],
    )
    .unwrap();
    let text = "# First\n\nWhat happened.\n\n![photo](photo.png)\n".to_owned();
    w.blob(
        &blake3::hash(text.as_bytes()).to_string().parse().unwrap(),
        text.len() as u64,
        text.as_bytes(),
    )
    .unwrap();
    let (bad, _) = w.finish().unwrap();
    let (home, out, err) = import_damaged(&f, "revoked.bundle", &bad);
    assert!(err.contains("revoked"), "{err}");
    assert!(!imported(&out, &f.ids[0]));
    assert!(!hashes(&home).contains(&f.ids[0]));
    assert!(err.contains("1 revocations applied"), "{err}");
}

#[test]
fn two_groups_with_no_connection_exchange_a_feed_by_bundle() {
    // Group A: the newsroom's node and a volunteer abroad.
    let desk_env = Env::new();
    let root = outlet_keys(&desk_env);
    let abroad = reader(&root);
    let mut desk = start_node(node_command(BIN, &desk_env));
    let mut volunteer = start_node({
        let mut c = node_command(BIN, &abroad);
        c.args(["--bootstrap", &desk.addr]);
        c
    });
    // Group B, inside: two followers that know only each other.
    let inside = reader(&root);
    let neighbour = reader(&root);
    let mut near = start_node(node_command(BIN, &inside));
    let mut far = start_node({
        let mut c = node_command(BIN, &neighbour);
        c.args(["--bootstrap", &near.addr]);
        c
    });
    let first = article(&desk_env, "Before the shutdown", &random(200_000, 7));
    wait_verified(&abroad, &first);
    // The volunteer exports while its node runs. By default the bundle
    // names no node: a seized stick must not say where it came from.
    let carried = abroad.work().join("usb.bundle");
    abroad.ok(&["export", "-o", carried.to_str().unwrap()]);
    let bytes = std::fs::read(&carried).unwrap();
    let (peer_id, ip) = (
        volunteer.addr.rsplit('/').next().unwrap(),
        "/ip4/127.0.0.1/tcp/",
    );
    assert!(
        !bytes
            .windows(peer_id.len())
            .any(|w| w == peer_id.as_bytes())
            && !bytes.windows(ip.len()).any(|w| w == ip.as_bytes()),
        "no peer id, no address in a plain export"
    );
    // Asked for, they are in it, as a bootstrap hint.
    abroad.ok(&[
        "export",
        "-o",
        carried.to_str().unwrap(),
        "--with-addresses",
    ]);
    // Group B never heard of it.
    assert!(!hashes(&inside).contains(&first));
    let (code, out, err) = import(&inside, &carried);
    assert_eq!(code, 0, "{err}");
    assert!(imported(&out, &first), "{out}");
    assert!(
        err.contains(&volunteer.addr),
        "the exporting node's address, as a bootstrap hint: {err}"
    );
    // The importing node announces it; its neighbour replicates it, verified.
    wait_verified(&neighbour, &first);
    let (code, page) = http_get(&far.gateway, &format!("/m/{first}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Before the shutdown") && page.contains("The Outlet"));
    assert!(page.contains("This node checked"), "{page}");

    // A second article arrives damaged on its way in: group B refuses it
    // and passes on nothing of it.
    let image = random(90_000, 8);
    let second = article(&desk_env, "During the shutdown", &image);
    wait_verified(&abroad, &second);
    abroad.ok(&["export", "-o", carried.to_str().unwrap()]);
    let mut bytes = std::fs::read(&carried).unwrap();
    let at = find(&bytes, &image[5000..5064]);
    bytes[at] ^= 0xff;
    std::fs::write(&carried, &bytes).unwrap();
    let (code, out, err) = import(&inside, &carried);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("present   {first}")), "{out}{err}");
    assert!(out.contains(&format!("refused   {second}")), "{out}");
    // The newsroom's own store holds every genuine object.
    let genuine = hashes(&desk_env);
    for env in [&inside, &neighbour] {
        let held = hashes(env);
        assert!(!held.contains(&second));
        assert!(held.is_subset(&genuine), "nothing forged or damaged kept");
    }
    for node in [&mut far, &mut near, &mut volunteer, &mut desk] {
        sigterm(node);
    }
}

#[test]
fn export_html_writes_pages_a_reader_opens_and_checks_without_a_node() {
    let f = fixture();
    let dir = f.newsroom.work().join("usb");
    f.newsroom.ok(&["export", "--html", dir.to_str().unwrap()]);
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for (id, title) in f.ids.iter().zip(["First", "Second", "Third"]) {
        assert!(index.contains(title), "{index}");
        let page = std::fs::read_to_string(dir.join(format!("articles/{id}.html"))).unwrap();
        assert!(
            page.contains(&format!("<h1><bdi>{title}</bdi></h1>")),
            "{page}"
        );
        assert!(page.contains(&f.root), "the publisher's key on the page");
        assert!(!page.contains("<script"), "no script");
        // The signed manifest beside it verifies with nothing but tamizdat.
        let manifest = dir.join(format!("manifests/{id}.manifest"));
        assert_eq!(
            std::fs::read(&manifest).unwrap(),
            f.manifest(f.ids.iter().position(|i| i == id).unwrap())
        );
        let stranger = Env::new();
        let out = stranger.run(&["verify", manifest.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "signature verified, files not added here"
        );
    }
    let image = dir.join(format!("articles/{}/photo.png", f.ids[2]));
    assert_eq!(std::fs::read(image).unwrap(), f.images[1]);
    assert!(
        std::fs::read_to_string(dir.join("VERIFY.txt"))
            .unwrap()
            .contains("b3sum")
    );
    // A folder that is not empty is never written into.
    let err = f
        .newsroom
        .fails(&["export", "--html", dir.to_str().unwrap()]);
    assert!(err.contains("must be new or empty"), "{err}");
    // The pages in the language asked for; one there are no pages in is
    // refused, saying which there are.
    let ru = f.newsroom.work().join("site-ru");
    f.newsroom
        .ok(&["export", "--html", ru.to_str().unwrap(), "--lang", "ru"]);
    let index = std::fs::read_to_string(ru.join("index.html")).unwrap();
    assert!(
        index.contains("<html lang=\"ru\">") && index.contains("Подписанные статьи"),
        "{index}"
    );
    let de = f.newsroom.work().join("site-de");
    let err = f
        .newsroom
        .fails(&["export", "--html", de.to_str().unwrap(), "--lang", "de"]);
    assert!(
        err.contains("--lang \"de\": the pages can be written in en, ru"),
        "{err}"
    );
    assert!(!de.exists());
}

#[test]
fn a_bundle_streams_through_a_pipe() {
    use std::process::Stdio;
    let f = fixture();
    let home = reader(&f.root);
    let mut export = f
        .newsroom
        .cmd()
        .args(["export", "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let import = home
        .cmd()
        .args(["import", "-"])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert_eq!(hashes(&home), hashes(&f.newsroom));
}
