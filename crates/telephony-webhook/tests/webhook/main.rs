//! Webhook verification as the gateway's inbound path sees it: published carrier vectors, every
//! way to fail, and properties over arbitrary input.

mod properties;
mod telnyx_cases;
mod twilio_cases;
mod vectors;

use telephony_webhook::VerifyError;

/// A stable name for each error kind, as the vector files spell it.
fn kind(err: &VerifyError) -> &'static str {
    match err {
        VerifyError::MissingHeader { .. } => "missing_header",
        VerifyError::MalformedSignature { .. } => "malformed_signature",
        VerifyError::MalformedPublicKey { .. } => "malformed_public_key",
        VerifyError::MalformedSigningKey { .. } => "malformed_signing_key",
        VerifyError::NoVerificationKeys => "no_verification_keys",
        VerifyError::BadSignature => "bad_signature",
        VerifyError::MalformedTimestamp { .. } => "malformed_timestamp",
        VerifyError::StaleTimestamp { .. } => "stale_timestamp",
        VerifyError::FutureTimestamp { .. } => "future_timestamp",
        VerifyError::MissingBodyHash => "missing_body_hash",
        VerifyError::BodyHashMismatch => "body_hash_mismatch",
        VerifyError::BadUrl { .. } => "bad_url",
        _ => "unknown",
    }
}

/// The outcome in the vector files' spelling.
fn outcome(result: Result<usize, VerifyError>) -> String {
    match result {
        Ok(index) => format!("ok {index}"),
        Err(err) => kind(&err).to_owned(),
    }
}
