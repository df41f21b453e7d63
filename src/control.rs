//! The local control socket. While `tamizdat node` runs it holds the store
//! open, and every other command reaches the store through this socket
//! (`DATA_DIR/control.sock`, mode 0600, served only to the node's own user
//! and to root).
//!
//! One request per connection. Every message is a frame: a tag byte, a
//! big-endian `u32` length, then the payload. The client sends one
//! [`Request`] (a `VALUE` frame, postcard), followed for `Add` by `DATA`
//! frames and an `END` frame. The node answers with any number of `DATA` or
//! `PROGRESS` frames, then exactly one `VALUE` (the result, postcard) or
//! `ERROR` (a message) frame.

use std::{
    io::{self, BufReader, BufWriter, Read, Write},
    os::unix::{fs::MetadataExt, fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tamizdat_node::feeds::{self, Followed};
use tamizdat_sign::{PublicKey, TrustState};
use tamizdat_store::{Added, Hash, Store};
use tokio::{net::UnixListener, sync::Semaphore, task::JoinHandle};
use tracing::{debug, warn};

/// The socket's file name in the data dir.
pub const SOCKET: &str = "control.sock";

const DATA: u8 = 0;
const VALUE: u8 = 1;
const ERROR: u8 = 2;
const PROGRESS: u8 = 3;
const END: u8 = 4;

/// Largest data frame.
const CHUNK: usize = 1 << 20;
/// Largest request frame: a feed state value and its framing.
const MAX_REQUEST: usize = tamizdat_store::MAX_STATE_LEN + (1 << 20);
/// Largest answer a command reads from its node (`ls` of a large store).
const MAX_ANSWER: usize = 1 << 30;
/// How long a new connection may take to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long a connection waits for a free slot before being told the node
/// is busy.
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// A fetch sends progress at least this often, so that the caller knows
/// the node is alive and the node learns when the caller is gone.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// The answer to a connection that found every slot taken.
pub const BUSY: &str = "the node is busy with other commands; try again";
/// Times a command asks a busy node again, 200 ms apart.
const BUSY_RETRIES: u32 = 50;
/// Most addresses one [`Request::Join`] dials (a card holds at most 8).
const MAX_JOIN: usize = tamizdat_sign::MAX_CARD_ADDRS;
/// How long [`Request::Join`] waits for each address to answer.
const JOIN_WAIT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// A connection silent for this long is dropped. Generous: `add -` may read
/// from a slow pipe, and `cat` may write into a paused pager.
const IDLE: Duration = Duration::from_secs(600);

/// What a command asks of the node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Is a node there?
    Ping,
    /// Store the bytes that follow (`size` when known in advance).
    Add {
        size: Option<u64>,
        name: String,
    },
    /// Stream a blob's bytes, verified.
    Read {
        hash: Hash,
    },
    Info {
        hash: Hash,
    },
    List,
    Pin {
        name: String,
        hash: Hash,
    },
    Unpin {
        name: String,
        hash: Option<Hash>,
    },
    Pins,
    Gc {
        dry_run: bool,
    },
    Scrub,
    StateGet {
        name: String,
    },
    StatePut {
        name: String,
        value: Vec<u8>,
    },
    Status,
    Follow {
        key: PublicKey,
        name: Option<String>,
        policy: tamizdat_node::retention::Policy,
    },
    Unfollow {
        key: PublicKey,
    },
    Following,
    /// Record and announce a manifest signed here (its files are stored).
    Publish {
        envelope: Vec<u8>,
    },
    /// Announce a revocation or delegation to the publisher's followers.
    AnnounceKey {
        envelope: Vec<u8>,
    },
    /// Dial these addresses (a card's, at most [`MAX_JOIN`]) to join the
    /// network through them; answers how many were reached.
    Join {
        addrs: Vec<String>,
    },
    /// Fetch a blob from the network through the running node.
    Fetch {
        hash: Hash,
        peers: Vec<String>,
        timeout_secs: u64,
        /// Also write the blob here (an absolute path), as it arrives.
        output: Option<PathBuf>,
    },
    /// Ask every peer for a publisher's feed heads, wait (at most
    /// `wait_secs`) until what they claim is proven, answer [`FeedHeads`].
    LearnHeads {
        publisher: PublicKey,
        wait_secs: u64,
    },
}

/// What a node connected to nobody is, and what would help, as `status`
/// says it (a fetch that reached no peer adds `--peer`: see
/// [`fetch_failure`]).
pub const ALONE: &str =
    "connected to nobody: add a card (`tamizdat follow CARD`) or a bootstrap address";

/// A failed fetch in words for whoever asked: when nobody could be asked,
/// what would help.
pub fn fetch_failure(e: &tamizdat_node::NodeError) -> String {
    match e {
        tamizdat_node::NodeError::NoPeers(_) => format!(
            "{e}; this node is connected to nobody: add a card (`tamizdat follow CARD`), \
             a bootstrap address or --peer MULTIADDR"
        ),
        _ => e.to_string(),
    }
}

/// A fetch that did not end in time: whether anyone was reached at all.
pub fn fetch_timed_out(hash: &Hash, secs: u64, peers: usize) -> String {
    if peers == 0 {
        format!(
            "reached no peer within {secs} s, so nobody was asked for {hash}; add a card \
             (`tamizdat follow CARD`), a bootstrap address or --peer MULTIADDR"
        )
    } else {
        format!("no provider delivered {hash} within {secs} s")
    }
}

/// The heads of a publisher's feeds the running node knows after asking
/// its peers: only heads whose signed manifests it fetched and accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedHeads {
    /// Feed name, sequence number, manifest id.
    pub heads: Vec<(String, u64, Hash)>,
    /// Peers asked.
    pub asked: usize,
    /// Every peer asked answered before the wait ran out.
    pub settled: bool,
}

