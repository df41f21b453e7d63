//! Deciding what to fetch from whom, without any I/O.
//!
//! A [`Plan`] holds one blob's state: which chunk groups are verified, which
//! are in flight with which provider, and how each provider has behaved.
//! The network code asks it for assignments, runs them, and reports back;
//! tests drive it directly.

use std::{collections::BTreeMap, time::Duration};

use tamizdat_store::{ChunkNum, ChunkRanges, GROUP_BYTES, chunk_count, range_bytes};

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

/// Soft failures (timeouts, broken streams) in a row before a provider is given up.
pub const MAX_SOFT_FAILURES: u32 = 3;
/// "Busy" answers in a row before a provider is given up.
pub const MAX_BUSY: u32 = 32;
/// The wait before asking a provider again after its first "busy"; it
/// doubles with each further one, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest wait before asking a busy provider again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The fetch state of one blob of known (proven) size.
#[derive(Debug, Clone)]
pub struct Plan<P: Ord + Clone> {
    size: u64,
    have: ChunkRanges,
    /// Pieces asked for and not answered yet, with who was asked.
    in_flight: Vec<(P, ChunkRanges)>,
    /// Pieces one provider may have in flight at once.
    per_provider: usize,
    /// "Busy" answers in a row, per provider.
    busy: BTreeMap<P, u32>,
    max_busy: u32,
    providers: BTreeMap<P, (usize, Standing)>,
    /// What partial holders are known to hold; a provider not named here
    /// holds the whole blob.
    partial: BTreeMap<P, ChunkRanges>,
    /// When set, pieces are handed out rarest first, ties broken by a mix
    /// of this seed and the piece's index, so that fetchers asking the
    /// same providers at once take different pieces (and can then trade
    /// them); otherwise lowest offsets first (a reader streaming a file).
    spread: Option<u64>,
    next_order: usize,
    piece_chunks: u64,
    /// Smaller pieces for some providers (those reached through a relay,
    /// whose circuit closes after so many bytes), in chunks.
    piece_cap: BTreeMap<P, u64>,
}

impl<P: Ord + Clone> Plan<P> {
    /// A plan for a blob of `size` bytes, of which `have` is already
    /// verified, handing out pieces of `piece_bytes` (rounded to groups).
    pub fn new(size: u64, have: ChunkRanges, piece_bytes: u64) -> Self {
        let groups = piece_bytes.div_ceil(GROUP_BYTES).max(1);
        Self {
            size,
            have,
            in_flight: Vec::new(),
            per_provider: 1,
            busy: BTreeMap::new(),
            max_busy: MAX_BUSY,
            providers: BTreeMap::new(),
            partial: BTreeMap::new(),
            spread: None,
            next_order: 0,
            piece_chunks: groups * GROUP_CHUNKS,
            piece_cap: BTreeMap::new(),
        }
    }

    /// Asks `p` for pieces of at most `bytes` (rounded up to whole chunk
    /// groups), or, with `None`, of the plan's size again. A fetch over a
    /// relayed connection asks for pieces small enough to finish inside one
    /// circuit.
    pub fn cap_pieces(&mut self, p: &P, bytes: Option<u64>) {
        match bytes {
            Some(b) => {
                let groups = b.div_ceil(GROUP_BYTES).max(1);
                self.piece_cap.insert(p.clone(), groups * GROUP_CHUNKS);
            }
            None => {
                self.piece_cap.remove(p);
            }
        }
    }

    /// The providers known, in the order they were added.
    pub fn providers(&self) -> Vec<P> {
        let mut all: Vec<_> = self.providers.iter().map(|(p, (o, _))| (*o, p)).collect();
        all.sort();
        all.into_iter().map(|(_, p)| p.clone()).collect()
    }

    fn all(&self) -> ChunkRanges {
        ChunkRanges::from(ChunkNum(0)..ChunkNum(chunk_count(self.size)))
    }

