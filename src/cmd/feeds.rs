//! `follow`, `unfollow`, `following`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tamizdat_node::retention::Policy;
use tamizdat_sign::PublicKey;

use super::repo::Repo;

fn parse_key(s: &str) -> Result<PublicKey> {
    s.parse().with_context(|| {
        format!("{s:?} is not a publisher key (64 hex digits, as `key show` prints)")
    })
}

pub fn follow(repo: &Repo, key: &str, name: Option<String>, policy: Policy) -> Result<ExitCode> {
    let key = parse_key(key)?;
    let new = repo.follow(key, name, policy)?;
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
