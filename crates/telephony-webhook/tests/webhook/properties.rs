//! Properties: no input panics; sign-then-verify round-trips; any single-bit change fails.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use telephony_vault::SecretString;
use telephony_webhook::{telnyx, twilio};

fn url() -> impl Strategy<Value = String> {
    // Ports of 2 to 5 digits: the port forms the verifier tries differ from the URL by 3 or more
    // bytes, so no single-bit change can land on one of them.
    "https?://[a-z]{1,10}\\.example(:[1-9][0-9]{1,4})?/[a-zA-Z0-9/_.-]{0,20}(\\?[a-z0-9=&]{0,20})?"
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[A-Za-z]{1,8}", "[ -~]{0,12}"), 0..8)
}

fn flip(text: &str, index: usize, bit: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let index = index % bytes.len();
    // Bits 0 to 6 only: the text is ASCII and stays valid UTF-8.
    bytes[index] ^= 1 << (bit % 7);
    String::from_utf8(bytes).unwrap_or_default()
}

proptest! {
    #[test]
    fn twilio_verification_never_panics(
        url in ".{0,80}",
        params in prop::collection::vec((".{0,10}", ".{0,10}"), 0..6),
        header in prop::option::of(".{0,40}"),
        token in ".{0,40}",
    ) {
        let token = SecretString::new(token);
        let _ = twilio::verify(&url, &params, header.as_deref(), &[&token]);
        let _ = twilio::verify_json_body(&url, url.as_bytes(), header.as_deref(), &[&token]);
    }

    #[test]
    fn twilio_verification_of_url_shaped_input_never_panics(
        url in "[a-zA-Z]{1,6}://[a-z@:\\[\\]0-9.]{0,20}[/?#]?[ -~\u{80}-\u{10ffff}]{0,30}",
        header in "[A-Za-z0-9+/=]{0,40}",
    ) {
        let token = SecretString::new("t");
        let no_params: [(&str, &str); 0] = [];
        let _ = twilio::verify(&url, &no_params, Some(&header), &[&token]);
        let _ = twilio::verify_json_body(&url, b"{}", Some(&header), &[&token]);
    }

    #[test]
    fn twilio_sign_then_verify_round_trips(url in url(), params in params(), token in "[ -~]{1,40}") {
        let token = SecretString::new(token);
        let signature = twilio::sign(&url, &params, &token);
        prop_assert_eq!(twilio::verify(&url, &params, Some(&signature), &[&token]), Ok(0));
    }

    #[test]
    fn twilio_any_single_bit_change_fails(
        url in url(), params in params(), index in any::<usize>(), bit in any::<u8>(), target in 0..3u8,
    ) {
        let token = SecretString::new("0123456789abcdef0123456789abcdef");
        let signature = twilio::sign(&url, &params, &token);
        let (mut url2, mut params2, mut signature2) = (url.clone(), params.clone(), signature.clone());
        match target {
            0 => url2 = flip(&url, index, bit),
            1 if !params.is_empty() => {
                let which = index % params.len();
                let (name, value) = &mut params2[which];
                if value.is_empty() || bit % 2 == 0 {
                    *name = flip(name, index / 7, bit);
                } else {
                    *value = flip(value, index / 7, bit);
                }
            }
            _ => signature2 = flip(&signature, index, bit),
        }
        // Only changes that alter what is signed, or the signature, must fail: swapping one
        // duplicate for another leaves the signed string identical by design.
        prop_assume!(
            signature2 != signature
                || twilio::string_to_sign(&url2, &params2) != twilio::string_to_sign(&url, &params)
        );
        prop_assert!(twilio::verify(&url2, &params2, Some(&signature2), &[&token]).is_err());
    }

    #[test]
    fn twilio_json_any_single_bit_change_of_the_body_fails(
        url in url(), body in prop::collection::vec(any::<u8>(), 1..200), index in any::<usize>(), bit in 0..8u8,
    ) {
        let token = SecretString::new("token");
        let (signed_url, signature) = twilio::sign_json_body(&url, &body, &token);
        prop_assert_eq!(twilio::verify_json_body(&signed_url, &body, Some(&signature), &[&token]), Ok(0));
        let mut altered = body.clone();
        altered[index % body.len()] ^= 1 << bit;
        prop_assert_eq!(
            twilio::verify_json_body(&signed_url, &altered, Some(&signature), &[&token]),
            Err(telephony_webhook::VerifyError::BodyHashMismatch)
        );
    }

    #[test]
    fn telnyx_verification_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..100),
        signature in prop::option::of(".{0,100}"),
        timestamp in prop::option::of(".{0,25}"),
        now in any::<u64>(),
        tolerance in any::<u64>(),
        key in prop::array::uniform32(any::<u8>()),
    ) {
        let keys = [telnyx::PublicKey::from_bytes(key)];
        let _ = telnyx::verify(
            &body,
            signature.as_deref(),
            timestamp.as_deref(),
            &keys,
            UNIX_EPOCH + Duration::from_secs(now / 2),
            Duration::from_secs(tolerance),
        );
    }

    #[test]
    fn telnyx_key_parsing_never_panics(text in ".{0,100}") {
        let _ = telnyx::PublicKey::from_base64(&text);
        let _ = telnyx::Signer::from_seed_base64(&text);
        let _ = telnyx::Signer::from_pkcs8(text.as_bytes());
    }

    #[test]
    fn telnyx_sign_then_verify_round_trips_and_any_single_bit_change_fails(
        seed in prop::array::uniform32(any::<u8>()),
        body in prop::collection::vec(any::<u8>(), 0..300),
        timestamp in 1_000_000_000u64..4_000_000_000,
        index in any::<usize>(),
        bit in 0..8u8,
        target in 0..3u8,
    ) {
        let signer = telnyx::Signer::from_seed(&seed).expect("32-byte seed");
        let keys = [signer.public_key()];
        let headers = signer.sign(timestamp, &body);
        let now = UNIX_EPOCH + Duration::from_secs(timestamp);
        let verify = |body: &[u8], signature: &str, ts: &str| {
            telnyx::verify(body, Some(signature), Some(ts), &keys, now, telnyx::DEFAULT_TOLERANCE)
        };
        prop_assert_eq!(verify(&body, &headers.signature, &headers.timestamp), Ok(0));
        let mut body2 = body.clone();
        let (mut signature2, mut timestamp2) = (headers.signature.clone(), headers.timestamp.clone());
        match target {
            0 if !body.is_empty() => body2[index % body.len()] ^= 1 << bit,
            1 => timestamp2 = flip(&headers.timestamp, index, bit),
            _ => signature2 = flip(&headers.signature, index, bit),
        }
        prop_assume!(body2 != body || signature2 != headers.signature || timestamp2 != headers.timestamp);
        prop_assert!(verify(&body2, &signature2, &timestamp2).is_err());
    }
}
