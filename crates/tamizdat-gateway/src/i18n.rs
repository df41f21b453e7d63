//! The reader's pages in the reader's language, with Fluent.
//!
//! Messages live in `locales/{lang}.ftl`, compiled in. The language of a
//! page is chosen from `?lang=`, then `Accept-Language`, then the article's
//! own language, then English ([`Prefs::pick`]). A page's chrome carries the
//! chosen language (`<html lang>`), the article its own (`<article lang
//! dir>`), so a screen reader reads each in its voice.
//!
//! Arguments are plain values (numbers select plural forms) or markup: a
//! message is formatted with a private-use token in place of each markup
//! argument, escaped as text, and the tokens then replaced by the markup.
//! A translation can thus move a link or a command anywhere in its sentence
//! and still never inject markup of its own.

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use fluent_bundle::{FluentArgs, FluentResource, FluentValue, concurrent::FluentBundle};
use maud::{Markup, PreEscaped};
use unic_langid::LanguageIdentifier;

/// The locales shipped, English first (the fallback).
const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.ftl")),
    ("ru", include_str!("../locales/ru.ftl")),
];

/// Longest `?lang=` or `Accept-Language` value looked at.
const MAX_PREF: usize = 256;

/// One locale: its tag and its messages.
pub(crate) struct Locale {
    pub tag: &'static str,
    bundle: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locale").field("tag", &self.tag).finish()
    }
}

/// An argument of a message.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// A number: shown as digits, and selects the plural form.
    N(u64),
    /// Text, escaped.
    T(String),
    /// Markup, inserted as it is.
    M(Markup),
}

impl From<u64> for Arg {
    fn from(n: u64) -> Self {
        Arg::N(n)
    }
}
impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::N(n as u64)
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::T(s)
    }
}
impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::T(s.to_owned())
    }
}
impl From<Markup> for Arg {
    fn from(m: Markup) -> Self {
        Arg::M(m)
    }
}

fn locales() -> &'static [Locale] {
    static ALL: OnceLock<Vec<Locale>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(tag, text)| {
                let id: LanguageIdentifier = tag.parse().expect("a shipped locale's tag parses");
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                // Our own markup tokens and plain values need no bidi
                // isolation marks; user strings are shown by `render::shown`.
                bundle.set_use_isolating(false);
                let res =
                    FluentResource::try_new((*text).to_owned()).unwrap_or_else(|(res, _)| res);
                let _ = bundle.add_resource(res);
                Locale { tag, bundle }
            })
            .collect()
    })
}

impl Locale {
    /// English, the fallback.
    pub fn en() -> &'static Locale {
        &locales()[0]
    }

    /// The shipped locale for a language tag (`ru-RU` gives `ru`), if any.
    pub fn find(tag: &str) -> Option<&'static Locale> {
        let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        locales().iter().find(|l| l.tag == primary)
    }

    /// Every shipped locale.
    pub fn all() -> &'static [Locale] {
        locales()
    }

    /// Whether this locale is written right to left.
    pub fn is_rtl(&self) -> bool {
        crate::render::is_rtl(self.tag)
    }

    /// Message `id` as plain text (for a `<title>` or an attribute).
    pub fn s(&self, id: &str, args: &[(&str, Arg)]) -> String {
        let (text, markup) = self.format(id, args);
        let mut out = text;
        for (token, m) in markup {
            out = out.replace(&token, &strip_tags(&m.into_string()));
        }
        out
    }

    /// Message `id` as markup, its markup arguments in place.
    pub fn h(&self, id: &str, args: &[(&str, Arg)]) -> Markup {
        let (text, markup) = self.format(id, args);
        let mut out = maud::html! { (text) }.into_string();
        for (token, m) in markup {
            out = out.replace(&token, &m.into_string());
        }
        PreEscaped(out)
    }

    /// The formatted text with a token for each markup argument, and the
    /// markup each token stands for. A message missing here comes from
    /// English; one missing there is shown as its id.
    fn format(&self, id: &str, args: &[(&str, Arg)]) -> (String, Vec<(String, Markup)>) {
        let bundle = if self.bundle.has_message(id) {
            &self.bundle
        } else {
            &Locale::en().bundle
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return (id.to_owned(), Vec::new());
        };
        let mut fargs = FluentArgs::new();
        let mut markup = Vec::new();
        for (i, (name, arg)) in args.iter().enumerate() {
            match arg {
                Arg::N(n) => fargs.set(*name, FluentValue::from(*n)),
                // Text that looks like a token stays text.
                Arg::T(t) => fargs.set(
                    *name,
                    FluentValue::from(t.replace(['\u{e000}', '\u{e001}'], "\u{fffd}")),
                ),
                Arg::M(m) => {
                    let token = format!("\u{e000}{i}\u{e001}");
                    fargs.set(*name, FluentValue::from(token.clone()));
                    markup.push((token, m.clone()));
                }
            }
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
        (text.into_owned(), markup)
    }
}

