//! The address book: the addresses this node has for reaching the network
//! (bootstrap, cards, peers it met), each scored by how dialling it went
//! and held back after a failure, longer each time. No I/O: the swarm task
//! reports dials and asks which addresses are due; the binary keeps the
//! book across restarts (`peers.json`).
//!
//! An address that failed is tried again after [`FIRST_BACKOFF`], doubling
//! up to [`MAX_BACKOFF`] ([`PINNED_BACKOFF`] for the addresses the user
//! gave: bootstrap and cards, which are never dropped either); one that
//! worked is tried first. A blocked transport thus costs a few dials an
//! hour, while the peer's other addresses (another transport, a relay) are
//! tried at once. The backoff starts afresh at each start: failures saved
//! from an earlier run only rank an address. The node's own addresses are
//! never held.

use std::{collections::BTreeMap, time::Duration};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use serde::{Deserialize, Serialize};

/// Addresses held at most; the worst-scored goes first when it is full.
pub const MAX_ADDRS: usize = 256;
/// Addresses written to disk at most.
pub const MAX_SAVED: usize = 64;
/// The wait after a first failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two tries of a failing address.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest wait for a bootstrap or card address: the user gave it,
/// and its node may just be starting.
pub const PINNED_BACKOFF: Duration = Duration::from_secs(30);

/// What is known of one address, as it is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The multiaddr, usually ending in `/p2p/PEER_ID`.
    pub addr: String,
    /// Dials that connected.
    #[serde(default)]
    pub successes: u32,
    /// Dials that failed since the last success.
    #[serde(default)]
    pub failures: u32,
    /// When it last connected, Unix seconds (0: never).
    #[serde(default)]
    pub last_ok: u64,
}

#[derive(Debug, Clone, Default)]
struct Known {
    successes: u32,
    /// Failures since the last success (saved; ranks the address).
    failures: u32,
    /// Failures in a row in this run (sets the backoff).
    streak: u32,
    last_ok: u64,
    /// Not dialled again before this (ms, the caller's clock).
    next_try: u64,
    /// Given by the user (bootstrap, a card): never dropped.
    pinned: bool,
}

impl Known {
    /// Higher is better: an address that worked lately beats one that
    /// failed, and among failing ones the one failing least.
    fn score(&self) -> (bool, u64, std::cmp::Reverse<u32>, u32) {
        (
            self.failures == 0 && self.successes > 0,
            self.last_ok,
            std::cmp::Reverse(self.failures),
            self.successes,
        )
    }
}

/// The scored addresses of one node.
#[derive(Debug, Clone)]
pub struct Book {
    /// The node's own id: addresses naming it are never held.
    own: PeerId,
    known: BTreeMap<Multiaddr, Known>,
}

impl Book {
    /// An empty book for the node `own`.
    pub fn new(own: PeerId) -> Self {
        Self {
            own,
            known: BTreeMap::new(),
        }
    }

    /// A book of saved entries (unparsable addresses, and the node's own,
    /// left out); all due now.
    pub fn from_saved(own: PeerId, entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut book = Self::new(own);
        for e in entries.into_iter().take(MAX_ADDRS) {
            if let Ok(addr) = e.addr.parse::<Multiaddr>()
                && !book.is_own(&addr)
            {
                book.known.insert(
                    addr,
                    Known {
                        successes: e.successes,
                        failures: e.failures,
                        last_ok: e.last_ok,
                        ..Known::default()
                    },
                );
            }
        }
        book
    }

    fn is_own(&self, addr: &Multiaddr) -> bool {
        addr.iter().any(|p| p == Protocol::P2p(self.own))
    }

    /// Adds an address (due at once) unless it is known or the node's own.
    pub fn learn(&mut self, addr: Multiaddr) {
        self.insert(addr, false);
    }

    /// Adds an address the user gave (bootstrap, a card): never dropped,
    /// and never held back more than [`PINNED_BACKOFF`].
    pub fn pin(&mut self, addr: Multiaddr) {
        self.insert(addr, true);
    }

    fn insert(&mut self, addr: Multiaddr, pinned: bool) {
        if self.is_own(&addr) {
            return;
        }
        if let Some(k) = self.known.get_mut(&addr) {
            k.pinned |= pinned;
            return;
        }
        if self.known.len() >= MAX_ADDRS {
            // The worst that the user did not give goes: never worked,
            // failed most. When all were given, the new one waits.
            let worst = self
                .known
                .iter()
                .filter(|(_, k)| !k.pinned)
                .min_by_key(|(_, k)| k.score())
                .map(|(a, _)| a.clone());
            match worst {
                Some(w) => {
                    self.known.remove(&w);
                }
                None => return,
            }
        }
        self.known.insert(
            addr,
            Known {
                pinned,
                ..Known::default()
            },
        );
    }

    /// Drops an address (it turned out to be the node's own).
    pub fn forget(&mut self, addr: &Multiaddr) {
        self.known.remove(addr);
    }

    /// A dial to `addr` connected at `now_ms` (`unix_s` for the record).
    pub fn succeeded(&mut self, addr: &Multiaddr, now_ms: u64, unix_s: u64) {
        if let Some(k) = self.known.get_mut(addr) {
            k.successes = k.successes.saturating_add(1);
            k.failures = 0;
            k.streak = 0;
            k.last_ok = unix_s;
            k.next_try = now_ms;
        }
    }

