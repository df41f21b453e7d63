//! Headless Chromium (Debian's `chromium`, which `.ci/run` installs) and a
//! small blocking client of the DevTools protocol, for the tests that look
//! at pages in a real browser.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running headless Chromium; killed and reaped on drop.
pub struct Chromium {
    child: Child,
    pub ws_url: String,
    log: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub fn launch() -> Res<Self> {
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

    pub fn tail(&self) -> String {
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
pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Cdp {
    pub fn connect(ws_url: &str) -> Res<Self> {
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

    pub fn read(&mut self) -> Res<Option<Value>> {
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

    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Res<Value> {
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

    pub fn wait_event(&mut self, session: &str, method: &str) -> Res<Value> {
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
    pub fn eval(&mut self, session: &str, expr: &str) -> Res<Value> {
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

impl Cdp {
    /// Opens a blank page and attaches to it; returns the session id.
    pub fn new_page(&mut self) -> Res<String> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let target = target["targetId"].as_str().ok_or("no target")?.to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        )?;
        let sid = attached["sessionId"]
            .as_str()
            .ok_or("no session")?
            .to_owned();
        self.call(Some(&sid), "Page.enable", json!({}))?;
        Ok(sid)
    }

    /// Navigates the page to `url` and waits for its load event.
    pub fn navigate(&mut self, session: &str, url: &str) -> Res<()> {
        let nav = self.call(Some(session), "Page.navigate", json!({ "url": url }))?;
        if let Some(e) = nav.get("errorText") {
            return Err(format!("navigation to {url} failed: {e}").into());
        }
        self.wait_event(session, "Page.loadEventFired")?;
        Ok(())
    }

    /// Takes the events of `method` received so far on `session`.
    pub fn take_events(&mut self, session: &str, method: &str) -> Res<Vec<Value>> {
        // Whatever is already waiting on the socket first.
        while let Some(v) = self.read()? {
            if v.get("method").is_some() {
                self.events.push_back(v);
            }
        }
        let (taken, kept) = std::mem::take(&mut self.events)
            .into_iter()
            .partition(|v| v["method"] == method && v["sessionId"] == session);
        self.events = kept;
        Ok(taken
            .into_iter()
            .map(|v: Value| v["params"].clone())
            .collect())
    }
}