    /// Adds a provider of the whole blob; earlier ones are preferred (add
    /// directly connected peers first). One known as a partial holder now
    /// holds it all, and is asked again if it had been given up on.
    pub fn add_provider(&mut self, p: P) {
        if self.partial.remove(&p).is_some() {
            self.revive(&p);
        }
        if !self.providers.contains_key(&p) {
            self.providers
                .insert(p, (self.next_order, Standing::Good { failures: 0 }));
            self.next_order += 1;
        }
    }

    /// Adds a provider that holds `held` of the blob (a partial holder's
    /// "have"), or widens what it is known to hold: only those pieces are
    /// asked of it. One given up on for lack of data is asked again when
    /// it holds more. A provider of the whole blob that has not failed
    /// stays one.
    pub fn add_partial(&mut self, p: P, held: &ChunkRanges) {
        let held = held.intersection(&self.all());
        if held.is_empty() {
            return;
        }
        match self.providers.get(&p) {
            None => {
                self.providers
                    .insert(p.clone(), (self.next_order, Standing::Good { failures: 0 }));
                self.next_order += 1;
                self.partial.insert(p, held);
            }
            Some((_, standing)) => {
                let Some(known) = self.partial.get_mut(&p) else {
                    // Taken for a whole provider, it had nothing: it has
                    // pieces now.
                    if *standing == Standing::Exhausted {
                        self.partial.insert(p.clone(), held);
                        self.revive(&p);
                    }
                    return;
                };
                let wider = known.union(&held);
                if wider != *known {
                    *known = wider;
                    self.revive(&p);
                }
            }
        }
    }

    /// Asks a provider again that was given up on for lack of data or
    /// answers; one caught lying stays out.
    fn revive(&mut self, p: &P) {
        if let Some((_, s @ Standing::Exhausted)) = self.providers.get_mut(p) {
            *s = Standing::Good { failures: 0 };
            self.busy.remove(p);
        }
    }

    /// Hands pieces out rarest first, ties broken by `seed` (see
    /// [`Plan::assign`]).
    pub fn with_spread(mut self, seed: u64) -> Self {
        self.spread = Some(seed);
        self
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
        for (_, r) in &self.in_flight {
            out = out.difference(r);
        }
        out
    }

    /// Chunk ranges not verified yet.
    pub fn missing(&self) -> ChunkRanges {
        self.all().difference(&self.have)
    }

    /// Chunk ranges verified so far.
    pub fn verified(&self) -> &ChunkRanges {
        &self.have
    }

    /// Bytes verified so far.
    pub fn verified_bytes(&self) -> u64 {
        range_bytes(&self.have, self.size)
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
        let unassigned = self.unassigned();
        let mut idle: Vec<_> = self
            .providers
            .iter()
            .filter(|(p, (_, s))| {
                matches!(s, Standing::Good { .. })
                    && self.load(p) < self.per_provider
                    && !self.offer(p, &unassigned).is_empty()
            })
            .map(|(p, (order, s))| {
                let failures = match s {
                    Standing::Good { failures } => *failures,
                    _ => u32::MAX,
                };
                // A provider that keeps answering "busy" (or dropping
                // streams unanswered) goes behind those that deliver.
                let busy = self.busy.get(p).copied().unwrap_or(0);
                (failures, busy, *order, p.clone())
            })
            .collect();
        idle.sort();
        idle.into_iter().map(|(_, _, _, p)| p).collect()
    }

    /// Gives up on a provider after `n` "busy" answers in a row rather than
    /// [`MAX_BUSY`]: for a caller that has other providers to turn to (the
    /// replication core learns of new holders while this fetch waits).
    pub fn with_max_busy(mut self, n: u32) -> Self {
        self.max_busy = n;
        self
    }

    /// Lets each provider have up to `n` pieces in flight (streams are
    /// multiplexed, so one fast provider can be kept busy).
    pub fn with_per_provider(mut self, n: usize) -> Self {
        self.per_provider = n.max(1);
        self
    }

