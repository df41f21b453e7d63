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
pub fn man() -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
