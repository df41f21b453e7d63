//! Turning an article's body into HTML that is safe on our origin: markdown
//! rendered with pulldown-cmark, then everything sanitized by ammonia, with
//! links to the article's own files rewritten (to `/b/{hash}` on the
//! gateway, to the files beside the page in a static export) and every other
//! embedded resource dropped (an image on a stranger's server would tell it
//! who reads what).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tamizdat_sign::Manifest;
use tamizdat_store::Hash;

use crate::nesting;

/// The entry holding an article's text: `index.md`, else `index.html`, else
/// the first markdown, HTML or plain-text file.
pub(crate) fn body_entry(m: &Manifest) -> Option<&tamizdat_sign::Entry> {
    let by_path = |p: &str| m.entries.iter().find(|e| e.path == p);
    by_path("index.md")
        .or_else(|| by_path("index.html"))
        .or_else(|| {
            m.entries.iter().find(|e| {
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

/// The article's text as sanitized HTML, a relative link to one of its
/// files (by manifest path) becoming `links[path]`; links to paths not in
/// `links` are dropped.
pub(crate) fn article_html_linked(
    m: &Manifest,
    text: &str,
    kind: Kind,
    links: HashMap<String, String>,
) -> String {
    let html = match kind {
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
        Kind::Plain => {
            return maud::html! { pre.plain { (text) } }.into_string();
        }
    };
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

/// Prefix of every id in an article's text.
const ID_PREFIX: &str = "a-";

fn sanitize(links: HashMap<String, String>, html: &str) -> String {
    let files = Arc::new(links);
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
                return (element == "a" && attribute == "href").then(|| value.into());
            }
            if v.starts_with('/') {
                return None;
            }
            let path = relative_path(v)?;
            files.get(&path).map(|url| Cow::Owned(url.clone()))
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
    fn footnotes_link_within_the_article_only() {
        let m = Manifest {
            publisher: tamizdat_sign::SecretKey::from_seed(&[1; 32]).public(),
            signer: tamizdat_sign::SecretKey::from_seed(&[1; 32]).public(),
            delegation: None,
            feed: "main".into(),
            seq: 1,
            prev: None,
            created: 0,
            title: "t".into(),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries: Vec::new(),
        };
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
