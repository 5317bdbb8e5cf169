//! Encryption and decryption: known answers, tampering, owners, formats.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashSet;
use telephony_vault::{Aad, KeyRing, SecretString, VaultError};

use super::{OWNER, fixed_ring};

/// Vectors produced by `vectors/gen_vault_kat.py` with an implementation independent of ring;
/// the sealing direction is checked by a unit test inside the crate (only it may pick a nonce).
#[test]
fn known_answer_vectors_decrypt_to_their_plaintext() {
    let vectors = include_str!("../vectors/vault_kat.txt");
    let mut checked = 0;
    for block in vectors.split("\n\n") {
        let fields: Vec<(&str, &str)> = block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(" =")?;
                Some((k, v.strip_prefix(' ').unwrap_or(v)))
            })
            .collect();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("vector lacks {name}:\n{block}"))
        };
        if fields.is_empty() {
            continue;
        }
        let ring = KeyRing::from_base64_keys(&format!("{}:{}", get("key_version"), get("key")))
            .expect("vector key");
        let aad = Aad {
            org_id: get("org"),
            connection_id: get("connection"),
            field: get("field"),
        };
        let secret = ring.decrypt(get("ciphertext"), &aad).expect(block);
        assert_eq!(secret.expose(), get("plaintext"), "{block}");
        assert_eq!(
            KeyRing::key_version_of(get("ciphertext")).expect("header"),
            get("key_version").parse::<u32>().expect("version"),
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn a_secret_round_trips_for_its_owner() {
    let ring = fixed_ring();
    let token = SecretString::new("0123456789abcdef0123456789abcdef");
    let ciphertext = ring.encrypt(&token, &OWNER).expect("encrypt");
    assert!(ciphertext.starts_with("v1:1:"), "{ciphertext}");
    assert!(
        ciphertext.bytes().all(|b| b.is_ascii_graphic()),
        "stored text must be plain ASCII: {ciphertext}"
    );
    assert!(!ciphertext.contains(token.expose()));
    let back = ring.decrypt(&ciphertext, &OWNER).expect("decrypt");
    assert!(back.ct_eq(&token));
}

#[test]
fn encrypting_twice_gives_different_ciphertexts() {
    let ring = fixed_ring();
    let token = SecretString::new("same");
    let a = ring.encrypt(&token, &OWNER).expect("encrypt");
    let b = ring.encrypt(&token, &OWNER).expect("encrypt");
    assert_ne!(a, b);
}

#[test]
fn nonces_do_not_repeat_over_100k_encryptions() {
    let ring = fixed_ring();
    let token = SecretString::new("x");
    let mut seen = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let text = ring.encrypt(&token, &OWNER).expect("encrypt");
        let payload = URL_SAFE_NO_PAD
            .decode(text.rsplit(':').next().expect("payload"))
            .expect("base64url");
        let nonce: [u8; 12] = payload[..12].try_into().expect("nonce");
        assert!(
            seen.insert(nonce),
            "nonce repeated after {} draws",
            seen.len()
        );
    }
}

/// A ciphertext copied to another organization, connection or field must not decrypt.
#[test]
fn a_ciphertext_moved_to_another_owner_is_refused() {
    let ring = fixed_ring();
    let ciphertext = ring
        .encrypt(&SecretString::new("token-of-org-a"), &OWNER)
        .expect("encrypt");
    let elsewhere = [
        Aad {
            org_id: "org_b",
            ..OWNER
        },
        Aad {
            connection_id: "conn_2",
            ..OWNER
        },
        Aad {
            field: "api_key_secret",
            ..OWNER
        },
        // Same bytes, other boundaries: length prefixes keep them apart.
        Aad {
            org_id: "org_a",
            connection_id: "conn_1a",
            field: "uth_token",
        },
        Aad {
            org_id: "",
            connection_id: "",
            field: "",
        },
    ];
    for aad in elsewhere {
        let err = ring
            .decrypt(&ciphertext, &aad)
            .expect_err("must not decrypt");
        assert!(
            matches!(err, VaultError::DecryptionFailed { version: 1 }),
            "{aad:?}: {err:?}"
        );
    }
}

