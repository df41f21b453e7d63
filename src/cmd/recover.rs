//! `recover`: rebuilds a lost or damaged store index from the blob files,
//! then restores what the blobs themselves prove: signed articles pinned
//! under their feeds, feed positions, revocations, and the follow list.
//!
//! What lives only in the index and cannot be proven from the files is
//! said, not guessed: pins made by hand, follow names and limits. Feed heads
//! newer than the articles on disk come back from peers once the node runs
//! (it asks followed feeds' heads of every peer).

use std::{collections::BTreeMap, io::Write, path::Path, process::ExitCode, sync::Arc};

use anyhow::{Context, Result, bail};
use tamizdat_node::{
    feeds::{self, Feeds, Judgement},
    retention::Policy,
};
use tamizdat_sign::{MAX_MANIFEST_LEN, PublicKey, Revocation, Signed, TrustState};
use tamizdat_store::{Hash, OpenError, RECOVERED_PIN, Store};

use super::{repo::Repo, state};
use crate::{config, control::Remote};

/// What the signed objects among the recovered blobs gave back.
#[derive(Default)]
struct Restored {
    articles: u64,
    revocations: u64,
    keys: u64,
    refused: Vec<String>,
    publishers: BTreeMap<PublicKey, u64>,
}

pub fn recover(
    dir: &Path,
    cfg: &config::Config,
    force: bool,
    follow_found: bool,
) -> Result<ExitCode> {
    if Remote::find(dir).is_some() {
        bail!(
            "a node is running on {}: stop it first (it holds the store open)",
            dir.display()
        );
    }
    let store_dir = dir.join("store");
    let opts = super::store_options(cfg);
    match Store::open(&store_dir, opts.clone()) {
        Ok(_) if !force => {
            println!(
                "the store index {} opens and names its blobs: nothing to recover \
                 (--force rebuilds it anyway; pins made by hand are then lost)",
                store_dir.join("index.redb").display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Ok(store) => drop(store),
        Err(OpenError::Damaged { .. } | OpenError::IndexLost { .. }) => {}
        Err(e) => return Err(e).context("cannot open the store to recover it"),
    }
    let (store, report) = Store::recover(&store_dir, opts).context("recovery failed")?;
    let mut out = std::io::stdout().lock();
    for (hash, why) in &report.quarantined {
        writeln!(out, "quarantined  {hash}  {why}")?;
    }
    for path in &report.unknown {
        writeln!(out, "left-alone  {}", path.display())?;
    }
    let store = Arc::new(store);
    let repo = Repo::Local(store.clone());
    let restored = restore(&repo, &store, follow_found)?;
    for line in &restored.refused {
        writeln!(out, "not-restored  {line}")?;
    }
    for (key, n) in &restored.publishers {
        let what = if follow_found { "following" } else { "found" };
        writeln!(out, "{what}  {key}  {n} article(s)")?;
    }
    drop(out);
    if let Some(old) = &report.old_index {
        eprintln!("the old index is kept at {}", old.display());
    }
    eprintln!(
        "recovered {} complete and {} partial blobs ({} bytes verified); {} quarantined, \
         {} proofs rebuilt",
        report.complete,
        report.partial,
        report.bytes,
        report.quarantined.len(),
        report.outboards_rebuilt
    );
    eprintln!(
        "restored {} article(s) of {} publisher(s), {} revocation(s), {} key record(s)",
        restored.articles,
        restored.publishers.len(),
        restored.revocations,
        restored.keys
    );
    if follow_found {
        eprintln!("the publishers found are followed again (`tamizdat unfollow KEY` to stop)");
    } else if !restored.publishers.is_empty() {
        eprintln!(
            "the follow list was in the lost index: follow again the publishers you follow \
             (`tamizdat follow KEY`, or `tamizdat recover --follow-found` for all of those \
             found); the config's `follow` keys apply when the node starts"
        );
    }
    eprintln!(
        "not restored: pins made by hand, follow names and limits; newer feed positions \
         come from peers when the node runs"
    );
    let kept = store.pins()?.get(RECOVERED_PIN).map_or(0, Vec::len);
    if kept > 0 {
        eprintln!(
            "{kept} blob(s) that no article names are kept under the pin {RECOVERED_PIN:?}: \
             pin what you want to keep (`tamizdat pin NAME HASH`), then `tamizdat unpin \
             {RECOVERED_PIN}` lets gc take the rest"
        );
    }
    Ok(if report.quarantined.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every complete blob small enough to be a signed object is read; what
/// the feed rules accept is kept as a live node would have kept it.
fn restore(repo: &Repo, store: &Store, follow_found: bool) -> Result<Restored> {
    let mut restored = Restored::default();
    let mut manifests = Vec::new();
    let mut trust = TrustState::default();
    for info in store.list()? {
        if !info.complete || info.size > MAX_MANIFEST_LEN as u64 {
            continue;
        }
        let bytes = store.read_to_vec(&info.hash)?;
        if bytes.starts_with(b"tamizdat/manifest/") {
            manifests.push(bytes);
        } else if bytes.starts_with(b"tamizdat/revocation/") {
            match Signed::<Revocation>::decode(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|r| trust.add_revocation(&r).map_err(|e| e.to_string()))
            {
                Ok(_) => {
                    store.pin("keys", &info.hash)?;
                    unrecover(store, &info.hash)?;
                    restored.revocations += 1;
                }
                Err(e) => restored
                    .refused
                    .push(format!("{}  revocation: {e}", info.hash)),
            }
        } else if (bytes.starts_with(b"tamizdat/delegation/")
            && tamizdat_sign::verify_delegation(&bytes).is_ok())
            || (bytes.starts_with(b"tamizdat/card/") && tamizdat_sign::verify_card(&bytes).is_ok())
        {
            store.pin("keys", &info.hash)?;
            unrecover(store, &info.hash)?;
            restored.keys += 1;
        }
    }
    // Replay every feed found in order through the same judgement a live
    // node applies (which needs the publishers followed, here in memory;
    // the follow list is saved only when asked: a blob on disk does not
    // say that its publisher was followed).
    let verifier = tamizdat_sign::Verifier::new();
    let mut parsed = Vec::new();
    for bytes in manifests {
        match verifier.verify(&bytes, &trust) {
            Ok(m) => parsed.push((bytes, m)),
            Err(e) => restored
                .refused
                .push(format!("{}  {e}", tamizdat_store::Hash::of(&bytes))),
        }
    }
    parsed.sort_by(|(_, a), (_, b)| {
        let (a, b) = (a.manifest(), b.manifest());
        (a.publisher, &a.feed, a.seq).cmp(&(b.publisher, &b.feed, b.seq))
    });
    // Two signed articles at one place in a feed: which is genuine cannot
    // be told from the disk (a stolen key signs as well as the owner), so
    // neither is restored, and the key is reported.
    let place = |m: &tamizdat_sign::VerifiedManifest| {
        let b = m.manifest();
        (b.publisher, b.feed.clone(), b.seq)
    };
    let mut forked = std::collections::BTreeSet::new();
    for pair in parsed.windows(2) {
        if place(&pair[0].1) == place(&pair[1].1) {
            forked.insert(place(&pair[0].1));
        }
    }
    parsed.retain(|(bytes, m)| {
        let p = place(m);
        if forked.contains(&p) {
            restored.refused.push(format!(
                "{}  two articles signed for {} seq {} of {}: the publisher's key may be \
                 compromised; neither is restored",
                tamizdat_store::Hash::of(bytes),
                p.1,
                p.2,
                p.0
            ));
            false
        } else {
            true
        }
    });
    let mut feeds = Feeds::new(trust, Vec::new());
    for (_, m) in &parsed {
        let key = m.manifest().publisher;
        if !feeds.follows(&key) {
            feeds
                .follow(key, None, Policy::default())
                .map_err(anyhow::Error::msg)?;
        }
    }
    let now = super::keys::now();
    for (bytes, _) in &parsed {
        match feeds.judge(bytes, None, now) {
            Judgement::Manifest(m, _) => {
                feeds.accept(&m, now).map_err(anyhow::Error::msg)?;
                // Under its feed's pin, as before the loss: the manifest and
                // those of its files that are here (the rest are fetched
                // again by the node). Its feed's pin and retention keep
                // them now.
                let pin = feeds::feed_pin(m.manifest());
                let manifest = tamizdat_store::Hash::of(bytes);
                let files = m
                    .manifest()
                    .entries
                    .iter()
                    .map(|e| Hash::from_bytes(e.hash));
                for h in std::iter::once(manifest).chain(files) {
                    if store.info_without_pins(&h)?.is_some() {
                        store.pin(&pin, &h)?;
                        unrecover(store, &h)?;
                    }
                }
                restored.articles += 1;
                *restored
                    .publishers
                    .entry(m.manifest().publisher)
                    .or_default() += 1;
            }
            Judgement::Ignore(why) => restored
                .refused
                .push(format!("{}  {why}", tamizdat_store::Hash::of(bytes))),
            Judgement::Reject(why) => restored
                .refused
                .push(format!("{}  {why}", tamizdat_store::Hash::of(bytes))),
            Judgement::Equivocation(_, e) => restored
                .refused
                .push(format!("{}  {e}", tamizdat_store::Hash::of(bytes))),
            _ => {}
        }
    }
    state::save(repo, feeds.trust())?;
    if follow_found {
        store.state_put(feeds::FOLLOWS, &feeds.encode_follows())?;
    }
    Ok(restored)
}

/// Releases a blob from the recovery pin (it is kept by its own pin now).
fn unrecover(store: &Store, hash: &Hash) -> Result<()> {
    match store.unpin(RECOVERED_PIN, Some(hash)) {
        Ok(_)
        | Err(tamizdat_store::Error::NotPinned { .. } | tamizdat_store::Error::NoSuchPin(_)) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
