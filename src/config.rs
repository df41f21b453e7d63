//! The data directory and its `config.toml`.
//!
//! Precedence: command-line flag > environment variable > config file > default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The contents of `DIR/config.toml`. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Blob store settings.
    #[serde(default)]
    pub store: StoreConfig,
    /// Network node settings (`tamizdat node`, `tamizdat get`).
    #[serde(default)]
    pub node: NodeConfig,
}

/// `[node]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Addresses to listen on, as multiaddrs. Default: TCP and QUIC on port
    /// 4001, all interfaces. `--listen` replaces the list.
    pub listen: Option<Vec<String>>,
    /// Peers to join through, each ending in `/p2p/PEER_ID`. `--bootstrap`
    /// adds to the list.
    #[serde(default)]
    pub bootstrap: Vec<String>,
}

/// `[store]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Most bytes the store may hold, data and proofs together: `"20 GiB"`,
    /// `"500 MB"` or a plain number of bytes. No limit when absent.
    pub quota: Option<bytesize::ByteSize>,
}

/// Resolves the data directory and creates it if needed.
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match flag {
        Some(d) => d.to_owned(),
        None => directories::ProjectDirs::from("org", "tamizdat", "tamizdat")
            .context("no home directory found: pass --data-dir or set TAMIZDAT_DIR")?
            .data_dir()
            .to_owned(),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    Ok(dir)
}

/// Reads `DIR/config.toml`, or defaults when there is none.
pub fn load(dir: &Path) -> Result<Config> {
    let path = dir.join("config.toml");
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if meta.len() > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "{} is {} bytes, over the {MAX_CONFIG_BYTES}-byte limit",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
}
