//! The static HTML export: real signed articles in a real store, written to
//! a folder, then looked at as a reader would: in headless Chromium from
//! `file://` with the network off, with `b3sum --check`, and byte by byte.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use common::cdp::{Cdp, Chromium, Res};
use common::*;
use serde_json::{Value, json};
use tamizdat_gateway::html::{self, Article, Error};
use tamizdat_sign::{Manifest, Signed, TrustState, VerifiedManifest, Verifier};
use tamizdat_store::{Hash, Options, Store};
use tempfile::TempDir;

/// A store with nothing else around it.
fn store() -> (TempDir, Arc<Store>) {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    (dir, store)
}

fn verified(signed: &Signed<Manifest>) -> VerifiedManifest {
    Verifier::new()
        .verify(signed.bytes(), &TrustState::default())
        .unwrap()
}

fn article(signed: &Signed<Manifest>, name: Option<&str>, followed: bool) -> Article {
    Article {
        manifest: verified(signed),
        publisher_name: name.map(str::to_owned),
        followed,
        card: None,
    }
}

/// What the binary passes: the store's verifying reader.
fn reader_of(store: &Arc<Store>) -> impl Fn(&Hash) -> io::Result<Box<dyn Read + Send>> + use<> {
    let store = store.clone();
    move |h: &Hash| {
        store
            .reader(h)
            .map(|r| Box::new(r) as Box<dyn Read + Send>)
            .map_err(io::Error::other)
    }
}

fn id_of(signed: &Signed<Manifest>) -> Hash {
    Hash::from_bytes(signed.id())
}

/// Every file under `dir`, relative, `/`-separated. Links are listed as
/// files (and never followed).
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// `B3SUMS` as path → hash.
fn sums(dir: &Path) -> BTreeMap<String, Hash> {
    std::fs::read_to_string(dir.join("B3SUMS"))
        .unwrap()
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").expect("b3sum line");
            (path.to_owned(), hash.parse().unwrap())
        })
        .collect()
}

const HOSTILE_MD: &str = "# Свобода слова\n\n\
    Независимые журналисты продолжают работу. ![фото](photo.png)\n\n\
    ![tracker](https://example.org/pixel.png) <img src=\"//example.org/p.gif\">\n\n\
    <script>window.__pwned = 1</script>\n\
    <img src=\"nothing\" onerror=\"window.__pwned = 2\">\n\
    <a href=\"javascript:window.__pwned=3\">ссылка</a>\n\n\
    [Исходная страница](evil.html) и [схема](chart.svg).\n";

const EVIL_HTML: &str = "<html><body><script>window.__pwned = 4</script><h1>x</h1></body></html>";
const EVIL_SVG: &str =
    "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>window.__pwned = 5</script></svg>";

/// An article in Russian with an image, hostile markup and two files that
/// would run script if a browser opened them as what they claim to be.
fn hostile_article(store: &Store, outlet: &Outlet) -> Signed<Manifest> {
    sign(
        store,
        outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![
                ("index.md", HOSTILE_MD.as_bytes().to_vec(), "text/markdown"),
                ("photo.png", PNG.to_vec(), "image/png"),
                ("evil.html", EVIL_HTML.as_bytes().to_vec(), "text/html"),
                ("chart.svg", EVIL_SVG.as_bytes().to_vec(), "image/svg+xml"),
            ],
            supersedes: None,
        },
    )
}

/// What the browser test reads off the pages.
#[derive(Debug)]
struct Seen {
    index_title: Value,
    listed: Value,
    title: Value,
    heading: Value,
    fingerprint: Value,
    image_loaded: Value,
    styled: Value,
    pwned: Vec<Value>,
    png: Vec<u8>,
    evil_type: Value,
    svg_type: Value,
    requests: Vec<String>,
}

