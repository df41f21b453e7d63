//! The signing rules, one named test per way a forgery or replay can come.

use proptest::prelude::*;
use tamizdat_sign::{
    DecodeError, Delegation, Entry, FeedError, KeyError, KeyKind, MAX_MANIFEST_LEN, Manifest,
    PublicKey, Revocation, RevocationTarget, SecretKey, Signed, TrustState, Verdict, Verifier,
    VerifyError, read_key_file, write_key_file_with,
};

const NOW: u64 = 1_780_000_000;
const DAY: u64 = 86_400;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn delegation(root: &SecretKey, signer: &SecretKey, feed: Option<&str>) -> Vec<u8> {
    Signed::sign(
        Delegation {
            root: root.public(),
            key: signer.public(),
            not_before: NOW - 10 * DAY,
            not_after: NOW + 10 * DAY,
            feed: feed.map(str::to_owned),
        },
        root,
    )
    .unwrap()
    .bytes()
    .to_vec()
}

fn manifest(root: &SecretKey, signer: &SecretKey, seq: u64, prev: Option<[u8; 32]>) -> Manifest {
    Manifest {
        publisher: root.public(),
        signer: signer.public(),
        delegation: (root.public() != signer.public()).then(|| delegation(root, signer, None)),
        feed: "main".into(),
        seq,
        prev,
        created: NOW + seq,
        title: format!("Article {seq}"),
        lang: "ru".into(),
        summary: Some("Что произошло".into()),
        supersedes: None,
        entries: vec![Entry {
            path: "index.md".into(),
            hash: *blake3::hash(format!("body {seq}").as_bytes()).as_bytes(),
            size: 7,
            media_type: "text/markdown".into(),
        }],
    }
}

fn signed(root: &SecretKey, signer: &SecretKey, seq: u64, prev: Option<[u8; 32]>) -> Vec<u8> {
    Signed::sign(manifest(root, signer, seq, prev), signer)
        .unwrap()
        .bytes()
        .to_vec()
}

fn verify(bytes: &[u8]) -> Result<tamizdat_sign::VerifiedManifest, VerifyError> {
    Verifier::new().verify(bytes, &TrustState::default())
}

#[test]
fn a_good_manifest_verifies_by_root_and_by_delegate() {
    let (root, signer) = (key(1), key(2));
    let by_root = verify(&signed(&root, &root, 1, None)).unwrap();
    assert_eq!(by_root.manifest().publisher, root.public());
    assert!(by_root.delegation().is_none());
    let by_delegate = verify(&signed(&root, &signer, 1, None)).unwrap();
    assert_eq!(by_delegate.manifest().signer, signer.public());
    assert_eq!(by_delegate.delegation().unwrap().body().root, root.public());
}

#[test]
fn tampered_payload_byte_is_rejected() {
    let (root, signer) = (key(1), key(2));
    let good = signed(&root, &signer, 1, None);
    // Every byte of the body (after the 21-byte header, before the signature).
    for i in 21..good.len() - 64 {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert!(verify(&bad).is_err(), "flip at byte {i} was accepted");
    }
}

#[test]
fn tampered_header_byte_is_rejected() {
    let good = signed(&key(1), &key(1), 1, None);
    for i in 0..21 {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        assert!(
            matches!(verify(&bad), Err(VerifyError::Decode(_))),
            "header byte {i}"
        );
    }
}

#[test]
fn tampered_signature_byte_is_rejected() {
    let good = signed(&key(1), &key(1), 1, None);
    for i in good.len() - 64..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x80;
        assert!(
            matches!(verify(&bad), Err(VerifyError::Key(_))),
            "signature byte {i}"
        );
    }
}

#[test]
fn valid_signature_by_undelegated_key_is_rejected() {
    let (root, mallory) = (key(1), key(9));
    // Mallory signs correctly, claims the publisher, attaches no delegation.
    let mut m = manifest(&root, &mallory, 1, None);
    m.delegation = None;
    let bytes = Signed::sign(m, &mallory).unwrap().bytes().to_vec();
    assert!(matches!(
        verify(&bytes),
        Err(VerifyError::NotDelegated { .. })
    ));
    // Or attaches a delegation that Mallory's own "root" signed.
    let mut m = manifest(&root, &mallory, 1, None);
    m.delegation = Some(delegation(&key(8), &mallory, None));
    let bytes = Signed::sign(m, &mallory).unwrap().bytes().to_vec();
    assert!(matches!(
        verify(&bytes),
        Err(VerifyError::DelegationMismatch(_))
    ));
    // Or forges the root's delegation signature.
    let mut forged = delegation(&root, &mallory, None);
    let n = forged.len();
    forged[n - 1] ^= 1;
    let mut m = manifest(&root, &mallory, 1, None);
    m.delegation = Some(forged);
    let bytes = Signed::sign(m, &mallory).unwrap().bytes().to_vec();
    assert!(
        matches!(verify(&bytes), Err(VerifyError::Key(KeyError::BadSignature(k))) if k == root.public())
    );
}

