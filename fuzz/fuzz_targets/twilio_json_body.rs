//! Twilio JSON-body (`bodySHA256`) verification with arbitrary URL, body and header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_vault::SecretString;
use telephony_webhook::twilio;

fuzz_target!(|input: (String, Vec<u8>, Option<String>)| {
    let (url, body, header) = input;
    let token = SecretString::new("fuzz-token");
    let _ = twilio::verify_json_body(&url, &body, header.as_deref(), &[&token]);
    let (signed_url, signature) = twilio::sign_json_body(&url, &body, &token);
    let result = twilio::verify_json_body(&signed_url, &body, Some(&signature), &[&token]);
    // A URL that already carried another bodySHA256 keeps the first one, as Twilio's libraries
    // read it, so only a malformed URL or that case may fail.
    assert!(
        result.is_ok()
            || matches!(
                result,
                Err(telephony_webhook::VerifyError::BadUrl { .. }
                    | telephony_webhook::VerifyError::BodyHashMismatch)
            ),
        "{result:?}"
    );
});
