//! A real browser opens an article page: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs), driven over the DevTools protocol.
//! The screenshot is kept in `target/tmp/article-page.png`.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";
const TIMEOUT: Duration = Duration::from_secs(30);

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running headless Chromium; killed and reaped on drop.
struct Chromium {
    child: Child,
    ws_url: String,
    log: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> Res<Self> {
        if !std::path::Path::new(CHROMIUM).exists() {
            return Err(format!(
                "{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)"
            )
            .into());
        }
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-breakpad",
                "--disable-dev-shm-usage",
                "--metrics-recording-only",
                "--password-store=basic",
                "--use-mock-keychain",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // Chromium must never block on a full stderr pipe.
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::sync_channel(1);
        let lines = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(TIMEOUT) {
            Ok(ws_url) => Ok(Chromium {
                child,
                ws_url,
                log,
                _profile: profile,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "chromium gave no DevTools address:\n{}",
                    log.lock().unwrap().join("\n")
                )
                .into())
            }
        }
    }

    fn tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small blocking client of the DevTools protocol, one browser-level
/// socket with flattened page sessions.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Cdp {
    fn connect(ws_url: &str) -> Res<Self> {
        let hostport = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .ok_or("bad DevTools address")?;
        let stream = TcpStream::connect(hostport)?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        let (ws, _) = tungstenite::client(ws_url, stream).map_err(|e| e.to_string())?;
        Ok(Cdp {
            ws,
            next_id: 0,
            events: VecDeque::new(),
        })
    }

    fn read(&mut self) -> Res<Option<Value>> {
        match self.ws.read() {
            Ok(Message::Text(t)) => Ok(Some(serde_json::from_str(t.as_str())?)),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Res<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string()))?;
        let until = Instant::now() + TIMEOUT;
        while Instant::now() < until {
            let Some(v) = self.read()? else { continue };
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}").into());
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.events.push_back(v);
            }
        }
        Err(format!("no answer to {method}").into())
    }

    fn wait_event(&mut self, session: &str, method: &str) -> Res<Value> {
        let is = |v: &Value| v["method"] == method && v["sessionId"] == session;
        if let Some(i) = self.events.iter().position(is) {
            return Ok(self.events.remove(i).unwrap()["params"].clone());
        }
        let until = Instant::now() + TIMEOUT;
        while Instant::now() < until {
            if let Some(v) = self.read()? {
                if is(&v) {
                    return Ok(v["params"].clone());
                }
                if v.get("method").is_some() {
                    self.events.push_back(v);
                }
            }
        }
        Err(format!("no {method} event").into())
    }

    /// Evaluates `expr` in the page. DevTools evaluation is not subject to
    /// the page's CSP, so it runs where the page's own scripts cannot.
    fn eval(&mut self, session: &str, expr: &str) -> Res<Value> {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{expr:?} threw: {ex}").into());
        }
        Ok(r["result"]["value"].clone())
    }
}

/// What the test reads off the rendered page.
#[derive(Debug)]
struct Seen {
    title: Value,
    heading: Value,
    fingerprint: Value,
    image_loaded: Value,
    pwned: Value,
    png: Vec<u8>,
}

fn look_at(url: &str) -> Res<Seen> {
    let chromium = Chromium::launch()?;
    let seen = (|| -> Res<Seen> {
        let mut cdp = Cdp::connect(&chromium.ws_url)?;
        let target = cdp.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let target = target["targetId"].as_str().ok_or("no target")?.to_owned();
        let attached = cdp.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        )?;
        let sid = attached["sessionId"]
            .as_str()
            .ok_or("no session")?
            .to_owned();
        let s = Some(sid.as_str());
        cdp.call(s, "Page.enable", json!({}))?;
        cdp.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 412, "height": 1400, "deviceScaleFactor": 1, "mobile": true }),
        )?;
        let nav = cdp.call(s, "Page.navigate", json!({ "url": url }))?;
        if let Some(e) = nav.get("errorText") {
            return Err(format!("navigation failed: {e}").into());
        }
        cdp.wait_event(&sid, "Page.loadEventFired")?;
        let title = cdp.eval(&sid, "document.title")?;
        let heading = cdp.eval(&sid, "document.querySelector('article h1').textContent")?;
        let fingerprint = cdp.eval(&sid, "document.getElementById('fingerprint').textContent")?;
        let image_loaded = cdp.eval(
            &sid,
            "(() => { const i = document.querySelector('article img'); \
             return !!i && i.complete && i.naturalWidth === 16; })()",
        )?;
        let pwned = cdp.eval(
            &sid,
            "typeof window.__pwned === 'undefined' ? null : window.__pwned",
        )?;
        let shot = cdp.call(s, "Page.captureScreenshot", json!({ "format": "png" }))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot")?)?;
        let _ = cdp.call(None, "Browser.close", json!({}));
        Ok(Seen {
            title,
            heading,
            fingerprint,
            image_loaded,
            pwned,
            png,
        })
    })();
    seen.map_err(|e| format!("{e}\n--- chromium ---\n{}", chromium.tail()).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_article_its_image_and_badge_and_runs_no_script() {
    let site = site(|_| {}).await;
    let outlet = Outlet::new();
    let text = "# Свобода слова\n\n\
        Независимые журналисты продолжают работу. ![фото](photo.png)\n\n\
        <script>window.__pwned = 1</script>\n\
        <img src=\"nothing\" onerror=\"window.__pwned = 2\">\n\
        <a href=\"javascript:window.__pwned=3\">ссылка</a>\n";
    let (id, _) = publish(
        &site,
        &outlet,
        Draft {
            seq: 1,
            prev: None,
            title: "Свобода слова",
            lang: "ru",
            files: vec![
                ("index.md", text.as_bytes().to_vec(), "text/markdown"),
                ("photo.png", PNG.to_vec(), "image/png"),
            ],
            supersedes: None,
        },
    )
    .await;
    let url = site.url(&format!("/m/{id}"));
    let seen = tokio::task::spawn_blocking(move || look_at(&url))
        .await
        .unwrap()
        .unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("article-page.png");
    std::fs::write(&shot, &seen.png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(seen.title, "Свобода слова");
    assert_eq!(seen.heading, "Свобода слова");
    assert_eq!(seen.fingerprint, outlet.root.public().fingerprint());
    assert_eq!(seen.image_loaded, true, "the article's image loaded");
    assert!(
        seen.pwned.is_null(),
        "a script from the article ran: {}",
        seen.pwned
    );
    assert!(seen.png.starts_with(b"\x89PNG\r\n\x1a\n"));
    site.gateway.shutdown().await;
}
