//! The REST API's contract: authentication, tenancy, the error model, bounds, and the OpenAPI
//! document.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;

use super::support::{Gateway, TWILIO_SID, TWILIO_TOKEN, code, metric};

#[tokio::test]
async fn requests_without_a_valid_api_key_are_unauthorized() {
    let gw = Gateway::start().await;
    for key in [None, Some("nope"), Some("")] {
        let (status, body) = gw.call("GET", "/v1/numbers", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(code(&body), "unauthorized");
    }
    let request = Request::get("/v1/numbers")
        .header("authorization", "Basic abc")
        .body(Body::empty())
        .expect("req");
    assert_eq!(gw.raw(request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_organizations_ids_answer_not_found() {
    let gw = Gateway::start().await;
    let (_, alice) = gw.org("alice").await;
    let (_, bob) = gw.org("bob").await;
    let connection = gw.connect_twilio(&alice).await;
    let agent = gw.agent(&alice, "wss://a.example.com/m").await;
    let (status, imported) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&alice),
            Some(json!({"connection_id": connection, "e164": "+14155550101"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let number = imported["number"]["id"].as_str().expect("id").to_owned();

    for (method, path, body) in [
        ("GET", format!("/v1/carriers/{connection}"), None),
        (
            "GET",
            format!("/v1/carriers/{connection}/available-numbers"),
            None,
        ),
        (
            "DELETE",
            format!("/v1/carriers/{connection}?confirm=true"),
            None,
        ),
        (
            "POST",
            format!("/v1/carriers/{connection}/credentials"),
            Some(
                json!({"provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN}),
            ),
        ),
        ("GET", format!("/v1/numbers/{number}"), None),
        (
            "PATCH",
            format!("/v1/numbers/{number}"),
            Some(json!({"nickname": "mine now"})),
        ),
        ("DELETE", format!("/v1/numbers/{number}"), None),
        ("GET", format!("/v1/numbers/{number}/diagnostics"), None),
        ("GET", format!("/v1/agents/{agent}"), None),
        (
            "PUT",
            format!("/v1/agents/{agent}"),
            Some(json!({"name": "x", "target": "wss://x.example.com"})),
        ),
        ("DELETE", format!("/v1/agents/{agent}"), None),
    ] {
        let (status, body) = gw.call(method, &path, Some(&bob), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(code(&body), "not_found");
    }
    // Bob's lists are empty, and Alice's things are untouched.
    for path in ["/v1/carriers", "/v1/numbers", "/v1/agents"] {
        let (_, body) = gw.call("GET", path, Some(&bob), None).await;
        assert_eq!(body["data"], json!([]), "{path}");
    }
    let (status, body) = gw
        .call("GET", &format!("/v1/numbers/{number}"), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nickname"], serde_json::Value::Null);
    // Importing a number another organization holds says only that it is taken.
    let bob_connection = gw.connect_twilio(&bob).await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&bob),
            Some(json!({"connection_id": bob_connection, "e164": "+14155550101"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "number_already_imported");
    assert!(!body.to_string().contains("alice"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_code() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    let cases = [
        (
            json!({"connection_id": connection, "e164": "4155550101"}),
            StatusCode::BAD_REQUEST,
            "invalid_phone_number",
        ),
        (
            json!({"connection_id": connection, "e164": "+19995550000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "number_not_in_account",
        ),
        (
            json!({"connection_id": connection, "e164": "+14155550102"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "number_not_voice_capable",
        ),
        (
            json!({"connection_id": connection}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"connection_id": connection, "e164": "+14155550101", "mode": "sideways"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, expected) in cases {
        let (got, answer) = gw
            .call("POST", "/v1/numbers/import", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            (got, code(&answer)),
            (status, expected),
            "{body} -> {answer}"
        );
    }
    // Refused credentials are not stored.
    let (status, body) = gw
        .call("POST", "/v1/carriers", Some(&key), Some(json!({"name": "bad", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": "wrong-token"})))
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_verification_failed"
        )
    );
    assert!(!body.to_string().contains("wrong-token"));
    let (_, list) = gw.call("GET", "/v1/carriers", Some(&key), None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

    // Malformed JSON, a wrong content type, and a value of the wrong type.
    let request = Request::post("/v1/agents")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .expect("req");
    let (status, body) = gw.raw(request).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let request = Request::post("/v1/agents")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from("name=x"))
        .expect("req");
    let (status, body) = gw.raw(request).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, body) = gw
        .call("POST", "/v1/carriers", Some(&key), Some(json!({"name": "x", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": 12345})))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(
        !body.to_string().contains("12345"),
        "the refused value is echoed: {body}"
    );
}

#[tokio::test]
async fn oversized_bodies_and_unknown_routes_answer_in_the_error_format() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let huge = "x".repeat(200 * 1024);
    let (status, body) = gw
        .call(
            "POST",
            "/v1/agents",
            Some(&key),
            Some(json!({"name": huge, "target": "wss://a"})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");
    let (status, body) = gw.call("GET", "/v1/nothing-here", Some(&key), None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = gw.call("PATCH", "/v1/agents", Some(&key), None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn agents_can_be_created_listed_replaced_and_deleted() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let id = gw.agent(&key, "wss://agents.example.com/a").await;
    let (status, body) = gw
        .call("PUT", &format!("/v1/agents/{id}"), Some(&key), Some(json!({"name": "Grace", "target": "sip:grace@agents.example.com", "max_concurrent_calls": 2})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["target_kind"].as_str()),
        (Some("Grace"), Some("sip"))
    );
    let (_, list) = gw.call("GET", "/v1/agents", Some(&key), None).await;
    assert_eq!(list["data"][0]["max_concurrent_calls"], 2);
    let (status, body) = gw
        .call(
            "PUT",
            &format!("/v1/agents/{id}"),
            Some(&key),
            Some(json!({"name": "", "target": "ftp://x"})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(
        gw.call("DELETE", &format!("/v1/agents/{id}"), Some(&key), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        gw.call("GET", &format!("/v1/agents/{id}"), Some(&key), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_connection_shows_its_number_count_and_disconnect_previews_first() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    for e164 in ["+14155550100", "+14155550101"] {
        let (status, body) = gw
            .call(
                "POST",
                "/v1/numbers/import",
                Some(&key),
                Some(json!({"connection_id": connection, "e164": e164, "mode": "managed"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, body) = gw
        .call(
            "GET",
            &format!("/v1/carriers/{connection}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(body["number_count"], 2);
    assert!(!body.to_string().contains(TWILIO_TOKEN));
    let (_, preview) = gw
        .call(
            "DELETE",
            &format!("/v1/carriers/{connection}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (preview["numbers"].as_u64(), preview["deleted"].as_bool()),
        (Some(2), Some(false))
    );
    assert!(
        gw.twilio_voice_url("+14155550100")
            .is_some_and(|u| u.starts_with(&gw.public_url))
    );
    let (status, done) = gw
        .call(
            "DELETE",
            &format!("/v1/carriers/{connection}?confirm=true"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["deleted"], true);
    assert_eq!(
        gw.twilio_voice_url("+14155550100").as_deref(),
        Some("https://old.example.com/voice")
    );
    let (_, numbers) = gw.call("GET", "/v1/numbers", Some(&key), None).await;
    assert_eq!(numbers["data"], json!([]));
}

#[tokio::test]
async fn openapi_describes_every_route_and_operator_endpoints_answer() {
    let gw = Gateway::start().await;
    let (status, doc) = gw.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/v1/carriers", &["get", "post"][..]),
        ("/v1/carriers/{id}", &["get", "delete"]),
        ("/v1/carriers/{id}/credentials", &["post"]),
        ("/v1/carriers/{id}/available-numbers", &["get"]),
        ("/v1/numbers", &["get"]),
        ("/v1/numbers/import", &["post"]),
        ("/v1/numbers/{id}", &["get", "patch", "delete"]),
        ("/v1/numbers/{id}/diagnostics", &["get"]),
        ("/v1/agents", &["get", "post"]),
        ("/v1/agents/{id}", &["get", "put", "delete"]),
        ("/v1/calls", &["get"]),
        ("/v1/audit-log", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing"
            );
        }
    }
    assert_eq!(
        gw.call("GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        gw.call("GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    let healthz_200 = r#"gateway_http_requests_total{route="/healthz",status="200"}"#;
    // Requests are counted by matched route and status (other tests in this process share
    // the recorder, so the count only ever grows by at least what this test sent).
    let (status, metrics) = gw.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().expect("text").to_owned();
    let before = metric(&metrics, healthz_200);
    assert!(before >= 1, "{metrics}");
    for _ in 0..2 {
        gw.call("GET", "/healthz", None, None).await;
    }
    let (_, metrics) = gw.call("GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(metric(&metrics, healthz_200) >= before + 2, "{metrics}");
}
