//! The signed envelope and every body decoder (`tamizdat-sign`).
//!
//! The first byte picks a mode; the rest is either an envelope as it
//! arrives (mode even), or a body to sign here with the test-vector keys
//! (mode odd, kind chosen by the mode), so that what follows a good
//! signature (delegation chain, revocations, feed rules) is reached too.
//!
//! Checks: no panic; a decoded envelope is exactly its input, and its body
//! re-encodes to the same bytes (decode(encode(x)) == x); a manifest the
//! verifier accepts passes a stricter re-check done here from the parts
//! (`verify_strict` signatures, the chain rules of protocol.md §4); batch,
//! cached and fresh verification agree; the feed rules' check and accept
//! agree.

use afl::fuzz;
use tamizdat_fuzz::{NOW, delegation, root, signing};
use tamizdat_sign::{
    Delegation, Manifest, Object, PublicKey, Revocation, RevocationTarget, SecretKey, Signed,
    TrustState, Verifier, verify_delegation,
};

fn main() {
    fuzz!(|data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        if mode % 2 == 0 {
            envelope(rest, mode);
        } else {
            match (mode / 2) % 3 {
                0 => signed::<Delegation>(rest, mode),
                1 => signed::<Revocation>(rest, mode),
                _ => signed::<Manifest>(rest, mode),
            }
        }
    });
}

/// The secret key of one of the vector keys.
fn secret_of(key: &PublicKey) -> Option<SecretKey> {
    [root(), signing()].into_iter().find(|k| k.public() == *key)
}

/// `bytes` as a body of `T`, signed by its signer when that is a vector
/// key (otherwise by the root key, the signer field set to it).
fn signed<T: Object + SignAs>(bytes: &[u8], mode: u8) {
    let Ok((mut body, _)) = postcard::take_from_bytes::<T>(bytes) else {
        return;
    };
    let key = match secret_of(&body.signer()) {
        Some(k) => k,
        None => {
            body.set_signer(root().public());
            root()
        }
    };
    if let Ok(s) = Signed::sign(body, &key) {
        envelope(s.bytes(), mode);
    }
}

trait SignAs {
    fn set_signer(&mut self, key: PublicKey);
}
impl SignAs for Delegation {
    fn set_signer(&mut self, key: PublicKey) {
        self.root = key;
    }
}
impl SignAs for Revocation {
    fn set_signer(&mut self, key: PublicKey) {
        self.root = key;
    }
}
impl SignAs for Manifest {
    fn set_signer(&mut self, key: PublicKey) {
        self.signer = key;
    }
}

fn envelope(bytes: &[u8], mode: u8) {
    decoded::<Delegation>(bytes);
    decoded::<Revocation>(bytes);
    decoded::<Manifest>(bytes);
    delegation_rules(bytes);
    revocation_rules(bytes);
    manifest_rules(bytes, mode);
}

/// decode(encode(x)) == x for one kind.
fn decoded<T: Object + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(s) = Signed::<T>::decode(bytes) else {
        return;
    };
    assert_eq!(s.bytes(), bytes);
    assert!(bytes.len() <= T::MAX_LEN);
    let mut again = T::HEADER.to_vec();
    again.extend(postcard::to_stdvec(s.body()).expect("a decoded body encodes"));
    assert_eq!(again, s.signed_bytes(), "one body, one encoding");
    again.extend(s.signature().to_bytes());
    assert_eq!(again, bytes);
    assert_eq!(s.id(), *blake3::hash(bytes).as_bytes());
    s.body().check_fields().expect("decode checked the fields");
    // Signing the decoded body again gives an envelope that decodes to it.
    let re = Signed::sign(s.body().clone(), &root()).expect("a decoded body signs");
    assert_eq!(re.signed_bytes(), s.signed_bytes());
    assert_eq!(
        Signed::<T>::decode(re.bytes()).expect("re-signed").body(),
        s.body()
    );
}

fn delegation_rules(bytes: &[u8]) {
    if let Ok(d) = verify_delegation(bytes) {
        let again = Signed::<Delegation>::decode(bytes).expect("verified, so it decodes");
        again
            .check_signature()
            .expect("verified, so its signature holds");
        assert!(strict_signature(&d.body().root, d.signed_bytes(), bytes));
        assert_ne!(d.body().root, d.body().key);
        assert!(d.body().not_before <= d.body().not_after);
    }
}

