//! Running a node for real: `init`, `config check`, `health`,
//! `completions`, `man`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use super::net;
use crate::cli::Cli;
use crate::config::{self, Profile};
use crate::control::{self, Remote, Request};

/// The commented config `init` writes for each profile: the committed
/// examples under `deploy/config/`, so what is documented is what is used.
pub fn template(profile: Profile) -> &'static str {
    match profile {
        Profile::Desktop => include_str!("../../deploy/config/desktop.toml"),
        Profile::Server => include_str!("../../deploy/config/server.toml"),
        Profile::Lowpower => include_str!("../../deploy/config/lowpower.toml"),
    }
}

/// Creates the node key and `config.toml` in `dir` (already created).
/// Refuses to overwrite a config.
pub fn init(dir: &Path, profile: Profile) -> Result<ExitCode> {
    let path = config::path(dir);
    if path.exists() {
        bail!(
            "{} already exists: not overwritten (check it with `tamizdat config check`)",
            path.display()
        );
    }
    let key = net::node_key(dir)?;
    // Write beside, fsync, rename: a crash leaves no half config.
    let tmp = dir.join(".config.toml.new");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(template(profile).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot create {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    println!("data dir   {}", dir.display());
    println!("node id    {}", key.public().to_peer_id());
    println!(
        "config     {} ({} profile)",
        path.display(),
        profile_name(profile)
    );
    println!("next       tamizdat follow PUBKEY --name NAME, then tamizdat node");
    Ok(ExitCode::SUCCESS)
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Desktop => "desktop",
        Profile::Server => "server",
        Profile::Lowpower => "lowpower",
    }
}

/// `config check [FILE]`.
pub fn config_check(dir: &Path, file: Option<&Path>) -> Result<ExitCode> {
    let path = file
        .map(Path::to_owned)
        .unwrap_or_else(|| config::path(dir));
    config::check(&path)?;
    println!("ok: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `health`: the node answers on its control socket, and its gateway's
/// `/healthz` answers 200.
pub fn health(dir: &Path) -> Result<ExitCode> {
    let Some(remote) = Remote::find(dir) else {
        bail!("no node is running on {}", dir.display());
    };
    let status = remote
        .call::<control::Status>(&Request::Status)
        .context("the node does not answer on its control socket")?;
    let gateway = match &status.gateway {
        Some(url) => {
            let body =
                healthz(url).with_context(|| format!("the gateway at {url} is not healthy"))?;
            format!(", gateway {url}: {}", body.trim())
        }
        None => String::new(),
    };
    println!(
        "ok: node {} (pid {}), {} peer(s){gateway}",
        status.peer_id,
        status.pid,
        status.connected.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// GET `URL/healthz` with a 5 s limit; the body when the status is 200.
fn healthz(url: &str) -> Result<String> {
    let addr = url.strip_prefix("http://").context("not an http:// URL")?;
    let sock: std::net::SocketAddr = addr.parse().context("not IP:PORT")?;
    let limit = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&sock, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.take(64 * 1024).read_to_end(&mut out)?;
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") {
        bail!("answered {status:?}");
    }
    Ok(body.to_owned())
}

/// `completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    // Into memory first: `generate` panics on a failed write, and a closed
    // pipe is an error `main` ends quietly on.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tamizdat", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `man`.
pub fn man(path: &[String], dir: Option<&Path>) -> Result<ExitCode> {
    // Built, so that every subcommand has its display name (`tamizdat-get`),
    // which is what the SUBCOMMANDS section of its parent refers to.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = dir {
        let mut written = Vec::new();
        write_pages(&cmd, &[], dir, &mut written)?;
        for f in &written {
            println!("{}", f.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut at = &cmd;
    for name in path {
        at = at.find_subcommand(name).with_context(|| {
            format!(
                "{name:?}: no such command under `{}` (see `tamizdat --help`)",
                at.get_display_name().unwrap_or(at.get_name())
            )
        })?;
    }
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    let page = man_page(at, &names)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Every page under `cmd`, into `dir`.
fn write_pages(
    cmd: &clap::Command,
    path: &[&str],
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let name = format!("{}.1", cmd.get_display_name().unwrap_or(cmd.get_name()));
    let file = dir.join(name);
    std::fs::write(&file, man_page(cmd, path)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut p = path.to_vec();
        p.push(sub.get_name());
        write_pages(sub, &p, dir, written)?;
    }
    Ok(())
}

/// One page: clap_mangen's sections, then EXIT STATUS.
fn man_page(cmd: &clap::Command, path: &[&str]) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for (code, text) in exit_status(path) {
        page.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(text)).as_bytes());
    }
    Ok(page)
}

/// What each exit status means, for the command at `path` (empty: all).
fn exit_status(path: &[&str]) -> Vec<(u8, &'static str)> {
    let mut out = vec![(0, "Success.")];
    let own: &[(u8, &str)] = match path {
        [] => &[
            (
                1,
                "An error, said on standard error; for verify and import, something forged, tampered with, revoked or refused.",
            ),
            (
                3,
                "verify: the signature holds but files are missing here; get: files of the article did not arrive in time; status: no node runs.",
            ),
            (4, "status: a node may run, but does not let this user in."),
        ],
        ["verify"] => &[
            (
                1,
                "Something is forged, tampered with or revoked, or the manifest could not be read.",
            ),
            (
                3,
                "The signature holds, but some of the article's files are missing (or partial) here.",
            ),
        ],
        ["get"] => &[
            (
                1,
                "Nothing was fetched: no provider delivered, no peer could be reached, or the manifest does not verify.",
            ),
            (
                3,
                "The article's manifest verified, but some of its files did not arrive in time; run it again for the rest.",
            ),
        ],
        ["status"] => &[
            (1, "An error reaching the node."),
            (3, "No node runs on this data directory."),
            (4, "A node may run, but does not let this user in."),
        ],
        ["import"] => &[(
            1,
            "Some part of the bundle was damaged, forged, refused or skipped; the rest was imported.",
        )],
        ["export"] => &[(
            1,
            "An article chosen was left out (it does not verify here, or files are missing), or writing failed.",
        )],
        ["health"] => &[(1, "The node or its gateway does not answer.")],
        _ => &[(1, "An error, said on standard error.")],
    };
    out.extend_from_slice(own);
    out.push((2, "The command line could not be parsed."));
    out.push((
        141,
        "Standard output was closed early (as by `head`); nothing else went wrong.",
    ));
    out.sort_by_key(|(c, _)| *c);
    out
}

/// Text for a roff line: backslashes and hyphens escaped, no leading dot.
fn roff_text(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}
