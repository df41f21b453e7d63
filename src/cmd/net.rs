//! `node`, `get`, `status`.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tamizdat_node::{Config, Multiaddr, Protocol, identity};
use tamizdat_store::Store;

use crate::{
    cli::NodeArgs,
    config,
    control::{self, Remote, Request},
};

/// The node's identity, separate from any publisher key.
const NODE_KEY: &str = "node.key";
/// Written while a node runs: its peer id and addresses.
const NODE_INFO: &str = "node.json";
/// Peers connected when the node last stopped, tried again at the next start.
const PEERS: &str = "peers.json";
/// Most remembered peer addresses.
const MAX_REMEMBERED: usize = 64;

/// The address book of the last run: scored entries, or (as earlier
/// versions wrote it) a plain list of addresses. Anything else is ignored:
/// it is only a hint.
fn remembered(dir: &Path) -> Vec<tamizdat_node::book::Entry> {
    let Ok(bytes) = super::keys::read_bounded(&dir.join(PEERS), 64 * 1024) else {
        return Vec::new();
    };
    let entries = serde_json::from_slice::<Vec<tamizdat_node::book::Entry>>(&bytes)
        .or_else(|_| {
            serde_json::from_slice::<Vec<String>>(&bytes).map(|list| {
                list.into_iter()
                    .map(|addr| tamizdat_node::book::Entry {
                        addr,
                        successes: 0,
                        failures: 0,
                        last_ok: 0,
                    })
                    .collect()
            })
        })
        .unwrap_or_default();
    entries.into_iter().take(MAX_REMEMBERED).collect()
}

fn default_listen() -> Vec<String> {
    vec![
        "/ip4/0.0.0.0/tcp/4001".into(),
        "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
    ]
}

/// Refuses a listen address whose TCP or UDP port another socket holds.
/// libp2p binds with `SO_REUSEPORT`, so a second node on a busy port would
/// start and take some of the first one's connections; a plain bind here,
/// without that option, fails as it should. Port 0 is always free.
fn check_ports_free(addrs: &[Multiaddr]) -> Result<()> {
    for addr in addrs {
        let mut ip = None;
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
                Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
                Protocol::Tcp(port) if port != 0 => {
                    if let Some(ip) = ip {
                        std::net::TcpListener::bind((ip, port)).with_context(|| {
                            format!("cannot listen on {addr}: TCP port {port} is in use (another tamizdat node?)")
                        })?;
                    }
                }
                Protocol::Udp(port) if port != 0 => {
                    if let Some(ip) = ip {
                        std::net::UdpSocket::bind((ip, port)).with_context(|| {
                            format!("cannot listen on {addr}: UDP port {port} is in use (another tamizdat node?)")
                        })?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

pub(super) fn parse_addrs(list: &[String]) -> Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse::<Multiaddr>()
                .with_context(|| format!("invalid multiaddr {a:?}"))
        })
        .collect()
}

/// Largest node key file read (an ed25519 key in protobuf is 68 bytes).
const MAX_NODE_KEY: u64 = 4096;

/// Loads the node key, creating it (mode 0600) on first use. It is read as
/// any secret is: a regular file, bounded, and a warning when others may
/// read it.
pub(super) fn node_key(dir: &Path) -> Result<identity::Keypair> {
    let path = dir.join(NODE_KEY);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = identity::Keypair::generate_ed25519();
            let bytes = zeroize::Zeroizing::new(key.to_protobuf_encoding()?);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            Ok(key)
        }
        _ => {
            let bytes = super::keys::read_secret(&path, MAX_NODE_KEY)?;
            identity::Keypair::from_protobuf_encoding(&bytes)
                .with_context(|| format!("node key {} is damaged", path.display()))
        }
    }
}

/// Replaces `path` with `bytes`, readable by this user only: what the node
/// writes beside its store (its addresses, the peers it knew) tells others
/// whom it talks to.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let write = || {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // A file left by an older version keeps its mode otherwise.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// How often a node waiting for the store tries to take it again.
const STORE_POLL: Duration = Duration::from_millis(200);