#[test]
fn weak_public_key_is_rejected() {
    // The identity point: every signature "verifies" under it with a lax check.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = PublicKey::from_bytes(identity);
    let signer = key(3);
    let mut m = manifest(&signer, &signer, 1, None);
    m.publisher = weak;
    m.delegation = Some(vec![0; 10]);
    let bytes = Signed::sign(m, &signer).unwrap().bytes().to_vec();
    assert!(verify(&bytes).is_err());
    // A root-signed manifest claiming the weak key as signer.
    let mut m = manifest(&signer, &signer, 1, None);
    m.publisher = weak;
    m.signer = weak;
    let mut bytes = Signed::sign(m, &signer).unwrap().bytes().to_vec();
    // The (identity R, zero S) signature that lax verifiers accept.
    let n = bytes.len();
    bytes[n - 64..].fill(0);
    bytes[n - 64] = 1;
    assert!(matches!(
        verify(&bytes),
        Err(VerifyError::Key(KeyError::Weak(_)))
    ));
}

#[test]
fn malleated_signature_is_rejected() {
    // s' = s + L is the same signature to a lax verifier: it must not verify.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let good = signed(&key(1), &key(1), 1, None);
    let mut bad = good.clone();
    let n = bad.len();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = bad[n - 32 + i] as u16 + L[i] as u16 + carry;
        bad[n - 32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert!(verify(&good).is_ok());
    assert!(matches!(verify(&bad), Err(VerifyError::Key(_))));
}

#[test]
fn signature_under_another_context_is_rejected() {
    use ed25519_dalek::Signer;
    let root = key(1);
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let body = postcard::to_stdvec(&manifest(&root, &root, 1, None)).unwrap();
    let mut envelope = b"tamizdat/manifest/v1\n".to_vec();
    envelope.extend_from_slice(&body);
    let n = envelope.len();
    envelope.extend_from_slice(&[0; 64]);
    // The right key over the same body, but under another object's context,
    // under no context at all, and under another format version.
    for context in [
        &b"tamizdat/delegation/v1\n"[..],
        b"",
        b"tamizdat/manifest/v2\n",
    ] {
        let mut msg = context.to_vec();
        msg.extend_from_slice(&body);
        envelope[n..].copy_from_slice(&dalek.sign(&msg).to_bytes());
        assert!(
            matches!(
                verify(&envelope),
                Err(VerifyError::Key(KeyError::BadSignature(_)))
            ),
            "context {:?}",
            String::from_utf8_lossy(context)
        );
    }
    // Under its own context the same construction verifies.
    let mut msg = b"tamizdat/manifest/v1\n".to_vec();
    msg.extend_from_slice(&body);
    envelope[n..].copy_from_slice(&dalek.sign(&msg).to_bytes());
    assert!(verify(&envelope).is_ok());
}

#[test]
fn other_format_version_is_rejected() {
    let good = signed(&key(1), &key(1), 1, None);
    let mut v2 = good.clone();
    v2[19] = b'2';
    match verify(&v2) {
        Err(VerifyError::Decode(DecodeError::UnknownVersion { found, .. })) => {
            assert_eq!(found, "v2")
        }
        other => panic!("{other:?}"),
    }
    let delegation_bytes = delegation(&key(1), &key(2), None);
    assert!(matches!(
        verify(&delegation_bytes),
        Err(VerifyError::Decode(DecodeError::WrongType { .. }))
    ));
}

#[test]
fn truncated_input_and_trailing_bytes_are_rejected() {
    let good = signed(&key(1), &key(1), 1, None);
    for len in [0, 5, 21, 40, good.len() - 65, good.len() - 1] {
        assert!(verify(&good[..len]).is_err(), "truncated to {len}");
    }
    let mut long = good.clone();
    long.insert(good.len() - 64, 0);
    assert!(matches!(
        verify(&long),
        Err(VerifyError::Decode(DecodeError::TrailingBytes(_)))
    ));
    let mut appended = good.clone();
    appended.push(0);
    assert!(verify(&appended).is_err());
}

#[test]
fn manifest_over_the_size_limit_is_refused() {
    let root = key(1);
    let mut m = manifest(&root, &root, 1, None);
    m.entries = (0..900)
        .map(|i| Entry {
            path: format!("{i:0>70}.bin"),
            hash: [7; 32],
            size: 1,
            media_type: "application/octet-stream".into(),
        })
        .collect();
    assert!(matches!(
        Signed::sign(m, &root),
        Err(DecodeError::TooLarge {
            max: MAX_MANIFEST_LEN,
            ..
        })
    ));
    let huge = vec![0u8; MAX_MANIFEST_LEN + 1];
    assert!(matches!(
        verify(&huge),
        Err(VerifyError::Decode(DecodeError::TooLarge { .. }))
    ));
}

#[test]
fn unsafe_entry_paths_are_refused() {
    let root = key(1);
    for path in ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "", "x\n"] {
        let mut m = manifest(&root, &root, 1, None);
        m.entries[0].path = path.into();
        assert!(Signed::sign(m, &root).is_err(), "{path:?}");
    }
}

