//! Deciding what to fetch from whom, without any I/O.
//!
//! A [`Plan`] holds one blob's state: which chunk groups are verified, which
//! are in flight with which provider, and how each provider has behaved.
//! The network code asks it for assignments, runs them, and reports back;
//! tests drive it directly.

use std::collections::BTreeMap;

use tamizdat_store::{ChunkNum, ChunkRanges, GROUP_BYTES};

/// Chunks (1 KiB) per chunk group (16 KiB).
const GROUP_CHUNKS: u64 = GROUP_BYTES / 1024;

/// How a request to a provider ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It sent bytes that did not verify: it is never asked again.
    Corrupt,
    /// It claimed a size that disagrees with the proven one.
    WrongSize,
    /// It did not answer in time, or the stream broke off.
    Timeout,
    /// It does not have the blob, or not the part asked for.
    Missing,
    /// It is busy.
    Busy,
}

/// What is known of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Usable.
    Good {
        /// Requests that failed for reasons that may pass.
        failures: u32,
    },
    /// Caught lying; never asked again.
    Bad(Failure),
    /// Failed too often, or said it has nothing.
    Exhausted,
}

/// Soft failures (timeouts, busy) before a provider is given up.
pub const MAX_SOFT_FAILURES: u32 = 3;

/// The fetch state of one blob of known (proven) size.
#[derive(Debug, Clone)]
pub struct Plan<P: Ord + Clone> {
    size: u64,
    have: ChunkRanges,
    in_flight: BTreeMap<P, ChunkRanges>,
    providers: BTreeMap<P, (usize, Standing)>,
    next_order: usize,
    piece_chunks: u64,
}

impl<P: Ord + Clone> Plan<P> {
    /// A plan for a blob of `size` bytes, of which `have` is already
    /// verified, handing out pieces of `piece_bytes` (rounded to groups).
    pub fn new(size: u64, have: ChunkRanges, piece_bytes: u64) -> Self {
        let groups = piece_bytes.div_ceil(GROUP_BYTES).max(1);
        Self {
            size,
            have,
            in_flight: BTreeMap::new(),
            providers: BTreeMap::new(),
            next_order: 0,
            piece_chunks: groups * GROUP_CHUNKS,
        }
    }

    fn all(&self) -> ChunkRanges {
        ChunkRanges::from(ChunkNum(0)..ChunkNum(self.size.div_ceil(1024).max(1)))
    }

    /// Adds a provider; earlier ones are preferred (add directly connected
    /// peers first). Adding a known one changes nothing.
    pub fn add_provider(&mut self, p: P) {
        if !self.providers.contains_key(&p) {
            self.providers
                .insert(p, (self.next_order, Standing::Good { failures: 0 }));
            self.next_order += 1;
        }
    }

    /// What is known of a provider.
    pub fn standing(&self, p: &P) -> Option<&Standing> {
        self.providers.get(p).map(|(_, s)| s)
    }

