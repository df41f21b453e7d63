//! `config.toml` (`src/config.rs` of the binary, compiled here from the
//! binary's source): the parser and checker `tamizdat config check` and
//! every command run, then what the node derives from a config.
//!
//! Checks: no panic on any text (the error names a line and column);
//! what parses resolves (gateway settings, node tuning for every profile)
//! without panicking.

use std::path::Path;

use afl::fuzz;
use tamizdat_fuzz::config::{self, Profile};

fn main() {
    fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        match config::parse(Path::new("config.toml"), text) {
            Ok(cfg) => {
                let _ = cfg.gateway.resolve(None);
                let _ = cfg.gateway.resolve(Some("off"));
                for p in [
                    None,
                    Some(Profile::Desktop),
                    Some(Profile::Server),
                    Some(Profile::Lowpower),
                ] {
                    let t = cfg.node.tuning(p);
                    assert!(t.max_streams > 0 && t.fetch_parallel > 0);
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(
                    msg.starts_with("config.toml"),
                    "the error names the file: {msg}"
                );
            }
        }
    });
}
