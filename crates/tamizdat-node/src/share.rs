//! How much of one blob a node sends before it leaves the rest to others.
//!
//! A new article's followers all learn of it from the outlet's node within
//! a few milliseconds, before anyone else holds a byte. Were the first
//! holder to serve everyone who asks, it would send every copy: the outlet,
//! whose uplink is the scarcest and most watched, would carry the whole
//! swarm. So each node sends at most [`Share::copies`] times a blob's size
//! of it per [`Share::window`] (a token bucket per blob, never less than
//! [`FLOOR`] bytes, so small files are not held back), and answers "busy"
//! beyond; the askers turn to the neighbours that hold pieces by then (see
//! [`crate::have`]), and the bucket refills for anyone who has no one else.
//!
//! The bucket's size depends on the blob's, which keyed limiters such as
//! `governor`'s (one quota for every key) do not offer; hence this one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tamizdat_store::Hash;

/// The least a blob's bucket holds, in bytes.
pub const FLOOR: u64 = 1 << 20;
/// Blobs whose buckets are remembered; a full bucket is forgotten first
/// (it is the same as a new one).
const MAX_BLOBS: usize = 4096;

/// The upload share of one blob, per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Copies of a blob sent per window at most; 0 for no limit.
    pub copies: u32,
    /// The window over which the bucket refills.
    pub window: Duration,
}

impl Default for Share {
    fn default() -> Self {
        Self {
            copies: 2,
            window: Duration::from_secs(10),
        }
    }
}

/// The buckets of the blobs served lately.
#[derive(Debug)]
pub(crate) struct Shares {
    share: Share,
    buckets: Mutex<HashMap<Hash, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Bytes that may still be sent.
    tokens: f64,
    capacity: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, window: Duration) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let rate = self.capacity / window.as_secs_f64().max(1e-3);
        self.tokens = (self.tokens + dt * rate).min(self.capacity);
        self.last = now;
    }

    fn full(&self) -> bool {
        self.tokens >= self.capacity
    }
}

impl Shares {
    pub(crate) fn new(share: Share) -> Self {
        Self {
            share,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `bytes` of `hash` (a blob of `size` bytes) may be sent now;
    /// if so they are counted.
    pub(crate) fn take(&self, hash: &Hash, size: u64, bytes: u64) -> bool {
        self.take_at(hash, size, bytes, Instant::now())
    }

    fn take_at(&self, hash: &Hash, size: u64, bytes: u64, now: Instant) -> bool {
        if self.share.copies == 0 {
            return true;
        }
        let capacity = size.saturating_mul(u64::from(self.share.copies)).max(FLOOR) as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(hash) && buckets.len() >= MAX_BLOBS {
            let window = self.share.window;
            buckets.retain(|_, b| {
                b.refill(now, window);
                !b.full()
            });
            if buckets.len() >= MAX_BLOBS {
                // Every bucket is in use: a blob not seen lately is not
                // held back (a bound on memory, not on bytes).
                return true;
            }
        }
        let b = buckets.entry(*hash).or_insert(Bucket {
            tokens: capacity,
            capacity,
            last: now,
        });
        b.refill(now, self.share.window);
        if b.tokens >= bytes as f64 {
            b.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_node_sends_its_share_of_a_blob_then_waits_for_the_refill() {
        let shares = Shares::new(Share::default());
        let h = Hash::from_bytes([1; 32]);
        let t0 = Instant::now();
        let piece = 256 * 1024;
        let sent = (0..100)
            .take_while(|_| shares.take_at(&h, 4 * MIB, piece, t0))
            .count() as u64;
        assert_eq!(sent * piece, 8 * MIB, "two copies of 4 MiB");
        // A tenth of the window later, a fifth of a copy more.
        let later = t0 + Duration::from_secs(1);
        let more = (0..100)
            .take_while(|_| shares.take_at(&h, 4 * MIB, piece, later))
            .count() as u64;
        assert_eq!(more * piece, 4 * MIB / 5 / piece * piece);
        // Another blob has its own bucket.
        assert!(shares.take_at(&Hash::from_bytes([2; 32]), 4 * MIB, piece, later));
    }

    #[test]
    fn small_blobs_have_a_floor_and_no_share_means_no_limit() {
        let shares = Shares::new(Share::default());
        let h = Hash::from_bytes([1; 32]);
        let t0 = Instant::now();
        let sent = (0..5000)
            .take_while(|_| shares.take_at(&h, 1000, 1000, t0))
            .count();
        assert_eq!(sent as u64, FLOOR / 1000);
        let free = Shares::new(Share {
            copies: 0,
            ..Share::default()
        });
        assert!((0..1000).all(|_| free.take_at(&h, MIB, MIB, t0)));
    }

    #[test]
    fn the_buckets_are_bounded() {
        let shares = Shares::new(Share::default());
        let t0 = Instant::now();
        for i in 0..2 * MAX_BLOBS as u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            shares.take_at(&Hash::from_bytes(h), MIB, MIB, t0);
        }
        assert!(shares.buckets.lock().unwrap().len() <= MAX_BLOBS);
    }
}
