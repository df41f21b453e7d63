//! The reader's gateway: an HTTP server in front of a tamizdat node.
//!
//! Readers open an article by its manifest hash (`/m/{hash}`) and see it
//! rendered, sanitized, with a provenance badge saying who signed it, with
//! which key, when, and that this node verified it. Raw blobs are served by
//! hash (`/b/{hash}`) with byte ranges and immutable caching; a blob missing
//! here is fetched from the network, bounded in time and per client. The
//! node's publishers and feeds are listed on `/` and `/p/{pubkey}`, the same
//! data is JSON under `/api/v1/`, Prometheus metrics are at `/metrics`.
//!
//! The server never maps a URL to a filesystem path: every byte it sends
//! comes from the verified store or is generated. Every connection is bounded
//! (count overall and per address, header read time, read and write stalls),
//! so slow or hostile clients cannot starve the others. Routes and headers:
//! `docs/gateway.md`.
//!
//! [`html::export`] writes the same pages as a folder of static files, for
//! readers with no tamizdat and no network.

mod api;
mod app;
mod blob;
pub mod html;
mod i18n;
mod index;
mod metrics;
mod nesting;
mod pages;
mod render;
mod server;

pub use render::{DropReason, DroppedReference, MAX_BODY, body_of_entries, dropped_references};
pub use server::{Config, Gateway, spawn};
