//! `card new`, `card show`, `card check`, and the cards a data directory
//! keeps: the cards of the publishers it follows, whose addresses the node
//! joins through at every start, and the cards made here. They live in the
//! store, pinned beside the key objects (`tamizdat_node::feeds::cards`); the node
//! takes newer ones from gossip, peers and bundles, judged by the feed
//! rules. Cards kept by older versions in `DIR/cards/` move there.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use qrcode::{EcLevel, QrCode, render::svg, render::unicode::Dense1x2};
use serde_json::json;
use tamizdat_node::Multiaddr;
use tamizdat_node::feeds::cards::KEYS_PIN;
use tamizdat_sign::{
    Card, KeyKind, MAX_CARD_LINE, PublicKey, Signed, card_supersedes, card_to_line,
    check_card_time, read_card,
};

use super::keys::{KeyDir, format_time, now, read_bounded};
use super::repo::Repo;
use crate::cli::{CardCommand, CardNewArgs, CardShowArgs};

/// Where older versions kept cards, under the data directory.
const CARDS: &str = "cards";
/// Most cards read from `DIR/cards` (one per publisher followed).
const MAX_CARDS: usize = 1024;
/// Key objects read when looking for the cards kept.
const MAX_KEPT: usize = 64 * MAX_CARDS;
/// A card file: the line and a newline, with room for CRLF or spaces.
const MAX_CARD_FILE: u64 = MAX_CARD_LINE as u64 + 16;
/// How far back a new card's validity starts, so that a reader whose clock
/// runs up to a day slow still accepts it.
const CLOCK_SLACK: u64 = 24 * 3600;

pub fn run(dir: &Path, repo: impl FnOnce() -> Result<Repo>, cmd: CardCommand) -> Result<ExitCode> {
    match cmd {
        CardCommand::New(args) => new(dir, &repo()?, args),
        CardCommand::Show(args) => show(args),
        CardCommand::Check { card } => check(&card),
    }
}

