//! Keeping an article's markup shallow before the HTML parser sees it.
//!
//! html5ever does work in proportion to the depth of the open elements for
//! most tags it reads (is there a `<p>` in scope? a `<div>`?), so a text of
//! 32 000 nested quotes or `<div>`s costs it seconds, and a megabyte of them
//! minutes. Markdown is cut at the event level ([`shallow_events`]); HTML,
//! the article's own or what markdown let through, is rewritten by
//! [`shallow_html`] into a plain form the parser reads exactly as this module
//! does: text with every `<` escaped, and tags with only well-formed
//! attributes, double-quoted. Comments and the like are dropped; `<script>`
//! and `<style>` with their content (the sanitizer drops them anyway); the
//! content of the other elements the parser reads as raw text is kept as
//! text. A start tag that would open an element deeper than [`MAX_DEPTH`]
//! is left out, its content stays.
//!
//! Depth is counted the way the parser can only make smaller: an end tag
//! closes an element here only where the parser surely closes it too, and
//! formatting elements (`<b>`, `<a>` ...) closed in passing still count, as
//! the parser may open them again.

use std::borrow::Cow;

use pulldown_cmark::Event;

/// Deepest nesting of elements an article's text may have; deeper tags are
/// left out and their text kept.
pub(crate) const MAX_DEPTH: usize = 32;

/// Markdown events with every element nested deeper than [`MAX_DEPTH`]
/// left out (its text stays).
pub(crate) fn shallow_events<'a>(
    events: impl Iterator<Item = Event<'a>>,
) -> impl Iterator<Item = Event<'a>> {
    let mut depth = 0usize;
    events.filter(move |e| match e {
        Event::Start(_) => {
            depth += 1;
            depth <= MAX_DEPTH
        }
        Event::End(_) => {
            let keep = depth <= MAX_DEPTH;
            depth = depth.saturating_sub(1);
            keep
        }
        _ => true,
    })
}

/// Elements with no content and no end tag.
const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];

/// Elements the parser may close and open again by itself.
const FORMATTING: &[&str] = &[
    "a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u",
];

/// Elements whose content the parser reads as text; the first two are
/// dropped with it.
const RAW: &[&str] = &[
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

/// Start tags before which the parser closes an open `<p>`.
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "search",
    "section",
    "summary",
    "ul",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "listing",
    "form",
    "table",
    "li",
    "dd",
    "dt",
];

/// End tags that close their element through whatever is open inside it
/// (up to a table, a cell and the like).
const CLOSES_THROUGH: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "button",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "listing",
    "main",
    "menu",
    "nav",
    "ol",
    "pre",
    "search",
    "section",
    "summary",
    "ul",
    "li",
    "dd",
    "dt",
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];

/// Elements such an end tag surely closes on its way (implied end tags).
const IMPLIED: &[&str] = &[
    "p", "li", "dd", "dt", "option", "optgroup", "rb", "rp", "rt", "rtc",
];

fn is_ws(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// A tag as the parser's tokenizer reads it.
struct Tag<'a> {
    name: String,
    attrs: Vec<(&'a str, &'a str)>,
    self_closing: bool,
    /// Just past its `>`.
    end: usize,
}

/// Reads the tag whose name starts at `at` (just past `<` or `</`), as the
/// HTML tokenizer does. `None`: the text ends inside it.
fn read_tag(s: &str, at: usize) -> Option<Tag<'_>> {
    let b = s.as_bytes();
    let mut i = at;
    while i < b.len() && !is_ws(b[i]) && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name = s[at..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        // Before an attribute's name.
        while i < b.len() && (is_ws(b[i]) || b[i] == b'/') {
            self_closing = b[i] == b'/';
            i += 1;
        }
        match b.get(i)? {
            b'>' => {
                return Some(Tag {
                    name,
                    attrs,
                    self_closing,
                    end: i + 1,
                });
            }
            _ => self_closing = false,
        }
        // Its name: the first character may be anything, `=` included.
        let start = i;
        i += 1;
        while i < b.len() && !is_ws(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let attr = &s[start..i];
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            attrs.push((attr, ""));
            continue;
        }
        i += 1;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        let value = match *b.get(i)? {
            q @ (b'"' | b'\'') => {
                let from = i + 1;
                let len = b[from..].iter().position(|&c| c == q)?;
                i = from + len + 1;
                &s[from..from + len]
            }
            b'>' => "",
            _ => {
                let from = i;
                while i < b.len() && !is_ws(b[i]) && b[i] != b'>' {
                    i += 1;
                }
                &s[from..i]
            }
        };
        attrs.push((attr, value));
    }
}

/// An attribute name worth keeping: the sanitizer keeps none other.
fn plain_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'.'))
}

/// What is open, as far as the parser surely agrees.
#[derive(Default)]
struct Open {
    stack: Vec<String>,
    /// Formatting elements closed in passing, by name: the parser may open
    /// them again until their own end tag.
    leaked: Vec<String>,
}

