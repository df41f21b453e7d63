//! Shared by the gateway's tests: a real node and gateway on 127.0.0.1
//! port 0, and signed test articles.
#![allow(dead_code)]

pub mod cdp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tamizdat_gateway::Gateway;
use tamizdat_node::{Client, Config, Multiaddr, Protocol, identity};
use tamizdat_sign::{Delegation, Entry, Manifest, SecretKey, Signed};
use tamizdat_store::{Hash, Options, Store};
use tempfile::TempDir;

/// A 16×16 red PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x91, 0x68,
    0x36, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x38, 0x21, 0x27, 0x47,
    0x12, 0x62, 0x18, 0xd5, 0x30, 0xaa, 0x61, 0xf8, 0x6a, 0x00, 0x00, 0xe4, 0x62, 0x04, 0x10, 0xe9,
    0x9b, 0x80, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A node with its gateway.
pub struct Site {
    pub dir: TempDir,
    pub store: Arc<Store>,
    pub node: Client,
    pub addr: Multiaddr,
    pub gateway: Gateway,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The file holding a blob's bytes on disk.
    pub fn data_file(&self, hash: &Hash) -> PathBuf {
        find(self.dir.path(), &hash.to_string()).expect("blob file")
    }
}

/// The file called `name` somewhere under `dir`.
pub fn find(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// Starts a node and its gateway; `tweak` may change the gateway's config.
pub async fn site(tweak: impl FnOnce(&mut tamizdat_gateway::Config)) -> Site {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let config = Config::new(
        identity::Keypair::generate_ed25519(),
        vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let node = tamizdat_node::spawn_with_metrics(config, store.clone(), &mut registry).unwrap();
    let listen = node.wait_listening(1).await.unwrap();
    let addr = listen[0].clone().with(Protocol::P2p(node.peer_id()));
    let mut gc = tamizdat_gateway::Config::new("127.0.0.1:0".parse().unwrap());
    tweak(&mut gc);
    let gateway = tamizdat_gateway::spawn(gc, node.clone(), registry)
        .await
        .unwrap();
    let base = gateway.url();
    Site {
        dir,
        store,
        node,
        addr,
        gateway,
        base,
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An outlet: a root key and a signing key it delegated to.
pub struct Outlet {
    pub root: SecretKey,
    pub signing: SecretKey,
    pub delegation: Signed<Delegation>,
}

impl Outlet {
    pub fn new() -> Self {
        let root = SecretKey::generate().unwrap();
        let signing = SecretKey::generate().unwrap();
        let delegation = Signed::sign(
            Delegation {
                root: root.public(),
                key: signing.public(),
                not_before: now() - 3600,
                not_after: now() + 30 * 86400,
                feed: None,
            },
            &root,
        )
        .unwrap();
        Self {
            root,
            signing,
            delegation,
        }
    }
}

/// What a test article holds.
pub struct Draft<'a> {
    pub seq: u64,
    pub prev: Option<Hash>,
    pub title: &'a str,
    pub lang: &'a str,
    pub files: Vec<(&'a str, Vec<u8>, &'a str)>,
    pub supersedes: Option<Hash>,
}

/// Stores the files, signs the manifest with the outlet's signing key and
/// publishes it through the node. Returns the manifest's hash.
pub async fn publish(site: &Site, outlet: &Outlet, d: Draft<'_>) -> (Hash, Signed<Manifest>) {
    let signed = sign(&site.store, outlet, d);
    let id = site.node.publish(signed.bytes()).await.unwrap();
    (id, signed)
}

/// Stores the files in `store` and signs the manifest with the outlet's
/// signing key (no node involved).
pub fn sign(store: &Store, outlet: &Outlet, d: Draft<'_>) -> Signed<Manifest> {
    let mut entries = Vec::new();
    for (path, bytes, media) in &d.files {
        let added = store.add_bytes(bytes).unwrap();
        entries.push(Entry {
            path: (*path).into(),
            hash: *added.hash.as_bytes(),
            size: added.size,
            media_type: (*media).into(),
        });
    }
    let m = Manifest {
        publisher: outlet.root.public(),
        signer: outlet.signing.public(),
        delegation: Some(outlet.delegation.bytes().to_vec()),
        feed: "main".into(),
        seq: d.seq,
        prev: d.prev.map(|h| *h.as_bytes()),
        created: now(),
        title: d.title.into(),
        lang: d.lang.into(),
        summary: None,
        supersedes: d.supersedes.map(|h| *h.as_bytes()),
        entries,
    };
    Signed::sign(m, &outlet.signing).unwrap()
}

/// Deterministic test bytes.
pub fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
