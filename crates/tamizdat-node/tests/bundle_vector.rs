//! The bundle test vector in `docs/protocol.md` §10 is what the code writes,
//! and reads back whole.

use std::io::Read;

use tamizdat_node::bundle::{Frame, Info, Reader, Writer};
use tamizdat_store::Hash;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vector(doc: &str, name: &str) -> String {
    doc.lines()
        .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("{name} in docs/protocol.md"))
        .trim()
        .to_owned()
}

#[test]
fn the_documented_bundle_is_what_the_writer_makes() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .unwrap();
    let delegation = unhex(&vector(&doc, "delegation.envelope"));
    let manifest = unhex(&vector(&doc, "manifest.envelope"));
    let file = b"# Hello\n";
    let info = Info {
        created: 1_780_000_000,
        peer: None,
        addrs: vec![],
        articles: 1,
        keys: 1,
        bytes: 8,
    };
    let mut w = Writer::new(Vec::new(), &info).unwrap();
    w.key(&delegation).unwrap();
    w.manifest(&manifest).unwrap();
    w.blob(&Hash::of(file), 8, &file[..]).unwrap();
    let (bundle, _) = w.finish().unwrap();
    assert_eq!(
        hex(&bundle),
        vector(&doc, "bundle.example"),
        "docs/protocol.md §10 bundle.example"
    );
    let mut r = Reader::new(&bundle[..]).unwrap();
    assert_eq!(r.next_frame().unwrap(), Some(Frame::Info(info)));
    assert_eq!(r.next_frame().unwrap(), Some(Frame::Key(delegation)));
    assert_eq!(r.next_frame().unwrap(), Some(Frame::Manifest(manifest)));
    assert_eq!(
        r.next_frame().unwrap(),
        Some(Frame::Blob {
            hash: Hash::of(file),
            size: 8
        })
    );
    let mut data = Vec::new();
    r.blob().read_to_end(&mut data).unwrap();
    assert_eq!(data, file);
    assert_eq!(r.next_frame().unwrap(), Some(Frame::End { intact: true }));
    assert_eq!(r.next_frame().unwrap(), None);
}
