//! Master-key rotation without downtime: stage, activate, rewrap, retire.

use telephony_vault::{Aad, KeyRing, SecretString, VaultError};

use super::{OWNER, fixed_ring};

#[test]
fn old_ciphertexts_still_decrypt_after_a_new_active_key() {
    let v1 = fixed_ring();
    let token = SecretString::new("rotating-token");
    let old = v1.encrypt(&token, &OWNER).expect("encrypt");

    let v2 = v1.with_new_active_key().expect("rotate");
    assert_eq!(v2.active_version(), 2);
    assert_eq!(v2.versions(), [1, 2]);
    assert_eq!(v1.active_version(), 1, "the original ring is unchanged");

    assert_eq!(
        v2.decrypt(&old, &OWNER).expect("old").expose(),
        "rotating-token"
    );
    let new = v2.encrypt(&token, &OWNER).expect("encrypt");
    assert_eq!(KeyRing::key_version_of(&new).expect("header"), 2);
    assert!(matches!(
        v1.decrypt(&new, &OWNER),
        Err(VaultError::UnknownKeyVersion { version: 2 })
    ));
}

#[test]
fn rewrap_moves_a_ciphertext_to_the_active_key_and_then_the_old_key_can_go() {
    let v1 = fixed_ring();
    let owners = [
        OWNER,
        Aad {
            field: "api_key_secret",
            ..OWNER
        },
    ];
    let stored: Vec<String> = owners
        .iter()
        .map(|aad| {
            v1.encrypt(&SecretString::new(aad.field), aad)
                .expect("encrypt")
        })
        .collect();

    let v2 = v1.with_new_active_key().expect("rotate");
    assert!(!v2.is_current(&stored[0]).expect("header"));
    // Only the first row is rewrapped before the old key is removed.
    let rewrapped = v2.rewrap(&stored[0], &owners[0]).expect("rewrap");
    assert_eq!(KeyRing::key_version_of(&rewrapped).expect("header"), 2);
    assert!(v2.is_current(&rewrapped).expect("header"));
    // Rewrapping keeps the owner binding.
    assert!(matches!(
        v2.rewrap(&stored[0], &owners[1]),
        Err(VaultError::DecryptionFailed { version: 1 })
    ));

    let retired = v2.without_key(1).expect("remove v1");
    assert_eq!(retired.versions(), [2]);
    assert_eq!(
        retired
            .decrypt(&rewrapped, &owners[0])
            .expect("rewrapped")
            .expose(),
        "auth_token"
    );
    let err = retired
        .decrypt(&stored[1], &owners[1])
        .expect_err("never rewrapped");
    assert!(matches!(err, VaultError::UnknownKeyVersion { version: 1 }));
    assert_eq!(
        err.to_string(),
        "ciphertext was encrypted with master key version 1, which is not loaded"
    );
}

#[test]
fn a_staged_key_decrypts_but_does_not_encrypt_until_activated() {
    let staged = fixed_ring().with_staged_key().expect("stage");
    assert_eq!(staged.versions(), [1, 2]);
    assert_eq!(staged.active_version(), 1);
    let c = staged
        .encrypt(&SecretString::new("s"), &OWNER)
        .expect("encrypt");
    assert_eq!(KeyRing::key_version_of(&c).expect("header"), 1);

    let active = staged.with_active_version(2).expect("activate");
    let c2 = active
        .encrypt(&SecretString::new("s"), &OWNER)
        .expect("encrypt");
    assert_eq!(KeyRing::key_version_of(&c2).expect("header"), 2);
    // An instance still on the staged ring reads what the activated one wrote.
    assert_eq!(staged.decrypt(&c2, &OWNER).expect("decrypt").expose(), "s");
}

#[test]
fn the_active_key_cannot_be_removed_nor_an_unknown_one_activated() {
    let ring = fixed_ring().with_new_active_key().expect("rotate");
    assert!(matches!(
        ring.without_key(2),
        Err(VaultError::RemovingActiveKey { version: 2 })
    ));
    assert!(matches!(
        ring.with_active_version(5),
        Err(VaultError::UnknownActiveVersion { version: 5 })
    ));
    assert_eq!(ring.without_key(42).expect("no-op").versions(), [1, 2]);
}

#[test]
fn key_versions_run_out_with_an_error_not_an_overflow() {
    let ring = KeyRing::from_base64_keys("4294967295:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("max version");
    assert!(matches!(
        ring.with_new_active_key(),
        Err(VaultError::KeyVersionOverflow)
    ));
}

#[test]
fn a_key_ring_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<KeyRing>();

    let ring = fixed_ring();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let secret = SecretString::new(format!("token-{i}"));
                let c = ring.encrypt(&secret, &OWNER).expect("encrypt");
                ring.decrypt(&c, &OWNER)
                    .expect("decrypt")
                    .expose()
                    .to_owned()
            })
        })
        .collect();
    let got: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(got, ["token-0", "token-1", "token-2", "token-3"]);
}
