//! The data directory and its `config.toml`.
//!
//! Precedence: command-line flag > environment variable > config file > default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The values a numeric key may take. `parse` refuses any other, naming the
/// key, the value and the range; nothing is clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub section: &'static str,
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    /// What the number counts, as the error shows it (`" bytes"`), or `""`.
    pub unit: &'static str,
}

impl Range {
    fn check(&self, value: Option<u64>) -> Result<(), (&'static str, &'static str, String)> {
        match value {
            Some(v) if v < self.min || v > self.max => Err((
                self.section,
                self.key,
                format!("{v} is out of range ({})", self.describe()),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        if self.max == u64::MAX {
            format!("at least {}{}", self.min, self.unit)
        } else {
            format!("{} to {}{}", self.min, self.max, self.unit)
        }
    }
}

/// `[node] max_connections`.
pub const NODE_MAX_CONNECTIONS: Range = Range {
    section: "node",
    key: "max_connections",
    min: 1,
    max: 16_384,
    unit: "",
};
/// `[node] alone_warning_secs`: 0 (never) to a day.
pub const NODE_ALONE_WARNING: Range = Range {
    section: "node",
    key: "alone_warning_secs",
    min: 0,
    max: 86_400,
    unit: " seconds",
};
/// `[gateway] max_connections`.
pub const GATEWAY_MAX_CONNECTIONS: Range = Range {
    section: "gateway",
    key: "max_connections",
    min: 1,
    max: 65_536,
    unit: "",
};
/// `[gateway] max_connections_per_ip`.
pub const GATEWAY_MAX_CONNECTIONS_PER_IP: Range = Range {
    section: "gateway",
    key: "max_connections_per_ip",
    min: 1,
    max: 65_536,
    unit: "",
};
/// `[gateway] fetches_per_client`: no more than the gateway's fetches in
/// all (`tamizdat_gateway::Config::fetches_total`, 32).
pub const GATEWAY_FETCHES_PER_CLIENT: Range = Range {
    section: "gateway",
    key: "fetches_per_client",
    min: 1,
    max: 32,
    unit: "",
};
/// `[store] quota`, in bytes: at least 64 KiB.
pub const STORE_QUOTA: Range = Range {
    section: "store",
    key: "quota",
    min: 64 << 10,
    max: u64::MAX,
    unit: " bytes",
};
/// Most publishers `[node] follow` may list: as many as a node follows.
pub const MAX_FOLLOWS: usize = tamizdat_node::feeds::MAX_FOLLOWS;

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
    /// Most HTTP connections at once: 1 to 65536. Default 1024.
    pub max_connections: Option<u64>,
    /// Most HTTP connections at once from one IP address (one /64 for IPv6):
    /// 1 to 65536. Default 64.
    pub max_connections_per_ip: Option<u64>,
    /// Most network fetches at once for one reader's address: 1 to 32 (the
    /// gateway's fetches in all). Default 4.
    pub fetches_per_client: Option<u64>,
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
        let set = |range: Range, value: Option<u64>, field: &mut usize| {
            range
                .check(value)
                .map_err(|(s, k, problem)| anyhow::anyhow!("{s}.{k}: {problem}"))?;
            if let Some(n) = value {
                // Within the range, which fits any usize.
                *field = usize::try_from(n)?;
            }
            anyhow::Ok(())
        };
        set(
            GATEWAY_MAX_CONNECTIONS,
            self.max_connections,
            &mut c.max_connections,
        )?;
        set(
            GATEWAY_MAX_CONNECTIONS_PER_IP,
            self.max_connections_per_ip,
            &mut c.max_connections_per_ip,
        )?;
        set(
            GATEWAY_FETCHES_PER_CLIENT,
            self.fetches_per_client,
            &mut c.fetches_per_client,
        )?;
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
    /// Count probes from peers at private addresses (RFC 1918, loopback,
    /// link-local) when finding out whether this node can be dialled
    /// (AutoNAT), and answer such peers' probes. Off by default: on the
    /// internet a peer on the same LAN can always dial back, which proves
    /// nothing. On for a network whose "public" side itself uses private
    /// addresses: a campus or a test network.
    #[serde(default)]
    pub nat_trust_private: bool,
    /// Most connections held at once: 1 to 16384. Default by profile: 256
    /// (desktop), 1024 (server), 64 (lowpower).
    pub max_connections: Option<u64>,
    /// While the node is connected to nobody, warn in the log this often,
    /// in seconds: 0 (never: a node kept apart on purpose, fed by bundles)
    /// to 86400. The first warning comes at most 10 s after start.
    /// Default 60.
    pub alone_warning_secs: Option<u64>,
    /// Publishers to follow (root public keys), besides those followed with
    /// `tamizdat follow`. At most [`MAX_FOLLOWS`] (1024), as many as a node
    /// follows in all.
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
    pub nat_trust_private: bool,
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
            nat_trust_private: self.nat_trust_private,
            // `parse` refused anything over 16384.
            max_connections: self
                .max_connections
                .map_or(max_connections, |n| u32::try_from(n).unwrap_or(u32::MAX)),
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
    /// `"500 MB"` or a plain number of bytes, at least 64 KiB. No limit when
    /// absent.
    pub quota: Option<bytesize::ByteSize>,
}

/// Resolves the data directory and creates it if needed, readable by this
/// user only (mode 0700; a directory that exists keeps its mode).
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match flag {
        Some(d) => d.to_owned(),
        None => directories::ProjectDirs::from("org", "tamizdat", "tamizdat")
            .context("no home directory found: pass --data-dir or set TAMIZDAT_DIR")?
            .data_dir()
            .to_owned(),
    };
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
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
        let (at, key) = e
            .span()
            .map(|s| {
                let (line, col) = line_col(text, s.start);
                let key = key_at(text, line)
                    .map(|k| format!("{k}: "))
                    .unwrap_or_default();
                (format!(":{line}:{col}"), key)
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {key}{}", path.display(), e.message())
    })?;
    if let Err((section, key, problem)) = cfg.validate() {
        let line = line_of(text, section, key)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        anyhow::bail!("{}{line}: {section}.{key}: {problem}", path.display());
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

/// `section.key` set on 1-based `line`, if that line sets one.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_owned();
        } else if i + 1 == line {
            let key = t.split_once('=')?.0.trim();
            let plain = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            return plain.then(|| {
                if section.is_empty() {
                    key.to_owned()
                } else {
                    format!("{section}.{key}")
                }
            });
        }
    }
    None
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
        let mut follow = std::collections::HashSet::new();
        for k in &self.node.follow {
            let key = k.parse::<tamizdat_sign::PublicKey>().map_err(|e| {
                (
                    "node",
                    "follow",
                    format!("{k:?} is not a publisher key: {e}"),
                )
            })?;
            follow.insert(key);
        }
        if follow.len() > MAX_FOLLOWS {
            return Err((
                "node",
                "follow",
                format!(
                    "{} publishers listed, over the limit of {MAX_FOLLOWS} a node can follow",
                    follow.len()
                ),
            ));
        }
        NODE_MAX_CONNECTIONS.check(self.node.max_connections)?;
        NODE_ALONE_WARNING.check(self.node.alone_warning_secs)?;
        STORE_QUOTA.check(self.store.quota.map(|q| q.as_u64()))?;
        for range in [
            (GATEWAY_MAX_CONNECTIONS, self.gateway.max_connections),
            (
                GATEWAY_MAX_CONNECTIONS_PER_IP,
                self.gateway.max_connections_per_ip,
            ),
            (GATEWAY_FETCHES_PER_CLIENT, self.gateway.fetches_per_client),
        ] {
            range.0.check(range.1)?;
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
