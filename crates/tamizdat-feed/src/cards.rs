//! Publisher cards in the store. A held card's envelope is a blob pinned
//! under [`KEYS_PIN`], beside the revocations and delegations: `gc` keeps
//! it, bundles carry it as a key record, and `recover` finds it on disk.
//! A card replaced by a newer one is unpinned.
//!
//! Which card is the newer, and whether one is genuine, is [`Feeds`]'s to
//! judge ([`crate::Judgement::Card`]); this module only keeps and reads.
//!
//! [`Feeds`]: crate::Feeds

use tamizdat_sign::{Card, MAX_CARD_LEN, PublicKey, Signed};
use tamizdat_store::{Hash, Store};

/// The pin that keeps key objects: revocations, delegations and cards.
pub const KEYS_PIN: &str = "keys";

/// What the card header of an envelope starts with.
const CARD_HEADER: &[u8] = b"tamizdat/card/";

/// A card could not be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeepError {
    /// Its envelope could not be written.
    #[error(transparent)]
    Write(#[from] tamizdat_store::WriteError),
    /// It could not be pinned (or the old one unpinned).
    #[error(transparent)]
    Store(#[from] tamizdat_store::Error),
}

/// Keeps `card` under [`KEYS_PIN`] and drops `replaces` (the card it
/// supersedes) from it.
pub fn keep(
    store: &Store,
    card: &Signed<Card>,
    replaces: Option<&Signed<Card>>,
) -> Result<Hash, KeepError> {
    let added = store.add_bytes(card.bytes())?;
    store.pin(KEYS_PIN, &added.hash)?;
    if let Some(old) = replaces {
        let old = Hash::of(old.bytes());
        if old != added.hash {
            match store.unpin(KEYS_PIN, Some(&old)) {
                Ok(_)
                | Err(
                    tamizdat_store::Error::NotPinned { .. } | tamizdat_store::Error::NoSuchPin(_),
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(added.hash)
}

/// Every genuine card under [`KEYS_PIN`] (signature checked, validity
/// window not), with its blob's hash. Damaged or unreadable blobs are
/// left out: a card is a hint, never a reason not to start.
pub fn held(store: &Store) -> Result<Vec<(Hash, Signed<Card>)>, tamizdat_store::IndexError> {
    let pins = store.pins()?;
    let mut out = Vec::new();
    for hash in pins.get(KEYS_PIN).into_iter().flatten() {
        let Some(info) = store.info(hash)? else {
            continue;
        };
        if !info.complete || info.size > MAX_CARD_LEN as u64 {
            continue;
        }
        let Ok(bytes) = store.read_to_vec(hash) else {
            continue;
        };
        if !bytes.starts_with(CARD_HEADER) {
            continue;
        }
        if let Ok(card) = tamizdat_sign::verify_card(&bytes) {
            out.push((*hash, card));
        }
    }
    Ok(out)
}

/// The newest genuine card of `root` under [`KEYS_PIN`], if any.
pub fn newest(
    store: &Store,
    root: &PublicKey,
) -> Result<Option<Signed<Card>>, tamizdat_store::IndexError> {
    Ok(newest_of(held(store)?.into_iter().map(|(_, c)| c), root))
}

/// The newest of `cards` that is `root`'s, in the order [`Feeds`] keeps
/// them by.
///
/// [`Feeds`]: crate::Feeds
pub fn newest_of(
    cards: impl IntoIterator<Item = Signed<Card>>,
    root: &PublicKey,
) -> Option<Signed<Card>> {
    cards
        .into_iter()
        .filter(|c| c.body().root == *root)
        .max_by(|a, b| tamizdat_sign::card_order(a.body(), b.body()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tamizdat_sign::SecretKey;

    fn card(root: &SecretKey, issued: u64) -> Signed<Card> {
        Signed::sign(
            Card {
                root: root.public(),
                name: "Outlet".into(),
                addrs: vec!["/ip4/203.0.113.7/tcp/4001".into()],
                issued,
                not_before: issued - 10,
                not_after: issued + 1000,
            },
            root,
        )
        .unwrap()
    }

    #[test]
    fn a_kept_card_replaces_the_one_before_and_survives_damage_elsewhere() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), Default::default()).unwrap();
        let root = SecretKey::generate().unwrap();
        let (old, new) = (card(&root, 1000), card(&root, 2000));
        keep(&store, &old, None).unwrap();
        assert_eq!(newest(&store, &root.public()).unwrap(), Some(old.clone()));
        keep(&store, &new, Some(&old)).unwrap();
        // The old one is no longer pinned: only the new one is held.
        let held = held(&store).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].1, new);
        // Something else under the pin that is no card is left alone.
        let other = store.add_bytes(b"tamizdat/card/v1\nnot a card").unwrap();
        store.pin(KEYS_PIN, &other.hash).unwrap();
        assert_eq!(newest(&store, &root.public()).unwrap(), Some(new));
        assert_eq!(
            newest(&store, &SecretKey::generate().unwrap().public()).unwrap(),
            None
        );
    }
}
