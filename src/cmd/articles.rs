//! `publish`, `verify`, `show`.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tamizdat_sign::{
    Entry, FeedError, KeyKind, MAX_ENTRIES, MAX_MANIFEST_LEN, Manifest, Signed, TrustState,
    VerifiedManifest, Verifier, check_path,
};
use tamizdat_store::Hash;

use super::repo::Repo;

use super::{
    keys::{KeyDir, format_time, now},
    parse_hash, state,
};
use crate::cli::PublishArgs;

/// Exit status of `verify` when the signature holds but files are missing.
const EXIT_INCOMPLETE: u8 = 3;

/// Files of an article, as (path inside the article, path on disk), sorted.
/// Most directories walked under one article.
const MAX_DIRS: usize = 4096;

fn collect(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let meta =
        fs::symlink_metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", root.display()))?;
        return Ok(vec![(name.to_owned(), root.to_owned())]);
    }
    if !meta.is_dir() {
        bail!(
            "{} is neither a regular file nor a directory",
            root.display()
        );
    }
    let mut out = Vec::new();
    let mut hidden = 0;
    let mut stack = vec![root.to_owned()];
    let mut dirs = 0;
    while let Some(dir) = stack.pop() {
        dirs += 1;
        if dirs > MAX_DIRS {
            bail!("{} holds more than {MAX_DIRS} folders", root.display());
        }
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            // Dot-files are editor swaps, VCS folders, OS debris: never published.
            if entry.file_name().to_string_lossy().starts_with('.') {
                hidden += 1;
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_symlink() {
                bail!(
                    "{} is a symbolic link: publish real files only",
                    path.display()
                );
            }
            if ty.is_dir() {
                stack.push(path);
                continue;
            }
            if !ty.is_file() {
                bail!("{} is not a regular file", path.display());
            }
            let rel = path
                .strip_prefix(root)?
                .to_str()
                .with_context(|| format!("{} is not valid UTF-8", path.display()))?
                .replace(std::path::MAIN_SEPARATOR, "/");
            check_path(&rel).with_context(|| format!("cannot publish {}", path.display()))?;
            out.push((rel, path));
            if out.len() > MAX_ENTRIES {
                bail!("{} holds more than {MAX_ENTRIES} files", root.display());
            }
        }
    }
    if hidden > 0 {
        eprintln!("skipped {hidden} hidden files (names starting with '.')");
    }
    out.sort();
    Ok(out)
}

/// Stores one file of an article, refusing anything that became a link or
/// stopped being a regular file since it was listed.
fn store_file(store: &Repo, path: &Path) -> Result<tamizdat_store::Added> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open {} (is it a link?)", path.display()))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let reader = io::BufReader::with_capacity(1 << 20, file);
    store.add_sized(reader, meta.len(), path)
}

/// A language tag as BCP 47 defines it, every subtag in the IANA registry
/// (`ru`, `fa-IR`, `zh-Hant`; not `russian`), in its canonical case.
fn language(tag: &str) -> Result<String> {
    let hint = "give a BCP 47 language tag such as en, ru, fa, zh-Hant or be-BY \
                (https://www.iana.org/assignments/language-subtag-registry)";
    let parsed = language_tags::LanguageTag::parse(tag)
        .map_err(|e| anyhow::anyhow!("--lang {tag:?} is not a language tag ({e}): {hint}"))?;
    parsed.validate().map_err(|e| {
        anyhow::anyhow!("--lang {tag:?} is not a registered language ({e}): {hint}")
    })?;
    Ok(parsed.to_string())
}

/// Warns of every reference in the article's text that its page will not
/// have (a file it lacks, an image on another server), as the gateway
/// renders it; with `strict`, refuses.
fn check_references(files: &[(String, PathBuf)], strict: bool) -> Result<()> {
    let entries: Vec<Entry> = files
        .iter()
        .map(|(rel, path)| Entry {
            path: rel.clone(),
            hash: [0; 32],
            size: fs::metadata(path).map_or(0, |m| m.len()),
            media_type: media_type(rel),
        })
        .collect();
    let Some(body) = tamizdat_gateway::body_of_entries(&entries) else {
        return Ok(());
    };
    let Some((_, path)) = files.iter().find(|(rel, _)| *rel == body.path) else {
        return Ok(());
    };
    if body.size > tamizdat_gateway::MAX_BODY {
        eprintln!(
            "warning: {} is over {}: readers' pages offer it as a file instead of showing it",
            body.path,
            bytesize::ByteSize::b(tamizdat_gateway::MAX_BODY)
                .display()
                .iec()
        );
        return Ok(());
    }
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(tamizdat_gateway::MAX_BODY).read_to_string(&mut text))
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    let dropped = tamizdat_gateway::dropped_references(&entries, &text);
    for d in &dropped {
        eprintln!(
            "{}: {}: {} {:?}: {}",
            if strict { "error" } else { "warning" },
            body.path,
            d.at,
            d.url,
            d.why
        );
    }
    if strict && !dropped.is_empty() {
        bail!(
            "{} reference{} in {} would be left out of the page (--strict): nothing signed \
             or stored",
            dropped.len(),
            if dropped.len() == 1 { "" } else { "s" },
            body.path
        );
    }
    Ok(())
}

