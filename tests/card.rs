//! Publisher cards through the real binary: an outlet makes one, a newcomer
//! pastes it into `follow` and receives the outlet's articles with nothing
//! else configured; bad cards are refused and change nothing.

mod common;

use std::fs;

use common::{BIN, Env, node_command, sigterm, start_node, wait_verified};
use tamizdat_sign::{Card, SecretKey, Signed, card_from_line, card_to_line};

/// A data dir with an unencrypted root key `outlet`; returns its public key.
fn outlet(env: &Env) -> String {
    env.ok(&["key", "new", "--name", "outlet", "--no-passphrase"])
        .trim()
        .to_owned()
}

fn new_card(env: &Env, addrs: &[&str]) -> String {
    let mut args = vec![
        "card",
        "new",
        "--root",
        "outlet",
        "--name",
        "Radio Azadi",
        "--no-passphrase",
    ];
    for a in addrs {
        args.extend(["--addr", a]);
    }
    env.ok(&args).trim().to_owned()
}

const ADDRS: [&str; 2] = [
    "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
    "/dns4/mirror.example.org/udp/4001/quic-v1",
];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The same envelope bytes, written as a line with a fresh checksum.
fn line_of(envelope: &[u8]) -> String {
    let mut bytes = envelope.to_vec();
    bytes.extend_from_slice(&blake3::hash(envelope).as_bytes()[..4]);
    format!(
        "tamizdat1{}",
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    )
}

#[test]
fn an_outlet_makes_a_card_that_shows_checks_and_draws_as_a_qr_code() {
    let env = Env::new();
    let root = outlet(&env);
    let line = new_card(&env, &ADDRS);
    assert!(line.starts_with("tamizdat1"), "{line}");
    assert!(!line.contains(char::is_whitespace));
    assert!(
        line.len() < 700,
        "one line for a chat message: {}",
        line.len()
    );

    let fingerprint = env.ok(&["key", "show", "outlet"]);
    let shown = env.ok(&["card", "show", &line]);
    assert!(shown.contains("Radio Azadi"), "{shown}");
    assert!(shown.contains(&root), "{shown}");
    for a in ADDRS {
        assert!(shown.contains(a), "{shown}");
    }
    assert!(shown.contains("state        valid"), "{shown}");
    let fp = shown
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint  "))
        .unwrap();
    assert!(fingerprint.contains(fp), "{fingerprint} / {fp}");

    // Scripts read JSON; a QR code reader hands back upper case.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["card", "show", "--json", &line])).unwrap();
    assert_eq!(json["root"], root.as_str());
    assert_eq!(json["valid"], true);
    assert_eq!(json["addrs"][1], ADDRS[1]);
    assert!(
        env.ok(&["card", "check", &line.to_ascii_uppercase()])
            .starts_with("ok: ")
    );
    let file = env.write("outlet.card", format!("{line}\n").as_bytes());
    assert!(
        env.ok(&["card", "check", file.to_str().unwrap()])
            .starts_with("ok: ")
    );

    let svg = env.work().join("card.svg");
    let out = env.run(&[
        "card",
        "show",
        &line,
        "--qr",
        "--qr-svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let svg = fs::read_to_string(svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    let terminal = String::from_utf8(out.stderr).unwrap();
    assert!(
        terminal.lines().count() > 30 && terminal.contains('\u{2588}'),
        "a QR code drawn with block characters: {terminal}"
    );

    // A second card made here supersedes the first, even within a second.
    let second = new_card(&env, &ADDRS[..1]);
    let (a, b) = (
        card_from_line(&line).unwrap(),
        card_from_line(&second).unwrap(),
    );
    assert!(b.body().issued > a.body().issued);

    // An address nobody outside can reach is made a card of, with a warning;
    // a public one is not warned about.
    let args = |addr: &'static str| {
        [
            "card",
            "new",
            "--root",
            "outlet",
            "--name",
            "x",
            "--addr",
            addr,
            "--no-passphrase",
        ]
    };
    let out = env.run(&args("/ip4/192.168.1.5/tcp/4001"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback or private"));
    let out = env.run(&args(ADDRS[1]));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));

    // A signing key cannot make a card.
    env.ok(&[
        "key",
        "delegate",
        "--root",
        "outlet",
        "--name",
        "laptop",
        "--valid-for",
        "30d",
        "--no-passphrase",
    ]);
    let err = env.fails(&[
        "card",
        "new",
        "--root",
        "laptop",
        "--name",
        "x",
        "--addr",
        ADDRS[1],
        "--no-passphrase",
    ]);
    assert!(err.contains("root key"), "{err}");
}

#[test]
fn bad_cards_are_refused_with_a_clear_error_and_nothing_changes() {
    let outlet_env = Env::new();
    outlet(&outlet_env);
    let old = new_card(&outlet_env, &ADDRS);
    let new = new_card(&outlet_env, &ADDRS[..1]);

    let reader = Env::new();
    reader.ok(&["follow", &new]);
    // The card is kept in the store, under the key objects' pin.
    let card_hash = tamizdat_store::Hash::of(card_from_line(&new).unwrap().bytes()).to_string();
    let before = reader.ok(&["pins"]);
    assert!(before.contains(&card_hash), "the card pinned: {before}");
    let following = reader.ok(&["following"]);
    assert!(
        following.contains("Radio Azadi"),
        "the card's name: {following}"
    );

    // A forged card: the same body, the signature changed, a valid checksum.
    let envelope = card_from_line(&new).unwrap().bytes().to_vec();
    let mut forged = envelope.clone();
    *forged.last_mut().unwrap() ^= 1;
    // Signed by a key other than the root it names.
    let other = SecretKey::generate().unwrap();
    let mut body = card_from_line(&new).unwrap().body().clone();
    let genuine_root = body.root;
    body.root = other.public();
    let signed = Signed::sign(body, &other).unwrap();
    let mut swapped = signed.bytes().to_vec();
    // Put the genuine root back in place of the signer's key.
    let at = swapped
        .windows(32)
        .position(|w| w == other.public().as_bytes())
        .unwrap();
    swapped[at..at + 32].copy_from_slice(genuine_root.as_bytes());
    // Expired: signed properly, but its window is over.
    let key = SecretKey::generate().unwrap();
    let expired = card_to_line(
        &Signed::sign(
            Card {
                root: key.public(),
                name: "Old News".into(),
                addrs: vec![ADDRS[1].into()],
                issued: now() - 100 * 86400,
                not_before: now() - 100 * 86400,
                not_after: now() - 86400,
            },
            &key,
        )
        .unwrap(),
    );
    let mut typo = new.clone().into_bytes();
    typo[40] = if typo[40] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (line_of(&forged), "forged"),
        (line_of(&swapped), "forged"),
        (expired, "expired"),
        (format!("tamizdat1{}", "a".repeat(3000)), "limit"),
        ("tamizdat1hello world!".into(), "damaged"),
        (typo, "checksum"),
        (new[..new.len() - 20].to_owned(), "damaged"),
        ("not-a-card-or-key".into(), "neither a publisher key"),
        (old.clone(), "an old card is never taken over a newer one"),
    ];
    for (card, why) in &cases {
        let err = reader.fails(&["follow", card]);
        assert!(err.contains(why), "{why}: {err}");
        if *why != "neither a publisher key" && !why.starts_with("an old") {
            let err = reader.fails(&["card", "check", card]);
            assert!(err.contains(why), "check, {why}: {err}");
        }
        assert_eq!(reader.ok(&["pins"]), before, "{why}: the kept card changed");
        assert_eq!(reader.ok(&["following"]), following, "{why}");
    }
    // The old card is genuine: `check` itself accepts it.
    assert!(reader.ok(&["card", "check", &old]).starts_with("ok: "));

    // Unfollowing drops the card: the node no longer joins through it.
    let key = card_from_line(&new).unwrap().body().root.to_string();
    reader.ok(&["unfollow", &key]);
    assert!(!reader.ok(&["pins"]).contains(&card_hash));
    // And the old card is no longer refused as older than a kept one.
    reader.ok(&["follow", &old]);
}

