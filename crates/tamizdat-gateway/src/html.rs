//! The static HTML export: a folder of plain pages that any browser opens
//! from a USB stick, for readers with no tamizdat installed.
//!
//! ```text
//! DIR/index.html                  publishers and their articles, newest first
//! DIR/articles/ID.html            one page per article: text, files, provenance
//! DIR/articles/ID/PATH            the article's files, beside its page
//! DIR/manifests/ID.manifest       the signed manifests, byte for byte
//! DIR/style.css                   the pages' one stylesheet
//! DIR/VERIFY.txt                  how to check all of it, in plain words
//! DIR/B3SUMS                      `b3sum --check B3SUMS` checks every file
//! ```
//!
//! `ID` is the manifest's hash, the article's link. The pages run no script
//! (sanitized as on the gateway, and a Content-Security-Policy that forbids
//! scripts) and load nothing from the network. An article's file keeps its
//! path when a browser opening it can run nothing (images, audio, video,
//! plain text); any other file gets `.txt` added to its name, so a click
//! shows its text and never runs it. Its bytes are unchanged: its hash in
//! `B3SUMS` is the one in the signed manifest. A path that cannot be a file
//! name on every disk, or holds a character that reorders text (which a file
//! manager would obey), is saved under the file's hash. On the pages, titles
//! and names show such characters as `<U+202E>` and the like.
//!
//! Every file is written under a temporary name, synced, then renamed into
//! place. `index.html` and `B3SUMS` come last: a folder without them is an
//! export that did not finish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tamizdat_sign::{Entry, PublicKey, VerifiedManifest};
use tamizdat_store::Hash;

use crate::i18n::Locale;
use crate::render;

/// One article to export.
#[derive(Debug, Clone)]
pub struct Article {
    /// The manifest, already verified by the caller against its keys and
    /// revocations.
    pub manifest: VerifiedManifest,
    /// The name the node's user gave the publisher.
    pub publisher_name: Option<String>,
    /// Whether the node follows the publisher. `false`: the signature is
    /// valid, but nobody here vouches for who holds the key.
    pub followed: bool,
    /// The publisher's card, as the node holds it (genuine; shown when it
    /// is valid at the time of the export), for readers to join with.
    pub card: Option<tamizdat_sign::Signed<tamizdat_sign::Card>>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Articles exported (each id once).
    pub articles: usize,
    /// Publishers they come from.
    pub publishers: usize,
    /// Files written, `B3SUMS` included.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Article files saved under another name than their path: `.txt`
    /// added, or a name made from their hash when the path cannot be a file
    /// name on every disk.
    pub renamed: usize,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder exists and holds something.
    #[error("{}: the export folder must be new or empty", path.display())]
    NotEmpty { path: PathBuf },
    /// Writing or reading the folder failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A blob could not be read (missing, or damaged: its bytes do not match
    /// its hash).
    #[error("blob {hash} ({path} of article {article}) cannot be read: {source}")]
    Blob {
        hash: Hash,
        article: Hash,
        path: String,
        source: io::Error,
    },
    /// A blob's bytes are not what the signed manifest says.
    #[error(
        "blob {hash} ({path} of article {article}) does not match its manifest: the {size} bytes read do not hash to it (the manifest says {expected} bytes)"
    )]
    Mismatch {
        hash: Hash,
        article: Hash,
        path: String,
        size: u64,
        expected: u64,
    },
}

/// Where files are written before they are renamed into place.
const PARTIAL: &str = ".tamizdat-partial";

/// The pages' policy: no script, no frames, no forms. Images, media and the
/// stylesheet come from the folder: `'self'` is enough for Chromium on
/// `file://`, `file:` is there for browsers that give local pages an opaque
/// origin. The sanitizer already drops every absolute URL a resource could
/// load (`file:` and `https:` alike); this is the second line.
const PAGE_CSP: &str = "default-src 'none'; img-src 'self' file:; media-src 'self' file:; \
                        style-src 'self' file:; form-action 'none'; base-uri 'none'";

