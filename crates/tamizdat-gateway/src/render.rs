//! Turning an article's body into HTML that is safe on our origin: markdown
//! rendered with pulldown-cmark, then everything sanitized by ammonia, with
//! links to the article's own files rewritten (to `/b/{hash}` on the
//! gateway, to the files beside the page in a static export) and every other
//! embedded resource dropped (an image on a stranger's server would tell it
//! who reads what).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tamizdat_sign::Manifest;
use tamizdat_store::Hash;

use crate::nesting;

/// Largest article text rendered into a page (on the gateway and in a
/// static export); a larger one is offered as a file.
pub const MAX_BODY: u64 = 2 << 20;

/// The entry holding an article's text: `index.md`, else `index.html`, else
/// the first markdown, HTML or plain-text file.
pub(crate) fn body_entry(m: &Manifest) -> Option<&tamizdat_sign::Entry> {
    body_of_entries(&m.entries)
}

/// [`body_entry`] among entries not yet signed.
pub fn body_of_entries(entries: &[tamizdat_sign::Entry]) -> Option<&tamizdat_sign::Entry> {
    let by_path = |p: &str| entries.iter().find(|e| e.path == p);
    by_path("index.md")
        .or_else(|| by_path("index.html"))
        .or_else(|| {
            entries.iter().find(|e| {
                matches!(
                    e.media_type.split(';').next().map(str::trim),
                    Some("text/markdown" | "text/html" | "text/plain")
                )
            })
        })
}

/// What kind of text a body entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Markdown,
    Html,
    Plain,
}

pub(crate) fn kind_of(e: &tamizdat_sign::Entry) -> Kind {
    let media = e.media_type.split(';').next().unwrap_or("").trim();
    if e.path.ends_with(".html") || e.path.ends_with(".htm") || media == "text/html" {
        Kind::Html
    } else if e.path.ends_with(".md") || media == "text/markdown" {
        Kind::Markdown
    } else {
        Kind::Plain
    }
}

/// The article's text as sanitized HTML for the gateway. `id` is the
/// manifest's hash, used in the links to its files.
pub(crate) fn article_html(m: &Manifest, id: Hash, text: &str, kind: Kind) -> String {
    let links = m
        .entries
        .iter()
        .map(|e| {
            let h = Hash::from_bytes(e.hash);
            (e.path.clone(), format!("/b/{h}?m={id}"))
        })
        .collect();
    article_html_linked(m, text, kind, links)
}

/// A reference in an article's text that its page will not have: the
/// sanitizer drops it, as it does on the gateway and in a static export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedReference {
    /// The element and attribute (`img src`, `a href`).
    pub at: String,
    /// The URL as written.
    pub url: String,
    /// Why it is dropped.
    pub why: DropReason,
}

/// Why a reference is dropped from an article's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// An image, video or other resource on another server: a reader's
    /// browser would fetch it by itself and tell that server who reads
    /// what. (A link the reader chooses to follow is kept.)
    External,
    /// A relative path to a file that is not part of the article.
    Missing,
    /// A path from the site's root (`/x`) or out of the article (`../x`).
    OutsideTheArticle,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::External => {
                "on another server: readers' browsers never load it (it would tell \
                 that server who reads the article), so it is not shown"
            }
            DropReason::Missing => "no such file in the article: it is dropped from the page",
            DropReason::OutsideTheArticle => {
                "points outside the article: it is dropped from the page"
            }
        })
    }
}

/// The references in `entries`' body text (see [`body_of_entries`]) that
/// its page will not have, found by the same rendering and sanitizing the
/// gateway does. `text` is the body file's text.
pub fn dropped_references(entries: &[tamizdat_sign::Entry], text: &str) -> Vec<DroppedReference> {
    let Some(body) = body_of_entries(entries) else {
        return Vec::new();
    };
    let kind = kind_of(body);
    let links = entries
        .iter()
        .map(|e| (e.path.clone(), format!("file:{}", e.path)))
        .collect();
    let report = Arc::new(Mutex::new(Vec::new()));
    let html = body_html(text, kind);
    let html = nesting::shallow_html(&html);
    quietly(|| sanitize_reporting(links, &html, Some(report.clone())));
    let mut out = report.lock().map(|r| r.clone()).unwrap_or_default();
    out.dedup();
    out
}

/// Markdown or HTML text as (unsanitized) HTML.
fn body_html(text: &str, kind: Kind) -> String {
    match kind {
        Kind::Markdown => {
            use pulldown_cmark::{Options, Parser, html};
            let mut opts = Options::empty();
            opts.insert(Options::ENABLE_TABLES);
            opts.insert(Options::ENABLE_STRIKETHROUGH);
            opts.insert(Options::ENABLE_FOOTNOTES);
            let mut out = String::with_capacity(text.len() * 3 / 2);
            let events = nesting::shallow_events(Parser::new_ext(text, opts));
            html::push_html(&mut out, events);
            out
        }
        Kind::Html => body_of(text).to_owned(),
        Kind::Plain => String::new(),
    }
}

