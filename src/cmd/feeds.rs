//! `follow`, `unfollow`, `following`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tamizdat_sign::PublicKey;

use super::repo::Repo;

fn parse_key(s: &str) -> Result<PublicKey> {
    s.parse().with_context(|| {
        format!("{s:?} is not a publisher key (64 hex digits, as `key show` prints)")
    })
}

pub fn follow(repo: &Repo, key: &str, name: Option<String>) -> Result<ExitCode> {
    let key = parse_key(key)?;
    let new = repo.follow(key, name)?;
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

pub fn unfollow(repo: &Repo, key: &str) -> Result<ExitCode> {
    let key = parse_key(key)?;
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
        eprintln!("following nobody: `tamizdat follow PUBKEY` to replicate a publisher");
    }
    for f in list {
        println!(
            "{}  {}  {}",
            f.key,
            f.key.fingerprint(),
            f.name.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
