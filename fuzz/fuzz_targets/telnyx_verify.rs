//! Telnyx verification with arbitrary headers, body, key text and clock.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use telephony_webhook::telnyx;

fuzz_target!(|input: (
    Vec<u8>,
    Option<String>,
    Option<String>,
    String,
    [u8; 32],
    u32,
    u16
)| {
    let (body, signature, timestamp, key_text, key, now, tolerance) = input;
    let mut keys = vec![telnyx::PublicKey::from_bytes(key)];
    if let Ok(parsed) = telnyx::PublicKey::from_base64(&key_text) {
        keys.push(parsed);
    }
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(now));
    let tolerance = Duration::from_secs(u64::from(tolerance));
    if let Ok(index) = telnyx::verify(
        &body,
        signature.as_deref(),
        timestamp.as_deref(),
        &keys,
        now,
        tolerance,
    ) {
        assert!(index < keys.len());
    }
});
