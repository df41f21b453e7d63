//! The store as commands see it: opened directly, or reached through the
//! running node's control socket when a node holds it. Commands never need
//! to know which.

use std::{
    collections::BTreeMap,
    io::Read,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tamizdat_node::{
    feeds::{self, Feeds, Followed},
    retention::Policy,
};
use tamizdat_sign::PublicKey;
use tamizdat_store::{Added, BlobInfo, GcReport, Hash, OpenError, ScrubReport, Store};

use crate::{
    config,
    control::{Remote, Request},
};

/// How long to wait for a node that holds the store but is not answering
/// yet (starting up, or stopping).
const WAIT_FOR_NODE: Duration = Duration::from_secs(5);

/// A store, local or through the node.
#[derive(Debug)]
pub enum Repo {
    /// This process opened the store.
    Local(Arc<Store>),
    /// A running node holds the store.
    Remote(Remote),
}

impl Repo {
    /// Reaches the store of `dir`: through the node when one runs, directly
    /// otherwise.
    pub fn open(dir: &Path, cfg: &config::Config) -> Result<Repo> {
        if let Some(remote) = Remote::find(dir) {
            return Ok(Repo::Remote(remote));
        }
        let start = Instant::now();
        loop {
            match super::open_store(dir, cfg) {
                Ok(store) => return Ok(Repo::Local(Arc::new(store))),
                Err(e) if in_use(&e) => {
                    if let Some(remote) = Remote::find(dir) {
                        return Ok(Repo::Remote(remote));
                    }
                    if start.elapsed() > WAIT_FOR_NODE {
                        bail!(
                            "{e:#}, and no node answers on its control socket; \
                             is a node starting or stopping?"
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn add_sized(&self, reader: impl Read, size: u64, name: &Path) -> Result<Added> {
        match self {
            Repo::Local(s) => Ok(s.add_sized(reader, size, name)?),
            Repo::Remote(r) => r.add(reader, Some(size), name),
        }
    }

    pub fn add_reader(&self, reader: impl Read, name: &Path) -> Result<Added> {
        match self {
            Repo::Local(s) => Ok(s.add_reader(reader, name)?),
            Repo::Remote(r) => r.add(reader, None, name),
        }
    }

    pub fn add_bytes(&self, bytes: &[u8]) -> Result<Added> {
        match self {
            Repo::Local(s) => Ok(s.add_bytes(bytes)?),
            Repo::Remote(r) => r.add(bytes, Some(bytes.len() as u64), Path::new("(bytes)")),
        }
    }

    /// A reader of the blob's bytes, each verified before it is returned.
    pub fn reader(&self, hash: &Hash) -> Result<Box<dyn Read + Send>> {
        match self {
            Repo::Local(s) => Ok(Box::new(s.reader(hash)?)),
            Repo::Remote(r) => r.reader(hash),
        }
    }

    /// A small blob, whole. Callers check its size first.
    pub fn read_to_vec(&self, hash: &Hash) -> Result<Vec<u8>> {
        match self {
            Repo::Local(s) => Ok(s.read_to_vec(hash)?),
            Repo::Remote(r) => {
                let mut out = Vec::new();
                r.reader(hash)?.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// Size and completeness of a blob; its `pins` are left empty (finding
    /// them reads the whole pins table: use [`Repo::pins`]).
    pub fn info(&self, hash: &Hash) -> Result<Option<BlobInfo>> {
        match self {
            Repo::Local(s) => Ok(s.info_without_pins(hash)?),
            Repo::Remote(r) => r.call(&Request::Info { hash: *hash }),
        }
    }

    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        match self {
            Repo::Local(s) => Ok(s.list()?),
            Repo::Remote(r) => r.call(&Request::List),
        }
    }

    pub fn pin(&self, name: &str, hash: &Hash) -> Result<()> {
        match self {
            Repo::Local(s) => Ok(s.pin(name, hash)?),
            Repo::Remote(r) => r.call(&Request::Pin {
                name: name.to_owned(),
                hash: *hash,
            }),
        }
    }

    /// Removes a pin from one blob, or (`None`) the whole pin; returns the
    /// number of blobs released.
    pub fn unpin(&self, name: &str, hash: Option<&Hash>) -> Result<usize> {
        match self {
            Repo::Local(s) => Ok(s.unpin(name, hash)?),
            Repo::Remote(r) => r.call(&Request::Unpin {
                name: name.to_owned(),
                hash: hash.copied(),
            }),
        }
    }

    pub fn pins(&self) -> Result<BTreeMap<String, Vec<Hash>>> {
        match self {
            Repo::Local(s) => Ok(s.pins()?),
            Repo::Remote(r) => r.call(&Request::Pins),
        }
    }

    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        match self {
            Repo::Local(s) => Ok(s.gc(dry_run)?),
            Repo::Remote(r) => r.call(&Request::Gc { dry_run }),
        }
    }

    pub fn scrub(&self) -> Result<ScrubReport> {
        match self {
            Repo::Local(s) => Ok(s.scrub()?),
            Repo::Remote(r) => r.call(&Request::Scrub),
        }
    }

    pub fn state_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Repo::Local(s) => Ok(s.state_get(name)?),
            Repo::Remote(r) => r.call(&Request::StateGet {
                name: name.to_owned(),
            }),
        }
    }

    pub fn state_put(&self, name: &str, value: &[u8]) -> Result<()> {
        match self {
            Repo::Local(s) => Ok(s.state_put(name, value)?),
            Repo::Remote(r) => r.call(&Request::StatePut {
                name: name.to_owned(),
                value: value.to_vec(),
            }),
        }
    }

    /// Follows a publisher; false if it already was.
    pub fn follow(&self, key: PublicKey, name: Option<String>, policy: Policy) -> Result<bool> {
        match self {
            Repo::Local(s) => {
                let mut f = local_feeds(s)?;
                let new = f.follow(key, name, policy).map_err(anyhow::Error::msg)?;
                s.state_put(feeds::FOLLOWS, &f.encode_follows())?;
                tamizdat_node::retention::enforce(s, &key, &policy, 0, now())
                    .map_err(anyhow::Error::msg)?;
                Ok(new)
            }
            Repo::Remote(r) => r.call(&Request::Follow { key, name, policy }),
        }
    }

    /// Stops following a publisher; false if it was not followed.
    pub fn unfollow(&self, key: &PublicKey) -> Result<bool> {
        match self {
            Repo::Local(s) => {
                let mut f = local_feeds(s)?;
                let was = f.unfollow(key);
                s.state_put(feeds::FOLLOWS, &f.encode_follows())?;
                Ok(was)
            }
            Repo::Remote(r) => r.call(&Request::Unfollow { key: *key }),
        }
    }

    /// The publishers followed.
    pub fn following(&self) -> Result<Vec<Followed>> {
        match self {
            Repo::Local(s) => Ok(local_feeds(s)?.following()),
            Repo::Remote(r) => r.call(&Request::Following),
        }
    }

    /// Through a running node, dials these addresses now (a card's) and
    /// says how many answered; `None` without a node, which joins through
    /// them at its next start.
    pub fn join(&self, addrs: &[String]) -> Result<Option<usize>> {
        match self {
            Repo::Remote(r) => r
                .call::<usize>(&Request::Join {
                    addrs: addrs.to_vec(),
                })
                .map(Some),
            Repo::Local(_) => Ok(None),
        }
    }

    /// Through a running node, tells the publisher's followers about a
    /// revocation or delegation; without one, nothing to do (peers learn it
    /// from `tamizdat key import` or a bundle).
    pub fn announce_key(&self, envelope: &[u8]) -> Result<bool> {
        match self {
            Repo::Remote(r) => r
                .call::<()>(&Request::AnnounceKey {
                    envelope: envelope.to_vec(),
                })
                .map(|()| true),
            Repo::Local(_) => Ok(false),
        }
    }

    /// Hands a manifest signed here to the running node, which records and
    /// announces it. (Without a node, `publish` records it itself.)
    pub fn publish(&self, envelope: &[u8]) -> Result<Hash> {
        match self {
            Repo::Remote(r) => r.call(&Request::Publish {
                envelope: envelope.to_vec(),
            }),
            Repo::Local(_) => anyhow::bail!("publishing without a node is done by the caller"),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The follow list as stored (the trust state is not needed for it).
fn local_feeds(s: &Store) -> Result<Feeds> {
    let follows = match s.state_get(feeds::FOLLOWS)? {
        None => Vec::new(),
        Some(b) => Feeds::decode_follows(&b)
            .map_err(anyhow::Error::msg)
            .context("the stored follow list is damaged")?,
    };
    Ok(Feeds::new(Default::default(), follows))
}

/// Whether opening failed because another process holds the store.
pub fn in_use(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<OpenError>(), Some(OpenError::InUse { .. }))
}

/// The PID of the process holding the store, when opening failed because
/// one does and it wrote its PID.
pub fn holder(e: &anyhow::Error) -> Option<u32> {
    match e.downcast_ref::<OpenError>() {
        Some(OpenError::InUse { pid, .. }) => *pid,
        _ => None,
    }
}
