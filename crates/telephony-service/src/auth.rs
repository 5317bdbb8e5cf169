//! `Authorization: Bearer <org API key>`: the organization a REST request acts for.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use telephony_vault::SecretString;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated organization of a REST request.
#[derive(Debug, Clone)]
pub struct Org {
    /// The organization's id.
    pub id: String,
}

/// Why a request was not authenticated: 401 `unauthorized`, or 429 `too_many_auth_failures`
/// with a `Retry-After` when its client is being limited (see [`crate::auth_limit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    /// The error answered.
    pub error: ApiError,
    /// Seconds until the client may try again, for 429.
    pub retry_after_secs: Option<u64>,
}

impl From<ApiError> for AuthRejection {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

impl FromRequestParts<AppState> for Org {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        // The peer address is set by the real server (`server::serve`); a router driven
        // in-process without it is not limited.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let limiter = state.auth_limiter();
        // A valid key always works, braked address or not: behind a load balancer or a NAT many
        // clients share one address, and one client's failures must not lock the others out.
        // Only failures from a braked address get the 429.
        let result = authenticate(parts, state).await;
        if let (Err(rejection), Some(ip)) = (&result, peer)
            && rejection.status == StatusCode::UNAUTHORIZED
        {
            if let Some(wait) = limiter.retry_after(ip, Instant::now()) {
                // Rounded up: a client that waits what it is told is never refused again for it.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(AuthRejection {
                    error: ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_auth_failures",
                        "too many failed authentications from this client; retry later",
                    ),
                    retry_after_secs: Some(secs.max(1)),
                });
            }
            limiter.record_failure(ip, Instant::now());
        }
        result.map_err(AuthRejection::from)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Org, ApiError> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let key = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    // The registry looks the key up by its SHA-256: timing depends on the hash, which a
    // caller cannot steer byte by byte, never on how much of a key is right (see
    // docs/SECURITY.md). The key is held only as a SecretString so no log can print it.
    let key = SecretString::new(key);
    let id = state
        .registry()
        .authenticate_api_key(&key)
        .await
        .map_err(ApiError::from)?;
    Ok(Org { id })
}
