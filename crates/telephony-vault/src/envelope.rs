//! The stored text form of a ciphertext and the associated data that binds it to its owner.
//!
//! Text form: `v1:<key version>:<base64url without padding of nonce ‖ ciphertext ‖ tag>`.
//! It is ASCII without spaces or quotes, so it fits a `TEXT` column, a log-free debug dump of a
//! row, or a CSV export without escaping. The format and key version stay readable so that a
//! rotation job can find what still needs rewrapping without a key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::NONCE_LEN;

use crate::{Aad, VaultError};

/// The only ciphertext format so far.
pub(crate) const FORMAT_V1: &str = "v1";

/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// A parsed ciphertext text: the key version and the raw `nonce ‖ ciphertext ‖ tag` bytes.
pub(crate) struct Envelope {
    pub(crate) key_version: u32,
    pub(crate) payload: Vec<u8>,
}

/// Reads the header only: format and key version.
pub(crate) fn parse_header(text: &str) -> Result<(u32, &str), VaultError> {
    let mut parts = text.splitn(3, ':');
    let format = parts.next().unwrap_or_default();
    let (Some(version), Some(body)) = (parts.next(), parts.next()) else {
        return Err(VaultError::MalformedCiphertext {
            reason: "expected `<format>:<key version>:<data>`",
        });
    };
    if format != FORMAT_V1 {
        return Err(VaultError::UnsupportedFormat);
    }
    let key_version = parse_version(version).ok_or(VaultError::MalformedCiphertext {
        reason: "key version is not a positive integer",
    })?;
    Ok((key_version, body))
}

/// Parses the whole text.
pub(crate) fn parse(text: &str) -> Result<Envelope, VaultError> {
    let (key_version, body) = parse_header(text)?;
    let payload = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| VaultError::MalformedCiphertext {
            reason: "data is not base64url",
        })?;
    if payload.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::MalformedCiphertext {
            reason: "data is shorter than a nonce and a tag",
        });
    }
    Ok(Envelope {
        key_version,
        payload,
    })
}

/// Formats `nonce ‖ ciphertext ‖ tag` under a key version.
pub(crate) fn format(key_version: u32, payload: &[u8]) -> String {
    let mut out = String::with_capacity(16 + payload.len().div_ceil(3) * 4);
    out.push_str(FORMAT_V1);
    out.push(':');
    out.push_str(&key_version.to_string());
    out.push(':');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    out
}

/// A strictly decimal, positive `u32` (no sign, no spaces), so that one version has one spelling.
pub(crate) fn parse_version(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// The associated data: a domain label, the format, the key version and the owner's identity,
/// each field length-prefixed so that no two different owners encode to the same bytes
/// (`("ab", "c")` and `("a", "bc")` differ).
pub(crate) fn associated_data(key_version: u32, aad: &Aad<'_>) -> Vec<u8> {
    const LABEL: &[u8] = b"telephony-vault/v1";
    let fields = [aad.org_id, aad.connection_id, aad.field];
    let len = LABEL.len() + 4 + fields.iter().map(|f| 8 + f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(LABEL);
    out.extend_from_slice(&key_version.to_be_bytes());
    for field in fields {
        // usize -> u64 is lossless on every platform Rust supports.
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}
