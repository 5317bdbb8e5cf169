//! Twilio's `X-Twilio-Signature`: HMAC-SHA1, keyed by the account's auth token, over the full
//! URL Twilio requested followed by the POST parameters sorted by name.
//!
//! The rules follow Twilio's helper libraries (python, node, php, java, go, ruby, C#) and their
//! published test vectors:
//!
//! - The URL is signed exactly as Twilio requested it: scheme, user-info and host keep their
//!   case, the path is not normalized, percent-escapes are not decoded, and the query string
//!   stays in the URL (its parameters are not sorted with the POST parameters).
//! - POST parameters are sorted by name in byte order (case-sensitive, so `CALLSID` <
//!   `CallSid` < `callSid`); each contributes `name` then `value` with no separator. A repeated
//!   name contributes each of its distinct values in sorted order (python, node, php).
//! - Twilio does not sign a consistent URL form, so a match is accepted for the URL as given and
//!   for the same URL with its port toggled: a URL without a port is also tried with the
//!   scheme's default port (`:443` for https, `:80` otherwise), and a URL with a port is also
//!   tried without it.
//! - Like twilio-node, when the URL holds characters a browser-grade URL parser would
//!   percent-encode (a raw `'`, a space, non-ASCII), the encoded spelling is tried too, so that
//!   a proxy that decoded `%27` does not break verification. The legacy `+` versus `%20`
//!   re-encoding of twilio-node is not reproduced.
//! - JSON bodies: Twilio adds `bodySHA256=<hex sha256 of the body>` to the URL and signs the
//!   URL alone; [`verify_json_body`] checks that signature, then the body's hash.
//!
//! Signatures are compared by `ring::hmac::verify`, in constant time. Several auth tokens may be
//! given at once (the current one and the previous one during a rotation grace period); the
//! index of the one that matched is returned so the caller can tell when the old one stops
//! being used.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac};
use telephony_vault::SecretString;

use crate::VerifyError;

/// The header that carries the signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The URL query parameter that carries the SHA-256 of a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// HMAC-SHA1 output length.
const SIGNATURE_LEN: usize = 20;

/// The exact string Twilio signs for a form webhook: the URL, then each sorted parameter's name
/// and value. Useful to explain a mismatch; never log it next to a token.
#[must_use]
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut out = String::with_capacity(url.len() + params_len(params));
    out.push_str(url);
    push_sorted_params(&mut out, params);
    out
}

/// Signs a form webhook as Twilio does: for the carrier emulator and tests.
#[must_use]
pub fn sign<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    params: &[(K, V)],
    token: &SecretString,
) -> String {
    let key = hmac_key(token);
    STANDARD.encode(hmac::sign(&key, string_to_sign(url, params).as_bytes()))
}

/// Adds `bodySHA256=<hex sha256 of body>` to a URL, as Twilio does before signing a JSON
/// webhook, and returns the URL and its signature (emulator and tests).
#[must_use]
pub fn sign_json_body(url: &str, body: &[u8], token: &SecretString) -> (String, String) {
    // Before any fragment, which is not part of the query.
    let (before_fragment, fragment) = match url.find('#') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let separator = if before_fragment.contains('?') {
        '&'
    } else {
        '?'
    };
    let hex = sha256_hex(body);
    let hex = std::str::from_utf8(&hex).unwrap_or_default();
    let url = format!("{before_fragment}{separator}{BODY_SHA256_PARAM}={hex}{fragment}");
    let no_params: &[(&str, &str)] = &[];
    let signature = sign(&url, no_params, token);
    (url, signature)
}

/// Verifies a form-encoded webhook.
///
/// `url` is the full public URL Twilio requested (as configured on the number, including the
/// query string); `params` are the decoded POST parameters in any order, repeated names
/// included; `signature_header` is the `X-Twilio-Signature` value if present; `tokens` are the
/// auth tokens to try. Returns the index in `tokens` of the one that matched.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`], [`VerifyError::MalformedSignature`] (not base64 of 20
/// bytes), [`VerifyError::NoVerificationKeys`] (no non-empty token in `tokens`: an empty token
/// is a missing credential, never a key), [`VerifyError::BadUrl`] or
/// [`VerifyError::BadSignature`].
pub fn verify<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    params: &[(K, V)],
    signature_header: Option<&str>,
    tokens: &[&SecretString],
) -> Result<usize, VerifyError> {
    let keys: Vec<(usize, TwilioKey)> = usable_keys(tokens).collect();
    verify_form(
        url,
        params,
        signature_header,
        keys.iter().map(|(index, key)| (*index, key)),
    )
}