    /// Providers caught sending bad data.
    pub fn bad(&self) -> Vec<P> {
        self.providers
            .iter()
            .filter(|(_, (_, s))| matches!(s, Standing::Bad(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Chunk ranges neither verified nor in flight.
    pub fn unassigned(&self) -> ChunkRanges {
        let mut out = self.all().difference(&self.have);
        for r in self.in_flight.values() {
            out = out.difference(r);
        }
        out
    }

    /// Chunk ranges not verified yet.
    pub fn missing(&self) -> ChunkRanges {
        self.all().difference(&self.have)
    }

    /// Bytes verified so far.
    pub fn verified_bytes(&self) -> u64 {
        let mut total = 0;
        for r in self.have.iter() {
            let (s, e) = bounds(&r, self.size);
            total += (e * 1024).min(self.size) - (s * 1024).min(self.size);
        }
        total
    }

    /// Every byte is verified.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// Nothing in flight, something missing, and nobody left to ask.
    pub fn is_stuck(&self) -> bool {
        !self.is_complete() && self.in_flight.is_empty() && self.idle().is_empty()
    }

    fn idle(&self) -> Vec<P> {
        let mut idle: Vec<_> = self
            .providers
            .iter()
            .filter(|(p, (_, s))| {
                matches!(s, Standing::Good { .. }) && !self.in_flight.contains_key(*p)
            })
            .map(|(p, (order, s))| {
                let failures = match s {
                    Standing::Good { failures } => *failures,
                    _ => u32::MAX,
                };
                (failures, *order, p.clone())
            })
            .collect();
        idle.sort();
        idle.into_iter().map(|(_, _, p)| p).collect()
    }

    /// Hands one piece of the unassigned ranges to each idle provider,
    /// lowest offsets first, most reliable providers first.
    pub fn assign(&mut self) -> Vec<(P, ChunkRanges)> {
        let mut out = Vec::new();
        for p in self.idle() {
            let Some(piece) = self.first_piece() else {
                break;
            };
            self.in_flight.insert(p.clone(), piece.clone());
            out.push((p, piece));
        }
        out
    }

    fn first_piece(&self) -> Option<ChunkRanges> {
        let unassigned = self.unassigned();
        let first = unassigned.iter().next()?;
        let (start, end) = bounds(&first, self.size);
        // Align the piece's end to a piece boundary so pieces tile evenly.
        let stop = ((start / self.piece_chunks) + 1) * self.piece_chunks;
        Some(ChunkRanges::from(ChunkNum(start)..ChunkNum(stop.min(end))))
    }

    /// A provider delivered (part of) its piece: `got` verified.
    pub fn done(&mut self, p: &P, got: &ChunkRanges) {
        self.have |= got.clone();
        self.in_flight.remove(p);
        if let Some((_, Standing::Good { failures })) = self.providers.get_mut(p) {
            *failures = 0;
        }
    }

    /// A provider failed; whatever of its piece verified before that is in
    /// `got` and is kept.
    pub fn failed(&mut self, p: &P, got: &ChunkRanges, why: Failure) {
        self.have |= got.clone();
        self.in_flight.remove(p);
        let Some((_, standing)) = self.providers.get_mut(p) else {
            return;
        };
        *standing = match (why, &standing) {
            (Failure::Corrupt | Failure::WrongSize, _) => Standing::Bad(why),
            (Failure::Missing, _) => Standing::Exhausted,
            (_, Standing::Good { failures }) if failures + 1 >= MAX_SOFT_FAILURES => {
                Standing::Exhausted
            }
            (_, Standing::Good { failures }) => Standing::Good {
                failures: failures + 1,
            },
            (_, other) => (*other).clone(),
        };
    }
}

fn bounds(r: &range_set::RangeSetRange<&ChunkNum>, size: u64) -> (u64, u64) {
    match r {
        range_set::RangeSetRange::Range(r) => (r.start.0, r.end.0),
        range_set::RangeSetRange::RangeFrom(r) => (r.start.0, size.div_ceil(1024).max(1)),
    }
}

use range_collections::range_set;

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn chunks(r: std::ops::Range<u64>) -> ChunkRanges {
        ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end))
    }

    #[test]
    fn several_providers_share_a_large_blob_in_pieces() {
        let mut plan = Plan::new(10 * MIB, ChunkRanges::empty(), MIB);
        for p in [1, 2, 3] {
            plan.add_provider(p);
        }
        let first = plan.assign();
        assert_eq!(first.len(), 3);
        assert_eq!(first[0], (1, chunks(0..1024)));
        assert_eq!(first[1], (2, chunks(1024..2048)));
        assert_eq!(first[2], (3, chunks(2048..3072)));
        assert!(plan.assign().is_empty(), "everyone is busy");
        plan.done(&2, &chunks(1024..2048));
        assert_eq!(plan.assign(), vec![(2, chunks(3072..4096))]);
        // Drive it to the end.
        let mut rounds = 0;
        while !plan.is_complete() {
            let inflight: Vec<_> = plan.in_flight.clone().into_iter().collect();
            for (p, r) in inflight {
                plan.done(&p, &r);
            }
            plan.assign();
            rounds += 1;
            assert!(rounds < 20);
        }
        assert_eq!(plan.verified_bytes(), 10 * MIB);
    }

    #[test]
    fn a_liar_is_dropped_and_its_piece_goes_to_an_honest_provider() {
        let mut plan = Plan::new(4 * MIB, ChunkRanges::empty(), MIB);
        plan.add_provider("liar");
        plan.add_provider("honest");
        let assigned = plan.assign();
        assert_eq!(assigned[0].0, "liar");
        // The liar's first group verified, the second did not.
        plan.failed(&"liar", &chunks(0..16), Failure::Corrupt);
        assert_eq!(
            plan.standing(&"liar"),
            Some(&Standing::Bad(Failure::Corrupt))
        );
        assert_eq!(plan.bad(), vec!["liar"]);
        plan.done(&"honest", &chunks(1024..2048));
        let next = plan.assign();
        assert_eq!(
            next,
            vec![("honest", chunks(16..1024))],
            "resumes after the kept group"
        );
    }

    #[test]
    fn resuming_skips_what_is_verified() {
        let have = chunks(0..2048);
        let mut plan = Plan::new(3 * MIB, have, MIB);
        plan.add_provider(7);
        assert_eq!(plan.assign(), vec![(7, chunks(2048..3072))]);
        plan.done(&7, &chunks(2048..3072));
        assert!(plan.is_complete());
        assert!(!plan.is_stuck());
    }

    #[test]
    fn timeouts_are_forgiven_a_few_times_then_the_fetch_is_stuck() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), MIB);
        plan.add_provider(1);
        for _ in 0..MAX_SOFT_FAILURES {
            assert_eq!(plan.assign().len(), 1);
            plan.failed(&1, &ChunkRanges::empty(), Failure::Timeout);
        }
        assert_eq!(plan.standing(&1), Some(&Standing::Exhausted));
        assert!(plan.assign().is_empty());
        assert!(plan.is_stuck());
        // A new provider un-sticks it.
        plan.add_provider(2);
        assert!(!plan.is_stuck());
        assert_eq!(plan.assign().len(), 1);
    }

    #[test]
    fn the_last_partial_group_is_covered() {
        let size = 3 * 16384 + 5;
        let mut plan = Plan::new(size, ChunkRanges::empty(), 16384);
        plan.add_provider(0);
        let mut pieces = Vec::new();
        while !plan.is_complete() {
            let next = plan.assign();
            assert_eq!(next.len(), 1);
            pieces.push(next[0].1.clone());
            plan.done(&0, &next[0].1);
        }
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[3], chunks(48..49));
    }
}
