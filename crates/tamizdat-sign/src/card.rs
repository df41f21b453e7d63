//! The publisher card: a root-signed statement of an outlet's name and the
//! addresses where a newcomer can join the network, carried as one line of
//! text (a chat message, a QR code).
//!
//! ```text
//! line     = "tamizdat1" || base32-lower-nopad(envelope || check)
//! check    = BLAKE3(envelope)[..4]
//! envelope = "tamizdat/card/v1\n" || postcard(Card) || signature(64)
//! ```
//!
//! The checksum tells a mistyped or cut line from a forged one before any
//! signature is checked; the signature is what makes a card genuine.
//! Bech32m was not used: its checksum is specified for at most 90
//! characters, and a card with a few addresses is several hundred.

use serde::{Deserialize, Serialize};

use crate::{
    envelope::{Object, Signed},
    error::DecodeError,
    keys::PublicKey,
};

/// Largest card envelope, in bytes.
pub const MAX_CARD_LEN: usize = 1024;
/// Longest outlet name, in bytes of UTF-8.
pub const MAX_CARD_NAME: usize = 64;
/// Most bootstrap addresses on one card.
pub const MAX_CARD_ADDRS: usize = 8;
/// Longest bootstrap address, in bytes.
pub const MAX_CARD_ADDR: usize = 256;
/// Longest validity window: two years (of 366 days).
pub const MAX_CARD_WINDOW: u64 = 2 * 366 * 24 * 3600;
/// What every card line starts with.
pub const CARD_PREFIX: &str = "tamizdat1";
/// Longest card line accepted, in characters.
pub const MAX_CARD_LINE: usize = CARD_PREFIX.len() + (MAX_CARD_LEN + CHECK_LEN).div_ceil(5) * 8;

const CHECK_LEN: usize = 4;

/// A publisher's card, signed by its root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The publisher's root key (the signer).
    pub root: PublicKey,
    /// The outlet's display name: 1 to 64 bytes, no control characters.
    pub name: String,
    /// Bootstrap addresses, multiaddr text (`/ip4/.../tcp/...`,
    /// `/dns4/...`, with or without a trailing `/p2p/PEERID`): 1 to 8, each
    /// at most 256 bytes. Parsed as multiaddrs by the node, not here.
    pub addrs: Vec<String>,
    /// When the card was issued (Unix seconds); a card issued later
    /// supersedes an earlier one of the same root.
    pub issued: u64,
    /// Valid from (Unix seconds).
    pub not_before: u64,
    /// Valid until (Unix seconds), at most two years after `not_before`.
    pub not_after: u64,
}

fn field(field: &'static str, why: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        kind: "card",
        field,
        why: why.into(),
    }
}

/// Minimal shape of a multiaddr as text: `/`-separated, no empty segment,
/// printable ASCII without spaces. The node parses it for real.
fn check_addr(addr: &str) -> Result<(), DecodeError> {
    let ok = addr.len() > 1
        && addr.len() <= MAX_CARD_ADDR
        && addr.starts_with('/')
        && addr.bytes().all(|b| b.is_ascii_graphic())
        && addr[1..].split('/').all(|s| !s.is_empty());
    if ok {
        Ok(())
    } else {
        Err(field(
            "addrs",
            format!("{addr:?} is not a multiaddr of at most {MAX_CARD_ADDR} bytes"),
        ))
    }
}

impl Object for Card {
    const KIND: &'static str = "card";
    const HEADER: &'static [u8] = b"tamizdat/card/v1\n";
    const MAX_LEN: usize = MAX_CARD_LEN;

    fn signer(&self) -> PublicKey {
        self.root
    }

