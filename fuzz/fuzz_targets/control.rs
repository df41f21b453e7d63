//! The control socket's frames (`src/control.rs` of the binary, compiled
//! here from the binary's source): the first frame of a connection and its
//! request, as the node reads them, and a stream of data frames as both
//! ends read them.
//!
//! Checks: no panic; a frame read is within its limit and writes back to
//! the bytes it was read from; a request that decodes re-encodes to bytes
//! that decode to the same request (decode(encode(x)) == x, compared
//! through their encodings: `Request` has no `PartialEq`); the data reader
//! never returns more bytes than its DATA frames held, and never more than
//! one data frame's limit at a time.

use afl::fuzz;
use tamizdat_fuzz::control;

fn main() {
    fuzz!(|data: &[u8]| {
        // The first frame of a connection, as the node reads it.
        let mut r = data;
        if let Ok(Some((tag, req))) = control::read_request(&mut r) {
            let used = data.len() - r.len();
            let mut again = Vec::new();
            control::write(&mut again, tag, &data[5..used]).unwrap();
            assert_eq!(again, data[..used], "a frame writes back to its bytes");
            if let Ok(req) = req {
                let bytes = control::encode_request(&req).unwrap();
                let back: control::Request = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(control::encode_request(&back).unwrap(), bytes);
                assert_eq!(format!("{req:?}"), format!("{back:?}"));
            }
        }
        // A small limit, to reach the over-limit path.
        let mut r = data;
        if let Ok(Some((_, payload))) = control::frame(&mut r, 64) {
            assert!(payload.len() <= 64);
        }
        // A data stream: the total of its DATA frames, up to the first other one.
        let (read, end) = control::data(data, 1 << 22);
        if let Ok(bytes) = read {
            let mut total = 0usize;
            let mut r = data;
            while let Ok(Some((tag, payload))) = control::frame(&mut r, usize::MAX) {
                if tag != control::TAGS[0] {
                    break;
                }
                total += payload.len();
            }
            assert!(
                bytes.len() <= total,
                "{} bytes out of {total} in frames",
                bytes.len()
            );
            if let Some((tag, _)) = end {
                assert_ne!(tag, control::TAGS[0]);
            }
        }
    });
}
