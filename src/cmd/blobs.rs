//! `add`, `cat`, `ls`, `pin`, `unpin`, `pins`, `gc`, `scrub`.

use std::{
    fs::File,
    io::{self, BufReader, IsTerminal, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tamizdat_store::{Added, Hash};

use super::repo::Repo;

use crate::cli::AddArgs;

/// Files at least this large get a progress bar (on a terminal).
pub(super) const PROGRESS_MIN: u64 = 64 << 20;

/// Formats one output line of `add` exactly as `b3sum` does, including its
/// escaping of names that hold a backslash or a newline.
pub fn b3sum_line(hash: &Hash, name: &Path) -> String {
    let name = name.to_string_lossy();
    if name.contains('\\') || name.contains('\n') {
        let escaped = name.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{hash}  {escaped}")
    } else {
        format!("{hash}  {name}")
    }
}

fn add_one(store: &Repo, path: &Path) -> Result<Added> {
    if path == Path::new("-") {
        return store.add_reader(io::stdin().lock(), path);
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        anyhow::bail!("{} is a directory", path.display());
    }
    if !meta.is_file() {
        // A pipe or device: its size is not known until it ends.
        return store.add_reader(file, path);
    }
    let size = meta.len();
    let reader = BufReader::with_capacity(1 << 20, file);
    if let Some(bar) = progress(size, path.display().to_string()) {
        let added = store.add_sized(bar.wrap_read(reader), size, path);
        bar.finish_and_clear();
        return added;
    }
    store.add_sized(reader, size, path)
}

/// A progress bar on standard error for `size` bytes, when that is worth
/// it: a terminal, and at least [`PROGRESS_MIN`] bytes.
pub(super) fn progress(size: u64, message: String) -> Option<ProgressBar> {
    if size < PROGRESS_MIN || !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    Some(bar)
}

pub fn add(store: &Repo, args: &AddArgs) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let mut failed = false;
    let mut added = Vec::new();
    for path in &args.files {
        match add_one(store, path) {
            Ok(a) => {
                writeln!(out, "{}", b3sum_line(&a.hash, path))?;
                out.flush()?;
                added.push(a.hash);
            }
            Err(e) => {
                eprintln!("tamizdat: {}: {e:#}", path.display());
                failed = true;
            }
        }
    }
    if let Some(name) = &args.pin {
        for hash in &added {
            store.pin(name, hash)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn cat(store: &Repo, hash: &Hash) -> Result<ExitCode> {
    let mut reader = store.reader(hash)?;
    let mut out = io::stdout().lock();
    match io::copy(&mut reader, &mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => match tamizdat_store::corrupt_of(&e) {
            Some(c) => Err(anyhow::anyhow!(
                "{c}; nothing after that offset was written. Run `tamizdat scrub`."
            )),
            None => Err(e).with_context(|| format!("reading blob {hash}")),
        },
    }
}

pub fn ls(store: &Repo, json_out: bool) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    for b in store.list()? {
        if json_out {
            let line = serde_json::json!({
                "hash": b.hash.to_string(),
                "size": b.size,
                "complete": b.complete,
                "verified_bytes": b.verified_bytes,
                "pins": b.pins,
            });
            writeln!(out, "{line}")?;
            continue;
        }
        let state = if b.complete {
            "complete".to_owned()
        } else {
            format!("partial:{}/{}", b.verified_bytes, b.size)
        };
        writeln!(
            out,
            "{}  {:>12}  {state}  {}",
            b.hash,
            b.size,
            b.pins.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pin(store: &Repo, name: &str, hashes: &[Hash]) -> Result<ExitCode> {
    for h in hashes {
        store.pin(name, h)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unpin(store: &Repo, name: &str, hashes: &[Hash]) -> Result<ExitCode> {
    if hashes.is_empty() {
        let n = store.unpin(name, None)?;
        eprintln!("removed pin {name:?} ({n} blobs released)");
    }
    for h in hashes {
        store.unpin(name, Some(h))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pins(store: &Repo, json_out: bool) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    for (name, hashes) in store.pins()? {
        if json_out {
            let blobs: Vec<String> = hashes.iter().map(|h| h.to_string()).collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "name": name, "blobs": blobs })
            )?;
            continue;
        }
        for h in hashes {
            writeln!(out, "{name}  {h}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gc(store: &Repo, dry_run: bool) -> Result<ExitCode> {
    let report = store.gc(dry_run)?;
    let bytes: u64 = report.removed.iter().map(|(_, s)| s).sum();
    let mut out = io::stdout().lock();
    for (h, size) in &report.removed {
        writeln!(
            out,
            "{}  {h}  {size}",
            if dry_run { "would remove" } else { "removed" }
        )?;
    }
    for path in &report.orphan_files {
        writeln!(
            out,
            "{}  {}",
            if dry_run {
                "would remove orphan"
            } else {
                "removed orphan"
            },
            path.display()
        )?;
    }
    eprintln!(
        "{} {} blobs, {bytes} bytes; {} {} orphan files (named like blobs, in no index entry)",
        if dry_run { "would remove" } else { "removed" },
        report.removed.len(),
        if dry_run { "would sweep" } else { "swept" },
        report.orphans
    );
    Ok(ExitCode::SUCCESS)
}

pub fn scrub(store: &Repo) -> Result<ExitCode> {
    let r = store.scrub()?;
    let mut out = io::stdout().lock();
    for (h, why) in &r.quarantined {
        writeln!(out, "quarantined  {h}  {why}")?;
    }
    for h in &r.outboards_rebuilt {
        writeln!(out, "rebuilt-proof  {h}")?;
    }
    for h in &r.partials_trimmed {
        writeln!(out, "trimmed-partial  {h}")?;
    }
    eprintln!(
        "scrub: checked {} blobs ({} bytes): {} quarantined, {} proofs rebuilt, {} partials trimmed",
        r.checked,
        r.bytes,
        r.quarantined.len(),
        r.outboards_rebuilt.len(),
        r.partials_trimmed.len()
    );
    let damaged = !(r.quarantined.is_empty()
        && r.outboards_rebuilt.is_empty()
        && r.partials_trimmed.is_empty());
    Ok(if damaged {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
