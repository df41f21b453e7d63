//! The one door for signed objects, and the replication core.
//!
//! - [`Feeds`] holds the follow list and the trust state, and judges every
//!   signed object that arrives ([`Feeds::judge`]) before anything is stored
//!   or forwarded. Every decision about whether an object is genuine, new,
//!   to be kept or shown is made here.
//! - [`Sync`] is the I/O-less replication state machine that owns a
//!   [`Feeds`]: the node feeds it network events as [`Input`]s and carries
//!   out the [`Output`]s (`handle(input, now) -> outputs`). The module docs
//!   of [`sync`] map every input and output to a node operation.
//!
//! - [`cards`] keeps publishers' cards in the store, as [`Feeds`] judged
//!   them.
//! - [`bundle`] is the bundle format (articles carried by hand) and its
//!   import, which judges every record through [`Feeds`] as gossip does.
//!
//! This crate is synchronous and knows nothing of tokio, libp2p or HTTP.
//! `tests/sim.rs` drives many [`Sync`]s over a seeded, modelled network.

#![warn(missing_docs)]

pub mod bundle;
pub mod cards;
mod judge;
mod policy;
pub mod sync;

pub use judge::{
    Conflict, FOLLOWS, Feeds, Followed, FollowsError, Ignored, Judgement, MAX_CONFLICTS,
    MAX_FOLLOWS, Refused, Standing, TRUST, feed_pin, standing, topic,
};
pub use policy::Policy;
pub use sync::{Acceptance, Config, Hash, Head, Input, MsgId, Offence, Output, PublishError, Sync};
