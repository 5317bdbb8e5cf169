//! The short-lived per-call token the gateway hands a voice agent with each call.
//!
//! The agent receives it as the `token` stream parameter (or SIP header) and checks it with the
//! same key, so it can refuse a media stream that did not come through the gateway. Format:
//! `v1.<expiry unix seconds>.<base64url HMAC-SHA256 of "v1|<number id>|<call id>|<expiry>">`.
//! The key is shared by every gateway instance (configuration), never a carrier credential.
//!
//! The expiry is the end of the [`TOKEN_WINDOW`] after the one the token is minted in, so a
//! token lives between one and two windows, and every delivery of one call's webhook within a
//! window, on any instance, gets the same token: the answer to a retried webhook is the same
//! document without anything stored (see `Registry::answer_inbound_call`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// A token stays valid for one to two windows: long enough to open the stream, short enough to
/// be useless if a carrier log leaks it.
pub const TOKEN_WINDOW: Duration = Duration::from_secs(300);

/// Mints and checks per-call tokens.
pub struct CallTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for CallTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallTokens([REDACTED])")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the `v1.<expiry>.<mac>` form.
    #[error("malformed call token")]
    Malformed,
    /// Past its expiry.
    #[error("call token expired")]
    Expired,
    /// Not made with this key for this number and call.
    #[error("call token does not match")]
    Mismatch,
}

impl CallTokens {
    /// Tokens keyed by `key` (at least 32 random bytes).
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A token for one call on one number, valid until the end of the [`TOKEN_WINDOW`] after
    /// the one `now` falls in; the same token for every `now` in one window.
    #[must_use]
    pub fn mint(&self, number_id: &str, call_id: &str, now: SystemTime) -> String {
        let window = TOKEN_WINDOW.as_secs();
        let expiry = (unix(now) / window + 2) * window;
        let tag = hmac::sign(&self.key, message(number_id, call_id, expiry).as_bytes());
        // Pushed, not `format!`ed: this runs once per inbound call.
        let expiry = expiry.to_string();
        let mut token = String::with_capacity(4 + expiry.len() + 43);
        token.push_str("v1.");
        token.push_str(&expiry);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        token
    }

    /// Checks a token for `number_id` and `call_id` at `now`.
    ///
    /// # Errors
    /// [`TokenError`] when the token is malformed, expired or not made for this call.
    pub fn verify(
        &self,
        token: &str,
        number_id: &str,
        call_id: &str,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some("v1"), Some(expiry), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        // Check the MAC first, so the expiry it covers is authentic before it is trusted.
        hmac::verify(
            &self.key,
            message(number_id, call_id, expiry).as_bytes(),
            &tag,
        )
        .map_err(|_| TokenError::Mismatch)?;
        if unix(now) > expiry {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

fn message(number_id: &str, call_id: &str, expiry: u64) -> String {
    let expiry = expiry.to_string();
    let mut message = String::with_capacity(5 + number_id.len() + call_id.len() + expiry.len());
    for part in ["v1|", number_id, "|", call_id, "|", &expiry] {
        message.push_str(part);
    }
    message
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_for_its_call_only_and_until_it_expires() {
        let tokens = CallTokens::new(&[7; 32]);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = tokens.mint("num_1", "CA1", now);
        assert_eq!(tokens.verify(&token, "num_1", "CA1", now), Ok(()));
        assert_eq!(
            tokens.verify(&token, "num_2", "CA1", now),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            tokens.verify(&token, "num_1", "CA2", now),
            Err(TokenError::Mismatch)
        );
        // 1,800,000,000 is a multiple of the window: the token lives two windows.
        let later = now + 2 * TOKEN_WINDOW + Duration::from_secs(1);
        assert_eq!(
            tokens.verify(&token, "num_1", "CA1", later - Duration::from_secs(2)),
            Ok(())
        );
        assert_eq!(
            tokens.verify(&token, "num_1", "CA1", later),
            Err(TokenError::Expired)
        );
        assert_eq!(
            CallTokens::new(&[8; 32]).verify(&token, "num_1", "CA1", now),
            Err(TokenError::Mismatch)
        );
        for bad in ["", "v1", "v2.1.x", "v1.notanumber.AAAA", "v1.1.***"] {
            assert_eq!(
                tokens.verify(bad, "num_1", "CA1", now),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_delivery_of_a_call_within_a_window_gets_the_same_token() {
        let tokens = CallTokens::new(&[7; 32]);
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = tokens.mint("num_1", "CA1", start);
        let last = start + TOKEN_WINDOW - Duration::from_secs(1);
        assert_eq!(tokens.mint("num_1", "CA1", last), first);
        assert_ne!(tokens.mint("num_1", "CA2", last), first);
        // Minted at the very end of its window, a token still lives one whole window.
        assert_eq!(
            tokens.verify(
                &tokens.mint("num_1", "CA1", last),
                "num_1",
                "CA1",
                last + TOKEN_WINDOW
            ),
            Ok(())
        );
        let next = tokens.mint("num_1", "CA1", start + TOKEN_WINDOW);
        assert_ne!(next, first);
    }

    #[test]
    fn an_expiry_changed_by_hand_is_refused() {
        let tokens = CallTokens::new(&[7; 32]);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = tokens.mint("num_1", "CA1", now);
        let forged = token.replacen("v1.18", "v1.19", 1);
        assert_eq!(
            tokens.verify(&forged, "num_1", "CA1", now),
            Err(TokenError::Mismatch)
        );
    }
}
