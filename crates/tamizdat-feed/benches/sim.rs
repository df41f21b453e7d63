//! The replication core at 1,000 nodes over the modelled network:
//! 50 ± 20 ms links, 1 % loss, 30 % hostile nodes (every strategy), 10 %
//! churn per minute, the publisher leaving. Prints delivery, latency and
//! cost per node per article. `cargo bench -p tamizdat-feed --bench sim`
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
        assert_eq!(
            report.delivered, report.expected,
            "not every article arrived"
        );
        assert_eq!(report.refused_recorded, 0);
        assert_eq!(report.double_shown, 0);
    }
}