fn look_at(index: &str) -> Res<Seen> {
    let chromium = Chromium::launch()?;
    let seen = (|| -> Res<Seen> {
        let mut cdp = Cdp::connect(&chromium.ws_url)?;
        let sid = cdp.new_page()?;
        let s = Some(sid.as_str());
        cdp.call(s, "Network.enable", json!({}))?;
        cdp.call(
            s,
            "Network.emulateNetworkConditions",
            json!({ "offline": true, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )?;
        cdp.navigate(&sid, index)?;
        let index_title = cdp.eval(&sid, "document.title")?;
        let listed = cdp.eval(
            &sid,
            "[...document.querySelectorAll('li.article > a')].map(a => a.textContent)",
        )?;
        let pwned_now = |cdp: &mut Cdp| {
            cdp.eval(
                &sid,
                "typeof window.__pwned === 'undefined' ? null : window.__pwned",
            )
        };
        let mut pwned = vec![pwned_now(&mut cdp)?];
        // Follow the link as a reader would.
        let clicked = cdp.eval(
            &sid,
            "(() => { const a = [...document.querySelectorAll('li.article > a')]\
             .find(a => a.textContent === 'Свобода слова'); if (!a) return false; a.click(); return true; })()",
        )?;
        if clicked != true {
            return Err("no link to the article on the index".into());
        }
        cdp.wait_event(&sid, "Page.loadEventFired")?;
        let title = cdp.eval(&sid, "document.title")?;
        let heading = cdp.eval(&sid, "document.querySelector('article h1').textContent")?;
        let fingerprint = cdp.eval(&sid, "document.getElementById('fingerprint').textContent")?;
        let image_loaded = cdp.eval(
            &sid,
            "(() => { const i = document.querySelector('article img'); \
             return !!i && i.complete && i.naturalWidth === 16; })()",
        )?;
        let styled = cdp.eval(
            &sid,
            "getComputedStyle(document.querySelector('section.badge')).borderTopStyle",
        )?;
        pwned.push(pwned_now(&mut cdp)?);
        let shot = cdp.call(
            s,
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot")?)?;
        let href = |cdp: &mut Cdp, text: &str| -> Res<String> {
            let v = cdp.eval(
                &sid,
                &format!(
                    "(() => {{ const a = [...document.querySelectorAll('article a')]\
                     .find(a => a.textContent === '{text}'); return a ? a.href : null; }})()"
                ),
            )?;
            Ok(v.as_str()
                .ok_or(format!("no link {text:?} in the article"))?
                .to_owned())
        };
        let evil = href(&mut cdp, "Исходная страница")?;
        let svg = href(&mut cdp, "схема")?;
        cdp.navigate(&sid, &evil)?;
        let evil_type = cdp.eval(&sid, "document.contentType")?;
        pwned.push(pwned_now(&mut cdp)?);
        cdp.navigate(&sid, &svg)?;
        let svg_type = cdp.eval(&sid, "document.contentType")?;
        pwned.push(pwned_now(&mut cdp)?);
        let requests = cdp
            .take_events(&sid, "Network.requestWillBeSent")?
            .iter()
            .filter_map(|e| e["request"]["url"].as_str().map(str::to_owned))
            .collect();
        let _ = cdp.call(None, "Browser.close", json!({}));
        Ok(Seen {
            index_title,
            listed,
            title,
            heading,
            fingerprint,
            image_loaded,
            styled,
            pwned,
            png,
            evil_type,
            svg_type,
            requests,
        })
    })();
    seen.map_err(|e| format!("{e}\n--- chromium ---\n{}", chromium.tail()).into())
}

#[test]
fn chromium_opens_the_export_offline_follows_to_the_article_and_runs_no_script() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let other = Outlet::new();
    let signed = hostile_article(&store, &outlet);
    let stranger = sign(
        &store,
        &other,
        Draft {
            seq: 1,
            prev: None,
            title: "Unvouched",
            lang: "en",
            files: vec![("index.md", b"Hello.".to_vec(), "text/markdown")],
            supersedes: None,
        },
    );
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    html::export(
        &dir,
        &[
            article(&signed, Some("Новая газета"), true),
            article(&stranger, None, false),
        ],
        &reader_of(&store),
    )
    .unwrap();
    let index = format!("file://{}", dir.join("index.html").display());
    let seen = look_at(&index).unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static-export-article.png");
    std::fs::write(&shot, &seen.png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(seen.index_title, "tamizdat: signed articles");
    let listed: Vec<_> = seen.listed.as_array().unwrap().iter().collect();
    assert!(listed.contains(&&json!("Свобода слова")), "{listed:?}");
    assert!(listed.contains(&&json!("Unvouched")), "{listed:?}");
    assert_eq!(seen.title, "Свобода слова");
    assert_eq!(seen.heading, "Свобода слова");
    assert_eq!(seen.fingerprint, outlet.root.public().fingerprint());
    assert_eq!(seen.image_loaded, true, "the article's image decoded");
    assert_eq!(
        seen.styled, "solid",
        "the stylesheet beside the pages applies"
    );
    assert!(
        seen.pwned.iter().all(Value::is_null),
        "a script from the article ran: {:?}",
        seen.pwned
    );
    assert_eq!(
        seen.evil_type, "text/plain",
        "the article's HTML file opens as text"
    );
    assert_eq!(
        seen.svg_type, "text/plain",
        "the article's SVG file opens as text"
    );
    // Nothing but the folder was asked for: no network at all.
    assert!(
        seen.requests.iter().any(|u| u.ends_with("/style.css"))
            && seen.requests.iter().any(|u| u.ends_with("/photo.png")),
        "{:?}",
        seen.requests
    );
    let root = format!("file://{}/", dir.display());
    for u in &seen.requests {
        assert!(u.starts_with(&root), "a request left the folder: {u}");
    }
}

#[test]
fn b3sums_lists_every_file_and_b3sum_checks_it() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let signed = hostile_article(&store, &outlet);
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    let report = html::export(&dir, &[article(&signed, None, true)], &reader_of(&store)).unwrap();
    let sums = sums(&dir);
    let mut on_disk = files_under(&dir);
    assert!(on_disk.remove("B3SUMS"));
    assert_eq!(sums.keys().cloned().collect::<BTreeSet<_>>(), on_disk);
    assert_eq!(report.files, on_disk.len() + 1);
    assert_eq!(report.articles, 1);
    for (path, hash) in &sums {
        assert_eq!(
            Hash::of(&std::fs::read(dir.join(path)).unwrap()),
            *hash,
            "{path}"
        );
    }
    // Every signed hash is in B3SUMS, beside the article's page.
    let id = id_of(&signed);
    for e in &signed.body().entries {
        let h = Hash::from_bytes(e.hash);
        assert!(
            sums.iter()
                .any(|(p, s)| *s == h && p.starts_with(&format!("articles/{id}/"))),
            "{} ({h}) is not in B3SUMS",
            e.path
        );
    }
    assert_eq!(sums[&format!("manifests/{id}.manifest")], id);
    if which_b3sum() {
        let check = |dir: &Path| {
            std::process::Command::new("b3sum")
                .args(["--check", "B3SUMS"])
                .current_dir(dir)
                .output()
                .unwrap()
        };
        let ok = check(&dir);
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        // And it notices a changed file.
        std::fs::write(dir.join(format!("articles/{id}/photo.png")), b"not a photo").unwrap();
        let bad = check(&dir);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stdout).contains("photo.png: FAILED"));
    }
}

