//! `get -o FILE`: the blob is written to FILE while it is being fetched,
//! following the verified prefix the store holds, so the file is finished
//! moments after the fetch instead of a whole second pass later.
//!
//! Every byte is read back through the store's verifying reader; FILE
//! appears (by rename) only once the whole blob is in it and synced.

use std::{
    fs::File,
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
    /// Starts writing `hash` to `out` as its bytes arrive in `store`.
    pub fn start(store: Arc<Store>, hash: Hash, out: PathBuf) -> Result<Follow> {
        let tmp = out.with_extension("tamizdat-partial");
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let state = Arc::new(AtomicU8::new(RUNNING));
        let seen = state.clone();
        let thread = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || {
                let result = follow(&store, &hash, file, &seen, &tmp, &out);
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                result
            })?;
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
    file: File,
    state: &AtomicU8,
    tmp: &Path,
    out: &Path,
) -> Result<()> {
    let mut writer = BufWriter::with_capacity(1 << 20, &file);
    let mut written = 0u64;
    loop {
        // Read the state first: a fetch that ended before this look has
        // committed everything it will.
        let ended = state.load(Ordering::SeqCst);
        let (prefix, size) = verified_prefix(store, hash)?.unwrap_or((0, u64::MAX));
        if prefix > written {
            let mut reader = store.range_reader(hash, written..prefix)?;
            io::copy(&mut reader, &mut writer)
                .with_context(|| format!("writing {}", tmp.display()))?;
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
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(writer);
    file.sync_all()
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
