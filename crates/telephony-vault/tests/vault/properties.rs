//! Properties over arbitrary input: no panic on any text, round trips for any owner.

use proptest::prelude::*;
use telephony_vault::{Aad, KeyRing, SecretString};

use super::{OWNER, fixed_ring};

proptest! {
    #[test]
    fn decrypting_arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = fixed_ring().decrypt(&text, &OWNER);
        let _ = KeyRing::key_version_of(&text);
    }

    #[test]
    fn decrypting_arbitrary_well_framed_text_never_panics(version in 0u32..4, body in "[A-Za-z0-9_-]{0,120}") {
        let _ = fixed_ring().decrypt(&format!("v1:{version}:{body}"), &OWNER);
    }

    #[test]
    fn parsing_arbitrary_key_specs_never_panics(spec in "(.|\n){0,300}") {
        let _ = KeyRing::from_base64_keys(&spec);
    }

    #[test]
    fn any_secret_round_trips_for_any_owner(
        secret in ".{0,100}", org in ".{0,40}", conn in ".{0,40}", field in ".{0,20}"
    ) {
        let ring = fixed_ring();
        let aad = Aad { org_id: &org, connection_id: &conn, field: &field };
        let c = ring.encrypt(&SecretString::new(secret.clone()), &aad).expect("encrypt");
        let back = ring.decrypt(&c, &aad).expect("decrypt");
        prop_assert_eq!(back.expose(), secret.as_str());
    }

    #[test]
    fn a_ciphertext_never_decrypts_for_another_owner(
        a in (".{0,12}", ".{0,12}", ".{0,12}"), b in (".{0,12}", ".{0,12}", ".{0,12}"),
    ) {
        prop_assume!(a != b);
        let ring = fixed_ring();
        let c = ring.encrypt(&SecretString::new("token"), &owner(&a)).expect("encrypt");
        let moved = ring.decrypt(&c, &owner(&b));
        let refused = matches!(moved, Err(telephony_vault::VaultError::DecryptionFailed { .. }));
        prop_assert!(refused, "decrypted for another owner");
    }
}

fn owner(t: &(String, String, String)) -> Aad<'_> {
    Aad {
        org_id: &t.0,
        connection_id: &t.1,
        field: &t.2,
    }
}
