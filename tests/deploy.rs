//! The deployment files under `deploy/`: the example configs, the systemd
//! unit, the compose file and the Dockerfile.
//!
//! The configs are checked by the real binary (`tamizdat config check`). The
//! systemd unit is checked by `systemd-analyze verify` where that tool exists.
//! The compose file is parsed as YAML. The Dockerfile is only read: building
//! it needs a Docker engine, which the test machines do not have.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use yaml_rust2::{Yaml, YamlLoader};

mod common;
use common::{BIN, Env};

/// The profiles `tamizdat init --profile` knows, each with its example.
const PROFILES: &[&str] = &["desktop", "server", "lowpower"];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(rel: &str) -> String {
    let path = deploy().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Says which way a check went, past the test harness's output capture so
/// that it shows in every run: a check that could not run must not look
/// like one that passed.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "deploy: {line}");
}

/// Every `deploy/config/*.toml`, sorted.
fn config_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(deploy().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Whether an error message names line `line` (`FILE:LINE:COL: ...`,
/// `FILE:LINE: ...` or `line LINE`).
fn names_line(message: &str, line: usize) -> bool {
    message.contains(&format!(":{line}:")) || message.contains(&format!("line {line}"))
}

// ---- configs -----------------------------------------------------------------

#[test]
fn every_example_config_passes_config_check() {
    let env = Env::new();
    let files = config_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["example"].iter().chain(PROFILES) {
        assert!(
            names.contains(*want),
            "deploy/config/{want}.toml is missing"
        );
    }
    for file in &files {
        let shown = file.to_str().unwrap();
        let out = env.run(&["config", "check", shown]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tamizdat config check {shown} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("ok:") && stdout.contains(shown),
            "config check {shown} printed {stdout:?}"
        );
    }
    report(&format!(
        "config check passed on {} files in deploy/config",
        files.len()
    ));
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let env = Env::new();
    for file in config_files() {
        let text = fs::read_to_string(&file).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let node = lines
            .iter()
            .position(|l| l.trim() == "[node]")
            .unwrap_or_else(|| panic!("{} has no [node] section", file.display()));
        // The key goes on the line right after `[node]`: 1-based, node + 2.
        lines.insert(node + 1, "not_a_tamizdat_key = 1");
        let line = node + 2;
        let name = format!("broken-{}", file.file_name().unwrap().to_string_lossy());
        let broken = env.write(&name, (lines.join("\n") + "\n").as_bytes());
        let out = env.run(&["config", "check", broken.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "config check accepted an unknown key in {name}: {stderr}"
        );
        assert!(
            stderr.contains("not_a_tamizdat_key"),
            "the error does not name the key: {stderr}"
        );
        assert!(
            names_line(&stderr, line),
            "the error does not name line {line}: {stderr}"
        );
    }
}

#[test]
fn each_profile_config_sets_its_profile() {
    for p in PROFILES {
        let text = read(&format!("config/{p}.toml"));
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            table["node"]["profile"].as_str(),
            Some(*p),
            "deploy/config/{p}.toml"
        );
    }
}

#[test]
fn init_writes_a_config_that_checks() {
    for p in PROFILES {
        let env = Env::new();
        env.ok(&["init", "--profile", p]);
        let written = fs::read_to_string(env.data().join("config.toml")).unwrap();
        assert!(
            written.contains(&format!("profile = \"{p}\"")),
            "init --profile {p} wrote:\n{written}"
        );
        let out = env.ok(&["config", "check"]);
        assert!(out.starts_with("ok:"), "{out}");
        // A second init never overwrites the config.
        env.fails(&["init", "--profile", p]);
    }
}

// ---- systemd -----------------------------------------------------------------

/// The unit's `Key=value` settings by section, in order, comments left out.
fn unit_settings(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_owned();
        } else if let Some((k, v)) = t.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_is_valid_and_hardened() {
    let text = read("systemd/tamizdat.service");

    // The directives the unit must have, whatever tools this machine has.
    let units = unit_settings(&text);
    let service = units.get("Service").expect("no [Service] section");
    let values = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let is = |key: &str, want: &str| {
        assert!(
            values(key).contains(&want),
            "the unit lacks {key}={want} (has {:?})",
            values(key)
        );
    };
    is("Type", "notify");
    is("NotifyAccess", "main");
    assert!(
        values("DynamicUser").contains(&"yes") || !values("User").is_empty(),
        "the unit runs as root: no DynamicUser=yes or User="
    );
    is("ProtectSystem", "strict");
    is("ProtectHome", "yes");
    is("NoNewPrivileges", "yes");
    is("PrivateTmp", "yes");
    is("PrivateDevices", "yes");
    is("MemoryDenyWriteExecute", "yes");
    is("CapabilityBoundingSet", "");
    is("Restart", "on-failure");
    let families: BTreeSet<&str> = values("RestrictAddressFamilies")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    let allowed: BTreeSet<&str> = ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"].into();
    assert!(
        families.contains("AF_INET")
            && families.contains("AF_INET6")
            && families.is_subset(&allowed),
        "RestrictAddressFamilies: {families:?}"
    );
    let filters = values("SystemCallFilter");
    assert!(
        filters
            .iter()
            .any(|v| v.split_whitespace().any(|w| w == "@system-service")),
        "SystemCallFilter lacks @system-service: {filters:?}"
    );
    assert!(
        filters
            .iter()
            .any(|v| v.starts_with('~') && v.contains("@privileged")),
        "SystemCallFilter does not deny @privileged: {filters:?}"
    );
    for key in ["MemoryMax", "TasksMax", "LimitNOFILE"] {
        assert!(!values(key).is_empty(), "the unit sets no {key}");
    }
    assert!(
        values("ExecStartPre")
            .iter()
            .any(|v| v.contains("tamizdat config check")),
        "no ExecStartPre runs `tamizdat config check`"
    );
    assert!(
        values("ExecStart")
            .iter()
            .any(|v| v.starts_with("/usr/local/bin/tamizdat node --init")),
        "ExecStart does not run `tamizdat node --init`: {:?}",
        values("ExecStart")
    );
    assert!(
        values("Environment")
            .iter()
            .any(|v| v.starts_with("TAMIZDAT_DIR=")),
        "the unit does not set TAMIZDAT_DIR"
    );

    // systemd's own check, where systemd is installed.
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        report("systemd-analyze not found: the unit's directives were checked textually only");
        return;
    }
    // verify insists that the programs exist: point the unit at the binary
    // under test instead of /usr/local/bin.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("tamizdat.service");
    fs::write(&unit, text.replace("/usr/local/bin/tamizdat", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    // Unknown keys and bad values are only warnings ("..., ignoring") with
    // exit status 0: any word about this unit is a failure. Lines about
    // other units on the machine are not this file's business.
    let about_us: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("tamizdat.service"))
        .collect();
    assert!(
        about_us.is_empty(),
        "systemd-analyze verify complained:\n{}",
        about_us.join("\n")
    );
    report(
        "systemd-analyze verify passed on deploy/systemd/tamizdat.service, and its directives were checked textually",
    );
}

// ---- compose -----------------------------------------------------------------

fn strings(y: &Yaml) -> Vec<&str> {
    y.as_vec()
        .map(|v| v.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

/// The values that follow each `flag` in a command list.
fn flag_values<'a>(command: &[&'a str], flag: &str) -> Vec<&'a str> {
    command
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1])
        .collect()
}

