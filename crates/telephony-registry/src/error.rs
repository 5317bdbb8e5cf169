//! The one error type of the registry, with the stable API code of each failure.

use telephony_carrier::CarrierError;

/// A failed registry operation.
///
/// Messages are lowercase, never contain a secret, and never name another organization's data:
/// a number held by another organization is only "already imported".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The request is malformed or inconsistent (empty name, wrong provider, missing TeXML app).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The text is not an E.164 phone number.
    #[error("not an E.164 phone number")]
    InvalidPhoneNumber,
    /// The carrier refused the credentials when they were being saved or rotated.
    #[error("the carrier rejected the credentials")]
    ProviderVerificationFailed,
    /// The carrier refused stored credentials on live use; the connection is now `degraded`.
    #[error("the carrier rejected the stored credentials; rotate them")]
    CarrierCredentialsInvalid,
    /// The carrier account does not own the number.
    #[error("the number is not in the carrier account")]
    NumberNotInAccount,
    /// The number cannot take voice calls.
    #[error("the number cannot take voice calls")]
    NumberNotVoiceCapable,
    /// Some organization (possibly this one) already imported the number.
    #[error("the number is already imported")]
    NumberAlreadyImported,
    /// No such resource in this organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The API key is unknown or revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// The carrier failed (5xx, timeout, refused connection) or answered something unusable.
    #[error("the carrier is unavailable: {0}")]
    CarrierUnavailable(String),
    /// The carrier asked us to slow down.
    #[error("the carrier is rate limiting requests")]
    CarrierRateLimited,
    /// The carrier refused a request for another reason.
    #[error("the carrier rejected the request: {0}")]
    CarrierRejected(String),
    /// The request conflicts with the current state (a name in use, an operation in flight).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The call is over (or was never connected): no live-call action applies to it.
    #[error("the call is not active")]
    CallNotActive,
    /// The database failed. The detail is kept for logs; the API shows only the code.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A stored secret could not be encrypted or decrypted (wrong master key, tampered row).
    #[error("credential vault error: {0}")]
    Vault(#[from] telephony_vault::VaultError),
    /// A stored JSON document could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl RegistryError {
    /// The stable API error code (`invalid_request`, `number_already_imported`, ...). The service
    /// maps these to HTTP statuses; they never change meaning.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidPhoneNumber => "invalid_phone_number",
            Self::ProviderVerificationFailed => "provider_verification_failed",
            Self::CarrierCredentialsInvalid => "carrier_credentials_invalid",
            Self::NumberNotInAccount => "number_not_in_account",
            Self::NumberNotVoiceCapable => "number_not_voice_capable",
            Self::NumberAlreadyImported => "number_already_imported",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::CarrierUnavailable(_) => "carrier_unavailable",
            Self::CarrierRateLimited => "carrier_rate_limited",
            Self::CarrierRejected(_) => "carrier_rejected",
            Self::Conflict(_) => "conflict",
            Self::CallNotActive => "call_not_active",
            Self::Database(_) | Self::Vault(_) | Self::Corrupt(_) => "internal_error",
        }
    }

    /// Maps a carrier failure of live use (not credential verification).
    pub(crate) fn from_carrier(error: &CarrierError) -> Self {
        match error {
            CarrierError::InvalidCredentials => Self::CarrierCredentialsInvalid,
            CarrierError::NotFound { .. } => Self::NumberNotInAccount,
            CarrierError::NotVoiceCapable { .. } => Self::NumberNotVoiceCapable,
            CarrierError::RateLimited { .. } => Self::CarrierRateLimited,
            CarrierError::Rejected { status, code, .. } => {
                // The carrier's message may echo request data; the status and code suffice.
                Self::CarrierRejected(format!("status {status}, code {code}"))
            }
            other => Self::CarrierUnavailable(other.to_string()),
        }
    }
}

/// Shorthand for registry results.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