/// Extensions a browser shows without running anything.
const PASSIVE: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "avif", "mp3", "m4a", "ogg", "oga", "opus", "wav", "flac",
    "mp4", "m4v", "webm", "ogv", "txt",
];

/// Characters kept as they are in a link to a file.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Writes the export of `articles` into `dir`, which must not exist or be
/// empty. `open_blob` gives a blob's bytes, verified as they are read; every
/// file's bytes are also hashed here and checked against the manifest.
pub fn export(
    dir: &Path,
    articles: &[Article],
    open_blob: &dyn Fn(&Hash) -> io::Result<Box<dyn Read + Send>>,
) -> Result<Report, Error> {
    export_in(dir, articles, open_blob, None)
}

/// The languages the pages can be written in (`en`, `ru`).
pub fn languages() -> Vec<&'static str> {
    Locale::all().iter().map(|l| l.tag).collect()
}

/// [`export`], its pages in `lang` (a language tag; one with no messages
/// here gives English). Without it, each article's page speaks the
/// article's language where it can, and the index the language most of
/// the articles are in. `VERIFY.txt` (English) and `VERIFY.ru.txt` are
/// always both written.
pub fn export_in(
    dir: &Path,
    articles: &[Article],
    open_blob: &dyn Fn(&Hash) -> io::Result<Box<dyn Read + Send>>,
    lang: Option<&str>,
) -> Result<Report, Error> {
    let created = prepare(dir)?;
    let mut out = Out::new(dir)?;
    if created {
        // The folder's own name must last too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            out.dirs.insert(0, parent.to_owned());
        }
    }
    let chosen = lang.map(|l| Locale::find(l).unwrap_or_else(Locale::en));
    let result = write_all(&mut out, articles, open_blob, chosen);
    let _ = fs::remove_dir_all(dir.join(PARTIAL));
    result?;
    out.sync_dirs()?;
    Ok(out.report)
}

