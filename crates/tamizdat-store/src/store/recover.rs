//! Rebuilding a lost or damaged index from the blob files.
//!
//! The files under `blobs/` are named by their hash, so each one can be
//! checked against its own name: a blob whose bytes hash to its name is
//! genuine whatever the index said, and goes back into the index; bytes that
//! do not verify go to `quarantine/`, never into the index. Pins live only in
//! the index and are not rebuilt here: a higher layer that knows what the
//! blobs mean (signed manifests name their files) restores them.

use std::{
    fs::{self, OpenOptions, TryLockError},
    io,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use bao_tree::ChunkNum;
use redb::ReadableTable;
use tracing::{info, warn};

use super::{
    BLOBS, META, Options, PINS, QUARANTINE, RECOVERY_NEEDED, Store, USED, now, outboard_size,
    sync_dir, verify::chunks, write_marker,
};
use crate::{
    ChunkRanges, Hash,
    error::{Error, IndexError, OpenError, io_err},
    lock::Lock,
    record::{self, EntryRecord, QuarantineRecord, StateRecord},
};

/// Entries written per index transaction while rebuilding.
const BATCH: usize = 1024;

/// The pin that keeps every rebuilt blob until its owner decides: the pins
/// of the old index are gone, and `gc` must not take what they held.
pub const RECOVERED_PIN: &str = "recovered";

/// What [`Store::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RecoverReport {
    /// The old index, kept beside under a new name (absent or empty when `None`).
    pub old_index: Option<PathBuf>,
    /// Blobs whose every byte verified against their name, back in the index.
    pub complete: u64,
    /// Partly fetched blobs, back in the index with the chunk groups that verified.
    pub partial: u64,
    /// Bytes verified and indexed (complete blobs' sizes plus partials' verified groups).
    pub bytes: u64,
    /// Complete blobs whose outboard was missing or damaged, rebuilt from the data.
    pub outboards_rebuilt: u64,
    /// Files whose bytes did not verify against their name: moved to `quarantine/`.
    pub quarantined: Vec<(Hash, String)>,
    /// Outboard files with no data file beside them, removed (an outboard
    /// holds nothing that cannot be computed from the data).
    pub stray_outboards: u64,
    /// Files under `blobs/` not named like a blob of this store: left alone.
    pub unknown: Vec<PathBuf>,
    /// Files already in `quarantine/`, recorded there again.
    pub already_quarantined: u64,
}

/// What one data file turned out to hold.
enum Found {
    Complete,
    Partial(ChunkRanges),
    Damaged(String),
}

