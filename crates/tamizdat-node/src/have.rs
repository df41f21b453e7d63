//! Have hints: neighbours telling each other which blobs, or which pieces
//! of a blob, they hold now, so that a new article's followers fetch from
//! each other as soon as one holds a piece rather than all from the outlet.
//!
//! - `/tamizdat/have/2` names a blob held whole or the pieces held of it
//!   ([`Held`]); `/tamizdat/have/1`, whole blobs only, is still read, and
//!   sent to peers that do not speak version 2.
//! - [`Holders`] remembers what neighbours said (bounded), and wakes the
//!   fetch of a blob when someone says they hold more of it.
//!
//! A hint is only a hint: pieces are fetched with the blob protocol and
//! verified like any other bytes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use tamizdat_sign::Digest;
use tamizdat_store::{ChunkNum, ChunkRanges, GROUP_BYTES, Hash, chunk_count};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::{node::Client, replicate::Event};

/// Whole blobs only: a list of hashes.
pub(crate) const HAVE_1: StreamProtocol = StreamProtocol::new("/tamizdat/have/1");
/// Whole blobs and pieces of blobs: a list of [`Have`].
pub(crate) const HAVE_2: StreamProtocol = StreamProtocol::new("/tamizdat/have/2");
/// Blobs named in one have message.
pub const MAX_HAVE: usize = 64;
/// Bits in one [`Held`]: a blob's pieces are told in at most this many
/// units (1 KiB for a 2 GiB blob).
pub const MAX_BITS: u64 = 8192;
/// The smallest unit of a [`Held`], in 1 KiB chunks: one 16 KiB group,
/// the unit the store verifies in.
const MIN_UNIT: u64 = GROUP_BYTES / 1024;
/// Have messages read at once, in all: a new article's pieces are told by
/// every neighbour within a few milliseconds, so this is sized for a burst
/// from all of them (at most 128 × 70 KiB in memory).
const HAVE_STREAMS: usize = 128;
/// Have messages read at once from one peer.
const HAVE_STREAMS_PER_PEER: usize = 4;
/// Peers told at most, per message. Each is a stream of its own: in a
/// mesh where everyone is connected to everyone, telling all of them every
/// piece cost more streams than the article's transfers (some 14,000 for a
/// 1 MiB article among 50 nodes); those still fetching the blob come first,
/// then others at random, so a fetcher still hears of most holders.
const MAX_HAVE_PEERS: usize = 16;
/// How long sending or reading one have message may take.
const HAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest have message read.
const MAX_MESSAGE: usize = MAX_HAVE * (32 + 1 + 5 + 2 + MAX_BITS as usize / 8) + 8;
/// Blobs whose holders are remembered.
const MAX_BLOBS: usize = 1024;
/// Holders remembered per blob.
const MAX_PEERS_PER_BLOB: usize = 64;

/// One entry of a `/tamizdat/have/2` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// The blob.
    pub hash: Digest,
    /// The pieces held, or `None` for the whole blob.
    pub held: Option<Held>,
}

/// Pieces of a blob held: bit `i` (least significant bit of byte `i / 8`
/// first) says that chunks `i * unit .. (i + 1) * unit` are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Chunks (1 KiB) per bit: a power of two, at least 16 (one group).
    pub unit: u32,
    /// At most [`MAX_BITS`] bits.
    pub bits: Vec<u8>,
}

