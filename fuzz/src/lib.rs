//! Helpers shared by the fuzz targets: the test-vector keys and objects of
//! `docs/protocol.md` §10, and the binary's own control-socket and config
//! code, compiled here from `src/` since the binary has no library target.

#![allow(dead_code, missing_docs)]

use tamizdat_sign::{Delegation, Entry, Manifest, SecretKey, Signed};

/// The test vectors' root key (seed `00 01 … 1f`).
pub fn root() -> SecretKey {
    SecretKey::from_seed(&std::array::from_fn(|i| i as u8))
}

/// The test vectors' signing key (seed `20 21 … 3f`).
pub fn signing() -> SecretKey {
    SecretKey::from_seed(&std::array::from_fn(|i| 0x20 + i as u8))
}

/// A time inside the vector delegation's validity, just after the vector
/// manifest was signed (Unix seconds).
pub const NOW: u64 = 1_780_000_100;

/// The vector delegation: root to the signing key, for feed `main`, 2026.
pub fn delegation() -> Signed<Delegation> {
    Signed::sign(
        Delegation {
            root: root().public(),
            key: signing().public(),
            not_before: 1_767_225_600,
            not_after: 1_798_761_600,
            feed: Some("main".into()),
        },
        &root(),
    )
    .expect("vector delegation")
}

/// A root-signed manifest of `seq` naming one file per `(path, bytes)`.
pub fn manifest(
    seq: u64,
    prev: Option<[u8; 32]>,
    files: &[(&str, &[u8], &str)],
) -> Signed<Manifest> {
    let key = root();
    Signed::sign(
        Manifest {
            publisher: key.public(),
            signer: key.public(),
            delegation: None,
            feed: "main".into(),
            seq,
            prev,
            created: NOW - 100 + seq,
            title: format!("Article {seq}"),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries: files
                .iter()
                .map(|(path, bytes, media)| Entry {
                    path: (*path).into(),
                    hash: *blake3::hash(bytes).as_bytes(),
                    size: bytes.len() as u64,
                    media_type: (*media).into(),
                })
                .collect(),
        },
        &key,
    )
    .expect("manifest")
}

/// A scratch directory on a memory file system when there is one: the
/// targets that write files (staging, a store, an export) stay fast.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let b = {
        let mut b = tempfile::Builder::new();
        b.prefix("tamizdat-fuzz-");
        b
    };
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return d;
        }
    }
    b.tempdir().expect("a temporary directory")
}

/// The binary's `src/export.rs` (its control socket refers to it).
#[path = "../../src/export.rs"]
pub mod export;

/// The binary's `src/config.rs`.
#[path = "../../src/config.rs"]
pub mod config;

/// The binary's `src/control.rs` (copied by `build.rs` without its inner
/// doc comment), with the entry points the `control` target needs: the
/// frame functions are private to that module.
pub mod control {
    include!(concat!(env!("OUT_DIR"), "/control.rs"));

    /// Frame tags, as the socket uses them.
    pub const TAGS: [u8; 5] = [DATA, VALUE, ERROR, PROGRESS, END];

    /// What the node does with the first frame of a connection, short of
    /// dispatching it: the frame (within `MAX_REQUEST`) and its request.
    pub fn read_request(r: &mut impl Read) -> io::Result<Option<(u8, Result<Request, String>)>> {
        Ok(read_frame(r, MAX_REQUEST)?.map(|(tag, payload)| {
            let req = if tag == VALUE {
                postcard::from_bytes::<Request>(&payload).map_err(|e| e.to_string())
            } else {
                Err(format!("expected a request, got frame {tag}"))
            };
            (tag, req)
        }))
    }

    /// One frame with a limit, as `read_frame` reads it.
    pub fn frame(r: &mut impl Read, max: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
        read_frame(r, max)
    }

    /// A frame as `write_frame` writes it.
    pub fn write(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
        write_frame(w, tag, payload)
    }

    /// A request encoded as the client sends it.
    pub fn encode_request(req: &Request) -> io::Result<Vec<u8>> {
        encode(req)
    }

    /// The data stream of an `Add` or a `Read` (DATA frames up to the
    /// first other frame), read as the node and the client read it, at
    /// most `limit` bytes; returns the bytes and the frame that ended it.
    pub fn data(r: impl Read, limit: u64) -> (io::Result<Vec<u8>>, Option<(u8, Vec<u8>)>) {
        let mut d = DataReader::new(r);
        let mut out = Vec::new();
        let res = (&mut d).take(limit).read_to_end(&mut out).map(|_| out);
        (res, d.end)
    }
}
