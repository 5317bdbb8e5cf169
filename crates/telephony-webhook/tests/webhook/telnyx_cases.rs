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