/// Creates `dir` (true), or checks that it is empty (false).
fn prepare(dir: &Path) -> Result<bool, Error> {
    let io_err = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::NotEmpty {
                    path: dir.to_owned(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_err)?;
            Ok(true)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// An article with what its pages need to know.
struct Item<'a> {
    a: &'a Article,
    id: Hash,
}

fn write_all(
    out: &mut Out,
    articles: &[Article],
    open_blob: &dyn Fn(&Hash) -> io::Result<Box<dyn Read + Send>>,
    chosen: Option<&'static Locale>,
) -> Result<(), Error> {
    let mut seen = HashSet::new();
    let mut items: Vec<Item<'_>> = articles
        .iter()
        .filter_map(|a| {
            let id = Hash::from_bytes(a.manifest.id());
            seen.insert(id).then_some(Item { a, id })
        })
        .collect();
    // Newest first; ties in a fixed order, so the same articles always make
    // the same folder.
    items.sort_by(|x, y| {
        let (mx, my) = (x.a.manifest.manifest(), y.a.manifest.manifest());
        (my.created, my.seq, y.id).cmp(&(mx.created, mx.seq, x.id))
    });
    out.mkdir("manifests")?;
    out.mkdir("articles")?;
    for item in &items {
        let m = item.a.manifest.manifest();
        out.write_bytes(
            &format!("manifests/{}.manifest", item.id),
            item.a.manifest.envelope().bytes(),
        )?;
        let files = saved_names(&m.entries);
        out.report.renamed += m
            .entries
            .iter()
            .zip(&files)
            .filter(|(e, f)| e.path != **f)
            .count();
        let body_entry = render::body_entry(m);
        let mut text = None;
        for (e, name) in m.entries.iter().zip(&files) {
            let rel = format!("articles/{}/{name}", item.id);
            let keep = body_entry.is_some_and(|b| b.path == e.path) && e.size <= render::MAX_BODY;
            let bytes = out.write_entry(&rel, item.id, e, open_blob, keep)?;
            if keep {
                text = bytes;
            }
        }
        let loc = chosen
            .or_else(|| Locale::find(&m.lang))
            .unwrap_or_else(Locale::en);
        let page = article_page(item, &items, &files, text.as_deref(), loc);
        out.write_bytes(
            &format!("articles/{}.html", item.id),
            page.into_string().as_bytes(),
        )?;
        out.report.articles += 1;
    }
    out.write_bytes("style.css", crate::pages::STYLE.as_bytes())?;
    out.write_bytes("VERIFY.txt", VERIFY_TXT.as_bytes())?;
    out.write_bytes("VERIFY.ru.txt", VERIFY_RU_TXT.as_bytes())?;
    let loc = chosen.unwrap_or_else(|| most_common(&items));
    let (index, publishers) = index_page(&items, loc);
    out.report.publishers = publishers;
    out.write_bytes("index.html", index.into_string().as_bytes())?;
    out.write_sums()
}

/// The name each entry is saved under, relative to the article's folder,
/// in the manifest's order. A path keeps its name when that name is a file
/// name on every common disk (FAT and exFAT sticks included) and collides
/// with no other, compared case-insensitively; `.txt` is added when a
/// browser could run it. Otherwise the file is named after its hash.
fn saved_names(entries: &[Entry]) -> Vec<String> {
    let mut files = HashSet::new();
    let mut dirs = HashSet::new();
    let mut fits = |name: &str| {
        let lower = name.to_lowercase();
        let parents: Vec<&str> = lower.match_indices('/').map(|(i, _)| &lower[..i]).collect();
        if files.contains(&lower)
            || dirs.contains(&lower)
            || parents.iter().any(|p| files.contains(*p))
        {
            return false;
        }
        for p in parents {
            dirs.insert(p.to_owned());
        }
        files.insert(lower);
        true
    };
    entries
        .iter()
        .map(|e| {
            let ext = extension(&e.path);
            let passive = ext.as_deref().is_some_and(|x| PASSIVE.contains(&x));
            if e.path.split('/').all(portable) {
                let name = if passive {
                    e.path.clone()
                } else {
                    format!("{}.txt", e.path)
                };
                if fits(&name) {
                    return name;
                }
            }
            let ext = if passive {
                ext.unwrap_or_default()
            } else {
                "txt".into()
            };
            let hash = Hash::from_bytes(e.hash);
            let mut name = format!("{hash}.{ext}");
            let mut n = 1;
            while !fits(&name) {
                n += 1;
                name = format!("{hash}-{n}.{ext}");
            }
            name
        })
        .collect()
}

/// A path's extension, lower case.
fn extension(path: &str) -> Option<String> {
    let last = path.rsplit('/').next()?;
    let (stem, ext) = last.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// Whether a path segment is a file name on Linux, macOS, Windows, FAT and
/// exFAT alike (leaving room for `.txt`).
fn portable(seg: &str) -> bool {
    const RESERVED: &[&str] = &[
        "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
        "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    ];
    let stem = seg.split('.').next().unwrap_or("").to_ascii_lowercase();
    !seg.is_empty()
        && seg.len() <= 200
        && seg != "."
        && seg != ".."
        && !seg.ends_with(['.', ' '])
        && !seg.chars().any(|c| {
            c.is_control()
                || render::is_bidi_control(c)
                || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*' | '\\' | '/')
        })
        && !RESERVED.contains(&stem.trim_end())
}

/// A relative URL to a saved file.
fn href(rel: &str) -> String {
    rel.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The folder being written.
struct Out {
    dir: PathBuf,
    partial: PathBuf,
    next: u64,
    /// `b3sum` lines: relative path, hash.
    sums: BTreeMap<String, Hash>,
    dirs: Vec<PathBuf>,
    report: Report,
}

impl Out {
    fn new(dir: &Path) -> Result<Self, Error> {
        let partial = dir.join(PARTIAL);
        fs::create_dir(&partial).map_err(|source| Error::Io {
            path: partial.clone(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            partial,
            next: 0,
            sums: BTreeMap::new(),
            dirs: vec![dir.to_owned()],
            report: Report::default(),
        })
    }

    /// `rel` under the folder, refusing anything but plain names.
    fn path(&self, rel: &str) -> Result<PathBuf, Error> {
        let p = Path::new(rel);
        let plain = !rel.is_empty()
            && !rel.contains('\\')
            && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(Error::Io {
                path: self.dir.join(rel),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path"),
            });
        }
        Ok(self.dir.join(p))
    }

    /// Creates `rel` and its parents inside the folder, each a real
    /// directory (never a link somewhere else).
    fn mkdir(&mut self, rel: &str) -> Result<(), Error> {
        let mut at = self.dir.clone();
        for seg in rel.split('/') {
            at.push(seg);
            match fs::create_dir(&at) {
                Ok(()) => self.dirs.push(at.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let is_dir = fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
                    if !is_dir {
                        return Err(Error::Io {
                            path: at,
                            source: e,
                        });
                    }
                }
                Err(source) => return Err(Error::Io { path: at, source }),
            }
        }
        Ok(())
    }

    /// Writes a file through a temporary name: `fill` writes its bytes and
    /// returns whether they are good; only then is it synced and renamed.
    fn place<T>(
        &mut self,
        rel: &str,
        fill: impl FnOnce(&mut HashingWriter<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let target = self.path(rel)?;
        if let Some((parent, _)) = rel.rsplit_once('/') {
            self.mkdir(parent)?;
        }
        if fs::symlink_metadata(&target).is_ok() {
            return Err(Error::Io {
                path: target,
                source: io::Error::new(io::ErrorKind::AlreadyExists, "written twice"),
            });
        }
        self.next += 1;
        let tmp = self.partial.join(self.next.to_string());
        let io_at = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        let mut w = HashingWriter {
            file: &file,
            hasher: blake3::Hasher::new(),
            len: 0,
            path: &tmp,
        };
        let done = fill(&mut w).and_then(|v| {
            file.sync_all().map_err(io_at(&tmp))?;
            Ok(v)
        });
        let (hash, len) = (Hash::from_bytes(*w.hasher.finalize().as_bytes()), w.len);
        drop(file);
        let v = match done {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io {
                path: target,
                source: e,
            });
        }
        self.sums.insert(rel.to_owned(), hash);
        self.report.files += 1;
        self.report.bytes += len;
        Ok(v)
    }

    fn write_bytes(&mut self, rel: &str, bytes: &[u8]) -> Result<(), Error> {
        self.place(rel, |w| w.write(bytes))
    }

    /// Copies an entry's blob to `rel`, checking its hash and size. Returns
    /// its bytes when `keep`.
    fn write_entry(
        &mut self,
        rel: &str,
        article: Hash,
        e: &Entry,
        open_blob: &dyn Fn(&Hash) -> io::Result<Box<dyn Read + Send>>,
        keep: bool,
    ) -> Result<Option<Vec<u8>>, Error> {
        let hash = Hash::from_bytes(e.hash);
        let blob_err = |source| Error::Blob {
            hash,
            article,
            path: e.path.clone(),
            source,
        };
        self.place(rel, |w| {
            let mut reader = open_blob(&hash).map_err(blob_err)?;
            let mut kept = keep.then(Vec::new);
            let mut buf = vec![0; 64 << 10];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(blob_err(err)),
                };
                w.write(&buf[..n])?;
                if let Some(k) = &mut kept {
                    k.extend_from_slice(&buf[..n]);
                }
                if w.len > e.size {
                    break;
                }
            }
            let got = Hash::from_bytes(*w.hasher.finalize().as_bytes());
            if got != hash || w.len != e.size {
                return Err(Error::Mismatch {
                    hash,
                    article,
                    path: e.path.clone(),
                    size: w.len,
                    expected: e.size,
                });
            }
            Ok(kept)
        })
    }

    /// `B3SUMS`: every file but itself, in `b3sum`'s format.
    fn write_sums(&mut self) -> Result<(), Error> {
        let text: String = self
            .sums
            .iter()
            .map(|(path, hash)| format!("{hash}  {path}\n"))
            .collect();
        self.write_bytes("B3SUMS", text.as_bytes())
    }

    /// Makes the names durable: every directory written to is synced.
    fn sync_dirs(&self) -> Result<(), Error> {
        for d in self.dirs.iter().rev() {
            File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|source| Error::Io {
                    path: d.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

struct HashingWriter<'a> {
    file: &'a File,
    hasher: blake3::Hasher,
    len: u64,
    path: &'a Path,
}

impl HashingWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|source| Error::Io {
            path: self.path.to_owned(),
            source,
        })
    }
}

/// The language most of the articles are in, among those with messages
/// here; English on a tie or when none is.
fn most_common(items: &[Item<'_>]) -> &'static Locale {
    let mut count: HashMap<&'static str, usize> = HashMap::new();
    for item in items {
        if let Some(l) = Locale::find(&item.a.manifest.manifest().lang) {
            *count.entry(l.tag).or_insert(0) += 1;
        }
    }
    let en = count.get(Locale::en().tag).copied().unwrap_or(0);
    count
        .into_iter()
        .filter(|(_, n)| *n > en)
        .max_by_key(|(tag, n)| (*n, std::cmp::Reverse(*tag)))
        .and_then(|(tag, _)| Locale::find(tag))
        .unwrap_or_else(Locale::en)
}

fn page(title: &str, loc: &Locale, root: &str, main: Markup) -> Markup {
    let verify = format!("{root}{}", loc.s("export-verify-file", &[]));
    html! {
        (DOCTYPE)
        html lang=(loc.tag) dir=[loc.is_rtl().then_some("rtl")] {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(PAGE_CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta http-equiv="x-dns-prefetch-control" content="off";
                title { (render::visible(title)) }
                link rel="stylesheet" href=(format!("{root}style.css"));
            }
            body {
                header.site {
                    a href=(format!("{root}index.html")) { "tamizdat" } " · " (loc.s("export-tagline", &[])) " · "
                    a href=(verify) { (loc.s("export-how-to-check", &[])) }
                }
                main { (main) }
                footer.site {
                    (loc.h("export-footer", &[
                        ("manifests", html! { code { "manifests/" } }.into()),
                        ("link", html! { a href=(verify) { (loc.s("export-footer-link", &[])) } }.into()),
                    ]))
                }
            }
        }
    }
}

fn publisher_label(a: &Article) -> String {
    a.publisher_name
        .clone()
        .unwrap_or_else(|| a.manifest.manifest().publisher.fingerprint())
}

fn index_page(items: &[Item<'_>], loc: &Locale) -> (Markup, usize) {
    // Publishers in the order of their newest article.
    let mut order: Vec<PublicKey> = Vec::new();
    let mut by: HashMap<PublicKey, Vec<&Item<'_>>> = HashMap::new();
    for item in items {
        let key = item.a.manifest.manifest().publisher;
        if !by.contains_key(&key) {
            order.push(key);
        }
        by.entry(key).or_default().push(item);
    }
    let main = html! {
        h1 { (loc.s("export-heading", &[])) }
        @let verify = loc.s("export-verify-file", &[]);
        p {
            (loc.h("export-intro", &[
                ("verify", html! { a href=(verify) { (verify) } }.into()),
                ("command", html! { code { "tamizdat verify" } }.into()),
                ("sums", html! { a href="B3SUMS" { "B3SUMS" } }.into()),
            ]))
        }
        @if items.is_empty() {
            p { (loc.s("export-empty", &[])) }
        }
        @for key in &order {
            @let list = &by[key];
            @let first = list[0].a;
            section.publisher {
                h2 {
                    @if first.followed { "✔ " } @else { "⚠ " }
                    (render::shown(&first.publisher_name.clone().unwrap_or_else(|| loc.s("publisher-unnamed", &[("fingerprint", key.fingerprint().into())]))))
                }
                dl.keyinfo {
                    dt { (loc.s("publisher-fingerprint", &[])) } dd.fingerprint { (key.fingerprint()) }
                    dt { (loc.s("publisher-key", &[])) } dd { code.key { (key) } }
                    dt { (loc.s("export-followed", &[])) }
                    dd { (loc.s(if first.followed { "export-followed-yes" } else { "export-followed-no" }, &[])) }
                }
                @if let Some(card) = list.iter().find_map(|i| i.a.card.as_ref()).and_then(crate::pages::card_now) {
                    (crate::pages::card_section(loc, &card.0, &card.1))
                }
                ul.articles {
                    @for item in list {
                        @let m = item.a.manifest.manifest();
                        li.article {
                            a href=(format!("articles/{}.html", item.id)) lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] { (render::shown(&m.title)) }
                            div.meta {
                                time { (render::time(m.created)) }
                                " · " (render::shown(&m.lang)) " · " (render::shown(&m.feed)) " #" (m.seq)
                            }
                            @if let Some(s) = &m.summary {
                                p.summary lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] { (render::shown(s)) }
                            }
                        }
                    }
                }
            }
        }
    };
    (
        page(&loc.s("export-title", &[]), loc, "", main),
        order.len(),
    )
}

fn article_page(
    item: &Item<'_>,
    all: &[Item<'_>],
    files: &[String],
    text: Option<&[u8]>,
    loc: &Locale,
) -> Markup {
    let (a, id) = (item.a, item.id);
    let m = a.manifest.manifest();
    let body = render::body_entry(m);
    let links: HashMap<String, String> = m
        .entries
        .iter()
        .zip(files)
        .map(|(e, f)| (e.path.clone(), format!("{id}/{}", href(f))))
        .collect();
    let rendered = match (body, text) {
        (Some(e), Some(t)) => Some(PreEscaped(render::article_html_linked(
            m,
            &String::from_utf8_lossy(t),
            render::kind_of(e),
            links,
        ))),
        (Some(_), None) => Some(html! { p.note { (loc.s("export-text-too-large", &[])) } }),
        (None, _) => None,
    };
    let main = html! {
        p.provenance {
            (loc.h(
                if a.followed { "article-signed" } else { "article-unknown" },
                &[("name", html! { strong { (render::shown(&publisher_label(a))) } }.into())],
            ))
            " · " time { (render::time(m.created)) } " · "
            a href="#provenance" { (loc.s("article-who-signed", &[])) }
        }
        article lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] {
            h1 { (render::shown(&m.title)) }
            @if let Some(t) = rendered { div.body { (t) } }
        }
        section.files {
            h2 { (loc.s("files", &[])) }
            ul {
                @for (e, f) in m.entries.iter().zip(files) {
                    li {
                        a href=(format!("{id}/{}", href(f))) { (render::shown(&e.path)) }
                        " · " (render::shown(&e.media_type)) " · "
                        (loc.h("export-file-line", &[
                            ("size", loc.s("file-size", &[("bytes", e.size.into())]).into()),
                            ("hash", html! { code.key { (Hash::from_bytes(e.hash)) } }.into()),
                        ]))
                        @if *f != e.path {
                            br;
                            small { (loc.h("export-saved-as", &[("name", html! { code { (render::shown(f)) } }.into())])) (renamed_note(f, loc)) }
                        }
                    }
                }
            }
        }
        (badge(item, all, loc))
    };
    page(&m.title, loc, "../", main)
}

fn renamed_note(saved: &str, loc: &Locale) -> String {
    if saved.ends_with(".txt") {
        loc.s("export-renamed-txt", &[])
    } else {
        loc.s("export-renamed-hash", &[])
    }
}

fn badge(item: &Item<'_>, all: &[Item<'_>], loc: &Locale) -> Markup {
    let (a, id, v) = (item.a, item.id, &item.a.manifest);
    let m = v.manifest();
    let same_feed = |o: &&Item<'_>| {
        let om = o.a.manifest.manifest();
        om.publisher == m.publisher && om.feed == m.feed
    };
    // `all` is newest first.
    let newer_version = all
        .iter()
        .filter(same_feed)
        .find(|o| o.a.manifest.manifest().supersedes == Some(*id.as_bytes()));
    let feed_head = all
        .iter()
        .filter(same_feed)
        .max_by_key(|o| o.a.manifest.manifest().seq)
        .filter(|o| o.a.manifest.manifest().seq > m.seq);
    let manifest_file = format!("manifests/{id}.manifest");
    html! {
        section.badge #provenance {
            h2 { (loc.s("badge-heading", &[])) }
            @if a.followed {
                p.verified { (loc.s("export-verified", &[])) }
            } @else {
                p.warning { (loc.s("export-unknown", &[])) }
            }
            dl {
                dt { (loc.s("badge-publisher", &[])) }
                dd { (render::shown(&a.publisher_name.clone().unwrap_or_else(|| loc.s("export-no-name", &[]))))
                    @if !a.followed { " " (loc.s("export-not-followed", &[])) } }
                (crate::pages::provenance_rows(v, loc))
                @if let Some(old) = m.supersedes {
                    @let old = Hash::from_bytes(old);
                    dt { (loc.s("badge-corrects", &[])) }
                    dd {
                        @if all.iter().any(|o| o.id == old) {
                            (loc.h("export-corrects-text", &[("link", html! { a href=(format!("{old}.html")) { code.key { (old) } } }.into())]))
                        } @else {
                            (loc.h("export-corrects-text", &[("link", loc.h("export-not-here", &[("hash", html! { code.key { (old) } }.into())]).into())]))
                        }
                    }
                }
                @if let Some(n) = newer_version {
                    dt.warning { (loc.s("badge-corrected", &[])) }
                    dd.warning { (loc.h("badge-corrected-text", &[("link", html! { a href=(format!("{}.html", n.id)) { (loc.s("badge-corrected-link", &[])) } }.into())])) }
                }
                @if let Some(h) = feed_head {
                    dt { (loc.s("badge-newer", &[])) }
                    dd { (loc.h("export-newer-text", &[("link", html! { a href=(format!("{}.html", h.id)) { "#" (h.a.manifest.manifest().seq) } }.into())])) }
                }
                dt { (loc.s("badge-manifest", &[])) }
                dd { a href=(format!("../{manifest_file}")) { code.key { (id) } } }
            }
            p { (loc.s("export-check", &[])) }
            pre.command { "tamizdat verify " (manifest_file) "\nb3sum --check B3SUMS" }
            p {
                (loc.h("export-check-how", &[
                    ("fingerprint", html! { strong.fingerprint { (m.publisher.fingerprint()) } }.into()),
                    ("link", html! { a href=(format!("../{}", loc.s("export-verify-file", &[]))) { (loc.s("export-check-more", &[])) } }.into()),
                ]))
            }
        }
    }
}

