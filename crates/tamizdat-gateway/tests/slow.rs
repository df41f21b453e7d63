//! Slow and greedy clients are cut off, and the gateway keeps answering
//! everyone else meanwhile.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn addr(site: &Site) -> String {
    site.base.strip_prefix("http://").unwrap().to_owned()
}

/// Whether the server has closed `s`: reads until EOF or reset, for at most
/// `within`. Returns the bytes read.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<usize> {
    let until = Instant::now() + within;
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < until {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(total),
        }
    }
    None
}

/// A normal request on a new connection, answered in full.
fn quick_get(site: &Site) -> String {
    let mut s = TcpStream::connect(addr(site)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_timed_out_while_others_are_served() {
    let site = site(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.stall_timeout = Duration::from_secs(2);
    })
    .await;
    let a = addr(&site);
    let site_ref = &site;
    tokio::task::block_in_place(|| {
        // 40 clients start a request and drip its headers a byte at a time.
        let mut slow: Vec<TcpStream> = (0..40)
            .map(|_| {
                let mut s = TcpStream::connect(&a).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
                s
            })
            .collect();
        let started = Instant::now();
        let mut cut = vec![false; slow.len()];
        while started.elapsed() < Duration::from_secs(6) && cut.iter().any(|c| !c) {
            for (i, s) in slow.iter_mut().enumerate() {
                if !cut[i] && s.write_all(b"X").is_err() {
                    cut[i] = true;
                }
            }
            // Everyone else is still served.
            let answer = quick_get(site_ref);
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            std::thread::sleep(Duration::from_millis(250));
        }
        // Every dripping client was cut off (the header timeout is 1 s).
        for (i, s) in slow.iter_mut().enumerate() {
            if !cut[i] {
                assert!(
                    closed_within(s, Duration::from_secs(3)).is_some(),
                    "slow client {i} still connected"
                );
            }
        }
        // An idle connection that never sends a byte is closed too.
        let mut idle = TcpStream::connect(&a).unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(6)).is_some());
    });
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off() {
    let site = site(|c| c.stall_timeout = Duration::from_secs(2)).await;
    // Far more than the socket buffers on both sides hold.
    let big = data(48 << 20, 3);
    let hash = site.store.add_bytes(&big).unwrap().hash;
    let a = addr(&site);
    let site_ref = &site;
    tokio::task::block_in_place(|| {
        let mut greedy = TcpStream::connect(&a).unwrap();
        write!(greedy, "GET /b/{hash} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // It reads nothing for a while; others are served meanwhile.
        for _ in 0..8 {
            assert!(quick_get(site_ref).starts_with("HTTP/1.1 200"));
            std::thread::sleep(Duration::from_millis(500));
        }
        // Now it reads: the answer stops well short of the blob.
        let got = closed_within(&mut greedy, Duration::from_secs(20)).expect("cut off");
        assert!(got < big.len(), "{got} bytes: the whole blob came");
    });
    site.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let site = site(|c| c.max_connections_per_ip = 4).await;
    let a = addr(&site);
    let site_ref = &site;
    tokio::task::block_in_place(|| {
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&a).unwrap()).collect();
        // The fifth is closed at once, before a byte is answered.
        let mut fifth = TcpStream::connect(&a).unwrap();
        let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(closed_within(&mut fifth, Duration::from_secs(3)), Some(0));
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        assert!(quick_get(site_ref).starts_with("HTTP/1.1 200"));
    });
    site.gateway.shutdown().await;
}
