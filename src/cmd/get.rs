//! `get`: one blob, or a whole article when the blob is a signed manifest.
//!
//! A manifest is verified before anything it names is fetched; its files are
//! then fetched one after another within the one `--timeout`, and the
//! manifest and every file are pinned under `get/HASH` (so `gc` keeps them
//! until `tamizdat unpin get/HASH`). `-o DIR` writes the article's files
//! under their signed paths, each checked against its hash as it is copied.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tamizdat_node::{Config, Multiaddr, PeerId};
use tamizdat_sign::{MAX_MANIFEST_LEN, Manifest, Object, Signed, VerifiedManifest, Verifier};
use tamizdat_store::{Hash, Store};

use crate::{
    cli::GetArgs,
    config,
    control::{self, FetchDone, FetchProgress, Remote},
    export::Follow,
};

use super::{parse_hash, repo::Repo, state};

/// How long a `--peer` address may take to answer.
const DIAL_WAIT: Duration = Duration::from_secs(10);

/// Exit status when the article's signature holds but files did not arrive.
const EXIT_INCOMPLETE: u8 = 3;

pub fn get(dir: &Path, cfg: &config::Config, repo: Repo, args: GetArgs) -> Result<ExitCode> {
    let hash = parse_hash(&args.hash)?;
    let peers = super::net::parse_addrs(&args.peer)?;
    // The node may run elsewhere in the file system's eyes: give it a full path.
    let output = args
        .output
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("the output path")?;
    // An existing directory receives the article (or the blob, as HASH).
    let into_dir = output.as_deref().is_some_and(Path::is_dir);
    let deadline = Instant::now() + Duration::from_secs(args.timeout.max(1));
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut fetcher = Fetcher::start(dir, cfg, &repo, &peers)?;
    let result = (|| {
        let stream = output.clone().filter(|_| !into_dir);
        let first = fetch(&mut fetcher, &bar, hash, "", deadline, stream)?;
        report(&hash, "", &first);
        let bytes = manifest_bytes(&repo, &hash, first.size)?;
        let Some(bytes) = bytes.filter(|_| !args.raw) else {
            if let (true, Some(out)) = (into_dir, &output) {
                copy_blob(&repo, &hash, &out.join(hash.to_string()))?;
            }
            return Ok(ExitCode::SUCCESS);
        };
        let trust = state::load(&repo)?;
        let v = Verifier::new().verify(&bytes, &trust).map_err(|e| {
            anyhow::anyhow!(
                "{hash} is a signed manifest that does NOT verify: {e}; \
                 none of its files were fetched. Do not trust it."
            )
        })?;
        article(
            &mut fetcher,
            &repo,
            &bar,
            &v,
            hash,
            deadline,
            output,
            into_dir,
        )
    })();
    bar.finish_and_clear();
    fetcher.stop();
    result
}

