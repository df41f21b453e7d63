//! Keys: newtypes over ed25519-dalek so its version never leaks into our
//! API, and the passphrase-protected key file.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::KeyError;

/// A public key: prints as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(crate) [u8; 64]);

/// A secret signing key. Zeroized on drop; `Debug` never shows it.
pub struct SecretKey(SigningKey);

/// Whether a key is a publisher's root key or a delegated signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Kept offline; signs delegations and revocations (and may sign articles).
    Root,
    /// Lives on the newsroom's machine; signs articles within its delegation.
    Signing,
}

impl PublicKey {
    /// Wraps raw bytes. Whether they are a usable key is checked when verifying.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short form for humans to compare by eye: 16 hex digits in groups of
    /// four, from a domain-separated BLAKE3 hash of the key.
    pub fn fingerprint(&self) -> String {
        let h = blake3::derive_key("tamizdat fingerprint v1", &self.0);
        let hex = hex::encode(&h[..8]);
        format!(
            "{}-{}-{}-{}",
            &hex[0..4],
            &hex[4..8],
            &hex[8..12],
            &hex[12..16]
        )
    }

    /// The dalek key, refusing encodings that are not points and weak
    /// (small-order) keys, for which a signature proves nothing.
    /// Whether this is a key someone could sign with: a canonical curve
    /// point of prime order ([`KeyError::NotAPoint`], [`KeyError::Weak`],
    /// [`KeyError::NotPrimeOrder`] otherwise). Parsing from text checks it.
    pub fn check(&self) -> Result<(), KeyError> {
        self.verifying_key().map(|_| ())
    }

    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        let vk = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::NotAPoint(*self))?;
        if vk.is_weak() {
            return Err(KeyError::Weak(*self));
        }
        let point = vk.to_edwards();
        // Honest keys are multiples of the base point: canonical, and with no
        // small-order component (which would let a batch and a single check
        // disagree about the same signature).
        if point.compress().to_bytes() != self.0 || !point.is_torsion_free() {
            return Err(KeyError::NotPrimeOrder(*self));
        }
        Ok(vk)
    }

    /// Checks `sig` over `msg` with `verify_strict` (no malleable or
    /// small-order signatures).
    pub(crate) fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), KeyError> {
        let vk = self.verifying_key()?;
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .map_err(|_| KeyError::BadSignature(*self))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(KeyError::ParsePublic(s.chars().take(80).collect()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::ParsePublic(s.into()))?;
        // A key typed by a person (a follow, a URL, a config) must be one
        // someone could sign with: not the all-zero key, nor any other point
        // of small order that no signature can be checked against.
        let key = Self(out);
        key.check()?;
        Ok(key)
    }
}

impl Signature {
    /// The raw 64 bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key for a 32-byte seed (for test vectors; real keys use `generate`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {}, secret redacted)", self.public())
    }
}

// ----- key files -----

/// The first 16 bytes of every key file.
pub const KEY_FILE_MAGIC: &[u8; 16] = b"tamizdat-key-v1\n";
const PLAIN: u8 = 0;
const ARGON2_XCHACHA: u8 = 1;
/// Size of an unencrypted key file.
pub const PLAIN_KEY_FILE_LEN: usize = 16 + 1 + 1 + 32 + 32;
/// Size of an encrypted key file.
pub const ENCRYPTED_KEY_FILE_LEN: usize = 16 + 1 + 1 + 32 + 12 + 16 + 24 + 48;
/// The largest key file read.
pub const MAX_KEY_FILE_LEN: usize = ENCRYPTED_KEY_FILE_LEN;

/// Argon2id cost used when writing key files: 64 MiB, 3 passes, 1 lane.
pub const ARGON2_DEFAULT: (u32, u32, u32) = (64 * 1024, 3, 1);
/// The most a key file may ask of us, so a crafted file cannot exhaust memory.
const ARGON2_MAX: (u32, u32, u32) = (1024 * 1024, 16, 8);

/// Serializes a key file, encrypting the seed when a passphrase is given.
pub fn write_key_file(
    key: &SecretKey,
    kind: KeyKind,
    passphrase: Option<&str>,
) -> Result<Vec<u8>, KeyError> {
    write_key_file_with(key, kind, passphrase, ARGON2_DEFAULT)
}

