//! Peers caught sending bytes that failed verification (or lying about a
//! blob's size), remembered for a while so later fetches do not ask them
//! again. Bounded: the oldest entry goes when it is full.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p::PeerId;

/// Peers remembered at most.
const CAPACITY: usize = 4096;

/// How long a peer stays remembered as bad.
pub const BAN_FOR: Duration = Duration::from_secs(3600);

/// The node's memory of liars.
#[derive(Debug, Default)]
pub struct BadPeers {
    seen: Mutex<HashMap<PeerId, Instant>>,
}

impl BadPeers {
    /// Remembers `peer` as bad from now on.
    pub fn mark(&self, peer: PeerId) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < BAN_FOR);
        if seen.len() >= CAPACITY
            && !seen.contains_key(&peer)
            && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(p, _)| *p)
        {
            seen.remove(&oldest);
        }
        seen.insert(peer, now);
    }

    /// Whether `peer` was caught lying within [`BAN_FOR`].
    pub fn is_bad(&self, peer: &PeerId) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(peer).is_some_and(|at| at.elapsed() < BAN_FOR)
    }

    /// The peers remembered now.
    pub fn list(&self) -> Vec<PeerId> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .filter(|(_, at)| at.elapsed() < BAN_FOR)
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_stays_bounded() {
        let bans = BadPeers::default();
        let first = PeerId::random();
        bans.mark(first);
        assert!(bans.is_bad(&first));
        assert!(!bans.is_bad(&PeerId::random()));
        for _ in 0..CAPACITY {
            bans.mark(PeerId::random());
        }
        assert_eq!(bans.list().len(), CAPACITY);
        assert!(!bans.is_bad(&first), "the oldest made room");
    }
}