impl Open {
    fn depth(&self) -> usize {
        self.stack.len() + self.leaked.len()
    }

    fn top_is(&self, names: &[&str]) -> bool {
        self.stack
            .last()
            .is_some_and(|t| names.contains(&t.as_str()))
    }

    fn pop_if(&mut self, names: &[&str]) {
        if self.top_is(names) {
            self.stack.pop();
        }
    }

    /// Closes what the parser closes before opening `name`. Whether to open
    /// it: false when it would be too deep.
    fn start(&mut self, name: &str) -> bool {
        if CLOSES_P.contains(&name) {
            self.pop_if(&["p"]);
        }
        match name {
            "li" => self.pop_if(&["li"]),
            "dd" | "dt" => self.pop_if(&["dd", "dt"]),
            "td" | "th" => self.pop_if(&["td", "th"]),
            "tr" => {
                self.pop_if(&["td", "th"]);
                self.pop_if(&["tr"]);
            }
            "tbody" | "thead" | "tfoot" => {
                self.pop_if(&["td", "th"]);
                self.pop_if(&["tr"]);
                self.pop_if(&["tbody", "thead", "tfoot"]);
            }
            "option" => self.pop_if(&["option"]),
            "optgroup" => {
                self.pop_if(&["option"]);
                self.pop_if(&["optgroup"]);
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.pop_if(&["h1", "h2", "h3", "h4", "h5", "h6"])
            }
            _ => {}
        }
        if VOID.contains(&name) {
            return true;
        }
        if self.depth() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(name.to_owned());
        true
    }

    fn end(&mut self, name: &str) {
        if self.stack.last().is_some_and(|t| t == name) {
            self.stack.pop();
            return;
        }
        let through: &[&str] = match name {
            n if CLOSES_THROUGH.contains(&n) => IMPLIED,
            "table" => &[
                "td", "th", "tr", "tbody", "thead", "tfoot", "caption", "colgroup",
            ],
            "tbody" | "thead" | "tfoot" => &["td", "th", "tr"],
            "tr" => &["td", "th"],
            _ => {
                // A formatting element closed in passing is closed for good now.
                if let Some(i) = self.leaked.iter().position(|l| l == name) {
                    self.leaked.remove(i);
                }
                return;
            }
        };
        let mut passed = Vec::new();
        for (i, open) in self.stack.iter().enumerate().rev() {
            if open == name {
                self.stack.truncate(i);
                self.leaked.extend(passed);
                return;
            }
            if FORMATTING.contains(&open.as_str()) {
                passed.push(open.clone());
            } else if !through.contains(&open.as_str()) {
                return;
            }
        }
    }
}

/// Appends text, every `<` escaped.
fn push_text(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        out.push_str("&lt;");
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// `html` rewritten so that the HTML parser opens no element deeper than
/// about [`MAX_DEPTH`] (see the module's comment).
pub(crate) fn shallow_html(html: &str) -> Cow<'_, str> {
    if !html.contains('<') {
        return Cow::Borrowed(html);
    }
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut open = Open::default();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let lt = i + off;
        push_text(&mut out, &html[i..lt]);
        let next = b.get(lt + 1).copied();
        let after = b.get(lt + 2).copied();
        match next {
            Some(c) if c.is_ascii_alphabetic() => {
                let Some(tag) = read_tag(html, lt + 1) else {
                    return Cow::Owned(out);
                };
                i = tag.end;
                if !tag
                    .name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    push_text(&mut out, &html[lt..tag.end]);
                    continue;
                }
                if let Some(raw) = RAW.iter().find(|r| **r == tag.name) {
                    let (content, resume) = raw_text(html, tag.end, raw);
                    if !matches!(*raw, "script" | "style") {
                        push_text(&mut out, content);
                    }
                    i = resume;
                    continue;
                }
                if !open.start(&tag.name) {
                    continue;
                }
                out.push('<');
                out.push_str(&tag.name);
                for (name, value) in tag.attrs.iter().filter(|(n, _)| plain_name(n)) {
                    out.push(' ');
                    out.push_str(name);
                    out.push_str("=\"");
                    out.push_str(&value.replace('"', "&quot;"));
                    out.push('"');
                }
                if tag.self_closing {
                    out.push('/');
                }
                out.push('>');
            }
            Some(b'/') if after.is_some_and(|c| c.is_ascii_alphabetic()) => {
                let Some(tag) = read_tag(html, lt + 2) else {
                    return Cow::Owned(out);
                };
                i = tag.end;
                if !tag
                    .name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    continue;
                }
                open.end(&tag.name);
                out.push_str("</");
                out.push_str(&tag.name);
                out.push('>');
            }
            Some(b'/') if after == Some(b'>') => i = lt + 3,
            Some(b'!') if html[lt..].starts_with("<!--") => {
                i = comment_end(html, lt + 4);
            }
            Some(b'!' | b'?' | b'/') => {
                // Doctypes and other bogus comments run to the next `>`.
                i = html[lt..].find('>').map_or(html.len(), |j| lt + j + 1);
            }
            _ => {
                out.push_str("&lt;");
                i = lt + 1;
            }
        }
    }
    push_text(&mut out, &html[i..]);
    Cow::Owned(out)
}