    fn load(&self, p: &P) -> usize {
        self.in_flight.iter().filter(|(q, _)| q == p).count()
    }

    /// Hands pieces of the unassigned ranges to providers with room, most
    /// reliable providers first, round after round until every provider is
    /// full or nothing is left. A partial holder is asked only for what it
    /// holds. Pieces go lowest offsets first, or, [`Plan::with_spread`],
    /// rarest first among the providers known.
    pub fn assign(&mut self) -> Vec<(P, ChunkRanges)> {
        let mut out = Vec::new();
        loop {
            let idle = self.idle();
            if idle.is_empty() {
                break;
            }
            let mut any = false;
            for p in idle {
                let unassigned = self.unassigned();
                let offer = self.offer(&p, &unassigned);
                let Some(piece) = self.pick(&offer) else {
                    continue;
                };
                let piece = match self.piece_cap.get(&p) {
                    Some(cap) => first_chunks(&piece, *cap, self.size),
                    None => piece,
                };
                self.in_flight.push((p.clone(), piece.clone()));
                out.push((p, piece));
                any = true;
            }
            if !any {
                break;
            }
        }
        out
    }

    /// The end game: nothing is left to hand out, and pieces in flight are
    /// late (the caller decides when: a provider that stalls would hold up
    /// the end of the fetch until its timeout). Each provider with room
    /// that holds a late piece is asked for it as well, at most one more
    /// request per piece; whichever answers first is kept.
    pub fn end_game(&mut self) -> Vec<(P, ChunkRanges)> {
        let mut out = Vec::new();
        if !self.unassigned().is_empty() {
            return out;
        }
        let providers: Vec<P> = self
            .providers
            .iter()
            .filter(|(_, (_, s))| matches!(s, Standing::Good { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        for p in providers {
            while self.load(&p) < self.per_provider {
                let late = self.in_flight.iter().find(|(q, r)| {
                    *q != p
                        && !self.have.is_superset(r)
                        && self.in_flight.iter().filter(|(_, o)| o == r).count() == 1
                        && self.partial.get(&p).is_none_or(|held| held.is_superset(r))
                        && self
                            .piece_cap
                            .get(&p)
                            .is_none_or(|cap| chunks_in(r, self.size) <= *cap)
                });
                let Some((_, r)) = late else {
                    break;
                };
                let r = r.clone();
                self.in_flight.push((p.clone(), r.clone()));
                out.push((p.clone(), r));
            }
        }
        out
    }

    /// What of `unassigned` provider `p` can be asked for.
    fn offer(&self, p: &P, unassigned: &ChunkRanges) -> ChunkRanges {
        match self.partial.get(p) {
            Some(held) => unassigned.intersection(held),
            None => unassigned.clone(),
        }
    }

    /// The next piece to ask for out of `offer`.
    fn pick(&self, offer: &ChunkRanges) -> Option<ChunkRanges> {
        let Some(seed) = self.spread else {
            return self.first_piece(offer);
        };
        let end = chunk_count(self.size);
        let whole = self
            .providers
            .iter()
            .filter(|(p, (_, s))| {
                matches!(s, Standing::Good { .. }) && !self.partial.contains_key(p)
            })
            .count();
        let mut best: Option<((usize, u64), ChunkRanges)> = None;
        let mut seen = u64::MAX;
        for r in offer.iter() {
            let (start, stop) = bounds(&r, self.size);
            for i in start / self.piece_chunks..stop.div_ceil(self.piece_chunks) {
                if i == seen {
                    continue;
                }
                seen = i;
                let lo = i * self.piece_chunks;
                let hi = (lo + self.piece_chunks).min(end);
                let piece = offer.intersection(&ChunkRanges::from(ChunkNum(lo)..ChunkNum(hi)));
                if piece.is_empty() {
                    continue;
                }
                let holders = whole
                    + self
                        .partial
                        .iter()
                        .filter(|(q, held)| {
                            held.is_superset(&piece)
                                && matches!(self.standing(q), Some(Standing::Good { .. }))
                        })
                        .count();
                let key = (holders, mix(seed, i));
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, piece));
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    fn first_piece(&self, offer: &ChunkRanges) -> Option<ChunkRanges> {
        let first = offer.iter().next()?;
        let (start, end) = bounds(&first, self.size);
        // Align the piece's end to a piece boundary so pieces tile evenly.
        let stop = ((start / self.piece_chunks) + 1) * self.piece_chunks;
        Some(ChunkRanges::from(ChunkNum(start)..ChunkNum(stop.min(end))))
    }

    fn settle(&mut self, p: &P, piece: &ChunkRanges) {
        if let Some(i) = self
            .in_flight
            .iter()
            .position(|(q, r)| q == p && r == piece)
        {
            self.in_flight.remove(i);
        }
    }

    /// A provider answered `piece`: `got` verified.
    pub fn done(&mut self, p: &P, piece: &ChunkRanges, got: &ChunkRanges) {
        self.have |= got.clone();
        self.settle(p, piece);
        self.busy.remove(p);
        if let Some((_, Standing::Good { failures })) = self.providers.get_mut(p) {
            *failures = 0;
        }
    }

    /// How long to wait before the next request to `p`: nothing, unless it
    /// answered "busy" lately (then 20 ms, doubling per busy answer in a
    /// row, at most 2 s), so that a loaded provider is not hammered.
    pub fn backoff(&self, p: &P) -> Duration {
        match self.busy.get(p) {
            None | Some(0) => Duration::ZERO,
            Some(n) => FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        }
    }

    /// A provider failed on `piece`; whatever of it verified before that is
    /// in `got` and is kept. A stream that broke off after it brought new
    /// verified groups (a relay's circuit reaching its byte or time cap) is
    /// not held against the provider: it is asked again, and since each
    /// such failure adds to what is verified, there are at most as many as
    /// the blob has groups.
    pub fn failed(&mut self, p: &P, piece: &ChunkRanges, got: &ChunkRanges, why: Failure) {
        let progress = !self.have.is_superset(got);
        self.have |= got.clone();
        self.settle(p, piece);
        let Some((_, standing)) = self.providers.get_mut(p) else {
            return;
        };
        if why == Failure::Busy {
            // Busy is not misbehaviour: retry, up to a bound.
            let busy = self.busy.entry(p.clone()).or_default();
            *busy += 1;
            if *busy > self.max_busy {
                *standing = Standing::Exhausted;
            }
            return;
        }
        *standing = match (why, &standing) {
            (Failure::Corrupt | Failure::WrongSize, _) => Standing::Bad(why),
            (Failure::Missing, _) => {
                // A partial holder may have been asked for more than it
                // holds now (what it said it held was a hint): only that
                // piece is off its list.
                if let Some(held) = self.partial.get_mut(p) {
                    *held = held.difference(piece);
                    if !held.is_empty() {
                        return;
                    }
                }
                Standing::Exhausted
            }
            (Failure::Timeout, Standing::Good { .. }) if progress => Standing::Good { failures: 0 },
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

/// The first `n` chunks of `r`.
fn first_chunks(r: &ChunkRanges, n: u64, size: u64) -> ChunkRanges {
    let mut out = ChunkRanges::empty();
    let mut left = n;
    for range in r.iter() {
        if left == 0 {
            break;
        }
        let (start, end) = bounds(&range, size);
        let stop = end.min(start.saturating_add(left));
        out |= ChunkRanges::from(ChunkNum(start)..ChunkNum(stop));
        left -= stop - start;
    }
    out
}

/// How many chunks `r` holds of a blob of `size` bytes.
fn chunks_in(r: &ChunkRanges, size: u64) -> u64 {
    r.iter()
        .map(|range| {
            let (start, end) = bounds(&range, size);
            end.saturating_sub(start)
        })
        .sum()
}

/// splitmix64 of a seed and a piece index: a per-fetcher order of pieces.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bounds(r: &range_set::RangeSetRange<&ChunkNum>, size: u64) -> (u64, u64) {
    match r {
        range_set::RangeSetRange::Range(r) => (r.start.0, r.end.0),
        range_set::RangeSetRange::RangeFrom(r) => (r.start.0, chunk_count(size)),
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
        plan.done(&2, &chunks(1024..2048), &chunks(1024..2048));
        assert_eq!(plan.assign(), vec![(2, chunks(3072..4096))]);
        // Drive it to the end.
        let mut rounds = 0;
        while !plan.is_complete() {
            let inflight = plan.in_flight.clone();
            for (p, r) in inflight {
                plan.done(&p, &r, &r);
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
        plan.failed(&"liar", &chunks(0..1024), &chunks(0..16), Failure::Corrupt);
        assert_eq!(
            plan.standing(&"liar"),
            Some(&Standing::Bad(Failure::Corrupt))
        );
        assert_eq!(plan.bad(), vec!["liar"]);
        plan.done(&"honest", &chunks(1024..2048), &chunks(1024..2048));
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
        plan.done(&7, &chunks(2048..3072), &chunks(2048..3072));
        assert!(plan.is_complete());
        assert!(!plan.is_stuck());
    }

    #[test]
    fn timeouts_are_forgiven_a_few_times_then_the_fetch_is_stuck() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), MIB);
        plan.add_provider(1);
        for _ in 0..MAX_SOFT_FAILURES {
            assert_eq!(plan.assign().len(), 1);
            let piece = chunks(0..1024);
            plan.failed(&1, &piece, &ChunkRanges::empty(), Failure::Timeout);
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
    fn a_stream_cut_after_new_groups_resumes_from_them_as_often_as_it_takes() {
        // A relay closing its circuit after each 1 MiB: 8 cuts of a 4 MiB
        // piece, each with one more MiB verified, then the rest.
        let mut plan = Plan::new(8 * MIB, ChunkRanges::empty(), 4 * MIB);
        plan.add_provider(1);
        for i in 0..8u64 {
            let assigned = plan.assign();
            assert_eq!(assigned.len(), 1, "cut {i}: asked again");
            let (p, piece) = &assigned[0];
            let first = piece.iter().next().unwrap();
            assert_eq!(bounds(&first, 8 * MIB).0, i * 1024, "from what verified");
            plan.failed(
                p,
                piece,
                &chunks(i * 1024..(i + 1) * 1024),
                Failure::Timeout,
            );
            assert_eq!(plan.standing(&1), Some(&Standing::Good { failures: 0 }));
        }
        assert!(plan.is_complete());
        // A cut that brought nothing new still counts.
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), MIB);
        plan.add_provider(1);
        let (_, piece) = plan.assign().remove(0);
        plan.failed(&1, &piece, &chunks(0..16), Failure::Timeout);
        let (_, piece) = plan.assign().remove(0);
        assert_eq!(piece, chunks(16..1024), "resumes after the kept group");
        for _ in 0..MAX_SOFT_FAILURES {
            plan.failed(&1, &piece, &chunks(0..16), Failure::Timeout);
            plan.assign();
        }
        assert_eq!(plan.standing(&1), Some(&Standing::Exhausted));
    }

    #[test]
    fn a_capped_provider_gets_small_pieces_and_no_large_late_ones() {
        let mut plan = Plan::new(4 * MIB, ChunkRanges::empty(), MIB).with_per_provider(2);
        plan.add_provider("direct");
        plan.add_provider("relayed");
        plan.cap_pieces(&"relayed", Some(64 * 1024));
        assert_eq!(plan.providers(), vec!["direct", "relayed"]);
        let assigned = plan.assign();
        assert_eq!(
            assigned,
            vec![
                ("direct", chunks(0..1024)),
                ("relayed", chunks(1024..1088)),
                ("direct", chunks(1088..2048)),
                ("relayed", chunks(2048..2112)),
            ]
        );
        // Capped to 64 KiB, "relayed" is not asked for the direct
        // provider's 1 MiB pieces in the end game.
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), MIB);
        plan.add_provider("direct");
        plan.add_provider("relayed");
        plan.cap_pieces(&"relayed", Some(64 * 1024));
        assert_eq!(plan.assign(), vec![("direct", chunks(0..1024))]);
        assert!(plan.end_game().is_empty());
        plan.cap_pieces(&"relayed", None);
        assert_eq!(plan.end_game(), vec![("relayed", chunks(0..1024))]);
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
            plan.done(&0, &next[0].1, &next[0].1);
        }
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[3], chunks(48..49));
    }

    #[test]
    fn one_fast_provider_can_carry_several_pieces_at_once() {
        let mut plan = Plan::new(8 * MIB, ChunkRanges::empty(), MIB).with_per_provider(3);
        plan.add_provider(1);
        let work = plan.assign();
        assert_eq!(work.len(), 3);
        assert_eq!(work[2], (1, chunks(2048..3072)));
        plan.done(&1, &work[1].1, &work[1].1);
        assert_eq!(plan.assign(), vec![(1, chunks(3072..4096))]);
    }

    #[test]
    fn an_impatient_plan_leaves_a_busy_provider_for_the_others() {
        let mut plan = Plan::new(10 * GROUP_BYTES, ChunkRanges::empty(), GROUP_BYTES)
            .with_per_provider(1)
            .with_max_busy(2);
        plan.add_provider(1u8);
        for _ in 0..3 {
            let (p, piece) = plan.assign().pop().unwrap();
            assert_eq!(p, 1);
            plan.failed(&p, &piece, &ChunkRanges::empty(), Failure::Busy);
        }
        assert_eq!(plan.standing(&1), Some(&Standing::Exhausted));
        assert!(
            plan.is_stuck(),
            "nobody left to ask: the caller turns elsewhere"
        );
    }

    #[test]
    fn busy_providers_are_asked_again_later_and_later() {
        let mut plan = Plan::new(10 * GROUP_BYTES, ChunkRanges::empty(), GROUP_BYTES);
        plan.add_provider(1u8);
        assert_eq!(plan.backoff(&1), Duration::ZERO);
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (p, piece) = plan.assign().pop().unwrap();
            plan.failed(&p, &piece, &ChunkRanges::empty(), Failure::Busy);
            waits.push(plan.backoff(&1));
        }
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        // One good answer and it is asked at once again.
        let (p, piece) = plan.assign().pop().unwrap();
        plan.done(&p, &piece, &piece);
        assert_eq!(plan.backoff(&1), Duration::ZERO);
    }

