//! `tamizdat demo`: a small local network with a demo outlet.
//!
//! One process runs a publisher's node and a few volunteers' nodes on
//! 127.0.0.1, each with its own store in one temporary directory. A demo
//! outlet (a root key and a signing key it delegates to) publishes a sample
//! article through the publisher's node. The volunteers follow the outlet,
//! so they fetch, verify and pin it. The first volunteer serves it to the
//! reader's browser. Ctrl-C or SIGTERM stops everything and removes the
//! directory.
//!
//! Output: stdout carries only the article's URL, on a line of its own.
//! Everything else goes to stderr.

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tamizdat_gateway::Gateway;
use tamizdat_node::{
    Client, Config, Multiaddr, Protocol, feeds, identity, prometheus_client::registry::Registry,
};
use tamizdat_sign::{
    Delegation, Entry, Manifest, PublicKey, SecretKey, Signed, TrustState, Verifier,
};
use tamizdat_store::{Hash, Options, Store};
use tokio::time::Instant;

use super::keys::{format_time, now};
use crate::cli::DemoArgs;

/// The name every volunteer gives the demo outlet; the badge shows it.
const OUTLET: &str = "Demo Outlet";
/// The feed the demo article goes to.
const FEED: &str = "main";
/// The sample article's picture: the demo network, as a PNG.
const PICTURE: &[u8] = include_bytes!("demo.png");
/// How long the signing key's delegation lasts.
const DELEGATION_SECS: u64 = 24 * 60 * 60;
/// Longest wait for a node to listen.
const LISTEN_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for the volunteers to join the publisher's gossip mesh.
const MESH_LIMIT: Duration = Duration::from_secs(15);
/// After this long without the article, a volunteer asks the publisher
/// for the feed's head directly (catch-up) instead of waiting on gossip.
const CATCH_UP_AFTER: Duration = Duration::from_secs(5);
/// Longest wait for every volunteer to hold the article.
const REPLICATION_LIMIT: Duration = Duration::from_secs(60);
/// How often progress is looked at.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("tamizdat-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo")?;
    eprintln!(
        "tamizdat demo: a publisher and {} on 127.0.0.1",
        match args.volunteers {
            1 => "1 volunteer".to_owned(),
            n => format!("{n} volunteers"),
        }
    );
    eprintln!("demo directory: {} (removed on exit)", dir.path().display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        tokio::pin!(stop);
        let mut net = Network::default();
        let started = tokio::select! {
            r = start(args, dir.path(), &mut net) => Some(r),
            () = &mut stop => None,
        };
        let result = match started {
            Some(Ok(())) => {
                stop.await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => {
                eprintln!("interrupted before the demo was ready");
                Ok(())
            }
        };
        eprintln!(
            "stopping {} node(s){}",
            net.nodes.len(),
            if net.gateway.is_some() {
                " and the gateway"
            } else {
                ""
            }
        );
        net.stop().await;
        result
    });
    // Blocking store calls still running must not hold up the stop: every
    // store write is atomic, and the whole directory goes anyway.
    rt.shutdown_timeout(Duration::from_secs(2));
    let path = dir.path().to_owned();
    let removed = dir
        .close()
        .with_context(|| format!("cannot remove the demo directory {}", path.display()));
    // The demo's own failure says more than the clean-up's.
    result?;
    removed?;
    eprintln!("removed {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// One node of the demo.
struct Peer {
    /// "publisher", "volunteer 1", ...
    name: String,
    client: Client,
    store: Arc<Store>,
    /// Its dialable address, ending in `/p2p/PEER_ID`.
    addr: Multiaddr,
}

/// Everything the demo started, to stop it whatever happens.
#[derive(Default)]
struct Network {
    nodes: Vec<Peer>,
    gateway: Option<Gateway>,
}

impl Network {
    /// Starts a node in `root/NAME` listening on loopback only; with
    /// `registry`, its metrics go there.
    async fn add(
        &mut self,
        root: &Path,
        name: String,
        bootstrap: Vec<Multiaddr>,
        registry: Option<&mut Registry>,
    ) -> Result<&Peer> {
        let dir = root.join(name.replace(' ', "-"));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let store = Arc::new(
            Store::open(&dir, Options::default())
                .with_context(|| format!("cannot open a store in {}", dir.display()))?,
        );
        let mut config = Config::new(
            identity::Keypair::generate_ed25519(),
            vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        );
        // Nothing leaves loopback: the only peers are the demo's own, reached
        // through the publisher's address; no multicast discovery, no relay.
        // (AutoNAT probes only through peers at global addresses: none here.)
        config.bootstrap = bootstrap;
        config.mdns = false;
        config.relay_server = false;
        config.kad_server = Some(true);
        config.bootstrap_retry = Duration::from_secs(1);
        let client = match registry {
            Some(r) => tamizdat_node::spawn_with_metrics(config, store.clone(), r),
            None => tamizdat_node::spawn(config, store.clone()),
        }
        .with_context(|| format!("cannot start the {name}'s node"))?;
        let listening = tokio::time::timeout(LISTEN_LIMIT, client.wait_listening(1)).await;
        let addr = match listening {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                addrs[0].clone().with(Protocol::P2p(client.peer_id()))
            }
            Ok(Err(e)) => {
                client.shutdown().await;
                return Err(e).with_context(|| format!("the {name}'s node cannot listen"));
            }
            _ => {
                client.shutdown().await;
                bail!("the {name}'s node did not listen on 127.0.0.1 within {LISTEN_LIMIT:?}");
            }
        };
        eprintln!("{name:<12} node {} on {}", client.peer_id(), addr);
        self.nodes.push(Peer {
            name,
            client,
            store,
            addr,
        });
        Ok(self.nodes.last().expect("just pushed"))
    }

    async fn stop(self) {
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
        for p in &self.nodes {
            p.client.shutdown().await;
        }
    }
}