/// Where a comment whose text starts at `at` ends (past its `-->`).
fn comment_end(s: &str, at: usize) -> usize {
    let rest = &s[at..];
    if rest.starts_with('>') {
        return at + 1;
    }
    if rest.starts_with("->") {
        return at + 2;
    }
    let dashes = rest.find("-->").map(|j| j + 3);
    let bang = rest.find("--!>").map(|j| j + 4);
    match (dashes, bang) {
        (Some(a), Some(b)) => at + a.min(b),
        (Some(a), None) | (None, Some(a)) => at + a,
        (None, None) => s.len(),
    }
}

/// The raw text of element `name` from `at`, and where reading resumes:
/// at its end tag, or the end of the text.
fn raw_text<'a>(s: &'a str, at: usize, name: &str) -> (&'a str, usize) {
    if name == "plaintext" {
        return (&s[at..], s.len());
    }
    let b = s.as_bytes();
    let mut from = at;
    while let Some(j) = s[from..].find("</") {
        let tag = from + j + 2;
        let end = tag + name.len();
        if s.get(tag..end)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && b.get(end)
                .is_none_or(|&c| is_ws(c) || c == b'/' || c == b'>')
        {
            let close = s[end..].find('>').map_or(s.len(), |k| end + k + 1);
            return (&s[at..from + j], close);
        }
        from = tag;
    }
    (&s[at..], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_cut_and_the_text_kept() {
        let html = "<div>".repeat(1000) + "deep" + &"</div>".repeat(1000);
        let out = shallow_html(&html);
        assert_eq!(out.matches("<div>").count(), MAX_DEPTH);
        assert!(out.contains("deep"));
    }

    #[test]
    fn ordinary_markup_is_kept() {
        let html = "<p>One <b>two</b> <a href=\"x?a=1&amp;b=2\" title='say \"hi\"'>three</a>\
                    <img src=x alt=y>";
        assert_eq!(
            shallow_html(html),
            "<p>One <b>two</b> <a href=\"x?a=1&amp;b=2\" title=\"say &quot;hi&quot;\">three</a>\
             <img src=\"x\" alt=\"y\">"
        );
        // Unclosed paragraphs, items and cells do not pile up.
        let loose = "<ul><li><p>a<li><p>b</ul><table><tr><td>c<td>d<tr><td>e</table>".repeat(100);
        let out = shallow_html(&loose);
        assert_eq!(out.matches("<li>").count(), 200, "{out}");
        assert_eq!(out.matches("<td>").count(), 300, "{out}");
    }

    #[test]
    fn what_hides_in_attributes_comments_and_raw_text_opens_nothing() {
        let tricks = [
            "<div title='></div>'>",
            "<!-- --><div><!-- </div> -->",
            "<div><textarea></div></textarea>",
            "<div><script></div></script>",
            "<b><div></b>",
        ];
        for t in tricks {
            let html = t.repeat(500) + "end";
            let out = shallow_html(&html);
            assert!(
                out.matches("<div").count() <= MAX_DEPTH,
                "{t}: {}",
                out.matches("<div").count()
            );
            assert!(
                !out.contains("<!--") && !out.contains("<script") && !out.contains("<textarea")
            );
        }
        // A bare `<` in text is text.
        assert_eq!(shallow_html("a < b <3 <"), "a &lt; b &lt;3 &lt;");
    }

    /// The deepest nesting in well-formed HTML (the sanitizer's output).
    fn depth_of(html: &str) -> usize {
        let (mut depth, mut max) = (0usize, 0);
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let close = rest.starts_with('/');
            let name: String = rest
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if close {
                depth = depth.saturating_sub(1);
            } else if !VOID.contains(&name.as_str()) {
                depth += 1;
                max = max.max(depth);
            }
        }
        max
    }

    #[test]
    fn random_markup_never_nests_deep_after_parsing() {
        const BITS: &[&str] = &[
            "<",
            ">",
            "/",
            "div",
            "b",
            "p",
            "li",
            "ul",
            "i",
            "span",
            "table",
            "td",
            "tr",
            "\"",
            "'",
            "=",
            " ",
            "!--",
            "--",
            "script",
            "textarea",
            "svg",
            "x",
            "\u{e9}",
            "<div>",
            "<b>",
            "</div>",
            "<p>",
            "<td>",
            "<table>",
            "</b>",
            "<li>",
            "<a href=x>",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let mut html = String::new();
            for _ in 0..3000 {
                html.push_str(BITS[(next() % BITS.len() as u64) as usize]);
            }
            let shallow = shallow_html(&html);
            let clean = ammonia::clean(&shallow);
            let depth = depth_of(&clean);
            assert!(depth <= 3 * MAX_DEPTH, "{depth} deep from {html:?}");
        }
    }
}
