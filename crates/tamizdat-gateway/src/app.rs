//! Shared state, the router, and the pieces every route uses: errors,
//! blob fetching within bounds, the per-client fetch limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use prometheus_client::registry::Registry;
use tamizdat_node::{Client, NodeError};
use tamizdat_sign::PublicKey;
use tamizdat_store::{BlobInfo, Hash, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::i18n::Arg;
use crate::server::Config;
use crate::{api, blob, index, metrics, pages};

/// Blobs up to this size are read whole, verified, and may be cached.
pub(crate) const SMALL_BLOB: u64 = 1 << 20;

/// Everything a request handler needs.
#[derive(Debug)]
pub(crate) struct App {
    pub config: Config,
    pub node: Client,
    pub store: Arc<Store>,
    pub addr: SocketAddr,
    /// Small blobs already read and verified, by hash.
    pub cache: quick_cache::sync::Cache<Hash, Bytes, BytesWeight>,
    pub index: index::Cache,
    pub fetches: Limiter,
    pub metrics: metrics::Metrics,
    pub scrapes: metrics::Scrapes,
    pub renders: pages::Renders,
    registry: OnceLock<Registry>,
}

/// Weighs cached blobs by their size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BytesWeight;

impl quick_cache::Weighter<Hash, Bytes> for BytesWeight {
    fn weight(&self, _: &Hash, v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

impl App {
    pub fn new(
        config: Config,
        node: Client,
        registry: &mut Registry,
        addr: SocketAddr,
    ) -> Arc<Self> {
        let store = node.store().clone();
        let metrics = metrics::Metrics::register(registry.sub_registry_with_prefix("tamizdat"));
        let cache = quick_cache::sync::Cache::with_weighter(4096, config.cache_bytes, BytesWeight);
        Arc::new(Self {
            fetches: Limiter::new(config.fetches_total, config.fetches_per_client),
            config,
            node,
            store,
            addr,
            cache,
            index: index::Cache::default(),
            metrics,
            scrapes: metrics::Scrapes::default(),
            renders: pages::Renders::new(),
            registry: OnceLock::new(),
        })
    }

    pub fn set_registry(&self, registry: Registry) {
        let _ = self.registry.set(registry);
    }

    pub fn registry(&self) -> Option<&Registry> {
        self.registry.get()
    }

    /// Runs a store call off the async threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Failure::internal(format!("store task failed: {e}")))
    }

    /// Facts about a blob that is complete here, fetching it from the network
    /// first when it is not (within the fetch bounds of `ip`).
    pub async fn ensure(
        self: &Arc<Self>,
        ip: IpAddr,
        hash: Hash,
        max: u64,
    ) -> Result<BlobInfo, Failure> {
        let info = self
            .blocking(move |s| s.info_without_pins(&hash))
            .await?
            .map_err(|e| Failure::internal(e.to_string()))?;
        if let Some(info) = info
            && info.complete
        {
            return Ok(info);
        }
        let _permit = self.fetches.take(ip)?;
        let fetched = tokio::time::timeout(
            self.config.fetch_timeout,
            self.node.fetch_bounded(hash, &[], max),
        )
        .await;
        let fetched = match fetched {
            Err(_) => {
                self.metrics.network_fetch("timeout");
                let secs = self.config.fetch_timeout.as_secs();
                let args = vec![("hash", Arg::T(hash.to_string())), ("secs", Arg::N(secs))];
                return Err(Failure::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "{hash} is not on this node and was not found on the network within {secs}s"
                    ),
                )
                .said("fail-not-found-title", "fail-timeout", args));
            }
            Ok(r) => r,
        };
        match fetched {
            Ok(_) => {
                // Not announced: provider records would tell anyone
                // watching the DHT what this gateway's readers open.
                self.metrics.network_fetch("ok");
            }
            Err(e) => {
                self.metrics.network_fetch("failed");
                let status = match e {
                    NodeError::NoPeers(_)
                    | NodeError::NoProviders(_)
                    | NodeError::NotFound { .. } => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let failure = Failure::new(
                    status,
                    format!("{hash} is not on this node and could not be fetched: {e}"),
                );
                return Err(if status == StatusCode::NOT_FOUND {
                    failure.said(
                        "fail-not-found-title",
                        "fail-not-found",
                        vec![("hash", Arg::T(hash.to_string()))],
                    )
                } else {
                    failure
                });
            }
        }
        self.blocking(move |s| s.info_without_pins(&hash))
            .await?
            .map_err(|e| Failure::internal(e.to_string()))?
            .filter(|i| i.complete)
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!("{hash} was fetched but is not complete"),
                )
            })
    }

    /// A small complete blob's bytes, verified (from the cache when read before).
    pub async fn small_bytes(self: &Arc<Self>, hash: Hash) -> Result<Bytes, Failure> {
        if let Some(b) = self.cache.get(&hash) {
            return Ok(b);
        }
        let bytes = self
            .blocking(move |s| s.read_to_vec(&hash))
            .await?
            .map_err(|e| {
                tracing::error!("serving {hash}: {e}");
                Failure::internal(format!("{hash} cannot be served: {e}"))
            })?;
        let bytes = Bytes::from(bytes);
        self.cache.insert(hash, bytes.clone());
        Ok(bytes)
    }
}

