//! Verifying manifests: signature, delegation chain and revocations, one at
//! a time or in batches.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, OnceLock},
};

use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_dalek::VerifyingKey;

use crate::{
    envelope::{Digest, Signed},
    error::{KeyError, VerifyError},
    feed::TrustState,
    keys::PublicKey,
    objects::{Delegation, Manifest},
};

/// A manifest whose signature, delegation chain and revocation status were
/// checked. The feed rules ([`TrustState::check`]) come on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest {
    signed: Signed<Manifest>,
    delegation: Option<Signed<Delegation>>,
}

impl VerifiedManifest {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        self.signed.body()
    }
    /// Its id: BLAKE3 of the envelope.
    pub fn id(&self) -> Digest {
        self.signed.id()
    }
    /// The envelope.
    pub fn envelope(&self) -> &Signed<Manifest> {
        &self.signed
    }
    /// The delegation it was signed under (none when the root signed).
    pub fn delegation(&self) -> Option<&Signed<Delegation>> {
        self.delegation.as_ref()
    }
}

/// Verified delegations remembered, so a feed's manifests cost one
/// signature check each, not two.
const CACHE: usize = 1024;

/// Verifies manifests, remembering delegations already checked and public
/// keys already decoded.
#[derive(Debug, Default)]
pub struct Verifier {
    delegations: Mutex<HashSet<Digest>>,
    keys: Mutex<HashMap<PublicKey, VerifyingKey>>,
}

/// A signature check to make: (message, signature, key).
struct Check<'a> {
    msg: &'a [u8],
    sig: crate::keys::Signature,
    key: PublicKey,
    vk: VerifyingKey,
}

impl Verifier {
    /// A verifier with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self, id: &Digest) -> bool {
        self.delegations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn remember(&self, id: Digest) {
        let mut set = self.delegations.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= CACHE {
            set.clear();
        }
        set.insert(id);
    }

    /// The decoded key, refusing non-points and weak keys (cached).
    fn vk(&self, pk: &PublicKey) -> Result<VerifyingKey, KeyError> {
        if let Some(vk) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(pk) {
            return Ok(*vk);
        }
        let vk = pk.verifying_key()?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= CACHE {
            keys.clear();
        }
        keys.insert(*pk, vk);
        Ok(vk)
    }

