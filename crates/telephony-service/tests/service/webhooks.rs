//! Webhooks are authenticated by signature alone, fail closed, and are answered once per call.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;
use telephony_vault::SecretString;

use super::support::{Gateway, TWILIO_SID, TWILIO_TOKEN};

fn signed_twilio(gw: &Gateway, path: &str, params: &[(&str, &str)], token: &str) -> Request<Body> {
    let url = format!("{}{path}", gw.public_url);
    let signature = telephony_webhook::twilio::sign(&url, params, &SecretString::new(token));
    let body = serde_urlencoded::to_string(params).expect("form");
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(body))
        .expect("request")
}

async fn imported(gw: &Gateway) -> String {
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    let agent = gw.agent(&key, "wss://agents.example.com/media").await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101", "agent_id": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    key
}

#[tokio::test]
async fn an_unknown_number_answers_404_and_a_bad_signature_403() {
    let gw = Gateway::start().await;
    imported(&gw).await;
    let unknown = [
        ("To", "+19995550000"),
        ("From", "+15005550006"),
        ("CallSid", "CA1"),
        ("AccountSid", TWILIO_SID),
    ];
    assert_eq!(
        gw.raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &unknown,
            TWILIO_TOKEN
        ))
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let call = [
        ("To", "+14155550101"),
        ("From", "+15005550006"),
        ("CallSid", "CA2"),
        ("AccountSid", TWILIO_SID),
    ];
    assert_eq!(
        gw.raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &call,
            "other-token"
        ))
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Signed for another path (the signature covers the URL).
    let mut request = signed_twilio(&gw, "/webhooks/twilio/status", &call, TWILIO_TOKEN);
    *request.uri_mut() = "/webhooks/twilio/voice".parse().expect("uri");
    assert_eq!(gw.raw(request).await.0, StatusCode::FORBIDDEN);
    // No signature at all.
    let request = Request::post("/webhooks/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("To=%2B14155550101&CallSid=CA3"))
        .expect("request");
    assert_eq!(gw.raw(request).await.0, StatusCode::FORBIDDEN);
    // Correctly signed, but for another account.
    let other = [
        ("To", "+14155550101"),
        ("From", "+15005550006"),
        ("CallSid", "CA4"),
        ("AccountSid", "AC99999999999999999999999999999999"),
    ];
    assert_eq!(
        gw.raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &other,
            TWILIO_TOKEN
        ))
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Garbage bodies are refused without a panic.
    let request = Request::post("/webhooks/twilio/voice")
        .body(Body::from(vec![0xff, 0xfe, 0x00]))
        .expect("request");
    assert!(gw.raw(request).await.0.is_client_error());
}

#[tokio::test]
async fn a_retried_voice_webhook_gets_the_same_answer() {
    let gw = Gateway::start().await;
    imported(&gw).await;
    let call = [
        ("To", "+14155550101"),
        ("From", "+15005550006"),
        ("CallSid", "CAretry"),
        ("AccountSid", TWILIO_SID),
    ];
    let (first_status, first) = gw
        .raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &call,
            TWILIO_TOKEN,
        ))
        .await;
    let (second_status, second) = gw
        .raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &call,
            TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(
        first.as_str().is_some_and(|b| b.contains("<Stream")),
        "{first}"
    );
    // Same document, same per-call token: one agent session.
    assert_eq!(first, second);
}

#[tokio::test]
async fn signatures_are_checked_against_the_public_url_not_the_host_header() {
    let gw = Gateway::start().await;
    imported(&gw).await;
    let call = [
        ("To", "+14155550101"),
        ("From", "+15005550006"),
        ("CallSid", "CAhost"),
        ("AccountSid", TWILIO_SID),
    ];
    // Signed over an attacker's host, sent with that Host header: refused.
    let signature = telephony_webhook::twilio::sign(
        "http://evil.example.com/webhooks/twilio/voice",
        &call,
        &SecretString::new(TWILIO_TOKEN),
    );
    let request = Request::post("/webhooks/twilio/voice")
        .header("host", "evil.example.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(serde_urlencoded::to_string(call).expect("form")))
        .expect("request");
    assert_eq!(gw.raw(request).await.0, StatusCode::FORBIDDEN);
}
