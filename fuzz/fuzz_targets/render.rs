//! The gateway's article rendering (markdown through pulldown-cmark, HTML
//! through ammonia, links to the article's files rewritten), reached
//! through its one public door, the static HTML export
//! (`tamizdat_gateway::html::export`): the fuzz input is the article's
//! text, in a root-signed manifest made here with two other files.
//!
//! `parse_range` and the renderer itself are `pub(crate)` in
//! tamizdat-gateway, so the byte-range parser is not reached from here.
//!
//! Checks: no panic; the export succeeds; the article page holds no
//! script, no event-handler attribute, no `javascript:` URL, no frame,
//! object, embed or form, and no resource loaded from anywhere but the
//! export folder.

use std::{
    collections::HashMap,
    io::{self, Cursor, Read},
    sync::OnceLock,
};

use afl::fuzz;
use tamizdat_fuzz::{manifest, scratch};
use tamizdat_gateway::html::{Article, export};
use tamizdat_sign::{TrustState, Verifier};
use tamizdat_store::Hash;

const PHOTO: &[u8] = b"\x89PNG\r\n\x1a\n not really";
const REPORT: &[u8] = b"%PDF-1.4 not really";

fn main() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(scratch);
    fuzz!(|data: &[u8]| {
        let Some((&mode, text)) = data.split_first() else {
            return;
        };
        let (path, media) = match mode % 3 {
            0 => ("index.md", "text/markdown"),
            1 => ("index.html", "text/html"),
            _ => ("notes.txt", "text/plain"),
        };
        let signed = manifest(
            1,
            None,
            &[
                (path, text, media),
                ("photo.png", PHOTO, "image/png"),
                ("docs/report 1.pdf", REPORT, "application/pdf"),
            ],
        );
        let m = Verifier::new()
            .verify(signed.bytes(), &TrustState::default())
            .unwrap();
        let blobs: HashMap<Hash, Vec<u8>> = [text, PHOTO, REPORT]
            .into_iter()
            .map(|b| (Hash::of(b), b.to_vec()))
            .collect();
        let open = |h: &Hash| -> io::Result<Box<dyn Read + Send>> {
            blobs
                .get(h)
                .map(|b| Box::new(Cursor::new(b.clone())) as Box<dyn Read + Send>)
                .ok_or_else(|| io::Error::other("no such blob"))
        };
        let out = dir.path().join("export");
        let id = Hash::from_bytes(m.id());
        let article = Article {
            manifest: m,
            publisher_name: Some("Fuzz <b>News</b>".into()),
            followed: mode & 0x80 != 0,
            card: None,
        };
        export(&out, &[article], &open).expect("an export of a verified article");
        let page = std::fs::read_to_string(out.join(format!("articles/{id}.html"))).unwrap();
        check_page(&page);
        std::fs::remove_dir_all(&out).unwrap();
    });
}

/// The attributes of every tag in `html`, lower-cased names and raw values.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        i += off + 1;
        if html[i..].starts_with("!--") {
            i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            let s = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>') {
                i += 1;
            }
            let an = html[s..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    let vs = i + 1;
                    i = vs
                        + html[vs..]
                            .bytes()
                            .position(|c| c == q)
                            .unwrap_or(b.len() - vs);
                    value = html[vs..i.min(b.len())].to_owned();
                    i += 1;
                } else {
                    let vs = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = html[vs..i].to_owned();
                }
            }
            attrs.push((an, value));
        }
        out.push((name, attrs));
    }
    out
}

fn check_page(page: &str) {
    for (tag, attrs) in tags(page) {
        assert!(
            !matches!(
                tag.as_str(),
                "script" | "iframe" | "frame" | "object" | "embed" | "form" | "base" | "applet"
            ),
            "<{tag}> on an article page"
        );
        for (name, value) in attrs {
            assert!(
                !name.starts_with("on"),
                "<{tag} {name}=...> on an article page"
            );
            let v = value.trim().to_ascii_lowercase();
            assert!(!v.starts_with("javascript:"), "<{tag} {name}={value:?}>");
            if matches!(
                name.as_str(),
                "src" | "srcset" | "poster" | "data" | "background"
            ) || (tag == "link" && name == "href")
            {
                for bad in ["http:", "https:", "//", "data:", "file:", "ftp:"] {
                    assert!(
                        !v.starts_with(bad),
                        "<{tag} {name}={value:?}> loads from elsewhere"
                    );
                }
            }
        }
    }
}