/// Fetches the manifest's files, pins everything, writes `-o DIR`.
#[allow(clippy::too_many_arguments)]
fn article(
    fetcher: &mut Fetcher<'_>,
    repo: &Repo,
    bar: &indicatif::ProgressBar,
    v: &VerifiedManifest,
    id: Hash,
    deadline: Instant,
    output: Option<PathBuf>,
    into_dir: bool,
) -> Result<ExitCode> {
    let m = v.manifest();
    let pin = format!("get/{id}");
    repo.pin(&pin, &id)?;
    let mut missing = Vec::new();
    for e in &m.entries {
        let h = Hash::from_bytes(e.hash);
        let held = repo.info(&h)?.is_some_and(|i| i.complete);
        if !held {
            match fetch(fetcher, bar, h, &e.path, deadline, None) {
                Ok(done) => report(&h, &e.path, &done),
                Err(err) => {
                    eprintln!("tamizdat: {}: {err:#}", e.path);
                    missing.push(e.path.clone());
                }
            }
        }
        if repo.info(&h)?.is_some() {
            repo.pin(&pin, &h)?;
        }
    }
    eprintln!(
        "{id}: article \"{}\" signed by {} ({}): {} of {} files here, pinned as {pin}",
        m.title,
        m.publisher,
        m.publisher.fingerprint(),
        m.entries.len() - missing.len(),
        m.entries.len()
    );
    if !missing.is_empty() {
        eprintln!(
            "tamizdat: {} file(s) did not arrive: {}; run the same command again to \
             fetch the rest",
            missing.len(),
            missing.join(", ")
        );
        return Ok(ExitCode::from(EXIT_INCOMPLETE));
    }
    if let Some(out) = output {
        if !into_dir {
            // The manifest's own bytes were streamed there: the article takes
            // its place as a folder.
            fs::remove_file(&out).with_context(|| format!("cannot replace {}", out.display()))?;
            fs::create_dir(&out).with_context(|| format!("cannot create {}", out.display()))?;
        }
        for e in &m.entries {
            let target = safe_join(&out, &e.path)?;
            copy_checked(repo, &Hash::from_bytes(e.hash), e.size, &target)?;
        }
        sync_dir(&out)?;
        eprintln!("wrote {} files under {}", m.entries.len(), out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The blob's bytes when it is a signed manifest (by its header), else none.
fn manifest_bytes(repo: &Repo, hash: &Hash, size: u64) -> Result<Option<Vec<u8>>> {
    if size > MAX_MANIFEST_LEN as u64 {
        return Ok(None);
    }
    let bytes = repo.read_to_vec(hash)?;
    if !bytes.starts_with(Manifest::HEADER) {
        return Ok(None);
    }
    // Decoding says what is wrong with a damaged one; verifying comes after.
    Signed::<Manifest>::decode(&bytes).map_err(|e| {
        anyhow::anyhow!("{hash} looks like a signed manifest but cannot be read: {e}")
    })?;
    Ok(Some(bytes))
}

fn report(hash: &Hash, path: &str, f: &FetchDone) {
    let what = if path.is_empty() {
        hash.to_string()
    } else {
        format!("{path} ({hash})")
    };
    eprintln!(
        "{what}: {} verified ({} new) from {} provider(s){}",
        bytesize::ByteSize::b(f.size).display().iec(),
        bytesize::ByteSize::b(f.new_bytes).display().iec(),
        f.providers,
        if f.bad == 0 {
            String::new()
        } else {
            format!("; {} sent bad data and were dropped", f.bad)
        }
    );
}

/// `rel` (a path the signature covers, checked as the manifest's decoder
/// checks it) under `dir`, with its parent directories made; a link or a
/// file in the way is never followed.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf> {
    tamizdat_sign::check_path(rel)?;
    let mut at = dir.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        if i + 1 < parts.len() {
            match fs::symlink_metadata(&at) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => bail!("{}: in the way of {rel}", at.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&at)
                    .with_context(|| format!("cannot create {}", at.display()))?,
                Err(e) => return Err(e).with_context(|| at.display().to_string()),
            }
        }
    }
    Ok(at)
}

/// Copies a blob from the store to a new file, checking size and hash as it
/// goes; the file is synced. A file already there is never overwritten.
fn copy_checked(repo: &Repo, hash: &Hash, size: u64, target: &Path) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    if let Err(e) = copy_into(repo, hash, size, &mut file, target) {
        drop(file);
        let _ = fs::remove_file(target);
        return Err(e);
    }
    Ok(())
}

/// Writes a blob held here to `target`, replacing it whole (written beside,
/// synced, renamed), as a fetch with `-o FILE` does.
fn replace_with(repo: &Repo, hash: &Hash, size: u64, target: &Path) -> Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tamizdat-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    copy_into(repo, hash, size, tmp.as_file_mut(), target)?;
    tmp.persist(target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    sync_dir(&dir)
}

