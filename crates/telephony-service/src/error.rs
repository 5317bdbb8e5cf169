//! Every error the HTTP API answers: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to an API client. The message is written for the client and never carries a
/// secret, another organization's data, or an internal error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A new error.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    #[must_use]
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized`.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required",
        )
    }

    /// 404 `not_found`.
    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 500 `internal_error`: the details go to the log, never to the client.
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_phone_number`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl From<telephony_registry::RegistryError> for ApiError {
    fn from(error: telephony_registry::RegistryError) -> Self {
        use telephony_registry::RegistryError as E;
        let status = match &error {
            E::InvalidRequest(_) | E::InvalidPhoneNumber => StatusCode::BAD_REQUEST,
            E::ProviderVerificationFailed
            | E::NumberNotInAccount
            | E::NumberNotVoiceCapable
            | E::CarrierRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            E::NumberAlreadyImported | E::Conflict(_) | E::CallNotActive => StatusCode::CONFLICT,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Unauthorized => StatusCode::UNAUTHORIZED,
            E::CarrierCredentialsInvalid | E::CarrierUnavailable(_) => StatusCode::BAD_GATEWAY,
            E::CarrierRateLimited => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = error.code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The detail (a database or vault error) is for the operator's log only.
            tracing::error!(error = %error, "internal error");
            return Self::internal();
        }
        // Registry messages are written for clients: no secrets, no other organization's data.
        Self::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