fn which_b3sum() -> bool {
    std::process::Command::new("b3sum")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn manifest_files_are_the_signed_envelopes_byte_for_byte() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let first = hostile_article(&store, &outlet);
    let second = sign(
        &store,
        &outlet,
        Draft {
            seq: 2,
            prev: Some(id_of(&first)),
            title: "Second",
            lang: "en",
            files: vec![("index.md", b"Two.".to_vec(), "text/markdown")],
            supersedes: None,
        },
    );
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    html::export(
        &dir,
        &[article(&first, None, true), article(&second, None, true)],
        &reader_of(&store),
    )
    .unwrap();
    for signed in [&first, &second] {
        let id = id_of(signed);
        let bytes = std::fs::read(dir.join(format!("manifests/{id}.manifest"))).unwrap();
        assert_eq!(bytes, signed.bytes());
        assert_eq!(
            Hash::of(&bytes),
            id,
            "the file's hash is the article's link"
        );
        let again = Verifier::new()
            .verify(&bytes, &TrustState::default())
            .unwrap();
        assert_eq!(Hash::from_bytes(again.id()), id);
    }
    assert_eq!(files_under(&dir.join("manifests")).len(), 2);
}

#[test]
fn refuses_a_folder_that_is_not_empty() {
    let (_s, store) = store();
    let signed = hostile_article(&store, &Outlet::new());
    let out = TempDir::new().unwrap();
    std::fs::write(out.path().join("keep.txt"), b"mine").unwrap();
    let err = html::export(
        out.path(),
        &[article(&signed, None, true)],
        &reader_of(&store),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&out.path().display().to_string()), "{msg}");
    assert!(msg.contains("new or empty"), "{msg}");
    assert_eq!(
        files_under(out.path()),
        BTreeSet::from(["keep.txt".to_owned()])
    );
    assert_eq!(std::fs::read(out.path().join("keep.txt")).unwrap(), b"mine");
    // An empty folder, and a new one a few levels down, are fine.
    let empty = TempDir::new().unwrap();
    html::export(
        empty.path(),
        &[article(&signed, None, true)],
        &reader_of(&store),
    )
    .unwrap();
    assert!(empty.path().join("index.html").is_file());
    let deep = empty.path().join("a/b/c");
    html::export(&deep, &[article(&signed, None, true)], &reader_of(&store)).unwrap();
    assert!(deep.join("index.html").is_file());
}