/// An auth token made ready to verify signatures: its HMAC key, derived once, for a caller that
/// verifies many webhooks with one token (a cache of routes keeps one per connection rather
/// than deriving it for every webhook). It holds the secret's key material: it shows nothing
/// of it in `Debug`.
#[derive(Clone)]
pub struct TwilioKey(hmac::Key);

impl TwilioKey {
    /// The key of `token`; `None` for an empty token, a missing credential and never a key
    /// (anyone can sign under the empty key).
    #[must_use]
    pub fn new(token: &SecretString) -> Option<Self> {
        (!token.is_empty()).then(|| Self(hmac_key(token)))
    }
}

impl std::fmt::Debug for TwilioKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwilioKey(..)")
    }
}

/// [`verify`] with keys made beforehand ([`TwilioKey`]); returns the index in `keys` of the one
/// that matched.
///
/// # Errors
///
/// As [`verify`]; [`VerifyError::NoVerificationKeys`] when `keys` is empty.
pub fn verify_with_keys<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    params: &[(K, V)],
    signature_header: Option<&str>,
    keys: &[&TwilioKey],
) -> Result<usize, VerifyError> {
    verify_form(
        url,
        params,
        signature_header,
        keys.iter().copied().enumerate(),
    )
}

/// The keys of the usable tokens, with their index in `tokens`.
fn usable_keys<'a>(tokens: &'a [&SecretString]) -> impl Iterator<Item = (usize, TwilioKey)> + 'a {
    tokens
        .iter()
        .enumerate()
        .filter_map(|(index, token)| TwilioKey::new(token).map(|key| (index, key)))
}

fn verify_form<'k, K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    params: &[(K, V)],
    signature_header: Option<&str>,
    keys: impl ExactSizeIterator<Item = (usize, &'k TwilioKey)>,
) -> Result<usize, VerifyError> {
    let expected = decode_signature(signature_header)?;
    if keys.len() == 0 {
        return Err(VerifyError::NoVerificationKeys);
    }
    let parts = UrlParts::parse(url)?;
    let mut params_text = String::with_capacity(params_len(params));
    push_sorted_params(&mut params_text, params);
    match_any(&parts, &params_text, keys, &expected)
}

/// Verifies a webhook with a JSON (or other non-form) body: the signature covers the URL alone,
/// whose `bodySHA256` query parameter must then equal the lowercase hex SHA-256 of `body`.
///
/// # Errors
///
/// Those of [`verify`], plus [`VerifyError::MissingBodyHash`] when the URL has no
/// `bodySHA256` and [`VerifyError::BodyHashMismatch`] when the body is not the one signed.
pub fn verify_json_body(
    url: &str,
    body: &[u8],
    signature_header: Option<&str>,
    tokens: &[&SecretString],
) -> Result<usize, VerifyError> {
    let expected = decode_signature(signature_header)?;
    let keys: Vec<(usize, TwilioKey)> = usable_keys(tokens).collect();
    if keys.is_empty() {
        return Err(VerifyError::NoVerificationKeys);
    }
    let parts = UrlParts::parse(url)?;
    let claimed = query_value(url, BODY_SHA256_PARAM).ok_or(VerifyError::MissingBodyHash)?;
    let index = match_any(
        &parts,
        "",
        keys.iter().map(|(index, key)| (*index, key)),
        &expected,
    )?;
    // The hash is not secret (it is in the URL), but the comparison costs nothing to harden.
    if !telephony_vault::constant_time_eq(&sha256_hex(body), claimed.as_bytes()) {
        return Err(VerifyError::BodyHashMismatch);
    }
    Ok(index)
}

