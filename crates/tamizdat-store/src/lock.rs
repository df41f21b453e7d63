//! The store's lock file, `DIR/lock`: the one process that has the store
//! open holds an exclusive lock on it (`flock`, released by the kernel
//! when the process ends, however it ends) and writes its PID into it, so
//! that a process refused can name the holder.

use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::Path,
};

use crate::error::{OpenError, io_err};

/// The lock file's name in the store directory.
pub(crate) const LOCK_FILE: &str = "lock";

/// Longest lock file read: a PID and a newline.
const MAX_LOCK_TEXT: u64 = 32;

/// Held for as long as the store is open.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of the store in `dir` (created if needed) and records
    /// this process's PID in it, or says who holds it.
    pub(crate) fn take(dir: &Path) -> Result<Self, OpenError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::InUse {
                    dir: dir.to_owned(),
                    pid: holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e).into()),
        }
        // Not synced: after a crash the lock is free whatever the file says,
        // and the PID is read only while someone holds the lock.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err(&path))?;
        Ok(Self { _file: file })
    }
}

/// The PID the holder wrote, if it has written one yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(MAX_LOCK_TEXT).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
