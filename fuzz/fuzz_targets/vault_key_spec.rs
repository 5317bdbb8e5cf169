//! Vault key-file / environment-value parsing of arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_vault::KeyRing;

fuzz_target!(|spec: &str| {
    if let Ok(ring) = KeyRing::from_base64_keys(spec) {
        assert!(ring.versions().contains(&ring.active_version()));
        let _ = format!("{ring:?}");
    }
});
