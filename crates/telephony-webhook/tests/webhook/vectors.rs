//! The vector files under `tests/vectors/`, each block checked by one `check` helper.

use std::time::{Duration, UNIX_EPOCH};

use telephony_vault::SecretString;
use telephony_webhook::{telnyx, twilio};

use super::outcome;

/// The shared fixture of Twilio's helper-library tests.
const FIXTURE_P: [(&str, &str); 5] = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
];

/// One block of `name = value` lines; repeated names keep their order.
struct Block<'a> {
    text: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Block<'a> {
    fn all(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_owned();
        self.fields
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    fn one(&self, name: &str) -> Option<&'a str> {
        self.all(name).next()
    }

    fn required(&self, name: &str) -> &'a str {
        self.one(name)
            .unwrap_or_else(|| panic!("vector lacks `{name}`:\n{}", self.text))
    }
}

fn blocks(file: &str) -> Vec<Block<'_>> {
    file.split("\n\n")
        .map(|text| Block {
            text,
            fields: text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (k, v) = l.split_once(" =")?;
                    Some((k, v.strip_prefix(' ').unwrap_or(v)))
                })
                .collect(),
        })
        .filter(|b| !b.fields.is_empty())
        .collect()
}

/// Runs every block through `run`, compares with its `expect`, and reports all mismatches at
/// once.
fn check(file: &str, run: impl Fn(&Block<'_>) -> String) -> usize {
    let blocks = blocks(file);
    let failures: Vec<String> = blocks
        .iter()
        .filter_map(|block| {
            let got = run(block);
            let want = block.required("expect");
            (got != want).then(|| format!("{}: expected {want}, got {got}", block.required("id")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    blocks.len()
}

#[test]
fn twilio_published_and_derived_vectors() {
    let checked = check(include_str!("../vectors/twilio.txt"), |block| {
        let tokens: Vec<SecretString> = block.all("token").map(SecretString::from).collect();
        let tokens: Vec<&SecretString> = tokens.iter().collect();
        let url = block.required("url");
        let signature = block.one("signature");
        if let Some(body) = block.one("body") {
            return outcome(twilio::verify_json_body(
                url,
                body.as_bytes(),
                signature,
                &tokens,
            ));
        }
        let mut params: Vec<(&str, &str)> = block
            .all("param")
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        if block.one("params") == Some("P") {
            params.extend(FIXTURE_P);
        }
        outcome(twilio::verify(url, &params, signature, &tokens))
    });
    assert_eq!(checked, 71);
}

#[test]
fn telnyx_derived_vectors_and_published_format_cases() {
    let checked = check(include_str!("../vectors/telnyx.txt"), |block| {
        let keys: Result<Vec<_>, _> = block
            .all("key")
            .map(telnyx::PublicKey::from_base64)
            .collect();
        let keys = match keys {
            Ok(keys) => keys,
            Err(err) => return outcome(Err(err)),
        };
        let body = match (block.one("body"), block.one("body_hex")) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(hex)) => decode_hex(hex),
            (None, None) => panic!("no body:\n{}", block.text),
        };
        let now: u64 = block.required("now").parse().expect("now");
        outcome(telnyx::verify(
            &body,
            block.one("signature"),
            block.one("timestamp"),
            &keys,
            UNIX_EPOCH + Duration::from_secs(now),
            telnyx::DEFAULT_TOLERANCE,
        ))
    });
    assert_eq!(checked, 26);
}

/// The published seed signs the derived vectors byte for byte (Ed25519 is deterministic).
#[test]
fn the_published_telnyx_seed_reproduces_the_derived_signatures() {
    let signer = telnyx::Signer::from_seed_base64("i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=")
        .expect("seed");
    assert_eq!(
        signer.public_key().to_base64(),
        "jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qs="
    );
    let blocks = blocks(include_str!("../vectors/telnyx.txt"));
    let mut signed = 0;
    for block in blocks.iter().filter(|b| b.required("id").len() == 2) {
        let body = match block.one("body") {
            Some(text) => text.as_bytes().to_vec(),
            None => decode_hex(block.required("body_hex")),
        };
        let headers = signer.sign(
            block.required("timestamp").parse().expect("timestamp"),
            &body,
        );
        assert_eq!(
            headers.signature,
            block.required("signature"),
            "{}",
            block.text
        );
        assert_eq!(headers.timestamp, block.required("timestamp"));
        signed += 1;
    }
    assert_eq!(signed, 4, "X1 to X4");
}

/// The signer reproduces every positive Twilio vector that was signed over the validated URL.
#[test]
fn twilio_signing_reproduces_the_base_vectors() {
    let token = SecretString::new("12345");
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        twilio::string_to_sign(url, &FIXTURE_P),
        "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
    );
    assert_eq!(
        twilio::sign(url, &FIXTURE_P, &token),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    let t6 = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ];
    expect_test::expect![
        "https://mycompany.com/myapp.php?foo=1&bar=2Digits1234Digits5678SidCA123SidAccountAC123"
    ]
    .assert_eq(&twilio::string_to_sign(url, &t6));
    let (signed_url, signature) =
        twilio::sign_json_body(url, br#"{"property": "value", "boolean": true}"#, &token);
    assert_eq!(
        signed_url,
        "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    );
    assert_eq!(signature, "a9nBmqA0ju/hNViExpshrM61xv4=", "T7");
    let (signed_url, signature) = twilio::sign_json_body(
        "https://mycompany.com/myapp.php",
        br#"{"property": "value", "boolean": true}"#,
        &token,
    );
    assert!(signed_url.ends_with(
        "myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    ));
    assert_eq!(signature, "y77kIzt2vzLz71DgmJGsen2scGs=", "T8");
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
