//! `GET /b/{hash}`: raw bytes, verified as they are read, with single byte
//! ranges, immutable caching, and the media type a signed manifest names.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use tamizdat_sign::{MAX_MANIFEST_LEN, Manifest, Verifier};
use tamizdat_store::Hash;

use crate::app::{App, Failure, SMALL_BLOB, parse_hash};
use crate::server::ClientIp;

/// The query a link to a blob may carry.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct BlobQuery {
    /// The manifest (hash) that names this blob, for its media type.
    m: Option<String>,
}

/// Bytes read and sent at a time when a blob is streamed.
const PIECE: usize = 64 * 1024;

/// The media type of manifests themselves.
pub(crate) const MANIFEST_TYPE: &str = "application/vnd.tamizdat.manifest";

/// Types shown inline: none of them runs script on our origin.
fn inline_safe(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim();
    matches!(
        essence,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "text/plain"
    ) || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

/// A media type from a manifest, if it is a well-formed `type/subtype`.
pub(crate) fn clean_media(media: &str) -> Option<&str> {
    let (t, sub) = media.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_'))
    };
    (ok(t) && ok(sub)).then_some(media)
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// The whole blob: no range, one we do not do (several ranges, other
    /// units), or a malformed header, which RFC 9110 says to ignore.
    Whole,
    /// These bytes.
    Part(Range<u64>),
    /// A range starting past the end.
    Unsatisfiable,
}

pub(crate) fn parse_range(value: &str, size: u64) -> Ranged {
    let Some(spec) = value
        .trim()
        .strip_prefix("bytes=")
        .or_else(|| value.trim().strip_prefix("Bytes="))
    else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
        },
        (s, "") => match num(s) {
            None => Ranged::Whole,
            Some(s) if s >= size => Ranged::Unsatisfiable,
            Some(s) => Ranged::Part(s..size),
        },
        (s, e) => match (num(s), num(e)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= size {
                    Ranged::Unsatisfiable
                } else {
                    Ranged::Part(s..e.saturating_add(1).min(size))
                }
            }
            _ => Ranged::Whole,
        },
    }
}

/// The `Content-Disposition` file name of a manifest path: its last part,
/// ASCII letters, digits and `._-` kept, the rest replaced.
fn file_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.trim_matches('.').is_empty() {
        "blob".into()
    } else {
        name
    }
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(raw): Path<String>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
) -> Response {
    let hash = match parse_hash(&raw) {
        Ok(h) => h,
        Err(Ok(canonical)) => {
            let query =
                q.m.filter(|m| m.parse::<Hash>().is_ok())
                    .map(|m| format!("?m={m}"))
                    .unwrap_or_default();
            return Redirect::permanent(&format!("/b/{canonical}{query}")).into_response();
        }
        Err(Err(f)) => return f.into_response(),
    };
    let etag = format!("\"{hash}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        })
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        immutable(r.headers_mut(), &etag);
        return r;
    }
    match serve(&app, ip, hash, q, &headers, &etag).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

fn immutable(h: &mut HeaderMap, etag: &str) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
}

async fn serve(
    app: &Arc<App>,
    ip: std::net::IpAddr,
    hash: Hash,
    q: BlobQuery,
    headers: &HeaderMap,
    etag: &str,
) -> Result<Response, Failure> {
    // A small blob read and verified before is served from memory: its
    // bytes match the hash whatever has happened on disk since.
    let cached = app.cache.get(&hash);
    let size = match &cached {
        Some(b) => b.len() as u64,
        None => app.ensure(ip, hash, app.config.fetch_max_bytes).await?.size,
    };
    let (media, name) = media_of(app, hash, q.m.as_deref()).await;
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let ranged = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if if_range_ok => parse_range(v, size),
        _ => Ranged::Whole,
    };
    let (status, range) = match ranged {
        Ranged::Whole => (StatusCode::OK, 0..size),
        Ranged::Part(r) => (StatusCode::PARTIAL_CONTENT, r),
        Ranged::Unsatisfiable => {
            let mut r = Failure::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the blob is {size} bytes: that range is outside it"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let body = if size <= SMALL_BLOB {
        let bytes = match cached {
            Some(b) => b,
            None => app.small_bytes(hash).await?,
        };
        Body::from(bytes.slice(range.start as usize..range.end as usize))
    } else {
        stream(app, hash, range.clone()).await?
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    immutable(h, etag);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    let content_type = if media.split(';').next() == Some("text/plain") && !media.contains(';') {
        "text/plain; charset=utf-8".to_owned()
    } else {
        media.clone()
    };
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    // Whatever it is, it never runs on this origin: sandboxed, no script,
    // and only downloaded when the browser might render it actively.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
        ),
    );
    let disposition = if inline_safe(&media) {
        "inline"
    } else {
        "attachment"
    };
    let name = name.unwrap_or_else(|| hash.short());
    if let Ok(v) =
        HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", file_name(&name)))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Streams `range` of a large blob, verifying as it reads, one piece per