impl Held {
    /// What of a blob of `size` bytes `have` covers, in whole units.
    pub fn of(have: &ChunkRanges, size: u64) -> Self {
        let n = chunk_count(size);
        let unit = n.div_ceil(MAX_BITS).next_power_of_two().max(MIN_UNIT);
        let units = n.div_ceil(unit);
        let mut bits = vec![0u8; units.div_ceil(8) as usize];
        for i in 0..units {
            let r = ChunkRanges::from(ChunkNum(i * unit)..ChunkNum(((i + 1) * unit).min(n)));
            if have.is_superset(&r) {
                bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        Self {
            unit: u32::try_from(unit).unwrap_or(u32::MAX),
            bits,
        }
    }

    /// The chunk ranges it names (the last unit may reach past the blob's
    /// end: a fetch clips it), or `None` when it is malformed.
    pub fn ranges(&self) -> Option<ChunkRanges> {
        let unit = u64::from(self.unit);
        if !unit.is_power_of_two() || unit < MIN_UNIT || self.bits.len() as u64 > MAX_BITS / 8 {
            return None;
        }
        let mut out = ChunkRanges::empty();
        let mut run: Option<u64> = None;
        let total = self.bits.len() as u64 * 8;
        for i in 0..=total {
            let set = i < total && self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0;
            match (set, run) {
                (true, None) => run = Some(i),
                (false, Some(start)) => {
                    out |= ChunkRanges::from(ChunkNum(start * unit)..ChunkNum(i * unit));
                    run = None;
                }
                _ => {}
            }
        }
        Some(out)
    }
}

/// What neighbours said they hold, per blob, for the fetcher; bounded.
#[derive(Default)]
pub(crate) struct Holders {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    blobs: HashMap<Hash, Blob>,
    /// Counts notes, to tell the oldest blob.
    clock: u64,
}

impl Inner {
    /// The entry of `hash`, made if there is room: room is made from blobs
    /// nobody is fetching, the one told of longest ago first.
    fn entry(&mut self, hash: Hash) -> Option<&mut Blob> {
        self.clock += 1;
        if !self.blobs.contains_key(&hash) && self.blobs.len() >= MAX_BLOBS {
            let victim = self
                .blobs
                .iter()
                .filter(|(_, b)| b.changed.receiver_count() == 0)
                .min_by_key(|(_, b)| b.touched)
                .map(|(h, _)| *h)?;
            self.blobs.remove(&victim);
        }
        let clock = self.clock;
        let blob = self.blobs.entry(hash).or_insert_with(|| Blob::new(clock));
        blob.touched = clock;
        Some(blob)
    }
}

struct Blob {
    /// Each holder: `None` holds it whole, `Some` those chunks.
    peers: HashMap<PeerId, Option<ChunkRanges>>,
    /// Bumped on every change; a fetch of the blob waits on it.
    changed: watch::Sender<u64>,
    /// When it was last told of (a counter), for eviction.
    touched: u64,
}

impl Blob {
    fn new(touched: u64) -> Self {
        Self {
            peers: HashMap::new(),
            changed: watch::channel(0).0,
            touched,
        }
    }
}

impl Holders {
    /// `peer` holds `held` of `hash` (`None`: all of it).
    pub(crate) fn note(&self, hash: Hash, peer: PeerId, held: Option<ChunkRanges>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(blob) = inner.entry(hash) else {
            return;
        };
        let known = blob.peers.get(&peer).cloned();
        let now = match (known, held) {
            (Some(None), _) => return,
            (None, _) if blob.peers.len() >= MAX_PEERS_PER_BLOB => return,
            (None, held) => held,
            (Some(Some(_)), None) => None,
            (Some(Some(old)), Some(new)) => {
                let wider = old.union(&new);
                if wider == old {
                    return;
                }
                Some(wider)
            }
        };
        blob.peers.insert(peer, now);
        blob.changed.send_modify(|v| *v += 1);
    }

    /// What is known of `hash`'s holders.
    pub(crate) fn of(&self, hash: &Hash) -> Vec<(PeerId, Option<ChunkRanges>)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .blobs
            .get(hash)
            .map(|b| b.peers.iter().map(|(p, h)| (*p, h.clone())).collect())
            .unwrap_or_default()
    }

    /// A receiver that changes whenever a holder of `hash` is told of
    /// (one that never changes when there is no room to remember it).
    pub(crate) fn watch(&self, hash: Hash) -> watch::Receiver<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.entry(hash) {
            Some(blob) => blob.changed.subscribe(),
            None => watch::channel(0).1,
        }
    }