/// A reader that gives `good` bytes of the blob, then fails as a verifying
/// reader does on damaged data.
struct FailsAfter<R> {
    inner: R,
    good: usize,
}

impl<R: Read> Read for FailsAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.good == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk group 2 does not match the hash",
            ));
        }
        let n = buf.len().min(self.good);
        let n = self.inner.read(&mut buf[..n])?;
        self.good -= n;
        Ok(n)
    }
}

/// No half-written file anywhere, and no index: the folder does not pass
/// for a finished export.
fn assert_unfinished(dir: &Path, missing: &str) {
    let files = files_under(dir);
    assert!(!files.contains(missing), "{missing} was left: {files:?}");
    assert!(
        !files.contains("index.html") && !files.contains("B3SUMS"),
        "{files:?}"
    );
    assert!(
        files.iter().all(|f| !f.contains(".tamizdat-partial")),
        "{files:?}"
    );
    assert!(!dir.join(".tamizdat-partial").exists());
}

#[test]
fn a_damaged_blob_fails_naming_its_hash_and_leaves_no_file_behind() {
    let (store_dir, store) = store();
    let outlet = Outlet::new();
    let big = data(100_000, 7);
    let big_hash = Hash::of(&big);
    let signed = sign(
        &store,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "With a recording",
            lang: "en",
            files: vec![
                ("index.md", b"Listen.".to_vec(), "text/markdown"),
                ("talk.ogg", big.clone(), "audio/ogg"),
            ],
            supersedes: None,
        },
    );
    let id = id_of(&signed);
    let target = format!("articles/{id}/talk.ogg");

    // A reader failing mid-way.
    let out = TempDir::new().unwrap();
    let read = reader_of(&store);
    let failing = |h: &Hash| -> io::Result<Box<dyn Read + Send>> {
        let r = read(h)?;
        if *h == big_hash {
            return Ok(Box::new(FailsAfter {
                inner: r,
                good: 40_000,
            }));
        }
        Ok(r)
    };
    let err = html::export(out.path(), &[article(&signed, None, true)], &failing).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Blob { hash, .. } if hash == big_hash),
        "{msg}"
    );
    assert!(
        msg.contains(&big_hash.to_string()) && msg.contains("talk.ogg"),
        "{msg}"
    );
    assert_unfinished(out.path(), &target);

    // Bytes that are not the signed ones (a reader that does not verify).
    let out = TempDir::new().unwrap();
    let lying = |h: &Hash| -> io::Result<Box<dyn Read + Send>> {
        if *h == big_hash {
            let mut forged = big.clone();
            forged[50_000] ^= 1;
            return Ok(Box::new(io::Cursor::new(forged)));
        }
        read(h)
    };
    let err = html::export(out.path(), &[article(&signed, None, true)], &lying).unwrap_err();
    assert!(
        matches!(err, Error::Mismatch { hash, .. } if hash == big_hash),
        "{err}"
    );
    assert!(err.to_string().contains(&big_hash.to_string()));
    assert_unfinished(out.path(), &target);

    // The store's own bytes damaged on disk: its verifying reader fails
    // after the groups that still match.
    let file = find(store_dir.path(), &big_hash.to_string()).expect("blob file");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[80_000] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let out = TempDir::new().unwrap();
    let err = html::export(
        out.path(),
        &[article(&signed, None, true)],
        &reader_of(&store),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Blob { hash, .. } if hash == big_hash),
        "{err}"
    );
    assert!(err.to_string().contains(&big_hash.to_string()), "{err}");
    assert_unfinished(out.path(), &target);
}

