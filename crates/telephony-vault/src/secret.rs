//! A string that must never be seen: carrier auth tokens, API keys, master keys.

use std::fmt;

use zeroize::Zeroize;

/// What `Debug` and `Display` print in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// A secret string (an auth token, an API key, an API key secret).
///
/// It prints as [`REDACTED`] through `Debug` and `Display`, so a secret inside a struct that
/// derives `Debug`, an error message or a log line never shows. It implements neither
/// `Serialize` nor `Deserialize`, so it cannot leak through an API response by accident. Its
/// memory is zeroed when it is dropped. The plaintext is reached only through
/// [`SecretString::expose`], which makes every use easy to find in review.
#[derive(Clone, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a plaintext secret.
    #[must_use]
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// The plaintext, for the moment of a carrier call or a signature check. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (a missing credential).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets in time that does not depend on where they first differ (see
    /// [`crate::constant_time_eq`]); only their lengths may show.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        crate::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl From<String> for SecretString {
    fn from(plaintext: String) -> Self {
        Self(plaintext)
    }
}

impl From<&str> for SecretString {
    fn from(plaintext: &str) -> Self {
        Self(plaintext.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
