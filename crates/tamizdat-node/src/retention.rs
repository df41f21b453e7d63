//! Quota and retention per followed publisher: how many bytes of its
//! articles this node keeps, and for how long. Enforced when an article is
//! recorded (before its files are fetched) and on each repair pass.
//!
//! [`plan`] is pure: given a publisher's stored articles and its policy, it
//! says which to let go, oldest first. [`enforce`] applies it to the store:
//! the articles leave their feed pin, and blobs no other pin holds are
//! deleted. An article the user pinned under a pin of their own is kept
//! whatever the policy says.

use std::collections::HashSet;

use tamizdat_sign::PublicKey;
use tamizdat_store::{Hash, Store};

use crate::replicate::recorded;

pub use tamizdat_feed::Policy;

/// One stored article of a publisher, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its manifest.
    pub manifest: Hash,
    /// Its feed pin.
    pub pin: String,
    /// Signing time.
    pub created: u64,
    /// Sequence number in its feed.
    pub seq: u64,
    /// Bytes of the manifest and every file.
    pub bytes: u64,
    /// The manifest and its files.
    pub blobs: Vec<Hash>,
    /// Held by a pin of the user's own: never let go.
    pub kept: bool,
}

/// The articles to let go, so that what stays (plus `incoming` bytes about
/// to be fetched) fits the policy: first those too old, then the oldest
/// until the bytes fit. Articles the user pinned stay.
pub fn plan(articles: &[Stored], policy: &Policy, incoming: u64, now: u64) -> Vec<Hash> {
    let mut order: Vec<&Stored> = articles.iter().collect();
    order.sort_by_key(|a| (a.created, a.seq));
    let mut out = Vec::new();
    let mut total: u64 = articles.iter().map(|a| a.bytes).sum::<u64>() + incoming;
    for a in order {
        if a.kept {
            continue;
        }
        let too_old = policy
            .max_age
            .is_some_and(|age| a.created.saturating_add(age) < now);
        let too_big = policy.max_bytes.is_some_and(|max| total > max);
        if too_old || too_big {
            out.push(a.manifest);
            total = total.saturating_sub(a.bytes);
        }
    }
    out
}

/// The stored articles of `publisher`: the manifests under its feed pins.
pub fn stored(store: &Store, publisher: &PublicKey) -> Result<Vec<Stored>, String> {
    let pins = store.pins().map_err(|e| e.to_string())?;
    // Blobs held by pins that are not feeds: the user's own.
    let kept: HashSet<Hash> = pins
        .iter()
        .filter(|(name, _)| !name.starts_with("feed/"))
        .flat_map(|(_, hs)| hs.iter().copied())
        .collect();
    let prefix = format!("feed/{}/", publisher.fingerprint());
    let mut out = Vec::new();
    for r in recorded(store, &prefix)? {
        let body = r.manifest.body();
        if body.publisher != *publisher {
            continue;
        }
        let blobs: Vec<Hash> = std::iter::once(r.id)
            .chain(body.entries.iter().map(|e| Hash::from_bytes(e.hash)))
            .collect();
        // Bytes held complete now: files still being fetched count as
        // `incoming` where that is known.
        let mut bytes = 0;
        for b in &blobs {
            if let Some(i) = store.info(b).map_err(|e| e.to_string())?
                && i.complete
            {
                bytes += i.size;
            }
        }
        out.push(Stored {
            manifest: r.id,
            created: body.created,
            seq: body.seq,
            bytes,
            kept: blobs.iter().any(|b| kept.contains(b)),
            blobs,
            pin: r.pin,
        });
    }
    Ok(out)
}

/// Lets go of articles of `publisher` as [`plan`] says; returns how many.
/// A blob still named by an article that stays keeps its pin.
pub fn enforce(
    store: &Store,
    publisher: &PublicKey,
    policy: &Policy,
    incoming: u64,
    now: u64,
) -> Result<usize, String> {
    if policy.is_unlimited() {
        return Ok(0);
    }
    let articles = stored(store, publisher)?;
    let gone: HashSet<Hash> = plan(&articles, policy, incoming, now).into_iter().collect();
    if gone.is_empty() {
        return Ok(0);
    }
    let staying: HashSet<Hash> = articles
        .iter()
        .filter(|a| !gone.contains(&a.manifest))
        .flat_map(|a| a.blobs.iter().copied())
        .collect();
    for a in articles.iter().filter(|a| gone.contains(&a.manifest)) {
        for b in &a.blobs {
            if staying.contains(b) {
                continue;
            }
            store.unpin(&a.pin, Some(b)).map_err(|e| e.to_string())?;
            let unpinned = store
                .info(b)
                .map_err(|e| e.to_string())?
                .is_some_and(|i| i.pins.is_empty());
            if unpinned {
                store.delete(b).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(n: u8, created: u64, bytes: u64, kept: bool) -> Stored {
        Stored {
            manifest: Hash::of(&[n]),
            pin: "feed/x/main".into(),
            created,
            seq: n.into(),
            bytes,
            blobs: vec![Hash::of(&[n])],
            kept,
        }
    }

    #[test]
    fn oldest_go_first_until_it_fits_and_the_users_pins_stay() {
        let list = [
            article(1, 100, 40, false),
            article(2, 200, 40, true),
            article(3, 300, 40, false),
            article(4, 400, 40, false),
        ];
        let limit = |max| Policy {
            max_bytes: Some(max),
            max_age: None,
        };
        assert!(plan(&list, &limit(160), 0, 1000).is_empty());
        // 160 + 30 incoming > 170: the oldest goes.
        assert_eq!(plan(&list, &limit(170), 30, 1000), vec![Hash::of(&[1])]);
        // Far over: everything but the user's pin (which still counts).
        assert_eq!(
            plan(&list, &limit(50), 0, 1000),
            vec![Hash::of(&[1]), Hash::of(&[3]), Hash::of(&[4])]
        );
        let age = Policy {
            max_bytes: None,
            max_age: Some(250),
        };
        assert_eq!(
            plan(&list, &age, 0, 560),
            vec![Hash::of(&[1]), Hash::of(&[3])]
        );
        assert!(plan(&list, &Policy::default(), u64::MAX / 2, 10_000).is_empty());
    }
}
