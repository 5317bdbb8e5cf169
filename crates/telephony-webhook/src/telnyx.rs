//! Telnyx API v2 webhooks: an Ed25519 signature over `<telnyx-timestamp>|<raw body>`, made with
//! Telnyx's key for the account and checked with the account's public key (shown in the
//! Mission Control portal).
//!
//! The rules follow Telnyx's SDKs (python, node, go, java, ruby): the timestamp is signed as
//! the exact header string, the body as the exact raw bytes (never re-serialized JSON), and a
//! timestamp more than the tolerance (default 300 s) before **or after** `now` is refused
//! before any signature work, which bounds how long a captured request can be replayed.
//! `now` is a parameter so that verification stays pure and testable.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::VerifyError;

/// The header that carries the base64 Ed25519 signature.
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";

/// The header that carries the Unix-seconds timestamp.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// How far the timestamp may be from `now`, either way: Telnyx's SDKs use 300 s.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// An Ed25519 public key length.
pub const PUBLIC_KEY_LEN: usize = 32;

const SIGNATURE_LEN: usize = 64;

/// An account's webhook public key (32 bytes). Public, so it prints in full.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Parses the standard-base64 form shown in the Telnyx portal.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedPublicKey`] for invalid base64 or a length other than 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, VerifyError> {
        crate::decode_fixed(text.trim())
            .map(Self)
            .map_err(|reason| VerifyError::MalformedPublicKey { reason })
    }

    /// Wraps raw key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Whether this is the encoding of a point of small order, whatever its sign bit: such a
    /// key verifies forged signatures, so [`verify`] never uses it.
    fn has_small_order(&self) -> bool {
        let mut y = self.0;
        y[PUBLIC_KEY_LEN - 1] &= 0x7f;
        SMALL_ORDER_ENCODINGS.contains(&y)
    }

    /// The standard-base64 form, as the portal shows it.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_base64()).finish()
    }
}

/// Verifies a webhook against one or more public keys (several during a key change) and
/// returns the index of the key that matched.
///
/// `body` is the raw request body; the headers are the values of `telnyx-signature-ed25519`
/// and `telnyx-timestamp` if present (look them up case-insensitively, as `http::HeaderMap`
/// does); `now` is the current time and `tolerance` the allowed clock distance
/// ([`DEFAULT_TOLERANCE`]); exactly `tolerance` away is accepted.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`], [`VerifyError::MalformedTimestamp`],
/// [`VerifyError::StaleTimestamp`], [`VerifyError::FutureTimestamp`],
/// [`VerifyError::MalformedSignature`] (not base64 of 64 bytes),
/// [`VerifyError::NoVerificationKeys`] (no key, or only keys of small order, which would accept
/// forgeries) or [`VerifyError::BadSignature`], checked in that order.
pub fn verify(
    body: &[u8],
    signature_header: Option<&str>,
    timestamp_header: Option<&str>,
    keys: &[PublicKey],
    now: SystemTime,
    tolerance: Duration,
) -> Result<usize, VerifyError> {
    let signature_header = signature_header.ok_or(VerifyError::MissingHeader {
        header: SIGNATURE_HEADER,
    })?;
    let timestamp = timestamp_header.ok_or(VerifyError::MissingHeader {
        header: TIMESTAMP_HEADER,
    })?;
    check_timestamp(timestamp, now, tolerance)?;
    let signature: [u8; SIGNATURE_LEN] =
        crate::decode_fixed(signature_header).map_err(|reason| {
            VerifyError::MalformedSignature {
                header: SIGNATURE_HEADER,
                reason,
            }
        })?;
    // A small-order key is skipped, never used: ring, like most Ed25519 verifiers, accepts a
    // signature with `R = [S]B` under such a key for any message (always for the identity, one
    // try in 2, 4 or 8 for the others), so it would verify forgeries. Operators paste keys, and
    // an all-zero placeholder is one of them.
    if keys.iter().all(PublicKey::has_small_order) {
        return Err(VerifyError::NoVerificationKeys);
    }
    let message = signed_message(timestamp, body);
    keys.iter()
        .position(|key| {
            !key.has_small_order()
                && UnparsedPublicKey::new(&ED25519, key.as_bytes())
                    .verify(&message, &signature)
                    .is_ok()
        })
        .ok_or(VerifyError::BadSignature)
}

