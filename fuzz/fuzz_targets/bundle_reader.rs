//! The bundle frame reader (`tamizdat_feed::bundle::Reader`, protocol.md §8).
//!
//! Checks: no panic and no allocation beyond the limits on any bytes; the
//! reader's offset only grows and never passes the input; a blob frame
//! gives at most its length; and decode(encode(x)) == x: every frame
//! sequence that reads to an intact end record and that the writer
//! accepts is written again and read back to the same frames.

use std::io::Read;

use afl::fuzz;
use tamizdat_feed::bundle::{Frame, Info, Reader, Writer};
use tamizdat_store::Hash;

/// One frame with a blob's bytes.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Info(Info),
    Key(Vec<u8>),
    Manifest(Vec<u8>),
    Blob(Hash, Vec<u8>),
    End(bool),
}

fn read(bytes: &[u8]) -> (Vec<Record>, bool) {
    let Ok(mut r) = Reader::new(bytes) else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut last = r.offset();
    loop {
        let frame = match r.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return (out, true),
            Err(_) => return (out, false),
        };
        assert!(r.offset() >= last && r.offset() <= bytes.len() as u64);
        last = r.offset();
        out.push(match frame {
            Frame::Info(i) => Record::Info(i),
            Frame::Key(k) => Record::Key(k),
            Frame::Manifest(m) => Record::Manifest(m),
            Frame::Blob { hash, size } => {
                let mut data = Vec::new();
                r.blob().read_to_end(&mut data).expect("reading a slice");
                assert!(
                    data.len() as u64 <= size,
                    "a blob gave more than its length"
                );
                if (data.len() as u64) < size {
                    return (out, false);
                }
                Record::Blob(hash, data)
            }
            Frame::End { intact } => Record::End(intact),
        });
    }
}

fn main() {
    fuzz!(|data: &[u8]| {
        let (records, whole) = read(data);
        if !whole || records.last() != Some(&Record::End(true)) {
            return;
        }
        let Some(Record::Info(info)) = records.first() else {
            panic!("a whole bundle starts with its info record");
        };
        // Write the same frames again; the writer is stricter than the
        // reader (keys before manifests, files named by their manifest).
        let Ok(mut w) = Writer::new(Vec::new(), info) else {
            return;
        };
        for rec in &records[1..records.len() - 1] {
            let ok = match rec {
                Record::Key(k) => w.key(k).is_ok(),
                Record::Manifest(m) => w.manifest(m).is_ok(),
                Record::Blob(h, d) => w.blob(h, d.len() as u64, &d[..]).is_ok(),
                Record::Info(_) | Record::End(_) => panic!("info and end once each, at the ends"),
            };
            if !ok {
                return;
            }
        }
        let (written, digest) = w.finish().expect("writing to memory");
        assert_eq!(digest, Hash::from_bytes(*blake3::hash(&written).as_bytes()));
        let (again, whole) = read(&written);
        assert!(whole, "what the writer wrote reads whole");
        assert_eq!(again, records, "decode(encode(x)) == x");
    });
}
