//! The reader's pages: `/`, `/p/{pubkey}`, `/m/{hash}`. Plain HTML and one
//! stylesheet, no script at all; readable on a phone.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use tamizdat_node::Protocol;
use tamizdat_node::feeds::{self, Followed, Standing};
use tamizdat_sign::{MAX_MANIFEST_LEN, PublicKey, VerifiedManifest, Verifier, VerifyError};
use tamizdat_store::Hash;

use crate::app::{App, Failure, SMALL_BLOB, parse_hash, parse_key};
use crate::i18n::{Arg, Locale, Prefs};
use crate::index::{Article, Index};
use crate::render;
use crate::server::ClientIp;

/// Article texts rendered at once; the others wait their turn.
const RENDERING: usize = 2;
/// Memory kept for rendered article texts.
const RENDERED_BYTES: u64 = 16 << 20;

/// Rendered article texts by manifest id (an id's text never changes),
/// those that could not be rendered included, and the bound on how many are
/// rendered at once.
#[derive(Debug)]
pub(crate) struct Renders {
    done: quick_cache::sync::Cache<Hash, Rendered, RenderedWeight>,
    /// Held by the render itself, so that one that runs past its time still
    /// counts until it really ends (a blocking thread cannot be stopped).
    slots: Arc<tokio::sync::Semaphore>,
    /// Makes "recorded yet?" and "record" one step.
    record: std::sync::Mutex<()>,
}

/// What became of rendering an article's text.
#[derive(Debug, Clone)]
pub(crate) enum Rendered {
    Html(Arc<str>),
    /// It took longer than `render_timeout`, or the renderer failed.
    TooComplex,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderedWeight;

impl quick_cache::Weighter<Hash, Rendered> for RenderedWeight {
    fn weight(&self, _: &Hash, v: &Rendered) -> u64 {
        match v {
            Rendered::Html(h) => h.len() as u64 + 64,
            Rendered::TooComplex => 64,
        }
    }
}

impl Renders {
    pub fn new() -> Self {
        Self {
            done: quick_cache::sync::Cache::with_weighter(1024, RENDERED_BYTES, RenderedWeight),
            slots: Arc::new(tokio::sync::Semaphore::new(RENDERING)),
            record: std::sync::Mutex::new(()),
        }
    }

    /// Keeps the outcome for `id` unless one is kept already (the first
    /// word stands: a late render does not undo a "too complex"), and counts
    /// it. Returns the outcome kept.
    fn record(
        &self,
        metrics: &crate::metrics::Metrics,
        id: Hash,
        r: Rendered,
        outcome: &str,
    ) -> Rendered {
        let _one = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = self.done.get(&id) {
            return kept;
        }
        metrics.render(outcome);
        self.done.insert(id, r.clone());
        r
    }
}

/// Articles on the front page.
const FRONT: usize = 50;
/// Articles on a publisher's page.
const FEED: usize = 1000;

const PAGE_CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; \
                        form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) const STYLE: &str = include_str!("style.css");