/// The article's text as sanitized HTML, a relative link to one of its
/// files (by manifest path) becoming `links[path]`; links to paths not in
/// `links` are dropped.
pub(crate) fn article_html_linked(
    m: &Manifest,
    text: &str,
    kind: Kind,
    links: HashMap<String, String>,
) -> String {
    if kind == Kind::Plain {
        return maud::html! { pre.plain { (text) } }.into_string();
    }
    let html = body_html(text, kind);
    let html = nesting::shallow_html(&html);
    let clean = quietly(|| sanitize(links, &html));
    // The page shows the signed title as its heading: drop the text's own
    // first heading when it only repeats it.
    let repeated = maud::html! { h1 { (m.title) } }.into_string();
    match clean.trim_start().strip_prefix(&repeated) {
        Some(rest) => rest.to_owned(),
        None => clean,
    }
}

/// Runs `f` with no log record or event reaching the operator. html5ever
/// logs a warning (through `log`, which the binary's subscriber takes in)
/// for every piece of markup it mends, such as a `<tr>` outside a table:
/// notes on the article's markup, nothing the operator can act on. Nothing
/// else logs inside.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
}

/// Whether a character reorders the text around it: the embeddings,
/// overrides and isolates of the Unicode bidirectional algorithm and its
/// marks.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// An untrusted string (a title, a file name) with its bidirectional
/// controls shown as what they are (`<U+202E>`) instead of obeyed: a file
/// named `photo<U+202E>gnp.exe` must not pass for `photoexe.png`.
pub(crate) fn visible(s: &str) -> Cow<'_, str> {
    if !s.contains(is_bidi_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`visible`], isolated in `<bdi>`: a string in another direction
/// cannot reorder the text around it either.
pub(crate) fn shown(s: &str) -> maud::Markup {
    maud::html! { bdi { (visible(s)) } }
}

/// The inside of `<body>` when the text is a whole document.
fn body_of(doc: &str) -> &str {
    let lower = doc.to_ascii_lowercase();
    let Some(open) = lower.find("<body") else {
        return doc;
    };
    let Some(start) = lower[open..].find('>').map(|i| open + i + 1) else {
        return doc;
    };
    let end = lower[start..]
        .find("</body")
        .map(|i| start + i)
        .unwrap_or(doc.len());
    &doc[start..end]
}

/// At most this many dropped references are reported for one text.
const MAX_REPORTED: usize = 1_000;

/// Prefix of every id in an article's text.
const ID_PREFIX: &str = "a-";

fn sanitize(links: HashMap<String, String>, html: &str) -> String {
    sanitize_reporting(links, html, None)
}

/// [`sanitize`], telling `report` of every reference it drops.
fn sanitize_reporting(
    links: HashMap<String, String>,
    html: &str,
    report: Option<Arc<Mutex<Vec<DroppedReference>>>>,
) -> String {
    let files = Arc::new(links);
    let drop = move |element: &str, attribute: &str, url: &str, why| {
        if let Some(r) = &report
            && let Ok(mut r) = r.lock()
            && r.len() < MAX_REPORTED
        {
            r.push(DroppedReference {
                at: format!("{element} {attribute}"),
                url: url.to_owned(),
                why,
            });
        }
        None
    };
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        // Footnotes and in-page links work, in a namespace of their own so
        // an article cannot take the ids the page uses (`#provenance`).
        .add_generic_attributes(["id"])
        .id_prefix(Some(ID_PREFIX))
        .attribute_filter(move |element, attribute, value| {
            if !matches!(attribute, "src" | "href" | "cite" | "poster") {
                return Some(value.into());
            }
            let v = value.trim();
            if let Some(fragment) = v.strip_prefix('#') {
                return Some(Cow::Owned(format!("#{ID_PREFIX}{fragment}")));
            }
            if is_absolute(v) {
                // A link a reader chooses to follow is theirs to follow; a
                // resource the browser loads by itself is not.
                if element == "a" && attribute == "href" {
                    return Some(value.into());
                }
                return drop(element, attribute, v, DropReason::External);
            }
            if v.starts_with('/') {
                return drop(element, attribute, v, DropReason::OutsideTheArticle);
            }
            let Some(path) = relative_path(v) else {
                return drop(element, attribute, v, DropReason::OutsideTheArticle);
            };
            match files.get(&path) {
                Some(url) => Some(Cow::Owned(url.clone())),
                None => drop(element, attribute, v, DropReason::Missing),
            }
        })
        .clean(html)
        .to_string()
}

