//! `tamizdat demo`: a small local network with a demo outlet.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::DemoArgs;

pub fn run(_args: &DemoArgs) -> Result<ExitCode> {
    bail!("not yet")
}
