//! The `Idempotency-Key` header of the REST API's POSTs that act on carriers.
//!
//! A key names one request of one organization. The first request with a key claims it in the
//! database (insert-if-absent, so two instances racing on a key run the request once) and
//! stores its answer, whatever it was; a later request with the same key and the same method,
//! path and body gets that answer again (with `Idempotent-Replayed: true`) and does nothing.
//! The same key with another request answers 409 `idempotency_key_reused`; a key whose first
//! request is still running answers 409 `idempotency_key_in_progress`. A claim is a lease
//! (`TELEPHONY_IDEMPOTENCY_LEASE_SECS`, 5 minutes by default): a request that died without
//! answering frees its key once the lease is over, and the next request with it runs. Answers
//! are kept 24 hours (`TELEPHONY_IDEMPOTENCY_KEY_TTL_SECS`), then the key is free again.
//!
//! The first answer is stored even when it is an error: a carrier that failed or timed out while
//! placing a call may still have placed it, and only a new key says "try again".

use std::future::Future;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use telephony_registry::IdempotencyClaim;

use crate::error::ApiError;
use crate::state::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What a handler answers: a status and a JSON body, or an error.
pub type Outcome = Result<(StatusCode, Value), ApiError>;

fn error_json(error: &ApiError) -> Value {
    serde_json::json!({"error": {"code": error.code, "message": error.message}})
}

/// A hex SHA-256 of what makes two requests the same request.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(method.as_bytes());
    context.update(b"\0");
    context.update(path.as_bytes());
    context.update(b"\0");
    context.update(body);
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn respond(outcome: Outcome) -> (StatusCode, Value) {
    match outcome {
        Ok(answer) => answer,
        Err(error) => (error.status, error_json(&error)),
    }
}

/// Runs `run` once per `Idempotency-Key` of the organization (or every time without the
/// header) and answers its result.
pub async fn run_once<F, Fut>(
    state: &AppState,
    org_id: &str,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
    run: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let Some(key) = headers.get(HEADER) else {
        let (status, body) = respond(run().await);
        return (status, Json(body)).into_response();
    };
    let key = match key.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            key
        }
        _ => {
            return ApiError::invalid_request(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response();
        }
    };
    let registry = state.registry();
    let claim = match registry
        .claim_idempotency_key(org_id, key, &fingerprint(method, path, body))
        .await
    {
        Ok(claim) => claim,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let lease = match claim {
        IdempotencyClaim::Claimed(lease) => lease,
        IdempotencyClaim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                [
                    (
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (
                        http::HeaderName::from_static(REPLAYED_HEADER),
                        HeaderValue::from_static("true"),
                    ),
                ],
                body,
            )
                .into_response();
        }
        IdempotencyClaim::InProgress => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_progress",
                "a request with this Idempotency-Key is still running; retry later",
            )
            .into_response();
        }
        IdempotencyClaim::Reused => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .into_response();
        }
    };
    let (status, answer) = respond(run().await);
    match registry
        .complete_idempotency_key(org_id, key, &lease, status.as_u16(), &answer.to_string())
        .await
    {
        Ok(true) => {}
        // This request ran past its lease and another request with the key claimed it: that
        // one's answer is the key's.
        Ok(false) => tracing::warn!(
            "a request outlived its idempotency key's lease; its answer was not stored"
        ),
        Err(error) => {
            tracing::error!(%error, "could not store the answer to an idempotency key");
        }
    }
    (status, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn the_fingerprint_separates_method_path_and_body() {
        assert_ne!(
            fingerprint("POST", "/v1/calls", b"{}"),
            fingerprint("POST", "/v1/calls/", b"{}")
        );
        assert_ne!(
            fingerprint("POST", "/a", b"b"),
            fingerprint("POST", "/ab", b"")
        );
        assert_eq!(
            fingerprint("POST", "/v1/calls", b"{}"),
            fingerprint("POST", "/v1/calls", b"{}")
        );
    }
}
