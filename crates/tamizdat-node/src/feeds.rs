//! The publishers this node follows and the judgement of every signed
//! object: these live in `tamizdat-feed`, the one door for signed objects,
//! and are re-exported here for the node's callers. While the node runs,
//! its replication task owns the feed state; everyone else reads a
//! snapshot ([`crate::Client::trust`], [`crate::Client::following`]).

pub use tamizdat_feed::cards;
pub use tamizdat_feed::{
    Conflict, FOLLOWS, Feeds, Followed, FollowsError, Ignored, Judgement, MAX_FOLLOWS, Refused,
    Standing, TRUST, feed_pin, standing, topic,
};
