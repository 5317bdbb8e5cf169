//! Validated values: agent targets, E.164 fallback numbers and the ids that travel to the agent.
//!
//! Each type can only be built by its `parse` function, so a [`Decision`](crate::Decision)
//! that holds one holds a value that was checked. Escaping at render time makes any value safe
//! for XML; validation here makes it *meaningful* for the carrier (a URL Twilio will open, a SIP
//! URI it will dial) and keeps secrets and oversize values out of the document.

use crate::error::{Field, RoutingError};

/// The longest media-stream URL accepted, in bytes. Real stream URLs are well under 200 bytes;
/// this is a guard against a pasted blob, not a carrier limit.
pub const MAX_STREAM_URL_LEN: usize = 2048;

/// The longest SIP URI accepted as an agent target, before the call headers are added, in bytes.
/// Twilio documents a SIP `To` as "a valid SIP URI under 255 characters".
pub const MAX_SIP_URI_LEN: usize = 254;

/// Twilio refuses a `<Sip>` URI whose header part (after `?`) is 1024 characters or longer
/// (warning 21227). The header part, with the call headers added, must be shorter than this.
pub const SIP_HEADERS_LIMIT: usize = 1024;

/// The longest call id, number id or agent id accepted, in bytes. Twilio call SIDs are 34
/// characters, Telnyx call control ids about 100, gateway ids are UUIDs.
pub const MAX_ID_LEN: usize = 256;

/// The longest per-call token accepted, in bytes. Enough for a signed JWT with a few claims.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Whether `c` may appear in an id, a token, a stream URL or a SIP URI: printable ASCII, no
/// space. Carriers' ids, UUIDs, base64url tokens and ASCII URLs all fit; anything else would be
/// mangled somewhere between us, the carrier and the agent.
const fn is_visible_ascii(b: u8) -> bool {
    matches!(b, 0x21..=0x7e)
}