    /// The blob is complete here: those holding pieces of it no longer
    /// matter. Those holding it whole are kept (bounded like the rest), so
    /// that they are not told what they hold.
    pub(crate) fn forget(&self, hash: &Hash) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(blob) = inner.blobs.get_mut(hash) {
            blob.peers.retain(|_, held| held.is_none());
            if blob.peers.is_empty() {
                inner.blobs.remove(hash);
            }
        }
    }

    /// Whom of `peers` to tell of `have`, at most `max`: not those known to
    /// hold every blob named whole; those that told of pieces of one (they
    /// are fetching it) first, each group in an order that `draw` decides
    /// (another for each message and each sender, so that every neighbour
    /// is told now and then, and two senders tell different ones).
    pub(crate) fn to_tell(
        &self,
        peers: Vec<PeerId>,
        have: &[Have],
        max: usize,
        draw: &[u8],
    ) -> Vec<PeerId> {
        let drawn = |p: &PeerId| {
            let mut h = blake3::Hasher::new();
            h.update(draw);
            h.update(&p.to_bytes());
            *h.finalize().as_bytes()
        };
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let held = |peer: &PeerId, h: &Have| {
            inner
                .blobs
                .get(&Hash::from_bytes(h.hash))
                .and_then(|b| b.peers.get(peer).cloned())
        };
        let (mut fetching, mut others): (Vec<PeerId>, Vec<PeerId>) = peers
            .into_iter()
            .filter(|p| !have.iter().all(|h| matches!(held(p, h), Some(None))))
            .partition(|p| have.iter().any(|h| matches!(held(p, h), Some(Some(_)))));
        fetching.sort_by_cached_key(drawn);
        others.sort_by_cached_key(drawn);
        fetching.extend(others);
        fetching.truncate(max);
        fetching
    }
}

/// Tells connected peers (at most [`MAX_HAVE_PEERS`], chosen by
/// [`Holders::to_tell`]) what this node holds now, in the background. A
/// peer that does not speak `/tamizdat/have/2` is told the whole blobs over
/// `/tamizdat/have/1`.
pub(crate) fn tell(client: &Client, have: Vec<Have>) {
    if have.is_empty() {
        return;
    }
    let client = client.clone();
    tokio::spawn(async move {
        let Ok(peers) = client.connected().await else {
            return;
        };
        // This node and a count of its messages: another draw each time.
        static TOLD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TOLD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let draw = [client.peer_id().to_bytes(), n.to_le_bytes().to_vec()].concat();
        let peers = client
            .holders()
            .to_tell(peers, &have, MAX_HAVE_PEERS, &draw);
        let (Ok(v2), Ok(v1)) = (
            postcard::to_stdvec(&have),
            postcard::to_stdvec(
                &have
                    .iter()
                    .filter(|h| h.held.is_none())
                    .map(|h| h.hash)
                    .collect::<Vec<_>>(),
            ),
        ) else {
            return;
        };
        let whole = have.iter().any(|h| h.held.is_none());
        let sends = peers.into_iter().map(|peer| {
            let (client, v1, v2) = (client.clone(), &v1, &v2);
            async move {
                let send = async {
                    let sent = send(&client, peer, HAVE_2, v2).await;
                    if sent.is_err() && whole {
                        return send(&client, peer, HAVE_1, v1).await;
                    }
                    sent
                };
                if let Ok(Err(e)) = tokio::time::timeout(HAVE_TIMEOUT, send).await {
                    debug!(%peer, "have: {e}");
                }
            }
        });
        futures::future::join_all(sends).await;
    });
}

async fn send(
    client: &Client,
    peer: PeerId,
    protocol: StreamProtocol,
    msg: &[u8],
) -> std::io::Result<()> {
    let mut stream = client
        .open_stream(peer, protocol)
        .await
        .map_err(std::io::Error::other)?;
    stream.write_all(&(msg.len() as u32).to_be_bytes()).await?;
    stream.write_all(msg).await?;
    stream.close().await
}