/// Opens the store for the node. Another node holding it is an error at
/// once; a command holding it (`scrub` from cron while systemd restarts
/// the node) is waited for, up to `wait`, saying once who holds it.
fn open_store_for_node(dir: &Path, cfg: &config::Config, wait: Duration) -> Result<Store> {
    let deadline = std::time::Instant::now() + wait;
    let mut told = false;
    loop {
        let e = match super::open_store(dir, cfg) {
            Ok(store) => return Ok(store),
            Err(e) if super::repo::in_use(&e) => e,
            Err(e) => return Err(e),
        };
        if let Some(remote) = Remote::find(dir) {
            let pid = remote
                .call::<control::Status>(&Request::Status)
                .map(|s| format!(" (pid {})", s.pid))
                .unwrap_or_default();
            bail!("a node is already running on {}{pid}", dir.display());
        }
        let holder = super::repo::holder(&e)
            .map(|pid| format!("process {pid}"))
            .unwrap_or_else(|| "another process".into());
        if std::time::Instant::now() >= deadline {
            return Err(e.context(format!(
                "{holder} still holds the store after {} s (--store-wait); \
                 let it finish or stop it, then start the node again",
                wait.as_secs()
            )));
        }
        if !told {
            eprintln!(
                "tamizdat: the store is held by {holder} (a command such as `scrub`); \
                 waiting up to {} s for it to finish",
                wait.as_secs()
            );
            told = true;
        }
        std::thread::sleep(STORE_POLL);
    }
}

