//! Quota and retention per followed publisher, as the follow list stores it.

use serde::{Deserialize, Serialize};

/// How much of one publisher to keep. `None` means no limit.
///
/// The serde shape is the one the follow list has always been stored in:
/// two optional integers, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Most bytes of its articles (manifests and files).
    pub max_bytes: Option<u64>,
    /// Articles signed longer ago than this many seconds are let go.
    pub max_age: Option<u64>,
}

impl Policy {
    /// Whether it limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_age.is_none()
    }
}