/// Reads the have messages peers send, of either version: at most
/// [`HAVE_STREAMS`] at once ([`HAVE_STREAMS_PER_PEER`] from one peer), each
/// within [`HAVE_TIMEOUT`] and
/// [`MAX_HAVE`] blobs. What they say goes into `holders`, and to the
/// replication task as hints (a full queue drops them: they are hints).
pub(crate) async fn serve(
    v1: libp2p_stream::IncomingStreams,
    v2: libp2p_stream::IncomingStreams,
    holders: Arc<Holders>,
    repl: mpsc::Sender<Event>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(HAVE_STREAMS));
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    let mut incoming = futures::stream::select(v1.map(|s| (1, s)), v2.map(|s| (2, s)));
    while let Some((version, (peer, mut stream))) = incoming.next().await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "have: too many at once; dropped");
            continue;
        };
        {
            let mut map = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(peer).or_default();
            if *n >= HAVE_STREAMS_PER_PEER {
                debug!(%peer, "have: too many at once from this peer; dropped");
                continue;
            }
            *n += 1;
        }
        let (repl, holders, per_peer) = (repl.clone(), holders.clone(), per_peer.clone());
        tokio::spawn(async move {
            let read = async {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).await?;
                let len = u32::from_be_bytes(len) as usize;
                if len > MAX_MESSAGE {
                    return Err(std::io::Error::other("have message too large"));
                }
                let mut buf = vec![0u8; len];
                stream.read_exact(&mut buf).await?;
                decode(version, &buf).map_err(std::io::Error::other)
            };
            match tokio::time::timeout(HAVE_TIMEOUT, read).await {
                Ok(Ok(have)) => {
                    let mut hashes = Vec::with_capacity(have.len());
                    for (hash, held) in have {
                        holders.note(Hash::from_bytes(hash), peer, held);
                        hashes.push(hash);
                    }
                    let _ = repl.try_send(Event::Have { from: peer, hashes });
                }
                Ok(Err(e)) => debug!(%peer, "have: {e}"),
                Err(_) => debug!(%peer, "have: timed out"),
            }
            let mut map = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&peer);
                }
            }
            drop(slot);
        });
    }
}

