//! The store: blob files on disk, their outboards, and the redb index.
//!
//! Layout and commit protocol are described in `docs/store.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bao_tree::{
    ChunkNum,
    io::{
        BaoContentItem, Leaf, Parent,
        outboard::PostOrderOutboard,
        round_up_to_chunks_groups,
        sync::{DecodeResponseIter, OutboardMut, encode_ranges_validated},
    },
};
use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition,
};
use tracing::{debug, info, warn};

mod recover;
pub use recover::{RECOVERED_PIN, RecoverReport};

use crate::{
    ChunkRanges, Hash,
    error::{Error, IndexError, IoError, OpenError, ReadError, WriteError, io_err, is_disk_full},
    lock::Lock,
    record::{self, EntryRecord, QuarantineRecord, StateRecord},
    verify::{self, BLOCK_SIZE, BlobReader, CorruptBlob, ObFile, chunks, outboard_size, tree},
};

const BLOBS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("blobs");
const QUARANTINE: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("quarantine");
const PINS: MultimapTableDefinition<'_, &str, &[u8; 32]> = MultimapTableDefinition::new("pins");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Small named records kept for higher layers (feed state), opaque here.
const STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("state");
/// Largest state record.
pub const MAX_STATE_LEN: usize = 64 << 20;
/// Bytes accounted to the quota: data plus outboard of every entry, partial
/// entries counted at their full size.
const USED: &str = "used_bytes";
/// Set once an index has been checked against the blob files (or made
/// afresh over none): see `Store::open`.
const GUARDED: &str = "guarded";

const IO_BUF: usize = 1 << 20;
const LOCK_STRIPES: usize = 64;
/// Longest pin name accepted.
pub const MAX_PIN_NAME: usize = 128;

/// Settings for opening a store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Bytes the store may hold (data and outboards); `None` for no limit.
    pub quota: Option<u64>,
    /// The largest single blob accepted, whatever a sender claims.
    pub max_blob_size: u64,
    /// Fault injection for tests: writes of blob data fail with "no space
    /// left on device" once this many bytes have been written by this handle.
    #[doc(hidden)]
    pub fail_writes_after: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quota: None,
            max_blob_size: 1 << 40,
            fail_writes_after: None,
        }
    }
}

impl Options {
    /// Options with the given quota.
    pub fn with_quota(mut self, quota: Option<u64>) -> Self {
        self.quota = quota;
        self
    }
}

/// What the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct BlobInfo {
    /// The blob.
    pub hash: Hash,
    /// Its full size in bytes.
    pub size: u64,
    /// Every byte is here and verified.
    pub complete: bool,
    /// Bytes verified and stored (equal to `size` when complete).
    pub verified_bytes: u64,
    /// Names of the pins that keep it.
    pub pins: Vec<String>,
    /// Seconds since the Unix epoch when it entered the store.
    pub added: u64,
}

/// The result of adding a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Added {
    /// Its hash.
    pub hash: Hash,
    /// Its size.
    pub size: u64,
    /// False when the store already held it complete.
    pub new: bool,
}

/// The result of receiving ranges of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// Bytes that verified in this call and were not held before.
    pub new_bytes: u64,
    /// The blob is now complete.
    pub complete: bool,
}

/// What `gc` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct GcReport {
    /// Blobs removed (or, in a dry run, that would be), with their sizes.
    pub removed: Vec<(Hash, u64)>,
    /// Files found on disk with no index entry (left by a crash) and
    /// removed (or, in a dry run, that would be).
    pub orphans: u64,
    /// Those files.
    pub orphan_files: Vec<PathBuf>,
}

/// What `scrub` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ScrubReport {
    /// Blobs re-hashed.
    pub checked: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Blobs whose data no longer matches their hash, now quarantined.
    pub quarantined: Vec<(Hash, String)>,
    /// Blobs whose data was intact but whose outboard was damaged, rebuilt.
    pub outboards_rebuilt: Vec<Hash>,
    /// Partial blobs that lost verified ranges that no longer verified.
    pub partials_trimmed: Vec<Hash>,
}

/// Bytes used against the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes accounted (data and outboards; partial blobs at full size).
    pub used: u64,
    /// The quota, if any.
    pub quota: Option<u64>,
}

/// A content-addressed blob store. See the crate docs.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    db: Db,
    opts: Options,
    /// Bytes promised to writes in progress, not yet in `USED`.
    reserved: Mutex<u64>,
    /// Serialises writers of the same blob within this process.
    locks: Vec<Mutex<()>>,
    tmp_seq: AtomicU64,
    written: AtomicU64,
    /// The store's lock file, held until everything above is closed.
    _lock: Lock,
}

