//! Errors, one enum per kind of operation.

use std::{io, path::PathBuf};

use crate::{Hash, record::RecordError};

/// An I/O failure on a named file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    /// The file or directory involved.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: io::Error,
}

/// A failure of the metadata index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The embedded database failed.
    #[error("store index: {0}")]
    Db(#[from] redb::Error),
    /// An entry in the index could not be decoded.
    #[error("store index entry for {hash}: {source}")]
    Record {
        /// The blob whose entry is damaged.
        hash: Hash,
        /// What was wrong.
        #[source]
        source: RecordError,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A directory or file of the store could not be created or read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another process has the store open. `pid` is the holder's, from the
    /// store's lock file (`None` when it has not written it yet, or is a
    /// version without that file).
    #[error("the store at {} is in use by {}", .dir.display(), holder(.pid))]
    InUse {
        /// The store directory.
        dir: PathBuf,
        /// The process that holds it.
        pid: Option<u32>,
    },
    /// The index could not be opened.
    #[error("cannot open the store index {path}: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: redb::Error,
    },
    /// The index is damaged (or a recovery of it was interrupted); it is
    /// not used. [`crate::Store::recover`] rebuilds it from the blob files.
    #[error(
        "the store index {path} is damaged ({reason}); refusing to use it: \
         recovery rebuilds it from the blob files, re-verifying each"
    )]
    Damaged {
        /// The index file.
        path: PathBuf,
        /// What the database said.
        reason: String,
    },
    /// The index is missing or empty while blob files exist: opening it as a
    /// new store would lose track of them (and `gc` would delete them).
    #[error(
        "the store index {path} is missing or empty, but {dir} holds blob files; \
         refusing to open it as a new store: recovery rebuilds the index from the files"
    )]
    IndexLost {
        /// The index file.
        path: PathBuf,
        /// The store's `blobs/` directory.
        dir: PathBuf,
    },
}

/// Why a blob could not be written (by `add` or by receiving verified ranges).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The write would take the store over its configured quota.
    #[error("store full: quota is {quota} bytes, {used} in use, this write needs {needed} more")]
    StoreFull {
        /// The configured quota in bytes.
        quota: u64,
        /// Bytes in use (and reserved by writes in progress) before this write.
        used: u64,
        /// Bytes this write needs.
        needed: u64,
    },
    /// The filesystem holding the store has no space left.
    #[error("disk full while writing {path}")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// The blob is larger than the store accepts.
    #[error("blob of {size} bytes is over the store's limit of {max} bytes")]
    TooLarge {
        /// Claimed or actual size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The source file changed size while it was being added.
    #[error("{path} changed while it was being added")]
    SourceChanged {
        /// The source file.
        path: PathBuf,
    },
    /// Reading the input failed.
    #[error("reading {path}: {source}")]
    Source {
        /// The input (`-` for stdin).
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Received bytes did not verify against the hash.
    #[error(
        "blob {hash}: received data failed verification ({detail}); kept {kept} verified bytes"
    )]
    Verification {
        /// The blob.
        hash: Hash,
        /// Where it failed.
        detail: String,
        /// Bytes received in this call that verified and were kept.
        kept: u64,
    },
    /// The stream ended or broke before everything asked for arrived.
    #[error("blob {hash}: transfer interrupted ({detail}); kept {kept} verified bytes")]
    Interrupted {
        /// The blob.
        hash: Hash,
        /// What happened.
        detail: String,
        /// Bytes received in this call that verified and were kept.
        kept: u64,
    },
    /// The sender's claimed size disagrees with the size already proven.
    #[error("blob {hash}: sender claims {claimed} bytes, the store has proven {known}")]
    SizeMismatch {
        /// The blob.
        hash: Hash,
        /// The size the sender claimed.
        claimed: u64,
        /// The size already proven.
        known: u64,
    },
    /// The first ranges received for a blob must include its last chunk group,
    /// which proves its size.
    #[error("blob {0}: the first ranges received must include the last chunk group")]
    SizeUnproven(Hash),
    /// A file of the store could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Why a blob could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store holds no such blob.
    #[error("blob {0} is not in the store")]
    NotFound(Hash),
    /// The blob is only partly here and the requested bytes are not.
    #[error("blob {hash} is partial: the requested bytes are not verified here yet")]
    NotAvailable {
        /// The blob.
        hash: Hash,
    },
    /// The bytes on disk no longer match the hash: never served.
    #[error(
        "blob {hash} is corrupt on disk ({what} at byte offset {offset}); run `tamizdat scrub`"
    )]
    Corrupt {
        /// The blob.
        hash: Hash,
        /// Start of the first chunk group that failed.
        offset: u64,
        /// `"data"` or `"outboard"`.
        what: &'static str,
    },
    /// A file of the store could not be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Why a pin, list, gc or scrub operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store holds no such blob.
    #[error("blob {0} is not in the store")]
    NotFound(Hash),
    /// No pin of that name exists.
    #[error("no pin named {0:?}")]
    NoSuchPin(String),
    /// The pin exists but does not hold that blob.
    #[error("pin {name:?} does not hold {hash}")]
    NotPinned {
        /// The pin.
        name: String,
        /// The blob.
        hash: Hash,
    },
    /// A pin name is empty, too long, or has control characters.
    #[error("invalid pin name {0:?}: 1 to 128 characters, no control characters")]
    InvalidPinName(String),
    /// A file of the store could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The store could not be opened (during recovery).
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Builds an [`IoError`] for `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> IoError {
    let path = path.into();
    move |source| IoError { path, source }
}

/// True when the error means the filesystem is out of space.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(28) // ENOSPC
        || e.raw_os_error() == Some(122) // EDQUOT
}

/// Who holds a store, as [`OpenError::InUse`] says it.
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another tamizdat process (pid {pid})"),
        None => "another tamizdat process".to_owned(),
    }
}
