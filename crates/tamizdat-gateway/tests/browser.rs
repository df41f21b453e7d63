//! A real browser opens an article page: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs), driven over the DevTools protocol.
//! The screenshot is kept in `target/tmp/article-page.png`.

mod common;

use base64::Engine as _;
use common::cdp::{Cdp, Chromium, Res};
use common::*;
use serde_json::{Value, json};

/// What the test reads off the rendered page.
#[derive(Debug)]
struct Seen {
    title: Value,
    heading: Value,
    fingerprint: Value,
    image_loaded: Value,
    pwned: Value,
    png: Vec<u8>,
}

fn look_at(url: &str) -> Res<Seen> {
    let chromium = Chromium::launch()?;
    let seen = (|| -> Res<Seen> {
        let mut cdp = Cdp::connect(&chromium.ws_url)?;
        let sid = cdp.new_page()?;
        let s = Some(sid.as_str());
        cdp.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 412, "height": 1400, "deviceScaleFactor": 1, "mobile": true }),
        )?;
        cdp.navigate(&sid, url)?;
        let title = cdp.eval(&sid, "document.title")?;
        let heading = cdp.eval(&sid, "document.querySelector('article h1').textContent")?;
        let fingerprint = cdp.eval(&sid, "document.getElementById('fingerprint').textContent")?;
        let image_loaded = cdp.eval(
            &sid,
            "(() => { const i = document.querySelector('article img'); \
             return !!i && i.complete && i.naturalWidth === 16; })()",
        )?;
        let pwned = cdp.eval(
            &sid,
            "typeof window.__pwned === 'undefined' ? null : window.__pwned",
        )?;
        let shot = cdp.call(s, "Page.captureScreenshot", json!({ "format": "png" }))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot")?)?;
        let _ = cdp.call(None, "Browser.close", json!({}));
        Ok(Seen {
            title,
            heading,
            fingerprint,
            image_loaded,
            pwned,
            png,
        })
    })();
    seen.map_err(|e| format!("{e}\n--- chromium ---\n{}", chromium.tail()).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_article_its_image_and_badge_and_runs_no_script() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let text = "# Свобода слова\n\n\
        Независимые журналисты продолжают работу. ![фото](photo.png)\n\n\
        <script>window.__pwned = 1</script>\n\
        <img src=\"nothing\" onerror=\"window.__pwned = 2\">\n\
        <a href=\"javascript:window.__pwned=3\">ссылка</a>\n";
    let (id, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![
                ("index.md", text.as_bytes().to_vec(), "text/markdown"),
                ("photo.png", PNG.to_vec(), "image/png"),
            ],
            supersedes: None,
        },
    )
    .await;
    let url = site.url(&format!("/m/{id}"));
    let seen = tokio::task::spawn_blocking(move || look_at(&url))
        .await
        .unwrap()
        .unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("article-page.png");
    std::fs::write(&shot, &seen.png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(seen.title, "Свобода слова");
    assert_eq!(seen.heading, "Свобода слова");
    assert_eq!(seen.fingerprint, outlet.root.public().fingerprint());
    assert_eq!(seen.image_loaded, true, "the article's image loaded");
    assert!(
        seen.pwned.is_null(),
        "a script from the article ran: {}",
        seen.pwned
    );
    assert!(seen.png.starts_with(b"\x89PNG\r\n\x1a\n"));
    site.gateway.shutdown().await;
}

/// Opens `url` at a phone's width and evaluates each expression there;
/// returns their values and a screenshot.
fn look(url: &str, exprs: &[&str]) -> Res<(Vec<Value>, Vec<u8>)> {
    let chromium = Chromium::launch()?;
    let seen = (|| -> Res<(Vec<Value>, Vec<u8>)> {
        let mut cdp = Cdp::connect(&chromium.ws_url)?;
        let sid = cdp.new_page()?;
        let s = Some(sid.as_str());
        cdp.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 412, "height": 1400, "deviceScaleFactor": 1, "mobile": true }),
        )?;
        cdp.navigate(&sid, url)?;
        let mut values = Vec::new();
        for e in exprs {
            values.push(cdp.eval(&sid, e)?);
        }
        let shot = cdp.call(s, "Page.captureScreenshot", json!({ "format": "png" }))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot")?)?;
        let _ = cdp.call(None, "Browser.close", json!({}));
        Ok((values, png))
    })();
    seen.map_err(|e| format!("{e}\n--- chromium ---\n{}", chromium.tail()).into())
}

/// The page's chrome speaks the reader's language and says so (`lang`),
/// the article keeps its own language and direction: a Russian article in
/// Russian and in English, a Persian one laid out right to left inside an
/// English page. Screenshots: `target/tmp/lang-*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_each_page_in_the_readers_language() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let mut ids = Vec::new();
    for (seq, title, lang, text) in [
        (
            1,
            "Свобода слова",
            "ru",
            "# Свобода слова\n\nНезависимые журналисты продолжают работу.\n",
        ),
        (
            2,
            "آزادی بیان",
            "fa",
            "# آزادی بیان\n\nروزنامه‌نگاران مستقل به کار خود ادامه می‌دهند.\n",
        ),
    ] {
        let (id, _) = publish(
            &site,
            &outlet,
            Draft {
                seq,
                prev: ids.last().copied(),
                title,
                lang,
                files: vec![("index.md", text.as_bytes().to_vec(), "text/markdown")],
                supersedes: None,
            },
        )
        .await;
        ids.push(id);
    }
    let exprs = [
        "document.documentElement.lang",
        "getComputedStyle(document.body).direction",
        "document.querySelector('.badge h2').textContent",
        "document.querySelector('article').lang",
        "getComputedStyle(document.querySelector('article')).direction",
        "document.querySelector('article h1').textContent",
        "document.querySelector('footer nav strong').textContent",
    ];
    let cases = [
        // ?lang= first; Chromium's own Accept-Language (English) after.
        (
            "ru",
            format!("/m/{}?lang=ru", ids[0]),
            [
                "ru",
                "ltr",
                "Кто подписал",
                "ru",
                "ltr",
                "Свобода слова",
                "Русский",
            ],
        ),
        (
            "ru-in-en",
            format!("/m/{}", ids[0]),
            [
                "en",
                "ltr",
                "Who signed this",
                "ru",
                "ltr",
                "Свобода слова",
                "English",
            ],
        ),
        (
            "fa",
            format!("/m/{}", ids[1]),
            [
                "en",
                "ltr",
                "Who signed this",
                "fa",
                "rtl",
                "آزادی بیان",
                "English",
            ],
        ),
    ];
    for (name, path, want) in cases {
        let url = site.url(&path);
        let (values, png) = tokio::task::spawn_blocking(move || look(&url, &exprs))
            .await
            .unwrap()
            .unwrap();
        let shot =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lang-{name}.png"));
        std::fs::write(&shot, &png).unwrap();
        eprintln!("screenshot: {}", shot.display());
        let got: Vec<&str> = values.iter().map(|v| v.as_str().unwrap_or("?")).collect();
        assert_eq!(got, want, "{name}");
    }
    site.gateway.shutdown().await;
}