/// The encodings of the eight points of small order (1, 2, 4 or 8) on Ed25519, without the
/// sign bit of x: y = 0, 1, the two order-8 values, p − 1, and the non-canonical p and p + 1.
/// The same list as libsodium's `has_small_order`.
const SMALL_ORDER_ENCODINGS: [[u8; PUBLIC_KEY_LEN]; 7] = [
    [0; PUBLIC_KEY_LEN],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    p_plus(0xec),
    p_plus(0xed),
    p_plus(0xee),
];

/// The little-endian encoding of 2^255 − 19 + (`low` − 0xed), for the three values near p.
const fn p_plus(low: u8) -> [u8; PUBLIC_KEY_LEN] {
    let mut out = [0xff; PUBLIC_KEY_LEN];
    out[0] = low;
    out[PUBLIC_KEY_LEN - 1] = 0x7f;
    out
}

fn check_timestamp(header: &str, now: SystemTime, tolerance: Duration) -> Result<(), VerifyError> {
    let malformed = VerifyError::MalformedTimestamp {
        header: TIMESTAMP_HEADER,
    };
    // Digits only: `str::parse` would also take a sign, and the SDKs' lenient parsers (python's
    // `int` takes spaces and underscores) are not worth copying.
    if header.is_empty() || !header.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    let timestamp: u64 = header.parse().map_err(|_| malformed)?;
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i128::from(since.as_secs()),
        Err(before) => -i128::from(before.duration().as_secs()),
    };
    let tolerance_secs = tolerance.as_secs();
    let distance = now - i128::from(timestamp);
    let saturate = |d: i128| u64::try_from(d).unwrap_or(u64::MAX);
    if distance > i128::from(tolerance_secs) {
        return Err(VerifyError::StaleTimestamp {
            age_secs: saturate(distance),
            tolerance_secs,
        });
    }
    if -distance > i128::from(tolerance_secs) {
        return Err(VerifyError::FutureTimestamp {
            ahead_secs: saturate(-distance),
            tolerance_secs,
        });
    }
    Ok(())
}

fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'|');
    message.extend_from_slice(body);
    message
}

/// The two headers of a signed webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The `telnyx-signature-ed25519` value.
    pub signature: String,
    /// The `telnyx-timestamp` value.
    pub timestamp: String,
}

/// Signs webhooks the way Telnyx does, **for the carrier emulator and tests only**: the real
/// private key is Telnyx's and never reaches the gateway. Its `Debug` shows the public key only.
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A fresh random key pair.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedSigningKey`] if the system random generator fails.
    pub fn generate() -> Result<Self, VerifyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| {
            VerifyError::MalformedSigningKey {
                reason: "random generator failed",
            }
        })?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// From a raw 32-byte Ed25519 seed (the form Telnyx's SDK tests publish).
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedSigningKey`] if the seed is not 32 bytes.
    pub fn from_seed(seed: &[u8]) -> Result<Self, VerifyError> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(|pair| Self { pair })
            .map_err(|_| VerifyError::MalformedSigningKey {
                reason: "a seed is 32 bytes",
            })
    }

    /// From the standard-base64 form of a 32-byte seed.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedSigningKey`] for invalid base64 or a wrong length.
    pub fn from_seed_base64(text: &str) -> Result<Self, VerifyError> {
        let seed: [u8; 32] = crate::decode_fixed(text.trim())
            .map_err(|reason| VerifyError::MalformedSigningKey { reason })?;
        Self::from_seed(&seed)
    }

    /// From a PKCS#8 v1 or v2 document.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedSigningKey`] if ring rejects the document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, VerifyError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map(|pair| Self { pair })
            .map_err(|_| VerifyError::MalformedSigningKey {
                reason: "not an ed25519 pkcs#8 document",
            })
    }

    /// The public key that verifies this signer's webhooks.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// Signs `body` as sent at Unix second `timestamp`.
    #[must_use]
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> SignedHeaders {
        let timestamp = timestamp.to_string();
        let signature = self.pair.sign(&signed_message(&timestamp, body));
        SignedHeaders {
            signature: STANDARD.encode(signature.as_ref()),
            timestamp,
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}
