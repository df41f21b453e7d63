//! `tamizdat demo` end to end: the real binary starts its network, the
//! article is served with its badge and picture, and Ctrl-C stops it all
//! and removes its directory.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

mod common;

use common::BIN;

/// A line the demo wrote, or the end of one of its streams.
enum Out {
    Stdout(String),
    Stderr(String),
    Closed,
}

/// The demo process; killed if the test ends before it stops.
struct Demo {
    child: Child,
    rx: mpsc::Receiver<Out>,
    /// Everything it wrote to stderr so far, for failure messages.
    log: Vec<String>,
    /// Streams still open.
    open: usize,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(tmp: &TempDir, args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("demo")
            .args(args)
            // The demo must not touch any of these.
            .env("TAMIZDAT_DIR", tmp.path().join("data"))
            .env("HOME", tmp.path().join("home"))
            .env("XDG_DATA_HOME", tmp.path().join("home"))
            // Its own directory goes here, where the test can look.
            .env("TMPDIR", tmp.path().join("tmp"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Far more than the demo writes: the readers never block on it.
        let (tx, rx) = mpsc::sync_channel(4096);
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let out = tx.clone();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = out.send(Out::Stdout(line));
            }
            let _ = out.send(Out::Closed);
        });
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(Out::Stderr(line));
            }
            let _ = tx.send(Out::Closed);
        });
        Self {
            child,
            rx,
            log: Vec::new(),
            open: 2,
        }
    }

    /// Waits until the demo writes a line `pick` accepts (on stdout when
    /// `stdout`, else stderr, where lines already read count too), and
    /// returns what `pick` made of it.
    fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        stdout: bool,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        // A stderr line may have come in while waiting for another one.
        if !stdout && let Some(found) = self.log.iter().find_map(|l| pick(l)) {
            return found;
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let out = match self.rx.recv_timeout(left) {
                Ok(out) => out,
                Err(_) => panic!("{what}: not within {limit:?}; stderr:\n{}", self.log()),
            };
            let (line, on_stdout) = match out {
                Out::Stdout(l) => (l, true),
                Out::Stderr(l) => {
                    self.log.push(l.clone());
                    (l, false)
                }
                Out::Closed => {
                    self.open -= 1;
                    assert!(
                        self.open > 0,
                        "{what}: the demo closed its output first; stderr:\n{}",
                        self.log()
                    );
                    continue;
                }
            };
            if on_stdout == stdout
                && let Some(found) = pick(&line)
            {
                return found;
            }
        }
    }

    /// Waits until both output streams are closed: the process has ended.
    fn wait_closed(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Out::Closed) => self.open -= 1,
                Ok(Out::Stderr(l)) => self.log.push(l),
                Ok(Out::Stdout(_)) => {}
                Err(_) => panic!("the demo did not stop within {limit:?}:\n{}", self.log()),
            }
        }
    }

    fn log(&self) -> String {
        self.log.join("\n")
    }
}

/// A plain HTTP/1.1 GET: status, headers (lowercased), body.
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete answer");
    let head = String::from_utf8_lossy(&out[..end]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, out[end + 4..].to_vec())
}

/// The value of `header` in a lowercased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[test]
fn the_demo_serves_its_article_with_badge_and_picture_then_stops_on_ctrl_c() {
    let tmp = TempDir::new().unwrap();
    std::fs::create_dir(tmp.path().join("tmp")).unwrap();
    let mut demo = Demo::start(&tmp, &["--port", "0"]);

    let dir: PathBuf = demo.wait_for("the demo directory", Duration::from_secs(30), false, |l| {
        l.strip_prefix("demo directory: ")
            .and_then(|rest| rest.strip_suffix(" (removed on exit)"))
            .map(PathBuf::from)
    });
    assert!(dir.starts_with(tmp.path().join("tmp")), "{dir:?}");
    assert!(dir.is_dir());
    let fingerprint = demo.wait_for(
        "the outlet's fingerprint",
        Duration::from_secs(30),
        false,
        |l| {
            l.split_once("root key fingerprint ")
                .map(|(_, f)| f.trim().to_owned())
        },
    );
    // Replication of every volunteer comes before the URL.
    let url = demo.wait_for("the article's URL", Duration::from_secs(120), true, |l| {
        l.starts_with("http://127.0.0.1:").then(|| l.to_owned())
    });
    let hash = url.rsplit_once("/m/").unwrap().1;
    assert_eq!(hash.len(), 64, "{url}");
    // stdout and stderr are read apart: the lines before the hint are in.
    demo.wait_for(
        "the hint after the URL",
        Duration::from_secs(30),
        false,
        |l| l.contains("Ctrl-C stops the demo").then_some(()),
    );
    let replicated = demo
        .log
        .iter()
        .filter(|l| l.contains("verified and pinned the manifest"))
        .count();
    assert_eq!(
        replicated,
        3,
        "three volunteers by default:\n{}",
        demo.log()
    );

    // What a reader sees.
    let (status, _, page) = get(&url);
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("A signed article, carried by volunteers"));
    assert!(page.contains("✔ Signed by "), "a followed publisher");
    assert!(page.contains("Demo Outlet"));
    assert!(page.contains(&fingerprint), "the badge shows {fingerprint}");
    let src = page
        .split("src=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .find(|s| s.starts_with("/b/"))
        .expect("the picture in the article");
    let base = &url[..url.find("/m/").unwrap()];
    let (status, head, png) = get(&format!("{base}{src}"));
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-type"), Some("image/png"), "{head}");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    // Ctrl-C.
    let pid = demo.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    demo.wait_closed(Duration::from_secs(30));
    let status = demo.child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", demo.log());
    assert!(!dir.exists(), "{dir:?} removed on exit");
    for untouched in ["data", "home"] {
        assert!(
            !tmp.path().join(untouched).exists(),
            "{untouched} untouched"
        );
    }
    assert!(
        std::fs::read_dir(tmp.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "nothing left in TMPDIR"
    );
}

#[test]
fn a_gateway_port_in_use_is_a_clear_error_and_leaves_nothing_behind() {
    let tmp = TempDir::new().unwrap();
    std::fs::create_dir(tmp.path().join("tmp")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut demo = Demo::start(&tmp, &["--port", &port, "--volunteers", "1"]);
    demo.wait_closed(Duration::from_secs(60));
    let status = demo.child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{}", demo.log());
    let log = demo.log();
    assert!(
        log.contains(&format!("cannot serve the gateway on 127.0.0.1:{port}"))
            && log.contains("--port"),
        "{log}"
    );
    assert!(
        std::fs::read_dir(tmp.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "the demo directory removed"
    );
}
