//! The identity of a blob: its plain BLAKE3 hash.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The BLAKE3 hash of a blob's bytes: the blob's only name.
///
/// It prints as 64 lowercase hex digits, byte-identical to what `b3sum` prints
/// for the same bytes, and parses from exactly that form and no other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The number of characters in the text form.
    pub const HEX_LEN: usize = 64;

    /// Hashes `bytes` in memory.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex digits, for logs and narrow tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub(crate) fn to_blake3(self) -> blake3::Hash {
        blake3::Hash::from_bytes(self.0)
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        // hex output is ASCII.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// Why a string is not a blob hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseHashError {
    /// The string is not 64 characters long.
    #[error("a hash is 64 lowercase hex digits, this has {0} characters")]
    Length(usize),
    /// A character is not one of `0-9a-f`.
    #[error(
        "a hash is 64 lowercase hex digits, found {found:?} at position {position} (uppercase is not accepted)"
    )]
    Character {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character.
        found: char,
    },
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let count = s.chars().count();
        if count != Self::HEX_LEN || s.len() != Self::HEX_LEN {
            return Err(ParseHashError::Length(count));
        }
        if let Some((i, c)) = s
            .char_indices()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(ParseHashError::Character {
                position: i + 1,
                found: c,
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError::Length(count))?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_b3sum_empty_input() {
        // `b3sum /dev/null`
        assert_eq!(
            Hash::of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn rejects_other_forms() {
        let good = Hash::of(b"x").to_string();
        assert!(matches!(
            good.to_uppercase().parse::<Hash>(),
            Err(ParseHashError::Character { position: _, .. })
        ));
        assert_eq!(good[..63].parse::<Hash>(), Err(ParseHashError::Length(63)));
        assert_eq!(
            format!("{good} ").parse::<Hash>(),
            Err(ParseHashError::Length(65))
        );
        assert_eq!(
            format!("0x{}", &good[2..]).parse::<Hash>(),
            Err(ParseHashError::Character {
                position: 2,
                found: 'x'
            })
        );
        let multibyte = format!("é{}", &good[2..]);
        assert_eq!(multibyte.parse::<Hash>(), Err(ParseHashError::Length(63)));
        assert!("".parse::<Hash>().is_err());
    }
}