pub(crate) async fn style() -> Response {
    let mut r = STYLE.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// A page in `loc`'s language: its chrome says so (`<html lang dir>`);
/// whatever article it shows carries its own `lang` and `dir`.
fn page(status: StatusCode, title: &str, loc: &Locale, prefs: &Prefs, main: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang=(loc.tag) dir=[loc.is_rtl().then_some("rtl")] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta http-equiv="x-dns-prefetch-control" content="off";
                title { (render::visible(title)) }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                header.site { a href="/" { "tamizdat" } " · " (loc.s("site-tagline", &[])) }
                main { (main) }
                footer.site {
                    p { (loc.s("site-footer", &[])) }
                    nav.languages {
                        (loc.s("site-languages", &[]))
                        @for l in Locale::all() {
                            " "
                            @if l.tag == loc.tag { strong lang=(l.tag) { (l.s("language-name", &[])) } }
                            @else { a href=(format!("?lang={}", l.tag)) lang=(l.tag) hreflang=(l.tag) { (l.s("language-name", &[])) } }
                        }
                    }
                }
            }
        }
    };
    let mut doc = doc.into_string();
    if let Some(tag) = prefs.carried() {
        doc = carry_lang(&doc, tag);
    }
    let mut r = (status, axum::response::Html(doc)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // Plain-HTTP pages would otherwise have every linked host looked up in
    // advance, telling the reader's resolver what they are reading.
    h.insert("x-dns-prefetch-control", HeaderValue::from_static("off"));
    // The language follows the reader's `Accept-Language`.
    h.insert(header::VARY, HeaderValue::from_static("accept-language"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn failure_page(f: Failure, loc: &Locale, prefs: &Prefs) -> Response {
    if let Some((title, main)) = f.page {
        return page(f.status, &title, loc, prefs, main);
    }
    let Some(said) = f.said else {
        let title = loc.s("not-available", &[]);
        return page(
            f.status,
            &title,
            loc,
            prefs,
            html! { h1 { (title) } p.warning lang="en" { (f.message) } },
        );
    };
    let title = loc.s(said.title, &[]);
    page(
        f.status,
        &title,
        loc,
        prefs,
        html! {
            h1 { (title) }
            p.warning { (loc.h(said.text, &said.args)) }
            details.detail {
                summary { (loc.s("fail-detail", &[])) }
                p lang="en" { (f.message) }
            }
        },
    )
}

/// Links to the pages (`/`, `/m/...`, `/p/...`) carry `lang=TAG`, so that
/// a language the reader chose with `?lang=` holds from page to page. The
/// document is our own markup: every `href` value is escaped, so a quote
/// ends it.
fn carry_lang(doc: &str, tag: &str) -> String {
    let mut out = String::with_capacity(doc.len() + 256);
    let mut rest = doc;
    while let Some(at) = rest.find("href=\"/") {
        let start = at + "href=\"".len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find('"').unwrap_or(tail.len());
        let link = &tail[..end];
        let (path, fragment) = link.split_at(link.find('#').unwrap_or(link.len()));
        let to_page = path == "/" || path.starts_with("/m/") || path.starts_with("/p/");
        out.push_str(path);
        if to_page && !path.contains("lang=") {
            out.push_str(if path.contains('?') {
                "&amp;lang="
            } else {
                "?lang="
            });
            out.push_str(tag);
        }
        out.push_str(fragment);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The link to a blob's own bytes, as a message argument.
fn raw_link(id: Hash) -> Vec<(&'static str, Arg)> {
    let href = format!("/b/{id}");
    vec![("link", html! { a href=(href) { code { (href) } } }.into())]
}

/// Said at the top of the pages while the node is connected to nobody:
/// what they show may be all there is, and nothing new arrives.
fn alone_notice(app: &App, loc: &Locale) -> Markup {
    html! {
        @if app.node.peer_count() == 0 {
            p.warning.alone {
                (loc.h("alone", &[("command", html! { code { "tamizdat follow CARD" } }.into())]))
            }
        }
    }
}

/// A publisher's display name: the one the operator gave, else its fingerprint.
fn name_of(app: &App, key: &PublicKey) -> (Option<String>, bool) {
    match app.node.following().into_iter().find(|f| &f.key == key) {
        Some(f) => (f.name, true),
        None => (None, false),
    }
}

fn article_row(following: &[Followed], a: &Article) -> Markup {
    let m = &a.manifest;
    let name = following
        .iter()
        .find(|f| f.key == m.publisher)
        .and_then(|f| f.name.clone());
    html! {
        li.article {
            a href=(format!("/m/{}", a.id)) lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] { (render::shown(&m.title)) }
            div.meta {
                a href=(format!("/p/{}", m.publisher)) { (render::shown(&name.unwrap_or_else(|| m.publisher.fingerprint()))) }
                " · " time { (render::time(m.created)) }
                " · " (render::shown(&m.lang)) " · " (render::shown(&m.feed)) " #" (m.seq)
            }
            @if let Some(s) = &m.summary {
                p.summary lang=(m.lang) { (render::shown(s)) }
            }
        }
    }
}

pub(crate) async fn front(State(app): State<Arc<App>>, prefs: Prefs) -> Response {
    let loc = prefs.pick(None);
    let index = match app.index.get(&app).await {
        Ok(i) => i,
        Err(f) => return failure_page(f, loc, &prefs),
    };
    let following = app.node.following();
    let counts = index.publishers();
    let withdrawn = index.withdrawn();
    let all_withdrawn: usize = withdrawn.values().sum();
    let main = html! {
        h1 { (loc.s("front-heading", &[])) }
        (alone_notice(&app, loc))
        section {
            h2 { (loc.s("front-publishers", &[])) }
            @if following.is_empty() {
                p { (loc.h("front-no-publisher", &[("command", html! { code { "tamizdat follow PUBKEY" } }.into())])) }
            } @else {
                ul.publishers {
                    @for f in &following {
                        li {
                            a href=(format!("/p/{}", f.key)) {
                                (render::shown(&f.name.clone().unwrap_or_else(|| f.key.fingerprint())))
                            }
                            " · " span.fingerprint { (f.key.fingerprint()) }
                            " · " (loc.s("front-articles", &[("n", counts.get(&f.key).copied().unwrap_or(0).into())]))
                            @if let Some(w) = withdrawn.get(&f.key) {
                                (loc.s("front-withdrawn", &[("n", (*w).into())]))
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { (loc.s("front-latest", &[])) }
            @if index.newest().next().is_none() && all_withdrawn > 0 {
                p { (loc.s("front-all-withdrawn", &[("n", all_withdrawn.into())])) }
            } @else if index.newest().next().is_none() {
                p { (loc.s("front-none", &[])) }
            } @else {
                ul.articles {
                    @for a in index.newest().take(FRONT) { (article_row(&following, a)) }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        &loc.s("front-title", &[]),
        loc,
        &prefs,
        main,
    )
}

pub(crate) async fn publisher(
    State(app): State<Arc<App>>,
    Path(raw): Path<String>,
    prefs: Prefs,
) -> Response {
    let loc = prefs.pick(None);
    let key = match parse_key(&raw) {
        Ok(k) => k,
        Err(f) => return failure_page(f, loc, &prefs),
    };
    let index = match app.index.get(&app).await {
        Ok(i) => i,
        Err(f) => return failure_page(f, loc, &prefs),
    };
    let following = app.node.following();
    let (name, followed) = name_of(&app, &key);
    let trust = app.node.trust();
    let feeds: Vec<_> = trust.feeds().filter(|(p, _, _)| **p == key).collect();
    let shown = name.clone().unwrap_or_else(|| {
        loc.s(
            "publisher-unnamed",
            &[("fingerprint", key.fingerprint().into())],
        )
    });
    let articles: Vec<_> = index.of(&key).take(FEED).collect();
    let card = card_of(&app, &key);
    let main = html! {
        h1 { (render::shown(&shown)) }
        (alone_notice(&app, loc))
        dl.keyinfo {
            dt { (loc.s("publisher-fingerprint", &[])) } dd.fingerprint { (key.fingerprint()) }
            dt { (loc.s("publisher-key", &[])) } dd { code.key { (key) } }
            dt { (loc.s("publisher-followed", &[])) }
            dd { (loc.s(if followed { "publisher-followed-yes" } else { "publisher-followed-no" }, &[])) }
        }
        @if !feeds.is_empty() {
            h2 { (loc.s("publisher-feeds", &[])) }
            ul {
                @for (_, feed, head) in &feeds {
                    li { (loc.h("publisher-feed-latest", &[
                        ("feed", render::shown(feed).into()),
                        ("link", html! { a href=(format!("/m/{}", Hash::from_bytes(head.hash))) { "#" (head.seq) } }.into()),
                        ("time", render::time(head.created).into()),
                    ])) }
                }
            }
        }
        h2 { (loc.s("publisher-articles", &[])) }
        @if articles.is_empty() {
            p { (loc.s("publisher-no-articles", &[])) }
        } @else {
            ul.articles { @for a in &articles { (article_row(&following, a)) } }
        }
        @if let Some((line, c)) = &card {
            (card_section(loc, line, c))
        }
    };
    page(StatusCode::OK, &shown, loc, &prefs, main)
}

/// The card the node holds of a publisher, with its line, when it is
/// valid now (the node took it as genuine and newest).
fn card_of(app: &App, key: &PublicKey) -> Option<(String, tamizdat_sign::Card)> {
    card_now(&app.node.card(key)?)
}

/// A genuine card's line and what it says, when it is valid now.
pub(crate) fn card_now(
    card: &tamizdat_sign::Signed<tamizdat_sign::Card>,
) -> Option<(String, tamizdat_sign::Card)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    tamizdat_sign::check_card_time(card.body(), now).ok()?;
    Some((tamizdat_sign::card_to_line(card), card.body().clone()))
}

/// A publisher's card: what it is for, its line, and its QR code (the
/// publisher's page, and the static export's index).
pub(crate) fn card_section(loc: &Locale, line: &str, c: &tamizdat_sign::Card) -> Markup {
    html! {
        h2 { (loc.s("publisher-card", &[])) }
        p {
            (loc.h("publisher-card-about", &[
                ("time", render::time(c.not_after).into()),
                ("command", html! { code { "tamizdat follow CARD" } }.into()),
            ]))
        }
        p { code.card { (line) } }
        @if let Some(svg) = render::qr_svg(&line.to_ascii_uppercase()) {
            figure.qr { (PreEscaped(svg)) }
        }
    }
}

/// The address readers reach this gateway by, for the article's link: the
/// request's `Host` when it is a plain host name or address, else ours.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .map(str::to_owned)
        .unwrap_or_else(|| app.addr.to_string());
    format!("http://{host}")
}

/// This node's address for `tamizdat get --peer`, from the host the reader
/// reached the gateway by (they can reach it, so likely its node too) and
/// the node's TCP port: a fresh `tamizdat` has no other way in.
fn node_addr(app: &App, headers: &HeaderMap) -> Option<String> {
    let base = base_url(app, headers);
    let host = base.split_once("://")?.1.split('/').next()?;
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let ip: Option<std::net::IpAddr> = name.parse().ok();
    let tcp = |a: &tamizdat_node::Multiaddr| {
        let mut at = None;
        let mut port = None;
        for p in a.iter() {
            match p {
                Protocol::Ip4(x) => at = Some(std::net::IpAddr::V4(x)),
                Protocol::Ip6(x) => at = Some(std::net::IpAddr::V6(x)),
                Protocol::Tcp(n) => port = Some(n),
                Protocol::P2pCircuit | Protocol::Ws(_) | Protocol::Wss(_) => return None,
                _ => {}
            }
        }
        Some((at, port?))
    };
    let listen: Vec<_> = app.node.listen_addrs().iter().filter_map(tcp).collect();
    // The listener on the reader's address when there is one, else any.
    let port = listen
        .iter()
        .find(|(at, _)| ip.is_some() && *at == ip)
        .or(listen.first())?
        .1;
    let head = match ip {
        Some(std::net::IpAddr::V4(x)) => format!("/ip4/{x}"),
        Some(std::net::IpAddr::V6(x)) => format!("/ip6/{x}"),
        None if !name.is_empty() => format!("/dns/{name}"),
        None => return None,
    };
    Some(format!("{head}/tcp/{port}/p2p/{}", app.node.peer_id()))
}

pub(crate) async fn article(
    State(app): State<Arc<App>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    prefs: Prefs,
) -> Response {
    let id = match parse_hash(&raw) {
        Ok(h) => h,
        Err(Ok(canonical)) => {
            return Redirect::permanent(&format!("/m/{canonical}")).into_response();
        }
        Err(Err(f)) => return failure_page(f, prefs.pick(None), &prefs),
    };
    let (verified, standing) = match load_verified(&app, ip, id, &prefs).await {
        Ok(v) => v,
        Err(f) => return failure_page(f, prefs.pick(None), &prefs),
    };
    let loc = prefs.pick(Some(&verified.manifest().lang));
    let placed = standing.is_genuine();
    let index = app.index.get(&app).await.ok();
    let (text, status) = match body(&app, ip, &verified, id, loc).await {
        Ok(t) => (t, StatusCode::OK),
        Err(f) => (
            Some(
                html! { p.warning { (loc.h("article-text-failed", &[("why", html! { span lang="en" { (f.message) } }.into())])) } },
            ),
            f.status,
        ),
    };
    let url = format!("{}/m/{id}", base_url(&app, &headers));
    let peer = node_addr(&app, &headers);
    let m = verified.manifest();
    let (name, followed) = name_of(&app, &m.publisher);
    let main = html! {
        p.provenance {
            (loc.h(
                if followed && placed { "article-signed" } else if followed { "article-unplaced" } else { "article-unknown" },
                &[("name", html! { strong { (render::shown(&name.unwrap_or_else(|| m.publisher.fingerprint()))) } }.into())],
            ))
            " · " time { (render::time(m.created)) } " · "
            a href="#provenance" { (loc.s("article-who-signed", &[])) }
        }
        article lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] {
            h1 { (render::shown(&m.title)) }
            @if let Some(t) = text { div.body { (t) } }
        }
        (attachments(m, id, loc))
        (badge(&app, &verified, &standing, id, index.as_deref(), (&url, peer.as_deref()), loc))
    };
    page(status, &m.title, loc, &prefs, main)
}

/// The manifest `id`, fetched if need be, verified against what this node
/// knows of keys and revocations, and judged by its feed rules. Not a
/// manifest, forged, signed by a revoked key, or refused by the feed rules
/// (a second version of an article, a fork, a jump, a date that cannot be):
/// 422, and nothing of it is shown. Otherwise its standing says whether it
/// may be shown as checked.
pub(crate) async fn load_verified(
    app: &Arc<App>,
    ip: std::net::IpAddr,
    id: Hash,
    prefs: &Prefs,
) -> Result<(VerifiedManifest, Standing), Failure> {
    let v = load_signed(app, ip, id, prefs).await?;
    let pin = feeds::feed_pin(v.manifest());
    let recorded = app
        .blocking(move |s| s.info(&id))
        .await?
        .ok()
        .flatten()
        .is_some_and(|i| i.pins.contains(&pin));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match feeds::standing(&app.node.trust(), &v, recorded, now) {
        Standing::Refused(e) => Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "REFUSED: {id} is signed with the publisher's key, but this node's feed rules refuse it: {e}. \
                 It may have been made with a stolen key. Do not trust it."
            ),
        )
        .said("fail-refused-title", "fail-refused", Vec::new())),
        standing => Ok((v, standing)),
    }
}

/// The manifest `id`, fetched if need be, with its signature, delegation
/// and revocations checked.
async fn load_signed(
    app: &Arc<App>,
    ip: std::net::IpAddr,
    id: Hash,
    prefs: &Prefs,
) -> Result<VerifiedManifest, Failure> {
    let info = app.ensure(ip, id, MAX_MANIFEST_LEN as u64).await?;
    if info.size > MAX_MANIFEST_LEN as u64 {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{id} is not an article (too large to be a manifest); its bytes are at /b/{id}"
            ),
        )
        .said("fail-not-article-title", "fail-not-article", raw_link(id)));
    }
    let bytes = app.small_bytes(id).await?;
    let trust = app.node.trust();
    let checked = bytes.clone();
    let verdict = tokio::task::spawn_blocking(move || Verifier::new().verify(&checked, &trust))
        .await
        .map_err(|e| Failure::internal(e.to_string()))?;
    if let Err(VerifyError::Revoked { revocation, .. }) = &verdict {
        return Err(withdrawn(app, id, bytes, revocation, prefs).await);
    }
    verdict.map_err(|e| match e {
            VerifyError::Decode(_) => Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{id} is not an article manifest; its bytes are at /b/{id}"),
            )
            .said("fail-not-article-title", "fail-not-article", raw_link(id)),
            e => Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("NOT VERIFIED: {id} claims to be a signed article, but it does not verify: {e}. Do not trust it."),
            )
            .said("fail-forged-title", "fail-forged", Vec::new()),
        })
}

/// The refusal of an article signed by a key its publisher revoked since:
/// what happened, when, the reason the publisher gave, and the version that
/// replaced it if one is here. Said only of a manifest whose signature holds
/// (checked again without revocations); anything else is "not verified".
async fn withdrawn(
    app: &Arc<App>,
    id: Hash,
    bytes: bytes::Bytes,
    revocation: &str,
    prefs: &Prefs,
) -> Failure {
    let genuine = tokio::task::spawn_blocking(move || {
        Verifier::new().verify(&bytes, &tamizdat_sign::TrustState::default())
    })
    .await;
    let Ok(Ok(v)) = genuine else {
        return Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "NOT VERIFIED: {id} claims to be a signed article, but it does not verify. Do not trust it."
            ),
        )
        .said("fail-forged-title", "fail-forged", Vec::new());
    };
    // The revocation itself, kept in the store when it was applied.
    let revocation = revocation.parse::<Hash>().ok().map(|h| async move {
        let bytes = app.small_bytes(h).await.ok()?;
        tamizdat_sign::Signed::<tamizdat_sign::Revocation>::decode(&bytes)
            .ok()
            .map(|r| r.body().clone())
    });
    let revocation = match revocation {
        Some(f) => f.await,
        None => None,
    };
    let newer = app
        .index
        .get(app)
        .await
        .ok()
        .and_then(|i| i.superseded_by(&id));
    let m = v.manifest();
    let loc = prefs.pick(Some(&m.lang));
    let (name, _) = name_of(app, &m.publisher);
    let name = name.unwrap_or_else(|| m.publisher.fingerprint());
    let when = revocation.as_ref().map(|r| render::time(r.created));
    let reason = revocation
        .as_ref()
        .map(|r| r.reason.trim().to_owned())
        .filter(|r| !r.is_empty());
    let message = format!(
        "WITHDRAWN: {id} was signed by {name}, who has since revoked the key that signed it{}{}. \
         It is no longer vouched for.{}",
        when.as_deref()
            .map(|w| format!(" (on {w})"))
            .unwrap_or_default(),
        reason
            .as_deref()
            .map(|r| format!("; the reason given: {r:?}"))
            .unwrap_or_default(),
        newer
            .map(|n| format!(" A newer version: /m/{n}"))
            .unwrap_or_default(),
    );
    let title = loc.s("withdrawn-title", &[]);
    let who: Arg = html! { strong { (render::shown(&name)) } }.into();
    let page = html! {
        h1 { (title) }
        p.warning {
            @match &when {
                Some(w) => (loc.h("withdrawn-signed-on", &[("name", who), ("time", html! { time { (w) } }.into())])),
                None => (loc.h("withdrawn-signed", &[("name", who)])),
            }
        }
        @if let Some(r) = &reason {
            p { (loc.h("withdrawn-reason", &[("reason", html! { q { (render::shown(r)) } }.into())])) }
        } @else {
            p { (loc.s("withdrawn-no-reason", &[])) }
        }
        @if let Some(n) = newer {
            p.verified { (loc.h("withdrawn-newer", &[("link", html! { a href=(format!("/m/{n}")) { (loc.s("withdrawn-newer-link", &[])) } }.into())])) }
        } @else {
            p { (loc.s("withdrawn-no-newer", &[])) }
        }
        p.note { (loc.h("withdrawn-was", &[("title", html! { q lang=(m.lang) dir=[render::is_rtl(&m.lang).then_some("rtl")] { (render::shown(&m.title)) } }.into())])) }
    };
    let mut f = Failure::new(StatusCode::GONE, message);
    f.page = Some((title, page));
    f
}