#[test]
fn a_fresh_volunteer_with_only_the_outlets_card_receives_its_articles() {
    let newsroom = Env::new();
    outlet(&newsroom);
    std::fs::create_dir_all(newsroom.work().join("story")).unwrap();
    newsroom.write("story/index.md", "# Новости\n\nСегодня.\n".as_bytes());
    let manifest = newsroom
        .ok(&["publish", "story", "--key", "outlet", "--no-passphrase"])
        .trim()
        .to_owned();
    let mut desk = start_node(node_command(BIN, &newsroom));
    let line = new_card(&newsroom, &[&desk.addr]);

    // The volunteer: an empty data directory, one line, and `node`.
    let volunteer = Env::new();
    volunteer.ok(&["follow", &line]);
    let mut home = start_node(node_command(BIN, &volunteer));
    // The volunteer's gateway shows the card, for readers to pass on.
    let root = card_from_line(&line).unwrap().body().root.to_string();
    let (code, page) = common::http_get(&home.gateway, &format!("/p/{root}"));
    assert_eq!(code, 200);
    assert!(
        page.contains(&line),
        "the card on the publisher's page: {page}"
    );
    assert!(page.contains("<svg"), "and its QR code");
    wait_verified(&volunteer, &manifest);
    sigterm(&mut home);
    sigterm(&mut desk);
}

