//! The test vectors printed in `docs/protocol.md` are what this code
//! produces from fixed seeds. Another implementation can check itself
//! against the same values.

use std::collections::BTreeMap;

use tamizdat_sign::{
    Card, Delegation, Entry, KeyKind, Manifest, Revocation, RevocationTarget, SecretKey, Signed,
    TrustState, Verifier, read_key_file, write_key_file,
};

fn seed(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}

fn vectors() -> BTreeMap<&'static str, String> {
    fn h(b: impl AsRef<[u8]>) -> String {
        hex::encode(b)
    }
    let root = SecretKey::from_seed(&seed(0x00));
    let signing = SecretKey::from_seed(&seed(0x20));
    let delegation = Signed::sign(
        Delegation {
            root: root.public(),
            key: signing.public(),
            not_before: 1_767_225_600, // 2026-01-01T00:00:00Z
            not_after: 1_798_761_600,  // 2027-01-01T00:00:00Z
            feed: Some("main".into()),
        },
        &root,
    )
    .unwrap();
    let revocation = Signed::sign(
        Revocation {
            root: root.public(),
            target: RevocationTarget::Key(signing.public()),
            created: 1_780_000_000,
            reason: "key compromised".into(),
        },
        &root,
    )
    .unwrap();
    let body = b"# Hello\n";
    let manifest = Signed::sign(
        Manifest {
            publisher: root.public(),
            signer: signing.public(),
            delegation: Some(delegation.bytes().to_vec()),
            feed: "main".into(),
            seq: 1,
            prev: None,
            created: 1_780_000_000,
            title: "Hello".into(),
            lang: "en".into(),
            summary: None,
            supersedes: None,
            entries: vec![Entry {
                path: "index.md".into(),
                hash: *blake3::hash(body).as_bytes(),
                size: body.len() as u64,
                media_type: "text/markdown".into(),
            }],
        },
        &signing,
    )
    .unwrap();
    let card = Signed::sign(
        Card {
            root: root.public(),
            name: "Hello News".into(),
            addrs: vec![
                "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                    .into(),
                "/dns4/mirror.example.org/udp/4001/quic-v1".into(),
            ],
            issued: 1_767_225_600,
            not_before: 1_767_225_600,
            not_after: 1_798_761_600,
        },
        &root,
    )
    .unwrap();
    let card_line = tamizdat_sign::card_to_line(&card);
    assert_eq!(
        tamizdat_sign::read_card(&card_line, 1_780_000_000).unwrap(),
        card
    );
    let keyfile = write_key_file(&root, KeyKind::Root, None).unwrap();
    let mut v = BTreeMap::new();
    v.insert("root.seed", h(seed(0x00)));
    v.insert("root.public", root.public().to_string());
    v.insert("root.fingerprint", root.public().fingerprint());
    v.insert("signing.seed", h(seed(0x20)));
    v.insert("signing.public", signing.public().to_string());
    v.insert("delegation.envelope", h(delegation.bytes()));
    v.insert("delegation.signature", h(delegation.signature().to_bytes()));
    v.insert("delegation.id", h(delegation.id()));
    v.insert("revocation.envelope", h(revocation.bytes()));
    v.insert("revocation.signature", h(revocation.signature().to_bytes()));
    v.insert("revocation.id", h(revocation.id()));
    v.insert("manifest.envelope", h(manifest.bytes()));
    v.insert("manifest.signature", h(manifest.signature().to_bytes()));
    v.insert("manifest.id", h(manifest.id()));
    v.insert("keyfile.plain", h(&keyfile));
    v.insert("card.envelope", h(card.bytes()));
    v.insert("card.line", card_line);
    // The vectors are themselves valid objects.
    let verified = Verifier::new()
        .verify(manifest.bytes(), &TrustState::default())
        .unwrap();
    assert_eq!(verified.id(), manifest.id());
    assert_eq!(
        read_key_file(&keyfile, None).unwrap().1.public(),
        root.public()
    );
    v
}

#[test]
fn protocol_doc_vectors_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let block = doc
        .split("<!-- vectors:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- vectors:end -->").next())
        .expect("docs/protocol.md has a vectors block");
    let in_doc: BTreeMap<&str, String> = block
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            let value = parts.next()?;
            (name.contains('.') && !name.starts_with('`')).then(|| (name, value.to_owned()))
        })
        .collect();
    let want = vectors();
    if in_doc != want {
        let mut expected = String::new();
        for (k, v) in &want {
            expected.push_str(&format!("{k:<22} {v}\n"));
        }
        panic!("docs/protocol.md vectors differ from the code; they should read:\n{expected}");
    }
}
