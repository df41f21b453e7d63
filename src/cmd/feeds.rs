//! `follow`, `unfollow`, `following`.

use std::{path::Path, process::ExitCode};

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
    dir: &Path,
    repo: impl FnOnce() -> Result<Repo>,
    arg: &str,
    name: Option<String>,
    policy: Policy,
) -> Result<ExitCode> {
    // A key parses first: a file named like a key is still the key.
    let card = match arg.parse::<PublicKey>() {
        Ok(_) => None,
        Err(_) if super::card::is_card(arg) => Some(super::card::accept(dir, arg)?),
        Err(_) => bail!(
            "{arg:?} is neither a publisher key (64 hex digits, as `key show` prints) \
             nor a card (a tamizdat1... line, or a file holding one)"
        ),
    };
    let key = match &card {
        Some(c) => c.body().root,
        None => parse_key(arg)?,
    };
    let name = name.or_else(|| card.as_ref().map(|c| c.body().name.clone()));
    let repo = repo()?;
    let new = repo.follow(key, name, policy)?;
    if let Some(card) = &card {
        super::card::keep(dir, card)?;
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
    eprintln!(
        "{} {} ({})",
        if new {
            "following"
        } else {
            "already following"
        },
        key,
        key.fingerprint()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn unfollow(dir: &Path, repo: &Repo, key: &str) -> Result<ExitCode> {
    let key = parse_key(key)?;
    super::card::drop_card(dir, &key)?;
    if repo.unfollow(&key)? {
        eprintln!("no longer following {key}; what is stored stays until unpinned");
    } else {
        eprintln!("was not following {key}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn following(repo: &Repo) -> Result<ExitCode> {
    let list = repo.following()?;
    if list.is_empty() {
        eprintln!("following nobody: `tamizdat follow CARD` to replicate a publisher");
    }
    for f in list {
        let mut limits = Vec::new();
        if let Some(b) = f.policy.max_bytes {
            limits.push(format!("max {}", bytesize::ByteSize::b(b).display().iec()));
        }
        if let Some(a) = f.policy.max_age {
            limits.push(format!(
                "keep {}",
                humantime::format_duration(std::time::Duration::from_secs(a))
            ));
        }
        println!(
            "{}  {}  {}  {}",
            f.key,
            f.key.fingerprint(),
            f.name.as_deref().unwrap_or("-"),
            if limits.is_empty() {
                "keep all".to_owned()
            } else {
                limits.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