fn accept(state: &mut TrustState, bytes: &[u8]) -> Result<Verdict, FeedError> {
    let v = verify(bytes).unwrap();
    state.accept(&v, NOW + 100)
}

#[test]
fn replay_of_an_older_manifest_is_refused() {
    let root = key(1);
    let mut state = TrustState::default();
    let m1 = signed(&root, &root, 1, None);
    let id1 = *blake3::hash(&m1).as_bytes();
    assert_eq!(accept(&mut state, &m1).unwrap(), Verdict::First);
    let m2 = signed(&root, &root, 2, Some(id1));
    let id2 = *blake3::hash(&m2).as_bytes();
    assert_eq!(accept(&mut state, &m2).unwrap(), Verdict::Next);
    let m3 = signed(&root, &root, 3, Some(id2));
    assert_eq!(accept(&mut state, &m3).unwrap(), Verdict::Next);
    // Same manifest again: harmless duplicate.
    assert_eq!(accept(&mut state, &m2).unwrap(), Verdict::Duplicate);
    // The state survives a restart, and so does the refusal.
    let mut restored = TrustState::decode(&state.encode()).unwrap();
    assert_eq!(restored, state);
    // A re-signed older manifest with a fresh body: a rollback.
    let mut old = manifest(&root, &root, 2, Some(id1));
    old.title = "Replayed".into();
    let old = Signed::sign(old, &root).unwrap().bytes().to_vec();
    assert!(matches!(
        accept(&mut restored, &old),
        Err(FeedError::Equivocation { seq: 2, .. })
    ));
    // Far behind the remembered window: a replay.
    let mut long = TrustState::default();
    let mut prev = None;
    for seq in 1..=300u64 {
        let b = signed(&root, &root, seq, prev);
        prev = Some(*blake3::hash(&b).as_bytes());
        long.accept(&verify(&b).unwrap(), NOW + 1000).unwrap();
    }
    let mut state1 = TrustState::default();
    let m1 = signed(&root, &root, 1, None);
    state1.accept(&verify(&m1).unwrap(), NOW).unwrap();
    assert!(matches!(
        long.check(&verify(&m1).unwrap(), NOW + 1000),
        Err(FeedError::Replay {
            head: 300,
            seq: 1,
            ..
        })
    ));
}

#[test]
fn same_sequence_with_different_content_is_equivocation() {
    let root = key(1);
    let mut state = TrustState::default();
    accept(&mut state, &signed(&root, &root, 1, None)).unwrap();
    let mut other = manifest(&root, &root, 1, None);
    other.title = "Another story".into();
    let other = Signed::sign(other, &root).unwrap().bytes().to_vec();
    let err = accept(&mut state, &other).unwrap_err();
    assert!(matches!(err, FeedError::Equivocation { seq: 1, .. }));
    assert!(err.to_string().contains("EQUIVOCATION"), "{err}");
}