#[test]
fn compose_runs_three_nodes_that_bootstrap_from_each_other() {
    let text = read("docker-compose.yml");
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is not YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    let doc = &docs[0];
    let services = doc["services"].as_hash().expect("no services");
    let names: BTreeSet<&str> = services.keys().filter_map(Yaml::as_str).collect();
    let want: BTreeSet<&str> = ["node1", "node2", "node3"].into();
    assert_eq!(names, want, "services");
    let declared_volumes: BTreeSet<&str> = doc["volumes"]
        .as_hash()
        .expect("no top-level volumes")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    let declared_networks: BTreeSet<&str> = doc["networks"]
        .as_hash()
        .expect("no top-level networks")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();

    let mut volumes_used = BTreeSet::new();
    let mut networks_per_service = Vec::new();
    let mut images = BTreeSet::new();
    let mut builders = Vec::new();
    for name in &names {
        let s = &doc["services"][*name];
        let command = strings(&s["command"]);
        assert!(!command.is_empty(), "{name}: no command list");

        // Bootstraps from the two others, by service name, no peer id needed.
        let bootstrap: BTreeSet<&str> = flag_values(&command, "--bootstrap").into_iter().collect();
        let others: BTreeSet<String> = names
            .iter()
            .filter(|n| *n != name)
            .map(|n| format!("/dns4/{n}/tcp/4001"))
            .collect();
        let others: BTreeSet<&str> = others.iter().map(String::as_str).collect();
        assert_eq!(bootstrap, others, "{name}: --bootstrap");
        assert_eq!(
            flag_values(&command, "--profile"),
            ["server"],
            "{name}: --profile"
        );

        // One volume of its own, at /data.
        let volumes = strings(&s["volumes"]);
        assert_eq!(volumes.len(), 1, "{name}: volumes {volumes:?}");
        let (volume, target) = volumes[0].split_once(':').expect("VOLUME:/data");
        assert_eq!(target, "/data", "{name}: volume mounted at {target}");
        assert!(
            declared_volumes.contains(volume),
            "{name}: volume {volume} is not declared"
        );
        assert!(
            volumes_used.insert(volume),
            "{name}: volume {volume} is shared"
        );

        let networks: BTreeSet<&str> = strings(&s["networks"]).into_iter().collect();
        assert!(
            !networks.is_empty() && networks.is_subset(&declared_networks),
            "{name}: networks {networks:?}"
        );
        networks_per_service.push(networks);

        images.insert(s["image"].as_str().expect("every service names the image"));
        if !s["build"].is_badvalue() {
            builders.push(*name);
            assert_eq!(s["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
            assert_eq!(
                s["build"]["context"].as_str(),
                Some(".."),
                "the repository root"
            );
        }

        // Only node1 publishes a port: its gateway, on the host's loopback.
        let ports = strings(&s["ports"]);
        let gateway = flag_values(&command, "--gateway");
        if *name == "node1" {
            assert_eq!(ports, ["127.0.0.1:8080:8080"], "node1: ports");
            assert_eq!(gateway, ["0.0.0.0:8080"], "node1: --gateway");
        } else {
            assert!(ports.is_empty(), "{name}: publishes {ports:?}");
            assert!(gateway.is_empty(), "{name}: --gateway {gateway:?}");
        }
    }
    let shared = networks_per_service
        .iter()
        .skip(1)
        .fold(networks_per_service[0].clone(), |acc, n| {
            acc.intersection(n).copied().collect()
        });
    assert!(!shared.is_empty(), "the nodes share no network");
    assert_eq!(images.len(), 1, "one image for all: {images:?}");
    assert_eq!(builders, ["node1"], "the image is built once, by node1");
    report("docker-compose.yml parsed: 3 nodes, one volume each, bootstrapping from each other");
}

// ---- Dockerfile ----------------------------------------------------------------

/// The Dockerfile's instructions (upper-case keyword, arguments), with
/// continuation lines joined and comments left out.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        // Docker skips blank and comment lines, inside a continuation too.
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_suffix('\\') {
            pending.push_str(rest);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let full = std::mem::take(&mut pending);
        let (word, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push((
            word.to_uppercase(),
            args.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    out
}

#[test]
fn dockerfile_has_the_required_instructions() {
    // `docker build` cannot run here (no Docker engine on the test machines):
    // the Dockerfile is checked by reading it.
    let all = instructions(&read("Dockerfile"));
    let froms: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {all:?}");
    let builder = &all[froms[0]].1;
    assert!(
        builder.starts_with("rust:1-bookworm") && builder.to_lowercase().ends_with(" as builder"),
        "first stage: FROM {builder}"
    );
    assert_eq!(all[froms[1]].1, "debian:bookworm-slim", "runtime stage");
    let (build, run) = all.split_at(froms[1]);
    let find = |part: &[(String, String)], key: &str| -> Vec<String> {
        part.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };

    // The builder copies everything the binary is built from.
    let copies = find(build, "COPY").join(" ");
    for needed in ["Cargo.toml", "Cargo.lock", "crates", "src", "deploy/config"] {
        assert!(
            copies.split_whitespace().any(|w| w == needed),
            "the builder does not copy {needed}: COPY {copies}"
        );
    }
    assert!(
        find(build, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked --bin tamizdat")),
        "no `cargo build --release --locked --bin tamizdat`"
    );

    let users = find(run, "USER");
    let user = users.last().expect("the runtime stage sets no USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "runs as root: USER {user}");
    assert!(
        find(run, "VOLUME")
            .iter()
            .any(|v| v == "/data" || v == "[\"/data\"]"),
        "no VOLUME /data"
    );
    assert!(
        find(run, "ENV").iter().any(|v| v == "TAMIZDAT_DIR=/data"),
        "no ENV TAMIZDAT_DIR=/data"
    );
    let expose = find(run, "EXPOSE").join(" ");
    for port in ["4001/tcp", "4001/udp"] {
        assert!(
            expose.split_whitespace().any(|p| p == port),
            "EXPOSE {expose} lacks {port}"
        );
    }
    let health = find(run, "HEALTHCHECK");
    assert!(
        health
            .iter()
            .any(|h| h.contains("\"tamizdat\", \"health\"") || h.contains("tamizdat health")),
        "no HEALTHCHECK running `tamizdat health`: {health:?}"
    );
    assert_eq!(
        find(run, "ENTRYPOINT"),
        ["[\"tamizdat\", \"node\", \"--init\"]"],
        "ENTRYPOINT"
    );
    report("Dockerfile read and checked (docker build needs an engine, absent here)");
}
