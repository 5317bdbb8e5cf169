//! Webhooks are authenticated by signature alone, fail closed, and are answered once per call.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use telephony_service::AppState;
use telephony_service::call_token::CallTokens;
use telephony_vault::SecretString;
use tower::ServiceExt;

use super::support::{Gateway, TWILIO_SID, TWILIO_TOKEN, metric};

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

/// The call-token window of now (`call_token`): a call's token is the same within one.
fn token_window() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        / telephony_service::call_token::TOKEN_WINDOW.as_secs()
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
    // The call's token is fixed within a 5-minute window (`call_token`): note the window.
    let started_in = token_window();
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
    // Same document, same per-call token: one agent session. (Only a window boundary passed
    // between the two deliveries, once in hundreds of thousands of runs, changes the token.)
    if token_window() == started_in {
        assert_eq!(first, second);
    }
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

#[tokio::test]
async fn a_to_that_is_not_a_phone_number_answers_404_not_a_server_error() {
    let gw = Gateway::start().await;
    imported(&gw).await;
    for to in ["sip:alice@example.com", "", "anonymous", "+1"] {
        let call = [
            ("To", to),
            ("From", "+15005550006"),
            ("CallSid", "CAsip"),
            ("AccountSid", TWILIO_SID),
        ];
        for path in [
            "/webhooks/twilio/voice",
            "/webhooks/twilio/status",
            "/webhooks/twilio/fallback",
        ] {
            let (status, _) = gw.raw(signed_twilio(&gw, path, &call, TWILIO_TOKEN)).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{path} To={to:?}: {status}"
            );
        }
    }
}

