//! The command line, as clap definitions only. Execution lives in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tamizdat: keep signed journalism reachable after it is blocked.
///
/// Blobs are named by their BLAKE3 hash: the same 64 hex digits `b3sum` prints.
#[derive(Debug, Parser)]
#[command(name = "tamizdat", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The data directory (store, keys, config.toml). Created on first use.
    /// Default: the platform's data directory for tamizdat.
    #[arg(long, global = true, env = "TAMIZDAT_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store files; print `HASH  NAME` per file, exactly as `b3sum` does.
    ///
    /// A file is acknowledged (its line printed) only once its data, proof
    /// tree and index entry are on disk.
    Add(AddArgs),
    /// Write a blob to stdout, verifying every chunk as it is read.
    Cat {
        /// The blob's hash (64 lowercase hex digits).
        hash: String,
    },
    /// List blobs: hash, size, complete or partial, pins.
    Ls,
    /// Keep blobs from garbage collection under a named pin.
    Pin {
        /// The pin's name.
        name: String,
        /// Blobs to add to the pin.
        #[arg(required = true)]
        hashes: Vec<String>,
    },
    /// Remove blobs from a pin, or the whole pin when no hash is given.
    Unpin {
        /// The pin's name.
        name: String,
        /// Blobs to release (all of the pin's when none).
        hashes: Vec<String>,
    },
    /// List pins and the blobs they hold.
    Pins,
    /// Delete every blob that no pin holds.
    Gc {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every blob; quarantine those whose bytes no longer match.
    ///
    /// Exits non-zero when anything was found damaged.
    Scrub,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Files to add; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also pin what is added under this name.
    #[arg(long, value_name = "NAME")]
    pub pin: Option<String>,
}