/// Every single byte of the payload (nonce, ciphertext, tag) is covered by authentication.
#[test]
fn any_altered_byte_of_nonce_ciphertext_or_tag_is_refused() {
    let ring = fixed_ring();
    let ciphertext = ring
        .encrypt(&SecretString::new("0123456789abcdef"), &OWNER)
        .expect("encrypt");
    let payload = URL_SAFE_NO_PAD
        .decode(ciphertext.rsplit(':').next().expect("payload"))
        .expect("base64url");
    for index in 0..payload.len() {
        for bit in [0x01, 0x80] {
            let mut altered = payload.clone();
            altered[index] ^= bit;
            let text = format!("v1:1:{}", URL_SAFE_NO_PAD.encode(&altered));
            let err = ring.decrypt(&text, &OWNER).expect_err("altered must fail");
            assert!(
                matches!(err, VaultError::DecryptionFailed { .. }),
                "byte {index}: {err:?}"
            );
        }
    }
    // Truncating the tag is also refused.
    let text = format!(
        "v1:1:{}",
        URL_SAFE_NO_PAD.encode(&payload[..payload.len() - 1])
    );
    assert!(matches!(
        ring.decrypt(&text, &OWNER),
        Err(VaultError::DecryptionFailed { .. })
    ));
}

#[test]
fn a_ciphertext_claiming_another_key_version_is_refused() {
    let ring = fixed_ring().with_new_active_key().expect("rotate");
    let old = fixed_ring()
        .encrypt(&SecretString::new("s"), &OWNER)
        .expect("encrypt");
    // Relabel a version-1 ciphertext as version 2: the key and the associated data differ.
    let relabelled = old.replacen("v1:1:", "v1:2:", 1);
    assert!(matches!(
        ring.decrypt(&relabelled, &OWNER),
        Err(VaultError::DecryptionFailed { version: 2 })
    ));
}

#[test]
fn text_that_is_not_a_vault_ciphertext_gets_a_typed_error() {
    let ring = fixed_ring();
    let cases: &[(&str, &str)] = &[
        ("", "malformed"),
        ("plaintext-token", "malformed"),
        ("v1:1", "malformed"),
        ("v2:1:AAAA", "unsupported"),
        ("V1:1:AAAA", "unsupported"),
        ("v1:0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("v1:01:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("v1:+1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("v1:99999999999:AAAA", "malformed"),
        ("v1:1:not base64!", "malformed"),
        ("v1:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "malformed"),
        ("v1:1:AAAA", "malformed"),
        ("v1:9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "unknown key"),
    ];
    for (text, expected) in cases {
        let err = ring.decrypt(text, &OWNER).expect_err(text);
        let kind = match err {
            VaultError::MalformedCiphertext { .. } => "malformed",
            VaultError::UnsupportedFormat => "unsupported",
            VaultError::UnknownKeyVersion { version: 9 } => "unknown key",
            other => panic!("{text:?}: unexpected {other:?}"),
        };
        assert_eq!(kind, *expected, "{text:?}");
    }
}

#[test]
fn error_messages_name_the_problem_and_never_the_data() {
    let ring = fixed_ring();
    let ciphertext = ring
        .encrypt(&SecretString::new("super-secret-token"), &OWNER)
        .expect("encrypt");
    let messages = [
        ring.decrypt(
            &ciphertext,
            &Aad {
                org_id: "org_b",
                ..OWNER
            },
        ),
        ring.decrypt("v1:9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &OWNER),
        ring.decrypt("v1:1:AAAA", &OWNER),
        ring.decrypt("v7:1:AAAA", &OWNER),
    ]
    .map(|r| r.expect_err("fails").to_string());
    expect_test::expect![[r#"
        [
            "ciphertext does not authenticate under master key version 1 for this owner (altered, or moved from another row or field)",
            "ciphertext was encrypted with master key version 9, which is not loaded",
            "malformed ciphertext: data is shorter than a nonce and a tag",
            "unsupported ciphertext format",
        ]
    "#]]
    .assert_debug_eq(&messages);
    let payload = ciphertext.rsplit(':').next().expect("payload");
    assert!(messages.iter().all(|m| !m.contains(payload)));
}