    fn check_fields(&self) -> Result<(), DecodeError> {
        if self.name.is_empty()
            || self.name.len() > MAX_CARD_NAME
            || self.name.chars().any(char::is_control)
        {
            return Err(field(
                "name",
                format!("1 to {MAX_CARD_NAME} bytes, no control characters"),
            ));
        }
        if self.addrs.is_empty() || self.addrs.len() > MAX_CARD_ADDRS {
            return Err(field(
                "addrs",
                format!("1 to {MAX_CARD_ADDRS} addresses, got {}", self.addrs.len()),
            ));
        }
        for a in &self.addrs {
            check_addr(a)?;
        }
        if self.not_after <= self.not_before {
            return Err(field("not_after", "ends before it starts"));
        }
        if self.not_after - self.not_before > MAX_CARD_WINDOW {
            return Err(field("not_after", "a card is valid for at most two years"));
        }
        // Issued within its own window: a card dated far ahead would
        // outrank every later one.
        if self.issued < self.not_before || self.issued > self.not_after {
            return Err(field("issued", "outside the card's validity window"));
        }
        Ok(())
    }
}

/// Why a card line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The line does not start with `tamizdat1`.
    #[error("not a tamizdat card: it does not start with {CARD_PREFIX:?}")]
    WrongPrefix,
    /// Longer than any card can be.
    #[error("card line of {len} characters is over the {max}-character limit")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Characters that are not base32.
    #[error("card line is damaged: it is not base32 text")]
    Encoding,
    /// The checksum does not match: a typo or a cut line.
    #[error("card line is damaged: its checksum does not match (mistyped or cut?)")]
    Checksum,
    /// The bytes are not a well-formed card.
    #[error("card does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify under the card's root key.
    #[error("card is forged: its signature does not verify under root key {0}")]
    BadSignature(PublicKey),
    /// Past `not_after`.
    #[error("card expired at {not_after} (Unix time); ask the outlet for a new one")]
    Expired {
        /// When it ended.
        not_after: u64,
    },
    /// Before `not_before`.
    #[error("card is not valid until {not_before} (Unix time); check this machine's clock")]
    NotYetValid {
        /// When it starts.
        not_before: u64,
    },
}

/// Writes a signed card as one line of text.
pub fn card_to_line(card: &Signed<Card>) -> String {
    let mut bytes = card.bytes().to_vec();
    let check = blake3::hash(&bytes);
    bytes.extend_from_slice(&check.as_bytes()[..CHECK_LEN]);
    let mut line = String::from(CARD_PREFIX);
    line.push_str(
        &data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase(),
    );
    line
}

/// Reads a card line (surrounding whitespace ignored, either letter case):
/// prefix, length, checksum, envelope and signature. Its validity window
/// is left to [`check_card_time`].
pub fn card_from_line(line: &str) -> Result<Signed<Card>, CardError> {
    let line = line.trim();
    if line.len() > MAX_CARD_LINE {
        return Err(CardError::TooLong {
            len: line.len(),
            max: MAX_CARD_LINE,
        });
    }
    let body = match line.get(..CARD_PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(CARD_PREFIX) => &line[CARD_PREFIX.len()..],
        _ => return Err(CardError::WrongPrefix),
    };
    let bytes = data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|_| CardError::Encoding)?;
    if bytes.len() < CHECK_LEN {
        return Err(CardError::Checksum);
    }
    let (envelope, check) = bytes.split_at(bytes.len() - CHECK_LEN);
    if blake3::hash(envelope).as_bytes()[..CHECK_LEN] != *check {
        return Err(CardError::Checksum);
    }
    verify_card(envelope)
}

/// Reads a card envelope (as gossip, bundles and the store carry it) and
/// checks its signature. Its validity window is left to [`check_card_time`].
pub fn verify_card(envelope: &[u8]) -> Result<Signed<Card>, CardError> {
    let card = Signed::<Card>::decode(envelope)?;
    card.check_signature()
        .map_err(|_| CardError::BadSignature(card.body().root))?;
    Ok(card)
}

/// Checks a card's validity window at `now` (Unix seconds).
pub fn check_card_time(card: &Card, now: u64) -> Result<(), CardError> {
    if now < card.not_before {
        return Err(CardError::NotYetValid {
            not_before: card.not_before,
        });
    }
    if now > card.not_after {
        return Err(CardError::Expired {
            not_after: card.not_after,
        });
    }
    Ok(())
}

