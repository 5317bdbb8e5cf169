//! Carrier webhook signature verification: Twilio's `X-Twilio-Signature` (HMAC-SHA1 over the
//! URL and sorted parameters, and the `bodySHA256` variant for JSON bodies) and Telnyx's
//! Ed25519 `telnyx-signature-ed25519` over `timestamp|body`.
//!
//! # Design
//!
//! This runs on the inbound call path for every webhook, before anything else is trusted: a
//! request that fails here gets a 403 and no routing. So it is pure, synchronous and cheap:
//! plain functions over strings and bytes, `now` passed in for the timestamp window, a few
//! small allocations at most, and `ring` for every primitive and comparison (constant time).
//!
//! Each carrier module follows the carrier's own helper libraries, including their quirks
//! (Twilio's two port forms, repeated parameters, the raw-URL rules; Telnyx's two-sided
//! timestamp tolerance), pinned by their published test vectors under `tests/vectors/`.
//! Several tokens or keys are accepted at once so that a credential rotation has a grace
//! period; the index of the one that matched is returned so the caller can tell when the old
//! one is no longer used.
//!
//! Every failure is a [`VerifyError`] variant; no input, however malformed, panics (property
//! tests and fuzz targets hold this). Signers are included for the carrier emulator and tests.
//!
//! # What it must not know
//!
//! No HTTP framework, no I/O, no storage, no clock, no logging. It does not know where tokens
//! and keys come from (the caller decrypts them with `telephony-vault` and passes them in), how
//! the public URL was reconstructed, or what a webhook means once verified.

mod error;
pub mod telnyx;
pub mod twilio;

pub use error::VerifyError;

/// Decodes standard base64 (padding required, canonical trailing bits) into exactly `N` bytes.
/// Strictness matters: a lenient decoder would let two header spellings carry one signature.
fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], &'static str> {
    use base64::Engine as _;
    // Room for one more base64 quantum, so an over-long value reads as "wrong size" rather
    // than an output-buffer error, without decoding arbitrarily long input.
    let mut buf = [0u8; 96];
    if N + 3 > buf.len() || text.len() > (N + 3).div_ceil(3) * 4 {
        return Err("wrong length");
    }
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(text, &mut buf)
        .map_err(|_| "not base64")?;
    let mut out = [0u8; N];
    if len != N {
        return Err("wrong length");
    }
    out.copy_from_slice(&buf[..len]);
    Ok(out)
}