    #[test]
    fn a_provider_that_keeps_saying_busy_goes_behind_one_that_delivers() {
        let mut plan = Plan::new(4 * GROUP_BYTES, ChunkRanges::empty(), GROUP_BYTES);
        plan.add_provider(1u8);
        plan.add_provider(2u8);
        let first = plan.assign();
        assert_eq!(first[0].0, 1, "in the order they were added");
        for (p, piece) in first {
            if p == 1 {
                plan.failed(&p, &piece, &ChunkRanges::empty(), Failure::Busy);
            } else {
                plan.done(&p, &piece, &piece);
            }
        }
        assert_eq!(
            plan.assign()[0].0,
            2,
            "the one that delivered comes first now"
        );
    }

    const PIECE: u64 = 256 * 1024;
    /// Chunks in one 256 KiB piece.
    const PC: u64 = PIECE / 1024;

    #[test]
    fn a_partial_holder_is_asked_only_for_what_it_holds() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE).with_per_provider(4);
        plan.add_partial(1u8, &chunks(PC..2 * PC));
        assert_eq!(plan.assign(), vec![(1, chunks(PC..2 * PC))]);
        assert!(plan.assign().is_empty(), "it holds nothing else");
        plan.done(&1, &chunks(PC..2 * PC), &chunks(PC..2 * PC));
        assert!(plan.is_stuck(), "the rest must come from someone else");
        // It says it holds more: it is asked for that.
        plan.add_partial(1u8, &chunks(0..PC));
        assert_eq!(plan.assign(), vec![(1, chunks(0..PC))]);
        // Then it holds it all.
        plan.add_provider(1u8);
        assert_eq!(plan.assign().len(), 2);
    }

    #[test]
    fn spread_plans_take_the_rarest_piece_first() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE).with_spread(7);
        plan.add_provider(1u8);
        // Provider 2 holds pieces 0 to 2; piece 3 is held by provider 1 alone.
        plan.add_partial(2u8, &chunks(0..3 * PC));
        let first = plan.assign();
        assert_eq!(first[0], (1, chunks(3 * PC..4 * PC)), "the rarest first");
        assert_eq!(first[1].0, 2);
        assert!(chunks(0..3 * PC).is_superset(&first[1].1));
    }

    #[test]
    fn fetchers_with_other_seeds_start_on_other_pieces() {
        // Eight fetchers of one 1 MiB blob from one provider: lowest offset
        // first, all would ask for piece 0; spread, the four pieces each
        // come first for some fetcher.
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..8u64 {
            let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE).with_spread(seed * 7919);
            plan.add_provider(0u8);
            let (_, piece) = plan.assign().remove(0);
            firsts.insert(format!("{piece:?}"));
        }
        assert!(firsts.len() >= 3, "first pieces: {firsts:?}");
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE);
        plan.add_provider(0u8);
        assert_eq!(
            plan.assign(),
            vec![(0, chunks(0..PC))],
            "a reader streams in order"
        );
    }

    #[test]
    fn missing_from_a_partial_holder_costs_only_that_piece() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE).with_per_provider(1);
        plan.add_partial(1u8, &chunks(0..2 * PC));
        let (p, piece) = plan.assign().remove(0);
        plan.failed(&p, &piece, &ChunkRanges::empty(), Failure::Missing);
        assert_eq!(plan.standing(&1), Some(&Standing::Good { failures: 0 }));
        let (_, next) = plan.assign().remove(0);
        assert_ne!(next, piece, "not asked for it again");
        plan.failed(&1, &next, &ChunkRanges::empty(), Failure::Missing);
        assert_eq!(plan.standing(&1), Some(&Standing::Exhausted));
        // A whole provider that says it has nothing is given up on at once.
        plan.add_provider(2u8);
        let (p, piece) = plan.assign().remove(0);
        assert_eq!(p, 2);
        plan.failed(&2, &piece, &ChunkRanges::empty(), Failure::Missing);
        assert_eq!(plan.standing(&2), Some(&Standing::Exhausted));
    }

    #[test]
    fn in_the_end_game_a_late_piece_is_asked_of_another_provider_too() {
        let mut plan = Plan::new(MIB, ChunkRanges::empty(), PIECE).with_per_provider(1);
        plan.add_provider(1u8);
        plan.add_provider(2u8);
        let first = plan.assign();
        assert_eq!(first.len(), 2);
        assert!(plan.end_game().is_empty(), "pieces are still to hand out");
        // Provider 1 delivers everything but the piece provider 2 sits on.
        let stuck = first[1].1.clone();
        let mut piece = first[0].1.clone();
        loop {
            plan.done(&1, &piece, &piece);
            match plan.assign().pop() {
                Some((_, next)) => piece = next,
                None => break,
            }
        }
        assert!(!plan.is_complete());
        assert_eq!(plan.end_game(), vec![(1, stuck.clone())]);
        assert!(plan.end_game().is_empty(), "one more request per piece");
        plan.done(&1, &stuck, &stuck);
        assert!(plan.is_complete());
        assert!(
            plan.end_game().is_empty(),
            "what verified is not asked again"
        );
        // The staller's answer, whenever it comes, changes nothing.
        plan.failed(&2, &stuck, &ChunkRanges::empty(), Failure::Timeout);
        assert!(plan.is_complete());
    }
}