#[test]
fn forks_time_travel_absurd_jumps_and_the_future_are_refused() {
    let root = key(1);
    let mut state = TrustState::default();
    let m1 = signed(&root, &root, 1, None);
    accept(&mut state, &m1).unwrap();
    let wrong_prev = signed(&root, &root, 2, Some([9; 32]));
    assert!(matches!(
        accept(&mut state, &wrong_prev),
        Err(FeedError::Fork { .. })
    ));
    let mut jump = manifest(&root, &root, 1 + tamizdat_sign::MAX_JUMP + 1, Some([1; 32]));
    jump.created = NOW + 2;
    let jump = Signed::sign(jump, &root).unwrap().bytes().to_vec();
    assert!(matches!(
        accept(&mut state, &jump),
        Err(FeedError::AbsurdJump { .. })
    ));
    let mut past = manifest(&root, &root, 2, Some(*blake3::hash(&m1).as_bytes()));
    past.created = NOW - 5;
    let past = Signed::sign(past, &root).unwrap().bytes().to_vec();
    assert!(matches!(
        accept(&mut state, &past),
        Err(FeedError::TimeTravel { .. })
    ));
    let mut future = manifest(&root, &root, 2, Some(*blake3::hash(&m1).as_bytes()));
    future.created = NOW + 10 * DAY;
    let future = Signed::sign(future, &root).unwrap().bytes().to_vec();
    assert!(matches!(
        accept(&mut state, &future),
        Err(FeedError::FromFuture { .. })
    ));
    // A gap is accepted ahead, and the missing one backfills when it links.
    let m2 = signed(&root, &root, 2, Some(*blake3::hash(&m1).as_bytes()));
    let m3 = signed(&root, &root, 3, Some(*blake3::hash(&m2).as_bytes()));
    assert_eq!(
        accept(&mut state, &m3).unwrap(),
        Verdict::Ahead { missing: 1 }
    );
    // The gap is known by the id the successor names, until it is filled.
    let gaps = |state: &TrustState| -> Vec<(u64, [u8; 32])> {
        state.head(&root.public(), "main").unwrap().gaps().collect()
    };
    assert_eq!(gaps(&state), vec![(2, *blake3::hash(&m2).as_bytes())]);
    assert_eq!(accept(&mut state, &m2).unwrap(), Verdict::Backfill);
    assert!(gaps(&state).is_empty());
}

#[test]
fn what_lies_before_the_first_manifest_seen_is_not_a_gap() {
    let root = key(1);
    let m4 = signed(&root, &root, 4, Some([7; 32]));
    let mut state = TrustState::default();
    assert_eq!(accept(&mut state, &m4).unwrap(), Verdict::First);
    assert_eq!(
        state.head(&root.public(), "main").unwrap().gaps().count(),
        0
    );
}

fn delegated_at(window: (u64, u64), created: u64) -> Result<(), VerifyError> {
    let (root, signer) = (key(1), key(2));
    let d = Signed::sign(
        Delegation {
            root: root.public(),
            key: signer.public(),
            not_before: window.0,
            not_after: window.1,
            feed: None,
        },
        &root,
    )
    .unwrap();
    let mut m = manifest(&root, &signer, 1, None);
    m.delegation = Some(d.bytes().to_vec());
    m.created = created;
    verify(Signed::sign(m, &signer).unwrap().bytes()).map(|_| ())
}

#[test]
fn delegation_expired_at_signing_time_is_rejected() {
    assert!(delegated_at((NOW - 10, NOW + 10), NOW).is_ok());
    assert!(matches!(
        delegated_at((NOW - 10, NOW), NOW + 1),
        Err(VerifyError::OutsideDelegation { .. })
    ));
}

#[test]
fn delegation_not_yet_valid_at_signing_time_is_rejected() {
    assert!(matches!(
        delegated_at((NOW + 1, NOW + 10), NOW),
        Err(VerifyError::OutsideDelegation { .. })
    ));
}

#[test]
fn delegation_for_another_feed_is_rejected() {
    let (root, signer) = (key(1), key(2));
    let mut m = manifest(&root, &signer, 1, None);
    m.delegation = Some(delegation(&root, &signer, Some("sport")));
    let bytes = Signed::sign(m, &signer).unwrap().bytes().to_vec();
    assert!(matches!(verify(&bytes), Err(VerifyError::WrongFeed { .. })));
}

