//! `DATA_DIR/keys/heads.json`: where this machine's publishers' feeds stand,
//! kept beside the keys so that it travels with them.
//!
//! `publish` signs a sequence number only when it can show that it is new
//! (a feed's place, once signed, is permanent: a second article at the same
//! place is an equivocation every follower reports). The store's feed state
//! says where a feed stands, but it is lost with the store, is stale in an
//! old backup, and is absent on a second machine. This file is a second
//! witness that moves with the key files: written (durably) before each new
//! article leaves this machine, and marked at `key new` so that a brand-new
//! publisher's first article needs no flag.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tamizdat_sign::PublicKey;
use tamizdat_store::Hash;

/// The file's name in the keys directory.
pub const FILE: &str = "heads.json";
/// Largest file read.
const MAX_LEN: u64 = 1 << 20;
/// Publishers and feeds kept at most.
const MAX_ENTRIES: usize = 4096;

/// The file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heads {
    version: u8,
    /// Root keys created here (by `key new`), as `KEY@MACHINE`: their feeds
    /// start on that machine. Bound to the machine (`DIR/machine-id`, which
    /// is not under `keys/`) so that a copy of this file carried to another
    /// machine does not let that one sign a first article too.
    #[serde(default)]
    created_here: Vec<String>,
    /// The latest article signed here, per feed.
    #[serde(default)]
    feeds: Vec<FeedRecord>,
}

/// The latest article signed here for one feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRecord {
    /// The publisher's root key (hex).
    pub publisher: String,
    /// The feed's name.
    pub feed: String,
    /// Its sequence number.
    pub seq: u64,
    /// The manifest's id (hex).
    pub id: String,
    /// When it was signed (Unix seconds).
    pub created: u64,
}

impl FeedRecord {
    /// The manifest's id.
    pub fn hash(&self) -> Result<Hash> {
        self.id
            .parse()
            .with_context(|| format!("{FILE}: invalid id {:?}", self.id))
    }
}

fn path(keys: &Path) -> PathBuf {
    keys.join(FILE)
}

/// Reads the file; an absent file is an empty record.
pub fn load(keys: &Path) -> Result<Heads> {
    let p = path(keys);
    if !p.exists() {
        return Ok(Heads {
            version: 1,
            ..Default::default()
        });
    }
    let bytes = super::keys::read_bounded(&p, MAX_LEN)?;
    let heads: Heads = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is damaged (it records where feeds stand)", p.display()))?;
    if heads.version != 1 {
        bail!(
            "{} has version {}, this tamizdat reads version 1",
            p.display(),
            heads.version
        );
    }
    Ok(heads)
}

/// This machine's id: 16 random bytes (hex) in `DIR/machine-id`, made on
/// first use. `keys` is `DIR/keys`.
fn machine_id(keys: &Path) -> Result<String> {
    use std::io::Read;
    let path = keys
        .parent()
        .context("the keys directory has no parent")?
        .join("machine-id");
    if path.exists() {
        let text = String::from_utf8(super::keys::read_bounded(&path, 64)?)
            .with_context(|| format!("{} is damaged", path.display()))?;
        return Ok(text.trim().to_owned());
    }
    let mut id = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .context("cannot read /dev/urandom")?;
    let id = hex::encode(id);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(id.as_bytes())?;
    f.sync_all()?;
    Ok(id)
}

impl Heads {
    /// Whether `publisher`'s root key was created on this machine (and its
    /// feeds may therefore start here).
    pub fn created_here(&self, keys: &Path, publisher: &PublicKey) -> Result<bool> {
        let k = format!("{publisher}@{}", machine_id(keys)?);
        Ok(self.created_here.contains(&k))
    }

    /// The latest article signed here for the feed.
    pub fn feed(&self, publisher: &PublicKey, feed: &str) -> Option<&FeedRecord> {
        let k = publisher.to_string();
        self.feeds
            .iter()
            .find(|r| r.publisher == k && r.feed == feed)
    }

    fn check_room(&self) -> Result<()> {
        if self.created_here.len() + self.feeds.len() >= MAX_ENTRIES {
            bail!("{FILE} already records {MAX_ENTRIES} publishers and feeds");
        }
        Ok(())
    }
}

fn save(keys: &Path, heads: &Heads) -> Result<()> {
    super::replace_file(&path(keys), &serde_json::to_vec_pretty(heads)?)
}

/// Marks a root key as created here: its feeds start here, at seq 1.
pub fn mark_created(keys: &Path, publisher: &PublicKey) -> Result<()> {
    let mut heads = load(keys)?;
    if !heads.created_here(keys, publisher)? {
        heads.check_room()?;
        heads
            .created_here
            .push(format!("{publisher}@{}", machine_id(keys)?));
        save(keys, &heads)?;
    }
    Ok(())
}

/// Records the article about to leave this machine as its feed's latest.
pub fn record(keys: &Path, rec: FeedRecord) -> Result<()> {
    let mut heads = load(keys)?;
    match heads
        .feeds
        .iter_mut()
        .find(|r| r.publisher == rec.publisher && r.feed == rec.feed)
    {
        Some(r) if r.seq >= rec.seq => return Ok(()),
        Some(r) => *r = rec,
        None => {
            heads.check_room()?;
            heads.feeds.push(rec);
        }
    }
    save(keys, &heads)
}
