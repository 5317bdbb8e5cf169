//! The one error type of every carrier call.

use std::time::Duration;

/// Who failed in a carrier call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller: bad credentials, a resource that does not exist, a request the carrier refused.
    Caller,
    /// The carrier: it answered 5xx, timed out, dropped the connection or asked us to slow down.
    Carrier,
}

/// A failed carrier API call. Messages never contain a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarrierError {
    /// The carrier refused the credentials (HTTP 401 / 403 on auth).
    #[error("the carrier rejected the credentials")]
    InvalidCredentials,
    /// The resource (number, call, recording, order) does not exist in this account.
    #[error("not found at the carrier: {what}")]
    NotFound {
        /// What was looked for, e.g. `phone number +15551234567`.
        what: String,
    },
    /// The number exists but cannot take voice calls.
    #[error("the number {number} is not voice capable")]
    NotVoiceCapable {
        /// The E.164 number.
        number: String,
    },
    /// The carrier answered 429.
    #[error("the carrier is rate limiting requests")]
    RateLimited {
        /// How long the carrier asked us to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// The carrier failed: 5xx, timeout, connection refused or reset.
    #[error("the carrier is unavailable: {reason}")]
    Unavailable {
        /// What happened, without any credential.
        reason: String,
    },
    /// The carrier refused the request (4xx other than auth / not found).
    #[error("the carrier rejected the request ({status}, code {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The carrier's own error code (Twilio's numeric code, Telnyx's string code).
        code: String,
        /// The carrier's message.
        message: String,
    },
    /// The carrier answered something this client could not understand.
    #[error("unexpected answer from the carrier: {0}")]
    Protocol(String),
    /// The operation does not exist on this carrier (e.g. subaccounts on Telnyx).
    #[error("not supported by this carrier: {0}")]
    Unsupported(&'static str),
    /// The client was configured wrongly (a base URL that cannot be used, an unknown Twilio
    /// region without an edge, a TLS set-up failure). Nothing was sent to the carrier.
    #[error("invalid carrier client configuration: {0}")]
    InvalidConfig(String),
}

impl CarrierError {
    /// Who failed.
    #[must_use]
    pub fn blame(&self) -> Blame {
        match self {
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Protocol(_) => {
                Blame::Carrier
            }
            Self::InvalidCredentials
            | Self::NotFound { .. }
            | Self::NotVoiceCapable { .. }
            | Self::Rejected { .. }
            | Self::Unsupported(_)
            | Self::InvalidConfig(_) => Blame::Caller,
        }
    }

    /// Whether sending the same request again may succeed (for idempotent requests only).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }
}
