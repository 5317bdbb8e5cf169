//! Twilio form-webhook verification with arbitrary URL, parameters, header and tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_vault::SecretString;
use telephony_webhook::twilio;

fuzz_target!(
    |input: (String, Vec<(String, String)>, Option<String>, Vec<String>)| {
        let (url, params, header, tokens) = input;
        let tokens: Vec<SecretString> = tokens.into_iter().map(SecretString::new).collect();
        let tokens: Vec<&SecretString> = tokens.iter().collect();
        if let Ok(index) = twilio::verify(&url, &params, header.as_deref(), &tokens) {
            assert!(index < tokens.len());
        }
        // Whatever is signed verifies, in every URL shape the fuzzer finds.
        if let Some(token) = tokens.first() {
            let signature = twilio::sign(&url, &params, token);
            let result = twilio::verify(&url, &params, Some(&signature), &tokens);
            assert!(
                result.is_ok()
                    || matches!(result, Err(telephony_webhook::VerifyError::BadUrl { .. })),
                "{result:?}"
            );
        }
    }
);