/// Checks an id or token: non-empty, at most `max` bytes, visible ASCII only.
///
/// Ids are refused rather than cleaned or truncated: a shortened call id or token would be a
/// different id, and the agent would fail to find the call or to authenticate, later and more
/// confusingly than a refusal now.
pub(crate) fn check_id(value: &str, field: Field, max: usize) -> Result<(), RoutingError> {
    if value.is_empty() {
        return Err(RoutingError::Empty { field });
    }
    if value.len() > max {
        return Err(RoutingError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    if !value.bytes().all(is_visible_ascii) {
        return Err(RoutingError::ForbiddenCharacter { field });
    }
    Ok(())
}

/// Strips an ASCII-case-insensitive `prefix` from `value`.
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// Checks the characters of a URL or URI: visible ASCII, and none of `<`, `>`, `"`, which
/// RFC 3986 and RFC 3261 never allow unescaped.
fn check_uri_chars(value: &str, field: Field) -> Result<(), RoutingError> {
    let ok = value
        .bytes()
        .all(|b| is_visible_ascii(b) && !matches!(b, b'<' | b'>' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(RoutingError::ForbiddenCharacter { field })
    }
}

/// Where an agent takes calls: a bidirectional media stream or a SIP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentTarget<'a> {
    /// A `wss://` WebSocket URL that receives the call's audio (`<Connect><Stream>`).
    Stream(StreamUrl<'a>),
    /// A `sip:` or `sips:` URI to dial (`<Dial><Sip>`).
    Sip(SipUri<'a>),
}

impl<'a> AgentTarget<'a> {
    /// Parses an agent's target. Call it when an agent is saved, to refuse a target that could
    /// never route a call; [`decide`](crate::decide) calls it again for every call.
    ///
    /// # Errors
    ///
    /// [`RoutingError::UnknownTargetScheme`] when the text starts with neither `wss://` nor
    /// `sip:` / `sips:` (case-insensitive), and the errors of [`StreamUrl::parse`] and
    /// [`SipUri::parse`].
    pub fn parse(text: &'a str) -> Result<Self, RoutingError> {
        if strip_prefix_ignore_case(text, "wss://").is_some() {
            StreamUrl::parse(text).map(Self::Stream)
        } else if strip_prefix_ignore_case(text, "sip:").is_some()
            || strip_prefix_ignore_case(text, "sips:").is_some()
        {
            SipUri::parse(text).map(Self::Sip)
        } else {
            Err(RoutingError::UnknownTargetScheme)
        }
    }

    /// The target as written.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        match self {
            Self::Stream(url) => url.as_str(),
            Self::Sip(uri) => uri.as_str(),
        }
    }
}

/// A checked `wss://` media-stream URL: visible ASCII, a host, no credentials, no query string
/// or fragment, at most [`MAX_STREAM_URL_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamUrl<'a>(&'a str);

impl<'a> StreamUrl<'a> {
    /// Parses a media-stream URL.
    ///
    /// `ws://` is refused: the stream carries the caller's voice and the per-call token.
    ///
    /// # Errors
    ///
    /// [`RoutingError::UnknownTargetScheme`] when it does not start with `wss://`;
    /// [`RoutingError::TooLong`], [`RoutingError::ForbiddenCharacter`],
    /// [`RoutingError::StreamUrlQuery`], [`RoutingError::StreamUrlCredentials`] or
    /// [`RoutingError::MissingHost`] as their names say.
    pub fn parse(text: &'a str) -> Result<Self, RoutingError> {
        const FIELD: Field = Field::StreamUrl;
        let rest =
            strip_prefix_ignore_case(text, "wss://").ok_or(RoutingError::UnknownTargetScheme)?;
        if text.len() > MAX_STREAM_URL_LEN {
            return Err(RoutingError::TooLong {
                field: FIELD,
                len: text.len(),
                max: MAX_STREAM_URL_LEN,
            });
        }
        check_uri_chars(text, FIELD)?;
        if text.contains(['?', '#']) {
            return Err(RoutingError::StreamUrlQuery);
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(RoutingError::StreamUrlCredentials);
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(RoutingError::MissingHost { field: FIELD });
        }
        Ok(Self(text))
    }

    /// The URL as written.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A checked `sip:` or `sips:` URI: visible ASCII, a host, no password, at most
/// [`MAX_SIP_URI_LEN`] bytes. It may already carry URI parameters (`;transport=tls`) and headers
/// (`?X-Foo=bar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipUri<'a> {
    text: &'a str,
    secure: bool,
}

impl<'a> SipUri<'a> {
    /// Parses a SIP URI.
    ///
    /// # Errors
    ///
    /// [`RoutingError::UnknownTargetScheme`] when it starts with neither `sip:` nor `sips:`;
    /// [`RoutingError::TooLong`], [`RoutingError::ForbiddenCharacter`] (also for a password,
    /// `user:password@`) or [`RoutingError::MissingHost`] as their names say.
    pub fn parse(text: &'a str) -> Result<Self, RoutingError> {
        const FIELD: Field = Field::SipUri;
        let (rest, secure) = match strip_prefix_ignore_case(text, "sips:") {
            Some(rest) => (rest, true),
            None => (
                strip_prefix_ignore_case(text, "sip:").ok_or(RoutingError::UnknownTargetScheme)?,
                false,
            ),
        };
        if text.len() > MAX_SIP_URI_LEN {
            return Err(RoutingError::TooLong {
                field: FIELD,
                len: text.len(),
                max: MAX_SIP_URI_LEN,
            });
        }
        check_uri_chars(text, FIELD)?;
        // RFC 3261: sip:[user[:password]@]host[:port][;params][?headers]. The user part may
        // not contain an unescaped `;` or `?`, so the host part ends at the first of them.
        let before_params = rest.split([';', '?']).next().unwrap_or_default();
        let (userinfo, host_port) = before_params
            .rsplit_once('@')
            .unwrap_or(("", before_params));
        if host_port.is_empty() || host_port.starts_with(':') {
            return Err(RoutingError::MissingHost { field: FIELD });
        }
        // `user:password@`: the password would be in the document the carrier reads and logs,
        // and in every `Debug` of the decision. Twilio's `<Sip>` takes credentials as
        // attributes, and RFC 3261 advises against passwords in the URI; an escaped `%3A` is
        // part of the user name and stays allowed.
        if userinfo.contains(':') {
            return Err(RoutingError::ForbiddenCharacter { field: FIELD });
        }
        Ok(Self { text, secure })
    }

    /// The URI as written.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.text
    }

    /// Whether the scheme is `sips:`, i.e. the signalling to the agent is carried over TLS.
    #[must_use]
    pub const fn is_secure(&self) -> bool {
        self.secure
    }

    /// The header part already in the URI (after `?`), if any.
    pub(crate) fn headers(&self) -> Option<&'a str> {
        self.text.split_once('?').map(|(_, headers)| headers)
    }
}

/// A checked E.164 phone number: `+` followed by 2 to 15 digits, the first not 0 (the same rule
/// as the carrier crate's `E164`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct E164<'a>(&'a str);