#[test]
fn revoked_signing_key_is_rejected() {
    let (root, signer) = (key(1), key(2));
    let bytes = signed(&root, &signer, 1, None);
    let mut trust = TrustState::default();
    assert!(Verifier::new().verify(&bytes, &trust).is_ok());
    let rev = Signed::sign(
        Revocation {
            root: root.public(),
            target: RevocationTarget::Key(signer.public()),
            created: NOW,
            reason: "laptop stolen".into(),
        },
        &root,
    )
    .unwrap();
    assert!(trust.add_revocation(&rev).unwrap());
    assert!(!trust.add_revocation(&rev).unwrap(), "idempotent");
    assert!(matches!(
        Verifier::new().verify(&bytes, &trust),
        Err(VerifyError::Revoked { .. })
    ));
    // Only the root can revoke: a revocation signed by anyone else is refused.
    let forged = Signed::sign(
        Revocation {
            root: root.public(),
            target: RevocationTarget::Key(key(5).public()),
            created: NOW,
            reason: String::new(),
        },
        &signer,
    )
    .unwrap();
    assert!(TrustState::default().add_revocation(&forged).is_err());
    // Revoking one delegation by id leaves the root's own signature valid.
    let d_id = *blake3::hash(&delegation(&root, &signer, None)).as_bytes();
    let mut trust = TrustState::default();
    trust
        .add_revocation(
            &Signed::sign(
                Revocation {
                    root: root.public(),
                    target: RevocationTarget::Delegation(d_id),
                    created: NOW,
                    reason: String::new(),
                },
                &root,
            )
            .unwrap(),
        )
        .unwrap();
    assert!(Verifier::new().verify(&bytes, &trust).is_err());
    assert!(
        Verifier::new()
            .verify(&signed(&root, &root, 1, None), &trust)
            .is_ok()
    );
}

#[test]
fn batch_verification_agrees_with_single() {
    let (root, signer) = (key(1), key(2));
    let mut items: Vec<Vec<u8>> = (2..=65)
        .map(|s| signed(&root, &signer, s, Some([0; 32])))
        .collect();
    items[0] = signed(&root, &signer, 1, None);
    let trust = TrustState::default();
    let v = Verifier::new();
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    assert!(v.verify_batch(&refs, &trust).iter().all(Result::is_ok));
    // One bad signature in the middle: exactly that one fails.
    let mut bad = items.clone();
    let n = bad[30].len();
    bad[30][n - 1] ^= 1;
    let refs: Vec<&[u8]> = bad.iter().map(Vec::as_slice).collect();
    let results = Verifier::new().verify_batch(&refs, &trust);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 30, "item {i}: {r:?}");
    }
}