    /// Everything but the signatures: decoding, the delegation's fit, the
    /// revocation list. Returns the manifest and the signature checks still due.
    fn structure<'a>(
        &self,
        signed: &'a Signed<Manifest>,
        delegation: &'a Option<Signed<Delegation>>,
        trust: &TrustState,
    ) -> Result<Vec<Check<'a>>, VerifyError> {
        let m = signed.body();
        // Weak keys never reach a signature check, batched or not.
        self.vk(&m.publisher)?;
        let mut checks = vec![Check {
            msg: signed.signed_bytes(),
            sig: signed.signature(),
            key: m.signer,
            vk: self.vk(&m.signer)?,
        }];
        match delegation {
            None if m.signer == m.publisher => {}
            None => {
                return Err(VerifyError::NotDelegated {
                    root: m.publisher,
                    signer: m.signer,
                });
            }
            Some(_) if m.signer == m.publisher => return Err(VerifyError::UnexpectedDelegation),
            Some(d) => {
                let body = d.body();
                if body.root != m.publisher || body.key != m.signer {
                    return Err(VerifyError::DelegationMismatch(format!(
                        "it is from {} to {}, the manifest claims {} signed by {}",
                        body.root, body.key, m.publisher, m.signer
                    )));
                }
                if m.created < body.not_before || m.created > body.not_after {
                    return Err(VerifyError::OutsideDelegation {
                        at: m.created,
                        not_before: body.not_before,
                        not_after: body.not_after,
                    });
                }
                if let Some(allowed) = body.feed.as_ref().filter(|f| **f != m.feed) {
                    return Err(VerifyError::WrongFeed {
                        allowed: allowed.clone(),
                        feed: m.feed.clone(),
                    });
                }
                let d_id = d.id();
                if let Some(rev) = trust.revoked(&m.publisher, &m.signer, Some(&d_id)) {
                    return Err(VerifyError::Revoked {
                        key: m.signer,
                        revocation: hex::encode(rev),
                    });
                }
                if !self.known(&d_id) {
                    checks.push(Check {
                        msg: d.signed_bytes(),
                        sig: d.signature(),
                        key: body.root,
                        vk: self.vk(&body.root)?,
                    });
                }
            }
        }
        Ok(checks)
    }

    fn decode(bytes: &[u8]) -> Result<(Signed<Manifest>, Option<Signed<Delegation>>), VerifyError> {
        let signed = Signed::<Manifest>::decode(bytes)?;
        let delegation = match &signed.body().delegation {
            Some(d) => Some(Signed::<Delegation>::decode(d)?),
            None => None,
        };
        Ok((signed, delegation))
    }

    /// Verifies one manifest envelope: format, signature (`verify_strict`),
    /// delegation chain, revocations.
    pub fn verify(
        &self,
        bytes: &[u8],
        trust: &TrustState,
    ) -> Result<VerifiedManifest, VerifyError> {
        let (signed, delegation) = Self::decode(bytes)?;
        let checks = self.structure(&signed, &delegation, trust)?;
        for c in &checks {
            c.vk.verify_strict(c.msg, &ed25519_dalek::Signature::from_bytes(&c.sig.0))
                .map_err(|_| KeyError::BadSignature(c.key))?;
        }
        // Remember a delegation the first time it is checked.
        if let (Some(d), true) = (&delegation, checks.len() > 1) {
            self.remember(d.id());
        }
        Ok(VerifiedManifest { signed, delegation })
    }

    /// Verifies many manifests with one batched signature check where all
    /// are good; on a batch failure, each is checked alone to name the bad
    /// ones. For every honestly made signature the result is the same as
    /// [`Verifier::verify`]'s; see `r_is_plain` for the one crafted case
    /// where a batch is more lenient, and use [`Verifier::verify`] before
    /// forwarding anything to peers.
    pub fn verify_batch(
        &self,
        items: &[&[u8]],
        trust: &TrustState,
    ) -> Vec<Result<VerifiedManifest, VerifyError>> {
        let mut results: Vec<Result<VerifiedManifest, VerifyError>> =
            Vec::with_capacity(items.len());
        // The manifest signature of each good item, in `results` order.
        let mut pending = Vec::with_capacity(items.len());
        let mut batchable = true;
        for bytes in items {
            let (signed, delegation) = match Self::decode(bytes) {
                Ok(v) => v,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let outcome = self
                .structure(&signed, &delegation, trust)
                .and_then(|checks| {
                    // A delegation is checked alone, with verify_strict, and only
                    // then remembered: a batch result is never cached as verified.
                    if let (Some(c), Some(d)) = (checks.get(1), &delegation) {
                        c.vk.verify_strict(c.msg, &ed25519_dalek::Signature::from_bytes(&c.sig.0))
                            .map_err(|_| KeyError::BadSignature(c.key))?;
                        self.remember(d.id());
                    }
                    Ok((
                        ed25519_dalek::Signature::from_bytes(&checks[0].sig.0),
                        checks[0].vk,
                    ))
                });
            match outcome {
                Ok((sig, vk)) => {
                    batchable &= r_is_plain(&signed.signature());
                    pending.push((sig, vk));
                    results.push(Ok(VerifiedManifest { signed, delegation }));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let msgs: Vec<&[u8]> = results
            .iter()
            .flatten()
            .map(|v| v.signed.signed_bytes())
            .collect();
        let (sigs, keys): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let all_good = batchable
            && !msgs.is_empty()
            && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok();
        if all_good {
            return results;
        }
        // Something in the batch is bad (or unbatchable): check one by one.
        results
            .into_iter()
            .map(|r| r.and_then(|v| self.verify(v.signed.bytes(), trust)))
            .collect()
    }
}

/// Whether a signature may go into a batch: its R must be canonically
/// encoded and none of the eight small-order points (checked against their
/// encodings, no decompression); any other signature is checked alone with
/// `verify_strict`. Keys are already canonical and prime-order.
///
/// Residual, documented in `docs/protocol.md`: an R with a small-order
/// *component* (R = R' + T) can only be made by the holder of the signing
/// key; `verify_strict` rejects it, and dalek's batch (whose coefficients
/// are derived from the batch's contents) may accept it, deterministically
/// for a given batch. Batch results are therefore only for a node's own
/// view (bulk import, catch-up), are never cached, and a manifest is checked
/// alone before it is forwarded.
fn r_is_plain(sig: &crate::keys::Signature) -> bool {
    static TORSION: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    let torsion = TORSION.get_or_init(|| EIGHT_TORSION.map(|p| p.compress().to_bytes()));
    let r = &sig.0[..32];
    // y >= p = 2^255 - 19 (sign bit aside) is a non-canonical encoding.
    let non_canonical = r[31] & 0x7f == 0x7f && r[1..31].iter().all(|&b| b == 0xff) && r[0] >= 0xed;
    let small = torsion
        .iter()
        .any(|t| t[..31] == r[..31] && (t[31] & 0x7f) == (r[31] & 0x7f));
    !non_canonical && !small
}

/// Checks a delegation's own signature (by its root).
pub fn verify_delegation(bytes: &[u8]) -> Result<Signed<Delegation>, VerifyError> {
    let d = Signed::<Delegation>::decode(bytes)?;
    d.check_signature()
        .map_err(|e: KeyError| VerifyError::Key(e))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SecretKey, Signature};

    fn with_r(r: [u8; 32]) -> Signature {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&r);
        Signature(s)
    }

    #[test]
    fn small_order_and_non_canonical_r_never_go_into_a_batch() {
        for p in EIGHT_TORSION {
            let r = p.compress().to_bytes();
            assert!(!r_is_plain(&with_r(r)), "{}", hex::encode(r));
            let mut flipped = r;
            flipped[31] ^= 0x80;
            assert!(!r_is_plain(&with_r(flipped)));
        }
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f; // y = p: non-canonical zero
        assert!(!r_is_plain(&with_r(p)));
        let real = SecretKey::from_seed(&[9; 32]).sign(b"tamizdat");
        assert!(r_is_plain(&real));
    }
}