#[test]
fn hostile_paths_stay_inside_the_folder_and_no_file_can_run() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let long = format!("{}.png", "x".repeat(300));
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "index.html",
            b"<html><body><p>Body</p><script>alert(1)</script><img src=x onerror=alert(2)><iframe src=a.html></iframe></body></html>".to_vec(),
            "text/html",
        ),
        ("a.html", b"<script>alert(3)</script>".to_vec(), "text/html"),
        ("a.html.txt", b"plain".to_vec(), "text/plain"),
        ("\u{c4}.png", PNG.to_vec(), "image/png"),
        ("\u{e4}.png", data(50, 1), "image/png"),
        ("x.png", data(60, 2), "image/png"),
        ("con.txt", b"device".to_vec(), "text/plain"),
        ("what?.png", data(80, 4), "image/png"),
        (&long, data(90, 5), "image/png"),
        ("js/app.js", b"window.__pwned = 1".to_vec(), "text/javascript"),
        (".htaccess", b"x".to_vec(), "text/plain"),
        ("README", b"y".to_vec(), "text/plain"),
        ("articles/index.html", b"<script>alert(4)</script>".to_vec(), "text/html"),
    ];
    let signed = sign(
        &store,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "<script>alert('title')</script>",
            lang: "en",
            files,
            supersedes: None,
        },
    );
    let id = id_of(&signed);
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    let report = html::export(&dir, &[article(&signed, None, true)], &reader_of(&store)).unwrap();
    // Nothing was written beside the folder.
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        1,
        "only the export folder"
    );
    // Every file of the article is in its folder, with a name no browser
    // runs, and its bytes are the signed ones.
    let sums = sums(&dir);
    let prefix = format!("articles/{id}/");
    let saved: Vec<&String> = sums.keys().filter(|p| p.starts_with(&prefix)).collect();
    assert_eq!(saved.len(), signed.body().entries.len(), "{saved:?}");
    const PASSIVE: &[&str] = &[".png", ".txt"];
    for p in &saved {
        assert!(
            PASSIVE.iter().any(|x| p.ends_with(x)),
            "{p} could run in a browser"
        );
    }
    for e in &signed.body().entries {
        let h = Hash::from_bytes(e.hash);
        assert!(
            saved.iter().any(|p| sums[*p] == h),
            "{} is not saved",
            e.path
        );
    }
    // Renamed: every non-image/text name (.txt added), and the names that
    // collide or cannot be written on every disk (named by their hash).
    assert_eq!(report.renamed, 11);
    let page = std::fs::read_to_string(dir.join(format!("articles/{id}.html"))).unwrap();
    assert!(page.contains(&format!("{id}/a.html.txt")), "{page}");
    assert!(page.contains("saved as"), "{page}");
    // No page carries a script, an event handler or a frame, and each
    // forbids scripts itself.
    for p in files_under(&dir)
        .iter()
        .filter(|p| p.ends_with(".html") && !p.starts_with(&prefix))
    {
        let text = std::fs::read_to_string(dir.join(p)).unwrap();
        let lower = text.to_lowercase();
        assert!(!lower.contains("<script"), "{p}");
        assert!(!lower.contains("onerror"), "{p}");
        assert!(!lower.contains("<iframe"), "{p}");
        assert!(
            text.contains(
                "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"
            ),
            "{p}"
        );
    }
    assert!(page.contains("&lt;script&gt;alert('title')&lt;/script&gt;"));
}