/// [`VERIFY_TXT`] in Russian: UTF-8 with a byte-order mark, so that a
/// browser opening it from a USB stick reads it as UTF-8.
const VERIFY_RU_TXT: &str = include_str!("../locales/VERIFY.ru.txt");

/// How to check an export, for readers. ASCII only, so any browser or
/// editor shows it right.
const VERIFY_TXT: &str = "\
HOW TO CHECK THESE ARTICLES
===========================

This folder was written by tamizdat, a program that keeps signed journalism
reachable. Open index.html in any web browser: it needs no internet
connection and runs no script.

Each article was signed by its publisher. A signature proves that the article
is, byte for byte, what the holder of the publisher's key signed. The pages
say who signed each article and when, but a page is only a page: anyone who
copied this folder could have changed it. What cannot be changed without
being noticed is the signed manifest of each article, in manifests/, and the
files whose BLAKE3 hashes the manifest lists.

1. Know the publisher's fingerprint
-----------------------------------
A publisher is known by its public key; the fingerprint is a short form of
it, 16 letters and digits in four groups, like 1a2b-3c4d-5e6f-7a8b. Each
article page shows it. Compare it with one you trust that did NOT come with
this folder: the one the publisher prints on its website, in its
newsletters, on a card, or that a person you trust read to you. If they
differ, the article is not from that publisher, whatever the page says.