/// Tries every accepted URL form with every key (each with its index, returned on a match).
fn match_any<'k>(
    parts: &UrlParts<'_>,
    params_text: &str,
    keys: impl Iterator<Item = (usize, &'k TwilioKey)>,
    expected: &[u8; SIGNATURE_LEN],
) -> Result<usize, VerifyError> {
    let normalized = percent_encoded(parts.url);
    let normalized_parts = match &normalized {
        Some(url) => Some(UrlParts::parse(url)?),
        None => None,
    };
    let mut message = String::with_capacity(parts.url.len() + 8 + params_text.len());
    // An empty token has no key (`TwilioKey::new`), never an empty HMAC key: anyone can
    // compute a signature under the empty key, so an organization whose token is missing
    // would accept forgeries.
    for (index, TwilioKey(key)) in keys {
        for form in [Some(parts), normalized_parts.as_ref()]
            .into_iter()
            .flatten()
        {
            for toggle_port in [false, true] {
                message.clear();
                form.write(toggle_port, &mut message);
                message.push_str(params_text);
                if hmac::verify(key, message.as_bytes(), expected).is_ok() {
                    return Ok(index);
                }
            }
        }
    }
    Err(VerifyError::BadSignature)
}

fn hmac_key(token: &SecretString) -> hmac::Key {
    hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        token.expose().as_bytes(),
    )
}

fn decode_signature(header: Option<&str>) -> Result<[u8; SIGNATURE_LEN], VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader {
        header: SIGNATURE_HEADER,
    })?;
    crate::decode_fixed(header).map_err(|reason| VerifyError::MalformedSignature {
        header: SIGNATURE_HEADER,
        reason,
    })
}

fn params_len<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> usize {
    params
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
        .sum()
}

fn push_sorted_params<K: AsRef<str>, V: AsRef<str>>(out: &mut String, params: &[(K, V)]) {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    // Tuple order sorts names, then the values of a repeated name; dedup then drops repeated
    // identical values, as the helper libraries do with `sorted(set(values))`.
    sorted.sort_unstable();
    sorted.dedup();
    for (name, value) in sorted {
        out.push_str(name);
        out.push_str(value);
    }
}

fn sha256_hex(body: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = digest::digest(&digest::SHA256, body);
    let mut out = [0u8; 64];
    for (i, byte) in digest.as_ref().iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// The raw value of the first `name=value` in the URL's query, as the helper libraries read it.
fn query_value<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let (_, query) = without_fragment.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// A URL cut around its port, so the other port form can be written without parsing twice.
#[derive(Debug)]
struct UrlParts<'a> {
    url: &'a str,
    /// `scheme://userinfo@host`.
    head: &'a str,
    /// The digits after `:`, if the authority has a port.
    port: Option<&'a str>,
    /// Path, query and fragment.
    tail: &'a str,
    default_port: &'static str,
}

impl<'a> UrlParts<'a> {
    fn parse(url: &'a str) -> Result<Self, VerifyError> {
        let (scheme, rest) = url.split_once("://").ok_or(VerifyError::BadUrl {
            reason: "not an absolute url",
        })?;
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(VerifyError::BadUrl {
                reason: "invalid scheme",
            });
        }
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        let host_start = authority.rfind('@').map_or(0, |at| at + 1);
        let host_port = &authority[host_start..];
        let colon = if host_port.starts_with('[') {
            // An IPv6 literal: only a colon after the closing bracket starts a port.
            let close = host_port.find(']').ok_or(VerifyError::BadUrl {
                reason: "unterminated ipv6 host",
            })?;
            host_port[close + 1..].starts_with(':').then_some(close + 1)
        } else {
            host_port.rfind(':')
        };
        let host = colon.map_or(host_port, |c| &host_port[..c]);
        if host.is_empty() {
            return Err(VerifyError::BadUrl { reason: "no host" });
        }
        let port = colon.map(|c| &host_port[c + 1..]);
        if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(VerifyError::BadUrl {
                reason: "port is not a number",
            });
        }
        let head_len = scheme.len() + 3 + host_start + host.len();
        let tail_start = scheme.len() + 3 + authority_len;
        Ok(Self {
            url,
            head: &url[..head_len],
            port,
            tail: &url[tail_start..],
            default_port: if scheme.eq_ignore_ascii_case("https") {
                "443"
            } else {
                "80"
            },
        })
    }

    /// Writes the URL as given, or with its port toggled (removed if present, the scheme's
    /// default added if absent).
    fn write(&self, toggle_port: bool, out: &mut String) {
        if !toggle_port {
            out.push_str(self.url);
            return;
        }
        out.push_str(self.head);
        if self.port.is_none() {
            out.push(':');
            out.push_str(self.default_port);
        }
        out.push_str(self.tail);
    }
}

