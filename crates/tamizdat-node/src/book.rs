//! The address book: the addresses this node has for reaching the network
//! (bootstrap, cards, peers it met), each scored by how dialling it went
//! and held back after a failure, longer each time. No I/O: the swarm task
//! reports dials and asks which addresses are due; the binary keeps the
//! book across restarts (`peers.json`).
//!
//! An address that failed is tried again after [`FIRST_BACKOFF`], doubling
//! up to [`MAX_BACKOFF`]; one that worked is tried first. A blocked
//! transport thus costs a few dials an hour, while the peer's other
//! addresses (another transport, a relay) are tried at once.

use std::{collections::BTreeMap, time::Duration};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// Addresses held at most; the worst-scored goes first when it is full.
pub const MAX_ADDRS: usize = 256;
/// Addresses written to disk at most.
pub const MAX_SAVED: usize = 64;
/// The wait after a first failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two tries of a failing address.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

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

#[derive(Debug, Clone)]
struct Known {
    successes: u32,
    failures: u32,
    last_ok: u64,
    /// Not dialled again before this (ms, the caller's clock).
    next_try: u64,
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

/// The scored addresses.
#[derive(Debug, Clone, Default)]
pub struct Book {
    known: BTreeMap<Multiaddr, Known>,
}

impl Book {
    /// A book of saved entries (unparsable addresses left out); all due now.
    pub fn from_saved(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut book = Self::default();
        for e in entries.into_iter().take(MAX_ADDRS) {
            if let Ok(addr) = e.addr.parse() {
                book.known.insert(
                    addr,
                    Known {
                        successes: e.successes,
                        failures: e.failures,
                        last_ok: e.last_ok,
                        next_try: 0,
                    },
                );
            }
        }
        book
    }

    /// Adds an address (due at once) unless it is known.
    pub fn learn(&mut self, addr: Multiaddr) {
        if self.known.contains_key(&addr) {
            return;
        }
        if self.known.len() >= MAX_ADDRS {
            // The worst goes: never worked, failed most.
            if let Some(worst) = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.score())
                .map(|(a, _)| a.clone())
            {
                self.known.remove(&worst);
            }
        }
        self.known.insert(
            addr,
            Known {
                successes: 0,
                failures: 0,
                last_ok: 0,
                next_try: 0,
            },
        );
    }

    /// A dial to `addr` connected at `now_ms` (`unix_s` for the record).
    pub fn succeeded(&mut self, addr: &Multiaddr, now_ms: u64, unix_s: u64) {
        if let Some(k) = self.known.get_mut(addr) {
            k.successes = k.successes.saturating_add(1);
            k.failures = 0;
            k.last_ok = unix_s;
            k.next_try = now_ms;
        }
    }

    /// A dial to `addr` failed at `now_ms`: it waits before the next try.
    pub fn failed(&mut self, addr: &Multiaddr, now_ms: u64) {
        if let Some(k) = self.known.get_mut(addr) {
            k.failures = k.failures.saturating_add(1);
            let wait = FIRST_BACKOFF
                .saturating_mul(1u32 << (k.failures - 1).min(16))
                .min(MAX_BACKOFF);
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

    #[test]
    fn a_failing_address_waits_longer_each_time_and_others_go_first() {
        let mut b = Book::default();
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
    fn the_book_is_bounded_and_saved_best_first() {
        let mut b = Book::default();
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
        let back = Book::from_saved(saved.clone());
        assert_eq!(back.saved(), saved);
        assert_eq!(back.due(0, usize::MAX).len(), MAX_SAVED);
        // Garbage addresses are left out.
        let junk = Entry {
            addr: "not an address".into(),
            successes: 1,
            failures: 0,
            last_ok: 0,
        };
        assert!(Book::from_saved([junk]).is_empty());
    }
}