#[test]
fn pages_show_provenance_corrections_and_right_to_left_text() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let stranger = Outlet::new();
    let first = sign(
        &store,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "خبر",
            lang: "fa",
            files: vec![("index.md", "متن خبر".as_bytes().to_vec(), "text/markdown")],
            supersedes: None,
        },
    );
    let fix = sign(
        &store,
        &outlet,
        Draft {
            seq: 2,
            prev: Some(id_of(&first)),
            title: "خبر (اصلاح شده)",
            lang: "fa",
            files: vec![("index.md", "متن درست".as_bytes().to_vec(), "text/markdown")],
            supersedes: Some(id_of(&first)),
        },
    );
    let unknown = sign(
        &store,
        &stranger,
        Draft {
            seq: 1,
            prev: None,
            title: "Who knows",
            lang: "en",
            files: vec![("note.txt", b"Plain words.".to_vec(), "text/plain")],
            supersedes: None,
        },
    );
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    let report = html::export(
        &dir,
        &[
            article(&first, Some("Radio Farda"), true),
            article(&fix, Some("Radio Farda"), true),
            article(&unknown, None, false),
            article(&first, Some("Radio Farda"), true),
        ],
        &reader_of(&store),
    )
    .unwrap();
    assert_eq!((report.articles, report.publishers), (3, 2));
    let page = |s: &Signed<Manifest>| {
        std::fs::read_to_string(dir.join(format!("articles/{}.html", id_of(s)))).unwrap()
    };
    let (p1, p2, p3) = (page(&first), page(&fix), page(&unknown));
    let (id1, id2, id3) = (id_of(&first), id_of(&fix), id_of(&unknown));
    let fp = outlet.root.public().fingerprint();
    for (p, id) in [(&p1, id1), (&p2, id2)] {
        // No Persian messages yet: English chrome around the Persian article.
        assert!(p.contains("<html lang=\"en\">"), "{p}");
        assert!(p.contains("<article lang=\"fa\" dir=\"rtl\">"), "{p}");
        assert!(p.contains(&fp));
        assert!(p.contains(&outlet.root.public().to_string()));
        assert!(
            p.contains(&outlet.signing.public().to_string()),
            "the signing key"
        );
        assert!(p.contains("Radio Farda"));
        assert!(p.contains("✔ Signed by"));
        assert!(p.contains(&format!("tamizdat verify manifests/{id}.manifest")));
        assert!(p.contains("b3sum --check B3SUMS"));
        assert!(p.contains(&format!("href=\"../manifests/{id}.manifest\"")));
    }
    assert!(p1.contains("A newer version of this article exists"));
    assert!(p1.contains(&format!("href=\"{id2}.html\"")), "{p1}");
    assert!(p2.contains("This version replaces an earlier article"));
    assert!(p2.contains(&format!("href=\"{id1}.html\"")), "{p2}");
    assert!(!p2.contains("A newer version"));
    // The unfollowed publisher: valid, but nobody vouches for the key.
    assert!(p3.contains("⚠ Signed by an unknown publisher"));
    assert!(p3.contains("nobody here vouches for who holds it"));
    assert!(p3.contains("Plain words."));
    assert!(!p3.contains("✔"));
    // The index: publishers and their articles, newest first.
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let at = |s: &str| {
        index
            .find(s)
            .unwrap_or_else(|| panic!("{s} not on the index"))
    };
    assert!(at(&format!("articles/{id2}.html")) < at(&format!("articles/{id1}.html")));
    assert!(index.contains(&id3.to_string()));
    assert!(index.contains(&fp) && index.contains(&stranger.root.public().fingerprint()));
    assert!(index.contains("nobody here vouches for who holds this key"));
    // And the note on how to check it all, in plain words.
    let verify = std::fs::read_to_string(dir.join("VERIFY.txt")).unwrap();
    assert!(verify.is_ascii());
    assert!(verify.contains("tamizdat verify manifests/HASH.manifest"));
    assert!(verify.contains("b3sum --check B3SUMS"));
    assert!(verify.contains("fingerprint"));
}

