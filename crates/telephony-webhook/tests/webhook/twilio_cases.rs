//! Twilio behaviour beyond the published vectors: rotation, failure paths, messages.

use telephony_vault::SecretString;
use telephony_webhook::{VerifyError, twilio};

use super::outcome;

const URL: &str = "https://gateway.example.com/v1/webhooks/twilio/voice";

fn params() -> Vec<(String, String)> {
    vec![
        (
            "CallSid".into(),
            "CA0123456789abcdef0123456789abcdef".into(),
        ),
        ("From".into(), "+14155550123".into()),
        ("To".into(), "+14155550100".into()),
    ]
}

#[test]
fn during_a_token_rotation_either_token_verifies_and_the_match_is_reported() {
    let old = SecretString::new("old-token");
    let new = SecretString::new("new-token");
    let by_old = twilio::sign(URL, &params(), &old);
    let by_new = twilio::sign(URL, &params(), &new);
    let both = [&new, &old];
    assert_eq!(twilio::verify(URL, &params(), Some(&by_new), &both), Ok(0));
    assert_eq!(twilio::verify(URL, &params(), Some(&by_old), &both), Ok(1));
    // After the grace period only the new token is passed.
    assert_eq!(
        twilio::verify(URL, &params(), Some(&by_old), &[&new]),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_forged_or_altered_request_is_refused() {
    let token = SecretString::new("token");
    let signature = twilio::sign(URL, &params(), &token);
    let mut changed_value = params();
    changed_value[1].1 = "+14155550124".into();
    let mut extra = params();
    extra.push(("Digits".into(), "1".into()));
    let mut dropped = params();
    dropped.pop();
    for altered in [changed_value, extra, dropped] {
        assert_eq!(
            twilio::verify(URL, &altered, Some(&signature), &[&token]),
            Err(VerifyError::BadSignature)
        );
    }
    for other_url in [
        "https://gateway.example.com/v1/webhooks/twilio/voice/",
        "https://gateway.example.com/v1/webhooks/twilio/voicE",
        "http://gateway.example.com/v1/webhooks/twilio/voice",
        "https://gateway.example.com:8443/v1/webhooks/twilio/voice?x",
        "https://evil.example.com/v1/webhooks/twilio/voice",
    ] {
        assert_eq!(
            outcome(twilio::verify(
                other_url,
                &params(),
                Some(&signature),
                &[&token]
            )),
            "bad_signature",
            "{other_url}"
        );
    }
}

#[test]
fn parameter_order_and_duplicate_values_do_not_matter() {
    let token = SecretString::new("token");
    let signature = twilio::sign(URL, &params(), &token);
    let mut reversed = params();
    reversed.reverse();
    let mut duplicated = params();
    duplicated.push(duplicated[0].clone());
    for same in [reversed, duplicated] {
        assert_eq!(
            twilio::verify(URL, &same, Some(&signature), &[&token]),
            Ok(0)
        );
    }
}

#[test]
fn a_custom_port_is_tried_with_and_without_itself() {
    let token = SecretString::new("token");
    let no_params: [(&str, &str); 0] = [];
    let signed_plain = twilio::sign("https://h.example/cb", &no_params, &token);
    let signed_custom = twilio::sign("https://h.example:8443/cb", &no_params, &token);
    assert_eq!(
        twilio::verify(
            "https://h.example:8443/cb",
            &no_params,
            Some(&signed_plain),
            &[&token]
        ),
        Ok(0)
    );
    assert_eq!(
        twilio::verify(
            "https://h.example:8443/cb",
            &no_params,
            Some(&signed_custom),
            &[&token]
        ),
        Ok(0)
    );
    // The custom port is never added to a URL without one: only the default is.
    assert_eq!(
        twilio::verify(
            "https://h.example/cb",
            &no_params,
            Some(&signed_custom),
            &[&token]
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_json_body_is_checked_against_the_signed_hash() {
    let token = SecretString::new("token");
    let body = br#"{"CallSid":"CA1"}"#;
    let (url, signature) = twilio::sign_json_body(URL, body, &token);
    assert_eq!(
        twilio::verify_json_body(&url, body, Some(&signature), &[&token]),
        Ok(0)
    );
    assert_eq!(
        twilio::verify_json_body(&url, br#"{"CallSid":"CA2"}"#, Some(&signature), &[&token]),
        Err(VerifyError::BodyHashMismatch)
    );
    // An upper-case hash in the URL is a different URL, hence a different signature.
    let (base, hash) = url.split_once("bodySHA256=").expect("hash in url");
    let upper = format!("{base}bodySHA256={}", hash.to_uppercase());
    assert_eq!(
        twilio::verify_json_body(&upper, body, Some(&signature), &[&token]),
        Err(VerifyError::BadSignature)
    );
    // The hash goes into the query, before any fragment.
    let (with_fragment, signature2) =
        twilio::sign_json_body("https://h.example/p#top", body, &token);
    assert!(with_fragment.starts_with("https://h.example/p?bodySHA256="));
    assert!(with_fragment.ends_with("#top"));
    assert_eq!(
        twilio::verify_json_body(&with_fragment, body, Some(&signature2), &[&token]),
        Ok(0)
    );
    // A form webhook whose URL happens to carry bodySHA256 is still verified as a form.
    let no_params: [(&str, &str); 0] = [];
    assert_eq!(
        twilio::verify(&url, &no_params, Some(&signature), &[&token]),
        Ok(0)
    );
}

#[test]
fn every_failure_has_its_own_message() {
    let token = SecretString::new("token");
    let no_params: [(&str, &str); 0] = [];
    let good = twilio::sign(URL, &no_params, &token);
    let messages: Vec<String> = [
        twilio::verify(URL, &no_params, None, &[&token]),
        twilio::verify(URL, &no_params, Some("%%%"), &[&token]),
        twilio::verify(URL, &no_params, Some("dGVzdA=="), &[&token]),
        twilio::verify(URL, &no_params, Some(&good), &[]),
        twilio::verify(
            "gateway.example.com/voice",
            &no_params,
            Some(&good),
            &[&token],
        ),
        twilio::verify("https://h:x/voice", &no_params, Some(&good), &[&token]),
        twilio::verify(&format!("{URL}x"), &no_params, Some(&good), &[&token]),
        twilio::verify_json_body(URL, b"{}", Some(&good), &[&token]),
    ]
    .into_iter()
    .map(|r| r.expect_err("fails").to_string())
    .collect();
    expect_test::expect![[r#"
        [
            "missing X-Twilio-Signature header",
            "malformed X-Twilio-Signature header: not base64",
            "malformed X-Twilio-Signature header: wrong length",
            "no verification key configured",
            "bad url: not an absolute url",
            "bad url: port is not a number",
            "signature does not match",
            "url has no bodySHA256 query parameter",
        ]
    "#]]
    .assert_debug_eq(&messages);
    assert!(messages.iter().all(|m| !m.contains("token")));
}

/// Regression: an empty auth token (a connection whose token is missing) was used as an empty
/// HMAC key, so anyone could sign a forged webhook with the empty key and have it accepted.
#[test]
fn an_empty_auth_token_never_verifies_a_forgery() {
    let empty = SecretString::new("");
    let real = SecretString::new("real-token");
    let forged = twilio::sign(URL, &params(), &empty);
    assert_eq!(
        twilio::verify(URL, &params(), Some(&forged), &[&empty]),
        Err(VerifyError::NoVerificationKeys)
    );
    assert_eq!(
        twilio::verify(URL, &params(), Some(&forged), &[&empty, &real]),
        Err(VerifyError::BadSignature)
    );
    // A real token next to an empty one still verifies, and keeps its index.
    let genuine = twilio::sign(URL, &params(), &real);
    assert_eq!(
        twilio::verify(URL, &params(), Some(&genuine), &[&empty, &real]),
        Ok(1)
    );
    let body = br#"{"CallSid":"CA1"}"#;
    let (url, forged_json) = twilio::sign_json_body(URL, body, &empty);
    assert_eq!(
        twilio::verify_json_body(&url, body, Some(&forged_json), &[&empty]),
        Err(VerifyError::NoVerificationKeys)
    );
    assert_eq!(
        twilio::verify_json_body(&url, body, Some(&forged_json), &[&empty, &real]),
        Err(VerifyError::BadSignature)
    );
}

/// Keys made once (a route cache's) verify exactly as the tokens they come from, and show
/// nothing of them.
#[test]
fn keys_made_beforehand_verify_as_their_tokens_do() {
    let old = SecretString::new("old-token");
    let new = SecretString::new("new-token");
    let (old_key, new_key) = (
        twilio::TwilioKey::new(&old).expect("a key"),
        twilio::TwilioKey::new(&new).expect("a key"),
    );
    assert!(twilio::TwilioKey::new(&SecretString::new("")).is_none());
    assert!(!format!("{old_key:?}").contains("old-token"));
    let by_old = twilio::sign(URL, &params(), &old);
    let by_new = twilio::sign(URL, &params(), &new);
    let both = [&new_key, &old_key];
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&by_new), &both),
        Ok(0)
    );
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&by_old), &both),
        Ok(1)
    );
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&by_old), &[&new_key]),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&by_old), &[]),
        Err(VerifyError::NoVerificationKeys)
    );
    // The URL forms Twilio may have signed are tried as with tokens.
    let with_port = "https://gateway.example.com:443/v1/webhooks/twilio/voice";
    let signed_with_port = twilio::sign(with_port, &params(), &new);
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&signed_with_port), &[&new_key]),
        twilio::verify(URL, &params(), Some(&signed_with_port), &[&new]),
    );
    assert_eq!(
        twilio::verify_with_keys(URL, &params(), Some(&signed_with_port), &[&new_key]),
        Ok(0)
    );
}