/// Starts the network, publishes, waits for replication and prints the URL.
async fn start(args: &DemoArgs, root: &Path, net: &mut Network) -> Result<()> {
    // The outlet: a root key, and a signing key it delegates to, as a
    // newsroom would keep them (the root offline, the signing key at hand).
    let outlet = SecretKey::generate()?;
    let signing = SecretKey::generate()?;
    let from = now();
    let delegation = Signed::sign(
        Delegation {
            root: outlet.public(),
            key: signing.public(),
            not_before: from,
            not_after: from + DELEGATION_SECS,
            feed: Some(FEED.into()),
        },
        &outlet,
    )?;
    eprintln!(
        "outlet {OUTLET:?}: root key fingerprint {}",
        outlet.public().fingerprint()
    );
    eprintln!(
        "  signing key {} delegated until {}",
        signing.public().fingerprint(),
        format_time(from + DELEGATION_SECS)
    );

    let publisher = net.add(root, "publisher".into(), Vec::new(), None).await?;
    let (publisher_id, publisher_addr) = (publisher.client.peer_id(), publisher.addr.clone());
    publisher
        .client
        .follow(outlet.public(), Some(OUTLET.into()))
        .await?;
    for i in 1..=args.volunteers {
        let mut registry = Registry::default();
        let first = i == 1;
        let v = net
            .add(
                root,
                format!("volunteer {i}"),
                vec![publisher_addr.clone()],
                first.then_some(&mut registry),
            )
            .await?;
        v.client
            .follow(outlet.public(), Some(OUTLET.into()))
            .await?;
        if first {
            // The reader's gateway, on a volunteer: the publisher's node
            // could be blocked and the article would still be served.
            // Started early so that a port in use stops the demo at once.
            let gateway = serve(v.client.clone(), args.port, registry).await?;
            eprintln!("gateway on volunteer 1: {}/", gateway.url());
            net.gateway = Some(gateway);
        }
    }
    let volunteers: Vec<_> = net.nodes[1..].iter().map(|p| p.client.peer_id()).collect();
    wait_for_mesh(&net.nodes[0].client, &volunteers).await?;

    let signed = article(
        &net.nodes[0],
        &outlet,
        &signing,
        &delegation,
        args.volunteers,
    )
    .await?;
    let id = net.nodes[0].client.publish(signed.bytes()).await?;
    eprintln!(
        "published {:?}: manifest {id} and {} files, announced to the outlet's followers",
        signed.body().title,
        signed.body().entries.len()
    );

    wait_for_replication(&net.nodes[1..], &signed, publisher_id).await?;

    let gateway = net
        .gateway
        .as_ref()
        .expect("started with the first volunteer");
    let url = format!("{}/m/{id}", gateway.url());
    eprintln!("volunteer 1 serves it to readers:");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{url}")?;
    out.flush()?;
    drop(out);
    eprintln!("open it in a browser: the badge shows who signed it. Ctrl-C stops the demo.");
    Ok(())
}

/// The reader's gateway for `node`, on 127.0.0.1:`port`.
async fn serve(node: Client, port: u16, registry: Registry) -> Result<Gateway> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tamizdat_gateway::spawn(tamizdat_gateway::Config::new(addr), node, registry)
        .await
        .with_context(|| {
            format!(
                "cannot serve the gateway on {addr} (in use? choose another with --port PORT, \
                 or --port 0 for any free port)"
            )
        })
}

