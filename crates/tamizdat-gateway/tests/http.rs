//! The gateway's routes over real HTTP, against a real node on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use tamizdat_store::Hash;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request as an English-speaking reader's browser makes it.
async fn get(url: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    get_with(url, &[("accept-language", "en-GB,en;q=0.9")]).await
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let h = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    (status, h, body)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A raw request line, for paths an HTTP client would normalize.
fn raw(base: &str, path: &str) -> String {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

const ARTICLE_MD: &str = "# Свобода слова\n\n\
Текст статьи по-русски. ![фото](photo.png)\n\n\
<script>window.__pwned = 1</script>\n\
<img src=\"x\" onerror=\"window.__pwned = 2\">\n\
<img src=\"https://tracker.example/pixel.gif\">\n\n\
[Источник](https://example.org/source) and [local](./photo.png)\n";

async fn article(site: &Site, outlet: &Outlet) -> (Hash, Hash) {
    let (id, _) = publish(
        site,
        outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![
                ("index.md", ARTICLE_MD.as_bytes().to_vec(), "text/markdown"),
                ("photo.png", PNG.to_vec(), "image/png"),
                (
                    "page.html",
                    b"<script>alert(1)</script>".to_vec(),
                    "text/html",
                ),
                (
                    "logo.svg",
                    b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
                        .to_vec(),
                    "image/svg+xml",
                ),
            ],
            supersedes: None,
        },
    )
    .await;
    (id, Hash::of(PNG))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_page_renders_sanitized_with_its_provenance() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (id, png) = article(&site, &outlet).await;
    let (status, h, body) = get(&site.url(&format!("/m/{id}"))).await;
    let page = text(&body);
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h["x-dns-prefetch-control"], "off");
    // The chrome in the reader's language (English here), the article in
    // its own.
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("<article lang=\"ru\">"), "{page}");
    assert!(page.contains("<h1><bdi>Свобода слова</bdi></h1>"), "{page}");
    assert_eq!(page.matches("<h1>").count(), 1, "one heading");
    assert!(page.contains("Текст статьи по-русски."));
    // Its image comes from /b/, the tracker's and the script do not come at all.
    assert!(page.contains(&format!("src=\"/b/{png}?m={id}\"")), "{page}");
    assert!(!page.contains("tracker.example"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("onerror"));
    assert!(!page.contains("__pwned"));
    assert!(page.contains("href=\"https://example.org/source\""));
    // The badge.
    let root = outlet.root.public();
    assert!(page.contains(&root.fingerprint()));
    assert!(page.contains(&root.to_string()));
    assert!(page.contains(&outlet.signing.public().to_string()));
    assert!(page.contains("delegated by the root key"));
    assert!(page.contains(&hex::encode(outlet.delegation.id())));
    assert!(page.contains("<bdi>main</bdi>, article #1"), "{page}");
    assert!(page.contains("this is the feed's latest"));
    assert!(page.contains("This node checked this article's signature"));
    assert!(page.contains(&format!("href=\"/b/{id}\"")));
    assert!(page.contains(&format!("tamizdat verify {id}")));
    assert!(page.contains("<svg"), "QR code");
    assert!(page.contains(&format!("{}/m/{id}", site.base)));
    // The files that are not the text are listed.
    assert!(page.contains("page.html") && page.contains("logo.svg"));

    // Behind a reverse proxy, links and QR codes use the public address.
    let proxied = common::site(|c| c.public_url = Some("https://news.example.org/".into())).await;
    let outlet2 = Outlet::new();
    let (id2, _) = article(&proxied, &outlet2).await;
    let (_, _, body) = get(&proxied.url(&format!("/m/{id2}"))).await;
    assert!(text(&body).contains(&format!("https://news.example.org/m/{id2}")));
    proxied.gateway.shutdown().await;

    // Upper case is redirected to the canonical link.
    let (status, h, _) = get(&site.url(&format!("/m/{}", id.to_string().to_uppercase()))).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h[header::LOCATION], format!("/m/{id}").as_str());
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_page_feed_page_and_corrections() {
    let site = site(|_| {}).await;
    let (_, _, body) = get(&site.url("/")).await;
    assert!(text(&body).contains("follows no publisher yet"));
    let outlet = Outlet::new();
    let (first, _) = article(&site, &outlet).await;
    let (second, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 2,
            prev: Some(first),
            title: "Исправление",
            lang: "ru",
            files: vec![(
                "index.md",
                "# Исправление\n\nТекст.".as_bytes().to_vec(),
                "text/markdown",
            )],
            supersedes: Some(first),
        },
    )
    .await;
    let root = outlet.root.public();
    // The front page is rebuilt from the store every two seconds at most.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let front = loop {
        let (status, _, body) = get(&site.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        let front = text(&body);
        if front.contains(&format!("/m/{second}")) || std::time::Instant::now() > deadline {
            break front;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(front.contains(&format!("/p/{root}")));
    // Newest first.
    let (a, b) = (
        front.find(&format!("/m/{second}")).expect("second listed"),
        front.find(&format!("/m/{first}")).expect("first listed"),
    );
    assert!(a < b, "newest first");
    let (status, _, body) = get(&site.url(&format!("/p/{root}"))).await;
    let feed = text(&body);
    assert_eq!(status, StatusCode::OK);
    assert!(feed.contains("Исправление") && feed.contains("Свобода слова"));
    assert!(feed.contains(&root.fingerprint()));
    // The older article points to its correction and to the newer head.
    let (_, _, body) = get(&site.url(&format!("/m/{first}"))).await;
    let old = text(&body);
    assert!(
        old.contains("A newer version of this article exists"),
        "{old}"
    );
    assert!(old.contains(&format!("href=\"/m/{second}\"")));
    assert!(old.contains("The feed has gone on to"));
    let (_, _, body) = get(&site.url(&format!("/m/{second}"))).await;
    assert!(text(&body).contains(&format!("This version replaces <a href=\"/m/{first}\"")));
    // A bad key is a 400.
    let (status, _, _) = get(&site.url("/p/not-a-key")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_with_headers_ranges_and_caching() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (id, png) = article(&site, &outlet).await;
    let url = site.url(&format!("/b/{png}"));
    let (status, h, body) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, PNG);
    assert_eq!(h[header::CONTENT_TYPE], "image/png", "the manifest's type");
    assert_eq!(h[header::ETAG], format!("\"{png}\"").as_str());
    assert_eq!(
        h[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_LENGTH], PNG.len().to_string().as_str());
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    // Cached copies revalidate to 304.
    let (status, _, body) = get_with(&url, &[("if-none-match", &format!("\"{png}\""))]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    // HEAD: headers, no body.
    let r = client().head(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_LENGTH],
        PNG.len().to_string().as_str()
    );
    assert!(r.bytes().await.unwrap().is_empty());

    // Ranges over a large blob, which is streamed.
    let big = data(3 << 20, 7);
    let hash = site.store.add_bytes(&big).unwrap().hash;
    let url = site.url(&format!("/b/{hash}"));
    let n = big.len();
    let cases: &[(&str, StatusCode, Option<std::ops::Range<usize>>)] = &[
        ("bytes=0-9", StatusCode::PARTIAL_CONTENT, Some(0..10)),
        (
            "bytes=1048570-1048600",
            StatusCode::PARTIAL_CONTENT,
            Some(1048570..1048601),
        ),
        ("bytes=-100", StatusCode::PARTIAL_CONTENT, Some(n - 100..n)),
        (
            "bytes=3000000-",
            StatusCode::PARTIAL_CONTENT,
            Some(3_000_000..n),
        ),
        ("bytes=0-99999999", StatusCode::PARTIAL_CONTENT, Some(0..n)),
        ("bytes=0-1,5-9", StatusCode::OK, Some(0..n)),
        ("bytes=9-3", StatusCode::OK, Some(0..n)),
        ("pages=1-2", StatusCode::OK, Some(0..n)),
        ("bytes=99999999-", StatusCode::RANGE_NOT_SATISFIABLE, None),
        ("bytes=-0", StatusCode::RANGE_NOT_SATISFIABLE, None),
    ];
    for (range, want, bytes) in cases {
        let (status, h, body) = get_with(&url, &[("range", range)]).await;
        assert_eq!(status, *want, "{range}");
        match bytes {
            Some(r) => {
                assert_eq!(body.len(), r.len(), "{range}");
                assert!(body == big[r.clone()], "{range}: wrong bytes");
                if status == StatusCode::PARTIAL_CONTENT {
                    assert_eq!(
                        h[header::CONTENT_RANGE],
                        format!("bytes {}-{}/{n}", r.start, r.end - 1).as_str()
                    );
                }
            }
            None => assert_eq!(h[header::CONTENT_RANGE], format!("bytes */{n}").as_str()),
        }
    }
    // If-Range with another validator: the whole blob.
    let (status, _, body) =
        get_with(&url, &[("range", "bytes=0-9"), ("if-range", "\"other\"")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), n);
    // A blob no manifest names is plain bytes, never rendered.
    let (_, h, _) = get(&url).await;
    assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    // Small ranges of a small blob, and the empty blob.
    let (status, _, body) =
        get_with(&site.url(&format!("/b/{png}")), &[("range", "bytes=-4")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, PNG[PNG.len() - 4..]);
    let empty = site.store.add_bytes(b"").unwrap().hash;
    let (status, _, body) = get(&site.url(&format!("/b/{empty}"))).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let (status, _, _) =
        get_with(&site.url(&format!("/b/{empty}")), &[("range", "bytes=0-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Active content is never rendered on our origin.
    for (bytes, media) in [
        (b"<script>alert(1)</script>".to_vec(), "text/html"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec(),
            "image/svg+xml",
        ),
    ] {
        let (_, h, _) = get(&site.url(&format!("/b/{}", Hash::of(&bytes)))).await;
        assert_eq!(h[header::CONTENT_TYPE], media);
        assert!(
            h[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "{media}"
        );
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("sandbox")
        );
    }
    // The manifest itself is served as one, for `tamizdat verify`.
    let (status, h, body) = get(&site.url(&format!("/b/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.tamizdat.manifest");
    assert_eq!(Hash::of(&body), id);
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_hashes_get_short_4xx() {
    let site = site(|c| c.fetch_timeout = Duration::from_secs(3)).await;
    let hex = "ab".repeat(32);
    for path in [
        "/b/zz".to_owned(),
        format!("/b/{}", &hex[..63]),
        format!("/b/{hex}0"),
        format!("/b/{}g", &hex[..63]),
        "/b/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "/b/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/b/%252e%252e%252fetc".to_owned(),
        "/m/%00".to_owned(),
        "/m/..%5c..%5cwindows".to_owned(),
        "/p/%2e%2e%2f".to_owned(),
        "/api/v1/manifests/xyz".to_owned(),
    ] {
        let (status, h, body) = get(&site.url(&path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {}", text(&body));
        assert!(body.len() < 2000, "{path}: short message");
        assert!(!text(&body).contains("root:"), "{path}");
        let _ = h;
    }
    for path in [
        "/b/../../etc/passwd",
        "/b/..%2f/x",
        "/b/%2e%2e",
        "/p/%2e%2e",
        "/../../etc/passwd",
        "/etc/passwd",
        "/b/",
        "/b",
        "/index.html",
        "/b/abc/def",
        "//b/x",
    ] {
        let answer = raw(&site.base, path);
        let status_line = answer.lines().next().unwrap_or("");
        assert!(
            status_line.contains(" 400 ") || status_line.contains(" 404 "),
            "{path}: {status_line}"
        );
        assert!(!answer.contains("root:"), "{path}");
    }
    // A well-formed hash nobody has: not found, after asking the network.
    let (status, _, body) = get(&site.url(&format!("/b/{hex}"))).await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::GATEWAY_TIMEOUT,
        "{status}: {}",
        text(&body)
    );
    // Not a manifest, and a forged one: 422, nothing shown.
    let junk = site.store.add_bytes(b"just some bytes").unwrap().hash;
    let (status, _, body) = get(&site.url(&format!("/m/{junk}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&body).contains("not an article"));
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_corrupt_content_is_never_served() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (_, signed) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Original",
            lang: "en",
            files: vec![(
                "index.md",
                b"# Original\n\ntrue words".to_vec(),
                "text/markdown",
            )],
            supersedes: None,
        },
    )
    .await;
    // The same manifest with its title changed after signing.
    let mut forged = signed.bytes().to_vec();
    let at = forged.windows(8).position(|w| w == b"Original").unwrap();
    forged[at..at + 8].copy_from_slice(b"Forgery!");
    let forged = site.store.add_bytes(&forged).unwrap().hash;
    let (status, _, body) = get(&site.url(&format!("/m/{forged}"))).await;
    let page = text(&body);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("NOT VERIFIED"), "{page}");
    assert!(!page.contains("true words"));
    let (status, _, body) = get(&site.url(&format!("/api/v1/manifests/{forged}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(err["error"].as_str().unwrap().contains("NOT VERIFIED"));

    // Blobs whose bytes on disk were changed: an error, never the bad bytes.
    let small = data(300_000, 1);
    let big = data(4 << 20, 2);
    for (bytes, at) in [(&small, 1000usize), (&big, 3_500_000usize)] {
        let hash = site.store.add_bytes(bytes).unwrap().hash;
        let file = site.data_file(&hash);
        let mut on_disk = std::fs::read(&file).unwrap();
        on_disk[at] ^= 0x20;
        std::fs::write(&file, &on_disk).unwrap();
        let r = client()
            .get(site.url(&format!("/b/{hash}")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let got = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        if bytes.len() < (1 << 20) {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(text(&got).contains("corrupt"), "{}", text(&got));
        } else {
            // Streamed: the answer stops before the bad group, and what came
            // is the true prefix.
            assert!(got.len() < at, "{} bytes came", got.len());
            assert!(got[..] == bytes[..got.len()]);
        }
    }
    site.gateway.shutdown().await;
}

/// Manifests signed with the publisher's real key that its feed rules
/// refuse (a second version of an article, a fork, a jump past the limit, a
/// date two hours ahead, one backdated into an expired key's time) are never
/// shown as checked articles, on the page or in the API: a thief of a
/// signing key, even an expired one, gains nothing by handing one to a
/// gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_the_feed_rules_refuse_are_not_shown_as_genuine() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let body = |words: &str| {
        vec![(
            "index.md",
            format!("# A\n\n{words}").into_bytes(),
            "text/markdown",
        )]
    };
    let (first, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Genuine",
            lang: "en",
            files: body("the genuine first article"),
            supersedes: None,
        },
    )
    .await;
    let (status, _, page) = get(&site.url(&format!("/m/{first}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&page).contains("✔ This node checked"));

    // Each is kept in the store directly, as a blob fetched from a peer
    // would be, and asked for by hash.
    let refused = [
        (
            "a second version of #1",
            sign(
                &site.store,
                &outlet,
                Draft {
                    seq: 1,
                    prev: None,
                    title: "Second version",
                    lang: "en",
                    files: body("words put in the outlet's mouth"),
                    supersedes: None,
                },
            ),
        ),
        (
            "a fork: #2 after another #1",
            sign(
                &site.store,
                &outlet,
                Draft {
                    seq: 2,
                    prev: Some(Hash::of(b"an article the node never had")),
                    title: "Fork",
                    lang: "en",
                    files: body("words put in the outlet's mouth"),
                    supersedes: None,
                },
            ),
        ),
        (
            "a jump just past the limit",
            sign(
                &site.store,
                &outlet,
                Draft {
                    seq: 1 + tamizdat_sign::MAX_JUMP + 1,
                    prev: Some(first),
                    title: "Far ahead",
                    lang: "en",
                    files: body("words put in the outlet's mouth"),
                    supersedes: None,
                },
            ),
        ),
        (
            "a jump to the last sequence number",
            sign(
                &site.store,
                &outlet,
                Draft {
                    seq: u64::MAX,
                    prev: Some(first),
                    title: "Far ahead",
                    lang: "en",
                    files: body("words put in the outlet's mouth"),
                    supersedes: None,
                },
            ),
        ),
    ];
    let mut future = sign(
        &site.store,
        &outlet,
        Draft {
            seq: 2,
            prev: Some(first),
            title: "From the future",
            lang: "en",
            files: body("words put in the outlet's mouth"),
            supersedes: None,
        },
    )
    .body()
    .clone();
    future.created = now() + 2 * 3600;
    let future = tamizdat_sign::Signed::sign(future, &outlet.signing).unwrap();
    // A signing key whose delegation ended days ago, and an article dated
    // within its time: it verifies, but comes after the feed's head while
    // claiming to be older.
    let old_key = tamizdat_sign::SecretKey::generate().unwrap();
    let day = 86400;
    let expired = tamizdat_sign::Signed::sign(
        tamizdat_sign::Delegation {
            root: outlet.root.public(),
            key: old_key.public(),
            not_before: now() - 10 * day,
            not_after: now() - 5 * day,
            feed: None,
        },
        &outlet.root,
    )
    .unwrap();
    let mut backdated = future.body().clone();
    backdated.title = "Backdated".into();
    backdated.created = now() - 6 * day;
    backdated.signer = old_key.public();
    backdated.delegation = Some(expired.bytes().to_vec());
    let backdated = tamizdat_sign::Signed::sign(backdated, &old_key).unwrap();
    for (what, m) in refused.iter().map(|(w, m)| (*w, m)).chain([
        ("dated two hours ahead", &future),
        ("backdated into an expired key's time", &backdated),
    ]) {
        let id = site.store.add_bytes(m.bytes()).unwrap().hash;
        let (status, _, page) = get(&site.url(&format!("/m/{id}"))).await;
        let page = text(&page);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {page}");
        assert!(page.contains("REFUSED"), "{what}: {page}");
        assert!(!page.contains("✔"), "{what}: {page}");
        assert!(!page.contains("put in the outlet"), "{what}: {page}");
        let (status, _, json) = get(&site.url(&format!("/api/v1/manifests/{id}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        let err: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert!(err["error"].as_str().unwrap().contains("REFUSED"), "{what}");
    }
    // The genuine one is untouched.
    let (status, _, json) = get(&site.url(&format!("/api/v1/manifests/{first}"))).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["feed_standing"], "accepted");
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_blob_is_fetched_from_the_network() {
    let holder = site(|_| {}).await;
    let reader = site(|_| {}).await;
    reader.node.dial(holder.addr.clone()).await.unwrap();
    let bytes = data(2 << 20, 5);
    let hash = holder.store.add_bytes(&bytes).unwrap().hash;
    holder.node.provide(hash).await.unwrap();
    let (status, _, body) = get(&reader.url(&format!("/b/{hash}"))).await;
    assert_eq!(status, StatusCode::OK, "{}", text(&body));
    assert!(body == bytes);
    assert!(reader.store.info(&hash).unwrap().unwrap().complete);
    // An article too: manifest and text come over the network, then render.
    let outlet = Outlet::new();
    let (id, _) = article(&holder, &outlet).await;
    let (status, _, body) = get(&reader.url(&format!("/m/{id}"))).await;
    let page = text(&body);
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Текст статьи по-русски."));
    assert!(page.contains(&outlet.root.public().fingerprint()));
    assert!(page.contains("not followed by this node"));
    assert!(
        page.contains("Unknown publisher"),
        "no vouching for a key it does not follow"
    );
    assert!(!page.contains("✔ This node checked"));
    holder.gateway.shutdown().await;
    reader.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_metrics_and_health() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (id, _) = article(&site, &outlet).await;
    let root = outlet.root.public();
    let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();

    let (status, h, body) = get(&site.url("/api/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let s = json(body);
    assert_eq!(s["peer_id"], site.node.peer_id().to_string());
    assert_eq!(s["gateway"], site.base);
    assert_eq!(s["following"], 1);

    let (_, _, body) = get(&site.url("/api/v1/publishers")).await;
    let p = json(body);
    let me = &p["publishers"][0];
    assert_eq!(me["key"], root.to_string());
    assert_eq!(me["fingerprint"], root.fingerprint());
    assert_eq!(me["followed"], true);
    assert_eq!(me["articles"], 1);
    assert_eq!(me["feeds"][0]["seq"], 1);

    let (_, _, body) = get(&site.url(&format!("/api/v1/publishers/{root}"))).await;
    let feed = json(body);
    assert_eq!(feed["items"][0]["id"], id.to_string());
    assert_eq!(feed["items"][0]["title"], "Свобода слова");
    assert_eq!(feed["items"][0]["lang"], "ru");

    let (status, _, body) = get(&site.url(&format!("/api/v1/manifests/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let m = json(body);
    assert_eq!(m["verified"], true);
    assert_eq!(m["publisher"], root.to_string());
    assert_eq!(m["signer"], outlet.signing.public().to_string());
    assert_eq!(m["delegation"]["id"], hex::encode(outlet.delegation.id()));
    assert_eq!(m["entries"].as_array().unwrap().len(), 4);

    let (status, _, body) = get(&site.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).starts_with("ok"));

    let (_, _, _) = get(&site.url("/nowhere")).await;
    // A blob nobody has: the node asks the network and counts the failure.
    let (status, _, _) = get(&site.url(&format!("/b/{}", "cd".repeat(32)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, h, body) = get(&site.url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let m = text(&body);
    let sample = |name: &str, labels: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name) && l.contains(labels))
            .unwrap_or_else(|| panic!("{name} {labels} in\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        sample(
            "tamizdat_gateway_requests_total",
            "route=\"/api/v1/manifests/{hash}\",status=\"200\""
        ),
        1.0
    );
    assert_eq!(
        sample(
            "tamizdat_gateway_requests_total",
            "route=\"unmatched\",status=\"404\""
        ),
        1.0
    );
    assert!(sample("tamizdat_store_blobs", "") >= 5.0);
    assert!(sample("tamizdat_store_bytes", "") > PNG.len() as f64);
    assert_eq!(
        sample(
            "tamizdat_feed_lag_articles",
            &format!("publisher=\"{root}\"")
        ),
        0.0
    );
    assert_eq!(
        sample(
            "tamizdat_replication_pending_files",
            &format!("publisher=\"{root}\"")
        ),
        0.0
    );
    assert_eq!(
        sample(
            "tamizdat_gateway_network_fetches_total",
            "outcome=\"failed\""
        ),
        1.0
    );
    let failed: f64 = m
        .lines()
        .filter(|l| l.starts_with("tamizdat_fetches_total") && !l.contains("outcome=\"ok\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(failed, 1.0, "the node's own fetch counter");
    assert!(m.contains("\nlibp2p_"), "libp2p metrics");
    assert!(m.ends_with("# EOF\n"));
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_articles_right_to_left_and_nothing_from_elsewhere() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let html = "<!DOCTYPE html><html><head><title>ignored</title>\
        <style>body { background: url(https://t.example/bg.png) }</style>\
        <meta http-equiv=\"refresh\" content=\"0; url=https://t.example/\">\
        <link rel=\"prefetch\" href=\"https://t.example/p\"></head>\
        <body><p style=\"background:url(https://t.example/s.png)\">سلام دنیا</p>\
        <img srcset=\"https://t.example/a.png 2x\" src=\"img/pic.png\">\
        <iframe src=\"https://t.example/f\"></iframe>\
        <form action=\"https://t.example/f\"><input name=q></form>\
        <video poster=\"https://t.example/v.png\" src=\"https://t.example/v.mp4\"></video>\
        </body></html>";
    let (id, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "خبر",
            lang: "fa",
            files: vec![
                ("index.html", html.as_bytes().to_vec(), "text/html"),
                ("img/pic.png", PNG.to_vec(), "image/png"),
            ],
            supersedes: None,
        },
    )
    .await;
    let (status, _, body) = get(&site.url(&format!("/m/{id}"))).await;
    let page = text(&body);
    assert_eq!(status, StatusCode::OK, "{page}");
    // The chrome in the reader's language, the article in its own.
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("lang=\"fa\" dir=\"rtl\""), "{page}");
    assert!(page.contains("سلام دنیا"));
    assert!(page.contains(&format!("src=\"/b/{}?m={id}\"", Hash::of(PNG))));
    assert!(!page.contains("t.example"), "{page}");
    assert!(!page.contains("ignored"));
    // The stylesheet the pages use is served, as CSS.
    let (status, h, _) = get(&site.url("/assets/style.css")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_only_what_verifies_here_and_revocations_take_effect() {
    use tamizdat_sign::{Manifest, Revocation, RevocationTarget, Signed};
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (genuine, signed) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![("index.md", ARTICLE_MD.as_bytes().to_vec(), "text/markdown")],
            supersedes: None,
        },
    )
    .await;
    let pin = format!("feed/{}/main", outlet.root.public().fingerprint());
    // A file under the feed's pin that decodes as a manifest but is forged,
    // and a real manifest of someone else slipped under this feed's pin.
    let mut forged = signed.bytes().to_vec();
    let (was, lie) = ("Своб".as_bytes(), "Ложь".as_bytes());
    let at = forged.windows(was.len()).position(|w| w == was).unwrap();
    forged[at..at + lie.len()].copy_from_slice(lie);
    let forged = site.store.add_bytes(&forged).unwrap().hash;
    site.store.pin(&pin, &forged).unwrap();
    let stranger = Outlet::new();
    let other = Manifest {
        title: "Чужая статья".into(),
        supersedes: Some(*genuine.as_bytes()),
        publisher: stranger.root.public(),
        signer: stranger.signing.public(),
        delegation: Some(stranger.delegation.bytes().to_vec()),
        ..signed.body().clone()
    };
    let other = Signed::sign(other, &stranger.signing).unwrap();
    let other = site.store.add_bytes(other.bytes()).unwrap().hash;
    site.store.pin(&pin, &other).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, _, body) = get(&site.url("/")).await;
    let front = text(&body);
    assert!(front.contains(&format!("/m/{genuine}")), "{front}");
    assert!(!front.contains(&format!("/m/{forged}")) && !front.contains("Ложь"));
    assert!(!front.contains(&format!("/m/{other}")) && !front.contains("Чужая"));
    let (_, _, body) = get(&site.url(&format!("/m/{genuine}"))).await;
    assert!(
        !text(&body).contains("A newer version"),
        "only its own publisher corrects it"
    );

    // The signing key is revoked: the article leaves the lists and its page
    // says why.
    let revocation = Signed::sign(
        Revocation {
            root: outlet.root.public(),
            target: RevocationTarget::Key(outlet.signing.public()),
            created: now(),
            reason: "key lost".into(),
        },
        &outlet.root,
    )
    .unwrap();
    site.node
        .announce_key_object(revocation.bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, _, body) = get(&site.url("/")).await;
    let front = visible_text(&text(&body));
    assert!(!front.contains(&format!("/m/{genuine}")));
    // Not "no article has reached this node": one did, and was withdrawn.
    assert!(!front.contains("No article has reached"), "{front}");
    assert!(
        front.contains("One article reached this node, and it was withdrawn since"),
        "{front}"
    );
    let (status, _, body) = get(&site.url(&format!("/m/{genuine}"))).await;
    let page = visible_text(&text(&body));
    assert_eq!(status, StatusCode::GONE, "{page}");
    assert!(page.contains("Withdrawn by its publisher"), "{page}");
    assert!(
        page.contains("revoked the key that signed it on "),
        "{page}"
    );
    assert!(page.contains("The reason they gave: key lost"), "{page}");
    assert!(page.contains("No newer version"), "{page}");
    assert!(!page.contains("✔"), "{page}");
    // Withdrawn is not missing: the feed shows no lag for it.
    let (_, _, body) = get(&site.url("/metrics")).await;
    let metrics = text(&body);
    let lag = metrics
        .lines()
        .find(|l| {
            l.starts_with("tamizdat_feed_lag_articles")
                && l.contains(&outlet.root.public().to_string())
        })
        .unwrap_or_else(|| panic!("no feed lag in\n{metrics}"));
    assert!(lag.ends_with(" 0"), "{lag}");

    // The publisher signs it again with its root key, saying it replaces
    // the withdrawn one: the old link leads to it.
    let again = Manifest {
        signer: outlet.root.public(),
        delegation: None,
        seq: 2,
        prev: Some(*genuine.as_bytes()),
        supersedes: Some(*genuine.as_bytes()),
        title: "Свобода слова (заново)".into(),
        ..signed.body().clone()
    };
    let again = Signed::sign(again, &outlet.root).unwrap();
    let again = site.node.publish(again.bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = get(&site.url(&format!("/m/{genuine}"))).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        text(&body).contains(&format!("href=\"/m/{again}\"")),
        "{}",
        text(&body)
    );
    let (status, _, _) = get(&site.url(&format!("/m/{again}"))).await;
    assert_eq!(status, StatusCode::OK);
    // A forgery naming the revoked key is not dressed up as withdrawn.
    let mut fake = signed.body().clone();
    fake.title = "Подделка".into();
    fake.created += 1;
    let mut fake = Signed::sign(fake, &outlet.signing)
        .unwrap()
        .bytes()
        .to_vec();
    let last = fake.len() - 1;
    fake[last] ^= 1;
    let fake = site.store.add_bytes(&fake).unwrap().hash;
    let (status, _, body) = get(&site.url(&format!("/m/{fake}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&body));
    assert!(text(&body).contains("NOT VERIFIED"), "{}", text(&body));
    assert!(!text(&body).contains("Подделка"), "{}", text(&body));
    site.gateway.shutdown().await;
}

/// What a reader sees of a page: its text with the markup taken out and
/// the entities decoded, the way a browser shows it.
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

/// A metric's samples in a scrape, summed over the lines that carry `labels`.
fn metric(scrape: &str, name: &str, labels: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Articles built to make a renderer work for minutes (tens of thousands
/// of nested quotes, lists or `<div>`s) render with their nesting cut short,
/// at a normal status, and a second request for one costs no render at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_bombs_are_cut_short_and_remembered() {
    let site = site(|_| {}).await;
    let bombs: Vec<(&str, &str, String, &str, &str)> = vec![
        (
            "quotes",
            "index.md",
            ">".repeat(32 * 1024) + " deep words\n",
            "text/markdown",
            "<blockquote",
        ),
        (
            "spaced quotes",
            "index.md",
            "> ".repeat(32 * 1024) + "deep words\n",
            "text/markdown",
            "<blockquote",
        ),
        (
            "lists",
            "index.md",
            "- ".repeat(16 * 1024) + "deep words\n",
            "text/markdown",
            "<li",
        ),
        (
            "divs in markdown",
            "index.md",
            "<div>".repeat(32 * 1024) + "\ndeep words\n",
            "text/markdown",
            "<div",
        ),
        (
            "divs",
            "index.html",
            "<div class=x>".repeat(32 * 1024) + "deep words",
            "text/html",
            "<div",
        ),
    ];
    let mut pages = Vec::new();
    for (what, path, input, media, tag) in &bombs {
        let outlet = Outlet::new();
        let (id, _) = publish(
            &site,
            &outlet,
            Draft {
                seq: 1,
                prev: None,
                title: "Bomb",
                lang: "en",
                files: vec![(path, input.clone().into_bytes(), media)],
                supersedes: None,
            },
        )
        .await;
        let (status, _, body) = get(&site.url(&format!("/m/{id}"))).await;
        let page = text(&body);
        assert_eq!(status, StatusCode::OK, "{what}");
        assert!(page.contains("deep words"), "{what}: the words are shown");
        let nested = page.matches(tag).count();
        assert!(nested <= 64, "{what}: {nested} {tag} elements on the page");
        assert!(page.len() < 64 << 10, "{what}: {} bytes", page.len());
        pages.push((*what, id, page));
    }
    // Asked again: the same page, from what was rendered the first time.
    for (what, id, first) in &pages {
        let (status, _, body) = get(&site.url(&format!("/m/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(&text(&body), first, "{what}");
    }
    let (_, _, body) = get(&site.url("/metrics")).await;
    let scrape = text(&body);
    assert_eq!(
        metric(&scrape, "tamizdat_gateway_renders_total", ""),
        bombs.len() as f64,
        "one render per article:\n{scrape}"
    );
    site.gateway.shutdown().await;
}

/// A render that runs past its time gives a page that says so and lists
/// the article's files, and is not tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_past_its_time_is_too_complex_and_remembered() {
    let site = site(|c| c.render_timeout = Duration::ZERO).await;
    let outlet = Outlet::new();
    let (id, _) = article(&site, &outlet).await;
    for _ in 0..2 {
        let (status, _, body) = get(&site.url(&format!("/m/{id}"))).await;
        let page = text(&body);
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("too complex"), "{page}");
        assert!(!page.contains("Текст статьи"), "{page}");
        let text = Hash::of(ARTICLE_MD.as_bytes());
        assert!(
            page.contains(&format!("href=\"/b/{text}?m={id}\"")),
            "{page}"
        );
        assert!(page.contains("✔ Signed by"), "still checked: {page}");
    }
    let (_, _, body) = get(&site.url("/metrics")).await;
    let scrape = text(&body);
    assert_eq!(
        metric(
            &scrape,
            "tamizdat_gateway_renders_total",
            "outcome=\"too_complex\""
        ),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        metric(&scrape, "tamizdat_gateway_renders_total", ""),
        1.0,
        "{scrape}"
    );
    site.gateway.shutdown().await;
}

/// A raw request with `pad` bytes of extra headers; the status line answered.
fn with_headers(base: &str, pad: usize) -> String {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    let line = 1024;
    let mut n = 0;
    while n < pad {
        let name = format!("x-pad-{n}: ");
        let value = "a".repeat((line - name.len() - 2).min(pad - n));
        req.push_str(&name);
        req.push_str(&value);
        req.push_str("\r\n");
        n += line;
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Request headers are capped at 64 KiB in all: more is a 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_are_capped_at_64_kib() {
    let site = site(|_| {}).await;
    let base = site.base.clone();
    tokio::task::block_in_place(|| {
        let ok = with_headers(&base, 60 << 10);
        assert!(ok.starts_with("HTTP/1.1 200"), "60 KiB: {ok}");
        for pad in [65 << 10, 80 << 10, 100 << 10] {
            let big = with_headers(&base, pad);
            assert!(big.starts_with("HTTP/1.1 431"), "{pad} bytes: {big}");
        }
    });
    site.gateway.shutdown().await;
}

/// Characters that reorder text (right-to-left overrides, isolates, marks)
/// in a title or a file name are shown as what they are, never obeyed:
/// `photo<U+202E>gnp.exe` cannot pass for `photoexe.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_controls_in_titles_and_file_names_are_shown_not_obeyed() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (id, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Report\u{202E}txet\u{2066} \u{200F}done",
            lang: "en",
            files: vec![
                ("index.md", b"# Report\n\nwords".to_vec(), "text/markdown"),
                ("photo\u{202E}gnp.exe", PNG.to_vec(), "image/png"),
            ],
            supersedes: None,
        },
    )
    .await;
    let root = outlet.root.public();
    let controls = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
    ];
    // The lists are rebuilt from the store every two seconds at most.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = get(&site.url("/")).await;
        if text(&body).contains(&format!("/m/{id}")) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in [format!("/m/{id}"), "/".into(), format!("/p/{root}")] {
        let (status, _, body) = get(&site.url(&path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let page = text(&body);
        let shown = visible_text(&page);
        assert!(
            shown.contains("Report<U+202E>txet<U+2066> <U+200F>done"),
            "{path}: {shown}"
        );
        assert!(!page.contains(controls), "{path}: a raw control in {page}");
        if path.starts_with("/m/") {
            assert!(shown.contains("photo<U+202E>gnp.exe"), "{shown}");
            assert!(page.contains("<bdi>"), "{page}");
        }
    }
    site.gateway.shutdown().await;
}

/// A key that is no Ed25519 public key anyone could sign with (the
/// all-zero key is a small-order point) is refused with a 400, on the page
/// and in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_publisher_key_is_a_400() {
    let site = site(|_| {}).await;
    let zero = "0".repeat(64);
    // The identity, and the point of order two.
    let identity = format!("01{}", "0".repeat(62));
    let order_two = format!("ec{}7f", "f".repeat(60));
    for key in [&zero, &identity, &order_two] {
        for route in ["/p/", "/api/v1/publishers/"] {
            let (status, _, body) = get(&site.url(&format!("{route}{key}"))).await;
            let page = text(&body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route}{key}: {page}");
            assert!(page.contains("not a usable publisher key"), "{page}");
        }
    }
    site.gateway.shutdown().await;
}

/// The pages speak the reader's language: `?lang=`, then the browser's
/// `Accept-Language`, then the article's own language, then English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_the_readers_language() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let (id, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![("index.md", ARTICLE_MD.as_bytes().to_vec(), "text/markdown")],
            supersedes: None,
        },
    )
    .await;
    let article = site.url(&format!("/m/{id}"));
    // (url, request headers, expected <html lang>, a phrase of that language)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 6] = [
        // No preference: the article's language.
        (&article, &[], "ru", "Кто подписал"),
        // The browser's, over the article's; q=0 means "not this one".
        (
            &article,
            &[("accept-language", "en-US,en;q=0.9")],
            "en",
            "Who signed this",
        ),
        (
            &article,
            &[("accept-language", "ru;q=0, de")],
            "ru",
            "Кто подписал",
        ),
        (
            &article,
            &[("accept-language", "de-DE,ru;q=0.5,en;q=0.4")],
            "ru",
            "Кто подписал",
        ),
        // ?lang= over everything; an unknown one is ignored.
        (
            &format!("{article}?lang=en"),
            &[("accept-language", "ru")],
            "en",
            "Who signed this",
        ),
        (
            &format!("{article}?lang=xx"),
            &[("accept-language", "en")],
            "en",
            "Who signed this",
        ),
    ];
    for (url, headers, lang, heading) in cases {
        let (status, h, body) = get_with(url, headers).await;
        let page = text(&body);
        assert_eq!(status, StatusCode::OK, "{url} {headers:?}");
        assert!(
            page.contains(&format!("<html lang=\"{lang}\">")),
            "{url} {headers:?}: {page}"
        );
        assert!(
            page.contains(&format!("<h2>{heading}</h2>")),
            "{url} {headers:?}: {page}"
        );
        // The article's own language stays its own.
        assert!(page.contains("<article lang=\"ru\">"), "{page}");
        assert_eq!(h[header::VARY], "accept-language");
    }
    // The front page has no article language: the browser's, else English.
    let (_, _, body) = get_with(&site.url("/"), &[("accept-language", "ru-RU")]).await;
    let front = text(&body);
    assert!(front.contains("<html lang=\"ru\">"), "{front}");
    assert!(
        front.contains("Статьи на этом узле") && front.contains("1 статья"),
        "{front}"
    );
    let (_, _, body) = get_with(&site.url("/"), &[]).await;
    assert!(text(&body).contains("Articles on this node"));
    // A publisher's page, in Russian on request.
    let key = outlet.root.public();
    let (_, _, body) = get_with(&site.url(&format!("/p/{key}?lang=ru")), &[]).await;
    let page = text(&body);
    assert!(
        page.contains("Отпечаток ключа") && page.contains("Статьи"),
        "{page}"
    );
    // A language chosen with ?lang= holds from page to page: the links to
    // other pages carry it, those to files and fragments are left alone.
    let (_, _, body) = get_with(&site.url("/?lang=ru"), &[("accept-language", "en")]).await;
    let front = text(&body);
    let link = format!("href=\"/m/{id}?lang=ru\"");
    assert!(front.contains(&link), "{front}");
    assert!(
        front.contains(&format!("href=\"/p/{key}?lang=ru\"")),
        "{front}"
    );
    let (_, _, body) = get_with(
        &site.url(&format!("/m/{id}?lang=ru")),
        &[("accept-language", "en")],
    )
    .await;
    let page = text(&body);
    assert!(page.contains("<html lang=\"ru\">"), "{page}");
    assert!(
        page.contains("href=\"/?lang=ru\""),
        "the way back keeps it: {page}"
    );
    assert!(page.contains("href=\"#provenance\""), "{page}");
    assert!(!page.contains("/assets/style.css?lang"), "{page}");
    assert!(
        !page.contains("?m={id}?lang") && !page.contains(&format!("href=\"/b/{id}?lang")),
        "{page}"
    );
    // What cannot be shown is said in plain words in the reader's language,
    // the technical line (English) under it.
    let mut forged = site.store.read_to_vec(&id).unwrap();
    let at = forged
        .windows("Свобода".len())
        .position(|w| w == "Свобода".as_bytes())
        .unwrap();
    forged[at..at + "Свобода".len()].copy_from_slice("Свадьба".as_bytes());
    let forged = site.store.add_bytes(&forged).unwrap().hash;
    let absent = blake3::hash(b"no such article").to_hex().to_string();
    let failures: [(String, &str, StatusCode, &str); 5] = [
        (
            format!("/m/{forged}"),
            "ru",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Не подтверждено: не доверяйте",
        ),
        (
            format!("/m/{forged}"),
            "en",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not verified: do not trust it",
        ),
        (
            format!("/m/{absent}"),
            "ru",
            StatusCode::NOT_FOUND,
            "Не найдено",
        ),
        (
            format!("/m/{}", &absent[..40]),
            "ru",
            StatusCode::BAD_REQUEST,
            "Неверный адрес",
        ),
        (
            format!("/p/{}", &absent[..40]),
            "en",
            StatusCode::BAD_REQUEST,
            "Not a valid address",
        ),
    ];
    for (path, lang, want, title) in failures {
        let (status, _, body) = get_with(&site.url(&path), &[("accept-language", lang)]).await;
        let page = text(&body);
        assert_eq!(status, want, "{path} {lang}: {page}");
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{page}");
        assert!(
            page.contains(&format!("<h1>{title}</h1>")),
            "{path} {lang}: {page}"
        );
        assert!(
            page.contains("<p lang=\"en\">"),
            "the detail, in English: {page}"
        );
        assert!(
            !page.contains("Свадьба"),
            "none of a forgery's content: {page}"
        );
    }
    site.gateway.shutdown().await;
}