#[test]
fn a_running_node_told_a_card_joins_through_it_at_once() {
    let newsroom = Env::new();
    outlet(&newsroom);
    newsroom.write("story.md", "# Вести\n\nЗавтра.\n".as_bytes());
    let manifest = newsroom
        .ok(&["publish", "story.md", "--key", "outlet", "--no-passphrase"])
        .trim()
        .to_owned();
    let mut desk = start_node(node_command(BIN, &newsroom));
    let line = new_card(&newsroom, &[&desk.addr]);

    // A volunteer's node already runs, alone; the card reaches it through
    // the control socket, and it dials the card's addresses now.
    let volunteer = Env::new();
    let mut home = start_node(node_command(BIN, &volunteer));
    let out = volunteer.run(&["follow", &line]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 answered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_verified(&volunteer, &manifest);
    sigterm(&mut home);
    sigterm(&mut desk);
}

/// Waits until the publisher's page on `gateway` shows `line`.
fn wait_card_shown(gateway: &str, root: &str, line: &str, who: &str) {
    let start = std::time::Instant::now();
    loop {
        let (code, page) = common::http_get(gateway, &format!("/p/{root}"));
        if code == 200 && page.contains(line) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{who}: the newer card never reached the page"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_newer_card_reaches_followers_by_gossip_by_exchange_and_by_bundle() {
    let newsroom = Env::new();
    outlet(&newsroom);
    newsroom.write("story.md", "# Вести\n\nЗавтра.\n".as_bytes());
    let manifest = newsroom
        .ok(&["publish", "story.md", "--key", "outlet", "--no-passphrase"])
        .trim()
        .to_owned();
    let mut desk = start_node(node_command(BIN, &newsroom));
    let first = new_card(&newsroom, &[&desk.addr]);
    let root = card_from_line(&first).unwrap().body().root.to_string();

    // A follower online when the outlet makes a new card gets it by gossip.
    let online = Env::new();
    online.ok(&["follow", &first]);
    let mut home = start_node(node_command(BIN, &online));
    wait_verified(&online, &manifest);
    let second = new_card(&newsroom, &[&desk.addr, ADDRS[1]]);
    assert_ne!(first, second);
    wait_card_shown(&desk.gateway, &root, &second, "the outlet's own node");
    wait_card_shown(&home.gateway, &root, &second, "the follower online");

    // One that joins later, with the first card only, gets the newer one
    // from the peers it meets.
    let late = Env::new();
    late.ok(&["follow", &first]);
    let mut late_node = start_node(node_command(BIN, &late));
    wait_card_shown(&late_node.gateway, &root, &second, "the late follower");
    sigterm(&mut late_node);
    // It kept the newer card: the first one is now refused as older.
    let err = late.fails(&["follow", &first]);
    assert!(err.contains("an old card is never taken"), "{err}");

    // A reader far away gets the card with the articles, in a bundle.
    let bundle = newsroom.work().join("news.tmz");
    newsroom.ok(&["export", "-o", bundle.to_str().unwrap()]);
    // And one who gets the folder of pages finds the card on its index.
    let site = newsroom.work().join("site");
    newsroom.ok(&["export", "--html", site.to_str().unwrap()]);
    let index = fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains(&second), "the newest card on the index");
    assert!(!index.contains(&first));
    assert!(index.contains("<svg"), "with its QR code");
    sigterm(&mut home);
    sigterm(&mut desk);
    let reader = Env::new();
    reader.ok(&["follow", &first]);
    let out = reader.ok(&["import", bundle.to_str().unwrap(), "--json"]);
    assert!(out.contains("\"status\":\"card\""), "{out}");
    let err = reader.fails(&["follow", &first]);
    assert!(err.contains("an old card is never taken"), "{err}");
    reader.ok(&["follow", &second]);
}

#[test]
fn a_volunteers_own_card_lets_a_friend_join_through_its_node() {
    let anna = Env::new();
    let mut node = start_node(node_command(BIN, &anna));
    let (addr, id) = node.addr.rsplit_once("/p2p/").unwrap();
    // Another node's id on an address: refused, it would send friends
    // elsewhere.
    let other = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let err = anna.fails(&[
        "card",
        "new",
        "--node",
        "--name",
        "Anna",
        "--addr",
        &format!("{addr}/p2p/{other}"),
    ]);
    assert!(err.contains("not this node"), "{err}");
    // Without /p2p/ the node's own id is added.
    let line = anna
        .ok(&["card", "new", "--node", "--name", "Anna", "--addr", addr])
        .trim()
        .to_owned();
    let card = card_from_line(&line).unwrap();
    assert_eq!(card.body().addrs, vec![node.addr.clone()]);
    let shown = anna.ok(&["card", "show", &line]);
    assert!(
        shown.contains(&format!("a volunteer's node ({id})")),
        "{shown}"
    );

    // A friend pastes it: nobody is followed, and their node joins.
    let friend = Env::new();
    let out = friend.run(&["follow", &line]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("follows no outlet"), "{said}");
    assert!(
        friend.ok(&["following", "--json"]).trim().is_empty(),
        "follows nobody"
    );
    let mut theirs = start_node(node_command(BIN, &friend));
    let start = std::time::Instant::now();
    loop {
        let s: serde_json::Value = serde_json::from_str(&friend.ok(&["status", "--json"])).unwrap();
        if s["connected_peers"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never joined through the volunteer's card: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    sigterm(&mut theirs);
    sigterm(&mut node);
}
