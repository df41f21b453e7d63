//! The tamizdat node: a libp2p daemon that finds peers and moves verified
//! blobs by content hash.
//!
//! - [`wire`]: the `/tamizdat/blob/1` request and response framing.
//! - [`fetch`]: the IO-less plan of what to fetch from whom.
//! - [`have`]: neighbours telling each other which blobs or pieces they hold.
//! - [`share`]: how much of one blob a node sends before it leaves the rest to others.
//! - [`transfer`]: both ends of one transfer over any byte stream.
//! - [`bundle`]: articles carried by hand, checked before they are kept
//!   (re-exported from `tamizdat-feed`).
//!
//! Knows nothing of HTTP or the command line.

mod bans;
pub mod book;
pub mod feeds;
pub mod fetch;
pub mod have;
mod idle;
mod links;
mod metrics;
mod node;
pub mod replicate;
pub mod retention;
pub mod share;
pub mod transfer;
pub mod wire;

pub use bans::BAN_FOR;
pub use libp2p::{Multiaddr, PeerId, identity, multiaddr::Protocol};
pub use node::{
    Client, Config, Fetched, GossipPeer, KAD_PROTOCOL, MAX_RELAYS, NatConfig, NatStatus, NodeError,
    Progress, Scope, scope, spawn, spawn_with_metrics,
};
/// The metrics library the node registers into: the gateway encodes the
/// same [`prometheus_client::registry::Registry`] with it.
pub use prometheus_client;
/// Bundles: the format and its import live in `tamizdat-feed`.
pub use tamizdat_feed::bundle;
