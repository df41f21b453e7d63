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
    /// The reader's HTTP gateway (`tamizdat node`).
    #[serde(default)]
    pub gateway: GatewayConfig,
}

/// `[gateway]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to serve it: `"127.0.0.1:8080"` (the default), any `IP:PORT`,
    /// or `"off"`. `--gateway` overrides it. Binding a public address is an
    /// explicit choice: anyone reaching it can read what the node holds and
    /// make it fetch blobs (within the limits below).
    pub addr: Option<String>,
    /// Most HTTP connections at once. Default 1024.
    pub max_connections: Option<usize>,
    /// Most HTTP connections at once from one IP address (one /64 for IPv6).
    /// Default 64.
    pub max_connections_per_ip: Option<usize>,
    /// Most network fetches at once for one reader's address. Default 4.
    pub fetches_per_client: Option<usize>,
    /// The address readers reach the gateway by, when it is behind a
    /// reverse proxy (`"https://news.example.org"`): article links and QR
    /// codes use it. Default: the address each request was made to.
    pub public_url: Option<String>,
    /// Reverse proxies in front of the gateway (`["127.0.0.1"]`), whose
    /// `X-Forwarded-For` names the reader for the per-reader fetch limits.
    /// Default: none; the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The gateway's default address.
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:8080";

impl GatewayConfig {
    /// The gateway settings, or `None` when it is off. `flag` is `--gateway`.
    pub fn resolve(&self, flag: Option<&str>) -> Result<Option<tamizdat_gateway::Config>> {
        let addr = flag.or(self.addr.as_deref()).unwrap_or(DEFAULT_GATEWAY);
        if addr == "off" {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = addr.parse().with_context(|| {
            format!("gateway address {addr:?} is not IP:PORT (e.g. 127.0.0.1:8080) or \"off\"")
        })?;
        let mut c = tamizdat_gateway::Config::new(addr);
        if let Some(n) = self.max_connections {
            c.max_connections = n.max(1);
        }
        if let Some(n) = self.max_connections_per_ip {
            c.max_connections_per_ip = n.max(1);
        }
        if let Some(n) = self.fetches_per_client {
            c.fetches_per_client = n.max(1);
        }
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 200
                && url.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                anyhow::bail!("public_url {url:?} is not an http:// or https:// URL");
            }
            c.public_url = Some(url.clone());
        }
        for p in &self.trusted_proxies {
            let ip = p
                .parse()
                .with_context(|| format!("trusted_proxies: {p:?} is not an IP address"))?;
            c.trusted_proxies.push(ip);
        }
        Ok(Some(c))
    }
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
    /// What kind of machine this is; sets the defaults below. `--profile`
    /// overrides it.
    pub profile: Option<Profile>,
    /// Find peers on the local network by multicast DNS. Default: on for
    /// `desktop` and `lowpower`, off for `server`.
    pub mdns: Option<bool>,
    /// Relay connections for peers behind NAT. Only worth it with a public
    /// address; off unless set.
    #[serde(default)]
    pub relay_server: bool,
    /// Most connections held at once. Default by profile: 256 (desktop),
    /// 1024 (server), 64 (lowpower).
    pub max_connections: Option<u32>,
    /// Publishers to follow (root public keys), besides those followed with
    /// `tamizdat follow`.
    #[serde(default)]
    pub follow: Vec<String>,
}

/// The kind of machine a node runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A laptop or desktop: finds peers on the local network too.
    #[default]
    Desktop,
    /// A machine with a public address: no multicast, more connections.
    Server,
    /// A Raspberry Pi or an old phone: fewer connections and transfers.
    Lowpower,
}

/// Node settings once the profile's defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTuning {
    pub mdns: bool,
    pub relay_server: bool,
    pub max_connections: u32,
    pub max_streams: usize,
    pub fetch_parallel: usize,
}