/// What [`Remote::probe`] found.
#[derive(Debug)]
pub enum Probe {
    /// A node answers.
    Running(Remote),
    /// A node may run, but does not let this user in: why.
    Refused(String),
    /// No node answers.
    Absent,
}

/// The start of the answer to a caller of another user.
const REFUSED: &str = "refused: this node's control socket answers only its owner";

/// The running node, as `status` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub peer_id: String,
    pub listen: Vec<String>,
    /// The gateway's URL, when it runs.
    #[serde(default)]
    pub gateway: Option<String>,
    pub pid: u32,
    pub connected: Vec<String>,
    pub nat: String,
    pub following: usize,
    /// Equivocations seen (two versions of one article).
    pub conflicts: Vec<String>,
    pub stored_bytes: u64,
    pub quota: Option<u64>,
}

/// How far a fetch through the node has come.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FetchProgress {
    pub size: u64,
    pub verified: u64,
    pub providers: usize,
}

/// What a fetch through the node did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FetchDone {
    pub size: u64,
    pub new_bytes: u64,
    pub providers: usize,
    pub bad: usize,
}

fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&[tag])?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)
}

/// Reads one frame; `None` at a clean end of stream before its first byte.
fn read_frame(r: &mut impl Read, max: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read(&mut head[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut head[1..])?,
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame of {len} bytes is over the {max}-byte limit"),
        ));
    }
    let mut payload = Vec::new();
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((head[0], payload)))
}

fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(io::Error::other)
}

/// The bytes of a stream of `DATA` frames, as a reader. It ends at the first
/// frame of another kind, which it keeps; an `ERROR` frame is a read error.
struct DataReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    end: Option<(u8, Vec<u8>)>,
}

impl<R: Read> DataReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: None,
        }
    }
}

impl<R: Read> Read for DataReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            // Data frames are at most CHUNK; the frame ending them is small.
            match read_frame(&mut self.inner, CHUNK + (64 << 10))? {
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some((DATA, payload)) if payload.len() <= CHUNK => {
                    self.buf = payload;
                    self.pos = 0;
                }
                Some((ERROR, msg)) => {
                    let msg = String::from_utf8_lossy(&msg).into_owned();
                    self.end = Some((ERROR, Vec::new()));
                    return Err(io::Error::other(msg));
                }
                Some((DATA, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "oversized data frame",
                    ));
                }
                Some(frame) => self.end = Some(frame),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------- client

/// The way to a running node's control socket.
#[derive(Debug, Clone)]
pub struct Remote {
    path: PathBuf,
}

impl Remote {
    /// The node serving `dir`, if one answers on its socket.
    pub fn find(dir: &Path) -> Option<Remote> {
        match Self::probe(dir) {
            Probe::Running(remote) => Some(remote),
            Probe::Refused(_) | Probe::Absent => None,
        }
    }