/// As [`write_key_file`], with explicit Argon2id costs `(m KiB, t, p)`.
pub fn write_key_file_with(
    key: &SecretKey,
    kind: KeyKind,
    passphrase: Option<&str>,
    cost: (u32, u32, u32),
) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(MAX_KEY_FILE_LEN);
    out.extend_from_slice(KEY_FILE_MAGIC);
    out.push(match kind {
        KeyKind::Root => 1,
        KeyKind::Signing => 2,
    });
    let seed = Zeroizing::new(key.0.to_bytes());
    match passphrase {
        None => {
            out.push(PLAIN);
            out.extend_from_slice(key.public().as_bytes());
            out.extend_from_slice(&seed[..]);
        }
        Some(pass) => {
            out.push(ARGON2_XCHACHA);
            out.extend_from_slice(key.public().as_bytes());
            let (m, t, p) = cost;
            out.extend_from_slice(&m.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 24];
            getrandom::fill(&mut salt).map_err(|e| KeyError::Random(e.to_string()))?;
            getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
            out.extend_from_slice(&salt);
            out.extend_from_slice(&nonce);
            let k = derive(pass, &salt, cost)?;
            let cipher = XChaCha20Poly1305::new((&*k).into());
            let ct = cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &seed[..],
                        aad: &out,
                    },
                )
                .map_err(|_| KeyError::Damaged("encryption failed".into()))?;
            out.extend_from_slice(&ct);
        }
    }
    Ok(out)
}

fn derive(
    pass: &str,
    salt: &[u8; 16],
    (m, t, p): (u32, u32, u32),
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params = Params::new(m, t, p, Some(32))
        .map_err(|e| KeyError::Damaged(format!("bad Argon2 parameters: {e}")))?;
    let mut k = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass.as_bytes(), salt, &mut k[..])
        .map_err(|e| KeyError::Damaged(format!("key derivation: {e}")))?;
    Ok(k)
}

/// What the header of a key file says, readable without the passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFileInfo {
    /// Root or signing key.
    pub kind: KeyKind,
    /// The public key.
    pub public: PublicKey,
    /// Whether a passphrase is needed.
    pub encrypted: bool,
}

/// Reads the header of a key file.
pub fn key_file_info(bytes: &[u8]) -> Result<KeyFileInfo, KeyError> {
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(KeyError::Damaged(format!(
            "{} bytes, a key file is at most {MAX_KEY_FILE_LEN}",
            bytes.len()
        )));
    }
    if bytes.len() < 18 || &bytes[..16] != KEY_FILE_MAGIC {
        return Err(KeyError::Damaged("not a tamizdat key file".into()));
    }
    let kind = match bytes[16] {
        1 => KeyKind::Root,
        2 => KeyKind::Signing,
        k => return Err(KeyError::Damaged(format!("unknown key kind {k}"))),
    };
    let (encrypted, len) = match bytes[17] {
        PLAIN => (false, PLAIN_KEY_FILE_LEN),
        ARGON2_XCHACHA => (true, ENCRYPTED_KEY_FILE_LEN),
        p => return Err(KeyError::Damaged(format!("unknown protection {p}"))),
    };
    if bytes.len() != len {
        return Err(KeyError::Damaged(format!(
            "{} bytes, expected {len}",
            bytes.len()
        )));
    }
    let mut public = [0u8; 32];
    public.copy_from_slice(&bytes[18..50]);
    Ok(KeyFileInfo {
        kind,
        public: PublicKey(public),
        encrypted,
    })
}

/// Reads a key file; `passphrase` is needed when it is encrypted.
pub fn read_key_file(
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Result<(KeyKind, SecretKey), KeyError> {
    let info = key_file_info(bytes)?;
    let seed: Zeroizing<[u8; 32]> = if info.encrypted {
        let pass = passphrase.ok_or(KeyError::NeedsPassphrase)?;
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let cost = (u32_at(50), u32_at(54), u32_at(58));
        if cost.0 > ARGON2_MAX.0 || cost.1 > ARGON2_MAX.1 || cost.2 > ARGON2_MAX.2 {
            return Err(KeyError::Damaged(format!(
                "Argon2 cost {cost:?} is over the limit {ARGON2_MAX:?}"
            )));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[62..78]);
        let nonce = XNonce::from_slice(&bytes[78..102]);
        let k = derive(pass, &salt, cost)?;
        let cipher = XChaCha20Poly1305::new((&*k).into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    nonce,
                    Payload {
                        msg: &bytes[102..],
                        aad: &bytes[..102],
                    },
                )
                .map_err(|_| KeyError::WrongPassphrase)?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(KeyError::Damaged("secret of the wrong length".into()));
        }
        seed.copy_from_slice(&plain);
        seed
    } else {
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[50..82]);
        seed
    };
    let key = SecretKey::from_seed(&seed);
    if key.public() != info.public {
        return Err(KeyError::Damaged(
            "the secret does not match the public key in the file".into(),
        ));
    }
    Ok((info.kind, key))
}