/// The index database, closed without a panic even when its file is damaged.
#[derive(Debug)]
struct Db(Option<Database>);

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("the index is open until the store is dropped")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(db) = self.0.take()
            && let Err(why) = quietly(move || drop(db))
        {
            warn!("closing the store index failed: {why}");
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// fsyncs a directory so that renames and creations in it are durable.
fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// True when the index file is absent or empty: a store made afresh.
fn index_is_blank(index: &Path) -> Result<bool, IoError> {
    match fs::metadata(index) {
        Ok(m) => Ok(m.len() == 0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(index)(e)),
    }
}

/// True when any shard of `blobs/` holds a file. Stops at the first one.
fn holds_blob_files(dir: &Path) -> Result<bool, IoError> {
    let blobs = dir.join("blobs");
    for shard in fs::read_dir(&blobs).map_err(io_err(&blobs))? {
        let shard = shard.map_err(io_err(&blobs))?.path();
        if !shard.is_dir() {
            continue;
        }
        // A data file named like a blob; a lone outboard holds nothing.
        for f in fs::read_dir(&shard).map_err(io_err(&shard))? {
            let f = f.map_err(io_err(&shard))?;
            if f.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<Hash>().is_ok())
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Opens (or creates) the redb index. A damaged file is reported as such,
/// including the damage that makes redb panic instead of returning an error.
fn open_db(index: &Path, dir: &Path, honour_marker: bool) -> Result<Database, OpenError> {
    let damaged = |reason: String| OpenError::Damaged {
        path: index.to_owned(),
        reason,
    };
    // A recovery that did not finish, or a repair that may have forgotten
    // blobs: refused until recovery has run to its end.
    let marker = dir.join(RECOVERY_NEEDED);
    if honour_marker && marker.exists() {
        let why = fs::read_to_string(&marker).unwrap_or_default();
        return Err(damaged(format!("it must be rebuilt: {}", why.trim())));
    }
    let mut db = match quietly(|| Database::create(index)) {
        Err(panic) => return Err(damaged(panic)),
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(OpenError::InUse {
                dir: dir.to_owned(),
                pid: None,
            });
        }
        // The file cannot be read at all: that is the disk or a permission,
        // not damage, and recovery would not help.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() != io::ErrorKind::InvalidData =>
        {
            return Err(OpenError::Index {
                path: index.to_owned(),
                source: redb::StorageError::Io(e).into(),
            });
        }
        // Anything else it says about the bytes (a wrong magic number, a
        // version it does not know, corruption) is damage to the file.
        Ok(Err(e)) => return Err(damaged(e.to_string())),
    };
    // redb checks page checksums only when it repairs after a crash; damage
    // to a cleanly closed file (a flipped bit, a bad sector) would otherwise
    // surface later as a panic in the middle of a command. Checking costs
    // about 0.14 s for an index of a million blobs (`docs/store.md`).
    match quietly(|| db.check_integrity()) {
        Ok(Ok(true)) => Ok(db),
        Ok(Ok(false)) => {
            // The repair is already written: what it rolled back may have
            // named blob files that gc would then delete. Refused for good
            // (not only this once) until recovery rebuilds the index.
            let why = "its checksums failed and the database rolled it back to an earlier state";
            let _ = quietly(move || drop(db));
            write_marker(&marker, why).map_err(OpenError::Io)?;
            Err(damaged(why.into()))
        }
        Ok(Err(e)) => {
            let _ = quietly(move || drop(db));
            Err(damaged(e.to_string()))
        }
        Err(panic) => {
            let _ = quietly(move || drop(db));
            Err(damaged(panic))
        }
    }
}

/// The file whose presence makes `open` refuse until recovery has run.
pub(crate) const RECOVERY_NEEDED: &str = "RECOVERY-NEEDED";

/// Writes the recovery marker durably, with the reason in it.
pub(crate) fn write_marker(marker: &Path, why: &str) -> Result<(), IoError> {
    let mut f = File::create(marker).map_err(io_err(marker))?;
    f.write_all(why.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(marker))?;
    if let Some(dir) = marker.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

thread_local! {
    /// Set while [`quietly`] runs: a panic then is reported as a value.
    static QUIET: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f`, turning a panic into `Err(message)` without printing it. redb
/// panics on some damaged files (it asserts what a torn or flipped page
/// breaks); the store reports that as damage instead of crashing.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = QUIET.with(|q| {
                let mut q = q.borrow_mut();
                match q.as_mut() {
                    Some(msg) => {
                        *msg = info.to_string();
                        true
                    }
                    None => false,
                }
            });
            if !quiet {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| *q.borrow_mut() = Some(String::new()));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let msg = QUIET.with(|q| q.borrow_mut().take()).unwrap_or_default();
    r.map_err(|_| {
        let msg = msg.lines().last().unwrap_or("").to_owned();
        if msg.is_empty() {
            "the database library failed on it".to_owned()
        } else {
            msg
        }
    })
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |e| {
        if is_disk_full(&e) {
            WriteError::DiskFull {
                path: path.to_owned(),
            }
        } else {
            WriteError::Io(IoError {
                path: path.to_owned(),
                source: e,
            })
        }
    }
}

/// A blob's files opened for verified writes.
struct ReceiveFiles {
    data: File,
    data_path: PathBuf,
    outboard: PostOrderOutboard<ObFile>,
    ob_path: PathBuf,
}

/// A file under `tmp/` removed on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Bytes reserved against the quota, released on drop.
struct Reservation<'a> {
    store: &'a Store,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut r = lock(&self.store.reserved);
        *r = r.saturating_sub(self.bytes);
    }
}

impl Reservation<'_> {
    fn grow(&mut self, more: u64) -> Result<(), WriteError> {
        self.store.check_quota(more)?;
        self.bytes += more;
        Ok(())
    }
}

/// Counts bytes written to blob files, for the fault-injection option.
struct Counted<'a, W> {
    store: &'a Store,
    inner: W,
}

impl Store {
    fn count_write(&self, n: usize) -> io::Result<()> {
        let total = self.written.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        match self.opts.fail_writes_after {
            Some(limit) if total > limit => Err(io::Error::from_raw_os_error(28)),
            _ => Ok(()),
        }
    }
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.store.count_write(buf.len())?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that remembers its first error (or discards everything when
/// there is no inner writer).
struct Noted<W> {
    inner: Option<W>,
    err: Option<io::Error>,
}

impl<W: Write> Write for Noted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(inner) = &mut self.inner else {
            return Ok(buf.len());
        };
        inner.write(buf).inspect_err(|e| {
            self.err = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        let Some(inner) = &mut self.inner else {
            return Ok(());
        };
        inner.flush().inspect_err(|e| {
            self.err = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Reads the source a 1 MiB buffer at a time, lends the bytes to the hasher,
/// and hands each consumed buffer to the writing thread without copying it.
struct Feeder<R> {
    src: R,
    buf: Vec<u8>,
    filled: usize,
    pos: usize,
    tx: Option<mpsc::SyncSender<(Vec<u8>, usize)>>,
    free: mpsc::Receiver<Vec<u8>>,
    /// The first read error of the source (as opposed to the writer's).
    src_err: Option<io::Error>,
}

impl<R: Read> Feeder<R> {
    fn hand_off(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_else(|_| vec![0; IO_BUF]);
        let full = std::mem::replace(&mut self.buf, next);
        let n = std::mem::take(&mut self.filled);
        self.pos = 0;
        let stopped = || io::Error::new(io::ErrorKind::BrokenPipe, "writer stopped");
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send((full, n))
            .map_err(|_| stopped())
    }

    fn refill(&mut self) -> io::Result<()> {
        self.hand_off()?;
        while self.filled < self.buf.len() {
            match self.src.read(&mut self.buf[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    self.src_err = Some(e);
                    return Err(io::Error::new(kind, "source"));
                }
            }
        }
        Ok(())
    }

    /// True when bytes beyond what the hasher consumed were read or remain.
    fn overlong(&mut self) -> bool {
        let mut probe = [0u8; 1];
        self.pos < self.filled || self.src.read(&mut probe).unwrap_or(0) != 0
    }

    /// Hands off the last buffer and closes the channel.
    fn finish(&mut self) -> io::Result<()> {
        let r = self.hand_off();
        self.tx = None;
        r
    }
}

impl<R: Read> Read for Feeder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled {
            self.refill()?;
        }
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Store {
    /// Opens the store in `dir`, creating it if needed.
    ///
    /// Opening reads no blob: its cost does not grow with the number of blobs.
    /// Temporary files left by a crashed writer are removed.
    ///
    /// A store whose index is missing, empty or damaged while blob files
    /// exist is not opened ([`OpenError::IndexLost`], [`OpenError::Damaged`]):
    /// opened as new, it would lose track of every blob, and `gc` would
    /// delete them. [`Store::recover`] rebuilds such an index.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        Self::open_checked(dir, opts, true, Lock::take(dir)?)
    }

    /// Opens the store in `dir`, whose lock `lock` is.
    fn open_checked(
        dir: &Path,
        opts: Options,
        guard_lost: bool,
        lock: Lock,
    ) -> Result<Self, OpenError> {
        let dir = dir.to_owned();
        for sub in ["", "blobs", "tmp", "quarantine"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let index = dir.join("index.redb");
        let lost = {
            let (path, blobs) = (index.clone(), dir.join("blobs"));
            move || OpenError::IndexLost { path, dir: blobs }
        };
        if guard_lost && index_is_blank(&index)? && holds_blob_files(&dir)? {
            return Err(lost());
        }
        let db = open_db(&index, &dir, guard_lost)?;
        // The index says which outlets this machine keeps: its owner's alone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&index, fs::Permissions::from_mode(0o600))
                .map_err(io_err(&index))?;
        }
        // Make the directories themselves durable before anything is put in them.
        for d in [
            dir.join("blobs"),
            dir.join("tmp"),
            dir.join("quarantine"),
            dir.clone(),
        ] {
            sync_dir(&d)?;
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        // We hold the index lock: anything in tmp/ is debris of a dead writer.
        let tmp = dir.join("tmp");
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            let _ = fs::remove_file(entry.path());
            removed += 1;
        }
        if removed > 0 {
            info!(
                removed,
                "removed temporary files left by an interrupted write"
            );
        }
        let store = Self {
            dir,
            db: Db(Some(db)),
            opts,
            reserved: Mutex::new(0),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            tmp_seq: AtomicU64::new(0),
            written: AtomicU64::new(0),
            _lock: lock,
        };
        store.init_tables().map_err(|e| OpenError::Index {
            path: store.dir.join("index.redb"),
            source: match e {
                IndexError::Db(e) => e,
                other => redb::Error::Corrupted(other.to_string()),
            },
        })?;
        // An index made afresh (by a version that did not check) beside
        // blob files that nothing names is a lost index too.
        // Checked once per index: an index this version made knows its own
        // history, so files it does not name later are crash debris
        // (orphans for gc), not a lost index.
        if guard_lost && !store.is_guarded().unwrap_or(true) {
            if store.index_is_empty().unwrap_or(false) && holds_blob_files(&store.dir)? {
                return Err(lost());
            }
            store.set_guarded().map_err(|e| OpenError::Index {
                path: store.dir.join("index.redb"),
                source: match e {
                    IndexError::Db(e) => e,
                    other => redb::Error::Corrupted(other.to_string()),
                },
            })?;
        }
        Ok(store)
    }

    fn is_guarded(&self) -> Result<bool, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(META)?.get(GUARDED)?.is_some())
    }

    fn set_guarded(&self) -> Result<(), IndexError> {
        let txn = self.begin_write()?;
        txn.open_table(META)?.insert(GUARDED, 1)?;
        txn.commit()?;
        Ok(())
    }

    fn index_is_empty(&self) -> Result<bool, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(BLOBS)?.first()?.is_none())
    }

    /// Every commit is two-phase with the allocator state saved
    /// (quick-repair): a torn commit can never be mistaken for a good one,
    /// and reopening after a crash does not walk the whole index.
    fn begin_write(&self) -> Result<redb::WriteTransaction, redb::TransactionError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        txn.set_two_phase_commit(true);
        Ok(txn)
    }

    fn init_tables(&self) -> Result<(), IndexError> {
        let txn = self.begin_write()?;
        {
            txn.open_table(BLOBS)?;
            txn.open_table(QUARANTINE)?;
            txn.open_multimap_table(PINS)?;
            txn.open_table(STATE)?;
            let mut meta = txn.open_table(META)?;
            if meta.get(USED)?.is_none() {
                meta.insert(USED, 0)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn hash_lock(&self, hash: &Hash) -> MutexGuard<'_, ()> {
        lock(&self.locks[hash.as_bytes()[0] as usize % LOCK_STRIPES])
    }

    fn shard_dir(&self, hash: &Hash) -> PathBuf {
        self.dir.join("blobs").join(&hash.to_string()[..2])
    }

    fn data_path(&self, hash: &Hash) -> PathBuf {
        self.shard_dir(hash).join(hash.to_string())
    }

    fn outboard_path(&self, hash: &Hash) -> PathBuf {
        self.shard_dir(hash).join(format!("{hash}.obao"))
    }

    fn ensure_shard(&self, hash: &Hash) -> Result<PathBuf, IoError> {
        let shard = self.shard_dir(hash);
        if !shard.is_dir() {
            fs::create_dir_all(&shard).map_err(io_err(&shard))?;
            sync_dir(&self.dir.join("blobs"))?;
        }
        Ok(shard)
    }

    fn temp(&self) -> Result<TempFile, WriteError> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(write_err(&path))?;
        Ok(TempFile {
            path,
            file,
            keep: false,
        })
    }

    // ----- index helpers -----

    fn entry(&self, hash: &Hash) -> Result<Option<EntryRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        let Some(v) = table.get(hash.as_bytes())? else {
            return Ok(None);
        };
        record::decode(v.value())
            .map(Some)
            .map_err(|source| IndexError::Record {
                hash: *hash,
                source,
            })
    }

    /// Bytes accounted against the quota.
    pub fn usage(&self) -> Result<Usage, IndexError> {
        let txn = self.db.begin_read()?;
        let used = txn
            .open_table(META)?
            .get(USED)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(Usage {
            used,
            quota: self.opts.quota,
        })
    }

    fn check_quota(&self, needed: u64) -> Result<(), WriteError> {
        let Some(quota) = self.opts.quota else {
            *lock(&self.reserved) += needed;
            return Ok(());
        };
        // Lock first: a writer that commits and releases in between is then
        // counted at least once, never zero times.
        let mut reserved = lock(&self.reserved);
        let used = self.usage()?.used;
        let in_use = used.saturating_add(*reserved);
        if in_use.saturating_add(needed) > quota {
            return Err(WriteError::StoreFull {
                quota,
                used: in_use,
                needed,
            });
        }
        *reserved += needed;
        Ok(())
    }

    fn reserve(&self, needed: u64) -> Result<Reservation<'_>, WriteError> {
        self.check_quota(needed)?;
        Ok(Reservation {
            store: self,
            bytes: needed,
        })
    }

    fn check_size(&self, size: u64) -> Result<(), WriteError> {
        if size > self.opts.max_blob_size {
            return Err(WriteError::TooLarge {
                size,
                max: self.opts.max_blob_size,
            });
        }
        Ok(())
    }

    // ----- adding -----

    /// Adds the file at `path`. Returns once data, outboard and index entry
    /// are durable on disk.
    pub fn add_file(&self, path: &Path) -> Result<Added, WriteError> {
        let source = |e| WriteError::Source {
            path: path.to_owned(),
            source: e,
        };
        let file = File::open(path).map_err(source)?;
        let size = file.metadata().map_err(source)?.len();
        self.add_sized(BufReader::with_capacity(IO_BUF, file), size, path)
    }

    /// Adds bytes held in memory.
    pub fn add_bytes(&self, bytes: &[u8]) -> Result<Added, WriteError> {
        self.add_sized(bytes, bytes.len() as u64, Path::new("<memory>"))
    }

    /// Adds everything `reader` yields, whose size is not known in advance
    /// (standard input). `name` is used in error messages.
    pub fn add_reader(&self, mut reader: impl Read, name: &Path) -> Result<Added, WriteError> {
        let mut data = self.temp()?;
        let mut reservation = self.reserve(0)?;
        let mut size = 0u64;
        {
            let mut w = BufWriter::with_capacity(
                IO_BUF,
                Counted {
                    store: self,
                    inner: &data.file,
                },
            );
            let mut buf = vec![0u8; IO_BUF];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(WriteError::Source {
                            path: name.to_owned(),
                            source: e,
                        });
                    }
                };
                size += n as u64;
                self.check_size(size)?;
                // Reserve as it grows, so a stream cannot overshoot the quota.
                let needed = size + outboard_size(size);
                if reservation.bytes < needed {
                    reservation.grow(needed - reservation.bytes)?;
                }
                w.write_all(&buf[..n]).map_err(write_err(&data.path))?;
            }
            w.flush().map_err(write_err(&data.path))?;
        }
        let tree = tree(size);
        let mut ob = if tree.outboard_size() > 0 {
            Some(self.temp()?)
        } else {
            None
        };
        let root = {
            let mut src = BufReader::with_capacity(IO_BUF, &data.file);
            io::Seek::rewind(&mut src).map_err(write_err(&data.path))?;
            match &mut ob {
                Some(ob) => {
                    let mut w = BufWriter::with_capacity(
                        IO_BUF,
                        Counted {
                            store: self,
                            inner: &ob.file,
                        },
                    );
                    let root = bao_tree::io::sync::outboard_post_order(&mut src, tree, &mut w)
                        .map_err(write_err(&ob.path))?;
                    w.flush().map_err(write_err(&ob.path))?;
                    root
                }
                None => bao_tree::io::sync::outboard_post_order(&mut src, tree, io::sink())
                    .map_err(write_err(&data.path))?,
            }
        };
        let added = self.finish_add(root, size, &mut data, ob.as_mut())?;
        drop(reservation);
        Ok(added)
    }

    /// Adds `size` bytes read from `src` (a file or stream whose size is known);
    /// fails with [`WriteError::SourceChanged`] if it yields more or fewer.
    pub fn add_sized(
        &self,
        mut src: impl Read,
        size: u64,
        name: &Path,
    ) -> Result<Added, WriteError> {
        self.check_size(size)?;
        let reservation = match self.reserve(size + outboard_size(size)) {
            Ok(r) => r,
            Err(full @ WriteError::StoreFull { .. }) => {
                // Adding what is already here needs no room: hash, store nothing.
                let mut hasher = blake3::Hasher::new();
                let n = io::copy(&mut src, &mut hasher).map_err(|e| WriteError::Source {
                    path: name.to_owned(),
                    source: e,
                })?;
                let hash = Hash::from(hasher.finalize());
                let have = self.entry(&hash)?;
                if n == size && have.is_some_and(|e| e.state == StateRecord::Complete) {
                    return Ok(Added {
                        hash,
                        size,
                        new: false,
                    });
                }
                return Err(full);
            }
            Err(e) => return Err(e),
        };
        let mut data = self.temp()?;
        let tree = tree(size);
        let mut ob = if tree.outboard_size() > 0 {
            Some(self.temp()?)
        } else {
            None
        };
        let root = std::thread::scope(|scope| -> Result<blake3::Hash, WriteError> {
            // Hash on this thread while a second one writes: the two overlap.
            let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(4);
            let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(6);
            let file = &data.file;
            let writer = scope.spawn(move || -> io::Result<()> {
                let mut w = Counted {
                    store: self,
                    inner: file,
                };
                for (buf, n) in rx {
                    w.write_all(&buf[..n])?;
                    let _ = free_tx.try_send(buf);
                }
                Ok(())
            });
            let mut feed = Feeder {
                src: &mut src,
                buf: vec![0; IO_BUF],
                filled: 0,
                pos: 0,
                tx: Some(tx),
                free: free_rx,
                src_err: None,
            };
            let mut ob_sink = Noted {
                inner: ob.as_ref().map(|ob| {
                    BufWriter::with_capacity(
                        IO_BUF,
                        Counted {
                            store: self,
                            inner: &ob.file,
                        },
                    )
                }),
                err: None,
            };
            let result = bao_tree::io::sync::outboard_post_order(&mut feed, tree, &mut ob_sink)
                .and_then(|root| ob_sink.flush().map(|()| root));
            // The source must end exactly where its size said.
            let overlong = result.is_ok() && feed.overlong();
            let flushed = feed.finish();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
            if let Err(e) = written {
                return Err(write_err(&data.path)(e));
            }
            if let Err(e) = flushed {
                return Err(write_err(&data.path)(e));
            }
            if let Some(e) = feed.src_err.take() {
                return Err(WriteError::Source {
                    path: name.to_owned(),
                    source: e,
                });
            }
            let root = match result {
                Ok(root) => root,
                Err(e) => {
                    if let (Some(err), Some(ob)) = (ob_sink.err.take(), &ob) {
                        return Err(write_err(&ob.path)(err));
                    }
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        return Err(WriteError::SourceChanged {
                            path: name.to_owned(),
                        });
                    }
                    return Err(WriteError::Source {
                        path: name.to_owned(),
                        source: e,
                    });
                }
            };
            if overlong {
                return Err(WriteError::SourceChanged {
                    path: name.to_owned(),
                });
            }
            Ok(root)
        })?;
        let added = self.finish_add(root, size, &mut data, ob.as_mut())?;
        drop(reservation);
        Ok(added)
    }

    /// Makes the written temp files durable, then installs them.
    fn finish_add(
        &self,
        root: blake3::Hash,
        size: u64,
        data: &mut TempFile,
        ob: Option<&mut TempFile>,
    ) -> Result<Added, WriteError> {
        data.file.sync_all().map_err(write_err(&data.path))?;
        if let Some(ob) = &ob {
            ob.file.sync_all().map_err(write_err(&ob.path))?;
        }
        let hash = Hash::from(root);
        let new = self.install(hash, size, data, ob)?;
        Ok(Added { hash, size, new })
    }

    /// Moves fsynced temp files into place and records the blob as complete.
    fn install(
        &self,
        hash: Hash,
        size: u64,
        data: &mut TempFile,
        ob: Option<&mut TempFile>,
    ) -> Result<bool, WriteError> {
        let _guard = self.hash_lock(&hash);
        let existing = self.entry(&hash)?;
        let complete = matches!(
            existing,
            Some(EntryRecord {
                state: StateRecord::Complete,
                ..
            })
        );
        // A complete entry whose files are gone or cut short is repaired
        // with this good copy rather than trusted.
        if complete && self.files_intact(&hash, size) {
            return Ok(false);
        }
        let shard = self.ensure_shard(&hash)?;
        let ob_final = self.outboard_path(&hash);
        match ob {
            Some(ob) => {
                fs::rename(&ob.path, &ob_final).map_err(write_err(&ob_final))?;
                ob.keep = true;
            }
            None => {
                let _ = fs::remove_file(&ob_final);
            }
        }
        let data_final = self.data_path(&hash);
        fs::rename(&data.path, &data_final).map_err(write_err(&data_final))?;
        data.keep = true;
        sync_dir(&shard)?;
        let added = existing.as_ref().map(|e| e.added).unwrap_or_else(now);
        let delta = if existing.is_some() {
            0
        } else {
            size + outboard_size(size)
        };
        self.commit_entry(
            &hash,
            &EntryRecord {
                size,
                added,
                state: StateRecord::Complete,
            },
            delta,
        )
        .map_err(|e| self.index_write_err(e))?;
        debug!(%hash, size, "blob stored");
        Ok(true)
    }

    fn index_write_err(&self, e: IndexError) -> WriteError {
        let full = matches!(&e, IndexError::Db(redb::Error::Io(io)) if is_disk_full(io));
        if full {
            WriteError::DiskFull {
                path: self.dir.join("index.redb"),
            }
        } else {
            WriteError::Index(e)
        }
    }

    fn commit_entry(
        &self,
        hash: &Hash,
        rec: &EntryRecord,
        add_used: u64,
    ) -> Result<(), IndexError> {
        let txn = self.begin_write()?;
        {
            let mut blobs = txn.open_table(BLOBS)?;
            blobs.insert(hash.as_bytes(), record::encode(rec).as_slice())?;
            if add_used > 0 {
                let mut meta = txn.open_table(META)?;
                let used = meta.get(USED)?.map(|v| v.value()).unwrap_or(0);
                meta.insert(USED, used + add_used)?;
            }
            txn.open_table(QUARANTINE)?.remove(hash.as_bytes())?;
        }
        txn.commit()?;
        Ok(())
    }

    // ----- receiving from untrusted senders -----

    /// Accepts a bao-encoded response for `ranges` of blob `hash` from an
    /// untrusted sender, verifies it chunk group by chunk group, and keeps
    /// every group that verified.
    ///
    /// `ranges` are widened to whole 16 KiB chunk groups (see
    /// [`crate::request_ranges`]); the sender must have been asked for
    /// exactly those. A blob the store does not hold yet starts with its
    /// **last chunk group alone** ([`crate::size_proof_ranges`]): that proves
    /// the claimed `size` before any disk or quota is committed to it, and
    /// is read into memory (a few KiB) before anything is locked. Later
    /// ranges stream straight to disk with no lock held while the sender
    /// sends; put a timeout on `encoded`. On a verification failure the
    /// groups that verified before it are kept and the error says how many
    /// bytes.
    pub fn receive(
        &self,
        hash: Hash,
        size: u64,
        ranges: &ChunkRanges,
        encoded: impl Read,
    ) -> Result<Received, WriteError> {
        self.check_size(size)?;
        if size == 0 {
            if hash != Hash::of(b"") {
                return Err(WriteError::Verification {
                    hash,
                    detail: "a zero-length blob has another hash".into(),
                    kept: 0,
                });
            }
            self.add_bytes(b"")?;
            return Ok(Received {
                new_bytes: 0,
                complete: true,
            });
        }
        let ranges = widen(ranges, size);
        match self.entry(&hash)? {
            Some(e) if e.state == StateRecord::Complete && self.files_intact(&hash, e.size) => {
                Ok(Received {
                    new_bytes: 0,
                    complete: true,
                })
            }
            Some(e) if e.size != size => Err(WriteError::SizeMismatch {
                hash,
                claimed: size,
                known: e.size,
            }),
            Some(e) if e.state != StateRecord::Complete => {
                self.receive_more(hash, &e, &ranges, encoded)
            }
            // Absent, or complete with its files gone: start again from the size proof.
            _ => self.receive_fresh(hash, size, &ranges, encoded),
        }
    }

    /// The size proof for a blob not held yet: the last group and its path
    /// from the root, decoded in memory, then written under the blob's lock.
    fn receive_fresh(
        &self,
        hash: Hash,
        size: u64,
        ranges: &ChunkRanges,
        encoded: impl Read,
    ) -> Result<Received, WriteError> {
        if *ranges != size_proof_ranges(size) {
            return Err(WriteError::SizeUnproven(hash));
        }
        let tree = tree(size);
        // Proof path (at most 64 pairs) plus one group: nothing more is read.
        let cap = 64 * 64 + verify::GROUP_BYTES + 64;
        let mut items = Vec::new();
        for item in DecodeResponseIter::new(hash.to_blake3(), tree, encoded.take(cap), ranges) {
            match item {
                Ok(item) => items.push(item),
                Err(e) => return Err(decode_failure(hash, &e, 0)),
            }
        }
        let last = ChunkNum(chunks(size) - 1);
        let proven = items.iter().any(|i| match i {
            BaoContentItem::Leaf(l) => {
                l.offset / 1024 <= last.0 && last.0 * 1024 < l.offset + l.data.len().max(1) as u64
            }
            BaoContentItem::Parent(_) => false,
        });
        if !proven {
            return Err(WriteError::SizeUnproven(hash));
        }
        let _guard = self.hash_lock(&hash);
        let existing = self.entry(&hash)?;
        if let Some(e) = &existing {
            if e.size != size {
                return Err(WriteError::SizeMismatch {
                    hash,
                    claimed: size,
                    known: e.size,
                });
            }
            if e.state != StateRecord::Complete {
                // Another receive got here first: nothing to add.
                return Ok(Received {
                    new_bytes: 0,
                    complete: false,
                });
            }
        }
        // A fresh entry is charged in full now; a complete one whose files
        // vanished is charged already.
        let reservation = match existing {
            None => Some(self.reserve(size + outboard_size(size))?),
            Some(_) => None,
        };
        let shard = self.ensure_shard(&hash)?;
        let ReceiveFiles {
            data,
            data_path,
            mut outboard,
            ob_path,
        } = self.receive_files(&hash, size, true)?;
        let mut got = ChunkRanges::empty();
        let written = (|| -> Result<(), WriteError> {
            for item in items {
                match item {
                    BaoContentItem::Parent(Parent { node, pair }) => {
                        outboard.save(node, &pair).map_err(write_err(&ob_path))?;
                    }
                    BaoContentItem::Leaf(Leaf {
                        offset,
                        data: bytes,
                    }) => {
                        self.count_write(bytes.len())
                            .and_then(|()| {
                                std::os::unix::fs::FileExt::write_all_at(&data, &bytes, offset)
                            })
                            .map_err(write_err(&data_path))?;
                        got |= leaf_chunks(offset, bytes.len());
                    }
                }
            }
            data.sync_data().map_err(write_err(&data_path))?;
            if let ObFile::File(f) = &outboard.data {
                f.sync_data().map_err(write_err(&ob_path))?;
            }
            sync_dir(&shard)?;
            Ok(())
        })();
        if let Err(e) = written {
            drop(data);
            let _ = fs::remove_file(&data_path);
            let _ = fs::remove_file(&ob_path);
            return Err(e);
        }
        let complete = got.is_superset(&ChunkRanges::from(..ChunkNum(chunks(size))));
        let state = if complete {
            StateRecord::Complete
        } else {
            StateRecord::partial(&got)
        };
        let added = existing.as_ref().map(|e| e.added).unwrap_or_else(now);
        let delta = if existing.is_none() {
            size + outboard_size(size)
        } else {
            0
        };
        self.commit_entry(&hash, &EntryRecord { size, added, state }, delta)
            .map_err(|e| self.index_write_err(e))?;
        drop(reservation);
        Ok(Received {
            new_bytes: range_bytes(&got, size),
            complete,
        })
    }

    /// More ranges of a blob already held in part. Verified groups are
    /// written in place as they arrive (identical bytes whoever writes
    /// them, so no lock is needed), fsynced once, then recorded under the
    /// blob's lock.
    fn receive_more(
        &self,
        hash: Hash,
        entry: &EntryRecord,
        ranges: &ChunkRanges,
        encoded: impl Read,
    ) -> Result<Received, WriteError> {
        let size = entry.size;
        let have = entry.state.verified().ok_or_else(|| IndexError::Record {
            hash,
            source: record::RecordError("bad range set".into()),
        })?;
        let tree = tree(size);
        let ReceiveFiles {
            data,
            data_path,
            mut outboard,
            ob_path,
        } = self.receive_files(&hash, size, false)?;
        let mut got = ChunkRanges::empty();
        let mut failure: Option<WriteError> = None;
        for item in DecodeResponseIter::new(hash.to_blake3(), tree, encoded, ranges) {
            match item {
                Ok(BaoContentItem::Parent(Parent { node, pair })) => {
                    if let Err(e) = outboard.save(node, &pair) {
                        failure = Some(write_err(&ob_path)(e));
                        break;
                    }
                }
                Ok(BaoContentItem::Leaf(Leaf {
                    offset,
                    data: bytes,
                })) => {
                    let leaf = leaf_chunks(offset, bytes.len());
                    if !have.is_superset(&leaf) {
                        let written = self.count_write(bytes.len()).and_then(|()| {
                            std::os::unix::fs::FileExt::write_all_at(&data, &bytes, offset)
                        });
                        if let Err(e) = written {
                            failure = Some(write_err(&data_path)(e));
                            break;
                        }
                    }
                    got |= leaf;
                }
                Err(e) => {
                    failure = Some(decode_failure(hash, &e, 0));
                    break;
                }
            }
        }
        let synced = data
            .sync_data()
            .map_err(write_err(&data_path))
            .and_then(|()| match &outboard.data {
                ObFile::File(f) => f.sync_data().map_err(write_err(&ob_path)),
                ObFile::Empty => Ok(()),
            });
        if let Err(e) = synced {
            // Nothing from this call can be trusted to be on disk.
            got = ChunkRanges::empty();
            failure.get_or_insert(e);
        }
        let _guard = self.hash_lock(&hash);
        let (new_bytes, complete) = match self.entry(&hash)? {
            None => {
                return Err(failure.unwrap_or(WriteError::Verification {
                    hash,
                    detail: "the blob was deleted while it was being received".into(),
                    kept: 0,
                }));
            }
            Some(now_entry) => {
                if now_entry.state == StateRecord::Complete {
                    (0, true)
                } else {
                    let have = now_entry.state.verified().unwrap_or_default();
                    let new_ranges = got.difference(&have);
                    let verified = have.union(&got);
                    let complete =
                        verified.is_superset(&ChunkRanges::from(..ChunkNum(chunks(size))));
                    if !new_ranges.is_empty() {
                        let state = if complete {
                            StateRecord::Complete
                        } else {
                            StateRecord::partial(&verified)
                        };
                        let rec = EntryRecord {
                            size,
                            added: now_entry.added,
                            state,
                        };
                        self.commit_entry(&hash, &rec, 0)
                            .map_err(|e| self.index_write_err(e))?;
                    }
                    (range_bytes(&new_ranges, size), complete)
                }
            }
        };
        match failure {
            Some(WriteError::Verification { hash, detail, .. }) => Err(WriteError::Verification {
                hash,
                detail,
                kept: new_bytes,
            }),
            Some(WriteError::Interrupted { hash, detail, .. }) => Err(WriteError::Interrupted {
                hash,
                detail,
                kept: new_bytes,
            }),
            Some(other) => Err(other),
            None => Ok(Received {
                new_bytes,
                complete,
            }),
        }
    }

    /// Opens (with `fresh`: creates, empties and sizes) a blob's data and
    /// outboard files at their final paths for verified writes.
    fn receive_files(
        &self,
        hash: &Hash,
        size: u64,
        fresh: bool,
    ) -> Result<ReceiveFiles, WriteError> {
        let data_path = self.data_path(hash);
        let ob_path = self.outboard_path(hash);
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(fresh)
                .truncate(fresh)
                .open(path)
                .map_err(write_err(path))
        };
        let data = open(&data_path)?;
        if fresh {
            data.set_len(size).map_err(write_err(&data_path))?;
        }
        let tree = tree(size);
        let ob_file = if tree.outboard_size() > 0 {
            ObFile::File(open(&ob_path)?)
        } else {
            if fresh {
                let _ = fs::remove_file(&ob_path);
            }
            ObFile::Empty
        };
        Ok(ReceiveFiles {
            data,
            data_path,
            outboard: PostOrderOutboard {
                root: hash.to_blake3(),
                tree,
                data: ob_file,
            },
            ob_path,
        })
    }

    /// True when the data file has the blob's length and its outboard exists.
    fn files_intact(&self, hash: &Hash, size: u64) -> bool {
        let data_ok = fs::metadata(self.data_path(hash)).is_ok_and(|m| m.len() == size);
        let ob_ok = outboard_size(size) == 0
            || fs::metadata(self.outboard_path(hash)).is_ok_and(|m| m.len() == outboard_size(size));
        data_ok && ob_ok
    }

    // ----- reading -----

    /// Facts about one blob, or `None` when the store does not hold it.
    pub fn info(&self, hash: &Hash) -> Result<Option<BlobInfo>, IndexError> {
        let Some(e) = self.entry(hash)? else {
            return Ok(None);
        };
        let pins = self.pins_of(hash)?;
        Ok(Some(to_info(*hash, &e, pins)))
    }

    /// [`Store::info`] without the names of the pins (`pins` is left empty):
    /// one index lookup, where `info` also reads the whole pins table.
    pub fn info_without_pins(&self, hash: &Hash) -> Result<Option<BlobInfo>, IndexError> {
        Ok(self.entry(hash)?.map(|e| to_info(*hash, &e, Vec::new())))
    }

    /// The verified chunk ranges held for `hash` (empty when absent).
    pub fn verified_ranges(&self, hash: &Hash) -> Result<ChunkRanges, IndexError> {
        Ok(match self.entry(hash)? {
            None => ChunkRanges::empty(),
            Some(e) => e
                .state
                .verified()
                .map(|r| r.intersection(&ChunkRanges::from(..ChunkNum(chunks(e.size)))))
                .unwrap_or_default(),
        })
    }

    fn open_for_read(&self, hash: &Hash, e: &EntryRecord) -> Result<(File, ObFile), ReadError> {
        let data_path = self.data_path(hash);
        let data = File::open(&data_path).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                ReadError::Corrupt {
                    hash: *hash,
                    offset: 0,
                    what: "missing data file",
                }
            } else {
                ReadError::Io(io_err(&data_path)(err))
            }
        })?;
        let ob = if outboard_size(e.size) > 0 {
            let ob_path = self.outboard_path(hash);
            ObFile::File(File::open(&ob_path).map_err(|err| {
                if err.kind() == io::ErrorKind::NotFound {
                    ReadError::Corrupt {
                        hash: *hash,
                        offset: 0,
                        what: "missing outboard file",
                    }
                } else {
                    ReadError::Io(io_err(&ob_path)(err))
                }
            })?)
        } else {
            ObFile::Empty
        };
        Ok((data, ob))
    }

    fn readable(&self, hash: &Hash, bytes: &Range<u64>) -> Result<EntryRecord, ReadError> {
        let e = self.entry(hash)?.ok_or(ReadError::NotFound(*hash))?;
        if e.state != StateRecord::Complete {
            let want = verify::group_ranges(bytes.clone(), e.size);
            let have = e.state.verified().unwrap_or_default();
            if want.is_empty() && bytes.start < bytes.end || !have.is_superset(&want) {
                return Err(ReadError::NotAvailable { hash: *hash });
            }
        }
        Ok(e)
    }

    /// A reader over the whole blob that verifies every chunk group before
    /// returning it. The blob must be complete.
    pub fn reader(&self, hash: &Hash) -> Result<BlobReader, ReadError> {
        self.range_reader(hash, 0..u64::MAX)
    }

    /// A verifying reader over `bytes` of the blob (clipped to its size).
    /// For a partial blob the range must lie within its verified groups.
    pub fn range_reader(&self, hash: &Hash, bytes: Range<u64>) -> Result<BlobReader, ReadError> {
        let probe = bytes.start..bytes.end.max(bytes.start);
        let e = self.entry(hash)?.ok_or(ReadError::NotFound(*hash))?;
        let probe = probe.start.min(e.size)..probe.end.min(e.size);
        let e = if e.state == StateRecord::Complete {
            e
        } else if bytes.end == u64::MAX && bytes.start == 0 {
            return Err(ReadError::NotAvailable { hash: *hash });
        } else {
            self.readable(hash, &probe)?
        };
        let (data, ob) = self.open_for_read(hash, &e)?;
        Ok(BlobReader::new(*hash, e.size, data, ob, bytes))
    }

    /// Reads the whole blob into memory, verified. For small blobs.
    pub fn read_to_vec(&self, hash: &Hash) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        self.reader(hash)?
            .read_to_end(&mut out)
            .map_err(|e| read_err(e, self.data_path(hash)))?;
        Ok(out)
    }

    /// Writes the bao encoding of `ranges` (chunk ranges, widened to groups)
    /// of the blob to `out`: the proof a receiver needs, interleaved with the
    /// data. Every group is verified against the tree before it is written.
    pub fn encode_ranges(
        &self,
        hash: &Hash,
        ranges: &ChunkRanges,
        out: impl Write,
    ) -> Result<(), ReadError> {
        let e = self.entry(hash)?.ok_or(ReadError::NotFound(*hash))?;
        let ranges = widen(ranges, e.size);
        if e.state != StateRecord::Complete
            && !e.state.verified().unwrap_or_default().is_superset(&ranges)
        {
            return Err(ReadError::NotAvailable { hash: *hash });
        }
        let (data, ob) = self.open_for_read(hash, &e)?;
        let outboard = PostOrderOutboard {
            root: hash.to_blake3(),
            tree: tree(e.size),
            data: ob,
        };
        use bao_tree::io::EncodeError as E;
        encode_ranges_validated(&data, &outboard, &ranges, out).map_err(|err| match err {
            E::LeafHashMismatch(c) => ReadError::Corrupt {
                hash: *hash,
                offset: c.to_bytes(),
                what: "data",
            },
            E::ParentHashMismatch(n) => ReadError::Corrupt {
                hash: *hash,
                offset: n.chunk_range().start.to_bytes(),
                what: "outboard",
            },
            E::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => ReadError::Corrupt {
                hash: *hash,
                offset: 0,
                what: "truncated data",
            },
            other => ReadError::Io(IoError {
                path: self.data_path(hash),
                source: other.into(),
            }),
        })
    }

    // ----- listing and pins -----

    /// Every blob in the store, in hash order.
    pub fn list(&self) -> Result<Vec<BlobInfo>, IndexError> {
        let txn = self.db.begin_read()?;
        let mut pins: BTreeMap<[u8; 32], Vec<String>> = BTreeMap::new();
        let pin_table = txn.open_multimap_table(PINS)?;
        for item in pin_table.iter()? {
            let (name, hashes) = item?;
            for h in hashes {
                pins.entry(*h?.value())
                    .or_default()
                    .push(name.value().to_owned());
            }
        }
        let mut out = Vec::new();
        for item in txn.open_table(BLOBS)?.iter()? {
            let (k, v) = item?;
            let hash = Hash::from_bytes(*k.value());
            let e: EntryRecord =
                record::decode(v.value()).map_err(|source| IndexError::Record { hash, source })?;
            out.push(to_info(
                hash,
                &e,
                pins.remove(hash.as_bytes()).unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    fn pins_of(&self, hash: &Hash) -> Result<Vec<String>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_multimap_table(PINS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (name, hashes) = item?;
            for h in hashes {
                if h?.value() == hash.as_bytes() {
                    out.push(name.value().to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Pins `hash` under `name`, keeping it from garbage collection. The blob
    /// must be in the store (complete or partial).
    pub fn pin(&self, name: &str, hash: &Hash) -> Result<(), Error> {
        check_pin_name(name)?;
        let txn = self.begin_write().map_err(IndexError::from)?;
        // Checked in the same transaction, so a concurrent gc cannot slip between.
        let present = txn
            .open_table(BLOBS)
            .map_err(IndexError::from)?
            .get(hash.as_bytes())
            .map_err(IndexError::from)?
            .is_some();
        if !present {
            return Err(Error::NotFound(*hash));
        }
        txn.open_multimap_table(PINS)
            .map_err(IndexError::from)?
            .insert(name, hash.as_bytes())
            .map_err(IndexError::from)?;
        txn.commit().map_err(IndexError::from)?;
        Ok(())
    }

    /// Removes `hash` from pin `name`, or the whole pin when `hash` is `None`.
    /// Returns how many blobs the pin released.
    pub fn unpin(&self, name: &str, hash: Option<&Hash>) -> Result<usize, Error> {
        let txn = self.begin_write().map_err(IndexError::from)?;
        let n = {
            let mut table = txn.open_multimap_table(PINS).map_err(IndexError::from)?;
            match hash {
                Some(h) => usize::from(table.remove(name, h.as_bytes()).map_err(IndexError::from)?),
                None => table.remove_all(name).map_err(IndexError::from)?.count(),
            }
        };
        if n == 0 {
            return Err(match hash {
                Some(h) if self.pins()?.contains_key(name) => Error::NotPinned {
                    name: name.to_owned(),
                    hash: *h,
                },
                _ => Error::NoSuchPin(name.to_owned()),
            });
        }
        txn.commit().map_err(IndexError::from)?;
        Ok(n)
    }

    /// Every pin with the blobs it holds.
    pub fn pins(&self) -> Result<BTreeMap<String, Vec<Hash>>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_multimap_table(PINS)?;
        let mut out = BTreeMap::new();
        for item in table.iter()? {
            let (name, hashes) = item?;
            let list: &mut Vec<Hash> = out.entry(name.value().to_owned()).or_default();
            for h in hashes {
                list.push(Hash::from_bytes(*h?.value()));
            }
        }
        Ok(out)
    }

    // ----- deleting -----

    /// Removes a blob (pinned or not) and its files.
    pub fn delete(&self, hash: &Hash) -> Result<bool, Error> {
        let _guard = self.hash_lock(hash);
        let removed = self.remove_entries(&[*hash], false)?;
        Ok(!removed.is_empty())
    }

    /// Removes the index entries first (one transaction), then the files: a
    /// crash in between leaves only orphan files, which `gc` sweeps.
    /// With `unpinned_only`, blobs pinned by the time the transaction runs are kept.
    fn remove_entries(
        &self,
        hashes: &[Hash],
        unpinned_only: bool,
    ) -> Result<Vec<(Hash, u64)>, Error> {
        let mut removed = Vec::new();
        let txn = self.begin_write().map_err(IndexError::from)?;
        {
            let mut pinned = BTreeSet::new();
            if unpinned_only {
                let pins = txn.open_multimap_table(PINS).map_err(IndexError::from)?;
                for item in pins.iter().map_err(IndexError::from)? {
                    let (_, hashes) = item.map_err(IndexError::from)?;
                    for h in hashes {
                        pinned.insert(*h.map_err(IndexError::from)?.value());
                    }
                }
            }
            let mut blobs = txn.open_table(BLOBS).map_err(IndexError::from)?;
            let mut freed = 0u64;
            for hash in hashes.iter().filter(|h| !pinned.contains(h.as_bytes())) {
                if let Some(v) = blobs.remove(hash.as_bytes()).map_err(IndexError::from)? {
                    let size = record::decode::<EntryRecord>(v.value())
                        .map(|e| e.size)
                        .unwrap_or(0);
                    freed += size + outboard_size(size);
                    removed.push((*hash, size));
                }
            }
            let mut meta = txn.open_table(META).map_err(IndexError::from)?;
            let used = meta
                .get(USED)
                .map_err(IndexError::from)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(USED, used.saturating_sub(freed))
                .map_err(IndexError::from)?;
        }
        txn.commit().map_err(IndexError::from)?;
        let mut shards = BTreeSet::new();
        for (hash, _) in &removed {
            for p in [self.data_path(hash), self.outboard_path(hash)] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => warn!(path = %p.display(), "could not remove: {e}"),
                }
            }
            shards.insert(self.shard_dir(hash));
        }
        for shard in shards {
            sync_dir(&shard)?;
        }
        Ok(removed)
    }

    /// Removes every blob that no pin holds, and files that no index entry
    /// names (debris of a crash). With `dry_run`, only reports.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, Error> {
        let pinned: BTreeSet<Hash> = self.pins()?.into_values().flatten().collect();
        let victims: Vec<Hash> = self
            .list()?
            .into_iter()
            .map(|b| b.hash)
            .filter(|h| !pinned.contains(h))
            .collect();
        if dry_run {
            let mut report = GcReport::default();
            for h in victims {
                if let Some(e) = self.entry(&h)? {
                    report.removed.push((h, e.size));
                }
            }
            report.orphan_files = self.sweep_orphans(true)?;
            report.orphans = report.orphan_files.len() as u64;
            return Ok(report);
        }
        let removed = {
            // Hold every stripe (in order) so no write of a victim is in flight.
            let _all: Vec<_> = self.locks.iter().map(lock).collect();
            self.remove_entries(&victims, true)?
        };
        let orphan_files = self.sweep_orphans(false)?;
        let orphans = orphan_files.len() as u64;
        info!(removed = removed.len(), orphans, "gc finished");
        Ok(GcReport {
            removed,
            orphans,
            orphan_files,
        })
    }

    /// Files under `blobs/` named like a blob that no index entry names:
    /// removed unless `dry_run`.
    fn sweep_orphans(&self, dry_run: bool) -> Result<Vec<PathBuf>, Error> {
        let blobs = self.dir.join("blobs");
        let mut n = Vec::new();
        for shard in fs::read_dir(&blobs).map_err(io_err(&blobs))? {
            let shard = shard.map_err(io_err(&blobs))?.path();
            let Ok(files) = fs::read_dir(&shard) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                let name = f.file_name().to_string_lossy().into_owned();
                let Ok(hash) = name.trim_end_matches(".obao").parse::<Hash>() else {
                    continue;
                };
                let _guard = self.hash_lock(&hash);
                if self.entry(&hash)?.is_none() {
                    if !dry_run {
                        let _ = fs::remove_file(&path);
                    }
                    n.push(path);
                }
            }
        }
        Ok(n)
    }

    // ----- scrub -----

    /// Re-hashes every blob. Blobs whose bytes no longer match their hash are
    /// moved to `quarantine/` and dropped from the index so they are never
    /// served; intact data with a damaged outboard gets a rebuilt outboard;
    /// partial blobs lose the ranges that no longer verify.
    pub fn scrub(&self) -> Result<ScrubReport, Error> {
        let mut report = ScrubReport::default();
        for info in self.list()? {
            let hash = info.hash;
            let _guard = self.hash_lock(&hash);
            let Some(e) = self.entry(&hash)? else {
                continue;
            };
            report.checked += 1;
            if e.state == StateRecord::Complete {
                report.bytes += e.size;
                if let Some(problem) = self.check_complete(&hash, &e)? {
                    self.repair_or_quarantine(&hash, &e, problem, &mut report)?;
                }
            } else {
                report.bytes += info.verified_bytes;
                self.check_partial(&hash, &e, &mut report)?;
            }
        }
        Ok(report)
    }

    /// `Ok(None)`: intact. `Ok(Some(why))`: the bytes are damaged.
    /// `Err`: the check itself failed (no descriptor, permission, EIO) and
    /// says nothing about the blob, which is then left alone.
    fn check_complete(&self, hash: &Hash, e: &EntryRecord) -> Result<Option<String>, Error> {
        let (data, ob) = match self.open_for_read(hash, e) {
            Ok(files) => files,
            Err(ReadError::Corrupt { what, .. }) => return Ok(Some(what.to_owned())),
            Err(ReadError::Io(io)) => return Err(Error::Io(io)),
            Err(ReadError::Index(i)) => return Err(Error::Index(i)),
            Err(other) => return Ok(Some(other.to_string())),
        };
        let len = data.metadata().map_err(io_err(self.data_path(hash)))?.len();
        if len != e.size {
            return Ok(Some(format!(
                "data file is {len} bytes, expected {}",
                e.size
            )));
        }
        let mut reader = BlobReader::new(*hash, e.size, data, ob, 0..e.size);
        match io::copy(&mut reader, &mut io::sink()) {
            Ok(_) => Ok(None),
            Err(err) => match corrupt_of(&err) {
                Some(c) => Ok(Some(format!(
                    "{} mismatch at byte offset {}",
                    c.what, c.offset
                ))),
                None => Err(Error::Io(io_err(self.data_path(hash))(err))),
            },
        }
    }

    fn repair_or_quarantine(
        &self,
        hash: &Hash,
        e: &EntryRecord,
        problem: String,
        report: &mut ScrubReport,
    ) -> Result<(), Error> {
        // If the data itself still hashes right, only the outboard is bad.
        if self.data_is_intact(hash, e.size)? {
            self.rebuild_outboard(hash, e.size)?;
            warn!(%hash, "outboard was damaged ({problem}); rebuilt from intact data");
            report.outboards_rebuilt.push(*hash);
            return Ok(());
        }
        warn!(%hash, "blob is corrupt ({problem}); quarantined");
        self.move_to_quarantine(hash)?;
        let txn = self.begin_write().map_err(IndexError::from)?;
        {
            txn.open_table(BLOBS)
                .map_err(IndexError::from)?
                .remove(hash.as_bytes())
                .map_err(IndexError::from)?;
            let rec = QuarantineRecord {
                size: e.size,
                when: now(),
                reason: problem.clone(),
            };
            txn.open_table(QUARANTINE)
                .map_err(IndexError::from)?
                .insert(hash.as_bytes(), record::encode(&rec).as_slice())
                .map_err(IndexError::from)?;
            let mut meta = txn.open_table(META).map_err(IndexError::from)?;
            let used = meta
                .get(USED)
                .map_err(IndexError::from)?
                .map(|v| v.value())
                .unwrap_or(0);
            meta.insert(USED, used.saturating_sub(e.size + outboard_size(e.size)))
                .map_err(IndexError::from)?;
        }
        txn.commit().map_err(IndexError::from)?;
        sync_dir(&self.shard_dir(hash))?;
        report.quarantined.push((*hash, problem));
        Ok(())
    }

    /// Renames a blob's data and outboard (those present) into
    /// `quarantine/`, and makes the renames durable.
    fn move_to_quarantine(&self, hash: &Hash) -> Result<(), Error> {
        let q = self.dir.join("quarantine");
        for (from, name) in [
            (self.data_path(hash), hash.to_string()),
            (self.outboard_path(hash), format!("{hash}.obao")),
        ] {
            if from.exists() {
                let to = q.join(name);
                fs::rename(&from, &to).map_err(io_err(&to))?;
            }
        }
        sync_dir(&q)?;
        Ok(())
    }

    /// Whether the data file still hashes to `hash`; an error when it
    /// cannot be read at all (which proves nothing either way).
    fn data_is_intact(&self, hash: &Hash, size: u64) -> Result<bool, Error> {
        let path = self.data_path(hash);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::Io(io_err(&path)(e))),
        };
        let mut hasher = blake3::Hasher::new();
        let len = io::copy(&mut BufReader::with_capacity(IO_BUF, file), &mut hasher)
            .map_err(io_err(&path))?;
        Ok(len == size && Hash::from(hasher.finalize()) == *hash)
    }

    /// Recomputes the outboard from the data file and swaps it in atomically.
    fn rebuild_outboard(&self, hash: &Hash, size: u64) -> Result<(), Error> {
        let data_path = self.data_path(hash);
        let file = File::open(&data_path).map_err(io_err(&data_path))?;
        let mut tmp = self.temp().map_err(|e| {
            Error::Io(IoError {
                path: self.dir.join("tmp"),
                source: io::Error::other(e.to_string()),
            })
        })?;
        let mut w = BufWriter::new(&tmp.file);
        bao_tree::io::sync::outboard_post_order(
            BufReader::with_capacity(IO_BUF, file),
            tree(size),
            &mut w,
        )
        .and_then(|_| w.flush())
        .map_err(io_err(&tmp.path))?;
        drop(w);
        tmp.file.sync_all().map_err(io_err(&tmp.path))?;
        let ob_path = self.outboard_path(hash);
        fs::rename(&tmp.path, &ob_path).map_err(io_err(&ob_path))?;
        tmp.keep = true;
        sync_dir(&self.shard_dir(hash))?;
        Ok(())
    }

    fn check_partial(
        &self,
        hash: &Hash,
        e: &EntryRecord,
        report: &mut ScrubReport,
    ) -> Result<(), Error> {
        let have = e.state.verified().unwrap_or_default();
        let keep = self.verified_groups(hash, e, &have)?;
        if keep != have {
            warn!(%hash, "partial blob had damaged ranges; they will be fetched again");
            let rec = EntryRecord {
                size: e.size,
                added: e.added,
                state: StateRecord::partial(&keep),
            };
            self.commit_entry(hash, &rec, 0)?;
            report.partials_trimmed.push(*hash);
        }
        Ok(())
    }

    /// The chunk groups of `have` whose bytes still verify against `hash`
    /// (checked group by group, so one bad group costs only itself).
    fn verified_groups(
        &self,
        hash: &Hash,
        e: &EntryRecord,
        have: &ChunkRanges,
    ) -> Result<ChunkRanges, Error> {
        let mut keep = ChunkRanges::empty();
        for range in have.iter() {
            let (start, end) = match range {
                range_collections::range_set::RangeSetRange::Range(r) => (r.start.0, r.end.0),
                range_collections::range_set::RangeSetRange::RangeFrom(r) => {
                    (r.start.0, chunks(e.size))
                }
            };
            let per = verify::GROUP_BYTES / 1024;
            let mut g = start;
            while g < end {
                let g_end = (g + per).min(end);
                let bytes = g * 1024..(g_end * 1024).min(e.size);
                let ok = match self.open_for_read(hash, e) {
                    Ok((data, ob)) => {
                        let mut r = BlobReader::new(*hash, e.size, data, ob, bytes);
                        match io::copy(&mut r, &mut io::sink()) {
                            Ok(_) => true,
                            Err(err) if corrupt_of(&err).is_some() => false,
                            Err(err) => return Err(Error::Io(io_err(self.data_path(hash))(err))),
                        }
                    }
                    Err(ReadError::Corrupt { .. }) => false,
                    Err(ReadError::Io(io)) => return Err(Error::Io(io)),
                    Err(other) => {
                        return Err(Error::Io(io_err(self.data_path(hash))(io::Error::other(
                            other.to_string(),
                        ))));
                    }
                };
                if ok {
                    keep |= ChunkRanges::from(ChunkNum(g)..ChunkNum(g_end));
                }
                g = g_end;
            }
        }
        Ok(keep)
    }

    /// A named state record (opaque bytes a higher layer keeps here so it
    /// commits with the same durability as the index).
    pub fn state_get(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Replaces a named state record, durably.
    pub fn state_put(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        if value.len() > MAX_STATE_LEN {
            return Err(Error::Io(IoError {
                path: self.dir.join("index.redb"),
                source: io::Error::other(format!(
                    "state record {name:?} of {} bytes is over the {MAX_STATE_LEN}-byte limit",
                    value.len()
                )),
            }));
        }
        let txn = self.begin_write().map_err(IndexError::from)?;
        txn.open_table(STATE)
            .map_err(IndexError::from)?
            .insert(name, value)
            .map_err(IndexError::from)?;
        txn.commit().map_err(IndexError::from)?;
        Ok(())
    }

    /// Blobs that `scrub` quarantined, with the reason.
    pub fn quarantined(&self) -> Result<Vec<(Hash, String)>, IndexError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for item in txn.open_table(QUARANTINE)?.iter()? {
            let (k, v) = item?;
            let hash = Hash::from_bytes(*k.value());
            let rec: QuarantineRecord =
                record::decode(v.value()).map_err(|source| IndexError::Record { hash, source })?;
            out.push((hash, rec.reason));
        }
        Ok(out)
    }
}

/// Chunk ranges to ask a sender for, to get `bytes` of a blob of `size`
/// bytes: widened to whole 16 KiB groups and clipped to the blob.
pub fn request_ranges(bytes: Range<u64>, size: u64) -> ChunkRanges {
    if size == 0 {
        return ChunkRanges::from(ChunkNum(0)..ChunkNum(1));
    }
    verify::group_ranges(bytes, size)
}

/// The ranges that prove a blob's size: its last chunk group alone. A blob
/// the store does not hold yet must be received with exactly these first.
pub fn size_proof_ranges(size: u64) -> ChunkRanges {
    request_ranges(size.saturating_sub(1)..size, size)
}

/// Chunk range covered by a leaf of `len` bytes at byte `offset`.
fn leaf_chunks(offset: u64, len: usize) -> ChunkRanges {
    let start = ChunkNum(offset / 1024);
    let end = ChunkNum((offset + len as u64).div_ceil(1024).max(start.0 + 1));
    ChunkRanges::from(start..end)
}

fn widen(ranges: &ChunkRanges, size: u64) -> ChunkRanges {
    let clip = ChunkRanges::from(..ChunkNum(chunks(size)));
    let r = ranges.intersection(&clip);
    round_up_to_chunks_groups(r, BLOCK_SIZE).intersection(&clip)
}

/// Bytes of a blob of `size` bytes covered by chunk `ranges`.
pub fn range_bytes(ranges: &ChunkRanges, size: u64) -> u64 {
    let mut total = 0;
    for r in ranges.iter() {
        let (start, end) = match r {
            range_collections::range_set::RangeSetRange::Range(r) => (r.start.0, r.end.0),
            range_collections::range_set::RangeSetRange::RangeFrom(r) => (r.start.0, chunks(size)),
        };
        total += (end * 1024)
            .min(size)
            .saturating_sub((start * 1024).min(size));
    }
    total
}

fn to_info(hash: Hash, e: &EntryRecord, pins: Vec<String>) -> BlobInfo {
    let (complete, verified_bytes) = match &e.state {
        StateRecord::Complete => (true, e.size),
        state => (
            false,
            state
                .verified()
                .map(|r| range_bytes(&r, e.size))
                .unwrap_or(0),
        ),
    };
    BlobInfo {
        hash,
        size: e.size,
        complete,
        verified_bytes,
        pins,
        added: e.added,
    }
}

fn check_pin_name(name: &str) -> Result<(), Error> {
    let n = name.chars().count();
    if n == 0 || n > MAX_PIN_NAME || name.chars().any(char::is_control) {
        return Err(Error::InvalidPinName(name.to_owned()));
    }
    Ok(())
}

/// A sender that ran out of data (or whose stream broke) is interrupted;
/// one whose data did not match is lying.
fn decode_failure(hash: Hash, e: &bao_tree::io::DecodeError, kept: u64) -> WriteError {
    use bao_tree::io::DecodeError as D;
    let detail = describe_decode(e);
    match e {
        D::ParentNotFound(_) | D::LeafNotFound(_) | D::Io(_) => {
            WriteError::Interrupted { hash, detail, kept }
        }
        D::ParentHashMismatch(_) | D::LeafHashMismatch(_) => {
            WriteError::Verification { hash, detail, kept }
        }
    }
}

fn describe_decode(e: &bao_tree::io::DecodeError) -> String {
    use bao_tree::io::DecodeError as D;
    match e {
        D::ParentNotFound(n) => format!(
            "stream ended before the proof for byte offset {}",
            n.chunk_range().start.to_bytes()
        ),
        D::LeafNotFound(c) => format!("stream ended before byte offset {}", c.to_bytes()),
        D::ParentHashMismatch(n) => format!(
            "proof for byte offset {} does not match",
            n.chunk_range().start.to_bytes()
        ),
        D::LeafHashMismatch(c) => format!("data at byte offset {} does not match", c.to_bytes()),
        D::Io(io) => format!("reading the stream: {io}"),
    }
}

/// The [`CorruptBlob`] inside an error from a [`BlobReader`], if that is what it is.
pub fn corrupt_of(e: &io::Error) -> Option<&CorruptBlob> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CorruptBlob>())
}

fn read_err(e: io::Error, path: PathBuf) -> ReadError {
    match corrupt_of(&e) {
        Some(c) => ReadError::Corrupt {
            hash: c.hash,
            offset: c.offset,
            what: c.what,
        },
        None => ReadError::Io(IoError { path, source: e }),
    }
}
