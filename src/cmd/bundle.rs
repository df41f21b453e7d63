//! `tamizdat export` and `tamizdat import`.

use std::{path::Path, process::ExitCode};

use anyhow::{Result, bail};

use super::repo::Repo;
use crate::cli::{ExportArgs, ImportArgs};

pub fn export(_dir: &Path, _store: &Repo, _args: ExportArgs) -> Result<ExitCode> {
    bail!("not yet")
}

pub fn import(_store: &Repo, _args: ImportArgs) -> Result<ExitCode> {
    bail!("not yet")
}