/// An export speaks its articles' language: a Russian article's page in
/// Russian, the index in the language most articles are in, the Russian
/// VERIFY beside the English one; or every page in the language asked for.
#[test]
fn pages_speak_the_articles_language_or_the_one_asked_for() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let mut signed = Vec::new();
    for (seq, title, lang) in [
        (1, "Свобода слова", "ru"),
        (2, "Выборы", "ru"),
        (3, "Elections", "en"),
    ] {
        let prev = signed.last().map(id_of);
        signed.push(sign(
            &store,
            &outlet,
            Draft {
                seq,
                prev,
                title,
                lang,
                files: vec![(
                    "index.md",
                    format!("# {title}\n\nТекст.\n").into_bytes(),
                    "text/markdown",
                )],
                supersedes: None,
            },
        ));
    }
    let articles: Vec<_> = signed
        .iter()
        .map(|s| article(s, Some("Новая газета"), true))
        .collect();
    let out = TempDir::new().unwrap();
    let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();

    let dir = out.path().join("auto");
    html::export(&dir, &articles, &reader_of(&store)).unwrap();
    let ru = read(&dir, &format!("articles/{}.html", id_of(&signed[0])));
    assert!(ru.contains("<html lang=\"ru\">"), "{ru}");
    assert!(
        ru.contains("<h2>Кто подписал</h2>") && ru.contains("✔ Подписано:"),
        "{ru}"
    );
    assert!(ru.contains("href=\"../VERIFY.ru.txt\""), "{ru}");
    let en = read(&dir, &format!("articles/{}.html", id_of(&signed[2])));
    assert!(
        en.contains("<html lang=\"en\">") && en.contains("<h2>Who signed this</h2>"),
        "{en}"
    );
    let index = read(&dir, "index.html");
    assert!(
        index.contains("<html lang=\"ru\">") && index.contains("Подписанные статьи"),
        "{index}"
    );
    let verify_ru = std::fs::read(dir.join("VERIFY.ru.txt")).unwrap();
    assert!(verify_ru.starts_with("\u{feff}КАК ПРОВЕРИТЬ ЭТИ СТАТЬИ".as_bytes()));
    assert!(
        String::from_utf8(verify_ru)
            .unwrap()
            .contains("tamizdat verify manifests/ХЕШ.manifest")
    );
    assert!(read(&dir, "VERIFY.txt").starts_with("HOW TO CHECK THESE ARTICLES"));
    // Both are listed in B3SUMS, like every file.
    let sums = read(&dir, "B3SUMS");
    assert!(
        sums.contains("  VERIFY.ru.txt\n") && sums.contains("  VERIFY.txt\n"),
        "{sums}"
    );

    let dir = out.path().join("english");
    html::export_in(&dir, &articles, &reader_of(&store), Some("en-GB")).unwrap();
    let ru = read(&dir, &format!("articles/{}.html", id_of(&signed[0])));
    assert!(
        ru.contains("<html lang=\"en\">") && ru.contains("<h2>Who signed this</h2>"),
        "{ru}"
    );
    assert!(ru.contains("<article lang=\"ru\">"), "{ru}");
    assert!(read(&dir, "index.html").contains("Signed articles"));
}

