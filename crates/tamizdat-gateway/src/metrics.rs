//! `GET /metrics`: the node's metrics (libp2p's and its own) and the
//! gateway's, in the OpenMetrics text format Prometheus reads. Store and
//! feed figures are read when scraped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tamizdat_store::Hash;

use crate::app::{App, Failure};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabels {
    publisher: String,
    feed: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublisherLabels {
    publisher: String,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    network_fetches: Family<OutcomeLabels, Counter>,
    renders: Family<OutcomeLabels, Counter>,
    blobs: Gauge,
    stored_bytes: Gauge,
    feed_lag: Family<FeedLabels, Gauge>,
    feed_head_age: Family<FeedLabels, Gauge>,
    pending_files: Family<PublisherLabels, Gauge>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            network_fetches: Family::default(),
            renders: Family::default(),
            blobs: Gauge::default(),
            stored_bytes: Gauge::default(),
            feed_lag: Family::default(),
            feed_head_age: Family::default(),
            pending_files: Family::default(),
        };
        r.register(
            "gateway_requests",
            "HTTP requests answered by the gateway, by route and status",
            m.requests.clone(),
        );
        r.register(
            "gateway_network_fetches",
            "Blobs the gateway asked the network for on behalf of readers, by outcome",
            m.network_fetches.clone(),
        );
        r.register(
            "gateway_renders",
            "Article texts rendered into pages, by outcome (rendered, too_complex, failed); each once, then kept",
            m.renders.clone(),
        );
        r.register(
            "store_blobs",
            "Blobs in the store, complete or partial",
            m.blobs.clone(),
        );
        r.register(
            "store_bytes",
            "Bytes the store accounts for (data and outboards)",
            m.stored_bytes.clone(),
        );
        r.register(
            "feed_lag_articles",
            "Articles of a followed feed accepted but not yet held complete here (head sequence minus the newest complete one)",
            m.feed_lag.clone(),
        );
        r.register(
            "feed_head_age_seconds",
            "Seconds since the newest accepted article of a feed was signed",
            m.feed_head_age.clone(),
        );
        r.register(
            "replication_pending_files",
            "Files of recorded articles not yet complete here, by publisher",
            m.pending_files.clone(),
        );
        m
    }

    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    pub fn render(&self, outcome: &str) {
        self.renders
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn network_fetch(&self, outcome: &str) {
        self.network_fetches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// What a scrape reads from the store.
struct Scraped {
    blobs: usize,
    bytes: u64,
    /// Per (publisher, feed): newest sequence held complete.
    complete: HashMap<(String, String), u64>,
    /// Per publisher: files not complete.
    pending: HashMap<String, usize>,
}

/// How long one scrape's text is reused: a scrape reads the whole index.
const SCRAPE_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The last scrape, shared by everyone asking within [`SCRAPE_FRESH`].
#[derive(Debug, Default)]
pub(crate) struct Scrapes(tokio::sync::Mutex<Option<(std::time::Instant, String)>>);

pub(crate) async fn get(State(app): State<Arc<App>>) -> Response {
    let text = {
        let mut last = app.scrapes.0.lock().await;
        match last.as_ref() {
            Some((at, text)) if at.elapsed() < SCRAPE_FRESH => Ok(text.clone()),
            _ => scrape(&app).await.inspect(|text| {
                *last = Some((std::time::Instant::now(), text.clone()));
            }),
        }
    };
    match text {
        Ok(text) => {
            let mut r = text.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Err(f) => f.into_response(),
    }
}

async fn scrape(app: &Arc<App>) -> Result<String, Failure> {
    let index = app.index.get(app).await?;
    let articles: Vec<_> = index.newest().cloned().collect();
    // A withdrawn article is one the node is not missing: its publisher no
    // longer wants it shown, so it is no lag.
    let withdrawn: Vec<_> = index
        .withdrawn_articles()
        .map(|a| {
            (
                a.manifest.publisher.to_string(),
                a.manifest.feed.clone(),
                a.manifest.seq,
            )
        })
        .collect();
    let scraped = app
        .blocking(move |s| -> Result<Scraped, String> {
            // One pass over the index for every blob's state.
            let list = s.list().map_err(|e| e.to_string())?;
            let held: std::collections::HashSet<Hash> =
                list.iter().filter(|i| i.complete).map(|i| i.hash).collect();
            let bytes = s.usage().map_err(|e| e.to_string())?.used;
            let mut complete: HashMap<(String, String), u64> = HashMap::new();
            let mut pending: HashMap<String, usize> = HashMap::new();
            for a in &articles {
                let m = &a.manifest;
                let publisher = m.publisher.to_string();
                let mut missing = 0;
                for e in &m.entries {
                    if !held.contains(&Hash::from_bytes(e.hash)) {
                        missing += 1;
                    }
                }
                *pending.entry(publisher.clone()).or_insert(0) += missing;
                if missing == 0 {
                    let seq = complete.entry((publisher, m.feed.clone())).or_insert(0);
                    *seq = (*seq).max(m.seq);
                }
            }
            for (publisher, feed, n) in withdrawn {
                let seq = complete.entry((publisher, feed)).or_insert(0);
                *seq = (*seq).max(n);
            }
            Ok(Scraped {
                blobs: list.len(),
                bytes,
                complete,
                pending,
            })
        })
        .await?
        .map_err(|e| Failure::internal(format!("reading the store: {e}")))?;
    let m = &app.metrics;
    m.blobs.set(scraped.blobs as i64);
    m.stored_bytes.set(scraped.bytes as i64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let followed: Vec<_> = app.node.following().into_iter().map(|f| f.key).collect();
    m.feed_lag.clear();
    m.feed_head_age.clear();
    m.pending_files.clear();
    for (publisher, feed, head) in app.node.trust().feeds() {
        if !followed.contains(publisher) {
            continue;
        }
        let labels = FeedLabels {
            publisher: publisher.to_string(),
            feed: feed.to_owned(),
        };
        let held = scraped
            .complete
            .get(&(labels.publisher.clone(), labels.feed.clone()))
            .copied()
            .unwrap_or(0);
        m.feed_lag
            .get_or_create(&labels)
            .set(head.seq.saturating_sub(held) as i64);
        m.feed_head_age
            .get_or_create(&labels)
            .set(now.saturating_sub(head.created) as i64);
    }
    for key in &followed {
        let publisher = key.to_string();
        let n = scraped.pending.get(&publisher).copied().unwrap_or(0);
        m.pending_files
            .get_or_create(&PublisherLabels { publisher })
            .set(n as i64);
    }
    let mut text = String::new();
    if let Some(r) = app.registry() {
        prometheus_client::encoding::text::encode(&mut text, r)
            .map_err(|e| Failure::internal(format!("encoding metrics: {e}")))?;
    }
    Ok(text)
}