async fn body(
    app: &Arc<App>,
    ip: std::net::IpAddr,
    v: &VerifiedManifest,
    id: Hash,
    loc: &Locale,
) -> Result<Option<Markup>, Failure> {
    let m = v.manifest();
    let Some(entry) = render::body_entry(m) else {
        return Ok(None);
    };
    let file = html! {
        a href=(format!("/b/{}?m={id}", Hash::from_bytes(entry.hash))) { (render::shown(&entry.path)) }
    };
    let shown = |r: Rendered| match r {
        Rendered::Html(html) => PreEscaped(html.to_string()),
        Rendered::TooComplex => html! {
            p.note { (loc.h("article-text-too-complex", &[("file", file.clone().into())])) }
        },
    };
    if let Some(r) = app.renders.done.get(&id) {
        return Ok(Some(shown(r)));
    }
    if entry.size > render::MAX_BODY {
        return Ok(Some(
            html! { p.note { (loc.h("article-text-too-large", &[("file", file.into())])) } },
        ));
    }
    let hash = Hash::from_bytes(entry.hash);
    let info = app.ensure(ip, hash, entry.size).await?;
    if info.size != entry.size {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} is {} bytes, but the signed manifest says {}",
                entry.path, info.size, entry.size
            ),
        ));
    }
    let bytes = if info.size <= SMALL_BLOB {
        app.small_bytes(hash).await?.to_vec()
    } else {
        app.blocking(move |s| s.read_to_vec(&hash))
            .await?
            .map_err(|e| Failure::internal(format!("{hash} cannot be served: {e}")))?
    };
    let kind = render::kind_of(entry);
    let manifest = m.clone();
    let slot = app
        .renders
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| Failure::internal(e.to_string()))?;
    // Another request may have rendered it meanwhile.
    if let Some(r) = app.renders.done.get(&id) {
        return Ok(Some(shown(r)));
    }
    let limit = app.config.render_timeout;
    let task_app = app.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let started = std::time::Instant::now();
        let html = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let text = String::from_utf8_lossy(&bytes);
            render::article_html(&manifest, id, &text, kind)
        }));
        let (r, outcome) = match html {
            Ok(_) if started.elapsed() >= limit => (Rendered::TooComplex, "too_complex"),
            Ok(html) => (Rendered::Html(html.into()), "rendered"),
            Err(_) => (Rendered::TooComplex, "failed"),
        };
        task_app.renders.record(&task_app.metrics, id, r, outcome)
    });
    let r = match tokio::time::timeout(limit, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(Failure::internal(e.to_string())),
        // It goes on in its thread, holding its slot, and is not tried again.
        Err(_) => app
            .renders
            .record(&app.metrics, id, Rendered::TooComplex, "too_complex"),
    };
    Ok(Some(shown(r)))
}

