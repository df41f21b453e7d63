//! The listener: accepts connections within their bounds and hands each to
//! hyper with the router.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tamizdat_node::Client;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use crate::app::App;

/// Largest request head (request line and headers) accepted: more is a 431.
const MAX_HEADERS: usize = 64 * 1024;

/// How the gateway listens and what it allows each client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen. Loopback unless the operator chooses otherwise.
    pub addr: SocketAddr,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Longest a client may leave the answer untaken (it stopped reading)
    /// before it is cut off.
    pub stall_timeout: Duration,
    /// Longest a request waits for a blob missing here to come from the
    /// network.
    pub fetch_timeout: Duration,
    /// Network fetches at once on behalf of one client address.
    pub fetches_per_client: usize,
    /// Network fetches at once on behalf of all clients.
    pub fetches_total: usize,
    /// Largest blob fetched from the network for a reader.
    pub fetch_max_bytes: u64,
    /// Longest an article's text is rendered for: past it, the page says
    /// the text is too complex to show and links its file.
    pub render_timeout: Duration,
    /// Memory kept for small verified blobs served often.
    pub cache_bytes: u64,
    /// The address readers use, when it is not this one (behind a TLS
    /// reverse proxy: `https://news.example.org`): used for article links
    /// and their QR codes. Otherwise they are made from the request's `Host`.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request from
    /// one of these counts against the reader it names, not the proxy.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Config {
    /// The defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(60),
            fetches_per_client: 4,
            fetches_total: 32,
            fetch_max_bytes: 256 << 20,
            render_timeout: Duration::from_secs(10),
            cache_bytes: 64 << 20,
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// The address it listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the gateway's accept loop ends on its own: it does only
    /// when it failed (a panic), since stopping goes through
    /// [`Gateway::shutdown`]. A node watches this so that it never runs on
    /// without its gateway.
    pub async fn ended(&mut self) -> String {
        match (&mut self.task).await {
            Ok(()) => "the gateway stopped".into(),
            Err(e) => format!("the gateway failed: {e}"),
        }
    }

    /// Stops accepting, lets requests in flight finish for up to 2 s.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// Binds `config.addr` and serves the gateway for `node` until shut down.
/// `registry` holds the node's metrics (see
/// `tamizdat_node::spawn_with_metrics`); the gateway adds its own.
pub async fn spawn(config: Config, node: Client, mut registry: Registry) -> io::Result<Gateway> {
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the gateway listens on a non-loopback address: anyone who can reach it can read \
             what this node holds and make it fetch from the network"
        );
    }
    let app = App::new(config.clone(), node, &mut registry, addr);
    app.set_registry(registry);
    let router = crate::app::router(app);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, router, config, stopped));
    Ok(Gateway { addr, stop, task })
}

/// Connections open per address.
#[derive(Debug, Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in the per-address count.
struct IpSlot(Arc<PerIp>, IpAddr);

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot(self.clone(), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.0.0.lock().unwrap();
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// The reader a trusted proxy names: the last address of the last
/// `X-Forwarded-For` header (the one the proxy itself added; earlier entries
/// come from the client and prove nothing).
pub(crate) fn forwarded_for(headers: &hyper::HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The address limits are counted by: an IPv4 address, or the /64 network
/// of an IPv6 one (a single client can use the whole /64).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub IpAddr);

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    config: Config,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("gateway accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "gateway full: connection refused");
            continue;
        };
        let Some(slot) = per_ip.take(client_key(peer.ip()), config.max_connections_per_ip) else {
            tracing::debug!(%peer, "too many connections from one address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        conns.spawn(serve_conn(
            stream,
            peer.ip(),
            router.clone(),
            config.clone(),
            stopped.clone(),
            (permit, slot),
        ));
    }
    // Let requests in flight finish, briefly.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    ip: IpAddr,
    router: axum::Router,
    config: Config,
    mut stopped: watch::Receiver<bool>,
    _held: (OwnedSemaphorePermit, IpSlot),
) {
    // A client that stops taking the answer is cut off. Reads are bounded by
    // hyper's header timeout (which also covers idle keep-alive): a read
    // timeout here would also fire during a long download.
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(config.stall_timeout));
    let io = TokioIo::new(Box::pin(io));
    let trusted = config.trusted_proxies.contains(&ip);
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let client = if trusted {
                forwarded_for(req.headers()).unwrap_or(ip)
            } else {
                ip
            };
            req.extensions_mut().insert(ClientIp(client));
            router.clone().oneshot(req)
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // The buffer alone would let a little more through: hyper reads
        // into whatever room the buffer has.
        .max_buf_size(MAX_HEADERS)
        .max_header_size(MAX_HEADERS)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("gateway connection: {e}");
            }
        }
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_names_the_reader_in_its_own_entry() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("203.0.113.7".parse().unwrap()));
        // A client's own claim comes first; the proxy appends the real one.
        h.insert("x-forwarded-for", "10.0.0.1, 198.51.100.2".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("198.51.100.2".parse().unwrap()));
        h.append("x-forwarded-for", "2001:db8::5".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("2001:db8::5".parse().unwrap()));
        h.insert("x-forwarded-for", "not-an-address".parse().unwrap());
        assert_eq!(forwarded_for(&h), None);
    }
}
