//! Writes the seed corpora under `fuzz/corpus/<target>/` from the test
//! vectors of `docs/protocol.md` §10 and the shapes the tests use. Run
//! from `fuzz/`: `cargo run --bin make_seeds` (the files are committed;
//! run it again only when a format changes).

use std::{fs, path::Path};

use tamizdat_feed::{Feeds, Followed, Head};
use tamizdat_fuzz::{NOW, control, delegation, manifest, root, signing};
use tamizdat_node::wire::{Request, Status, write_header};
use tamizdat_sign::{Revocation, RevocationTarget, Signed, TrustState, Verifier};
use tamizdat_store::{ChunkNum, ChunkRanges, Hash};

/// `name = hex` lines of the vectors block in protocol.md.
fn vector(name: &str) -> Vec<u8> {
    let doc = fs::read_to_string("../docs/protocol.md").expect("docs/protocol.md");
    let line = doc
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("vector {name}"));
    hex::decode(line.split_whitespace().nth(1).unwrap()).unwrap()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn with(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

fn main() {
    let d = vector("delegation.envelope");
    let r = vector("revocation.envelope");
    let m = vector("manifest.envelope");
    // envelope: raw envelopes (even modes), and bodies to sign (odd modes:
    // 1 delegation, 3 revocation, 5 manifest), with the revocation known (0x40).
    write("envelope", "delegation", &with(0, &d));
    write("envelope", "revocation", &with(0, &r));
    write("envelope", "manifest", &with(0, &m));
    write("envelope", "manifest-revoked", &with(0x60, &m));
    write(
        "envelope",
        "delegation-body",
        &with(1, &d[23..d.len() - 64]),
    );
    write(
        "envelope",
        "revocation-body",
        &with(3, &r[23..r.len() - 64]),
    );
    write("envelope", "manifest-body", &with(5, &m[21..m.len() - 64]));
    write(
        "envelope",
        "manifest-body-revoked",
        &with(0x45, &m[21..m.len() - 64]),
    );
    let second = manifest(
        2,
        Some(Signed::<tamizdat_sign::Manifest>::decode(&m).unwrap().id()),
        &[
            ("index.md", b"# Two\n", "text/markdown"),
            ("a/b.png", b"png", "image/png"),
        ],
    );
    write("envelope", "manifest-root-signed", &with(0, second.bytes()));

    // trust_state: a state holding the vector feed and revocation; a follow list.
    let mut trust = TrustState::default();
    let vm = Verifier::new().verify(&m, &trust).unwrap();
    trust.accept(&vm, NOW).unwrap();
    let vs = Verifier::new().verify(second.bytes(), &trust);
    if let Ok(vs) = vs {
        let _ = trust.accept(&vs, NOW);
    }
    trust
        .add_revocation(&Signed::<Revocation>::decode(&r).unwrap())
        .unwrap();
    write("trust_state", "state", &trust.encode());
    write("trust_state", "empty", &TrustState::default().encode());
    let feeds = Feeds::new(
        TrustState::default(),
        vec![
            Followed {
                key: root().public(),
                name: Some("Vector News".into()),
                policy: tamizdat_feed::Policy {
                    max_bytes: Some(1 << 30),
                    max_age: None,
                },
            },
            Followed {
                key: signing().public(),
                name: None,
                policy: Default::default(),
            },
        ],
    );
    write("trust_state", "follows", &feeds.encode_follows());

    // keyfile
    write("keyfile", "plain", &vector("keyfile.plain"));
    let enc = tamizdat_sign::write_key_file_with(
        &signing(),
        tamizdat_sign::KeyKind::Signing,
        Some("fuzz"),
        (8, 1, 1),
    )
    .unwrap();
    write("keyfile", "encrypted-cheap", &enc);

    // bundle_reader and bundle_import: the vector bundle, and one with a
    // revocation, two articles and a duplicated key record.
    let example = vector("bundle.example");
    write("bundle_reader", "example", &example);
    write("bundle_import", "example", &example);
    let mut w = tamizdat_feed::bundle::Writer::new(
        Vec::new(),
        &tamizdat_feed::bundle::Info {
            created: NOW,
            peer: Some("12D3KooW".into()),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            articles: 2,
            keys: 3,
            bytes: 17,
        },
    )
    .unwrap();
    let other_rev = Signed::sign(
        Revocation {
            root: root().public(),
            target: RevocationTarget::Delegation([9; 32]),
            created: NOW,
            reason: "old".into(),
        },
        &root(),
    )
    .unwrap();
    w.key(other_rev.bytes()).unwrap();
    w.key(delegation().bytes()).unwrap();
    w.key(delegation().bytes()).unwrap();
    w.manifest(&m).unwrap();
    w.blob(&Hash::of(b"# Hello\n"), 8, &b"# Hello\n"[..])
        .unwrap();
    w.manifest(second.bytes()).unwrap();
    w.blob(&Hash::of(b"# Two\n"), 6, &b"# Two\n"[..]).unwrap();
    w.blob(&Hash::of(b"png"), 3, &b"png"[..]).unwrap();
    let (b, _) = w.finish().unwrap();
    write("bundle_reader", "two-articles", &b);
    write("bundle_import", "two-articles", &b);

    // blob_wire: requests and response headers.
    let h = Hash::of(b"# Hello\n");
    let mut buf = Vec::new();
    Request::size_proof(&h).write(&mut buf).unwrap();
    write("blob_wire", "size-proof", &buf);
    let ranges = ChunkRanges::new([0, 16, 32].into_iter().map(ChunkNum).collect()).unwrap();
    let mut buf = Vec::new();
    Request::ranges(&h, &ranges).write(&mut buf).unwrap();
    write("blob_wire", "ranges", &buf);
    let mut buf = Vec::new();
    write_header(&mut buf, Status::Ok, Some(1 << 20)).unwrap();
    write("blob_wire", "ok-header", &buf);
    let mut buf = Vec::new();
    write_header(&mut buf, Status::Busy, None).unwrap();
    write("blob_wire", "busy", &buf);

    // heads: an answer naming the next article, followed by that article.
    let heads = vec![
        Head {
            publisher: root().public(),
            feed: "main".into(),
            seq: 2,
            hash: second.id(),
        },
        Head {
            publisher: signing().public(),
            feed: "other".into(),
            seq: 9,
            hash: [7; 32],
        },
    ];
    let mut answer = postcard::to_stdvec(&heads).unwrap();
    let root_signed_first = manifest(1, None, &[("index.md", b"# Hello\n", "text/markdown")]);
    let next = manifest(
        2,
        Some(root_signed_first.id()),
        &[("index.md", b"# Two\n", "text/markdown")],
    );
    let heads_next = vec![Head {
        publisher: root().public(),
        feed: "main".into(),
        seq: 2,
        hash: next.id(),
    }];
    let mut answer_next = postcard::to_stdvec(&heads_next).unwrap();
    answer_next.extend_from_slice(next.bytes());
    write("heads", "answer-and-manifest", &answer_next);
    answer.extend_from_slice(second.bytes());
    write("heads", "answer", &answer);
    write(
        "heads",
        "revocation-ids",
        &postcard::to_stdvec(&vec![other_rev.id()]).unwrap(),
    );
    write(
        "heads",
        "asked",
        &postcard::to_stdvec(&vec![root().public()]).unwrap(),
    );

    // control: request frames and a data stream.
    let frame = |tag: u8, payload: &[u8]| {
        let mut v = Vec::new();
        control::write(&mut v, tag, payload).unwrap();
        v
    };
    for (name, req) in [
        ("ping", control::Request::Ping),
        (
            "add",
            control::Request::Add {
                size: Some(8),
                name: "index.md".into(),
            },
        ),
        (
            "state-put",
            control::Request::StatePut {
                name: "trust".into(),
                value: trust.encode(),
            },
        ),
        (
            "follow",
            control::Request::Follow {
                key: root().public(),
                name: Some("News".into()),
                policy: Default::default(),
            },
        ),
        (
            "fetch",
            control::Request::Fetch {
                hash: h,
                peers: vec!["/ip4/127.0.0.1/tcp/4001".into()],
                timeout_secs: 30,
                output: Some("/tmp/out".into()),
            },
        ),
        (
            "publish",
            control::Request::Publish {
                envelope: m.clone(),
            },
        ),
    ] {
        let mut v = frame(control::TAGS[1], &control::encode_request(&req).unwrap());
        if name == "add" {
            v.extend(frame(control::TAGS[0], b"# Hel"));
            v.extend(frame(control::TAGS[0], b"lo\n"));
            v.extend(frame(control::TAGS[4], b""));
        }
        write("control", name, &v);
    }
    let mut v = frame(control::TAGS[0], b"data");
    v.extend(frame(control::TAGS[2], b"the node failed"));
    write("control", "data-then-error", &v);

    // config: the committed examples.
    for f in fs::read_dir("../deploy/config").unwrap() {
        let f = f.unwrap().path();
        write(
            "config",
            f.file_name().unwrap().to_str().unwrap(),
            &fs::read(&f).unwrap(),
        );
    }
    write(
        "config",
        "small",
        b"[store]\nquota = \"20 GiB\"\n[node]\nlisten = [\"/ip4/0.0.0.0/tcp/4001\"]\nprofile = \"server\"\n\
          [gateway]\naddr = \"127.0.0.1:8080\"\ntrusted_proxies = [\"127.0.0.1\"]\npublic_url = \"https://news.example.org\"\n",
    );

    // render: article texts (mode 0 markdown, 1 HTML, 2 plain text).
    let md = "# Свобода слова\n\nТекст статьи по-русски. ![фото](photo.png)\n\n\
              <script>window.__pwned = 1</script>\n<img src=\"x\" onerror=\"window.__pwned = 2\">\n\
              <img src=\"https://tracker.example/pixel.gif\">\n\n\
              [Источник](https://example.org/source) and [local](./photo.png) and \
              [report](docs/report%201.pdf)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n";
    write("render", "markdown", &with(0, md.as_bytes()));
    write(
        "render",
        "html",
        &with(1, b"<p>Hi <a href=\"photo.png\" onclick=\"x()\">photo</a><iframe src=//x></iframe><video poster=http://x/p.png src=photo.png></video></p>"),
    );
    write("render", "plain", &with(2, b"plain <b>text</b>\n"));
    println!("seeds written under corpus/");
}
