//! The one error type of webhook verification.

/// Every way a webhook can fail verification (or a signer can fail to load).
///
/// All of them mean "do not route this request". The service answers 403 for any of them
/// (a missing header may be told apart as 400), and never echoes the message to the caller,
/// although no variant carries a secret, a signature or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature (or timestamp) header is absent.
    #[error("missing {header} header")]
    MissingHeader {
        /// The header's canonical name.
        header: &'static str,
    },

    /// The signature header is not base64 of a signature of the right size.
    #[error("malformed {header} header: {reason}")]
    MalformedSignature {
        /// The header's canonical name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A configured public key is not base64 of 32 bytes.
    #[error("malformed public key: {reason}")]
    MalformedPublicKey {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A signing key (emulators and tests) is not a valid Ed25519 seed or PKCS#8 document.
    #[error("malformed signing key: {reason}")]
    MalformedSigningKey {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No auth token or public key was given to verify with: a configuration problem, not a
    /// forged request.
    #[error("no verification key configured")]
    NoVerificationKeys,

    /// Well-formed, but made with none of the given tokens or keys, or over other content.
    #[error("signature does not match")]
    BadSignature,

    /// The timestamp header is not decimal Unix seconds.
    #[error("malformed {header} header: not unix seconds")]
    MalformedTimestamp {
        /// The header's canonical name.
        header: &'static str,
    },

    /// The timestamp is older than the tolerance: possibly a replay.
    #[error("timestamp is {age_secs}s old, beyond the {tolerance_secs}s tolerance")]
    StaleTimestamp {
        /// How old it is.
        age_secs: u64,
        /// The tolerance it exceeds.
        tolerance_secs: u64,
    },

    /// The timestamp is further in the future than the tolerance.
    #[error("timestamp is {ahead_secs}s in the future, beyond the {tolerance_secs}s tolerance")]
    FutureTimestamp {
        /// How far ahead it is.
        ahead_secs: u64,
        /// The tolerance it exceeds.
        tolerance_secs: u64,
    },

    /// A JSON-body webhook whose URL has no `bodySHA256` query parameter.
    #[error("url has no bodySHA256 query parameter")]
    MissingBodyHash,

    /// The body's SHA-256 differs from the signed `bodySHA256` of the URL.
    #[error("body does not match the bodySHA256 of the url")]
    BodyHashMismatch,

    /// The URL to verify against is not an absolute `scheme://host...` URL.
    #[error("bad url: {reason}")]
    BadUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
}
