//! `Authorization: Bearer <org API key>`: the organization a REST request acts for.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use telephony_vault::SecretString;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated organization of a REST request.
#[derive(Debug, Clone)]
pub struct Org {
    /// The organization's id.
    pub id: String,
}

impl FromRequestParts<AppState> for Org {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
        Ok(Self { id })
    }
}
