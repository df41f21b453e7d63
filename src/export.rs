//! `get -o FILE`: the blob is written to FILE while it is being fetched,
//! following the verified prefix the store holds, so the file is finished
//! moments after the fetch instead of a whole second pass later.
//!
//! Every byte is read back through the store's verifying reader; FILE
//! appears (by rename) only once the whole blob is in it and synced.

use std::{
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tamizdat_store::{ChunkNum, Hash, Store};
use tempfile::NamedTempFile;

const RUNNING: u8 = 0;
const FETCHED: u8 = 1;
const FAILED: u8 = 2;

/// How often the store is asked how far the fetch has come.
const POLL: Duration = Duration::from_millis(20);

/// A file being written beside a fetch.
#[derive(Debug)]
pub struct Follow {
    state: Arc<AtomicU8>,
    thread: JoinHandle<Result<()>>,
}

impl Follow {
    /// Starts writing `hash` to `out` as its bytes arrive in `store`. The
    /// bytes go to a new, uniquely named file beside `out` (never one that
    /// exists, never through a link), renamed to `out` when complete and
    /// removed on failure.
    pub fn start(store: Arc<Store>, hash: Hash, out: PathBuf) -> Result<Follow> {
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".tamizdat-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let state = Arc::new(AtomicU8::new(RUNNING));
        let seen = state.clone();
        let thread = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || follow(&store, &hash, tmp, &seen, &out))?;
        Ok(Follow { state, thread })
    }

    /// The fetch ended (`ok` says how); waits for the file to be finished.
    pub fn finish(self, ok: bool) -> Result<()> {
        self.state
            .store(if ok { FETCHED } else { FAILED }, Ordering::SeqCst);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => bail!("the export thread failed"),
        }
    }
}

/// Bytes from the start of the blob that are verified and held.
fn verified_prefix(store: &Store, hash: &Hash) -> Result<Option<(u64, u64)>> {
    let Some(info) = store.info(hash)? else {
        return Ok(None);
    };
    if info.complete {
        return Ok(Some((info.size, info.size)));
    }
    let ranges = store.verified_ranges(hash)?;
    let b = ranges.boundaries();
    let prefix = match b {
        [ChunkNum(0)] => info.size,
        [ChunkNum(0), ChunkNum(end), ..] => (end * 1024).min(info.size),
        _ => 0,
    };
    Ok(Some((prefix, info.size)))
}

fn follow(
    store: &Store,
    hash: &Hash,
    tmp: NamedTempFile,
    state: &AtomicU8,
    out: &Path,
) -> Result<()> {
    let shown = tmp.path().to_owned();
    let mut writer = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let mut written = 0u64;
    loop {
        // Read the state first: a fetch that ended before this look has
        // committed everything it will.
        let ended = state.load(Ordering::SeqCst);
        let (prefix, size) = verified_prefix(store, hash)?.unwrap_or((0, u64::MAX));
        if prefix > written {
            let mut reader = store.range_reader(hash, written..prefix)?;
            io::copy(&mut reader, &mut writer)
                .with_context(|| format!("writing {}", shown.display()))?;
            written = prefix;
        }
        if written == size {
            break;
        }
        match ended {
            RUNNING => std::thread::sleep(POLL),
            FAILED => bail!("the fetch failed; {} not written", out.display()),
            _ => bail!("the fetch ended with {written} of {size} bytes"),
        }
    }
    writer
        .flush()
        .with_context(|| format!("writing {}", shown.display()))?;
    drop(writer);
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", shown.display()))?;
    // A failure anywhere above drops `tmp`, which removes the file.
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
