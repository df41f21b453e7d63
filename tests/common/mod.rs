//! Shared by the end-to-end tests: a temporary data dir and a way to run
//! the real binary against it.
#![allow(dead_code)]

use std::{
    fs,
    path::PathBuf,
    process::{Command, Output},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_tamizdat");

/// A data dir plus a scratch dir, and a way to run the binary against them.
pub struct Env {
    pub tmp: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            tmp: TempDir::new().unwrap(),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    pub fn work(&self) -> PathBuf {
        let p = self.tmp.path().join("work");
        fs::create_dir_all(&p).unwrap();
        p
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.work())
            .env("TAMIZDAT_DIR", self.data())
            .env_remove("RUST_LOG");
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tamizdat {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "tamizdat {args:?} should have failed"
        );
        String::from_utf8(out.stderr).unwrap()
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.work().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
}

pub fn random(size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}
