//! `follow`, `unfollow`, `following`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tamizdat_node::retention::Policy;
use tamizdat_sign::PublicKey;

use super::repo::Repo;

fn parse_key(s: &str) -> Result<PublicKey> {
    s.parse().with_context(|| {
        format!("{s:?} is not a publisher key (64 hex digits, as `key show` prints)")
    })
}

pub fn follow(
    repo: impl FnOnce() -> Result<Repo>,
    arg: &str,
    name: Option<String>,
    policy: Policy,
) -> Result<ExitCode> {
    // A key parses first: a file named like a key is still the key.
    let is_card = match arg.parse::<PublicKey>() {
        Ok(_) => false,
        Err(_) if super::card::is_card(arg) => true,
        Err(_) => bail!(
            "{arg:?} is neither a publisher key (64 hex digits, as `key show` prints) \
             nor a card (a tamizdat1... line, or a file holding one)"
        ),
    };
    let repo = repo()?;
    let (card, replaces) = match is_card {
        true => {
            let (card, old) = super::card::accept(&repo, arg)?;
            (Some(card), old)
        }
        false => (None, None),
    };
    // A volunteer's card: joined through, nobody followed.
    if let Some(card) = &card
        && let Some(peer) = super::card::node_of(card.body())
    {
        super::card::keep(&repo, card, replaces.as_ref())?;
        let n = card.body().addrs.len();
        match repo.join(&card.body().addrs)? {
            Some(reached) => eprintln!(
                "card of the volunteer node {:?} ({peer}) kept: the node dialled its {n} \
                 address{}, {reached} answered (it joins through them at every start); \
                 this follows no outlet: follow one by its card or key",
                card.body().name,
                if n == 1 { "" } else { "es" },
            ),
            None => eprintln!(
                "card of the volunteer node {:?} ({peer}) kept: the node joins through its \
                 {n} address{} when it starts; this follows no outlet: follow one by its \
                 card or key",
                card.body().name,
                if n == 1 { "" } else { "es" },
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let key = match &card {
        Some(c) => c.body().root,
        None => parse_key(arg)?,
    };
    // Following again changes what was given and keeps the rest: `follow
    // KEY --keep 90d` on a followed key must not drop its `--max-bytes`.
    let before = repo.following()?.into_iter().find(|f| f.key == key);
    let (name, policy) = match &before {
        Some(b) => (
            name.or_else(|| b.name.clone()),
            Policy {
                max_bytes: policy.max_bytes.or(b.policy.max_bytes),
                max_age: policy.max_age.or(b.policy.max_age),
            },
        ),
        None => (name, policy),
    };
    let name = name.or_else(|| card.as_ref().map(|c| c.body().name.clone()));
    repo.follow(key, name.clone(), policy)?;
    if let Some(card) = &card {
        super::card::keep(&repo, card, replaces.as_ref())?;
        let n = card.body().addrs.len();
        match repo.join(&card.body().addrs)? {
            Some(reached) => eprintln!(
                "card of {:?} kept: the node dialled its {n} address{}, {reached} answered \
                 (the node joins through them at every start)",
                card.body().name,
                if n == 1 { "" } else { "es" },
            ),
            None => eprintln!(
                "card of {:?} kept: the node joins through its {n} address{} when it starts",
                card.body().name,
                if n == 1 { "" } else { "es" },
            ),
        }
    }
    match &before {
        None => eprintln!(
            "following {key} ({}): {}",
            key.fingerprint(),
            limits(&policy)
        ),
        Some(b) if b.policy == policy && b.name == name => eprintln!(
            "already following {key} ({}): {}; nothing changed",
            key.fingerprint(),
            limits(&policy)
        ),
        Some(b) => eprintln!(
            "already following {key} ({}): now {} (was {}){}",
            key.fingerprint(),
            limits(&policy),
            limits(&b.policy),
            if b.name != name {
                format!(", named {:?}", name.as_deref().unwrap_or("-"))
            } else {
                String::new()
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A publisher's limits as `following` shows them, in the forms `follow`
/// takes ("max 5 GiB, keep 365d").
fn limits(p: &Policy) -> String {
    let mut out = Vec::new();
    if let Some(b) = p.max_bytes {
        out.push(format!("max {}", bytesize::ByteSize::b(b).display().iec()));
    }
    if let Some(a) = p.max_age {
        out.push(format!("keep {}", duration(a)));
    }
    if out.is_empty() {
        "keep all".to_owned()
    } else {
        out.join(", ")
    }
}

/// Seconds as days, hours, minutes and seconds ("365d", "1d 12h"), which
/// `--keep` reads back; humantime's own form counts months of 30.44 days
/// and shows 365 days as "11months 30days 3h 50m 24s".
fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let s: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if s.is_empty() {
        "0s".to_owned()
    } else {
        s.join(" ")
    }
}

pub fn unfollow(repo: &Repo, key: &str) -> Result<ExitCode> {
    let key = parse_key(key)?;
    super::card::drop_card(repo, &key)?;
    if repo.unfollow(&key)? {
        eprintln!("no longer following {key}; what is stored stays until unpinned");
    } else {
        eprintln!("was not following {key}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn following(repo: &Repo, json_out: bool) -> Result<ExitCode> {
    let list = repo.following()?;
    if list.is_empty() {
        eprintln!("following nobody: `tamizdat follow CARD` to replicate a publisher");
    }
    for f in list {
        if json_out {
            let line = serde_json::json!({
                "key": f.key.to_string(),
                "fingerprint": f.key.fingerprint(),
                "name": f.name,
                "max_bytes": f.policy.max_bytes,
                "max_age_secs": f.policy.max_age,
            });
            println!("{line}");
            continue;
        }
        println!(
            "{}  {}  {}  {}",
            f.key,
            f.key.fingerprint(),
            f.name.as_deref().unwrap_or("-"),
            limits(&f.policy)
        );
    }
    Ok(ExitCode::SUCCESS)
}
