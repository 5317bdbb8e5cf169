//! Constant-time equality without a deprecated or side-channel-free-by-hope primitive.

use std::sync::OnceLock;

use ring::hmac;
use ring::rand::SystemRandom;

/// Whether `a` and `b` are equal, in time that depends on their lengths but not on where they
/// first differ.
///
/// `ring` 0.17 exposes no supported constant-time comparison (its `constant_time` module is
/// deprecated and documented as internal, "with no promises regarding side channels"), but its
/// `hmac::verify` is documented to compare in constant time. So this is the classic double-HMAC
/// comparison: the tag of `a` under a per-process random key is verified against `b`. An
/// attacker who controls `b` learns nothing from timing, because they cannot predict the tag
/// bytes that are compared. Equal tags with unequal inputs would be an HMAC-SHA-256 collision.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let key = comparison_key();
    let tag = hmac::sign(key, a);
    hmac::verify(key, b, tag.as_ref()).is_ok()
}

fn comparison_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        // A failing system RNG leaves the result correct: only the timing blinding rests on a
        // key the attacker could know, and ring's verify still compares the tags in constant
        // time, so the fallback degrades gracefully instead of panicking.
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).unwrap_or_else(|_| {
            hmac::Key::new(hmac::HMAC_SHA256, b"telephony-vault ct_eq fallback")
        })
    })
}
