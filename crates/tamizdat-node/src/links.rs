//! What the node knows of its connections to each peer, kept by a
//! behaviour in the swarm and read by fetches outside it:
//!
//! - whether a peer is reached only through relays, whose circuits close
//!   after so many bytes: a fetch asks such a peer for small pieces;
//! - the addresses a peer was last reached at by dialling, offered when it
//!   is dialled again. A peer found by a DHT query that has finished
//!   since, behind NAT and reached through a relay, would otherwise have no
//!   address to be dialled at once its circuit closed, and a fetch could
//!   not go on where it stopped.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{ConnectedPoint, Endpoint, transport::PortUse},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, behaviour::ConnectionEstablished, dummy,
    },
};

/// Peers whose dialled addresses are remembered, at most.
pub const MAX_PEERS: usize = 1024;
/// Addresses remembered per peer, the latest first.
pub const MAX_ADDRS: usize = 4;

#[derive(Debug, Default)]
struct Peer {
    direct: usize,
    relayed: usize,
    dialled: VecDeque<Multiaddr>,
}

#[derive(Debug, Default)]
struct State {
    peers: HashMap<PeerId, Peer>,
    /// Peers with addresses remembered, oldest first.
    remembered: VecDeque<PeerId>,
}

impl State {
    fn remember(&mut self, peer: PeerId, addr: &Multiaddr) {
        let entry = self.peers.entry(peer).or_default();
        if entry.dialled.is_empty() {
            self.remembered.push_back(peer);
        }
        entry.dialled.retain(|a| a != addr);
        entry.dialled.push_front(addr.clone());
        entry.dialled.truncate(MAX_ADDRS);
        // Over the bound: the oldest remembered go first, whether connected
        // or not (a connected peer needs no address until it disconnects).
        while self.remembered.len() > MAX_PEERS {
            let Some(old) = self.remembered.pop_front() else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&old) {
                p.dialled.clear();
                if p.direct == 0 && p.relayed == 0 {
                    self.peers.remove(&old);
                }
            }
        }
    }
}

/// The shared record; one clone is the swarm's behaviour, others read it.
#[derive(Debug, Clone, Default)]
pub struct Links(Arc<Mutex<State>>);

impl Links {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock's data is whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connected to `peer`, and only through relays.
    pub fn relayed_only(&self, peer: &PeerId) -> bool {
        self.lock()
            .peers
            .get(peer)
            .is_some_and(|p| p.direct == 0 && p.relayed > 0)
    }

    /// Connected to `peer`, directly or not.
    pub fn connected(&self, peer: &PeerId) -> bool {
        self.lock()
            .peers
            .get(peer)
            .is_some_and(|p| p.direct + p.relayed > 0)
    }

    /// The addresses `peer` was last reached at by dialling, latest first.
    pub fn dialled(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.lock()
            .peers
            .get(peer)
            .map(|p| p.dialled.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn established(&self, peer: PeerId, endpoint: &ConnectedPoint) {
        let mut state = self.lock();
        let entry = state.peers.entry(peer).or_default();
        if endpoint.is_relayed() {
            entry.relayed += 1;
        } else {
            entry.direct += 1;
        }
        if let ConnectedPoint::Dialer { address, .. } = endpoint {
            state.remember(peer, address);
        }
    }

    fn closed(&self, peer: PeerId, endpoint: &ConnectedPoint) {
        let mut state = self.lock();
        let Some(entry) = state.peers.get_mut(&peer) else {
            return;
        };
        if endpoint.is_relayed() {
            entry.relayed = entry.relayed.saturating_sub(1);
        } else {
            entry.direct = entry.direct.saturating_sub(1);
        }
        if entry.direct == 0 && entry.relayed == 0 && entry.dialled.is_empty() {
            state.peers.remove(&peer);
        }
    }
}

impl NetworkBehaviour for Links {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = peer else {
            return Ok(Vec::new());
        };
        let mut known = self.dialled(&peer);
        known.retain(|a| !addresses.contains(a));
        Ok(known)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
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
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id, endpoint, ..
            }) => self.established(peer_id, endpoint),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id, endpoint, ..
            }) => self.closed(peer_id, endpoint),
            _ => {}
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
    use libp2p::identity::Keypair;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    fn dialer(a: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: a.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    const RELAYED: &str = "/ip4/10.77.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit";

    #[test]
    fn a_peer_reached_through_a_relay_is_dialled_there_again_once_the_circuit_closed() {
        let mut links = Links::default();
        let p = peer();
        let via = dialer(RELAYED);
        links.established(p, &via);
        assert!(links.relayed_only(&p) && links.connected(&p));
        links.closed(p, &via);
        assert!(!links.relayed_only(&p), "not connected at all");
        assert!(!links.connected(&p));
        let again = links
            .handle_pending_outbound_connection(
                ConnectionId::new_unchecked(1),
                Some(p),
                &[],
                Endpoint::Dialer,
            )
            .unwrap();
        assert_eq!(again, vec![RELAYED.parse::<Multiaddr>().unwrap()]);
        // A direct connection beside it: no longer relayed only.
        links.established(p, &via);
        let direct = dialer("/ip4/10.77.0.11/tcp/4001");
        links.established(p, &direct);
        assert!(!links.relayed_only(&p));
        assert_eq!(
            links.dialled(&p)[0],
            "/ip4/10.77.0.11/tcp/4001".parse::<Multiaddr>().unwrap()
        );
        // Inbound connections teach no address.
        let q = peer();
        links.established(
            q,
            &ConnectedPoint::Listener {
                local_addr: "/ip4/10.77.0.1/tcp/4001".parse().unwrap(),
                send_back_addr: "/ip4/10.77.0.12/tcp/4001".parse().unwrap(),
            },
        );
        assert!(links.dialled(&q).is_empty());
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let links = Links::default();
        let first = peer();
        for i in 0..8 {
            links.established(first, &dialer(&format!("/ip4/10.0.0.{i}/tcp/1")));
        }
        assert_eq!(links.dialled(&first).len(), MAX_ADDRS);
        for _ in 0..MAX_PEERS {
            let p = peer();
            let d = dialer("/ip4/10.0.0.1/tcp/1");
            links.established(p, &d);
            links.closed(p, &d);
        }
        let state = links.lock();
        assert_eq!(state.remembered.len(), MAX_PEERS);
        assert!(state.peers.len() <= MAX_PEERS + 1);
        assert!(
            state.peers[&first].dialled.is_empty(),
            "the oldest went first"
        );
    }
}