#[test]
fn key_files_round_trip_and_refuse_wrong_passphrases_and_damage() {
    let k = key(4);
    let cheap = (64, 1, 1);
    let enc = write_key_file_with(&k, KeyKind::Root, Some("correct horse"), cheap).unwrap();
    let (kind, back) = read_key_file(&enc, Some("correct horse")).unwrap();
    assert_eq!(kind, KeyKind::Root);
    assert_eq!(back.public(), k.public());
    assert_eq!(
        read_key_file(&enc, Some("wrong")).unwrap_err(),
        KeyError::WrongPassphrase
    );
    assert_eq!(
        read_key_file(&enc, None).unwrap_err(),
        KeyError::NeedsPassphrase
    );
    for i in [0, 16, 17, 20, 60, 70, 90, enc.len() - 1] {
        let mut bad = enc.clone();
        bad[i] ^= 1;
        assert!(
            read_key_file(&bad, Some("correct horse")).is_err(),
            "byte {i}"
        );
    }
    assert!(read_key_file(&enc[..enc.len() - 1], Some("correct horse")).is_err());
    let plain = write_key_file_with(&k, KeyKind::Signing, None, cheap).unwrap();
    assert_eq!(read_key_file(&plain, None).unwrap().1.public(), k.public());
    let mut swapped = plain.clone();
    swapped[60] ^= 1; // the secret no longer matches the public key
    assert!(matches!(
        read_key_file(&swapped, None),
        Err(KeyError::Damaged(_))
    ));
    // A crafted file cannot make us spend unbounded memory.
    let mut greedy = enc.clone();
    greedy[50..54].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        read_key_file(&greedy, Some("x")),
        Err(KeyError::Damaged(_))
    ));
    let debug = format!("{k:?}");
    assert!(debug.contains("redacted") && !debug.contains(&hex::encode([4u8; 32])));
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    (
        1u64..1000,
        any::<u64>(),
        "[a-z0-9]{1,20}",
        "\\PC{0,60}",
        "[a-z]{2}(-[A-Z]{2})?",
        proptest::option::of("\\PC{0,100}"),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::collection::vec(
            (
                "[a-z0-9_]{1,12}(/[a-z0-9_]{1,12}(\\.[a-z]{1,4})?){0,2}",
                any::<[u8; 32]>(),
                any::<u64>(),
            ),
            1..8,
        ),
    )
        .prop_map(
            |(seq, created, feed, title, lang, summary, supersedes, entries)| {
                let root = key(1);
                let mut seen = std::collections::BTreeSet::new();
                Manifest {
                    publisher: root.public(),
                    signer: root.public(),
                    delegation: None,
                    feed,
                    seq,
                    prev: (seq > 1).then_some([3; 32]),
                    created,
                    title,
                    lang,
                    summary,
                    supersedes,
                    entries: entries
                        .into_iter()
                        .filter(|(p, _, _)| seen.insert(p.clone()))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .filter(|(p, _, _)| {
                            // A path that is also another's folder cannot be written.
                            !seen.iter().any(|o| o.starts_with(&format!("{p}/")))
                                && !seen.iter().any(|o| p.starts_with(&format!("{o}/")))
                        })
                        .map(|(path, hash, size)| Entry {
                            path,
                            hash,
                            size,
                            media_type: "image/jpeg".into(),
                        })
                        .collect(),
                }
            },
        )
        .prop_filter("at least one entry", |m| !m.entries.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn manifest_decode_encode_round_trips(m in arb_manifest()) {
        let s = Signed::sign(m.clone(), &key(1)).unwrap();
        let back = Signed::<Manifest>::decode(s.bytes()).unwrap();
        prop_assert_eq!(back.body(), &m);
        prop_assert_eq!(back.bytes(), s.bytes());
        prop_assert!(verify(s.bytes()).is_ok());
    }

    #[test]
    fn delegation_and_revocation_round_trip(nb in any::<u64>(), span in 0u64..1_000_000, feed in proptest::option::of("[a-z]{1,10}")) {
        let d = Delegation { root: key(1).public(), key: key(2).public(), not_before: nb, not_after: nb.saturating_add(span), feed };
        let s = Signed::sign(d.clone(), &key(1)).unwrap();
        prop_assert_eq!(Signed::<Delegation>::decode(s.bytes()).unwrap().body().clone(), d);
        let r = Revocation { root: key(1).public(), target: RevocationTarget::Delegation(s.id()), created: nb, reason: "r".into() };
        let s = Signed::sign(r.clone(), &key(1)).unwrap();
        prop_assert_eq!(Signed::<Revocation>::decode(s.bytes()).unwrap().body().clone(), r);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = verify(&bytes);
        let _ = Signed::<Delegation>::decode(&bytes);
        let _ = Signed::<Revocation>::decode(&bytes);
        let _ = TrustState::decode(&bytes);
        let _ = tamizdat_sign::key_file_info(&bytes);
        let mut with_header = b"tamizdat/manifest/v1\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = verify(&with_header);
    }

    #[test]
    fn trust_state_round_trips(n in 1u64..20) {
        let root = key(1);
        let mut state = TrustState::default();
        let mut prev = None;
        for seq in 1..=n {
            let b = signed(&root, &root, seq, prev);
            prev = Some(*blake3::hash(&b).as_bytes());
            state.accept(&verify(&b).unwrap(), NOW + 1000).unwrap();
        }
        prop_assert_eq!(TrustState::decode(&state.encode()).unwrap(), state);
    }
}

#[test]
fn mixed_order_and_non_canonical_keys_are_rejected() {
    use curve25519_dalek::{constants::EIGHT_TORSION, edwards::CompressedEdwardsY};
    let honest = key(6);
    let point = CompressedEdwardsY(*honest.public().as_bytes())
        .decompress()
        .unwrap();
    // The honest key plus a point of order 2: not weak, but not prime-order.
    let mixed = PublicKey::from_bytes((point + EIGHT_TORSION[4]).compress().to_bytes());
    let mut m = manifest(&honest, &honest, 1, None);
    m.publisher = mixed;
    m.signer = mixed;
    let bytes = Signed::sign(m, &honest).unwrap().bytes().to_vec();
    assert!(matches!(
        verify(&bytes),
        Err(VerifyError::Key(KeyError::NotPrimeOrder(_)))
    ));
    let refs: Vec<&[u8]> = vec![&bytes];
    assert!(Verifier::new().verify_batch(&refs, &TrustState::default())[0].is_err());
}

