//! Verifying manifests: signature, delegation chain and revocations, one at
//! a time or in batches.

use std::{collections::HashSet, sync::Mutex};

use curve25519_dalek::edwards::CompressedEdwardsY;

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

/// Verifies manifests, remembering delegations already checked.
#[derive(Debug, Default)]
pub struct Verifier {
    delegations: Mutex<HashSet<Digest>>,
}

/// A signature check to make: (message, signature, key).
struct Check<'a> {
    msg: &'a [u8],
    sig: crate::keys::Signature,
    key: PublicKey,
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

    /// Everything but the signatures: decoding, the delegation's fit, the
    /// revocation list. Returns the manifest and the signature checks still due.
    fn structure<'a>(
        &self,
        signed: &'a Signed<Manifest>,
        delegation: &'a Option<Signed<Delegation>>,
        trust: &TrustState,
    ) -> Result<Vec<Check<'a>>, VerifyError> {
        let m = signed.body();
        let mut checks = vec![Check {
            msg: signed.signed_bytes(),
            sig: signed.signature(),
            key: m.signer,
        }];
        // Weak keys never reach a signature check, batched or not.
        m.publisher.verifying_key()?;
        m.signer.verifying_key()?;
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
                if let Some(rev) = trust.revoked(&m.publisher, &m.signer, Some(&d.id())) {
                    return Err(VerifyError::Revoked {
                        key: m.signer,
                        revocation: hex::encode(rev),
                    });
                }
                if !self.known(&d.id()) {
                    checks.push(Check {
                        msg: d.signed_bytes(),
                        sig: d.signature(),
                        key: body.root,
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
            c.key.verify(c.msg, &c.sig)?;
        }
        if let Some(d) = &delegation {
            self.remember(d.id());
        }
        Ok(VerifiedManifest { signed, delegation })
    }

    /// Verifies many manifests with one batched signature check where all
    /// are good; on a batch failure, each is checked alone to name the bad
    /// ones. The result for each input is the same as [`Verifier::verify`]'s.
    pub fn verify_batch(
        &self,
        items: &[&[u8]],
        trust: &TrustState,
    ) -> Vec<Result<VerifiedManifest, VerifyError>> {
        let decoded: Vec<_> = items.iter().map(|b| Self::decode(b)).collect();
        let mut results: Vec<Result<VerifiedManifest, VerifyError>> =
            Vec::with_capacity(items.len());
        let mut msgs = Vec::new();
        let mut sigs = Vec::new();
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        let mut batchable = true;
        for d in &decoded {
            let (signed, delegation) = match d {
                Ok(v) => v,
                Err(e) => {
                    results.push(Err(e.clone()));
                    continue;
                }
            };
            match self.structure(signed, delegation, trust) {
                Err(e) => results.push(Err(e)),
                Ok(checks) => {
                    for c in checks {
                        // A delegation shared by many manifests is checked once.
                        if !seen.insert((c.key, c.msg.as_ptr() as usize, c.msg.len())) {
                            continue;
                        }
                        batchable &= !r_is_small_order(&c.sig);
                        let vk = match c.key.verifying_key() {
                            Ok(vk) => vk,
                            Err(_) => {
                                batchable = false;
                                continue;
                            }
                        };
                        msgs.push(c.msg);
                        sigs.push(ed25519_dalek::Signature::from_bytes(&c.sig.0));
                        keys.push(vk);
                    }
                    results.push(Ok(VerifiedManifest {
                        signed: signed.clone(),
                        delegation: delegation.clone(),
                    }));
                }
            }
        }
        let all_good = batchable
            && !msgs.is_empty()
            && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok();
        if all_good {
            for v in results.iter().flatten() {
                if let Some(d) = &v.delegation {
                    self.remember(d.id());
                }
            }
            return results;
        }
        // Something in the batch is bad (or unbatchable): check one by one.
        results
            .into_iter()
            .map(|r| r.and_then(|v| self.verify(v.signed.bytes(), trust)))
            .collect()
    }
}

/// `verify_strict` refuses a small-order R; batch verification would not
/// notice, so such signatures never go into a batch.
fn r_is_small_order(sig: &crate::keys::Signature) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    CompressedEdwardsY(r)
        .decompress()
        .is_none_or(|p| p.is_small_order())
}

/// Checks a delegation's own signature (by its root).
pub fn verify_delegation(bytes: &[u8]) -> Result<Signed<Delegation>, VerifyError> {
    let d = Signed::<Delegation>::decode(bytes)?;
    d.check_signature()
        .map_err(|e: KeyError| VerifyError::Key(e))?;
    Ok(d)
}