fn copy_into(
    repo: &Repo,
    hash: &Hash,
    size: u64,
    file: &mut fs::File,
    target: &Path,
) -> Result<()> {
    // The store's reader checks every chunk against the blob's hash as it
    // reads; what is left to check is that the whole blob came.
    let mut reader = repo.reader(hash)?.take(size + 1);
    let len = io::copy(&mut reader, file).with_context(|| {
        format!(
            "copying {hash} to {} (run `tamizdat scrub` if the store is damaged)",
            target.display()
        )
    })?;
    if len != size {
        bail!("{hash} in the store is {len} bytes, the manifest says {size}");
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", target.display()))?;
    Ok(())
}

fn copy_blob(repo: &Repo, hash: &Hash, target: &Path) -> Result<()> {
    let size = repo.info(hash)?.map_or(0, |i| i.size);
    copy_checked(repo, hash, size, target)?;
    if let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    eprintln!("wrote {}", target.display());
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// One blob, with a progress bar on stderr (indicatif draws nothing when it
/// is not a terminal).
fn fetch(
    fetcher: &mut Fetcher<'_>,
    bar: &indicatif::ProgressBar,
    hash: Hash,
    label: &str,
    deadline: Instant,
    output: Option<PathBuf>,
) -> Result<FetchDone> {
    // Held whole already: nothing to ask anyone.
    if let Some(info) = fetcher.repo().info(&hash)?.filter(|i| i.complete) {
        if let Some(out) = &output {
            replace_with(fetcher.repo(), &hash, info.size, out)?;
        }
        return Ok(FetchDone {
            size: info.size,
            new_bytes: 0,
            providers: 0,
            bad: 0,
        });
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("the time given (--timeout) ran out before {hash} was asked for");
    }
    bar.reset();
    let label = label.to_owned();
    let show = |p: FetchProgress| {
        bar.set_length(p.size);
        bar.set_position(p.verified);
        bar.set_message(format!("{label} {} provider(s)", p.providers));
    };
    fetcher.fetch(hash, left.as_secs().max(1), output, show)
}

/// Fetches through the running node, or with a short-lived node of our own
/// that only dials out, started once for every blob of the article.
// One per command: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Fetcher<'a> {
    Remote {
        repo: &'a Repo,
        remote: &'a Remote,
        peers: Vec<String>,
    },
    Local {
        rt: tokio::runtime::Runtime,
        client: tamizdat_node::Client,
        store: Arc<Store>,
        hints: Vec<PeerId>,
        repo: &'a Repo,
    },
}

impl<'a> Fetcher<'a> {
    fn start(
        dir: &Path,
        cfg: &config::Config,
        repo: &'a Repo,
        peers: &[Multiaddr],
    ) -> Result<Self> {
        match repo {
            Repo::Remote(remote) => Ok(Fetcher::Remote {
                repo,
                remote,
                peers: peers.iter().map(|p| p.to_string()).collect(),
            }),
            Repo::Local(store) => {
                let mut config = Config::new(super::net::node_key(dir)?, Vec::new());
                config.bootstrap = super::net::parse_addrs(&cfg.node.bootstrap)?;
                let rt = super::net::runtime()?;
                // Whoever answers a --peer address is asked first.
                let (client, hints) = rt.block_on(async {
                    let client = tamizdat_node::spawn(config, store.clone())?;
                    let mut hints: Vec<PeerId> = Vec::new();
                    for p in peers {
                        match tokio::time::timeout(DIAL_WAIT, client.dial(p.clone())).await {
                            Ok(Ok(peer)) => {
                                if !hints.contains(&peer) {
                                    hints.push(peer);
                                }
                            }
                            Ok(Err(e)) => eprintln!("tamizdat: cannot reach {p}: {e}"),
                            Err(_) => {
                                eprintln!("tamizdat: no answer from {p} within {DIAL_WAIT:?}")
                            }
                        }
                    }
                    anyhow::Ok((client, hints))
                })?;
                Ok(Fetcher::Local {
                    repo,
                    rt,
                    client,
                    store: store.clone(),
                    hints,
                })
            }
        }
    }

    fn fetch(
        &mut self,
        hash: Hash,
        timeout: u64,
        output: Option<PathBuf>,
        show: impl Fn(FetchProgress),
    ) -> Result<FetchDone> {
        match self {
            Fetcher::Remote { remote, peers, .. } => {
                remote.fetch(&hash, peers.clone(), timeout, output, show)
            }
            Fetcher::Local {
                rt,
                client,
                store,
                hints,
                ..
            } => {
                let follow = output
                    .map(|out| Follow::start(store.clone(), hash, out))
                    .transpose()?;
                let fetched = rt
                    .block_on(control::fetch_within(client, hash, hints, timeout, |p| {
                        show(p);
                        Ok(())
                    }))
                    .map_err(anyhow::Error::msg);
                match follow {
                    // The fetch's own failure says more than the file's.
                    Some(f) => {
                        let written = f.finish(fetched.is_ok());
                        fetched.and_then(|done| written.map(|()| done))
                    }
                    None => fetched,
                }
            }
        }
    }

    fn repo(&self) -> &'a Repo {
        match self {
            Fetcher::Remote { repo, .. } | Fetcher::Local { repo, .. } => repo,
        }
    }

    fn stop(self) {
        if let Fetcher::Local { rt, client, .. } = self {
            rt.block_on(client.shutdown());
        }
    }
}