#[test]
fn entries_that_cannot_all_be_written_to_disk_are_refused() {
    let root = key(1);
    let entry = |path: &str| Entry {
        path: path.into(),
        hash: [1; 32],
        size: 1,
        media_type: "text/plain".into(),
    };
    for paths in [
        vec!["a", "a/b"],
        vec!["Index.md", "index.md"],
        vec!["img/x", "IMG"],
    ] {
        let mut m = manifest(&root, &root, 1, None);
        m.entries = paths.iter().map(|p| entry(p)).collect();
        assert!(Signed::sign(m, &root).is_err(), "{paths:?}");
    }
    for lang in ["-", "--", "x-", "e", "en-", "toolongprimary"] {
        assert!(!tamizdat_sign::is_language_tag(lang), "{lang:?}");
    }
    for lang in ["en", "ru", "fa-IR", "sr-Latn-RS", "und", "zh-Hant"] {
        assert!(tamizdat_sign::is_language_tag(lang), "{lang:?}");
    }
}

#[test]
fn gaps_are_filled_only_by_manifests_that_link_both_ways() {
    let root = key(1);
    let id = |b: &[u8]| *blake3::hash(b).as_bytes();
    let m1 = signed(&root, &root, 1, None);
    let m2 = signed(&root, &root, 2, Some(id(&m1)));
    let m3 = signed(&root, &root, 3, Some(id(&m2)));
    let mut state = TrustState::default();
    accept(&mut state, &m1).unwrap();
    assert_eq!(
        accept(&mut state, &m3).unwrap(),
        Verdict::Ahead { missing: 1 }
    );
    // A seq 2 that is not the one m3 names: provably not in the chain.
    let mut other = manifest(&root, &root, 2, Some(id(&m1)));
    other.title = "Not the real one".into();
    let other = Signed::sign(other, &root).unwrap().bytes().to_vec();
    assert!(matches!(
        accept(&mut state, &other),
        Err(FeedError::Equivocation { seq: 2, .. })
    ));
    assert_eq!(accept(&mut state, &m2).unwrap(), Verdict::Backfill);

    // A seq 2 that m3 names but that does not follow m1: a fork, whatever
    // order the pieces arrive in.
    let m2x = signed(&root, &root, 2, Some([7; 32]));
    let m3x = signed(&root, &root, 3, Some(id(&m2x)));
    let mut state = TrustState::default();
    accept(&mut state, &m1).unwrap();
    accept(&mut state, &m3x).unwrap();
    assert!(matches!(
        accept(&mut state, &m2x),
        Err(FeedError::Fork { seq: 2, .. })
    ));

    // What was accepted stays accepted when the local clock steps back.
    let mut state = TrustState::default();
    let v = verify(&m1).unwrap();
    state.accept(&v, NOW + 100).unwrap();
    assert_eq!(state.check(&v, NOW - 10 * DAY).unwrap(), Verdict::Duplicate);
}

#[test]
fn a_key_no_one_can_sign_with_does_not_parse() {
    // The all-zero key, the identity point and a point of order 2: each is
    // 64 hex digits, and none can check a signature.
    let identity = format!("01{}", "0".repeat(62));
    let order_two = format!("ec{}7f", "ff".repeat(30));
    for text in ["0".repeat(64), identity, order_two] {
        let err = text.parse::<tamizdat_sign::PublicKey>().unwrap_err();
        assert!(
            matches!(
                err,
                tamizdat_sign::KeyError::Weak(_)
                    | tamizdat_sign::KeyError::NotAPoint(_)
                    | tamizdat_sign::KeyError::NotPrimeOrder(_)
            ),
            "{text}: {err}"
        );
    }
    let real = tamizdat_sign::SecretKey::from_seed(&[3; 32]).public();
    assert_eq!(
        real.to_string()
            .parse::<tamizdat_sign::PublicKey>()
            .unwrap(),
        real
    );
}