    /// Whether a node runs on `dir`, and whether it lets this user in.
    pub fn probe(dir: &Path) -> Probe {
        let remote = Remote {
            path: dir.join(SOCKET),
        };
        let once = remote
            .open(&Request::Ping)
            .and_then(|s| Self::answer::<()>(&mut BufReader::new(s), |_| {}));
        match once {
            Ok(()) => Probe::Running(remote),
            // There, but busy: commands will say so.
            Err(e) if e.to_string() == BUSY => Probe::Running(remote),
            Err(e) if e.to_string().starts_with(REFUSED) => Probe::Refused(e.to_string()),
            Err(e) => {
                let denied = e.chain().any(|c| {
                    c.downcast_ref::<io::Error>()
                        .is_some_and(|io| io.kind() == io::ErrorKind::PermissionDenied)
                });
                if denied {
                    return Probe::Refused(format!(
                        "{}: permission denied (the node's data directory and control \
                         socket belong to another user)",
                        remote.path.display()
                    ));
                }
                debug!("no node on {}: {e:#}", remote.path.display());
                Probe::Absent
            }
        }
    }

    fn open(&self, req: &Request) -> Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.path)
            .with_context(|| format!("cannot reach the node at {}", self.path.display()))?;
        stream.set_read_timeout(Some(IDLE))?;
        stream.set_write_timeout(Some(IDLE))?;
        write_frame(&mut stream, VALUE, &encode(req)?)?;
        Ok(stream)
    }

    /// Reads the final answer, handing progress frames to `progress`.
    fn answer<T: DeserializeOwned>(
        r: &mut impl Read,
        mut progress: impl FnMut(FetchProgress),
    ) -> Result<T> {
        loop {
            match read_frame(r, MAX_ANSWER).context("reading the node's answer")? {
                None => bail!("the node closed the connection without answering"),
                Some((VALUE, v)) => {
                    return postcard::from_bytes(&v).context("the node's answer is malformed");
                }
                Some((ERROR, msg)) => bail!("{}", String::from_utf8_lossy(&msg)),
                Some((PROGRESS, p)) => {
                    if let Ok(p) = postcard::from_bytes(&p) {
                        progress(p);
                    }
                }
                Some((tag, _)) => bail!("unexpected frame {tag} from the node"),
            }
        }
    }

    /// One request, one answer; asked again for a while if the node is busy.
    pub fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T> {
        let mut tries = 0;
        loop {
            let stream = self.open(req)?;
            match Self::answer(&mut BufReader::new(stream), |_| {}) {
                Err(e) if e.to_string() == BUSY && tries < BUSY_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// Sends a blob's bytes to the node to store.
    pub fn add(&self, mut reader: impl Read, size: Option<u64>, name: &Path) -> Result<Added> {
        let stream = self.open(&Request::Add {
            size,
            name: name.to_string_lossy().into_owned(),
        })?;
        let mut w = BufWriter::with_capacity(CHUNK + 16, stream.try_clone()?);
        let mut buf = vec![0u8; CHUNK];
        let sent: io::Result<()> = (|| {
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io::Error::new(e.kind(), LocalRead(e))),
                };
                write_frame(&mut w, DATA, &buf[..n])?;
            }
            write_frame(&mut w, END, &[])?;
            w.flush()
        })();
        match sent {
            Ok(()) => Self::answer(&mut BufReader::new(stream), |_| {}),
            // Our own input failed: that is the error to report.
            Err(e) if e.get_ref().is_some_and(|i| i.is::<LocalRead>()) => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                Err(anyhow::Error::new(e).context(format!("reading {}", name.display())))
            }
            // The node stopped reading: its answer says why.
            Err(e) => Self::answer(&mut BufReader::new(stream), |_| {})
                .with_context(|| format!("sending {} to the node failed ({e})", name.display())),
        }
    }

    /// A blob's verified bytes, streamed from the node.
    pub fn reader(&self, hash: &Hash) -> Result<Box<dyn Read + Send>> {
        let stream = self.open(&Request::Read { hash: *hash })?;
        let mut inner = BufReader::with_capacity(CHUNK + 16, stream);
        // The first frame says whether the blob is there at all.
        let first = read_frame(&mut inner, MAX_ANSWER).context("reading the node's answer")?;
        let mut r = DataReader::new(inner);
        match first {
            None => bail!("the node closed the connection without answering"),
            Some((ERROR, msg)) => bail!("{}", String::from_utf8_lossy(&msg)),
            Some((DATA, payload)) if payload.len() <= CHUNK => r.buf = payload,
            Some((VALUE, v)) => r.end = Some((VALUE, v)),
            Some((tag, _)) => bail!("unexpected frame {tag} from the node"),
        }
        Ok(Box::new(r))
    }

    /// Fetches a blob through the node, reporting progress.
    pub fn fetch(
        &self,
        hash: &Hash,
        peers: Vec<String>,
        timeout_secs: u64,
        output: Option<PathBuf>,
        progress: impl FnMut(FetchProgress),
    ) -> Result<FetchDone> {
        let stream = self.open(&Request::Fetch {
            hash: *hash,
            peers,
            timeout_secs,
            output,
        })?;
        Self::answer(&mut BufReader::new(stream), progress)
    }
}