/// Reads a card line and checks it is valid at `now`.
pub fn read_card(line: &str, now: u64) -> Result<Signed<Card>, CardError> {
    let card = card_from_line(line)?;
    check_card_time(card.body(), now)?;
    Ok(card)
}

/// Orders two cards, older first: by `issued`, and for two issued in the
/// same second by their postcard bytes, so that every node keeps the same
/// one. The one rule for which card is newer.
pub fn card_order(a: &Card, b: &Card) -> std::cmp::Ordering {
    (a.issued, postcard::to_stdvec(a).ok()).cmp(&(b.issued, postcard::to_stdvec(b).ok()))
}

/// Whether `new` may replace `old`, both verified cards: the same root,
/// and newer by [`card_order`], or the very same card again (which changes
/// nothing).
pub fn card_supersedes(new: &Card, old: &Card) -> bool {
    new.root == old.root && card_order(new, old).is_ge()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    const NOW: u64 = 1_800_000_000;

    fn card(root: &SecretKey) -> Card {
        Card {
            root: root.public(),
            name: "Radio Azadi".into(),
            addrs: vec![
                "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                    .into(),
                "/dns4/mirror.example.org/udp/4001/quic-v1".into(),
            ],
            issued: NOW,
            not_before: NOW - 10,
            not_after: NOW + 365 * 24 * 3600,
        }
    }

    #[test]
    fn round_trip() {
        let root = SecretKey::generate().unwrap();
        let signed = Signed::sign(card(&root), &root).unwrap();
        let line = card_to_line(&signed);
        assert!(line.starts_with(CARD_PREFIX));
        assert!(line.len() < 600, "{}", line.len());
        assert_eq!(read_card(&line, NOW).unwrap(), signed);
        // Case and surrounding whitespace do not matter (QR codes are upper case).
        let upper = format!("  {}\n", line.to_ascii_uppercase());
        assert_eq!(read_card(&upper, NOW).unwrap(), signed);
    }

    #[test]
    fn window() {
        let root = SecretKey::generate().unwrap();
        let line = card_to_line(&Signed::sign(card(&root), &root).unwrap());
        let c = card(&root);
        assert!(matches!(
            read_card(&line, c.not_after + 1),
            Err(CardError::Expired { .. })
        ));
        assert!(matches!(
            read_card(&line, c.not_before - 1),
            Err(CardError::NotYetValid { .. })
        ));
    }

    #[test]
    fn bad_fields_refused_when_signing() {
        let root = SecretKey::generate().unwrap();
        let mut cases = Vec::new();
        let mut c = card(&root);
        c.name = "x".repeat(65);
        cases.push(c);
        let mut c = card(&root);
        c.name = "a\u{7}b".into();
        cases.push(c);
        let mut c = card(&root);
        c.name.clear();
        cases.push(c);
        let mut c = card(&root);
        c.addrs.clear();
        cases.push(c);
        let mut c = card(&root);
        c.addrs = vec!["/ip4/1.2.3.4/tcp/1".into(); 9];
        cases.push(c);
        let mut c = card(&root);
        c.addrs = vec![format!("/dns4/{}/tcp/1", "a".repeat(250))];
        cases.push(c);
        for bad in ["ip4/1.2.3.4", "/ip4//tcp/1", "/ip4/1.2.3.4 /tcp/1", "/"] {
            let mut c = card(&root);
            c.addrs = vec![bad.into()];
            cases.push(c);
        }
        let mut c = card(&root);
        c.not_after = c.not_before + MAX_CARD_WINDOW + 1;
        cases.push(c);
        let mut c = card(&root);
        c.not_after = c.not_before;
        cases.push(c);
        for c in cases {
            assert!(
                matches!(
                    Signed::sign(c.clone(), &root),
                    Err(DecodeError::Field { .. })
                ),
                "{c:?}"
            );
        }
    }

    #[test]
    fn oversized() {
        let root = SecretKey::generate().unwrap();
        let mut c = card(&root);
        c.addrs = vec![format!("/dns4/{}/tcp/1", "a".repeat(200)); 8];
        assert!(matches!(
            Signed::sign(c, &root),
            Err(DecodeError::TooLarge { .. })
        ));
        let long = format!("{CARD_PREFIX}{}", "a".repeat(MAX_CARD_LINE));
        assert!(matches!(
            card_from_line(&long),
            Err(CardError::TooLong { .. })
        ));
    }

    #[test]
    fn garbage_and_damage() {
        let root = SecretKey::generate().unwrap();
        let line = card_to_line(&Signed::sign(card(&root), &root).unwrap());
        assert_eq!(card_from_line("tamizdat2abc"), Err(CardError::WrongPrefix));
        assert_eq!(card_from_line(""), Err(CardError::WrongPrefix));
        assert_eq!(card_from_line("tamizdat1!!!"), Err(CardError::Encoding));
        assert_eq!(card_from_line("tamizdat1"), Err(CardError::Checksum));
        // One character changed anywhere after the prefix: caught by the checksum.
        for i in [CARD_PREFIX.len(), line.len() / 2, line.len() - 2] {
            let mut b = line.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let bad = String::from_utf8(b).unwrap();
            assert!(
                matches!(
                    card_from_line(&bad),
                    Err(CardError::Checksum | CardError::Encoding)
                ),
                "{i}"
            );
        }
        // Cut short.
        assert!(card_from_line(&line[..line.len() - 8]).is_err());
        // Valid base32 with a right checksum but not a card.
        let mut junk = b"tamizdat/manifest/v1\nxx".to_vec();
        let check = blake3::hash(&junk);
        junk.extend_from_slice(&check.as_bytes()[..4]);
        let l = format!("{CARD_PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&junk));
        assert!(matches!(
            card_from_line(&l),
            Err(CardError::Decode(DecodeError::WrongType { .. }))
        ));
    }

    /// A card whose bytes were re-checksummed after a change, so only the
    /// signature can tell.
    fn rechecksum(envelope: &[u8]) -> String {
        let mut b = envelope.to_vec();
        let check = blake3::hash(&b);
        b.extend_from_slice(&check.as_bytes()[..4]);
        format!("{CARD_PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&b))
    }

    #[test]
    fn wrong_signature_and_non_root_signer() {
        let root = SecretKey::generate().unwrap();
        let signed = Signed::sign(card(&root), &root).unwrap();
        let mut bytes = signed.bytes().to_vec();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        assert!(matches!(
            card_from_line(&rechecksum(&bytes)),
            Err(CardError::BadSignature(_))
        ));
        // Signed by some other key while naming `root`.
        let other = SecretKey::generate().unwrap();
        let forged = Signed::sign(card(&root), &other).unwrap();
        assert_eq!(
            card_from_line(&card_to_line(&forged)),
            Err(CardError::BadSignature(root.public()))
        );
    }

    #[test]
    fn newer_supersedes_older() {
        let root = SecretKey::generate().unwrap();
        let old = card(&root);
        let mut new = card(&root);
        new.issued += 1;
        new.addrs.truncate(1);
        assert!(card_supersedes(&new, &old));
        assert!(!card_supersedes(&old, &new));
        assert!(card_supersedes(&old, &old));
        // Two issued in the same second: exactly one wins, everywhere.
        let mut same_time = card(&root);
        same_time.name = "Other".into();
        assert_ne!(
            card_supersedes(&same_time, &old),
            card_supersedes(&old, &same_time)
        );
        // Issued outside its own window: refused as malformed.
        let mut ahead = card(&root);
        ahead.issued = ahead.not_after + 1;
        assert!(ahead.check_fields().is_err());
        let other = SecretKey::generate().unwrap();
        assert!(!card_supersedes(&card(&other), &old));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,2000}") {
            let _ = card_from_line(&s);
            let _ = card_from_line(&format!("tamizdat1{s}"));
        }
    }
}