impl<'a> E164<'a> {
    /// Parses an E.164 number. White space is not trimmed.
    ///
    /// # Errors
    ///
    /// [`RoutingError::NotE164`] when the text is anything else.
    pub fn parse(text: &'a str) -> Result<Self, RoutingError> {
        let digits = text.strip_prefix('+').ok_or(RoutingError::NotE164)?;
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(text))
        } else {
            Err(RoutingError::NotE164)
        }
    }

    /// The number as written.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        assert!(StreamUrl::parse("wss://agents.example.com/media").is_ok());
        assert!(StreamUrl::parse("WSS://agents.example.com:8443").is_ok());
        assert_eq!(
            StreamUrl::parse("ws://a.example/x"),
            Err(RoutingError::UnknownTargetScheme)
        );
        assert_eq!(
            StreamUrl::parse("wss://a.example/x?token=1"),
            Err(RoutingError::StreamUrlQuery)
        );
        assert_eq!(
            StreamUrl::parse("wss://a.example/x#f"),
            Err(RoutingError::StreamUrlQuery)
        );
        assert_eq!(
            StreamUrl::parse("wss://u:p@a.example/x"),
            Err(RoutingError::StreamUrlCredentials)
        );
        assert_eq!(
            StreamUrl::parse("wss:///x"),
            Err(RoutingError::MissingHost {
                field: Field::StreamUrl
            })
        );
        assert_eq!(
            StreamUrl::parse("wss://:443/x"),
            Err(RoutingError::MissingHost {
                field: Field::StreamUrl
            })
        );
        for bad in [
            "wss://a b",
            "wss://a/\"",
            "wss://a/<",
            "wss://a/\n",
            "wss://a/é",
        ] {
            assert_eq!(
                StreamUrl::parse(bad),
                Err(RoutingError::ForbiddenCharacter {
                    field: Field::StreamUrl
                }),
                "{bad:?}"
            );
        }
        let long = format!("wss://a.example/{}", "x".repeat(MAX_STREAM_URL_LEN));
        assert!(matches!(
            StreamUrl::parse(&long),
            Err(RoutingError::TooLong { .. })
        ));
    }

    #[test]
    fn sip_uris() {
        let uri = SipUri::parse("sip:agent@sip.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(!uri.is_secure());
        assert_eq!(uri.headers(), None);
        let uri =
            SipUri::parse("SIPS:agent@h;transport=tls?X-A=1").unwrap_or_else(|e| panic!("{e}"));
        assert!(uri.is_secure());
        assert_eq!(uri.headers(), Some("X-A=1"));
        assert!(SipUri::parse("sip:h.example").is_ok());
        assert_eq!(
            SipUri::parse("sip:agent@"),
            Err(RoutingError::MissingHost {
                field: Field::SipUri
            })
        );
        assert_eq!(
            SipUri::parse("sip:agent@;x"),
            Err(RoutingError::MissingHost {
                field: Field::SipUri
            })
        );
        assert_eq!(
            SipUri::parse("sip:"),
            Err(RoutingError::MissingHost {
                field: Field::SipUri
            })
        );
        assert_eq!(
            SipUri::parse("tel:+1555"),
            Err(RoutingError::UnknownTargetScheme)
        );
        assert_eq!(
            SipUri::parse("sip:a b@h"),
            Err(RoutingError::ForbiddenCharacter {
                field: Field::SipUri
            })
        );
    }

    #[test]
    fn agent_targets() {
        assert!(matches!(
            AgentTarget::parse("wss://a/b"),
            Ok(AgentTarget::Stream(_))
        ));
        assert!(matches!(
            AgentTarget::parse("sip:a@b"),
            Ok(AgentTarget::Sip(_))
        ));
        assert!(matches!(
            AgentTarget::parse("sips:a@b"),
            Ok(AgentTarget::Sip(_))
        ));
        assert_eq!(
            AgentTarget::parse("https://a/b"),
            Err(RoutingError::UnknownTargetScheme)
        );
        assert_eq!(
            AgentTarget::parse(""),
            Err(RoutingError::UnknownTargetScheme)
        );
        // A multi-byte character straddling the prefix length must not panic.
        assert_eq!(
            AgentTarget::parse("wé"),
            Err(RoutingError::UnknownTargetScheme)
        );
        assert_eq!(
            AgentTarget::parse("sip:a@b").map(|t| t.as_str()),
            Ok("sip:a@b")
        );
    }

    #[test]
    fn e164_numbers() {
        assert!(E164::parse("+15551234567").is_ok());
        assert!(E164::parse("+44").is_ok());
        for bad in [
            "",
            "+",
            "+1",
            "15551234567",
            "+0123",
            "+1555 123",
            "+1234567890123456",
            "+１２",
        ] {
            assert_eq!(E164::parse(bad), Err(RoutingError::NotE164), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(check_id("CA123", Field::CallId, 8), Ok(()));
        assert_eq!(
            check_id("", Field::CallId, 8),
            Err(RoutingError::Empty {
                field: Field::CallId
            })
        );
        assert_eq!(
            check_id("123456789", Field::Token, 8),
            Err(RoutingError::TooLong {
                field: Field::Token,
                len: 9,
                max: 8
            })
        );
        assert_eq!(
            check_id("a b", Field::NumberId, 8),
            Err(RoutingError::ForbiddenCharacter {
                field: Field::NumberId
            })
        );
    }
}
