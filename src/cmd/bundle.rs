//! `tamizdat export` and `tamizdat import`: bundles that carry articles
//! across a shutdown, and the folder of plain HTML pages for readers with
//! no tamizdat. The format and its checks live in `tamizdat_feed::bundle`
//! (re-exported by the node); this module chooses what to export and keeps
//! what an import verified.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fs,
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tamizdat_node::bundle::{self, Info, Skip, Step, Writer};
use tamizdat_sign::{
    Delegation, MAX_MANIFEST_LEN, PublicKey, Signed, TrustState, VerifiedManifest, Verifier,
    VerifyError,
};
use tamizdat_store::Hash;

use super::{
    articles::{pin_article, record_local},
    keys::{KEYS_PIN, format_time, keep_key_object, now},
    parse_hash,
    repo::Repo,
    state,
};
use crate::{
    cli::{ExportArgs, ImportArgs},
    control::{Request, Status},
};

pub fn export(_dir: &Path, store: &Repo, args: ExportArgs) -> Result<ExitCode> {
    let trust = state::load(store)?;
    let Selected {
        articles,
        mut problems,
        withdrawn,
    } = select(store, &trust, &args)?;
    if articles.is_empty() {
        bail!(
            "nothing to export: no complete, verified article here matches{}",
            if withdrawn > 0 {
                format!(
                    " ({withdrawn} withdrawn: their publisher revoked the key that signed \
                     them)"
                )
            } else {
                String::new()
            }
        );
    }
    if withdrawn > 0 {
        eprintln!(
            "{withdrawn} withdrawn article(s) left out: their publisher revoked the key that \
             signed them"
        );
    }
    if let Some(dir) = &args.html {
        problems += html(store, dir, &articles, args.lang.as_deref())?;
    } else if let Some(out) = &args.output {
        problems += write_bundle(store, &trust, &articles, out, args.with_addresses)?;
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `export` takes.
struct Selected {
    /// The articles the arguments choose, verified, with all their files
    /// here, in feed order.
    articles: Vec<VerifiedManifest>,
    /// How many were left out for a problem (a file missing, a manifest
    /// that does not verify): the export's exit status says so.
    problems: usize,
    /// How many were left out as withdrawn (signed by a key its publisher
    /// revoked since): what the publisher wants, not a problem.
    withdrawn: usize,
}

fn select(store: &Repo, trust: &TrustState, args: &ExportArgs) -> Result<Selected> {
    let publishers = args
        .publisher
        .iter()
        .map(|k| {
            k.parse::<PublicKey>()
                .with_context(|| format!("invalid publisher key {k:?}"))
        })
        .collect::<Result<HashSet<_>>>()?;
    let since = args.since.as_deref().map(parse_date).transpose()?;
    let filtered = !publishers.is_empty() || since.is_some() || args.since_seq.is_some();
    let verifier = Verifier::new();
    let mut chosen: BTreeMap<Hash, VerifiedManifest> = BTreeMap::new();
    let mut problems = 0;
    let mut withdrawn = 0;
    for h in &args.manifest {
        let hash = parse_hash(h)?;
        let bytes = read_manifest(store, &hash)?
            .with_context(|| format!("{hash} is not a manifest held here"))?;
        let m = verifier
            .verify(&bytes, trust)
            .with_context(|| format!("manifest {hash} does not verify here"))?;
        chosen.insert(hash, m);
    }
    if filtered || args.manifest.is_empty() {
        for (pin, hashes) in store.pins()? {
            if !pin.starts_with("feed/") {
                continue;
            }
            for hash in hashes {
                if chosen.contains_key(&hash) {
                    continue;
                }
                let Some(bytes) = read_manifest(store, &hash)? else {
                    continue;
                };
                let m = match verifier.verify(&bytes, trust) {
                    Ok(m) => m,
                    // Genuine, and withdrawn since (a forgery naming a
                    // revoked key is a problem like any other).
                    Err(VerifyError::Revoked { .. })
                        if verifier.verify(&bytes, &TrustState::default()).is_ok() =>
                    {
                        withdrawn += 1;
                        continue;
                    }
                    Err(e) => {
                        eprintln!("left out {hash}: {e}");
                        problems += 1;
                        continue;
                    }
                };
                let body = m.manifest();
                let wanted = (publishers.is_empty() || publishers.contains(&body.publisher))
                    && since.is_none_or(|t| body.created >= t)
                    && args.since_seq.is_none_or(|n| body.seq >= n);
                if wanted {
                    chosen.insert(hash, m);
                }
            }
        }
    }
    let mut articles = Vec::with_capacity(chosen.len());
    'articles: for (hash, m) in chosen {
        for e in &m.manifest().entries {
            let here = store
                .info(&Hash::from_bytes(e.hash))?
                .is_some_and(|i| i.complete);
            if !here {
                eprintln!(
                    "left out {hash} ({:?}): its file {} is not complete here",
                    m.manifest().title,
                    e.path
                );
                problems += 1;
                continue 'articles;
            }
        }
        articles.push(m);
    }
    articles.sort_by(|a, b| {
        let (a, b) = (a.manifest(), b.manifest());
        (a.publisher, &a.feed, a.seq).cmp(&(b.publisher, &b.feed, b.seq))
    });
    Ok(Selected {
        articles,
        problems,
        withdrawn,
    })
}

/// A blob's bytes if it is complete, small enough, and looks like a
/// manifest envelope.
fn read_manifest(store: &Repo, hash: &Hash) -> Result<Option<Vec<u8>>> {
    let Some(info) = store.info(hash)? else {
        return Ok(None);
    };
    if !info.complete || info.size > MAX_MANIFEST_LEN as u64 {
        return Ok(None);
    }
    // Feed pins hold the articles' files too: only a manifest is read whole.
    const HEADER: &[u8] = b"tamizdat/manifest/";
    let mut reader = store.reader(hash)?;
    let mut bytes = Vec::with_capacity(info.size as usize);
    (&mut reader)
        .take(HEADER.len() as u64)
        .read_to_end(&mut bytes)?;
    if bytes != HEADER {
        return Ok(None);
    }
    reader.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// `2025-06-01`, or an RFC 3339 time.
fn parse_date(s: &str) -> Result<u64> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let t = humantime::parse_rfc3339_weak(&full)
        .with_context(|| format!("invalid date {s:?}: give 2025-06-01 or 2025-06-01T12:00:00Z"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

/// The delegations, revocations and cards of the articles' publishers, and how
/// many revocations known here had no record to carry.
fn key_records(
    store: &Repo,
    trust: &TrustState,
    articles: &[VerifiedManifest],
) -> Result<(Vec<Vec<u8>>, usize)> {
    let roots: BTreeSet<PublicKey> = articles.iter().map(|m| m.manifest().publisher).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut missing = 0;
    // Revocations first: an importer applies them before any article.
    for root in &roots {
        for id in trust.revocations_of(root) {
            let hash = Hash::from_bytes(*id);
            match store.info(&hash)? {
                Some(i) if i.complete && i.size <= bundle::MAX_KEY_LEN => {
                    let bytes = store.read_to_vec(&hash)?;
                    if seen.insert(hash) {
                        out.push(bytes);
                    }
                }
                _ => {
                    missing += 1;
                    eprintln!(
                        "error: revocation {hash} is known here but its record is not in the \
                         store; the bundle goes without it (`tamizdat key import` the \
                         .revocation file, then export again)"
                    );
                }
            }
        }
    }
    for m in articles {
        if let Some(d) = m.delegation()
            && seen.insert(Hash::of(d.bytes()))
        {
            out.push(d.bytes().to_vec());
        }
    }
    if let Some(kept) = store.pins()?.get(KEYS_PIN) {
        for hash in kept {
            if seen.contains(hash) {
                continue;
            }
            let Some(info) = store.info(hash)? else {
                continue;
            };
            if !info.complete || info.size > bundle::MAX_KEY_LEN {
                continue;
            }
            let bytes = store.read_to_vec(hash)?;
            let root = if bytes.starts_with(b"tamizdat/card/") {
                // The publisher's card, so that a reader who gets the
                // bundle also learns where the outlet can be reached.
                tamizdat_sign::verify_card(&bytes)
                    .map(|c| c.body().root)
                    .ok()
            } else {
                Signed::<Delegation>::decode(&bytes)
                    .map(|d| d.body().root)
                    .ok()
            };
            if root.is_some_and(|r| roots.contains(&r)) {
                seen.insert(*hash);
                out.push(bytes);
            }
        }
    }
    Ok((out, missing))
}

/// The running node's addresses, as a bootstrap hint.
fn addresses(store: &Repo) -> (Option<String>, Vec<String>) {
    let Repo::Remote(r) = store else {
        return (None, Vec::new());
    };
    let Ok(status) = r.call::<Status>(&Request::Status) else {
        return (None, Vec::new());
    };
    let addrs = status
        .listen
        .iter()
        .map(|a| {
            if a.contains("/p2p/") {
                a.clone()
            } else {
                format!("{a}/p2p/{}", status.peer_id)
            }
        })
        .filter(|a| a.len() <= bundle::MAX_ADDR_LEN)
        .take(bundle::MAX_ADDRS)
        .collect();
    (Some(status.peer_id), addrs)
}

/// Writes the bundle; returns the number of problems (revocations known
/// here whose records are missing).
fn write_bundle(
    store: &Repo,
    trust: &TrustState,
    articles: &[VerifiedManifest],
    out: &Path,
    with_addresses: bool,
) -> Result<usize> {
    let (keys, missing) = key_records(store, trust, articles)?;
    // What an importer would refuse is not written.
    if articles.len() as u64 > bundle::MAX_ARTICLES || keys.len() as u64 > bundle::MAX_KEYS {
        bail!(
            "{} articles and {} key records: over what one bundle may hold ({} and {}); \
             choose fewer with --publisher, --since or --since-seq",
            articles.len(),
            keys.len(),
            bundle::MAX_ARTICLES,
            bundle::MAX_KEYS
        );
    }
    let mut files = BTreeMap::new();
    let mut bytes = 0u64;
    for m in articles {
        let mut own = HashSet::new();
        for e in &m.manifest().entries {
            if e.size > bundle::MAX_BLOB {
                bail!(
                    "{} of {:?} is {} bytes, over the {}-byte limit of a file in a bundle",
                    e.path,
                    m.manifest().title,
                    e.size,
                    bundle::MAX_BLOB
                );
            }
            files.insert(Hash::from_bytes(e.hash), e.size);
            if own.insert(e.hash) {
                bytes += e.size;
            }
        }
    }
    // Only when asked: whoever finds the bundle learns where this node is.
    let (peer, addrs) = if with_addresses {
        let (peer, addrs) = addresses(store);
        if addrs.is_empty() {
            eprintln!("--with-addresses: no node runs here, so there are no addresses to write");
        }
        (peer, addrs)
    } else {
        (None, Vec::new())
    };
    let info = Info {
        created: now(),
        peer,
        addrs,
        articles: articles.len() as u64,
        keys: keys.len() as u64,
        bytes,
    };
    let to_stdout = out == Path::new("-");
    let (sink, temp): (Box<dyn Write>, _) = if to_stdout {
        (Box::new(io::stdout().lock()), None)
    } else {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".tamizdat-export-")
            .tempfile_in(parent)
            .with_context(|| format!("cannot write in {}", parent.display()))?;
        let file = temp.reopen()?;
        (Box::new(file), Some(temp))
    };
    let bar = super::blobs::progress(bytes, out.display().to_string());
    let sink: Box<dyn Write> = match &bar {
        Some(bar) => Box::new(bar.wrap_write(sink)),
        None => sink,
    };
    let mut w = Writer::new(BufWriter::with_capacity(256 * 1024, sink), &info)?;
    for k in &keys {
        w.key(k)?;
    }
    for m in articles {
        w.manifest(m.envelope().bytes())?;
        // Every article carries all its files, even one another article
        // shares: an importer that skips or refuses one article can still
        // take the next whole. (An importer that has a file reads past it.)
        let mut written = HashSet::new();
        for e in &m.manifest().entries {
            let hash = Hash::from_bytes(e.hash);
            if written.insert(hash) {
                let reader = store.reader(&hash)?;
                w.blob(&hash, e.size, reader)
                    .with_context(|| format!("reading {} ({hash}) from the store", e.path))?;
            }
        }
    }
    let (sink, digest) = w.finish()?;
    drop(sink);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(temp) = temp {
        // Meant to be copied and shared, unlike tempfile's private default.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        temp.as_file().sync_all()?;
        temp.persist(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent).and_then(|d| d.sync_all()).ok();
        }
        println!("{digest}  {}", out.display());
    }
    eprintln!(
        "exported {} articles ({} files, {} bytes) and {} delegations and revocations{}",
        info.articles,
        files.len(),
        info.bytes,
        info.keys,
        if to_stdout {
            String::new()
        } else {
            format!(" to {}", out.display())
        }
    );
    Ok(missing)
}

/// The static HTML export; returns the number of articles left out.
fn html(
    store: &Repo,
    dir: &Path,
    articles: &[VerifiedManifest],
    lang: Option<&str>,
) -> Result<usize> {
    if let Some(l) = lang
        && !tamizdat_gateway::html::languages().contains(&l)
    {
        bail!(
            "--lang {l:?}: the pages can be written in {}",
            tamizdat_gateway::html::languages().join(", ")
        );
    }
    let following: BTreeMap<PublicKey, Option<String>> = store
        .following()?
        .into_iter()
        .map(|f| (f.key, f.name))
        .collect();
    // The newest card kept of each publisher, for readers to join with.
    let kept: Vec<_> = super::card::kept(store)?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let cards: BTreeMap<PublicKey, _> = articles
        .iter()
        .map(|m| m.manifest().publisher)
        .filter_map(|p| {
            tamizdat_node::feeds::cards::newest_of(kept.iter().cloned(), &p).map(|c| (p, c))
        })
        .collect();
    let pages: Vec<tamizdat_gateway::html::Article> = articles
        .iter()
        .map(|m| {
            let publisher = m.manifest().publisher;
            tamizdat_gateway::html::Article {
                manifest: m.clone(),
                publisher_name: following.get(&publisher).cloned().flatten(),
                followed: following.contains_key(&publisher),
                card: cards.get(&publisher).cloned(),
            }
        })
        .collect();
    let open = |h: &Hash| -> io::Result<Box<dyn Read + Send>> {
        store.reader(h).map_err(io::Error::other)
    };
    let report = tamizdat_gateway::html::export_in(dir, &pages, &open, lang)
        .with_context(|| format!("exporting to {}", dir.display()))?;
    eprintln!(
        "wrote {} articles of {} publishers ({} files, {} bytes) to {}; open {} in a browser",
        report.articles,
        report.publishers,
        report.files,
        report.bytes,
        dir.display(),
        dir.join("index.html").display()
    );
    Ok(0)
}

/// Staging directories an import killed mid-way left behind (a day old:
/// another import may be running now).
fn remove_stale_staging(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        if old && e.file_name().to_string_lossy().starts_with(".import-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// One line of `import`'s report: for people, or a JSON object.
fn emit(json_out: bool, text: String, value: serde_json::Value) {
    if json_out {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub fn import(dir: &Path, store: &Repo, args: ImportArgs) -> Result<ExitCode> {
    let json_out = args.json;
    let (input, bar): (Box<dyn Read>, _) = if args.file == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata()?.len();
        match super::blobs::progress(size, args.file.display().to_string()) {
            Some(bar) => (Box::new(bar.wrap_read(file)), Some(bar)),
            None => (Box::new(file), None),
        }
    };
    let input = BufReader::with_capacity(256 * 1024, input);
    let mut trust = state::load(store)?;
    let follows: HashSet<PublicKey> = store.following()?.into_iter().map(|f| f.key).collect();
    fs::create_dir_all(dir)?;
    let staging = tempfile::Builder::new()
        .prefix(".import-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot make a staging directory in {}", dir.display()))?;
    let have = |h: &Hash| store.info(h).ok().flatten().is_some_and(|i| i.complete);
    let known = bundle::Known {
        trust: trust.clone(),
        follows,
        have: &have,
        now: now(),
        cards: super::card::kept(store)?
            .into_iter()
            .map(|(_, c)| c)
            .collect(),
    };
    let local = matches!(store, Repo::Local(_));
    let policies: BTreeMap<PublicKey, tamizdat_node::retention::Policy> = store
        .following()?
        .into_iter()
        .map(|f| (f.key, f.policy))
        .collect();
    let mut node_refused = 0u64;
    remove_stale_staging(dir);
    let mut unfollowed: BTreeMap<PublicKey, u64> = BTreeMap::new();
    let mut keep = |step: Step| -> Result<()> {
        match step {
            Step::Revocation(rev) => {
                let hash = keep_key_object(store, rev.bytes())?;
                if local {
                    trust.add_revocation(&rev)?;
                    state::save(store, &trust)?;
                }
                eprintln!(
                    "revocation {hash} by {} applied",
                    rev.body().root.fingerprint()
                );
            }
            Step::Delegation(d) => {
                keep_key_object(store, d.bytes())?;
            }
            Step::Card { card, replaces } => {
                super::card::keep(store, &card, replaces.as_deref())?;
                let c = card.body();
                emit(
                    json_out,
                    format!(
                        "card of {:?} ({}) taken: issued {}, {} address{}",
                        c.name,
                        c.root.fingerprint(),
                        format_time(c.issued),
                        c.addrs.len(),
                        if c.addrs.len() == 1 { "" } else { "es" }
                    ),
                    json!({"status": "card", "publisher": c.root.to_string(), "name": c.name, "issued": c.issued, "addrs": c.addrs}),
                );
            }
            Step::Article(staged) => {
                for (hash, path) in &staged.files {
                    let file = fs::File::open(path)?;
                    let size = file.metadata()?.len();
                    let added = store.add_sized(file, size, path)?;
                    if added.hash != *hash {
                        bail!("the staged copy of {hash} changed on disk during the import");
                    }
                }
                let m = &staged.manifest;
                let b = m.manifest();
                let id = if staged.known {
                    // Recorded before; the bundle brought its missing files.
                    pin_article(store, m)?
                } else if let Repo::Local(s) = store {
                    let id = record_local(store, &mut trust, m, now())?;
                    // The publisher's quota and retention, as the node applies them.
                    let policy = policies.get(&b.publisher).copied().unwrap_or_default();
                    tamizdat_node::retention::enforce(s, &b.publisher, &policy, 0, now())
                        .map_err(anyhow::Error::msg)?;
                    id
                } else {
                    // The node judges it again, records and announces it. Its
                    // state may have moved since the import began (the same
                    // article by gossip): a refusal costs this article only.
                    match store.publish(m.envelope().bytes()) {
                        Ok(id) => id,
                        Err(e) => {
                            let id = Hash::of(m.envelope().bytes());
                            let why = format!("{e:#}");
                            if why.contains("already have it") {
                                emit(
                                    json_out,
                                    format!("present   {id}"),
                                    json!({"status": "present", "id": id.to_string()}),
                                );
                            } else {
                                emit(
                                    json_out,
                                    format!("refused   {id}  the running node: {why}"),
                                    json!({"status": "refused", "id": id.to_string(), "why": format!("the running node: {why}")}),
                                );
                                eprintln!(
                                    "error: the running node refused {:?} ({id}): {why}",
                                    b.title
                                );
                                node_refused += 1;
                            }
                            return Ok(());
                        }
                    }
                };
                emit(
                    json_out,
                    format!(
                        "imported  {id}  {}/{} #{}  {}",
                        b.publisher.fingerprint(),
                        b.feed,
                        b.seq,
                        b.title
                    ),
                    json!({
                        "status": "imported",
                        "id": id.to_string(),
                        "publisher": b.publisher.to_string(),
                        "feed": b.feed,
                        "seq": b.seq,
                        "title": b.title,
                    }),
                );
            }
            Step::Skipped(skip) => match skip {
                Skip::Present { id } => emit(
                    json_out,
                    format!("present   {id}"),
                    json!({"status": "present", "id": id.to_string()}),
                ),
                Skip::Old { id, why } => emit(
                    json_out,
                    format!("old       {id}  {why}"),
                    json!({"status": "old", "id": id.to_string(), "why": why.to_string()}),
                ),
                Skip::Unfollowed { id, publisher } => {
                    emit(
                        json_out,
                        format!("unfollowed  {id}  {publisher}"),
                        json!({"status": "unfollowed", "id": id.to_string(), "publisher": publisher.to_string()}),
                    );
                    *unfollowed.entry(publisher).or_default() += 1;
                }
                Skip::Refused {
                    id,
                    title,
                    offset,
                    why,
                } => {
                    emit(
                        json_out,
                        format!("refused   {id}  {why}"),
                        json!({"status": "refused", "id": id.to_string(), "why": why.to_string(), "offset": offset}),
                    );
                    eprintln!(
                        "error: {} at byte {offset} of the bundle: {why}. Nothing of it was kept.",
                        match title {
                            Some(t) => format!("article {t:?} ({id})"),
                            None => format!("record {id}"),
                        }
                    );
                }
            },
        }
        Ok(())
    };
    let outcome = bundle::import(input, staging.path(), known, &mut |step| {
        // Lines printed while a progress bar is drawn go above it.
        let kept = match &bar {
            Some(bar) => bar.suspend(|| keep(step)),
            None => keep(step),
        };
        kept.map_err(|e| format!("{e:#}"))
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let bundle::Outcome { summary, error } = outcome;
    let info = &summary.info;
    if info.created > 0 {
        eprintln!(
            "bundle made {}{}",
            format_time(info.created),
            info.peer
                .as_deref()
                .map(|p| format!(" by node {p}"))
                .unwrap_or_default()
        );
    }
    for (publisher, n) in &unfollowed {
        eprintln!(
            "{n} articles of publisher {publisher} were skipped: this node does not follow it. \
             Check the key with the outlet (its site, a printed card), run `tamizdat follow \
             {publisher}`, and import again."
        );
    }
    eprintln!(
        "imported {} articles ({} already here, {} skipped, {} refused); {} revocations applied{}",
        summary.imported - node_refused,
        summary.present,
        summary.skipped,
        summary.refused + node_refused,
        summary.revocations,
        match summary.cards {
            0 => String::new(),
            1 => "; 1 newer card taken".to_owned(),
            n => format!("; {n} newer cards taken"),
        }
    );
    let hint: Vec<_> = info
        .addrs
        .iter()
        .filter(|a| a.parse::<tamizdat_node::Multiaddr>().is_ok())
        .collect();
    // Unsigned: whoever made or changed the bundle chose these. Shown only
    // for a bundle that arrived whole.
    if !hint.is_empty() && summary.complete && error.is_none() {
        eprintln!(
            "the bundle says the node that made it listened on these addresses (unsigned: use \
             one with `tamizdat node --bootstrap ADDR` when the network is back, if you trust \
             whoever gave you the bundle):"
        );
        for a in hint {
            eprintln!("  {a}");
        }
    }
    if let Some(e) = &error {
        eprintln!("error: {e}");
        match e {
            bundle::BundleError::Commit(_) | bundle::BundleError::Io(_) => {}
            _ => eprintln!(
                "The {} articles imported before that point were each verified in full, after \
                 every revocation the bundle carries; nothing after it was kept.",
                summary.imported
            ),
        }
    }
    Ok(
        if error.is_none() && summary.refused == 0 && node_refused == 0 && unfollowed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