/// An error answered to the client: a status and one short line.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// What a reader's page shows instead of `message` (its title and
    /// body), when there is more to say than a line (a withdrawn article:
    /// when, why, what replaced it).
    pub page: Option<(String, maud::Markup)>,
    /// What a reader's page says in the reader's language: a title and a
    /// text message id (`locales/*.ftl`) and the text's arguments. The
    /// `message`, in English, goes under it as the technical detail.
    pub said: Option<Box<Said>>,
}

/// A failure in plain words, to be said in the reader's language.
#[derive(Debug, Clone)]
pub(crate) struct Said {
    pub title: &'static str,
    pub text: &'static str,
    pub args: Vec<(&'static str, Arg)>,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            page: None,
            said: None,
        }
    }

    /// The same failure, said to a reader with `text` under `title`.
    pub fn said(
        mut self,
        title: &'static str,
        text: &'static str,
        args: Vec<(&'static str, Arg)>,
    ) -> Self {
        self.said = Some(Box::new(Said { title, text, args }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut r = (self.status, format!("{}\n", self.message)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// Parses a hash in a URL: 64 hex digits. Upper case is accepted and
/// answered with the canonical lower-case form (`Err(Ok(canonical))`, for a
/// redirect).
pub(crate) fn parse_hash(s: &str) -> Result<Hash, Result<String, Failure>> {
    if let Ok(h) = s.parse::<Hash>() {
        return Ok(h);
    }
    let lower = s.to_ascii_lowercase();
    if lower.parse::<Hash>().is_ok() {
        return Err(Ok(lower));
    }
    let shown: String = s.chars().take(80).collect();
    Err(Err(Failure::bad_request(format!(
        "{shown:?} is not a content hash: expected 64 hex digits (a BLAKE3 hash)"
    ))
    .said("fail-bad-address-title", "fail-bad-hash", Vec::new())))
}

/// Parses a publisher key in a URL: 64 hex digits, and a key someone could
/// sign with (a point of the curve, not one of small order such as the
/// all-zero key: tamizdat-sign's parsing refuses those).
pub(crate) fn parse_key(s: &str) -> Result<PublicKey, Failure> {
    s.parse::<PublicKey>().map_err(|e| {
        Failure::bad_request(format!(
            "not a usable publisher key (64 hex digits, as `tamizdat key show` prints it): {e}"
        ))
        .said("fail-bad-address-title", "fail-bad-key", Vec::new())
    })
}

/// Bounds network fetches made for readers: at most `per` at once for one
/// client address, `total` for all.
#[derive(Debug)]
pub(crate) struct Limiter {
    total: Arc<Semaphore>,
    per: usize,
    clients: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// Addresses remembered by the limiter, at most.
const MAX_CLIENTS: usize = 4096;

impl Limiter {
    fn new(total: usize, per: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            per,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A fetch slot for `ip`, or 429 (this client has enough going) or 503
    /// (the node has enough going).
    pub fn take(
        &self,
        ip: IpAddr,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Failure> {
        let mine = {
            let mut map = self.clients.lock().unwrap();
            if map.len() >= MAX_CLIENTS {
                map.retain(|_, s| Arc::strong_count(s) > 1);
            }
            map.entry(crate::server::client_key(ip))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per)))
                .clone()
        };
        let mine = mine.try_acquire_owned().map_err(|_| {
            Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "at most {} network fetches at once per client; try again shortly",
                    self.per
                ),
            )
            .said("fail-busy-title", "fail-busy", Vec::new())
        })?;
        let all = self.total.clone().try_acquire_owned().map_err(|_| {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node is fetching as much as it will for readers; try again shortly",
            )
            .said("fail-busy-title", "fail-busy", Vec::new())
        })?;
        Ok((mine, all))
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::front))
        .route("/p/{key}", get(pages::publisher))
        .route("/m/{hash}", get(pages::article))
        .route("/b/{hash}", get(blob::get))
        .route("/assets/style.css", get(pages::style))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/publishers", get(api::publishers))
        .route("/api/v1/publishers/{key}", get(api::publisher))
        .route("/api/v1/manifests/{hash}", get(api::manifest))
        .route("/metrics", get(metrics::get))
        .route("/healthz", get(health))
        .fallback(unknown)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(120),
        ))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app.node.connected().await {
        Ok(peers) => (
            StatusCode::OK,
            format!("ok: {} peer(s) connected\n", peers.len()),
        )
            .into_response(),
        Err(e) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, format!("node: {e}")).into_response()
        }
    }
}

async fn unknown() -> Failure {
    Failure::not_found(
        "no such page: see / for this node's articles, /b/HASH for a blob, /m/HASH for an article",
    )
}

/// Counts requests by route and status, and sets the headers every answer
/// carries.
async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut res = next.run(req).await;
    app.metrics.request(&route, res.status().as_u16());
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_fetches_are_capped_per_client_and_in_all() {
        let limiter = Limiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = limiter.take(a).unwrap();
        let _second = limiter.take(a).unwrap();
        assert_eq!(
            limiter.take(a).unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        drop(first);
        let _again = limiter.take(a).unwrap();
        let b: IpAddr = "198.51.100.7".parse().unwrap();
        let _third = limiter.take(b).unwrap();
        // Three at once in all.
        let c: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            limiter.take(c).unwrap_err().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn one_ipv6_network_is_one_client() {
        let limiter = Limiter::new(10, 1);
        let _held = limiter.take("2001:db8::1".parse().unwrap()).unwrap();
        let same = limiter.take("2001:db8::2:3".parse().unwrap());
        assert_eq!(same.unwrap_err().status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limiter.take("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