/// trip to the blocking pool: a slow reader holds no thread while it waits.
/// The first piece is read before the answer starts, so a blob found corrupt
/// there gets a clear error; corruption found later cuts the connection, and
/// nothing unverified is ever sent.
async fn stream(app: &Arc<App>, hash: Hash, range: Range<u64>) -> Result<Body, Failure> {
    let len = range.end - range.start;
    let reader = app
        .blocking(move |s| s.range_reader(&hash, range))
        .await?
        .map_err(|e| Failure::internal(format!("{hash} cannot be served: {e}")))?;
    let (reader, first) = piece(reader, len).await;
    let first = first.map_err(|e| {
        tracing::error!("serving {hash}: {e}");
        Failure::internal(format!("{hash} cannot be served: {e}"))
    })?;
    let left = len - first.len() as u64;
    let rest = futures::stream::unfold((reader, left), move |(reader, left)| async move {
        let reader = reader?;
        if left == 0 {
            return None;
        }
        match piece(reader, left).await {
            (_, Ok(b)) if b.is_empty() => None,
            (reader, Ok(b)) => {
                let left = left - b.len() as u64;
                Some((Ok(b), (reader, left)))
            }
            (_, Err(e)) => {
                tracing::error!("serving {hash}: {e}");
                Some((Err(e), (None, 0)))
            }
        }
    });
    let all = futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), rest);
    Ok(Body::from_stream(all))
}

/// Reads the next piece (at most `left` bytes) off the async threads.
async fn piece(
    mut reader: tamizdat_store::BlobReader,
    left: u64,
) -> (Option<tamizdat_store::BlobReader>, std::io::Result<Bytes>) {
    use std::io::Read;
    let job = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; PIECE.min(left as usize)];
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return (Some(reader), Err(e)),
            }
        }
        buf.truncate(filled);
        (Some(reader), Ok(Bytes::from(buf)))
    });
    match job.await {
        Ok(r) => r,
        Err(e) => (None, Err(std::io::Error::other(e.to_string()))),
    }
}

/// The media type and file name of a blob: from the manifests this node
/// keeps, or from the manifest `m` the link names when that one verifies
/// and lists the blob; otherwise `application/octet-stream`.
async fn media_of(app: &Arc<App>, hash: Hash, m: Option<&str>) -> (String, Option<String>) {
    if let Ok(index) = app.index.get(app).await
        && let Some(found) = index.media(&hash)
    {
        return found;
    }
    if let Some(m) = m.and_then(|m| m.parse::<Hash>().ok()) {
        let trust = app.node.trust();
        let found = app
            .blocking(move |s| {
                let info = s.info(&m).ok()??;
                if !info.complete || info.size > MAX_MANIFEST_LEN as u64 {
                    return None;
                }
                let bytes = s.read_to_vec(&m).ok()?;
                let v = Verifier::new().verify(&bytes, &trust).ok()?;
                media_in(v.manifest(), &hash)
            })
            .await
            .ok()
            .flatten();
        if let Some(found) = found {
            return found;
        }
    }
    ("application/octet-stream".into(), None)
}

/// The media type and path a manifest gives `hash`.
pub(crate) fn media_in(m: &Manifest, hash: &Hash) -> Option<(String, Option<String>)> {
    m.entries
        .iter()
        .find(|e| &e.hash == hash.as_bytes())
        .map(|e| {
            (
                clean_media(&e.media_type)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                Some(e.path.clone()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use Ranged::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0..100));
        assert_eq!(parse_range("bytes=50-5000", 100), Part(50..100));
        assert_eq!(parse_range("bytes=99-99", 100), Part(99..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=9-0", 100), Whole);
        assert_eq!(parse_range("bytes=a-b", 100), Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
        assert_eq!(parse_range("items=0-9", 100), Whole);
        assert_eq!(parse_range("bytes=0-99999999999999999999999", 100), Whole);
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 100),
            Part(0..100)
        );
    }

    #[test]
    fn media_types() {
        assert!(inline_safe("image/png"));
        assert!(inline_safe("text/plain; charset=utf-8"));
        assert!(!inline_safe("text/html"));
        assert!(!inline_safe("image/svg+xml"));
        assert!(!inline_safe("application/javascript"));
        assert!(!inline_safe("application/pdf"));
        assert_eq!(clean_media("image/svg+xml"), Some("image/svg+xml"));
        assert_eq!(clean_media("text/html\r\nSet-Cookie: x"), None);
        assert_eq!(clean_media("nonsense"), None);
        assert_eq!(file_name("img/фото 1.jpg"), "_____1.jpg");
        assert_eq!(file_name("../.."), "blob");
    }
}
