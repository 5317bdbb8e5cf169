//! Admission control before answering: a number's limit of concurrent calls sends the calls
//! beyond it to the agent's fallback number, or to a polite busy message, and leaves the calls
//! already connected alone.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use telephony_vault::SecretString;

use super::support::{Gateway, TWILIO_SID, TWILIO_TOKEN, code};

const NUMBER: &str = "+14155550101";
const FALLBACK: &str = "+15005550009";

fn signed_twilio(gw: &Gateway, path: &str, params: &[(&str, &str)]) -> Request<Body> {
    let url = format!("{}{path}", gw.public_url);
    let signature = telephony_webhook::twilio::sign(&url, params, &SecretString::new(TWILIO_TOKEN));
    let body = serde_urlencoded::to_string(params).expect("form");
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(body))
        .expect("request")
}

/// An inbound call's voice webhook; returns the TwiML.
async fn ring(gw: &Gateway, call_id: &str) -> String {
    let params = [
        ("To", NUMBER),
        ("From", "+15005550006"),
        ("CallSid", call_id),
        ("AccountSid", TWILIO_SID),
        ("CallStatus", "ringing"),
    ];
    let (status, body) = gw
        .raw(signed_twilio(gw, "/webhooks/twilio/voice", &params))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_str().expect("TwiML").to_owned()
}

/// The carrier reports the call over.
async fn hang_up(gw: &Gateway, call_id: &str) {
    let params = [
        ("To", NUMBER),
        ("From", "+15005550006"),
        ("CallSid", call_id),
        ("AccountSid", TWILIO_SID),
        ("CallStatus", "completed"),
    ];
    let (status, body) = gw
        .raw(signed_twilio(gw, "/webhooks/twilio/status", &params))
        .await;
    assert!(status.is_success(), "{status} {body}");
}

/// An organization with a number on an agent without a limit of its own (`fallback` as the
/// agent's fallback number); returns the API key and the number's id.
async fn number_on_agent(gw: &Gateway, fallback: Option<&str>) -> (String, String) {
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    let (status, agent) = gw
        .call(
            "POST",
            "/v1/agents",
            Some(&key),
            Some(json!({
                "name": "Ada", "target": "wss://agents.example.com/media",
                "fallback_number": fallback,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": NUMBER, "agent_id": agent["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["number"]["id"].as_str().expect("number id").to_owned();
    assert_eq!(
        body["number"]["max_concurrent_calls"],
        Value::Null,
        "{body}"
    );
    (key, id)
}

async fn set_limit(gw: &Gateway, key: &str, id: &str, limit: Value) -> (StatusCode, Value) {
    gw.call(
        "PATCH",
        &format!("/v1/numbers/{id}"),
        Some(key),
        Some(json!({ "max_concurrent_calls": limit })),
    )
    .await
}

#[tokio::test]
async fn with_a_number_limit_of_one_the_second_concurrent_call_gets_the_agents_fallback() {
    let gw = Gateway::start().await;
    let (key, id) = number_on_agent(&gw, Some(FALLBACK)).await;
    let (status, body) = set_limit(&gw, &key, &id, json!(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["number"]["max_concurrent_calls"], 1, "{body}");
    let (_, number) = gw
        .call("GET", &format!("/v1/numbers/{id}"), Some(&key), None)
        .await;
    assert_eq!(number["max_concurrent_calls"], 1, "{number}");

    let first = ring(&gw, "CAfirst").await;
    assert!(first.contains("<Stream"), "{first}");
    let second = ring(&gw, "CAsecond").await;
    assert!(
        second.contains(&format!("<Dial>{FALLBACK}</Dial>")),
        "{second}"
    );
    assert!(!second.contains("<Stream"), "{second}");
    // The first call is unaffected: its retried webhook still streams, counted once.
    assert_eq!(ring(&gw, "CAfirst").await, first);
    let number_id = id.clone();
    assert_eq!(
        gw.registry
            .active_calls_for_number(&number_id)
            .await
            .expect("count"),
        1
    );
    // Once the first call is over, its slot is free.
    hang_up(&gw, "CAfirst").await;
    let third = ring(&gw, "CAthird").await;
    assert!(third.contains("<Stream"), "{third}");
}

#[tokio::test]
async fn with_a_number_limit_of_one_the_second_concurrent_call_hears_busy_without_a_fallback() {
    let gw = Gateway::start().await;
    let (key, id) = number_on_agent(&gw, None).await;
    let (status, body) = set_limit(&gw, &key, &id, json!(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let first = ring(&gw, "CAfirst").await;
    assert!(first.contains("<Stream"), "{first}");
    let second = ring(&gw, "CAsecond").await;
    assert!(second.contains("lines are busy"), "{second}");
    assert!(second.contains("<Hangup"), "{second}");
    assert!(
        !second.contains("<Stream") && !second.contains("<Dial"),
        "{second}"
    );
    assert_eq!(ring(&gw, "CAfirst").await, first);

    // `null` removes the limit: the next concurrent call streams too.
    let (status, body) = set_limit(&gw, &key, &id, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["number"]["max_concurrent_calls"],
        Value::Null,
        "{body}"
    );
    let third = ring(&gw, "CAthird").await;
    assert!(third.contains("<Stream"), "{third}");
}

#[tokio::test]
async fn a_number_limit_of_zero_or_not_a_count_is_refused_and_changes_nothing() {
    let gw = Gateway::start().await;
    let (key, id) = number_on_agent(&gw, None).await;
    for bad in [json!(0), json!(-1), json!("one"), json!(1.5)] {
        let (status, body) = set_limit(&gw, &key, &id, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code(&body), "invalid_request", "{bad}: {body}");
    }
    let (_, number) = gw
        .call("GET", &format!("/v1/numbers/{id}"), Some(&key), None)
        .await;
    assert_eq!(number["max_concurrent_calls"], Value::Null, "{number}");
    // Documented in the OpenAPI document, on the request and on the view.
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    for schema in ["UpdateBody", "NumberView"] {
        assert!(
            doc["components"]["schemas"][schema]["properties"]
                .get("max_concurrent_calls")
                .is_some(),
            "{schema}"
        );
    }
}
