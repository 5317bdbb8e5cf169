//! The crate's one error type.

use std::fmt;

/// Names the input value a [`RoutingError`] is about.
///
/// Errors carry the name of the field, never its value: one of the fields is a per-call token,
/// and error text ends up in logs and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The carrier's call id (Twilio `CallSid`, Telnyx `CallSid` / call control id).
    CallId,
    /// The gateway's id of the called number.
    NumberId,
    /// The gateway's id of the agent.
    AgentId,
    /// The per-call token minted for the agent.
    Token,
    /// The agent's media-stream URL.
    StreamUrl,
    /// The agent's SIP URI.
    SipUri,
    /// A fallback phone number (the number's or the agent's).
    FallbackNumber,
}

impl Field {
    /// The field's name as it appears in messages and stream parameters.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CallId => "call_id",
            Self::NumberId => "number_id",
            Self::AgentId => "agent_id",
            Self::Token => "token",
            Self::StreamUrl => "stream url",
            Self::SipUri => "sip uri",
            Self::FallbackNumber => "fallback number",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value cannot be used to route a call.
///
/// [`decide`](crate::decide) never fails: it turns these errors into a decision (the fallback
/// number or a polite message) and keeps the error in the decision's [`Cause`](crate::Cause) so
/// the reason can be logged. The parse functions ([`AgentTarget::parse`](crate::AgentTarget::parse),
/// [`E164::parse`](crate::E164::parse)) return them directly so that the API can refuse a bad
/// agent or number when it is saved, long before a call arrives.
///
/// Messages name fields, never values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// The value is empty.
    #[error("{field} is empty")]
    Empty {
        /// The offending field.
        field: Field,
    },
    /// The value is longer than the crate accepts (see the `MAX_*` constants).
    #[error("{field} is {len} bytes, longer than the {max} allowed")]
    TooLong {
        /// The offending field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value holds a character that is not allowed in it (white space, a control
    /// character, non-ASCII, `<`, `>`, `"` in a URL, or the `:` of a password in a SIP URI).
    #[error("{field} contains a character that is not allowed there")]
    ForbiddenCharacter {
        /// The offending field.
        field: Field,
    },
    /// The agent target is neither `wss://...` nor `sip:...` / `sips:...`.
    #[error("agent target is neither a wss:// media-stream url nor a sip: or sips: uri")]
    UnknownTargetScheme,
    /// The URL or URI names no host.
    #[error("{field} has no host")]
    MissingHost {
        /// The offending field.
        field: Field,
    },
    /// The media-stream URL has a query string or a fragment. Twilio drops the query string of
    /// a stream URL, so anything in it would silently never reach the agent; values travel as
    /// stream parameters instead.
    #[error("stream url has a query string or fragment, which twilio drops; use stream parameters")]
    StreamUrlQuery,
    /// The media-stream URL carries credentials (`user:password@host`). The rendered document
    /// is read by the carrier and may be logged there: it must never hold a secret.
    #[error(
        "stream url carries credentials (user@host), which must never appear in a call document"
    )]
    StreamUrlCredentials,
    /// Adding the call headers to the SIP URI would make its header part as long as or longer
    /// than the 1024 characters Twilio accepts (error 21227).
    #[error("sip uri headers would be {len} characters, twilio accepts fewer than {max}")]
    SipHeadersTooLong {
        /// The header part's length once the call headers are added.
        len: usize,
        /// The exclusive limit.
        max: usize,
    },
    /// The fallback is not `+` followed by 2 to 15 digits, the first not 0.
    #[error("fallback number is not an e.164 number")]
    NotE164,
    /// The fallback number is the very number that was called: dialling it would send the call
    /// back to the gateway, which would dial it again.
    #[error("fallback number is the called number itself, which would loop")]
    FallbackLoop,
}