fn attachments(m: &tamizdat_sign::Manifest, id: Hash, loc: &Locale) -> Markup {
    let body = render::body_entry(m).map(|e| e.path.as_str());
    let rest: Vec<_> = m
        .entries
        .iter()
        .filter(|e| Some(e.path.as_str()) != body)
        .collect();
    html! {
        @if !rest.is_empty() {
            section.files {
                h2 { (loc.s("files", &[])) }
                ul {
                    @for e in rest {
                        li {
                            a href=(format!("/b/{}?m={id}", Hash::from_bytes(e.hash))) { (render::shown(&e.path)) }
                            " · " (render::shown(&e.media_type)) " · " (loc.s("file-size", &[("bytes", e.size.into())]))
                        }
                    }
                }
            }
        }
    }
}

fn badge(
    app: &App,
    v: &VerifiedManifest,
    standing: &Standing,
    id: Hash,
    index: Option<&Index>,
    (url, peer): (&str, Option<&str>),
    loc: &Locale,
) -> Markup {
    let m = v.manifest();
    let (name, followed) = name_of(app, &m.publisher);
    let head = app.node.trust().head(&m.publisher, &m.feed).cloned();
    let newer_version = index.and_then(|i| i.superseded_by(&id));
    let verify = match peer {
        Some(p) => format!("tamizdat get {id} --peer {p} && tamizdat verify {id}"),
        None => format!("tamizdat get {id} && tamizdat verify {id}"),
    };
    html! {
        section.badge #provenance {
            h2 { (loc.s("badge-heading", &[])) }
            @if let Standing::Unplaced(why) = standing {
                p.warning { (loc.h("badge-unplaced", &[("why", html! { span lang="en" { (why) } }.into())])) }
            } @else if followed {
                p.verified { (loc.s("badge-verified", &[])) }
            } @else {
                p.warning { (loc.s("badge-unknown", &[])) }
            }
            dl {
                dt { (loc.s("badge-publisher", &[])) }
                dd { a href=(format!("/p/{}", m.publisher)) { (render::shown(&name.unwrap_or_else(|| loc.s("badge-no-name", &[])))) }
                    @if !followed { " " (loc.s("badge-not-followed", &[])) } }
                (provenance_rows(v, loc))
                @if let Some(old) = m.supersedes {
                    dt { (loc.s("badge-corrects", &[])) }
                    dd { (loc.h("badge-corrects-text", &[("link", html! { a href=(format!("/m/{}", Hash::from_bytes(old))) { (loc.s("badge-corrects-link", &[])) } }.into())])) }
                }
                @if let Some(newer) = newer_version {
                    dt.warning { (loc.s("badge-corrected", &[])) }
                    dd.warning { (loc.h("badge-corrected-text", &[("link", html! { a href=(format!("/m/{newer}")) { (loc.s("badge-corrected-link", &[])) } }.into())])) }
                }
                @if let Some(h) = head {
                    @if h.seq > m.seq {
                        dt { (loc.s("badge-newer", &[])) }
                        dd { (loc.h("badge-newer-text", &[("link", html! { a href=(format!("/m/{}", Hash::from_bytes(h.hash))) { "#" (h.seq) } }.into())])) }
                    } @else if h.seq == m.seq && Hash::from_bytes(h.hash) == id {
                        dt { (loc.s("badge-newer", &[])) } dd { (loc.s("badge-newer-none", &[])) }
                    }
                }
                dt { (loc.s("badge-manifest", &[])) }
                dd { a href=(format!("/b/{id}")) { code { (id) } } }
            }
            p { (loc.s("badge-check", &[])) }
            pre.command { (verify) }
            figure.qr {
                (PreEscaped(render::qr_svg(url).unwrap_or_default()))
                figcaption { (loc.h("badge-link", &[("url", html! { code { (url) } }.into())])) }
            }
        }
    }
}

