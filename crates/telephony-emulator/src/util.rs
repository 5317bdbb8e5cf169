//! Small shared helpers: identifiers, clocks, number formatting, query parsing.

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};

/// 16 random bytes; falls back to the clock if the OS generator fails, which is good enough for
/// identifiers in a test tool and keeps this infallible.
fn random16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Twilio SID: two-letter prefix and 32 hex characters.
pub(crate) fn twilio_sid(prefix: &str) -> String {
    format!("{prefix}{}", hex(&random16()))
}

/// A random UUID (v4 layout).
pub(crate) fn uuid() -> String {
    let mut b = random16();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Telnyx-style numeric string id.
pub(crate) fn numeric_id() -> String {
    let b = random16();
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    // Telnyx ids are 19-digit numbers; keep within that range.
    let v = u64::from_le_bytes(n) % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000;
    v.to_string()
}

/// A Telnyx `v3:` call control id.
pub(crate) fn call_control_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&random16());
    bytes[16..].copy_from_slice(&random16());
    format!(
        "v3:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random opaque token.
pub(crate) fn token() -> String {
    hex(&random16())
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

/// RFC 2822 in GMT, as the Twilio 2010 API writes dates.
pub(crate) fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// ISO 8601 with milliseconds and `Z`, as Telnyx writes timestamps.
pub(crate) fn iso8601(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `(808) 925-5327` for NANP numbers, the E.164 string otherwise (Twilio's default friendly name).
pub(crate) fn format_number(e164: &str) -> String {
    let digits = e164.strip_prefix("+1").unwrap_or("");
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        format!("({}) {}-{}", &digits[0..3], &digits[3..6], &digits[6..10])
    } else {
        e164.to_string()
    }
}

/// The area code / national destination code of a NANP number.
pub(crate) fn area_code(e164: &str) -> Option<&str> {
    let digits = e164.strip_prefix("+1")?;
    digits.get(0..3)
}

/// Whether a string is `+` followed by 2 to 15 digits.
pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes a query string or form body into ordered pairs; undecodable input yields no pairs
/// rather than an error, because carriers ignore what they cannot read.
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap_or_default()
}

/// The first value of `name` in `pairs`.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Encodes pairs as a query string / form body.
pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Glob match where `*` stands for any run of characters.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let last = rest.len() - 1;
    for (i, part) in rest.iter().enumerate() {
        if i == last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(pos) => remaining = &remaining[pos + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_route_pattern() {
        let cases = [
            ("/v2/phone_numbers", "/v2/phone_numbers", true),
            ("/v2/phone_numbers", "/v2/phone_numbers/1", false),
            ("/v2/phone_numbers*", "/v2/phone_numbers/1", true),
            (
                "/2010-04-01/Accounts/*/Calls.json",
                "/2010-04-01/Accounts/AC1/Calls.json",
                true,
            ),
            (
                "/2010-04-01/Accounts/*/Calls.json",
                "/2010-04-01/Accounts/AC1/Calls/CA1.json",
                false,
            ),
            ("*", "/anything", true),
            ("*/x/*", "/a/x/b", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn numbers_are_formatted_like_twilio() {
        assert_eq!(format_number("+18089255327"), "(808) 925-5327");
        assert_eq!(format_number("+442071838750"), "+442071838750");
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("4155550100"));
        assert!(!is_e164("+1415abc"));
    }

    #[test]
    fn identifiers_have_the_carrier_shapes() {
        let sid = twilio_sid("PN");
        assert_eq!(sid.len(), 34);
        assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(uuid().len(), 36);
        assert_eq!(numeric_id().len(), 19);
        assert!(call_control_id().starts_with("v3:"));
    }
}