2. Check the signature, with tamizdat
-------------------------------------
If you have tamizdat, from inside this folder run:

    tamizdat verify manifests/HASH.manifest

(each article page gives the exact command). It checks the signature, the
signing key's delegation from the publisher's root key, and the revocations
your tamizdat knows of, and prints the publisher's key and fingerprint and
the BLAKE3 hash of every file of the article. \"NOT VERIFIED\" means: do not
trust it. \"SIGNATURE VERIFIED, N of N files missing here\" means the
signature holds, but tamizdat has not seen the files yet. To have it check
the copies in this folder too, add them first:

    tamizdat add articles/HASH/*
    tamizdat verify manifests/HASH.manifest

and it says \"VERIFIED\" only when every file is the signed one. (Add the
files in any subfolders of articles/HASH/ the same way.)

3. Check the files, with b3sum
------------------------------
B3SUMS lists the BLAKE3 hash of every file in this folder. From inside the
folder run:

    b3sum --check B3SUMS

Every line must say OK. b3sum is a small free program, from
https://github.com/BLAKE3-team/BLAKE3 ; `tamizdat add FILE` prints the
same hashes.

B3SUMS itself is not signed: it proves that nothing was damaged in transit,
not who wrote the articles. The proof of that is step 2: the hashes that
tamizdat verify prints for an article's files must be the ones in B3SUMS.

The article's link is the hash of its manifest file (the HASH in its name).
If the publisher told you an article's link, `b3sum manifests/HASH.manifest`
must print that same hash.

About the files
---------------
An article's files are beside its page, in articles/HASH/. Images, sound,
video and plain text keep their names. Any other file (a web page, a
drawing, a document) is saved with .txt added to its name, so that a browser
shows its text and never runs what it may contain; its bytes, and so its
hash, are unchanged. To open it with its own program, copy it and remove
the .txt. A file whose name could not be written on every disk is saved
under its hash instead. Each article page lists every file, with the name
it is saved under and its hash.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, seed: u8) -> Entry {
        Entry {
            path: path.into(),
            hash: [seed; 32],
            size: 1,
            media_type: "application/octet-stream".into(),
        }
    }

    #[test]
    fn names_that_run_get_txt_and_names_that_cannot_be_written_get_the_hash() {
        let paths = [
            "index.md",
            "img/photo.JPG",
            "page.html",
            "page.html.txt",
            "\u{c4}.png",
            "\u{e4}.png",
            "nul.png",
            "a:b.png",
            "trailing.png.",
            "Makefile",
        ];
        let entries: Vec<Entry> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| entry(p, i as u8))
            .collect();
        let names = saved_names(&entries);
        let hash = |i: usize| Hash::from_bytes([i as u8; 32]).to_string();
        assert_eq!(
            names,
            [
                "index.md.txt".to_owned(),
                "img/photo.JPG".into(),
                "page.html.txt".into(),
                format!("{}.txt", hash(3)),
                "\u{c4}.png".into(),
                format!("{}.png", hash(5)),
                format!("{}.png", hash(6)),
                format!("{}.png", hash(7)),
                format!("{}.txt", hash(8)),
                "Makefile.txt".into(),
            ]
        );
    }

    #[test]
    fn the_same_bytes_at_two_unwritable_names_get_two_files() {
        let entries = [entry("a?.png", 1), entry("b?.png", 1)];
        let h = Hash::from_bytes([1; 32]);
        assert_eq!(
            saved_names(&entries),
            [format!("{h}.png"), format!("{h}-2.png")]
        );
    }

    #[test]
    fn links_to_saved_files_are_percent_encoded_by_segment() {
        assert_eq!(href("img/a b#1.png"), "img/a%20b%231.png");
        assert_eq!(href("\u{444}.txt"), "%D1%84.txt");
    }

    #[test]
    fn plain_relative_paths_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = Out::new(dir.path()).unwrap();
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a\\b"] {
            assert!(out.path(bad).is_err(), "{bad:?}");
        }
        assert!(out.path("articles/x/y.png").is_ok());
    }
}
