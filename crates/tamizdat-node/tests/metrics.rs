//! What an operator reads at `/metrics`: the text encoding of a node's
//! registry after real fetches between two nodes on loopback.

use std::{collections::HashMap, time::Duration};

use tamizdat_node::prometheus_client::{encoding::text::encode, registry::Registry};
use tamizdat_store::Hash;

mod common;

use common::{data, node_with_metrics};

/// One sample: its labels and value.
type Sample = (HashMap<String, String>, f64);

/// The samples of metric `name` in the text format.
fn samples(text: &str, name: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        out.push((labels, value.parse().unwrap()));
    }
    out
}

/// The sum of `name`'s samples whose labels include all of `want`.
fn total(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_metrics_count_its_dials_fetches_and_bytes() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (mut reg_a, mut reg_b) = (Registry::default(), Registry::default());
        let a = node_with_metrics(&mut reg_a).await;
        let b = node_with_metrics(&mut reg_b).await;
        // Several pieces of the test nodes' 256 KiB.
        let bytes = data(700 * 1024 + 3, 7);
        let hash = a.store.add_bytes(&bytes).unwrap().hash;
        b.client.dial(a.addr.clone()).await.unwrap();
        let got = b.client.fetch(hash, &[a.client.peer_id()]).await.unwrap();
        assert_eq!(got.new_bytes, bytes.len() as u64);
        let absent = Hash::of(b"nobody has this");
        assert!(b.client.fetch(absent, &[a.client.peer_id()]).await.is_err());

        let text = encoded(&reg_b);
        println!("{text}");
        let fetches = "tamizdat_fetches_total";
        assert_eq!(total(&text, fetches, &[("outcome", "ok")]), 1.0, "{text}");
        let failed: f64 = ["not_found", "no_providers", "failed"]
            .iter()
            .map(|o| total(&text, fetches, &[("outcome", o)]))
            .sum();
        assert_eq!(failed, 1.0, "{text}");
        let dials = total(
            &text,
            "tamizdat_dials_total",
            &[("transport", "tcp"), ("outcome", "ok")],
        );
        assert!(dials >= 1.0, "{text}");
        let fetched = total(&text, "tamizdat_fetched_bytes_total", &[]);
        assert_eq!(fetched, bytes.len() as f64, "{text}");
        assert!(
            text.contains("# TYPE libp2p_swarm_connections_established counter"),
            "{text}"
        );
        assert!(
            total(&text, "libp2p_swarm_connections_established_total", &[]) >= 1.0,
            "{text}"
        );

        // A blob held already is a fetch that succeeds with nothing new.
        b.client.fetch(hash, &[]).await.unwrap();
        let text = encoded(&reg_b);
        assert_eq!(total(&text, fetches, &[("outcome", "ok")]), 2.0, "{text}");
        assert_eq!(
            total(&text, "tamizdat_fetched_bytes_total", &[]),
            bytes.len() as f64
        );

        // The provider counts what it sent: the blob and the framing around
        // it (counted just after each write, so perhaps a moment later).
        let mut text = encoded(&reg_a);
        for _ in 0..50 {
            if total(&text, "tamizdat_served_bytes_total", &[]) >= bytes.len() as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            text = encoded(&reg_a);
        }
        let served = total(&text, "tamizdat_served_bytes_total", &[]);
        assert!(served >= bytes.len() as f64, "{text}");
        assert_eq!(served, a.client.bytes_served() as f64);

        for n in [&a, &b] {
            n.client.shutdown().await;
        }
    })
    .await
    .expect("the metrics test finished in time");
}