/// Waits until every volunteer is in the publisher's gossip mesh for the
/// outlet, so the announcement reaches them. After the limit the demo goes
/// on: catch-up brings the article to whoever missed it.
async fn wait_for_mesh(publisher: &Client, volunteers: &[tamizdat_node::PeerId]) -> Result<()> {
    let deadline = Instant::now() + MESH_LIMIT;
    loop {
        let peers = publisher.gossip_peers().await?;
        let joined = volunteers
            .iter()
            .filter(|v| peers.iter().any(|p| p.peer == **v && p.in_mesh))
            .count();
        if joined == volunteers.len() {
            eprintln!("every volunteer joined the outlet's gossip mesh");
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{joined} of {} volunteers joined the outlet's gossip mesh within {MESH_LIMIT:?}; \
                 the others will catch up",
                volunteers.len()
            );
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every volunteer holds the article completely: the manifest
/// and each file verified and pinned. Prints a line as each one does.
async fn wait_for_replication(
    volunteers: &[Peer],
    signed: &Signed<Manifest>,
    publisher: tamizdat_node::PeerId,
) -> Result<()> {
    let started = Instant::now();
    let mut pending: Vec<&Peer> = volunteers.iter().collect();
    let mut caught_up = false;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for p in pending {
            if holds(&p.store, signed).await? {
                eprintln!(
                    "  {} verified and pinned the manifest and {} files ({:.1} s)",
                    p.name,
                    signed.body().entries.len(),
                    started.elapsed().as_secs_f64()
                );
            } else {
                still.push(p);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if !caught_up && started.elapsed() >= CATCH_UP_AFTER {
            caught_up = true;
            for p in &pending {
                p.client.catch_up(publisher).await;
            }
        }
        if started.elapsed() >= REPLICATION_LIMIT {
            let names: Vec<&str> = pending.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{} did not replicate the article within {REPLICATION_LIMIT:?} \
                 (RUST_LOG=tamizdat_node=debug shows why)",
                names.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Whether `store` holds the manifest and every file of it, complete and
/// pinned under the outlet's feed.
async fn holds(store: &Arc<Store>, signed: &Signed<Manifest>) -> Result<bool> {
    let store = store.clone();
    let pin = feeds::feed_pin(signed.body());
    let ids: Vec<Hash> = std::iter::once(Hash::of(signed.bytes()))
        .chain(
            signed
                .body()
                .entries
                .iter()
                .map(|e| Hash::from_bytes(e.hash)),
        )
        .collect();
    tokio::task::spawn_blocking(move || -> Result<bool> {
        let pins = store.pins()?;
        let Some(pinned) = pins.get(&pin) else {
            return Ok(false);
        };
        for h in &ids {
            let complete = store.info_without_pins(h)?.is_some_and(|i| i.complete);
            if !complete || !pinned.contains(h) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?
}

/// Stores the sample article's files on the publisher's node and signs its
/// manifest with the delegated signing key, checked as a reader will.
async fn article(
    publisher: &Peer,
    outlet: &SecretKey,
    signing: &SecretKey,
    delegation: &Signed<Delegation>,
    volunteers: u8,
) -> Result<Signed<Manifest>> {
    let text = sample_text(&outlet.public(), volunteers);
    let store = publisher.store.clone();
    let entries = tokio::task::spawn_blocking(move || -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for (path, bytes, media_type) in [
            ("index.md", text.as_bytes(), "text/markdown"),
            ("network.png", PICTURE, "image/png"),
        ] {
            let added = store.add_bytes(bytes)?;
            entries.push(Entry {
                path: path.into(),
                hash: *added.hash.as_bytes(),
                size: added.size,
                media_type: media_type.into(),
            });
        }
        Ok(entries)
    })
    .await??;
    let manifest = Manifest {
        publisher: outlet.public(),
        signer: signing.public(),
        delegation: Some(delegation.bytes().to_vec()),
        feed: FEED.into(),
        seq: 1,
        prev: None,
        created: now(),
        title: TITLE.into(),
        lang: "en".into(),
        summary: Some("What a reader sees when a signed article reaches them.".into()),
        supersedes: None,
        entries,
    };
    let signed = Signed::sign(manifest, signing)?;
    Verifier::new()
        .verify(signed.bytes(), &TrustState::default())
        .context("the demo article does not verify")?;
    Ok(signed)
}

const TITLE: &str = "A signed article, carried by volunteers";

/// The sample article's Markdown.
fn sample_text(outlet: &PublicKey, volunteers: u8) -> String {
    format!(
        "# {TITLE}

This article was signed by **{OUTLET}**, an outlet that exists only for
this demo, and published from its newsroom's node. {followers} the
outlet: {each} fetched the article, checked every byte against its BLAKE3
hash and the signature against the outlet's key, and keeps a copy. The page you are reading comes from the first volunteer, not
from the publisher.

![The demo network: the publisher's node, in orange, and the volunteers' nodes, in green](network.png)

## What to look at

- **The line above the title** says who signed the article and when. It
  starts with ✔ because this node follows the outlet under the name
  {OUTLET:?}.
- **The badge at the bottom**, *Who signed this*, gives the outlet's
  **fingerprint**, `{fingerprint}`. It is the same one the demo printed in
  your terminal. A real outlet publishes its fingerprint where readers
  already trust it (its site, a printed card), so that they can compare.
- The article was signed by a **signing key** that the outlet's root key
  delegated for one day. The root key stays offline; a stolen signing key
  can be revoked without changing the outlet's identity.
- The **manifest** link is this article's address: its BLAKE3 hash. Any
  node that holds it serves the same bytes, and any reader can check them.

In a real network the volunteers run on other machines, in other
countries, and keep serving the outlet's articles when its own site is
blocked.
",
        fingerprint = outlet.fingerprint(),
        followers = match volunteers {
            1 => "One volunteer node follows".to_owned(),
            n => format!("{n} volunteer nodes follow"),
        },
        each = if volunteers == 1 { "it" } else { "each" },
    )
}
