//! The blob protocol's framing (`tamizdat_node::wire`, protocol.md §7):
//! the request parser a provider runs on what a stranger sends, and the
//! response header parser a requester runs on what a provider answers.
//!
//! Checks: no panic; a request that parses is within the limits, its
//! ranges are strictly increasing, and it writes back to the same bytes it
//! was read from (the request is canonical postcard, or re-reading what it
//! writes gives it again); a response header parses to a status and, for
//! `Ok`, the size, and writes back to the same bytes.

use afl::fuzz;
use tamizdat_node::wire::{
    MAX_BOUNDARIES, MAX_REQUEST, Request, Status, Want, read_header, write_header,
};

fn main() {
    fuzz!(|data: &[u8]| {
        if let Ok(req) = Request::read(data) {
            let len = u16::from_le_bytes([data[0], data[1]]) as usize;
            assert!(len <= MAX_REQUEST);
            if let Want::Ranges(b) = &req.want {
                assert!(b.len() <= MAX_BOUNDARIES);
                assert!(
                    b.windows(2).all(|w| w[0] < w[1]),
                    "ranges strictly increasing"
                );
            }
            let ranges = req.chunk_ranges().expect("read checked the ranges");
            assert_eq!(ranges.is_none(), req.want == Want::SizeProof);
            let mut out = Vec::new();
            req.write(&mut out).expect("a read request writes");
            assert_eq!(
                Request::read(&out[..]).expect("re-read"),
                req,
                "decode(encode(x)) == x"
            );
            if out[..] != data[..out.len().min(data.len())] {
                // postcard accepts overlong varints; the re-encoding is the
                // canonical form and is never longer.
                assert!(out.len() <= 2 + len);
            }
            if let Some(r) = ranges {
                assert_eq!(
                    Request::ranges(&tamizdat_store::Hash::from_bytes(req.hash), &r),
                    req
                );
            }
        }
        match read_header(data) {
            Ok(Ok(size)) => {
                let mut out = Vec::new();
                write_header(&mut out, Status::Ok, Some(size)).unwrap();
                assert_eq!(out[..], data[..9]);
            }
            Ok(Err(status)) => {
                assert_ne!(status, Status::Ok);
                let mut out = Vec::new();
                write_header(&mut out, status, None).unwrap();
                assert_eq!(out[..], data[..1]);
            }
            Err(_) => {}
        }
    });
}
