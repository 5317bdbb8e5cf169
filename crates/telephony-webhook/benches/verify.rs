//! Signature verification on the inbound path: one check per carrier webhook.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use telephony_vault::SecretString;
use telephony_webhook::{telnyx, twilio};

/// A realistic inbound voice webhook (the parameters Twilio sends for an incoming call).
fn voice_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "ringing"),
        ("Called", "+14155550100"),
        ("CalledCity", "SAN FRANCISCO"),
        ("CalledCountry", "US"),
        ("CalledState", "CA"),
        ("CalledZip", "94105"),
        ("Caller", "+14155550123"),
        ("CallerCountry", "US"),
        ("Direction", "inbound"),
        ("From", "+14155550123"),
        ("FromCountry", "US"),
        ("To", "+14155550100"),
    ]
}

fn bench(c: &mut Criterion) {
    let url = "https://gateway.example.com/v1/webhooks/twilio/voice";
    let params = voice_params();
    let token = SecretString::new("0123456789abcdef0123456789abcdef");
    let previous = SecretString::new("fedcba9876543210fedcba9876543210");
    let signature = twilio::sign(url, &params, &token);

    c.bench_function("twilio_verify_voice_15_params", |b| {
        b.iter(|| {
            twilio::verify(
                black_box(url),
                black_box(&params),
                Some(black_box(signature.as_str())),
                &[&token],
            )
        })
    });
    // Worst case of a rotation grace period: the current token is second and the URL form
    // Twilio signed is the second one tried.
    let with_port = "https://gateway.example.com:443/v1/webhooks/twilio/voice";
    let port_signature = twilio::sign(with_port, &params, &token);
    c.bench_function("twilio_verify_voice_second_token_second_url_form", |b| {
        b.iter(|| {
            twilio::verify(
                black_box(url),
                black_box(&params),
                Some(black_box(port_signature.as_str())),
                &[&previous, &token],
            )
        })
    });

    let signer = telnyx::Signer::from_seed_base64("i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=")
        .expect("seed");
    let body = br#"{"data":{"event_type":"call.initiated","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-11-21T15:00:00.000000Z","payload":{"call_control_id":"v3:abc","connection_id":"1684641123236054244","direction":"incoming","from":"+35319605860","to":"+13129457420","state":"parked"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://gateway.example.com/v1/webhooks/telnyx"}}"#;
    let now = 1_700_000_000;
    let headers = signer.sign(now, body);
    let keys = [signer.public_key()];
    let clock = UNIX_EPOCH + Duration::from_secs(now);
    c.bench_function("telnyx_verify_call_initiated", |b| {
        b.iter(|| {
            telnyx::verify(
                black_box(body),
                Some(black_box(headers.signature.as_str())),
                Some(black_box(headers.timestamp.as_str())),
                &keys,
                black_box(clock),
                telnyx::DEFAULT_TOLERANCE,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
