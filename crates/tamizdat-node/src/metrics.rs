//! The node's own Prometheus metrics, under the `tamizdat_` prefix. libp2p's
//! (connections, DHT, gossip, identify, ping, relay, hole punching,
//! bandwidth) are registered beside them, under `libp2p_`.
//!
//! - `tamizdat_fetches_total{outcome}`: fetches finished, by outcome.
//! - `tamizdat_fetched_bytes_total`: blob bytes fetched and verified.
//! - `tamizdat_dials_total{transport,outcome}`: outgoing connections.
//! - `tamizdat_served_bytes_total`: blob bytes sent to peers.
//! - `tamizdat_connected_peers`: peers connected now (0: the node is alone).

use std::fmt::Write as _;

use libp2p::{Multiaddr, multiaddr::Protocol, swarm::DialError};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::node::NodeError;

/// How a fetch ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum FetchOutcome {
    /// The blob is complete here (fetched now, or held already).
    Ok,
    /// Peers were asked but none could prove the blob's size.
    NotFound,
    /// Nobody was found who has it.
    NoProviders,
    /// The node was connected to nobody: nobody was asked.
    NoPeers,
    /// Anything else: providers failed part-way, the store failed, the node stopped.
    Failed,
}

impl FetchOutcome {
    fn of<T>(result: &Result<T, NodeError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(NodeError::NotFound { .. }) => Self::NotFound,
            Err(NodeError::NoProviders(_)) => Self::NoProviders,
            Err(NodeError::NoPeers(_)) => Self::NoPeers,
            Err(_) => Self::Failed,
        }
    }
}

impl EncodeLabelValue for FetchOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::NoProviders => "no_providers",
            Self::NoPeers => "no_peers",
            Self::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    outcome: FetchOutcome,
}

/// The transport an outgoing connection went over.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Transport {
    Tcp,
    Quic,
    Ws,
    Relay,
    /// Another transport, or a failure with no address to tell.
    Other,
}

impl Transport {
    /// Judged by the outermost layer: a circuit through a relay reached
    /// over WebSocket is `relay`.
    fn of(addr: &Multiaddr) -> Self {
        let has = |f: fn(&Protocol<'_>) -> bool| addr.iter().any(|p| f(&p));
        if has(|p| matches!(p, Protocol::P2pCircuit)) {
            Self::Relay
        } else if has(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_))) {
            Self::Ws
        } else if has(|p| matches!(p, Protocol::QuicV1)) {
            Self::Quic
        } else if has(|p| matches!(p, Protocol::Tcp(_))) {
            Self::Tcp
        } else {
            Self::Other
        }
    }
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Tcp => "tcp",
            Self::Quic => "quic",
            Self::Ws => "ws",
            Self::Relay => "relay",
            Self::Other => "other",
        })
    }
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum DialOutcome {
    Ok,
    Error,
}

impl EncodeLabelValue for DialOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Ok => "ok",
            Self::Error => "error",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DialLabels {
    transport: Transport,
    outcome: DialOutcome,
}

/// The node's counters. Cheap to clone: every clone counts into the same
/// series.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeMetrics {
    fetches: Family<FetchLabels, Counter>,
    fetched_bytes: Counter,
    dials: Family<DialLabels, Counter>,
    served_bytes: Counter,
    connected_peers: Gauge,
}

impl NodeMetrics {
    /// New counters, registered in `registry` under the `tamizdat_` prefix.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("tamizdat");
        r.register(
            "fetches",
            "Blob fetches finished, by outcome: ok (complete here, including \
             blobs held already), not_found (peers asked could not deliver), \
             no_providers (nobody known has it), no_peers (connected to nobody, \
             nobody asked), failed (anything else)",
            m.fetches.clone(),
        );
        r.register_with_unit(
            "fetched",
            "Blob bytes fetched from peers and verified (not counting what was held already)",
            Unit::Bytes,
            m.fetched_bytes.clone(),
        );
        r.register(
            "dials",
            "Outgoing connections, by transport (tcp, quic, ws, relay, other) \
             and outcome: ok once established, error once per address that failed",
            m.dials.clone(),
        );
        r.register_with_unit(
            "served",
            "Blob bytes sent to peers",
            Unit::Bytes,
            m.served_bytes.clone(),
        );
        r.register(
            "connected_peers",
            "Peers connected now; 0 means the node is alone and can neither \
             receive articles nor pass them on",
            m.connected_peers.clone(),
        );
        m
    }

    /// Sets the number of peers connected now.
    pub(crate) fn connected_peers(&self, n: usize) {
        self.connected_peers
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one fetch's result.
    pub(crate) fn fetched<T>(&self, result: &Result<T, NodeError>) {
        self.fetches
            .get_or_create(&FetchLabels {
                outcome: FetchOutcome::of(result),
            })
            .inc();
    }

    /// Counts newly verified blob bytes.
    pub(crate) fn fetched_bytes(&self, n: u64) {
        self.fetched_bytes.inc_by(n);
    }

    /// Counts an outgoing connection established at `addr`.
    pub(crate) fn dialed(&self, addr: &Multiaddr) {
        self.dial(Transport::of(addr), DialOutcome::Ok);
    }

    /// Counts a failed outgoing connection: each address tried, or one
    /// `other` when the error names none.
    pub(crate) fn dial_failed(&self, error: &DialError) {
        match error {
            DialError::Transport(tried) => {
                for (addr, _) in tried {
                    self.dial(Transport::of(addr), DialOutcome::Error);
                }
            }
            DialError::WrongPeerId { address, .. } | DialError::LocalPeerId { address } => {
                self.dial(Transport::of(address), DialOutcome::Error);
            }
            _ => self.dial(Transport::Other, DialOutcome::Error),
        }
    }

    fn dial(&self, transport: Transport, outcome: DialOutcome) {
        self.dials
            .get_or_create(&DialLabels { transport, outcome })
            .inc();
    }

    /// The counter of blob bytes sent to peers.
    pub(crate) fn served_bytes(&self) -> &Counter {
        &self.served_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_is_the_outermost_layer() {
        let cases = [
            ("/ip4/1.2.3.4/tcp/7", Transport::Tcp),
            ("/dns4/example.org/tcp/443/wss", Transport::Ws),
            ("/ip4/1.2.3.4/tcp/80/ws", Transport::Ws),
            ("/ip4/1.2.3.4/udp/7/quic-v1", Transport::Quic),
            (
                "/ip4/1.2.3.4/udp/7/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
                Transport::Relay,
            ),
            ("/memory/5", Transport::Other),
        ];
        for (addr, want) in cases {
            assert_eq!(Transport::of(&addr.parse().unwrap()), want, "{addr}");
        }
    }
}