/// The first Markdown heading of `index.md`, if any.
fn first_heading(files: &[(String, PathBuf)]) -> Option<String> {
    let (_, path) = files.iter().find(|(p, _)| p == "index.md")?;
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| h.trim_start_matches('#').trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn media_type(path: &str) -> String {
    match path.rsplit('.').next() {
        Some("md" | "markdown") => "text/markdown".into(),
        _ => mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

pub fn publish(data: &Path, store: &Repo, args: PublishArgs) -> Result<ExitCode> {
    // All that can be checked without the key is checked before its
    // passphrase is asked for: a signature is for good.
    let files = collect(&args.path)?;
    if files.is_empty() {
        bail!("{} holds no files", args.path.display());
    }
    let title = match args.title.clone().or_else(|| first_heading(&files)) {
        Some(t) => t,
        None if files.len() == 1 => files[0].0.clone(),
        None => bail!("no title: give --title or start index.md with a # heading"),
    };
    let lang = match &args.lang {
        Some(l) => language(l)?,
        None => "und".to_owned(),
    };
    let supersedes = args
        .supersedes
        .as_deref()
        .map(parse_hash)
        .transpose()?
        .map(|h| *h.as_bytes());
    check_references(&files, args.strict)?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
        .collect();
    eprintln!(
        "signing {title:?} ({lang}): {} file{}, {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        bytesize::ByteSize::b(sizes.iter().sum()).display().iec()
    );
    for ((rel, _), size) in files.iter().zip(&sizes) {
        eprintln!("  {rel}  {}", bytesize::ByteSize::b(*size).display().iec());
    }
    let keys = KeyDir::open(data)?;
    let (kind, key) = keys.load(&args.key, &args.pass)?;
    let (publisher, delegation) = match kind {
        KeyKind::Root => (key.public(), None),
        KeyKind::Signing => {
            let d = keys.delegation(&args.key)?;
            (d.body().root, Some(d))
        }
    };
    let mut created = now();
    if let Some(d) = &delegation {
        let b = d.body();
        if created > b.not_after {
            bail!(
                "the delegation of {:?} expired at {}: ask the root key holder for a new one",
                args.key,
                format_time(b.not_after)
            );
        }
    }
    let feed = args
        .feed
        .or_else(|| delegation.as_ref().and_then(|d| d.body().feed.clone()))
        .unwrap_or_else(|| "main".into());
    let mut entries = Vec::new();
    for (rel, path) in &files {
        let added =
            store_file(store, path).with_context(|| format!("cannot store {}", path.display()))?;
        entries.push(Entry {
            path: rel.clone(),
            hash: *added.hash.as_bytes(),
            size: added.size,
            media_type: media_type(rel),
        });
    }
    // A key limited to another feed fails here, before peers are asked.
    if let Some(only) = delegation.as_ref().and_then(|d| d.body().feed.clone())
        && only != feed
    {
        bail!(
            "key {:?} may sign only for feed {only:?}, not {feed:?}",
            args.key
        );
    }
    let place = place_in_feed(
        store,
        &keys,
        &publisher,
        &feed,
        args.after.as_deref(),
        args.first,
    )?;
    let mut trust = state::load(store)?;
    let (seq, prev) = match &place {
        Some(h) => {
            // Never sign "before" the feed's head, even if this clock is behind.
            created = created.max(h.created);
            let seq = h
                .seq
                .checked_add(1)
                .with_context(|| format!("feed {feed:?} is at the largest sequence number"))?;
            (seq, Some(*h.id.as_bytes()))
        }
        None => (1, None),
    };
    let manifest = Manifest {
        publisher,
        signer: key.public(),
        delegation: delegation.as_ref().map(|d| d.bytes().to_vec()),
        feed,
        seq,
        prev,
        created,
        title,
        lang,
        summary: args.summary,
        supersedes,
        entries,
    };
    let signed = Signed::sign(manifest, &key)?;
    // Check it exactly as a reader will, before anything is recorded.
    let verified = Verifier::new()
        .verify(signed.bytes(), &trust)
        .context("the new manifest does not verify")?;
    // This place in the feed is taken from now on, whatever happens next:
    // recorded beside the keys before the article can leave this machine.
    super::heads::record(
        keys.dir(),
        super::heads::FeedRecord {
            publisher: publisher.to_string(),
            feed: signed.body().feed.clone(),
            seq,
            id: Hash::of(signed.bytes()).to_string(),
            created,
        },
    )?;
    if let Repo::Remote(_) = store {
        // The running node records it (feed rules, store, pin) and tells
        // the publisher's followers.
        let hash = store.publish(signed.bytes())?;
        println!("{hash}");
        eprintln!(
            "published {:?} as {} seq {} ({} files), announced by the running node",
            signed.body().title,
            signed.body().feed,
            seq,
            signed.body().entries.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // A node started later keeps this feed and serves it to followers. A
    // follow already there keeps its name and limits.
    if !store.following()?.iter().any(|f| f.key == publisher) {
        store.follow(publisher, None, Default::default())?;
    }
    let hash = record_local(store, &mut trust, &verified, created)?;
    println!("{hash}");
    eprintln!(
        "published {:?} as {} seq {} ({} files)",
        signed.body().title,
        signed.body().feed,
        seq,
        signed.body().entries.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The latest article of a feed, as far as it could be learned.
struct Place {
    seq: u64,
    id: Hash,
    created: u64,
    /// Where it was learned, for messages.
    from: &'static str,
}

/// How long a publish waits for the running node's peers to say where the
/// feed stands.
const LEARN_WAIT_SECS: u64 = 10;

/// Where the feed stands, from every witness this machine has: the feed
/// state in the store, `keys/heads.json`, and (with a node running) the
/// node's peers, whose claims count only once the node has fetched and
/// judged the signed manifest they name. `None` means the next article is
/// the feed's first, which must be shown (a root key created here, or
/// `--first`); a feed whose place cannot be known is refused.
fn place_in_feed(
    store: &Repo,
    keys: &KeyDir,
    publisher: &tamizdat_sign::PublicKey,
    feed: &str,
    after: Option<&str>,
    first: bool,
) -> Result<Option<Place>> {
    let mut peers = None;
    if let Repo::Remote(remote) = store {
        let learned: crate::control::FeedHeads =
            remote.call(&crate::control::Request::LearnHeads {
                publisher: *publisher,
                wait_secs: LEARN_WAIT_SECS,
            })?;
        if !learned.settled {
            eprintln!(
                "tamizdat: warning: not every peer answered within {LEARN_WAIT_SECS} s; \
                 the feed's place is taken from those that did"
            );
        }
        peers = Some(learned.asked);
    }
    // Read after the peers were asked: the node records what they proved.
    let trust = state::load(store)?;
    let mut known: Vec<Place> = Vec::new();
    if let Some(h) = trust.head(publisher, feed) {
        known.push(Place {
            seq: h.seq,
            id: Hash::from_bytes(h.hash),
            created: h.created,
            from: if peers.is_some() {
                "the running node (its store and its peers)"
            } else {
                "this store's feed state"
            },
        });
    }
    let heads = super::heads::load(keys.dir())?;
    if let Some(r) = heads.feed(publisher, feed) {
        known.push(Place {
            seq: r.seq,
            id: r.hash()?,
            created: r.created,
            from: "keys/heads.json",
        });
    }
    if let Some(after) = after {
        let id = parse_hash(after)?;
        let bytes = store.read_to_vec(&id).with_context(|| {
            format!("--after {id}: not in the store (fetch it with `tamizdat get`)")
        })?;
        // Checked as a reader checks it: a forged or revoked article can
        // not set where the feed goes on.
        let verified = Verifier::new()
            .verify(&bytes, &trust)
            .with_context(|| format!("--after {id}: not a genuine article"))?;
        let b = verified.manifest();
        if b.publisher != *publisher || b.feed != feed {
            bail!(
                "--after {id}: an article of another feed ({} {:?})",
                b.publisher,
                b.feed
            );
        }
        known.push(Place {
            seq: b.seq,
            id,
            created: b.created,
            from: "--after",
        });
    }
    known.sort_by_key(|p| std::cmp::Reverse(p.seq));
    if let [a, b, ..] = &known[..]
        && a.seq == b.seq
        && a.id != b.id
    {
        bail!(
            "feed {feed:?} has two different articles at seq {}: {} (from {}) and {} (from \
             {}). The feed has forked already; publish to a new feed (--feed NAME) and tell \
             readers",
            a.seq,
            a.id,
            a.from,
            b.id,
            b.from
        );
    }
    if let Some(p) = known.into_iter().next() {
        // The next article is dated no earlier than the head; a head dated
        // far ahead would carry that date into every article after it.
        if p.created > now().saturating_add(tamizdat_sign::MAX_SKEW) {
            bail!(
                "feed {feed:?}'s latest article ({}, from {}) is dated {}, ahead of this \
                 machine's clock: check the clock (and that article) before publishing",
                p.id,
                p.from,
                format_time(p.created)
            );
        }
        if first {
            bail!(
                "--first, but feed {feed:?} already has articles: seq {} ({}) is known from {}",
                p.seq,
                p.id,
                p.from
            );
        }
        return Ok(Some(p));
    }
    if first || heads.created_here(keys.dir(), publisher)? {
        return Ok(None);
    }
    let asked = match peers {
        Some(0) => "the running node has no peers to ask".to_owned(),
        Some(n) => format!("none of the running node's {n} peer(s) holds an article of it"),
        None => "no node is running to ask its peers".to_owned(),
    };
    bail!(
        "cannot tell where feed {feed:?} stands: this machine has no record of it (no feed \
         state in the store, nothing in keys/{}), and {asked}. Signing seq 1 could give the \
         feed a second first article, which every reader would see as a stolen key. Either:\n  \
         - copy keys/{} from the machine that published last, or import a bundle of the feed \
         (`tamizdat import`), or start the node so that it asks its peers;\n  \
         - or give the feed's latest article: --after HASH;\n  \
         - or, if no machine ever published to this feed: --first;\n  \
         - or start a new feed: --feed NAME --first",
        super::heads::FILE,
        super::heads::FILE
    )
}

/// Records a verified manifest whose files are in the store, with no node
/// running: the feed head first, then the manifest and its files under the
/// feed's pin. Recording the head first means that if anything after it
/// fails, the next publish takes the next sequence number (a harmless gap)
/// instead of signing a second, different manifest at this one.
pub(super) fn record_local(
    store: &Repo,
    trust: &mut TrustState,
    verified: &VerifiedManifest,
    now: u64,
) -> Result<Hash> {
    trust.accept(verified, now)?;
    state::save(store, trust)?;
    pin_article(store, verified)
}

/// Keeps a manifest and its files (which must be in the store) under the
/// feed's pin; returns the manifest's hash. Changes no feed state.
pub(super) fn pin_article(store: &Repo, verified: &VerifiedManifest) -> Result<Hash> {
    let m = verified.manifest();
    let added = store.add_bytes(verified.envelope().bytes())?;
    let pin = tamizdat_node::feeds::feed_pin(m);
    for e in &m.entries {
        store.pin(&pin, &Hash::from_bytes(e.hash))?;
    }
    store.pin(&pin, &added.hash)?;
    Ok(added.hash)
}

/// Reads a manifest envelope by hash from the store, or from a file.
fn load_envelope(store: &Repo, target: &str) -> Result<(Vec<u8>, String)> {
    let limit = MAX_MANIFEST_LEN as u64;
    if let Ok(hash) = target.parse::<Hash>() {
        let info = store
            .info(&hash)?
            .with_context(|| format!("manifest {hash} is not in the store"))?;
        if info.size > limit {
            bail!(
                "blob {hash} is {} bytes: too large to be a manifest",
                info.size
            );
        }
        return Ok((store.read_to_vec(&hash)?, hash.to_string()));
    }
    let path = Path::new(target);
    if !path.exists() && target.len() == 64 {
        // Looks like a hash but is not one: say why.
        parse_hash(target)?;
    }
    if path.is_dir() {
        bail!(
            "{target} is a directory: give a manifest's hash (as `publish` printed it) \
             or a signed manifest file"
        );
    }
    let file = fs::File::open(path).with_context(|| format!("cannot open {target}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        bail!("{target} is over the {limit}-byte manifest limit");
    }
    let id = blake3::hash(&bytes).to_hex().to_string();
    Ok((bytes, id))
}

enum EntryState {
    Ok,
    Missing,
    Partial,
    Bad(String),
}

fn check_entry(store: &Repo, e: &Entry) -> Result<EntryState> {
    let hash = Hash::from_bytes(e.hash);
    let Some(info) = store.info(&hash)? else {
        return Ok(EntryState::Missing);
    };
    if info.size != e.size {
        return Ok(EntryState::Bad(format!(
            "stored blob is {} bytes, the manifest says {}",
            info.size, e.size
        )));
    }
    if !info.complete {
        return Ok(EntryState::Partial);
    }
    let mut reader = match store.reader(&hash) {
        Ok(r) => r,
        Err(err) => return Ok(EntryState::Bad(err.to_string())),
    };
    match io::copy(&mut reader, &mut io::sink()) {
        Ok(_) => Ok(EntryState::Ok),
        Err(err) => Ok(EntryState::Bad(match tamizdat_store::corrupt_of(&err) {
            Some(c) => format!(
                "bytes on disk do not match the hash ({} at offset {})",
                c.what, c.offset
            ),
            None => err.to_string(),
        })),
    }
}

pub fn verify(store: &Repo, target: &str, json_out: bool) -> Result<ExitCode> {
    let (bytes, id) = load_envelope(store, target)?;
    let trust = state::load(store)?;
    // Lines for people, unless JSON is asked for.
    let say = |label: &str, text: &str| {
        if !json_out {
            println!("{label:<12} {text}");
        }
    };
    say("manifest", &id);
    let v = match Verifier::new().verify(&bytes, &trust) {
        Ok(v) => v,
        Err(e) => {
            say("result", &format!("NOT VERIFIED: {e}"));
            if json_out {
                let out =
                    json!({ "manifest": id, "result": "not_verified", "reason": e.to_string() });
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let m = v.manifest();
    say(
        "publisher",
        &format!("{}  ({})", m.publisher, m.publisher.fingerprint()),
    );
    let delegation = v.delegation().map(|d| {
        let b = d.body();
        json!({
            "id": hex::encode(d.id()),
            "key": b.key.to_string(),
            "not_before": b.not_before,
            "not_after": b.not_after,
            "feed": b.feed,
        })
    });
    match v.delegation() {
        None => say("signed by", "the publisher's root key"),
        Some(d) => {
            let b = d.body();
            say(
                "signed by",
                &format!(
                    "{}  ({}), delegated by the root from {} until {}{}",
                    m.signer,
                    m.signer.fingerprint(),
                    format_time(b.not_before),
                    format_time(b.not_after),
                    b.feed
                        .as_ref()
                        .map(|f| format!("for feed {f}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    say("signed at", &format_time(m.created).to_string());
    say(
        "feed",
        &format!(
            "{}  seq {}  prev {}",
            m.feed,
            m.seq,
            m.prev.map(hex::encode).unwrap_or_else(|| "none".into())
        ),
    );
    say("title", &m.title);
    say("language", &m.lang);
    if let Some(sup) = &m.supersedes {
        say("supersedes", &hex::encode(sup));
    }
    let mut failed = None;
    let position = feed_position(&trust, &v);
    match &position {
        Ok(note) => say("feed check", note),
        Err(e) => {
            say("feed check", &format!("FAILED: {e}"));
            failed = Some(e.to_string());
        }
    }
    say("entries", &format!("{}", m.entries.len()));
    let mut missing = 0;
    let mut entries = Vec::new();
    for e in &m.entries {
        let hash = hex::encode(e.hash);
        let state = check_entry(store, e)?;
        let (label, note) = match &state {
            EntryState::Ok => ("ok", String::new()),
            EntryState::Missing => (
                "MISSING",
                " (not in this store: fetch it, it is not forged)".into(),
            ),
            EntryState::Partial => ("PARTIAL", " (only part of it is here yet)".into()),
            EntryState::Bad(why) => ("BAD", format!(": {why}")),
        };
        if !json_out {
            println!(
                "  {label:<8} {}  {hash}  {} bytes  {}{note}",
                e.path, e.size, e.media_type
            );
        }
        entries.push(json!({
            "path": e.path,
            "hash": hash,
            "size": e.size,
            "media_type": e.media_type,
            "state": label.to_lowercase(),
            "problem": match &state { EntryState::Bad(why) => Some(why.clone()), _ => None },
        }));
        match state {
            EntryState::Ok => {}
            EntryState::Missing | EntryState::Partial => missing += 1,
            EntryState::Bad(why) => {
                failed.get_or_insert(format!("entry {} ({hash}): {why}", e.path));
            }
        }
    }
    let (result, code) = if let Some(why) = &failed {
        say("result", &format!("NOT VERIFIED: {why}"));
        ("not_verified", ExitCode::FAILURE)
    } else if missing > 0 {
        say(
            "result",
            &format!(
                "SIGNATURE VERIFIED, {missing} of {} files missing here",
                m.entries.len()
            ),
        );
        ("incomplete", ExitCode::from(EXIT_INCOMPLETE))
    } else {
        say("result", "VERIFIED");
        ("verified", ExitCode::SUCCESS)
    };
    if json_out {
        let out = json!({
            "manifest": id,
            "result": result,
            "reason": failed,
            "publisher": m.publisher.to_string(),
            "fingerprint": m.publisher.fingerprint(),
            "signer": m.signer.to_string(),
            "delegation": delegation,
            "created": m.created,
            "feed": m.feed,
            "seq": m.seq,
            "prev": m.prev.map(hex::encode),
            "title": m.title,
            "lang": m.lang,
            "supersedes": m.supersedes.map(hex::encode),
            "feed_check": match &position {
                Ok(note) => json!({ "ok": true, "note": note }),
                Err(e) => json!({ "ok": false, "note": e.to_string() }),
            },
            "missing": missing,
            "entries": entries,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(code)
}

/// Where the manifest stands against this node's view of its feed. An older
/// article is still genuine; equivocation and forks are not.
fn feed_position(trust: &TrustState, v: &VerifiedManifest) -> Result<String, FeedError> {
    let m = v.manifest();
    let head = trust.head(&m.publisher, &m.feed);
    match trust.check(v, now()) {
        Ok(tamizdat_sign::Verdict::Duplicate) => Ok(match head {
            Some(h) if h.seq == m.seq => "the latest in its feed known here".into(),
            Some(h) => format!(
                "an older article: the feed is at seq {} (newer articles exist)",
                h.seq
            ),
            None => "accepted here".into(),
        }),
        Ok(tamizdat_sign::Verdict::Backfill) => {
            Ok("fills a gap in the feed as this node knows it".into())
        }
        Ok(_) => Ok("newer than anything this node has seen of the feed".into()),
        Err(FeedError::Replay { head, .. }) => Ok(format!(
            "an older article: the feed is at seq {head} (newer articles exist); \
             its place in the feed is older than this node can check"
        )),
        Err(e) => Err(e),
    }
}

pub fn show(store: &Repo, target: &str) -> Result<ExitCode> {
    let (bytes, id) = load_envelope(store, target)?;
    let signed = Signed::<Manifest>::decode(&bytes)?;
    let trust = state::load(store)?;
    let verified = Verifier::new().verify(&bytes, &trust);
    let m = signed.body();
    let hexo = |d: &Option<[u8; 32]>| d.map(hex::encode);
    let delegation = match &m.delegation {
        Some(d) => Signed::<tamizdat_sign::Delegation>::decode(d)
            .ok()
            .map(|d| {
                let b = d.body().clone();
                json!({
                    "id": hex::encode(d.id()),
                    "root": b.root.to_string(),
                    "key": b.key.to_string(),
                    "not_before": b.not_before,
                    "not_after": b.not_after,
                    "feed": b.feed,
                })
            }),
        None => None,
    };
    let out = json!({
        "id": id,
        "verified": verified.is_ok(),
        "error": verified.err().map(|e| e.to_string()),
        "publisher": m.publisher.to_string(),
        "publisher_fingerprint": m.publisher.fingerprint(),
        "signer": m.signer.to_string(),
        "delegation": delegation,
        "feed": m.feed,
        "seq": m.seq,
        "prev": hexo(&m.prev),
        "created": m.created,
        "created_rfc3339": format_time(m.created),
        "title": m.title,
        "lang": m.lang,
        "summary": m.summary,
        "supersedes": hexo(&m.supersedes),
        "entries": m.entries.iter().map(|e| json!({
            "path": e.path,
            "hash": hex::encode(e.hash),
            "size": e.size,
            "media_type": e.media_type,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