#[tokio::test]
async fn one_organizations_call_ids_cannot_read_or_plant_anothers_answer() {
    let gw = Gateway::start().await;
    // Two organizations on one carrier account, each with its own number and agent.
    let (_, alice) = gw.org("alice").await;
    let (_, mallory) = gw.org("mallory").await;
    let mut numbers = Vec::new();
    for (key, e164, target) in [
        (&alice, "+14155550100", "wss://alice.example.com/media"),
        (&mallory, "+14155550101", "wss://mallory.example.com/media"),
    ] {
        let connection = gw.connect_twilio(key).await;
        let agent = gw.agent(key, target).await;
        let (status, body) = gw
            .call(
                "POST",
                "/v1/numbers/import",
                Some(key),
                Some(json!({"connection_id": connection, "e164": e164, "agent_id": agent})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        numbers.push(body["number"]["id"].as_str().expect("id").to_owned());
    }
    // Mallory signs a webhook for her own number with the CallSid Alice's next call will have.
    let planted = [
        ("To", "+14155550101"),
        ("From", "+15005550006"),
        ("CallSid", "CAshared"),
        ("AccountSid", TWILIO_SID),
    ];
    let (status, _) = gw
        .raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &planted,
            TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Alice's call with that CallSid is routed to Alice's agent, not answered with Mallory's document.
    let real = [
        ("To", "+14155550100"),
        ("From", "+15005550007"),
        ("CallSid", "CAshared"),
        ("AccountSid", TWILIO_SID),
    ];
    let (status, body) = gw
        .raw(signed_twilio(
            &gw,
            "/webhooks/twilio/voice",
            &real,
            TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = body.as_str().unwrap_or_default().to_owned();
    assert!(body.contains("wss://alice.example.com/media"), "{body}");
    assert!(
        body.contains(&numbers[0]) && !body.contains(&numbers[1]),
        "{body}"
    );
}

#[tokio::test]
async fn a_telnyx_webhook_from_another_account_is_refused() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let public_key = gw.emulator.state().telnyx_accounts[0].public_key.clone();
    let account = gw.emulator.state().telnyx_accounts[0].account_sid.clone();
    let (status, connection) = gw
        .call("POST", "/v1/carriers", Some(&key), Some(json!({
            "name": "telnyx", "provider": "telnyx", "api_key": super::support::TELNYX_KEY,
            "public_key": public_key, "texml_app_id": super::support::TELNYX_APP, "account_sid": account,
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection = connection["id"].as_str().expect("id").to_owned();
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+13125550100"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let signer = telephony_webhook::telnyx::Signer::from_seed_base64(super::support::TELNYX_SEED)
        .expect("seed");
    let send = |account: &str| {
        let body = serde_urlencoded::to_string([
            ("To", "+13125550100"),
            ("From", "+15005550006"),
            ("CallSid", "v3:abc"),
            ("AccountSid", account),
        ])
        .expect("form");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let signed = signer.sign(now, body.as_bytes());
        Request::post("/webhooks/telnyx/texml")
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                telephony_webhook::telnyx::SIGNATURE_HEADER,
                signed.signature,
            )
            .header(
                telephony_webhook::telnyx::TIMESTAMP_HEADER,
                signed.timestamp,
            )
            .body(Body::from(body))
            .expect("request")
    };
    assert_eq!(
        gw.raw(send("00000000-0000-4000-8000-000000000000")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(gw.raw(send(&account)).await.0, StatusCode::OK);
}

/// A kind of request, and how to make one.
type Case<'a> = (&'a str, Box<dyn Fn() -> Request<Body> + 'a>);

#[tokio::test]
async fn webhooks_answered_before_routing_get_the_routers_answers_and_metrics() {
    let gw = Gateway::start().await;
    imported(&gw).await;
    // The router alone, over the same registry and keys: what the webhooks got before the
    // service answered them without it.
    let state = AppState::new(
        gw.registry.clone(),
        telephony_service::metrics::install_recorder().expect("metrics"),
        gw.public_url.parse().expect("url"),
        CallTokens::new(&[42; 32]),
    );
    let router = telephony_service::router(state, 64 * 1024);
    let call = |sid: &'static str| {
        [
            ("To", "+14155550101"),
            ("From", "+15005550006"),
            ("CallSid", sid),
            ("AccountSid", TWILIO_SID),
        ]
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "a call (the router's is a retried delivery: the same document)",
            Box::new(|| {
                signed_twilio(&gw, "/webhooks/twilio/voice", &call("CAsame"), TWILIO_TOKEN)
            }),
        ),
        (
            "a bad signature",
            Box::new(|| signed_twilio(&gw, "/webhooks/twilio/voice", &call("CAbad"), "nope")),
        ),
        (
            "a status callback",
            Box::new(|| {
                signed_twilio(
                    &gw,
                    "/webhooks/twilio/status",
                    &call("CAsame"),
                    TWILIO_TOKEN,
                )
            }),
        ),
        (
            "the fallback",
            Box::new(|| {
                signed_twilio(
                    &gw,
                    "/webhooks/twilio/fallback",
                    &call("CAsame"),
                    TWILIO_TOKEN,
                )
            }),
        ),
        (
            "no fields",
            Box::new(|| {
                Request::post("/webhooks/telnyx/texml")
                    .body(Body::from("From=%2B1"))
                    .expect("request")
            }),
        ),
        (
            "a body over the limit",
            Box::new(|| {
                Request::post("/webhooks/telnyx/status")
                    .body(Body::from(vec![b'a'; 64 * 1024 + 1]))
                    .expect("request")
            }),
        ),
        (
            "another method",
            Box::new(|| {
                Request::get("/webhooks/twilio/voice")
                    .body(Body::empty())
                    .expect("request")
            }),
        ),
    ];
    let answer = |response: http::Response<Body>| async move {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers.get("content-type").cloned(), body)
    };
    // A call's token changes at the boundary of its 5-minute window (`call_token`): a pair
    // that straddles one is compared again.
    for (what, request) in &cases {
        loop {
            let started_in = token_window();
            let direct = answer(gw.app.clone().oneshot(request()).await.expect("infallible")).await;
            let routed = answer(router.clone().oneshot(request()).await.expect("infallible")).await;
            if token_window() == started_in {
                assert_eq!(direct, routed, "{what}");
                break;
            }
        }
    }

    // Answered before routing, a webhook is still counted by route and status, and timed.
    let (_, before) = gw.call("GET", "/metrics", None, None).await;
    let before = before.as_str().expect("text").to_owned();
    for sid in ["CAm1", "CAm2", "CAm3"] {
        let request = signed_twilio(&gw, "/webhooks/twilio/voice", &call(sid), TWILIO_TOKEN);
        assert_eq!(gw.raw(request).await.0, StatusCode::OK);
    }
    let request = signed_twilio(&gw, "/webhooks/twilio/voice", &call("CAm4"), "nope");
    assert_eq!(gw.raw(request).await.0, StatusCode::FORBIDDEN);
    let (_, after) = gw.call("GET", "/metrics", None, None).await;
    let after = after.as_str().expect("text").to_owned();
    for (series, more) in [
        (
            r#"gateway_http_requests_total{route="/webhooks/twilio/voice",status="200"}"#,
            3,
        ),
        (
            r#"gateway_http_requests_total{route="/webhooks/twilio/voice",status="403"}"#,
            1,
        ),
        (
            r#"gateway_webhook_duration_seconds_count{route="/webhooks/twilio/voice"}"#,
            4,
        ),
    ] {
        assert!(
            metric(&after, series) >= metric(&before, series) + more,
            "{series}: {after}"
        );
    }
}
