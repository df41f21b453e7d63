//! The records kept in the index, and their byte encoding.
//!
//! Every record is one version byte followed by its postcard encoding. Decoding
//! refuses an unknown version and trailing bytes, so a damaged index entry is
//! reported rather than misread.

use serde::{Deserialize, Serialize};

use crate::ChunkRanges;
use bao_tree::ChunkNum;

/// Version byte in front of every record written by this code.
pub(crate) const RECORD_VERSION: u8 = 1;

/// What the index knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    /// Total size in bytes (verified: see `docs/store.md`).
    pub size: u64,
    /// Seconds since the Unix epoch when the blob first entered the store.
    pub added: u64,
    pub state: StateRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StateRecord {
    /// Every byte is present and verified.
    Complete,
    /// Only the chunk ranges listed are verified. `boundaries` holds the
    /// alternating start/end chunk numbers of a range set, strictly increasing.
    Partial { boundaries: Vec<u64> },
}

/// A blob that `scrub` found damaged and moved aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuarantineRecord {
    pub size: u64,
    /// Seconds since the Unix epoch when it was quarantined.
    pub when: u64,
    pub reason: String,
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable index record: {0}")]
pub struct RecordError(pub(crate) String);

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serializing our own plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).unwrap_or_default());
    out
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, RecordError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| RecordError("empty record".into()))?;
    if version != RECORD_VERSION {
        return Err(RecordError(format!("unknown record version {version}")));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| RecordError(format!("postcard: {e}")))?;
    if !rest.is_empty() {
        return Err(RecordError(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

impl StateRecord {
    pub(crate) fn partial(ranges: &ChunkRanges) -> Self {
        StateRecord::Partial {
            boundaries: ranges.boundaries().iter().map(|c| c.0).collect(),
        }
    }

    /// The verified ranges of a partial blob; `None` when the boundaries are
    /// not a valid range set.
    pub(crate) fn verified(&self) -> Option<ChunkRanges> {
        match self {
            StateRecord::Complete => Some(ChunkRanges::all()),
            StateRecord::Partial { boundaries } => {
                ChunkRanges::new(boundaries.iter().map(|&c| ChunkNum(c)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = StateRecord> {
        prop_oneof![
            Just(StateRecord::Complete),
            proptest::collection::btree_set(any::<u64>(), 0..16).prop_map(|set| {
                StateRecord::Partial {
                    boundaries: set.into_iter().collect(),
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn entry_round_trips(size in any::<u64>(), added in any::<u64>(), state in state()) {
            let rec = EntryRecord { size, added, state };
            prop_assert_eq!(decode::<EntryRecord>(&encode(&rec)).unwrap(), rec);
        }

        #[test]
        fn quarantine_round_trips(size in any::<u64>(), when in any::<u64>(), reason in ".*") {
            let rec = QuarantineRecord { size, when, reason };
            prop_assert_eq!(decode::<QuarantineRecord>(&encode(&rec)).unwrap(), rec);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<EntryRecord>(&bytes);
            let _ = decode::<QuarantineRecord>(&bytes);
        }

        #[test]
        fn trailing_bytes_are_refused(size in any::<u64>(), extra in 1u8..) {
            let mut bytes = encode(&EntryRecord { size, added: 0, state: StateRecord::Complete });
            bytes.push(extra);
            prop_assert!(decode::<EntryRecord>(&bytes).is_err());
        }

        #[test]
        fn partial_ranges_round_trip(set in proptest::collection::btree_set(0u64..1_000_000, 0..16)) {
            let boundaries: Vec<u64> = set.into_iter().collect();
            let state = StateRecord::Partial { boundaries: boundaries.clone() };
            let ranges = state.verified().unwrap();
            prop_assert_eq!(StateRecord::partial(&ranges), state);
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = encode(&EntryRecord {
            size: 1,
            added: 2,
            state: StateRecord::Complete,
        });
        bytes[0] = 2;
        assert!(
            decode::<EntryRecord>(&bytes)
                .unwrap_err()
                .0
                .contains("version 2")
        );
    }

    #[test]
    fn unsorted_boundaries_are_not_ranges() {
        let state = StateRecord::Partial {
            boundaries: vec![5, 3],
        };
        assert!(state.verified().is_none());
    }
}