/// A have message of `version`, as blobs and what of each is held
/// (`None`: all of it).
pub fn decode(version: u8, buf: &[u8]) -> Result<Vec<(Digest, Option<ChunkRanges>)>, String> {
    let have: Vec<(Digest, Option<ChunkRanges>)> = if version == 1 {
        let hashes: Vec<Digest> = crate::replicate::decode_exact(buf)?;
        hashes.into_iter().map(|h| (h, None)).collect()
    } else {
        let entries: Vec<Have> = crate::replicate::decode_exact(buf)?;
        let mut out = Vec::with_capacity(entries.len().min(MAX_HAVE));
        for e in entries.into_iter().take(MAX_HAVE + 1) {
            let held = match e.held {
                None => None,
                Some(h) => Some(h.ranges().ok_or("a malformed piece set")?),
            };
            out.push((e.hash, held));
        }
        out
    };
    if have.len() > MAX_HAVE {
        return Err(format!("more than {MAX_HAVE} blobs"));
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn chunks(r: std::ops::Range<u64>) -> ChunkRanges {
        ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end))
    }

    #[test]
    fn pieces_held_survive_the_wire_in_whole_units() {
        // 1 MiB: 1024 chunks, 64 units of one group.
        let held = Held::of(&(chunks(0..256) | chunks(512..530)), 1 << 20);
        assert_eq!(held.unit, 16);
        assert_eq!(held.bits.len(), 8);
        // 512..530 covers one whole unit (512..528) and part of another.
        assert_eq!(held.ranges(), Some(chunks(0..256) | chunks(512..528)));
        // A 2 GiB blob is told in 8192 units of 256 KiB.
        let big = Held::of(&chunks(0..1 << 21), 2 << 30);
        assert_eq!(big.unit, 256);
        assert_eq!(big.bits.len(), 1024);
        assert_eq!(big.ranges(), Some(chunks(0..1 << 21)));
        // The last unit of a blob that ends inside it counts when held.
        let held = Held::of(&chunks(0..17), 17 * 1024);
        assert_eq!(held.ranges(), Some(chunks(0..32)));
    }

    #[test]
    fn malformed_piece_sets_are_refused() {
        for (unit, bits) in [(0, 1), (8, 1), (24, 1), (16, 1025)] {
            let h = Held {
                unit,
                bits: vec![0xff; bits],
            };
            assert_eq!(h.ranges(), None, "unit {unit}, {bits} bytes");
        }
        let too_many = vec![
            Have {
                hash: [1; 32],
                held: None
            };
            MAX_HAVE + 1
        ];
        let buf = postcard::to_stdvec(&too_many).unwrap();
        assert!(decode(2, &buf).is_err());
        assert!(decode(2, &buf[..buf.len() - 1]).is_err(), "cut short");
        let old = postcard::to_stdvec(&vec![[7u8; 32]; 3]).unwrap();
        assert_eq!(decode(1, &old).unwrap(), vec![([7u8; 32], None); 3]);
        assert!(
            decode(1, &[&old[..], &[0]].concat()).is_err(),
            "bytes after its end"
        );
    }

    #[test]
    fn those_told_are_few_fetchers_first_and_never_those_holding_it_all() {
        let holders = Holders::default();
        let (a, b) = (Hash::of(b"a"), Hash::of(b"b"));
        let peers: Vec<PeerId> = (0..40).map(|_| PeerId::random()).collect();
        // 0..10 hold `a` whole, 10..13 hold pieces of it, and 13 holds `b`.
        for p in &peers[..10] {
            holders.note(a, *p, None);
        }
        for p in &peers[10..13] {
            holders.note(a, *p, Some(chunks(0..16)));
        }
        holders.note(b, peers[13], None);
        let tell_a = [Have {
            hash: *a.as_bytes(),
            held: None,
        }];
        let told = holders.to_tell(peers.clone(), &tell_a, 16, b"1");
        assert_eq!(told.len(), 16);
        assert!(told.iter().all(|p| !peers[..10].contains(p)), "{told:?}");
        assert_eq!(
            &told[..3].iter().collect::<HashSet<_>>(),
            &peers[10..13].iter().collect()
        );
        // Another message, another draw among the rest.
        let again = holders.to_tell(peers.clone(), &tell_a, 16, b"2");
        assert_ne!(told[3..], again[3..]);
        // A whole holder of `a` is told of `a` and `b` together: it lacks `b`.
        let both = [
            tell_a[0].clone(),
            Have {
                hash: *b.as_bytes(),
                held: None,
            },
        ];
        let told = holders.to_tell(peers[..10].to_vec(), &both, 16, b"3");
        assert_eq!(told.len(), 10);
        // Once `a` is complete here, those with pieces are forgotten and
        // the whole holders are still not told.
        holders.forget(&a);
        assert_eq!(holders.of(&a).len(), 10);
        let told = holders.to_tell(peers[..13].to_vec(), &tell_a, 16, b"4");
        assert_eq!(told.len(), 3);
    }

    #[test]
    fn holders_are_bounded_and_a_fetch_is_woken() {
        let holders = Holders::default();
        let hash = Hash::from_bytes([9; 32]);
        let mut woken = holders.watch(hash);
        let p = PeerId::random();
        holders.note(hash, p, Some(chunks(0..16)));
        assert!(woken.has_changed().unwrap());
        woken.mark_unchanged();
        holders.note(hash, p, Some(chunks(0..16)));
        assert!(!woken.has_changed().unwrap(), "nothing new");
        holders.note(hash, p, None);
        assert_eq!(holders.of(&hash), vec![(p, None)]);
        holders.note(hash, p, Some(chunks(0..16)));
        assert_eq!(holders.of(&hash), vec![(p, None)], "whole stays whole");
        for _ in 0..2 * MAX_PEERS_PER_BLOB {
            holders.note(hash, PeerId::random(), None);
        }
        assert_eq!(holders.of(&hash).len(), MAX_PEERS_PER_BLOB);
        for i in 0..2 * MAX_BLOBS as u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            holders.note(Hash::from_bytes(h), p, None);
        }
        let len = holders.inner.lock().unwrap().blobs.len();
        assert_eq!(len, MAX_BLOBS);
        assert_eq!(
            holders.of(&hash).len(),
            MAX_PEERS_PER_BLOB,
            "a blob being fetched is kept"
        );
    }
}
