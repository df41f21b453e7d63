//! Bounds on peers that hold the node's resources without using them:
//!
//! - [`Idle`]: a stream that fails once it has made no progress for a while,
//!   so a silent peer cannot hold a transfer (and its thread) forever.
//! - [`PendingPerIp`]: at most a few incoming connections still in their
//!   handshake from one IP address, so one address cannot fill the node's
//!   pending slots and lock everyone else out. (The handshake itself is
//!   bounded in time by the transport: `node::HANDSHAKE_TIMEOUT`.)

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    net::{IpAddr, Ipv6Addr},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    multiaddr::Protocol,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
    },
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep, sleep},
};

/// Wraps a stream with an idle timeout on reads and writes.
#[derive(Debug)]
pub struct Idle<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    /// `timeout`: the longest a read or write may wait for progress.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(sleep(timeout)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "peer made no progress in time")
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Refuses an incoming connection while `max` others from the same IP
/// address (the same /64 for IPv6) are still in their handshake. Connections
/// without an IP address (relayed ones) are not counted here.
#[derive(Debug)]
pub struct PendingPerIp {
    max: usize,
    pending: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why [`PendingPerIp`] refused a connection.
#[derive(Debug, thiserror::Error)]
#[error("{max} connections from {ip} are already in their handshake")]
pub struct TooManyPending {
    /// The address (an IPv6 one as its /64).
    pub ip: IpAddr,
    /// The limit.
    pub max: usize,
}

/// The address a limit counts by: an IPv4 address, or the /64 of an IPv6
/// one (a single host may own the whole /64).
fn ip_key(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(v4) => Some(IpAddr::V4(v4)),
        Protocol::Ip6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }),
        _ => None,
    }
}

impl PendingPerIp {
    /// At most `max` pending incoming connections per address.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            pending: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// The connection is no longer pending: established, refused or failed.
    fn done(&mut self, id: ConnectionId) {
        let Some(ip) = self.pending.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl NetworkBehaviour for PendingPerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_key(remote) else {
            return Ok(());
        };
        let n = self.per_ip.entry(ip).or_default();
        if *n >= self.max {
            return Err(ConnectionDenied::new(TooManyPending { ip, max: self.max }));
        }
        *n += 1;
        self.pending.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        // A connection refused by another behaviour, before or after this
        // one counted it, or whose handshake failed or timed out.
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.done(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn pending_connections_are_bounded_per_address_and_released() {
        let mut b = PendingPerIp::new(2);
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        let one = addr("/ip4/192.0.2.1/tcp/5000");
        let other = addr("/ip4/192.0.2.2/tcp/5000");
        let ids: Vec<ConnectionId> = (1..=4).map(ConnectionId::new_unchecked).collect();
        assert!(
            b.handle_pending_inbound_connection(ids[0], &local, &one)
                .is_ok()
        );
        assert!(
            b.handle_pending_inbound_connection(ids[1], &local, &one)
                .is_ok()
        );
        assert!(
            b.handle_pending_inbound_connection(ids[2], &local, &one)
                .is_err()
        );
        assert!(
            b.handle_pending_inbound_connection(ids[2], &local, &other)
                .is_ok(),
            "another address is not held up"
        );
        // Once one of them is established, another may start.
        let peer = PeerId::random();
        b.handle_established_inbound_connection(ids[0], peer, &local, &one)
            .unwrap();
        assert!(
            b.handle_pending_inbound_connection(ids[3], &local, &one)
                .is_ok()
        );
        // IPv6 counts by /64; relayed connections are not counted.
        let mut b = PendingPerIp::new(1);
        let a = addr("/ip6/2001:db8::1/tcp/1");
        let same64 = addr("/ip6/2001:db8::2/tcp/1");
        assert!(
            b.handle_pending_inbound_connection(ids[0], &local, &a)
                .is_ok()
        );
        assert!(
            b.handle_pending_inbound_connection(ids[1], &local, &same64)
                .is_err()
        );
        let relayed = addr(&format!("/p2p/{}/p2p-circuit", PeerId::random()));
        assert!(
            b.handle_pending_inbound_connection(ids[2], &local, &relayed)
                .is_ok()
        );
        assert!(
            b.handle_pending_inbound_connection(ids[3], &local, &relayed)
                .is_ok()
        );
    }
}
