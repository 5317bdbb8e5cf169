//! Telnyx behaviour beyond the vectors: signer round trips, key parsing, clock edges.

use std::time::{Duration, UNIX_EPOCH};

use telephony_webhook::{VerifyError, telnyx};

const BODY: &[u8] = br#"{"data":{"event_type":"call.initiated","payload":{"to":"+13129457420"}}}"#;

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_generated_signer_round_trips_and_other_keys_refuse() {
    let signer = telnyx::Signer::generate().expect("signer");
    let stranger = telnyx::Signer::generate().expect("signer");
    let headers = signer.sign(1_800_000_000, BODY);
    let verify = |keys: &[telnyx::PublicKey]| {
        telnyx::verify(
            BODY,
            Some(&headers.signature),
            Some(&headers.timestamp),
            keys,
            at(1_800_000_010),
            telnyx::DEFAULT_TOLERANCE,
        )
    };
    assert_eq!(verify(&[signer.public_key()]), Ok(0));
    assert_eq!(verify(&[stranger.public_key(), signer.public_key()]), Ok(1));
    assert_eq!(
        verify(&[stranger.public_key()]),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_tolerance_is_the_callers_choice_and_reported_in_errors() {
    let signer = telnyx::Signer::generate().expect("signer");
    let headers = signer.sign(1_000, BODY);
    let verify = |now: u64, tolerance: u64| {
        telnyx::verify(
            BODY,
            Some(&headers.signature),
            Some(&headers.timestamp),
            &[signer.public_key()],
            at(now),
            Duration::from_secs(tolerance),
        )
    };
    assert_eq!(verify(1_060, 60), Ok(0));
    assert_eq!(
        verify(1_061, 60),
        Err(VerifyError::StaleTimestamp {
            age_secs: 61,
            tolerance_secs: 60
        })
    );
    assert_eq!(
        verify(900, 60),
        Err(VerifyError::FutureTimestamp {
            ahead_secs: 100,
            tolerance_secs: 60
        })
    );
    // A clock before 1970 is still just a distance.
    assert!(matches!(
        telnyx::verify(
            BODY,
            Some(&headers.signature),
            Some(&headers.timestamp),
            &[signer.public_key()],
            UNIX_EPOCH - Duration::from_secs(5),
            Duration::from_secs(60),
        ),
        Err(VerifyError::FutureTimestamp {
            ahead_secs: 1_005,
            ..
        })
    ));
    // A timestamp beyond u64 seconds is malformed, not a wrap-around.
    assert!(matches!(
        telnyx::verify(
            BODY,
            Some(&headers.signature),
            Some("99999999999999999999999"),
            &[signer.public_key()],
            at(0),
            Duration::MAX
        ),
        Err(VerifyError::MalformedTimestamp { .. })
    ));
}

#[test]
fn keys_and_seeds_parse_strictly() {
    let key = "jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qs=";
    let parsed = telnyx::PublicKey::from_base64(key).expect("key");
    assert_eq!(parsed.to_base64(), key);
    assert_eq!(telnyx::PublicKey::from_bytes(*parsed.as_bytes()), parsed);
    assert_eq!(
        telnyx::PublicKey::from_base64(&format!(" {key}\n")),
        Ok(parsed)
    );
    assert_eq!(format!("{parsed:?}"), format!("PublicKey(\"{key}\")"));
    for bad in [
        "",
        "jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qs",
        "jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qsAAAA",
        "jrMB",
    ] {
        assert!(
            matches!(
                telnyx::PublicKey::from_base64(bad),
                Err(VerifyError::MalformedPublicKey { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        telnyx::Signer::from_seed(&[0; 31]),
        Err(VerifyError::MalformedSigningKey { .. })
    ));
    assert!(matches!(
        telnyx::Signer::from_seed_base64("dGVzdA=="),
        Err(VerifyError::MalformedSigningKey { .. })
    ));
    assert!(matches!(
        telnyx::Signer::from_pkcs8(b"not pkcs8"),
        Err(VerifyError::MalformedSigningKey { .. })
    ));
}

#[test]
fn a_signer_never_prints_its_private_key() {
    let seed = "i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=";
    let signer = telnyx::Signer::from_seed_base64(seed).expect("seed");
    let debug = format!("{signer:?}");
    assert!(!debug.contains(seed.trim_end_matches('=')));
    expect_test::expect![[
        r#"Signer { public_key: PublicKey("jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qs="), .. }"#
    ]]
    .assert_eq(&debug);
}

#[test]
fn every_failure_has_its_own_message() {
    let signer = telnyx::Signer::generate().expect("signer");
    let keys = [signer.public_key()];
    let h = signer.sign(1_000, BODY);
    let run = |sig: Option<&str>, ts: Option<&str>, keys: &[telnyx::PublicKey]| {
        telnyx::verify(BODY, sig, ts, keys, at(1_000), telnyx::DEFAULT_TOLERANCE)
            .expect_err("fails")
            .to_string()
    };
    let messages = [
        run(None, Some(&h.timestamp), &keys),
        run(Some(&h.signature), None, &keys),
        run(Some(&h.signature), Some("1e3"), &keys),
        run(Some(&h.signature), Some("1"), &keys),
        run(Some(&h.signature), Some("99999"), &keys),
        run(Some("!!"), Some(&h.timestamp), &keys),
        run(Some(&h.signature), Some(&h.timestamp), &[]),
        run(Some(&h.signature), Some("1001"), &keys),
    ];
    expect_test::expect![[r#"
        [
            "missing telnyx-signature-ed25519 header",
            "missing telnyx-timestamp header",
            "malformed telnyx-timestamp header: not unix seconds",
            "timestamp is 999s old, beyond the 300s tolerance",
            "timestamp is 98999s in the future, beyond the 300s tolerance",
            "malformed telnyx-signature-ed25519 header: not base64",
            "no verification key configured",
            "signature does not match",
        ]
    "#]]
    .assert_debug_eq(&messages);
}

/// Regression: a small-order public key (the identity `AQAA…`, the all-zero placeholder, …)
/// verifies forged signatures. With the identity, `R = B` (the base point) and `S = 1` satisfy
/// `[S]B = R + [k]A` for every message, so any body and timestamp were accepted.
#[test]
fn a_small_order_public_key_never_verifies_a_forgery() {
    use base64::Engine as _;
    let mut forged = [0u8; 64];
    // The encoding of the base point B, then the scalar 1.
    forged[0] = 0x58;
    forged[1..32].fill(0x66);
    forged[32] = 1;
    let forged = base64::engine::general_purpose::STANDARD.encode(forged);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let identity = telnyx::PublicKey::from_bytes(identity);
    let genuine = telnyx::Signer::generate().expect("signer");
    for body in [BODY, b"{\"forged\":true}".as_slice()] {
        let verify = |keys: &[telnyx::PublicKey]| {
            telnyx::verify(
                body,
                Some(&forged),
                Some("1800000000"),
                keys,
                at(1_800_000_000),
                telnyx::DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(
            verify(&[identity]),
            Err(VerifyError::NoVerificationKeys),
            "only a small-order key"
        );
        assert_eq!(
            verify(&[identity, genuine.public_key()]),
            Err(VerifyError::BadSignature)
        );
    }
    // Every small-order encoding, with either sign bit, is refused the same way.
    for hex in [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ] {
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        for sign in [0, 0x80] {
            key[31] = (key[31] & 0x7f) | sign;
            assert_eq!(
                telnyx::verify(
                    BODY,
                    Some(&forged),
                    Some("1800000000"),
                    &[telnyx::PublicKey::from_bytes(key)],
                    at(1_800_000_000),
                    telnyx::DEFAULT_TOLERANCE,
                ),
                Err(VerifyError::NoVerificationKeys),
                "{hex} sign {sign:#x}"
            );
        }
    }
}