    /// A dial to `addr` failed at `now_ms`: it waits before the next try.
    pub fn failed(&mut self, addr: &Multiaddr, now_ms: u64) {
        if let Some(k) = self.known.get_mut(addr) {
            k.failures = k.failures.saturating_add(1);
            k.streak = k.streak.saturating_add(1);
            let cap = if k.pinned {
                PINNED_BACKOFF
            } else {
                MAX_BACKOFF
            };
            let wait = FIRST_BACKOFF
                .saturating_mul(1u32 << (k.streak - 1).min(16))
                .min(cap);
            k.next_try = now_ms.saturating_add(wait.as_millis() as u64);
        }
    }

    /// Addresses due at `now_ms`, best first, at most `n`.
    pub fn due(&self, now_ms: u64, n: usize) -> Vec<Multiaddr> {
        let mut due: Vec<(&Multiaddr, &Known)> = self
            .known
            .iter()
            .filter(|(_, k)| k.next_try <= now_ms)
            .collect();
        due.sort_by_key(|(_, k)| std::cmp::Reverse(k.score()));
        due.into_iter().take(n).map(|(a, _)| a.clone()).collect()
    }

    /// The best [`MAX_SAVED`] entries, best first, for `peers.json`.
    pub fn saved(&self) -> Vec<Entry> {
        let mut all: Vec<(&Multiaddr, &Known)> = self.known.iter().collect();
        all.sort_by_key(|(_, k)| std::cmp::Reverse(k.score()));
        all.into_iter()
            .take(MAX_SAVED)
            .map(|(a, k)| Entry {
                addr: a.to_string(),
                successes: k.successes,
                failures: k.failures,
                last_ok: k.last_ok,
            })
            .collect()
    }

    /// How many addresses it holds.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u16) -> Multiaddr {
        format!("/ip4/192.0.2.1/tcp/{n}").parse().unwrap()
    }

    fn me() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn a_failing_address_waits_longer_each_time_and_others_go_first() {
        let mut b = Book::new(me());
        b.learn(a(1));
        b.learn(a(2));
        assert_eq!(b.due(0, 8).len(), 2, "new addresses are due at once");
        b.failed(&a(1), 0);
        assert_eq!(b.due(0, 8), vec![a(2)]);
        let first = FIRST_BACKOFF.as_millis() as u64;
        assert_eq!(b.due(first - 1, 8), vec![a(2)]);
        assert_eq!(b.due(first, 8).len(), 2, "due again after the backoff");
        // The second failure waits twice as long; it never passes the cap.
        b.failed(&a(1), first);
        assert!(!b.due(first + 2 * first - 1, 8).contains(&a(1)));
        assert!(b.due(first + 2 * first, 8).contains(&a(1)));
        for _ in 0..40 {
            b.failed(&a(1), 0);
        }
        assert!(b.due(MAX_BACKOFF.as_millis() as u64, 8).contains(&a(1)));
        // One that connected is tried first, and a success clears failures.
        b.succeeded(&a(2), 0, 1000);
        b.succeeded(&a(1), 0, 900);
        assert_eq!(b.due(0, 8), vec![a(2), a(1)]);
        assert_eq!(b.saved()[1].failures, 0);
    }

    #[test]
    fn given_addresses_stay_and_wait_less_the_nodes_own_are_never_held() {
        let own = PeerId::random();
        let mut b = Book::new(own);
        b.pin(a(1));
        for _ in 0..10 {
            b.failed(&a(1), 0);
        }
        assert!(
            b.due(PINNED_BACKOFF.as_millis() as u64, 8).contains(&a(1)),
            "a bootstrap address waits at most {PINNED_BACKOFF:?}"
        );
        // A full book of learnt addresses drops them, never a given one.
        for n in 2..(MAX_ADDRS as u16 + 50) {
            b.learn(a(n));
        }
        assert_eq!(b.len(), MAX_ADDRS);
        assert!(b.due(u64::MAX, usize::MAX).contains(&a(1)));
        // Our own address, however it comes, is never held.
        let mine = a(7).with(Protocol::P2p(own));
        b.learn(mine.clone());
        b.pin(mine.clone());
        let saved = vec![Entry {
            addr: mine.to_string(),
            successes: 3,
            failures: 0,
            last_ok: 1,
        }];
        assert!(!b.due(u64::MAX, usize::MAX).contains(&mine));
        assert!(Book::from_saved(own, saved).is_empty());
        // Failures of an earlier run rank, but do not hold back: the first
        // failure after a start waits the first backoff only.
        let before = vec![Entry {
            addr: a(3).to_string(),
            successes: 0,
            failures: 20,
            last_ok: 0,
        }];
        let mut b = Book::from_saved(own, before);
        b.failed(&a(3), 0);
        assert!(b.due(FIRST_BACKOFF.as_millis() as u64, 8).contains(&a(3)));
    }

    #[test]
    fn the_book_is_bounded_and_saved_best_first() {
        let mut b = Book::new(me());
        for n in 0..(MAX_ADDRS as u16 + 10) {
            b.learn(a(n));
            b.failed(&a(n), 0);
        }
        b.learn(a(9999));
        b.succeeded(&a(9999), 0, 5);
        assert_eq!(b.len(), MAX_ADDRS);
        let saved = b.saved();
        assert_eq!(saved.len(), MAX_SAVED);
        assert_eq!(saved[0].addr, a(9999).to_string());
        assert_eq!((saved[0].successes, saved[0].last_ok), (1, 5));
        // Saved and read back: the scores survive, everything is due.
        let back = Book::from_saved(me(), saved.clone());
        assert_eq!(back.saved(), saved);
        assert_eq!(back.due(0, usize::MAX).len(), MAX_SAVED);
        // Garbage addresses are left out.
        let junk = Entry {
            addr: "not an address".into(),
            successes: 1,
            failures: 0,
            last_ok: 0,
        };
        assert!(Book::from_saved(me(), [junk]).is_empty());
    }
}