/// Markup's text without its tags (for a plain-text rendering).
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// What a request says of the reader's languages: `?lang=` and
/// `Accept-Language`, both bounded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefs {
    query: Option<String>,
    accept: Vec<LanguageIdentifier>,
}

impl Prefs {
    /// The page's language: `?lang=` when shipped, else the first shipped
    /// one the reader's browser accepts, else the article's language when
    /// shipped, else English.
    pub fn pick(&self, article: Option<&str>) -> &'static Locale {
        if let Some(l) = self.query.as_deref().and_then(Locale::find) {
            return l;
        }
        let available: Vec<LanguageIdentifier> = Locale::all()
            .iter()
            .filter_map(|l| l.tag.parse().ok())
            .collect();
        let chosen = fluent_langneg::negotiate_languages(
            &self.accept,
            &available,
            None,
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        if let Some(l) = chosen.first().and_then(|id| Locale::find(&id.to_string())) {
            return l;
        }
        article.and_then(Locale::find).unwrap_or_else(Locale::en)
    }

    /// The shipped language the reader asked for with `?lang=`, if any:
    /// the one links to other pages carry on.
    pub fn carried(&self) -> Option<&'static str> {
        self.query.as_deref().and_then(Locale::find).map(|l| l.tag)
    }

    /// From a query string and an `Accept-Language` value.
    pub fn new(query: Option<&str>, accept: Option<&str>) -> Self {
        let query = query.filter(|q| q.len() <= MAX_PREF).and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "lang")
                .map(|(_, v)| v.to_owned())
        });
        let accept = accept
            .filter(|a| a.len() <= MAX_PREF)
            .map(accepted)
            .unwrap_or_default();
        Self { query, accept }
    }
}

/// An `Accept-Language` value's tags, most wanted first; those with
/// `q=0` ("not this one") left out.
fn accepted(value: &str) -> Vec<LanguageIdentifier> {
    let mut tags: Vec<(u16, usize, LanguageIdentifier)> = value
        .split(',')
        .take(16)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 || tag == "*" {
                return None;
            }
            let id = tag.parse().ok()?;
            Some(((q.clamp(0.0, 1.0) * 1000.0) as u16, i, id))
        })
        .collect();
    tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, id)| id).collect()
}

impl<S: Send + Sync> FromRequestParts<S> for Prefs {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Ok(Prefs::new(parts.uri.query(), accept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<String> {
        assert!(
            FluentResource::try_new(text.to_owned()).is_ok(),
            "the file parses"
        );
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once(" =").map(|(id, _)| id.trim().to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_locale_has_every_message_and_parses() {
        let en = ids(SOURCES[0].1);
        assert!(en.len() > 50, "{}", en.len());
        for (tag, text) in SOURCES {
            assert_eq!(ids(text), en, "{tag} has other messages than en");
        }
    }

    #[test]
    fn markup_arguments_go_where_the_translation_puts_them_and_text_is_escaped() {
        let ru = Locale::find("ru-RU").unwrap();
        let m = ru.h(
            "front-no-publisher",
            &[(
                "command",
                maud::html! { code { "tamizdat follow <KEY>" } }.into(),
            )],
        );
        let m = m.into_string();
        assert!(
            m.contains("командой <code>tamizdat follow &lt;KEY&gt;</code>."),
            "{m}"
        );
        let s = ru.s("publisher-unnamed", &[("fingerprint", "<b>".into())]);
        assert_eq!(s, "Издание <b>");
        let h = ru.h("publisher-unnamed", &[("fingerprint", "<b>".into())]);
        assert_eq!(h.into_string(), "Издание &lt;b&gt;");
        // Plural forms by number.
        for (n, want) in [
            (1u64, "1 статья"),
            (3, "3 статьи"),
            (5, "5 статей"),
            (21, "21 статья"),
        ] {
            assert_eq!(ru.s("front-articles", &[("n", n.into())]), want);
        }
        assert_eq!(
            Locale::en().s("front-articles", &[("n", 1u64.into())]),
            "1 article"
        );
    }

    #[test]
    fn the_language_is_the_query_then_the_browser_then_the_article() {
        let pick =
            |q: Option<&str>, a: Option<&str>, art: Option<&str>| Prefs::new(q, a).pick(art).tag;
        assert_eq!(pick(Some("lang=ru"), Some("en-US,en"), Some("en")), "ru");
        assert_eq!(pick(Some("x=1&lang=en"), Some("ru"), Some("ru")), "en");
        assert_eq!(pick(Some("lang=xx"), Some("ru-RU,ru;q=0.9"), None), "ru");
        assert_eq!(pick(None, Some("de-DE,en;q=0.5,ru;q=0.8"), None), "ru");
        assert_eq!(pick(None, Some("ru;q=0,en"), Some("ru")), "en");
        assert_eq!(pick(None, Some("de, fr"), Some("ru")), "ru");
        assert_eq!(pick(None, None, Some("fa")), "en");
        assert_eq!(pick(None, None, None), "en");
        // Garbage is no language.
        assert_eq!(pick(Some("lang=%00"), Some(";;;,,=q"), None), "en");
    }
}