/// An error reading the caller's own input while sending it to the node.
#[derive(Debug)]
struct LocalRead(io::Error);

impl std::fmt::Display for LocalRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LocalRead {}

// ---------------------------------------------------------------- server

/// What the node side needs to answer requests.
#[derive(Clone)]
pub struct Served {
    pub store: Arc<Store>,
    pub node: tamizdat_node::Client,
    pub runtime: tokio::runtime::Handle,
    pub listen: Vec<String>,
    pub gateway: Option<String>,
}

/// The serving socket; removed when dropped.
pub struct Server {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Server {
    /// Waits until the socket's accept loop ends on its own, which it does
    /// only when it failed: the node then stops rather than run on without
    /// its control socket.
    pub async fn ended(&mut self) -> String {
        match (&mut self.task).await {
            Ok(()) => "the control socket stopped".into(),
            Err(e) => format!("the control socket failed: {e}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `DIR/control.sock` and serves it until the [`Server`] is dropped.
/// The caller holds the store lock, so a socket file already there is a
/// leftover of a node that died, and is replaced.
pub fn serve(dir: &Path, ctx: Served) -> Result<Server> {
    let path = dir.join(SOCKET);
    if path.as_os_str().len() >= 108 {
        bail!(
            "the data dir path is too long for a control socket ({}); use a shorter --data-dir",
            path.display()
        );
    }
    match std::fs::remove_file(&path) {
        Ok(()) => debug!("removed a stale {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&path)?.uid();
    let task = tokio::spawn(accept(listener, owner, ctx));
    Ok(Server { path, task })
}

async fn accept(listener: UnixListener, owner: u32, ctx: Served) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == owner || c.uid() == 0 => {}
            Ok(c) => {
                warn!("control socket: refused a connection from uid {}", c.uid());
                // Said, so that the caller does not think no node runs.
                if let Ok(s) = stream.into_std() {
                    let why = format!("{REFUSED} (uid {owner}) and root");
                    tokio::task::spawn_blocking(move || refuse(s, &why));
                }
                continue;
            }
            Err(e) => {
                warn!("control socket: cannot identify the caller: {e}");
                continue;
            }
        }
        let ctx = ctx.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let slot = tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await;
            let Ok(stream) = stream.into_std() else {
                return;
            };
            tokio::task::spawn_blocking(move || {
                let Ok(Ok(slot)) = slot else {
                    warn!("control socket: {MAX_CONNECTIONS} connections busy; refusing one");
                    let _ = refuse(stream, BUSY);
                    return;
                };
                if let Err(e) = handle(stream, &ctx) {
                    debug!("control connection: {e}");
                }
                drop(slot);
            });
        });
    }
}

/// Answers with an error and closes.
fn refuse(mut stream: UnixStream, why: &str) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    write_frame(&mut stream, ERROR, why.as_bytes())
}

fn handle(stream: UnixStream, ctx: &Served) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    // A caller gets a few seconds to say what it wants, then the usual
    // silence allowance.
    stream.set_read_timeout(Some(REQUEST_DEADLINE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let mut r = BufReader::with_capacity(CHUNK + 16, stream.try_clone()?);
    let mut w = BufWriter::with_capacity(CHUNK + 16, stream.try_clone()?);
    let first = match read_frame(&mut r, MAX_REQUEST) {
        Ok(f) => f,
        Err(e) => {
            let _ = write_frame(&mut w, ERROR, format!("bad request: {e}").as_bytes());
            let _ = w.flush();
            return Err(e);
        }
    };
    let Some((tag, payload)) = first else {
        return Ok(());
    };
    stream.set_read_timeout(Some(IDLE))?;
    let answer = if tag != VALUE {
        Err(format!("expected a request, got frame {tag}"))
    } else {
        match postcard::from_bytes::<Request>(&payload) {
            Ok(req) => dispatch(req, &mut r, &mut w, ctx),
            Err(e) => Err(format!(
                "malformed request (is this tamizdat the same version as the node?): {e}"
            )),
        }
    };
    match answer {
        Ok(v) => write_frame(&mut w, VALUE, &v)?,
        Err(msg) => write_frame(&mut w, ERROR, msg.as_bytes())?,
    }
    w.flush()
}

fn reply<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    encode(v).map_err(|e| e.to_string())
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn dispatch(
    req: Request,
    r: &mut impl Read,
    w: &mut impl Write,
    ctx: &Served,
) -> Result<Vec<u8>, String> {
    let store = &ctx.store;
    match req {
        Request::Ping => reply(&()),
        Request::Add { size, name } => {
            // The store refuses a source that yields more or fewer bytes
            // than declared, before anything is committed.
            let mut data = DataReader::new(r);
            let name = PathBuf::from(name);
            let added: Added = match size {
                Some(size) => store.add_sized(&mut data, size, &name),
                None => store.add_reader(&mut data, &name),
            }
            .map_err(text)?;
            // Peers can find it from now on.
            ctx.runtime.block_on(ctx.node.announce(added.hash));
            reply(&added)
        }
        Request::Read { hash } => {
            let mut reader = store.reader(&hash).map_err(text)?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(match tamizdat_store::corrupt_of(&e) {
                            Some(c) => format!(
                                "{c}; nothing after that offset was sent. Run `tamizdat scrub`."
                            ),
                            None => format!("reading blob {hash}: {e}"),
                        });
                    }
                };
                write_frame(w, DATA, &buf[..n]).map_err(text)?;
            }
            reply(&())
        }
        // Without pins: one lookup, not a scan of the pins table.
        Request::Info { hash } => reply(&store.info_without_pins(&hash).map_err(text)?),
        Request::List => reply(&store.list().map_err(text)?),
        Request::Pin { name, hash } => reply(&store.pin(&name, &hash).map_err(text)?),
        Request::Unpin { name, hash } => reply(&store.unpin(&name, hash.as_ref()).map_err(text)?),
        Request::Pins => reply(&store.pins().map_err(text)?),
        Request::Gc { dry_run } => reply(&store.gc(dry_run).map_err(text)?),
        Request::Scrub => reply(&store.scrub().map_err(text)?),
        // The node holds the feed state in memory: commands read and write
        // that copy, never the stored one behind its back.
        Request::StateGet { name } if name == feeds::TRUST => {
            reply(&Some(ctx.node.trust().encode()))
        }
        Request::StatePut { name, value } if name == feeds::TRUST => {
            let trust = TrustState::decode(&value).map_err(text)?;
            reply(
                &ctx.runtime
                    .block_on(ctx.node.set_trust(trust))
                    .map_err(text)?,
            )
        }
        Request::StatePut { name, .. } if name == feeds::FOLLOWS => {
            Err("the follow list is the node's: use `tamizdat follow`".into())
        }
        Request::StateGet { name } => reply(&store.state_get(&name).map_err(text)?),
        Request::StatePut { name, value } => reply(&store.state_put(&name, &value).map_err(text)?),
        Request::Follow { key, name, policy } => reply(
            &ctx.runtime
                .block_on(ctx.node.follow_with(key, name, policy))
                .map_err(text)?,
        ),
        Request::Unfollow { key } => reply(
            &ctx.runtime
                .block_on(ctx.node.unfollow(&key))
                .map_err(text)?,
        ),
        Request::Following => reply::<Vec<Followed>>(&ctx.node.following()),
        Request::Join { addrs } => {
            if addrs.len() > MAX_JOIN {
                return Err(format!("at most {MAX_JOIN} addresses at once"));
            }
            let addrs = addrs
                .iter()
                .map(|a| {
                    a.parse::<tamizdat_node::Multiaddr>()
                        .map_err(|e| format!("{a:?} is not a multiaddr: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // All at once, each for a bounded time: one blocked address
            // must not hold up the others, nor the command.
            let dials = addrs.into_iter().map(|addr| {
                let node = ctx.node.clone();
                async move {
                    match tokio::time::timeout(JOIN_WAIT, node.dial(addr.clone())).await {
                        Ok(Ok(_)) => true,
                        Ok(Err(e)) => {
                            tracing::info!("cannot dial {addr}: {e}");
                            false
                        }
                        Err(_) => {
                            tracing::info!("no answer from {addr} within {JOIN_WAIT:?}");
                            false
                        }
                    }
                }
            });
            let reached = ctx.runtime.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for dial in dials {
                    set.spawn(dial);
                }
                let mut reached = 0usize;
                while let Some(r) = set.join_next().await {
                    reached += usize::from(r.unwrap_or(false));
                }
                reached
            });
            reply(&reached)
        }
        Request::AnnounceKey { envelope } => reply(
            &ctx.runtime
                .block_on(ctx.node.announce_key_object(&envelope))
                .map_err(text)?,
        ),
        Request::LearnHeads {
            publisher,
            wait_secs,
        } => {
            let wait = Duration::from_secs(wait_secs.min(60));
            let learned = ctx
                .runtime
                .block_on(ctx.node.learn_heads(publisher, wait))
                .map_err(text)?;
            reply(&FeedHeads {
                heads: learned
                    .heads
                    .into_iter()
                    .map(|h| (h.feed, h.seq, Hash::from_bytes(h.hash)))
                    .collect(),
                asked: learned.asked,
                settled: learned.settled,
            })
        }
        Request::Publish { envelope } => reply(
            &ctx.runtime
                .block_on(ctx.node.publish(&envelope))
                .map_err(text)?,
        ),
        Request::Status => {
            let connected = ctx
                .runtime
                .block_on(ctx.node.connected())
                .map_err(text)?
                .iter()
                .map(|p| p.to_string())
                .collect();
            let usage = store.usage().map_err(text)?;
            reply(&Status {
                peer_id: ctx.node.peer_id().to_string(),
                // Live: a relayed address appears once a relay accepts.
                listen: {
                    let id = ctx.node.peer_id();
                    let live: Vec<String> = ctx
                        .node
                        .listen_addrs()
                        .into_iter()
                        .map(|a| match a.iter().last() {
                            Some(tamizdat_node::Protocol::P2p(_)) => a.to_string(),
                            _ => format!("{a}/p2p/{id}"),
                        })
                        .collect();
                    if live.is_empty() {
                        ctx.listen.clone()
                    } else {
                        live
                    }
                },
                gateway: ctx.gateway.clone(),
                pid: std::process::id(),
                connected,
                nat: match ctx.node.nat_status() {
                    tamizdat_node::NatStatus::Unknown => "unknown".into(),
                    tamizdat_node::NatStatus::Private => "private".into(),
                    tamizdat_node::NatStatus::Public(a) => format!("public {a}"),
                },
                following: ctx.node.following().len(),
                conflicts: ctx.node.conflicts().into_iter().map(|c| c.detail).collect(),
                stored_bytes: usage.used,
                quota: usage.quota,
            })
        }
        Request::Fetch {
            hash,
            peers,
            timeout_secs,
            output,
        } => {
            let follow = match output {
                Some(out) => Some(
                    crate::export::Follow::start(store.clone(), hash, out)
                        .map_err(|e| format!("{e:#}"))?,
                ),
                None => None,
            };
            let fetched = fetch(ctx, hash, &peers, timeout_secs, w);
            match follow {
                // The fetch's own failure says more than the file's.
                Some(f) => {
                    let written = f.finish(fetched.is_ok()).map_err(|e| format!("{e:#}"));
                    fetched.and_then(|done| written.map(|()| done))
                }
                None => fetched,
            }
        }
    }
}

fn fetch(
    ctx: &Served,
    hash: Hash,
    peers: &[String],
    timeout_secs: u64,
    w: &mut impl Write,
) -> Result<Vec<u8>, String> {
    let mut hints = Vec::new();
    let mut addrs = Vec::new();
    for p in peers {
        let addr: tamizdat_node::Multiaddr = p
            .parse()
            .map_err(|e| format!("invalid multiaddr {p:?}: {e}"))?;
        // As `--bootstrap` and cards allow: with or without /p2p/PEER_ID;
        // with it, that peer is also asked first.
        if let Some(tamizdat_node::Protocol::P2p(id)) = addr.iter().last() {
            hints.push(id);
        }
        addrs.push(addr);
    }
    let node = &ctx.node;
    ctx.runtime.block_on(async {
        for a in addrs {
            match tokio::time::timeout(JOIN_WAIT, node.dial(a.clone())).await {
                // Whoever answered is asked first, as with /p2p/PEER_ID.
                Ok(Ok(peer)) => {
                    if !hints.contains(&peer) {
                        hints.push(peer);
                    }
                }
                Ok(Err(e)) => warn!("cannot reach {a}: {e}"),
                Err(_) => warn!("no answer from {a} within {JOIN_WAIT:?}"),
            }
        }
        // Progress, and a heartbeat: a caller that went away (Ctrl-C on
        // `get`) cancels the fetch and its file.
        let done = fetch_within(node, hash, &hints, timeout_secs, |p| {
            encode(&p)
                .and_then(|b| write_frame(w, PROGRESS, &b))
                .and_then(|()| w.flush())
                .map_err(|_| "the caller went away; fetch cancelled".to_owned())
        })
        .await?;
        reply(&done)
    })
}

/// Fetches `hash` through `node` within `secs` (1 s to a day), with
/// `progress` told of each change and every [`HEARTBEAT`]; an error from
/// it cancels the fetch. Used by the node for `get` and by `get` itself
/// when no node runs.
pub async fn fetch_within(
    node: &tamizdat_node::Client,
    hash: Hash,
    hints: &[tamizdat_node::PeerId],
    secs: u64,
    mut progress: impl FnMut(FetchProgress) -> Result<(), String>,
) -> Result<FetchDone, String> {
    let secs = secs.clamp(1, 86_400);
    let (tx, mut rx) = tokio::sync::watch::channel(tamizdat_node::Progress::default());
    let work = node.fetch_with_progress(hash, hints, Some(tx));
    let limit = tokio::time::sleep(Duration::from_secs(secs));
    let mut beat = tokio::time::interval(HEARTBEAT);
    tokio::pin!(work, limit);
    loop {
        tokio::select! {
            done = &mut work => {
                let f = done.map_err(|e| fetch_failure(&e))?;
                return Ok(FetchDone {
                    size: f.size,
                    new_bytes: f.new_bytes,
                    providers: f.providers.len(),
                    bad: f.bad.len(),
                });
            }
            () = &mut limit => return Err(fetch_timed_out(&hash, secs, node.peer_count())),
            changed = rx.changed() => {
                if changed.is_err() {
                    continue;
                }
            }
            _ = beat.tick() => {}
        }
        let p = *rx.borrow();
        progress(FetchProgress {
            size: p.size,
            verified: p.verified,
            providers: p.providers,
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        remote: Remote,
        store: Arc<Store>,
        _server: Server,
        _rt: tokio::runtime::Runtime,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::TempDir::new().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = Arc::new(Store::open(dir.path().join("store"), Default::default()).unwrap());
        let server = rt.block_on(async {
            let key = tamizdat_node::identity::Keypair::generate_ed25519();
            let node = tamizdat_node::spawn(tamizdat_node::Config::new(key, vec![]), store.clone())
                .unwrap();
            serve(
                dir.path(),
                Served {
                    store: store.clone(),
                    node,
                    runtime: tokio::runtime::Handle::current(),
                    listen: vec![],
                    gateway: None,
                },
            )
            .unwrap()
        });
        let remote = Remote::find(dir.path()).expect("the node answers");
        Fixture {
            path: dir.path().join(SOCKET),
            _dir: dir,
            remote,
            store,
            _server: server,
            _rt: rt,
        }
    }

    fn raw(f: &Fixture, bytes: &[u8]) -> Vec<u8> {
        let mut s = UnixStream::connect(&f.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    #[test]
    fn hostile_frames_get_an_error_and_the_node_keeps_serving() {
        let f = fixture();
        // A claimed length far over the limit: refused without allocating.
        let mut huge = vec![VALUE];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let answer = raw(&f, &huge);
        assert_eq!(answer[0], ERROR, "told, not just dropped");
        assert!(String::from_utf8_lossy(&answer[5..]).contains("limit"));
        // Garbage where a request should be.
        let answer = raw(&f, &[VALUE, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert_eq!(answer[0], ERROR);
        assert!(String::from_utf8_lossy(&answer[5..]).contains("malformed request"));
        // A data frame where a request should be.
        let answer = raw(&f, &[DATA, 0, 0, 0, 1, 7]);
        assert_eq!(answer[0], ERROR);
        // Still serving.
        f.remote.call::<()>(&Request::Ping).unwrap();
    }

    #[test]
    fn silent_connections_cannot_lock_commands_out() {
        let f = fixture();
        let silent: Vec<UnixStream> = (0..MAX_CONNECTIONS + 4)
            .map(|_| UnixStream::connect(&f.path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        // Every slot is held by a caller that says nothing; a real command
        // is told "busy" at first, then served once their deadline passes.
        assert!(
            Remote::find(f.path.parent().unwrap()).is_some(),
            "still found"
        );
        f.remote.call::<()>(&Request::Ping).unwrap();
        drop(silent);
    }

    #[test]
    fn an_add_cut_short_or_overlong_stores_nothing() {
        let f = fixture();
        // Declares 10 bytes, sends 4, then hangs up.
        let mut req = encode(&Request::Add {
            size: Some(10),
            name: "short".into(),
        })
        .unwrap();
        let mut msg = vec![VALUE];
        msg.extend_from_slice(&(req.len() as u32).to_be_bytes());
        msg.append(&mut req);
        msg.extend_from_slice(&[DATA, 0, 0, 0, 4, 1, 2, 3, 4]);
        let answer = raw(&f, &msg);
        assert_eq!(answer[0], ERROR, "{answer:?}");
        // Declares 3 bytes, sends 5.
        let err = f
            .remote
            .add(&b"abcde"[..], Some(3), Path::new("long"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("long"), "{err:#}");
        assert!(f.store.list().unwrap().is_empty(), "nothing was stored");
        // The same bytes, honestly sized, go in and come back out.
        let added = f
            .remote
            .add(&b"abcde"[..], Some(5), Path::new("ok"))
            .unwrap();
        let mut back = Vec::new();
        f.remote
            .reader(&added.hash)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b"abcde");
        let empty = f.remote.add(&b""[..], None, Path::new("empty")).unwrap();
        let mut back = Vec::new();
        f.remote
            .reader(&empty.hash)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn a_blob_damaged_on_disk_is_cut_off_with_an_error_not_served() {
        let f = fixture();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let added = f
            .remote
            .add(&bytes[..], Some(bytes.len() as u64), Path::new("b"))
            .unwrap();
        // Damage the stored data file behind the store's back.
        let data = walk(&f.store.dir().to_path_buf())
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == bytes.len() as u64))
            .expect("the data file");
        let mut on_disk = std::fs::read(&data).unwrap();
        on_disk[2_500_000] ^= 1;
        std::fs::write(&data, on_disk).unwrap();
        let mut back = Vec::new();
        let err = f
            .remote
            .reader(&added.hash)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap_err();
        assert!(err.to_string().contains("scrub"), "{err}");
        assert!(back.len() <= 2_500_000, "nothing past the damage was sent");
        assert_eq!(
            back,
            bytes[..back.len()],
            "what was sent is the blob's own bytes"
        );
        // Damage at the very start: refused before any byte.
        let first = f
            .remote
            .add(&bytes[..9000], Some(9000), Path::new("c"))
            .unwrap();
        let small = walk(&f.store.dir().to_path_buf())
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 9000))
            .expect("the data file");
        let mut on_disk = std::fs::read(&small).unwrap();
        on_disk[10] ^= 1;
        std::fs::write(&small, on_disk).unwrap();
        let err = match f.remote.reader(&first.hash) {
            Ok(mut r) => r.read_to_end(&mut Vec::new()).unwrap_err().to_string(),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("corrupt"), "{err}");
    }

    fn walk(dir: &PathBuf) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