/// A URL with a scheme (`https:`, `javascript:`) or a network path (`//host`).
fn is_absolute(url: &str) -> bool {
    if url.starts_with("//") || url.starts_with("\\\\") {
        return true;
    }
    match url.find(':') {
        Some(i) => !url[..i].contains(['/', '?', '#']),
        None => false,
    }
}

/// A relative URL as a manifest path: no query or fragment, `./` dropped,
/// percent-decoded, `..` refused.
fn relative_path(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next()?;
    let decoded = percent_encoding::percent_decode_str(url)
        .decode_utf8()
        .ok()?;
    let mut parts = Vec::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether a language is written right to left.
pub(crate) fn is_rtl(lang: &str) -> bool {
    let primary = lang.split('-').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        primary.as_str(),
        "ar" | "fa" | "he" | "ur" | "ps" | "yi" | "ckb" | "dv" | "sd" | "ug"
    )
}

/// Unix seconds as an RFC 3339 UTC time.
pub(crate) fn time(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// A QR code of `text` as an inline `<svg>` element.
pub(crate) fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(180, 180)
        .quiet_zone(true)
        .build();
    svg.find("<svg").map(|i| svg[i..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls() {
        assert_eq!(relative_path("img/a.jpg").as_deref(), Some("img/a.jpg"));
        assert_eq!(
            relative_path("./img/a%20b.jpg?x#y").as_deref(),
            Some("img/a b.jpg")
        );
        assert_eq!(relative_path("../secret"), None);
        assert_eq!(relative_path("a/%2e%2e/b"), None);
        assert!(is_absolute("https://example.org/x.png"));
        assert!(is_absolute("javascript:alert(1)"));
        assert!(is_absolute("//example.org/x.png"));
        assert!(!is_absolute("img/a:b.png"));
        assert!(!is_absolute("a.png"));
    }

    #[test]
    fn dropped_references_are_what_the_page_leaves_out() {
        let entry = |path: &str, media: &str| tamizdat_sign::Entry {
            path: path.into(),
            hash: [0; 32],
            size: 1,
            media_type: media.into(),
        };
        let entries = [
            entry("index.md", "text/markdown"),
            entry("img/a.jpg", "image/jpeg"),
        ];
        let text = "# T\n\n![a](img/a.jpg) ![b](img/missing.jpg) \
                    ![c](https://tracker.example/c.png)\n\n\
                    [source](https://example.org/) [doc](report.pdf) [up](../x) \
                    [here](#t)\n\n<img src=\"/abs.png\">\n";
        let got: Vec<(String, String, DropReason)> = dropped_references(&entries, text)
            .into_iter()
            .map(|d| (d.at, d.url, d.why))
            .collect();
        let want = [
            ("img src", "img/missing.jpg", DropReason::Missing),
            (
                "img src",
                "https://tracker.example/c.png",
                DropReason::External,
            ),
            ("a href", "report.pdf", DropReason::Missing),
            ("a href", "../x", DropReason::OutsideTheArticle),
            ("img src", "/abs.png", DropReason::OutsideTheArticle),
        ]
        .map(|(a, u, w)| (a.to_owned(), u.to_owned(), w));
        assert_eq!(got, want);
        // What the page keeps, it keeps: the same text renders the image.
        let html = article_html_linked(
            &test_manifest(entries.to_vec()),
            text,
            Kind::Markdown,
            [("img/a.jpg".to_owned(), "A".to_owned())].into(),
        );
        assert!(html.contains("src=\"A\""), "{html}");
        assert!(!html.contains("tracker.example"), "{html}");
        assert!(html.contains("https://example.org/"), "{html}");
    }

    /// An unsigned manifest with these entries, for rendering only.
    fn test_manifest(entries: Vec<tamizdat_sign::Entry>) -> Manifest {
        let key = tamizdat_sign::SecretKey::from_seed(&[1; 32]).public();
        Manifest {
            publisher: key,
            signer: key,
            delegation: None,
            feed: "main".into(),
            seq: 1,
            prev: None,
            created: 0,
            title: "T".into(),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries,
        }
    }

    #[test]
    fn footnotes_link_within_the_article_only() {
        let m = test_manifest(Vec::new());
        let html = article_html(
            &m,
            Hash::of(b"x"),
            "Text[^1] and <a id=\"provenance\" href=\"#provenance\">x</a>.\n\n[^1]: Note.\n",
            Kind::Markdown,
        );
        assert!(html.contains("href=\"#a-1\""), "{html}");
        assert!(html.contains("id=\"a-1\""), "{html}");
        assert!(!html.contains("id=\"provenance\""), "{html}");
        assert!(html.contains("id=\"a-provenance\""), "{html}");
    }

    #[test]
    fn rtl() {
        assert!(is_rtl("fa"));
        assert!(is_rtl("ar-EG"));
        assert!(!is_rtl("ru"));
        assert!(!is_rtl("en-US"));
    }
}