/// The URL with the bytes a WHATWG URL parser percent-encodes in the path and query encoded,
/// or `None` when there are none (the usual case, so no allocation).
fn percent_encoded(url: &str) -> Option<String> {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let fragment_start = url[path_start..]
        .find('#')
        .map_or(url.len(), |i| path_start + i);
    let query_start = url[path_start..fragment_start]
        .find('?')
        .map_or(fragment_start, |i| path_start + i);
    let needs = |byte: u8, in_query: bool| {
        byte <= b' '
            || byte >= 0x7f
            || matches!(byte, b'"' | b'<' | b'>')
            || (!in_query && matches!(byte, b'`' | b'{' | b'}'))
            || (in_query && byte == b'\'')
    };
    let bytes = url.as_bytes();
    let range = path_start..fragment_start;
    if !bytes[range.clone()]
        .iter()
        .enumerate()
        .any(|(i, &b)| needs(b, path_start + i >= query_start))
    {
        return None;
    }
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..path_start]);
    for (offset, &byte) in bytes[range].iter().enumerate() {
        if needs(byte, path_start + offset >= query_start) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push(char::from(byte));
        }
    }
    out.push_str(&url[fragment_start..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forms_follow_the_helper_libraries() {
        let cases = [
            ("https://h.com/p?a=1", "https://h.com:443/p?a=1"),
            ("http://h.com/p", "http://h.com:80/p"),
            ("HTTPS://h.com", "HTTPS://h.com:443"),
            ("https://h.com:1234/p", "https://h.com/p"),
            ("https://u:p@h.com:443/p", "https://u:p@h.com/p"),
            ("https://u:p@h.com/p", "https://u:p@h.com:443/p"),
            ("https://[::1]/p", "https://[::1]:443/p"),
            ("https://[::1]:8443/p", "https://[::1]/p"),
            ("https://h.com?x=a:b", "https://h.com:443?x=a:b"),
        ];
        for (url, toggled) in cases {
            let parts = UrlParts::parse(url).expect(url);
            let mut out = String::new();
            parts.write(false, &mut out);
            assert_eq!(out, url);
            out.clear();
            parts.write(true, &mut out);
            assert_eq!(out, toggled, "{url}");
        }
    }

    #[test]
    fn urls_that_cannot_be_signed_are_refused() {
        for url in [
            "",
            "/relative/path",
            "mycompany.com/x",
            "://h.com/",
            "1http://h.com/",
            "https:///path",
            "https://user@:443/p",
            "https://h.com:44a/",
            "https://[::1/",
        ] {
            assert!(
                matches!(UrlParts::parse(url), Err(VerifyError::BadUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn only_characters_a_url_parser_would_escape_are_escaped() {
        let cases = [
            ("https://h.com/p?a=1&b=%27", None),
            (
                "https://h.com/p?Body=It's",
                Some("https://h.com/p?Body=It%27s"),
            ),
            ("https://h.com/it's?q", None),
            (
                "https://h.com/a b?c d#e f",
                Some("https://h.com/a%20b?c%20d#e f"),
            ),
            (
                "https://h.com/Espa\u{f1}a",
                Some("https://h.com/Espa%C3%B1a"),
            ),
            ("https://h.com/{x}?{y}", Some("https://h.com/%7Bx%7D?{y}")),
        ];
        for (url, expected) in cases {
            assert_eq!(percent_encoded(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn the_body_hash_is_read_from_the_query_only() {
        assert_eq!(
            query_value("https://h/p?a=1&bodySHA256=ab", "bodySHA256"),
            Some("ab")
        );
        assert_eq!(
            query_value("https://h/p?bodySHA256=ab&bodySHA256=cd", "bodySHA256"),
            Some("ab")
        );
        assert_eq!(
            query_value("https://h/p?bodySHA256", "bodySHA256"),
            Some("")
        );
        assert_eq!(query_value("https://h/bodySHA256=ab", "bodySHA256"), None);
        assert_eq!(
            query_value("https://h/p#?bodySHA256=ab", "bodySHA256"),
            None
        );
        assert_eq!(
            query_value("https://h/p?xbodySHA256=ab", "bodySHA256"),
            None
        );
    }
}
