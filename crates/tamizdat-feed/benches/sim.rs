//! The replication core at 1,000 nodes over the modelled network:
//! 50 ± 20 ms links, 1 % loss, 2 % of file transfers broken, 20 MiB/s
//! upload per node, a slow and partial DHT, 30 % hostile nodes (every
//! strategy, DHT poisoners included), 10 % churn per minute with slow
//! reconnection, the publisher leaving. Prints delivery, latency, cost per
//! node per article, failed transfers, bad-data penalties and the
//! publisher's upload share, then the same without the "have" hints
//! between neighbours (`/tamizdat/have/1`), then a stolen key used on the
//! newest article. `cargo bench -p tamizdat-feed --bench sim`
//! (`-- NODES` for another size).

#[path = "../tests/simnet/mod.rs"]
mod simnet;

use std::time::Instant;

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is a size.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1_000] } else { sizes };
    for nodes in sizes {
        let started = Instant::now();
        let report = simnet::run(simnet::Params::full(nodes, 7));
        let took = started.elapsed();
        println!("== {nodes} nodes, seed 7, {:.2} s wall", took.as_secs_f64());
        println!("{report}");
        // Safety must hold; a shortfall in delivery is reported, not hidden
        // behind a panic, so that every size still prints.
        if report.delivered != report.expected {
            println!("!! not every article arrived");
        }
        assert_eq!(report.refused_recorded, 0);
        assert_eq!(report.double_shown, 0);

        // Without "have" hints to neighbours (peers that do not speak
        // `/tamizdat/have/1`: the DHT alone).
        let mut p = simnet::Params::full(nodes, 7);
        p.have_hints = false;
        let report = simnet::run(p);
        println!("-- {nodes} nodes, without have hints (the DHT alone)");
        println!("{report}");

        // The stolen key used on the newest place right after its gossip.
        let mut p = simnet::Params::full(nodes, 7);
        p.strategies.push(simnet::Strategy::EquivocateNewest);
        p.equivocate_seq = p.articles as u64;
        let report = simnet::run(p);
        println!("-- {nodes} nodes, the last article faked at once by a stolen key");
        println!("{report}");
        assert_eq!(report.double_shown, 0);
        assert_eq!(report.deceived_silent_reachable, 0);
    }
}