impl NodeConfig {
    /// The settings for `profile` (the command line's, else the file's),
    /// with explicit keys of the file taking precedence.
    pub fn tuning(&self, profile: Option<Profile>) -> NodeTuning {
        let profile = profile.or(self.profile).unwrap_or_default();
        let (mdns, max_connections, max_streams, fetch_parallel) = match profile {
            Profile::Desktop => (true, 256, 32, 2),
            Profile::Server => (false, 1024, 64, 2),
            Profile::Lowpower => (true, 64, 8, 1),
        };
        NodeTuning {
            mdns: self.mdns.unwrap_or(mdns),
            relay_server: self.relay_server,
            max_connections: self.max_connections.unwrap_or(max_connections),
            max_streams,
            fetch_parallel,
        }
    }
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

/// The config file of a data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}

/// Reads `DIR/config.toml`, or defaults when there is none.
pub fn load(dir: &Path) -> Result<Config> {
    let path = path(dir);
    match read(&path)? {
        None => Ok(Config::default()),
        Some(text) => parse(&path, &text),
    }
}

/// The text of a config file (at most 1 MiB), or `None` when it is absent.
fn read(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if meta.len() > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "{} is {} bytes, over the {MAX_CONFIG_BYTES}-byte limit",
            path.display(),
            meta.len()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map(Some)
}

/// Parses a config and checks every value, naming the file, line and key of
/// the first problem: `FILE:LINE:COL: ...`.
pub fn parse(path: &Path, text: &str) -> Result<Config> {
    let cfg: Config = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (line, col) = line_col(text, s.start);
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {}", path.display(), e.message())
    })?;
    if let Err((section, key, problem)) = cfg.validate() {
        let line = line_of(text, section, key)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        anyhow::bail!("{}{line}: [{section}] {key}: {problem}", path.display());
    }
    Ok(cfg)
}

/// Checks a config file (`tamizdat config check`).
pub fn check(path: &Path) -> Result<Config> {
    let text = read(path)?.with_context(|| format!("{} does not exist", path.display()))?;
    parse(path, &text)
}

/// 1-based line and column of byte `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The line where `key` is set in `[section]`, if it can be found.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = name.trim().to_owned();
        } else if current == section
            && t.split('=').next().map(str::trim) == Some(key)
            && t.contains('=')
        {
            return Some(i + 1);
        }
    }
    None
}

impl Config {
    /// Checks the values serde cannot: addresses, keys. Names the section,
    /// the key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        let addrs = |key: &'static str, list: &[String]| {
            for a in list {
                a.parse::<tamizdat_node::Multiaddr>()
                    .map_err(|e| ("node", key, format!("{a:?} is not a multiaddr: {e}")))?;
            }
            Ok(())
        };
        addrs("listen", self.node.listen.as_deref().unwrap_or_default())?;
        addrs("bootstrap", &self.node.bootstrap)?;
        for k in &self.node.follow {
            k.parse::<tamizdat_sign::PublicKey>().map_err(|e| {
                (
                    "node",
                    "follow",
                    format!("{k:?} is not a publisher key: {e}"),
                )
            })?;
        }
        if self.node.max_connections == Some(0) {
            return Err(("node", "max_connections", "must be at least 1".into()));
        }
        self.gateway.resolve(None).map_err(|e| {
            let text = format!("{e:#}");
            let key = ["public_url", "trusted_proxies"]
                .into_iter()
                .find(|k| text.contains(k))
                .unwrap_or("addr");
            ("gateway", key, format!("{e:#}"))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_set_defaults_and_explicit_keys_win() {
        let cfg: Config = toml::from_str("[node]\nprofile = \"server\"\n").unwrap();
        let t = cfg.node.tuning(None);
        assert!(!t.mdns && !t.relay_server);
        assert_eq!(t.max_connections, 1024);
        // The command line's profile wins over the file's.
        assert!(cfg.node.tuning(Some(Profile::Desktop)).mdns);
        let cfg: Config = toml::from_str(
            "[node]\nprofile = \"lowpower\"\nmdns = false\nrelay_server = true\nmax_connections = 10\n",
        )
        .unwrap();
        let t = cfg.node.tuning(None);
        assert!(!t.mdns && t.relay_server);
        assert_eq!((t.max_connections, t.fetch_parallel), (10, 1));
        assert!(
            Config::default().node.tuning(None).mdns,
            "desktop by default"
        );
        let err = toml::from_str::<Config>("[node]\nprofile = \"laptop\"\n").unwrap_err();
        assert!(err.to_string().contains("laptop"), "{err}");
    }
}