/// Characters that reorder text in a title or a file name are shown as
/// what they are on the pages, and never make it into a file name on the
/// stick, where a file manager would obey them.
#[test]
fn bidi_controls_are_shown_and_kept_out_of_file_names() {
    let (_s, store) = store();
    let outlet = Outlet::new();
    let signed = sign(
        &store,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Report\u{202E}txet\u{2066} done",
            lang: "en",
            files: vec![
                ("index.md", b"words".to_vec(), "text/markdown"),
                ("photo\u{202E}gnp.exe", PNG.to_vec(), "image/png"),
            ],
            supersedes: None,
        },
    );
    let out = TempDir::new().unwrap();
    let dir = out.path().join("export");
    html::export(
        &dir,
        &[article(&signed, Some("Outlet\u{202E}xim"), true)],
        &reader_of(&store),
    )
    .unwrap();
    let id = id_of(&signed);
    let controls = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
    for page in [format!("articles/{id}.html"), "index.html".into()] {
        let html = std::fs::read_to_string(dir.join(&page)).unwrap();
        assert!(!html.contains(controls), "{page}: a raw control in {html}");
        let shown = visible_text(&html);
        assert!(
            shown.contains("Report<U+202E>txet<U+2066> done"),
            "{page}: {shown}"
        );
        assert!(shown.contains("Outlet<U+202E>xim"), "{page}: {shown}");
        if page.starts_with("articles/") {
            assert!(shown.contains("photo<U+202E>gnp.exe"), "{shown}");
            assert!(html.contains("<bdi>"), "{html}");
        }
    }
    for f in files_under(&dir) {
        assert!(!f.contains(controls), "{f:?} written");
    }
}

/// What a reader sees of a page: its text with the markup taken out and
/// the entities decoded.
fn visible_text(page: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Everything written to a subscriber set up as the binary sets up its own
/// (`warn`, with `log` records taken in).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Markup the HTML parser mends (table parts outside a table, text inside
/// one) exports without a word on stderr at the default log level: the
/// parser's notes are about the article's markup, nothing the user can act on.
#[test]
fn misnested_markup_exports_quietly() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    let (_s, store) = store();
    let md = "# Table\n\n<tr><td>x</td></tr>\n\n<table>loose words<tr><td>y</td></tr></table>\n\n\
              <table><div>z</div></table>\n";
    let html_doc = "<html><body><table>stray<tr><td>w</td></tr></table></body></html>";
    let articles: Vec<_> = [
        ("index.md", md, "text/markdown"),
        ("index.html", html_doc, "text/html"),
    ]
    .into_iter()
    .map(|(path, text, media)| {
        let o = Outlet::new();
        let s = sign(
            &store,
            &o,
            Draft {
                seq: 1,
                prev: None,
                title: "Table",
                lang: "en",
                files: vec![(path, text.as_bytes().to_vec(), media)],
                supersedes: None,
            },
        );
        article(&s, None, false)
    })
    .collect();
    let out = TempDir::new().unwrap();
    html::export(&out.path().join("export"), &articles, &reader_of(&store)).unwrap();
    // The subscriber itself works: a warning of our own is printed.
    tracing::warn!("canary");
    let printed = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(printed.contains("canary"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
}