impl Store {
    /// Rebuilds the index of the store in `dir` from its blob files, every
    /// one re-verified against its name, and opens the store.
    ///
    /// For a store whose [`Store::open`] failed with
    /// [`OpenError::IndexLost`] or [`OpenError::Damaged`]. The old index
    /// file is never deleted: it is renamed to `index.redb.damaged-SECONDS`
    /// beside the new one. The old pins are not known (see the module
    /// docs): every rebuilt blob is kept under [`RECOVERED_PIN`] instead, so
    /// that `gc` takes nothing until its owner decides. Named state records
    /// are lost with the old index. Cost: every byte
    /// of every blob is read once or twice.
    pub fn recover(dir: impl AsRef<Path>, opts: Options) -> Result<(Self, RecoverReport), Error> {
        let dir = dir.as_ref();
        let mut report = RecoverReport::default();
        let index = dir.join("index.redb");
        // The store's lock first, so that a refusal names the holder; it
        // passes to the store opened below.
        let lock = Lock::take(dir)?;
        // Held until the new index is open: no other process (of a version
        // before the lock file) may use the old one while it is moved aside.
        let _lock = match OpenOptions::new().read(true).write(true).open(&index) {
            Ok(f) => {
                match f.try_lock() {
                    Ok(()) => {}
                    Err(TryLockError::WouldBlock) => {
                        return Err(OpenError::InUse {
                            dir: dir.to_owned(),
                            pid: None,
                        }
                        .into());
                    }
                    Err(TryLockError::Error(e)) => return Err(io_err(&index)(e).into()),
                }
                let len = f.metadata().map_err(io_err(&index))?.len();
                if len > 0 {
                    let aside = free_name(dir, &format!("index.redb.damaged-{}", now()));
                    fs::rename(&index, &aside).map_err(io_err(&aside))?;
                    warn!(old = %aside.display(), "moved the damaged index aside");
                    report.old_index = Some(aside);
                } else {
                    fs::remove_file(&index).map_err(io_err(&index))?;
                }
                sync_dir(dir)?;
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&index)(e).into()),
        };
        // Until the rebuild has ended, the half-built index must never be
        // taken for a whole one: the marker makes `open` refuse it, and a
        // second `recover` starts again.
        let marker = dir.join(RECOVERY_NEEDED);
        write_marker(&marker, "a recovery of the index was interrupted")?;
        let store = Self::open_checked(dir, opts, false, lock)?;
        drop(_lock);
        store.rebuild(&mut report)?;
        fs::remove_file(&marker).map_err(io_err(&marker))?;
        sync_dir(dir)?;
        info!(
            complete = report.complete,
            partial = report.partial,
            quarantined = report.quarantined.len(),
            "rebuilt the store index from the blob files"
        );
        Ok((store, report))
    }

    fn rebuild(&self, report: &mut RecoverReport) -> Result<(), Error> {
        let blobs = self.dir.join("blobs");
        let mut batch = Vec::new();
        let mut shards: Vec<PathBuf> = fs::read_dir(&blobs)
            .map_err(io_err(&blobs))?
            .map(|e| e.map(|e| e.path()).map_err(io_err(&blobs)))
            .collect::<Result<_, _>>()?;
        shards.sort();
        for shard in shards {
            if !shard.is_dir() {
                report.unknown.push(shard);
                continue;
            }
            let mut files: Vec<PathBuf> = fs::read_dir(&shard)
                .map_err(io_err(&shard))?
                .map(|e| e.map(|e| e.path()).map_err(io_err(&shard)))
                .collect::<Result<_, _>>()?;
            files.sort();
            for path in files {
                let Some(hash) = self.blob_named(&path) else {
                    if let Some(h) = outboard_named(&path)
                        && self.outboard_path(&h) == path
                    {
                        if !self.data_path(&h).exists() {
                            fs::remove_file(&path).map_err(io_err(&path))?;
                            report.stray_outboards += 1;
                        }
                        continue;
                    }
                    report.unknown.push(path);
                    continue;
                };
                // Only a regular file is a blob: a link could name anything.
                let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
                if !meta.is_file() {
                    report.unknown.push(path);
                    continue;
                }
                let size = meta.len();
                let added = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or_else(now, |d| d.as_secs());
                let state = match self.examine(&hash, size, report)? {
                    Found::Complete => {
                        report.complete += 1;
                        report.bytes += size;
                        StateRecord::Complete
                    }
                    Found::Partial(have) => {
                        report.partial += 1;
                        report.bytes += crate::range_bytes(&have, size);
                        StateRecord::partial(&have)
                    }
                    Found::Damaged(why) => {
                        warn!(%hash, "does not verify ({why}); quarantined");
                        self.quarantine_file(&hash, size, &why)?;
                        report.quarantined.push((hash, why));
                        continue;
                    }
                };
                batch.push((hash, EntryRecord { size, added, state }));
                if batch.len() >= BATCH {
                    self.commit_rebuilt(&batch, &[])?;
                    batch.clear();
                }
            }
        }
        let found = self.quarantine_files()?;
        report.already_quarantined = found.len() as u64;
        self.commit_rebuilt(&batch, &found)?;
        Ok(())
    }

    /// The hash of a data file in its proper shard, or `None`.
    fn blob_named(&self, path: &Path) -> Option<Hash> {
        let hash: Hash = path.file_name()?.to_str()?.parse().ok()?;
        (self.data_path(&hash) == path).then_some(hash)
    }

    fn examine(&self, hash: &Hash, size: u64, report: &mut RecoverReport) -> Result<Found, Error> {
        if size > self.opts.max_blob_size {
            return Ok(Found::Damaged(format!(
                "{size} bytes, over the store's limit of {}",
                self.opts.max_blob_size
            )));
        }
        let whole = EntryRecord {
            size,
            added: 0,
            state: StateRecord::Complete,
        };
        let ob_len = outboard_size(size);
        let ob_fits =
            ob_len == 0 || fs::metadata(self.outboard_path(hash)).is_ok_and(|m| m.len() == ob_len);
        if ob_fits && self.check_complete(hash, &whole)?.is_none() {
            return Ok(Found::Complete);
        }
        // The outboard may be what is damaged: the data alone decides.
        if self.data_is_intact(hash, size)? {
            if ob_len > 0 {
                self.rebuild_outboard(hash, size)?;
                report.outboards_rebuilt += 1;
            }
            return Ok(Found::Complete);
        }
        if ob_fits && ob_len > 0 {
            // A partly fetched blob (its data file is sparse at full size):
            // keep the groups that verify, if they include the last one,
            // which proves the size.
            let all = ChunkRanges::from(..ChunkNum(chunks(size)));
            let have = self.verified_groups(hash, &whole, &all)?;
            let last = ChunkNum(chunks(size) - 1);
            if have.contains(&last) {
                return Ok(Found::Partial(have));
            }
        }
        Ok(Found::Damaged("its bytes do not hash to its name".into()))
    }

    /// Moves a blob's files to `quarantine/` (no index entry exists yet).
    fn quarantine_file(&self, hash: &Hash, size: u64, why: &str) -> Result<(), Error> {
        self.move_to_quarantine(hash)?;
        sync_dir(&self.shard_dir(hash))?;
        let rec = QuarantineRecord {
            size,
            when: now(),
            reason: why.to_owned(),
        };
        let txn = self.begin_write().map_err(IndexError::from)?;
        txn.open_table(QUARANTINE)
            .map_err(IndexError::from)?
            .insert(hash.as_bytes(), record::encode(&rec).as_slice())
            .map_err(IndexError::from)?;
        txn.commit().map_err(IndexError::from)?;
        Ok(())
    }

    /// Data files already in `quarantine/`, as records to write again.
    fn quarantine_files(&self) -> Result<Vec<(Hash, QuarantineRecord)>, Error> {
        let q = self.dir.join("quarantine");
        let mut out = Vec::new();
        for entry in fs::read_dir(&q).map_err(io_err(&q))? {
            let path = entry.map_err(io_err(&q))?.path();
            let Some(hash) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Hash>().ok())
            else {
                continue;
            };
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            out.push((
                hash,
                QuarantineRecord {
                    size,
                    when: now(),
                    reason: "found in quarantine/ when the index was rebuilt".into(),
                },
            ));
        }
        Ok(out)
    }

    /// Writes rebuilt entries (and quarantine records) in one transaction,
    /// charging them to `used_bytes`.
    fn commit_rebuilt(
        &self,
        entries: &[(Hash, EntryRecord)],
        quarantined: &[(Hash, QuarantineRecord)],
    ) -> Result<(), Error> {
        let txn = self.begin_write().map_err(IndexError::from)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(IndexError::from)?;
            let mut pins = txn.open_multimap_table(PINS).map_err(IndexError::from)?;
            let mut added = 0u64;
            for (hash, rec) in entries {
                blobs
                    .insert(hash.as_bytes(), record::encode(rec).as_slice())
                    .map_err(IndexError::from)?;
                pins.insert(RECOVERED_PIN, hash.as_bytes())
                    .map_err(IndexError::from)?;
                added += rec.size + outboard_size(rec.size);
            }
            let mut q = txn.open_table(QUARANTINE).map_err(IndexError::from)?;
            for (hash, rec) in quarantined {
                q.insert(hash.as_bytes(), record::encode(rec).as_slice())
                    .map_err(IndexError::from)?;
            }
            let mut meta = txn.open_table(META).map_err(IndexError::from)?;
            let used = meta
                .get(USED)
                .map_err(IndexError::from)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(USED, used + added).map_err(IndexError::from)?;
        }
        txn.commit().map_err(IndexError::from)?;
        Ok(())
    }
}

/// The hash named by an outboard file (`<hash>.obao`), or `None`.
fn outboard_named(path: &Path) -> Option<Hash> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".obao")?
        .parse()
        .ok()
}

/// `dir/name`, or `dir/name.N` for the first N not taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}