fn revocation_rules(bytes: &[u8]) {
    let Ok(rev) = Signed::<Revocation>::decode(bytes) else {
        return;
    };
    let mut trust = TrustState::default();
    match trust.add_revocation(&rev) {
        Ok(added) => {
            assert!(added, "new to an empty state");
            rev.check_signature()
                .expect("applied, so its signature holds");
            assert!(strict_signature(
                &rev.body().root,
                rev.signed_bytes(),
                bytes
            ));
            assert_ne!(rev.body().target, RevocationTarget::Key(rev.body().root));
            assert!(
                !trust.add_revocation(&rev).expect("again"),
                "twice is a no-op"
            );
            let decoded = TrustState::decode(&trust.encode()).expect("state round trip");
            assert_eq!(decoded, trust);
        }
        Err(_) => assert!(rev.check_signature().is_err() || rev.body().check_fields().is_err()),
    }
}

fn manifest_rules(bytes: &[u8], mode: u8) {
    // Sometimes with the vector revocation of the signing key known.
    let mut trust = TrustState::default();
    if mode & 0x40 != 0 {
        let rev = Signed::sign(
            Revocation {
                root: root().public(),
                target: if mode & 0x20 != 0 {
                    RevocationTarget::Key(signing().public())
                } else {
                    RevocationTarget::Delegation(delegation().id())
                },
                created: NOW,
                reason: "key compromised".into(),
            },
            &root(),
        )
        .unwrap();
        assert!(trust.add_revocation(&rev).unwrap());
    }
    let verifier = Verifier::new();
    let single = verifier.verify(bytes, &trust);
    // The verifier now remembers the delegation: the cached path agrees.
    let cached = verifier.verify(bytes, &trust);
    assert_eq!(single.is_ok(), cached.is_ok(), "{single:?} / {cached:?}");
    let batch = Verifier::new().verify_batch(&[bytes, bytes], &trust);
    for b in &batch {
        assert_eq!(b.is_ok(), single.is_ok(), "batch {b:?} / single {single:?}");
    }
    let Ok(m) = single else {
        return;
    };
    // The stricter re-check, from the parts.
    let s = Signed::<Manifest>::decode(bytes).expect("verified, so it decodes");
    assert_eq!(m.envelope(), &s);
    s.check_signature().expect("the manifest signature holds");
    let body = s.body();
    assert!(
        strict_key(&body.publisher),
        "a weak publisher key was accepted"
    );
    assert!(
        strict_signature(&body.signer, s.signed_bytes(), bytes),
        "the manifest signature fails the strict check"
    );
    match &body.delegation {
        None => assert_eq!(
            body.signer, body.publisher,
            "an undelegated signer is the root"
        ),
        Some(d) => {
            assert_ne!(body.signer, body.publisher);
            let d = verify_delegation(d).expect("the delegation holds");
            assert!(
                strict_signature(&d.body().root, d.signed_bytes(), d.bytes()),
                "the delegation signature fails the strict check"
            );
            let db = d.body();
            assert_eq!((db.root, db.key), (body.publisher, body.signer));
            assert!(db.not_before <= body.created && body.created <= db.not_after);
            assert!(db.feed.as_ref().is_none_or(|f| *f == body.feed));
            assert!(
                trust
                    .revoked(&body.publisher, &body.signer, Some(&d.id()))
                    .is_none(),
                "a revoked delegation was accepted"
            );
            assert_eq!(m.delegation(), Some(&d));
        }
    }
    // The feed rules: what check says, accept does.
    let mut state = trust.clone();
    let checked = trust.check(&m, NOW);
    let accepted = state.accept(&m, NOW);
    assert_eq!(checked, accepted);
    if accepted.is_ok() {
        let head = state.head(&body.publisher, &body.feed).expect("a head");
        assert_eq!((head.seq, head.hash), (body.seq, m.id()));
        assert_eq!(
            state.check(&m, NOW).map(|v| v.is_new()),
            Ok(false),
            "accepted once, a duplicate after"
        );
        let decoded = TrustState::decode(&state.encode()).expect("state round trip");
        assert_eq!(decoded, state);
    }
}

/// protocol.md §1 step 2, checked here with curve25519-dalek directly: the
/// key decompresses, is canonically encoded, not of small order, and in
/// the prime-order subgroup.
fn strict_key(key: &PublicKey) -> bool {
    let bytes = *key.as_bytes();
    let Some(point) = Option::<curve25519_dalek::EdwardsPoint>::from(
        curve25519_dalek::edwards::CompressedEdwardsY(bytes).decompress(),
    ) else {
        return false;
    };
    point.compress().to_bytes() == bytes && !point.is_small_order() && point.is_torsion_free()
}

/// The single, cofactorless, strict signature check of protocol.md §1.
fn strict_signature(key: &PublicKey, signed: &[u8], envelope: &[u8]) -> bool {
    let sig: [u8; 64] = envelope[envelope.len() - 64..].try_into().unwrap();
    strict_key(key)
        && ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).is_ok_and(|vk| {
            vk.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        })
}