pub fn node(dir: &Path, cfg: &config::Config, args: NodeArgs) -> Result<ExitCode> {
    let store = open_store_for_node(dir, cfg, Duration::from_secs(args.store_wait))?;
    let listen = if args.listen.is_empty() {
        cfg.node.listen.clone().unwrap_or_else(default_listen)
    } else {
        args.listen
    };
    let mut bootstrap = cfg.node.bootstrap.clone();
    bootstrap.extend(args.bootstrap);
    let listen_addrs = parse_addrs(&listen)?;
    check_ports_free(&listen_addrs)?;
    let mut config = Config::new(node_key(dir)?, listen_addrs);
    config.bootstrap = parse_addrs(&bootstrap)?;
    let tuning = cfg.node.tuning(args.profile);
    config.max_connections = tuning.max_connections;
    config.max_streams = tuning.max_streams;
    config.fetch_parallel = tuning.fetch_parallel;
    config.mdns = tuning.mdns;
    config.relay_server = tuning.relay_server;
    config.nat.only_global_ips = !tuning.nat_trust_private;
    if let Some(secs) = cfg.node.alone_warning_secs {
        config.alone_warning = (secs > 0).then(|| Duration::from_secs(secs));
    }
    // Cards of the publishers followed; then the peers of the last run,
    // scored by how dialling them went.
    super::card::import_legacy(dir, &store);
    for addr in super::card::bootstrap_addrs(&store) {
        if !config.bootstrap.contains(&addr) {
            config.bootstrap.push(addr);
        }
    }
    config.remembered = remembered(dir);
    let follow = cfg
        .node
        .follow
        .iter()
        .map(|k| {
            k.parse::<tamizdat_sign::PublicKey>()
                .with_context(|| format!("config: [node] follow: {k:?} is not a publisher key"))
        })
        .collect::<Result<Vec<_>>>()?;
    let gateway_config = cfg.gateway.resolve(args.gateway.as_deref())?;
    let store = Arc::new(store);
    let info_path = dir.join(NODE_INFO);
    let rt = runtime()?;
    let result = rt.block_on(async {
        // Before anything can report ready: a SIGTERM right after it must
        // stop the node cleanly, not kill it.
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        );
        let mut registry = prometheus_client::registry::Registry::default();
        let client = tamizdat_node::spawn_with_metrics(config, store.clone(), &mut registry)?;
        // Keys in the config are followed too; one already followed keeps
        // the name and limits `tamizdat follow` gave it.
        let followed = client.following();
        for key in &follow {
            if !followed.iter().any(|f| f.key == *key) {
                client.follow(*key, None).await?;
            }
        }
        let addrs = client.wait_listening(listen.len()).await?;
        let mut gateway = match gateway_config {
            Some(c) => {
                let addr = c.addr;
                Some(
                    tamizdat_gateway::spawn(c, client.clone(), registry)
                        .await
                        .with_context(|| {
                            format!(
                                "cannot serve the gateway on {addr} (in use? choose another with \
                                 --gateway IP:PORT, or --gateway off)"
                            )
                        })?,
                )
            }
            None => None,
        };
        let gateway_url = gateway.as_ref().map(|g| g.url());
        let full: Vec<String> = addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", client.peer_id()))
            .collect();
        let info = json!({
            "peer_id": client.peer_id().to_string(),
            "listen": full,
            "pid": std::process::id(),
            "gateway": gateway_url,
            "stored_bytes": store.usage().map(|u| u.used).unwrap_or(0),
        });
        write_private(&info_path, &serde_json::to_vec_pretty(&info)?)?;
        let mut server = control::serve(
            dir,
            control::Served {
                store: store.clone(),
                node: client.clone(),
                runtime: tokio::runtime::Handle::current(),
                listen: full.clone(),
                gateway: gateway_url.clone(),
            },
        )?;
        eprintln!("tamizdat node {} listening on:", client.peer_id());
        let mut out = io::stdout().lock();
        for a in &full {
            eprintln!("  {a}");
            writeln!(out, "listen {a}")?;
        }
        if let Some(url) = &gateway_url {
            eprintln!("gateway: {url}/");
            writeln!(out, "gateway {url}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        // systemd's Type=notify: nothing happens without $NOTIFY_SOCKET.
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
            tracing::warn!("cannot tell systemd the node is ready: {e}");
        }
        // Until asked to stop, or until a part of the node fails: then it
        // stops all the same and exits 1, rather than run on half alive.
        // A panic inside one request stays in its task; a part of the
        // node that ends is what stops it.
        let gateway_ended = async {
            match gateway.as_mut() {
                Some(g) => g.ended().await,
                None => std::future::pending().await,
            }
        };
        let failed = tokio::select! {
            _ = int.recv() => None,
            _ = term.recv() => None,
            e = client.failed() => Some(anyhow::Error::new(e)),
            why = server.ended() => Some(anyhow::anyhow!("the node failed: {why}")),
            why = gateway_ended => Some(anyhow::anyhow!("the node failed: {why}")),
        };
        match &failed {
            Some(e) => eprintln!("tamizdat: {e:#}; stopping"),
            None => eprintln!("stopping"),
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        drop(server);
        if let Some(g) = gateway {
            g.shutdown().await;
        }
        if let Ok(known) = client.known_addrs().await {
            let list: Vec<_> = known.into_iter().take(MAX_REMEMBERED).collect();
            if !list.is_empty() {
                let _ = write_private(&dir.join(PEERS), &serde_json::to_vec_pretty(&list)?);
            }
        }
        client.shutdown().await;
        match failed {
            Some(e) => Err(e),
            None => anyhow::Ok(()),
        }
    });
    // Commands still connected (a paused `cat | less`) must not hold up
    // the stop: every store write is atomic, so cutting them off is safe.
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = fs::remove_file(&info_path);
    result.map(|()| ExitCode::SUCCESS)
}

/// `status` for a user the node does not let in: it cannot tell (exit 4).
pub fn status_refused(why: &str, json_out: bool) -> Result<ExitCode> {
    if json_out {
        let out = json!({ "running": "unknown", "refused": why });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("node       cannot tell: {why}");
        println!("           (run `tamizdat status` as the node's user)");
    }
    Ok(ExitCode::from(4))
}

pub fn status(dir: &Path, json_out: bool) -> Result<ExitCode> {
    let remote = match Remote::probe(dir) {
        control::Probe::Running(r) => Some(r),
        control::Probe::Refused(why) => return status_refused(&why, json_out),
        control::Probe::Absent => None,
    };
    let status = remote
        .map(|r| r.call::<control::Status>(&Request::Status))
        .transpose()?;
    if json_out {
        let out = match &status {
            Some(s) => json!({
                "running": true,
                "state": if s.connected.is_empty() { "alone" } else { "connected" },
                "peer_id": s.peer_id,
                "listen": s.listen,
                "pid": s.pid,
                "gateway": s.gateway,
                "connected_peers": s.connected.len(),
                "connected": s.connected,
                "nat": s.nat,
                "following": s.following,
                "conflicts": s.conflicts,
                "stored_bytes": s.stored_bytes,
                "quota": s.quota,
            }),
            None => json!({ "running": false }),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(s) = &status {
        println!("node       running (pid {})", s.pid);
        if s.connected.is_empty() {
            println!("state      alone: {}", control::ALONE);
        } else {
            println!("state      connected");
        }
        println!("peer id    {}", s.peer_id);
        for a in &s.listen {
            println!("listen     {a}");
        }
        if let Some(g) = &s.gateway {
            println!("gateway    {g}/");
        }
        println!("connected  {} peer(s)", s.connected.len());
        println!("nat        {}", s.nat);
        println!("following  {} publisher(s)", s.following);
        for c in &s.conflicts {
            println!("CONFLICT   {c}");
        }
        let size = |b: u64| bytesize::ByteSize::b(b).display().iec().to_string();
        match s.quota {
            Some(q) => println!(
                "stored     {} of {} ({:.0} %)",
                size(s.stored_bytes),
                size(q),
                s.stored_bytes as f64 * 100.0 / q.max(1) as f64
            ),
            None => println!("stored     {}", size(s.stored_bytes)),
        }
    } else {
        println!("node       not running (start it with `tamizdat node`)");
    }
    Ok(if status.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
