//! Vault decryption of arbitrary stored text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_vault::{Aad, KeyRing};

fuzz_target!(|text: &str| {
    let ring = KeyRing::from_base64_keys(
        "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    )
    .expect("fixed spec");
    let aad = Aad {
        org_id: "org",
        connection_id: "conn",
        field: "auth_token",
    };
    let _ = KeyRing::key_version_of(text);
    // Forging a valid AES-GCM tag by chance is not a thing a fuzzer finds: any success is a bug.
    assert!(ring.decrypt(text, &aad).is_err());
});
