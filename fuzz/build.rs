//! Copies the binary's `src/control.rs` into `OUT_DIR` without its inner
//! doc comment, so that `src/lib.rs` can `include!` it inside a module of
//! its own and reach the private frame functions the control socket uses.

use std::{env, fs, path::PathBuf};

fn main() {
    let src = PathBuf::from("../src/control.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let text = fs::read_to_string(&src).expect("../src/control.rs");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("control.rs");
    fs::write(out, body).unwrap();
}
