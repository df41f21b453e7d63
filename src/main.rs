//! The `tamizdat` binary: parses the command line and wires the libraries.

mod cli;
mod cmd;
mod config;
mod control;
mod export;

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    quiet_on_closed_pipe();
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        // `tamizdat man | head`: the reader has what it wanted.
        Err(e) if closed_pipe(&e) => ExitCode::from(CLOSED_PIPE),
        Err(e) => {
            eprintln!("tamizdat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a command whose output pipe was closed early, as a
/// shell reports a process ended by SIGPIPE (128 + 13).
const CLOSED_PIPE: u8 = 141;

fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` panics when stdout is a pipe closed early (`tamizdat ls |
/// head`); that is no error of ours, so the process ends quietly with
/// [`CLOSED_PIPE`] instead of printing a panic. SIGPIPE itself stays
/// ignored, so that a socket closed under the node or a command is an
/// error it handles, not a silent death.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(i32::from(CLOSED_PIPE));
        }
        default(info);
    }));
}