fn new(dir: &Path, repo: &Repo, mut args: CardNewArgs) -> Result<ExitCode> {
    // A volunteer's card is signed by the node's key, and each address
    // names that node, so that whoever joins through it knows whom it
    // reaches (and `follow` can tell it from an outlet's).
    let node = match args.node {
        true => {
            let key = super::net::node_key(dir)?;
            let peer = key.public().to_peer_id();
            for a in &mut args.addrs {
                let addr: Multiaddr = a
                    .parse()
                    .with_context(|| format!("--addr {a:?} is not a multiaddr"))?;
                match addr.iter().last() {
                    Some(tamizdat_node::Protocol::P2p(p)) if p == peer => {}
                    Some(tamizdat_node::Protocol::P2p(p)) => {
                        bail!("--addr {a}: names peer {p}, not this node ({peer})")
                    }
                    _ => *a = addr.with(tamizdat_node::Protocol::P2p(peer)).to_string(),
                }
            }
            let seed = key
                .try_into_ed25519()
                .context("the node key is not an ed25519 key")?;
            let seed: [u8; 32] = seed
                .secret()
                .as_ref()
                .try_into()
                .context("the node key is damaged")?;
            Some(tamizdat_sign::SecretKey::from_seed(&seed))
        }
        false => None,
    };
    for a in &args.addrs {
        let addr: Multiaddr = a
            .parse()
            .with_context(|| format!("--addr {a:?} is not a multiaddr"))?;
        if tamizdat_node::scope(&addr) != tamizdat_node::Scope::Global {
            eprintln!(
                "warning: {a} is a loopback or private address: only this machine or its \
                 network can reach it"
            );
        }
    }
    let valid_for = args.valid_for.as_secs();
    if valid_for == 0 {
        bail!("--valid-for must be longer than 0");
    }
    let key = match (node, &args.root) {
        (Some(key), _) => key,
        (None, Some(root)) => {
            let (kind, key) = KeyDir::open(dir)?.load(root, &args.pass)?;
            if kind != KeyKind::Root {
                bail!("{root:?} is a signing key: a card is signed by the outlet's root key");
            }
            key
        }
        (None, None) => bail!("give --root NAME (an outlet's card) or --node (this node's)"),
    };
    let root = key.public();
    // A card supersedes only cards issued before it: one made here in the
    // same second as the last one still replaces it.
    let old = held(repo, &root)?;
    let issued = match &old {
        Some(old) => now().max(old.body().issued + 1),
        None => now(),
    };
    let not_before = issued.saturating_sub(CLOCK_SLACK);
    let card = Card {
        root,
        name: args.name,
        addrs: args.addrs,
        issued,
        not_before,
        not_after: not_before
            .saturating_add(CLOCK_SLACK)
            .saturating_add(valid_for),
    };
    let card = Signed::sign(card, &key).context("cannot make this card")?;
    let line = card_to_line(&card);
    keep(repo, &card, old.as_ref())?;
    println!("{line}");
    qr(&line, args.qr, args.qr_svg.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

fn show(args: CardShowArgs) -> Result<ExitCode> {
    let line = read_arg(&args.card)?;
    let card = tamizdat_sign::card_from_line(&line)?;
    let c = card.body();
    let state = match check_card_time(c, now()) {
        Ok(()) => "valid".to_owned(),
        Err(e) => e.to_string(),
    };
    if args.json {
        let v = json!({
            "name": c.name,
            "root": c.root.to_string(),
            "fingerprint": c.root.fingerprint(),
            "addrs": c.addrs,
            "issued": c.issued,
            "not_before": c.not_before,
            "not_after": c.not_after,
            "valid": check_card_time(c, now()).is_ok(),
            "node": node_of(c).map(|p| p.to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("name         {}", c.name);
        println!("root key     {}", c.root);
        println!("fingerprint  {}", c.root.fingerprint());
        for a in &c.addrs {
            println!("address      {a}");
        }
        match node_of(c) {
            Some(peer) => {
                println!("kind         a volunteer's node ({peer}): joins, follows nobody")
            }
            None => println!("kind         an outlet's card"),
        }
        println!("issued       {}", format_time(c.issued));
        println!("valid from   {}", format_time(c.not_before));
        println!("valid until  {}", format_time(c.not_after));
        println!("state        {state}");
    }
    qr(&line, args.qr, args.qr_svg.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

fn check(arg: &str) -> Result<ExitCode> {
    let card = read_card(&read_arg(arg)?, now())?;
    let c = card.body();
    println!(
        "ok: card of {:?}, root key {} ({}), valid until {}",
        c.name,
        c.root,
        c.root.fingerprint(),
        format_time(c.not_after)
    );
    Ok(ExitCode::SUCCESS)
}

/// The peer a volunteer's card names: its signer is that node's key and
/// every address ends in `/p2p/` with that node's id. None for an outlet's
/// card (an outlet's root key is never a node key).
pub fn node_of(c: &Card) -> Option<tamizdat_node::PeerId> {
    let key =
        tamizdat_node::identity::ed25519::PublicKey::try_from_bytes(c.root.as_bytes()).ok()?;
    let peer = tamizdat_node::identity::PublicKey::from(key).to_peer_id();
    c.addrs
        .iter()
        .all(|a| {
            a.parse::<Multiaddr>().is_ok_and(
                |m| matches!(m.iter().last(), Some(tamizdat_node::Protocol::P2p(p)) if p == peer),
            )
        })
        .then_some(peer)
}

fn is_line(arg: &str) -> bool {
    arg.trim()
        .get(..tamizdat_sign::CARD_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(tamizdat_sign::CARD_PREFIX))
}

/// Whether `follow`'s argument is meant as a card: a line with the card
/// prefix, `-`, or an existing file.
pub fn is_card(arg: &str) -> bool {
    is_line(arg) || arg == "-" || Path::new(arg).is_file()
}

/// A card given on the command line: the line itself, a file, or stdin.
fn read_arg(arg: &str) -> Result<String> {
    if is_line(arg) {
        return Ok(arg.to_owned());
    }
    let bytes = if arg == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .take(MAX_CARD_FILE + 1)
            .read_to_end(&mut b)
            .context("cannot read the card from stdin")?;
        if b.len() as u64 > MAX_CARD_FILE {
            bail!("stdin holds more than a card ({MAX_CARD_FILE} bytes at most)");
        }
        b
    } else {
        read_bounded(Path::new(arg), MAX_CARD_FILE)
            .with_context(|| format!("{arg:?} is neither a card line nor a card file"))?
    };
    String::from_utf8(bytes).context("a card file holds one line of text")
}

/// Checks a card given to `follow`, and the card it replaces: refused
/// when a newer card of the same publisher is held already (then nothing
/// changes).
pub fn accept(repo: &Repo, arg: &str) -> Result<(Signed<Card>, Option<Signed<Card>>)> {
    let card = read_card(&read_arg(arg)?, now())?;
    let old = held(repo, &card.body().root)?;
    if let Some(old) = &old
        && !card_supersedes(card.body(), old.body())
    {
        bail!(
            "this card of {:?} was issued {}, before the one kept here (issued {}): \
             an old card is never taken over a newer one; nothing changed",
            card.body().name,
            format_time(card.body().issued),
            format_time(old.body().issued)
        );
    }
    Ok((card, old))
}

/// Where older versions kept cards.
fn legacy_dir(data: &Path) -> PathBuf {
    data.join(CARDS)
}

/// Keeps a card in the store in place of `replaces`, and hands it to the
/// running node, which tells the publisher's followers.
pub fn keep(repo: &Repo, card: &Signed<Card>, replaces: Option<&Signed<Card>>) -> Result<()> {
    let added = repo.add_bytes(card.bytes())?;
    repo.pin(KEYS_PIN, &added.hash)?;
    if let Some(old) = replaces {
        let old = tamizdat_store::Hash::of(old.bytes());
        if old != added.hash {
            unpin_quietly(repo, &old)?;
        }
    }
    repo.announce_key(card.bytes())?;
    Ok(())
}

fn unpin_quietly(repo: &Repo, hash: &tamizdat_store::Hash) -> Result<()> {
    match repo.unpin(KEYS_PIN, Some(hash)) {
        Ok(_) => Ok(()),
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<tamizdat_store::Error>(),
                    Some(
                        tamizdat_store::Error::NotPinned { .. }
                            | tamizdat_store::Error::NoSuchPin(_)
                    )
                )
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Drops every card kept for a publisher.
pub fn drop_card(repo: &Repo, root: &PublicKey) -> Result<()> {
    for (hash, card) in kept(repo)? {
        if card.body().root == *root {
            unpin_quietly(repo, &hash)?;
        }
    }
    Ok(())
}

/// Every genuine card kept in the store, with its blob's hash.
pub(super) fn kept(repo: &Repo) -> Result<Vec<(tamizdat_store::Hash, Signed<Card>)>> {
    let mut out = Vec::new();
    let pins = repo.pins()?;
    for hash in pins.get(KEYS_PIN).into_iter().flatten().take(MAX_KEPT) {
        let Some(info) = repo.info(hash)? else {
            continue;
        };
        if !info.complete || info.size > tamizdat_sign::MAX_CARD_LEN as u64 {
            continue;
        }
        // A damaged key object is no card: it is left for `scrub`.
        let Ok(bytes) = repo.read_to_vec(hash) else {
            continue;
        };
        if bytes.starts_with(b"tamizdat/card/")
            && let Ok(card) = tamizdat_sign::verify_card(&bytes)
        {
            out.push((*hash, card));
        }
    }
    Ok(out)
}

/// The newest card kept for a publisher, checked (its validity window
/// aside).
fn held(repo: &Repo, root: &PublicKey) -> Result<Option<Signed<Card>>> {
    Ok(tamizdat_node::feeds::cards::newest_of(
        kept(repo)?.into_iter().map(|(_, c)| c),
        root,
    ))
}

/// Moves the cards older versions kept in `DIR/cards/` into the store,
/// and removes that directory. A damaged file there is named and left.
pub fn import_legacy(dir: &Path, store: &tamizdat_store::Store) {
    let legacy = legacy_dir(dir);
    let Ok(entries) = fs::read_dir(&legacy) else {
        return;
    };
    for entry in entries.flatten().take(MAX_CARDS) {
        let p = entry.path();
        let card = read_bounded(&p, MAX_CARD_FILE)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|line| tamizdat_sign::card_from_line(&line).ok());
        let Some(card) = card else {
            tracing::warn!("{} is not a card; left where it is", p.display());
            continue;
        };
        let root = card.body().root;
        let old = tamizdat_node::feeds::cards::newest(store, &root)
            .ok()
            .flatten();
        let newer = old
            .as_ref()
            .is_none_or(|o| card_supersedes(card.body(), o.body()));
        if (!newer || tamizdat_node::feeds::cards::keep(store, &card, old.as_ref()).is_ok())
            && let Err(e) = fs::remove_file(&p)
        {
            tracing::warn!("cannot remove {}: {e}", p.display());
        }
    }
    let _ = fs::remove_dir(&legacy);
}

/// The addresses of every valid card kept here, for the node to join
/// through. A damaged or expired card is named in the log and left out;
/// it never stops the node.
pub fn bootstrap_addrs(store: &tamizdat_store::Store) -> Vec<Multiaddr> {
    let held = match tamizdat_node::feeds::cards::held(store) {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!("cards left out: {e}");
            return Vec::new();
        }
    };
    let mut newest: std::collections::BTreeMap<PublicKey, Signed<Card>> = Default::default();
    for (_, card) in held {
        let root = card.body().root;
        let keep = newest
            .get(&root)
            .is_none_or(|o| card_supersedes(card.body(), o.body()));
        if keep {
            newest.insert(root, card);
        }
    }
    let mut addrs = Vec::new();
    for card in newest.into_values() {
        if let Err(e) = check_card_time(card.body(), now()) {
            tracing::warn!("card of {:?} left out: {e}", card.body().name);
            continue;
        }
        for a in &card.body().addrs {
            match a.parse::<Multiaddr>() {
                Ok(addr) if !addrs.contains(&addr) => addrs.push(addr),
                Ok(_) => {}
                Err(e) => tracing::warn!("card of {:?}: address {a:?}: {e}", card.body().name),
            }
        }
    }
    addrs
}

/// Draws the card as a QR code: on stderr for a terminal, and as SVG.
/// The line is encoded upper case, which QR codes hold in fewer modules
/// (alphanumeric mode); cards read in either case.
fn qr(line: &str, terminal: bool, svg_file: Option<&Path>) -> Result<()> {
    if !terminal && svg_file.is_none() {
        return Ok(());
    }
    let code = QrCode::with_error_correction_level(line.to_ascii_uppercase(), EcLevel::M)
        .context("the card is too long for a QR code")?;
    if terminal {
        // Light modules drawn, dark ones left blank: right on the dark
        // background most terminals have (as `qrencode -t UTF8`).
        let text = code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build();
        eprintln!("{text}");
    }
    if let Some(file) = svg_file {
        let image = code
            .render::<svg::Color<'_>>()
            .min_dimensions(400, 400)
            .quiet_zone(true)
            .build();
        fs::write(file, image).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}
