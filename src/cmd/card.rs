//! `card new`, `card show`, `card check`, and the cards a data directory
//! keeps (`DIR/cards/ROOTKEY.card`, one line each): the cards of the
//! publishers it follows, whose addresses the node joins through at every
//! start, and the cards made here.

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
use tamizdat_sign::{
    Card, KeyKind, MAX_CARD_LINE, PublicKey, Signed, card_supersedes, card_to_line,
    check_card_time, read_card,
};

use super::keys::{KeyDir, format_time, now, read_bounded};
use crate::cli::{CardCommand, CardNewArgs, CardShowArgs};

/// Where the cards live, under the data directory.
const CARDS: &str = "cards";
/// Most cards read from `DIR/cards` (one per publisher followed).
const MAX_CARDS: usize = 1024;
/// A card file: the line and a newline, with room for CRLF or spaces.
const MAX_CARD_FILE: u64 = MAX_CARD_LINE as u64 + 16;
/// How far back a new card's validity starts, so that a reader whose clock
/// runs up to a day slow still accepts it.
const CLOCK_SLACK: u64 = 24 * 3600;

pub fn run(dir: &Path, cmd: CardCommand) -> Result<ExitCode> {
    match cmd {
        CardCommand::New(args) => new(dir, args),
        CardCommand::Show(args) => show(args),
        CardCommand::Check { card } => check(&card),
    }
}

fn new(dir: &Path, args: CardNewArgs) -> Result<ExitCode> {
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
    let (kind, key) = KeyDir::open(dir)?.load(&args.root, &args.pass)?;
    if kind != KeyKind::Root {
        bail!(
            "{:?} is a signing key: a card is signed by the outlet's root key",
            args.root
        );
    }
    let root = key.public();
    // A card supersedes only cards issued before it: one made here in the
    // same second as the last one still replaces it.
    let issued = match held(dir, &root)? {
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
    keep(dir, &card)?;
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
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("name         {}", c.name);
        println!("root key     {}", c.root);
        println!("fingerprint  {}", c.root.fingerprint());
        for a in &c.addrs {
            println!("address      {a}");
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

/// Checks a card given to `follow` and keeps it, unless a newer card of
/// the same publisher is held already (then nothing changes).
pub fn accept(dir: &Path, arg: &str) -> Result<Signed<Card>> {
    let card = read_card(&read_arg(arg)?, now())?;
    if let Some(old) = held(dir, &card.body().root)?
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
    Ok(card)
}

/// Where a data directory keeps its cards.
pub fn dir(data: &Path) -> PathBuf {
    data.join(CARDS)
}

fn path(dir: &Path, root: &PublicKey) -> PathBuf {
    self::dir(dir).join(format!("{root}.card"))
}

/// Writes a card to `DIR/cards/ROOTKEY.card`, durably.
pub fn keep(dir: &Path, card: &Signed<Card>) -> Result<()> {
    let cards = self::dir(dir);
    fs::create_dir_all(&cards).with_context(|| format!("cannot create {}", cards.display()))?;
    let line = card_to_line(card) + "\n";
    super::replace_file(&path(dir, &card.body().root), line.as_bytes())
}

/// Drops the card kept for a publisher, if any.
pub fn drop_card(dir: &Path, root: &PublicKey) -> Result<()> {
    match fs::remove_file(path(dir, root)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("cannot remove the publisher's card")
        }
        _ => Ok(()),
    }
}

/// The card kept for a publisher, checked (its validity window aside).
fn held(dir: &Path, root: &PublicKey) -> Result<Option<Signed<Card>>> {
    let p = path(dir, root);
    if !p.exists() {
        return Ok(None);
    }
    let line = String::from_utf8(read_bounded(&p, MAX_CARD_FILE)?)
        .with_context(|| format!("{} is not text", p.display()))?;
    let card = tamizdat_sign::card_from_line(&line)
        .with_context(|| format!("the card kept in {} is damaged", p.display()))?;
    if card.body().root != *root {
        bail!("{} holds the card of another publisher", p.display());
    }
    Ok(Some(card))
}

/// The addresses of every valid card kept here, for the node to join
/// through. A damaged, expired or misplaced card is named on stderr and
/// left out; it never stops the node.
pub fn bootstrap_addrs(dir: &Path) -> Vec<Multiaddr> {
    let Ok(entries) = fs::read_dir(self::dir(dir)) else {
        return Vec::new();
    };
    let mut addrs = Vec::new();
    for entry in entries.flatten().take(MAX_CARDS) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(root) = name
            .strip_suffix(".card")
            .and_then(|k| k.parse::<PublicKey>().ok())
        else {
            continue;
        };
        let card = match held(dir, &root) {
            Ok(Some(card)) => card,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("card {name} left out: {e:#}");
                continue;
            }
        };
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