/// The badge's rows every provenance box shows, live or exported: the
/// publisher's fingerprint and key, who signed and under which delegation,
/// when, where in its feed, and the language.
pub(crate) fn provenance_rows(v: &VerifiedManifest, loc: &Locale) -> Markup {
    let m = v.manifest();
    html! {
        dt { (loc.s("prov-fingerprint", &[])) } dd.fingerprint #fingerprint { (m.publisher.fingerprint()) }
        dt { (loc.s("prov-key", &[])) } dd { code.key { (m.publisher) } }
        dt { (loc.s("prov-signed-by", &[])) }
        dd {
            @match v.delegation() {
                None => { (loc.s("prov-root", &[])) }
                Some(d) => {
                    @let args = |feed: Option<&String>| {
                        let mut a: Vec<(&str, Arg)> = vec![
                            ("key", html! { code.key { (m.signer) } }.into()),
                            ("fingerprint", m.signer.fingerprint().into()),
                            ("from", render::time(d.body().not_before).into()),
                            ("to", render::time(d.body().not_after).into()),
                            ("delegation", html! { code { (hex::encode(d.id())) } }.into()),
                        ];
                        if let Some(f) = feed {
                            a.push(("feed", render::shown(f).into()));
                        }
                        a
                    };
                    @match &d.body().feed {
                        Some(f) => (loc.h("prov-delegated-feed", &args(Some(f)))),
                        None => (loc.h("prov-delegated", &args(None))),
                    }
                }
            }
        }
        dt { (loc.s("prov-signed-at", &[])) } dd { time { (render::time(m.created)) } }
        dt { (loc.s("prov-feed", &[])) } dd { (loc.h("prov-feed-place", &[("feed", render::shown(&m.feed).into()), ("seq", m.seq.into())])) }
        dt { (loc.s("prov-language", &[])) } dd { (render::shown(&m.lang)) }
    }
}
