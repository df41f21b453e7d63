//! The signed envelope shared by every object: a type-and-version header,
//! the postcard-encoded body, and an ed25519 signature over header and body.
//!
//! ```text
//! envelope = header || body || signature(64)
//! header   = "tamizdat/<kind>/v1\n"       (ASCII; also the signing context)
//! signed   = header || body
//! id       = BLAKE3(envelope)
//! ```

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::{DecodeError, KeyError},
    keys::{PublicKey, SecretKey, Signature},
};

/// A 32-byte BLAKE3 hash: of a blob, or of an envelope (its id).
pub type Digest = [u8; 32];

/// A kind of signed object.
pub trait Object: Serialize + DeserializeOwned + Clone {
    /// Name for messages: "manifest", "delegation", "revocation".
    const KIND: &'static str;
    /// Header, e.g. `b"tamizdat/manifest/v1\n"`.
    const HEADER: &'static [u8];
    /// Largest envelope accepted.
    const MAX_LEN: usize;
    /// The key whose signature the envelope must carry.
    fn signer(&self) -> PublicKey;
    /// Field rules beyond what decoding checks.
    fn check_fields(&self) -> Result<(), DecodeError>;
}

/// A decoded envelope. Holding one does not mean its signature was checked:
/// see [`Signed::check_signature`] and the crate's `verify_*` functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: T,
    bytes: Vec<u8>,
}

impl<T: Object> Signed<T> {
    /// Encodes and signs `body` with `key`.
    pub fn sign(body: T, key: &SecretKey) -> Result<Self, DecodeError> {
        body.check_fields()?;
        let mut bytes = T::HEADER.to_vec();
        bytes.extend(postcard::to_stdvec(&body).map_err(|e| DecodeError::Body {
            kind: T::KIND,
            why: e.to_string(),
        })?);
        let sig = key.sign(&bytes);
        bytes.extend_from_slice(&sig.0);
        if bytes.len() > T::MAX_LEN {
            return Err(DecodeError::TooLarge {
                kind: T::KIND,
                size: bytes.len(),
                max: T::MAX_LEN,
            });
        }
        Ok(Self { body, bytes })
    }

    /// Decodes an envelope: size, header, version, body, canonical form and
    /// field rules. The signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > T::MAX_LEN {
            return Err(DecodeError::TooLarge {
                kind: T::KIND,
                size: bytes.len(),
                max: T::MAX_LEN,
            });
        }
        check_header::<T>(bytes)?;
        if bytes.len() < T::HEADER.len() + 64 {
            return Err(DecodeError::Truncated(T::KIND));
        }
        let body_bytes = &bytes[T::HEADER.len()..bytes.len() - 64];
        let (body, rest): (T, &[u8]) =
            postcard::take_from_bytes(body_bytes).map_err(|e| match e {
                postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated(T::KIND),
                e => DecodeError::Body {
                    kind: T::KIND,
                    why: e.to_string(),
                },
            })?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(T::KIND));
        }
        // One body, one encoding: otherwise one signed article could have
        // several ids.
        let again = postcard::to_stdvec(&body).map_err(|e| DecodeError::Body {
            kind: T::KIND,
            why: e.to_string(),
        })?;
        if again != body_bytes {
            return Err(DecodeError::NonCanonical(T::KIND));
        }
        body.check_fields()?;
        Ok(Self {
            body,
            bytes: bytes.to_vec(),
        })
    }

    /// The decoded body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The whole envelope, as stored and sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The envelope's id: BLAKE3 of its bytes.
    pub fn id(&self) -> Digest {
        *blake3::hash(&self.bytes).as_bytes()
    }

    /// The bytes the signature covers (header and body).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - 64]
    }

    /// The signature.
    pub fn signature(&self) -> Signature {
        let mut s = [0u8; 64];
        s.copy_from_slice(&self.bytes[self.bytes.len() - 64..]);
        Signature(s)
    }

    /// Checks the signature against the body's signer with `verify_strict`.
    pub fn check_signature(&self) -> Result<(), KeyError> {
        self.body
            .signer()
            .verify(self.signed_bytes(), &self.signature())
    }
}

fn check_header<T: Object>(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.starts_with(T::HEADER) {
        return Ok(());
    }
    // "tamizdat/manifest/v" shared: another version of the same kind.
    let stem = &T::HEADER[..T::HEADER.len() - 2];
    if bytes.starts_with(stem) {
        let found: String = bytes[stem.len() - 1..]
            .iter()
            .take_while(|&&b| b != b'\n')
            .take(16)
            .map(|&b| char::from(b))
            .collect();
        return Err(DecodeError::UnknownVersion {
            kind: T::KIND,
            found,
        });
    }
    Err(DecodeError::WrongType { expected: T::KIND })
}
