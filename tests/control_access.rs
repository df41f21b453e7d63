//! A user the node's control socket does not let in is told so, never told
//! that no node runs.

mod common;

use std::process::Command;

use common::{BIN, Env, is_root, node_command, sigterm, start_node};

#[test]
fn status_as_another_user_says_it_cannot_tell_not_that_no_node_runs() {
    if !is_root() {
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    let env = Env::new();
    let mut node = start_node(node_command(BIN, &env));
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "status",
        ])
        .env("TAMIZDAT_DIR", env.data())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(!stdout.contains("not running"), "{stdout}");
    assert!(stdout.contains("permission denied"), "{stdout}");
    // Its owner is answered as before.
    assert!(env.ok(&["status"]).contains("running (pid"));
    sigterm(&mut node);
}
