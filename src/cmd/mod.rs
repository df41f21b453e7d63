//! Execution of each command.

mod articles;
mod blobs;
mod bundle;
mod card;
mod demo;
mod feeds;
mod get;
mod heads;
mod keys;
mod net;
mod ops;
mod recover;
mod repo;
mod state;

use std::{path::Path, process::ExitCode};

use anyhow::{Context, Result};
use tamizdat_store::{Hash, OpenError, Options, Store};

use crate::{
    cli::{Cli, Command, ConfigCommand},
    config,
};

/// Runs one command; `Ok` carries the exit status for commands that report
/// problems without failing outright.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // Commands that need no data directory.
    match &cli.command {
        Command::Completions { shell } => return ops::completions(*shell),
        Command::Man { command, dir } => return ops::man(command, dir.as_deref()),
        Command::Demo(args) => return demo::run(args),
        _ => {}
    }
    let dir = match config::data_dir(cli.global.data_dir.as_deref()) {
        Ok(dir) => dir,
        // Another user's data directory: `status` says it cannot tell.
        Err(e) if matches!(cli.command, Command::Status { .. }) && denied(&e) => {
            let Command::Status { json } = cli.command else {
                unreachable!()
            };
            return net::status_refused(&format!("{e:#}"), json);
        }
        Err(e) => return Err(e),
    };
    // Commands that must run whatever the config says.
    match &cli.command {
        Command::Init { profile } => return ops::init(&dir, *profile),
        Command::Config(ConfigCommand::Check { file }) => {
            return ops::config_check(&dir, file.as_deref());
        }
        Command::Status { json } => return net::status(&dir, *json),
        Command::Node(args) if args.init && !config::path(&dir).exists() => {
            ops::init(&dir, args.profile.unwrap_or_default())?;
        }
        _ => {}
    }
    let cfg = config::load(&dir)?;
    let store = || repo::Repo::open(&dir, &cfg);
    match cli.command {
        Command::Add(args) => blobs::add(&store()?, &args),
        Command::Cat { hash } => blobs::cat(&store()?, &parse_hash(&hash)?),
        Command::Ls { json } => blobs::ls(&store()?, json),
        Command::Pin { name, hashes } => blobs::pin(&store()?, &name, &parse_hashes(&hashes)?),
        Command::Unpin { name, hashes } => blobs::unpin(&store()?, &name, &parse_hashes(&hashes)?),
        Command::Pins { json } => blobs::pins(&store()?, json),
        Command::Gc { dry_run } => blobs::gc(&store()?, dry_run),
        Command::Scrub => blobs::scrub(&store()?),
        Command::Recover {
            force,
            follow_found,
        } => recover::recover(&dir, &cfg, force, follow_found),
        Command::Key(cmd) => keys::run(&dir, store, cmd),
        Command::Card(cmd) => card::run(&dir, store, cmd),
        Command::Publish(args) => articles::publish(&dir, &store()?, args),
        Command::Verify { target, json } => articles::verify(&store()?, &target, json),
        Command::Show { target } => articles::show(&store()?, &target),
        Command::Follow {
            pubkey,
            name,
            max_bytes,
            keep,
        } => {
            let policy = tamizdat_node::retention::Policy {
                max_bytes: max_bytes.map(|b| b.as_u64()),
                max_age: keep.map(|d| d.as_secs()),
            };
            feeds::follow(store, &pubkey, name, policy)
        }
        Command::Unfollow { pubkey } => feeds::unfollow(&store()?, &pubkey),
        Command::Following { json } => feeds::following(&store()?, json),
        Command::Node(args) => net::node(&dir, &cfg, args),
        Command::Get(args) => get::get(&dir, &cfg, store()?, args),
        Command::Export(args) => bundle::export(&dir, &store()?, args),
        Command::Import(args) => bundle::import(&dir, &store()?, args),
        Command::Health => ops::health(&dir),
        Command::Init { .. }
        | Command::Status { .. }
        | Command::Config(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Demo(_) => {
            unreachable!("handled above")
        }
    }
}

/// Whether an error comes from a permission the system refused.
fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

fn store_options(cfg: &config::Config) -> Options {
    Options::default().with_quota(cfg.store.quota.map(|q| q.as_u64()))
}

fn open_store(dir: &Path, cfg: &config::Config) -> Result<Store> {
    match Store::open(dir.join("store"), store_options(cfg)) {
        Ok(store) => Ok(store),
        Err(e @ (OpenError::Damaged { .. } | OpenError::IndexLost { .. })) => {
            Err(anyhow::Error::new(e).context(
                "the store cannot be opened safely: run `tamizdat recover` (with the node stopped)",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `bytes` to `path` (mode 0600) beside, fsyncs, renames, fsyncs the
/// directory: a crash leaves the old file or the new one, never half of one.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let dir = path.parent().context("a file path has a directory")?;
    let name = path.file_name().context("a file path has a name")?;
    let tmp = dir.join(format!(".{}.new", name.to_string_lossy()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(())
}

pub(crate) fn parse_hash(s: &str) -> Result<Hash> {
    s.parse().with_context(|| format!("invalid hash {s:?}"))
}

fn parse_hashes(list: &[String]) -> Result<Vec<Hash>> {
    list.iter().map(|s| parse_hash(s)).collect()
}
