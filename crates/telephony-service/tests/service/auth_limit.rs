//! Repeated bad API keys from one client address get 429 `too_many_auth_failures` with a
//! `Retry-After`; valid keys (from that address too: behind a load balancer every client shares
//! its address), other clients and requests without a peer address (the router driven
//! in-process) are not slowed. The table is bounded (see `telephony_service::auth_limit`'s unit tests).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::support::{Gateway, code};

/// Sends `GET /v1/numbers` with `key` from `peer`; status, `Retry-After`, body.
async fn from(gw: &Gateway, peer: Option<&str>, key: &str) -> (StatusCode, Option<u64>, Value) {
    let mut request = Request::builder()
        .method("GET")
        .uri("/v1/numbers")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request");
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().expect("address");
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = gw.app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        retry_after,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
#[allow(clippy::print_stdout)]
async fn repeated_bad_keys_from_one_client_get_429_with_retry_after_and_nobody_else_is_slowed() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("Acme").await;
    let attacker = "192.0.2.10:40000";
    let limit = telephony_service::auth_limit::AuthLimitConfig::default().max_failures;
    let mut refused = 0;
    for i in 0..limit {
        let (status, retry_after, body) = from(&gw, Some(attacker), &format!("tgk_guess{i}")).await;
        assert_eq!(
            (status, retry_after),
            (StatusCode::UNAUTHORIZED, None),
            "{body}"
        );
        refused += 1;
    }
    // The next attempt, from another port of the same address, is braked.
    let (status, retry_after, body) = from(&gw, Some("192.0.2.10:40001"), "tgk_guess").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "too_many_auth_failures");
    let wait = retry_after.expect("a Retry-After");
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    // A valid key from the braked address still works: one client's failures never lock out
    // another behind the same address (a load balancer, a NAT); its next failure is a 429.
    let (status, _, body) = from(&gw, Some(attacker), &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = from(&gw, Some(attacker), "tgk_guess_again").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Other clients are not slowed: a valid key from another address works, a bad key from
    // another address is a plain 401, and the IPv6 neighbour is counted on its own.
    let (status, _, body) = from(&gw, Some("198.51.100.7:5000"), &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = from(&gw, Some("198.51.100.8:5000"), "tgk_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = from(&gw, Some("[2001:db8::1]:5000"), "tgk_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Successes are never counted: many of them, then a bad key, is a 401.
    for _ in 0..(limit + 5) {
        let (status, _, _) = from(&gw, Some("198.51.100.9:5000"), &key).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = from(&gw, Some("198.51.100.9:5000"), "tgk_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without a peer address (in-process use of the router) nothing is limited.
    for i in 0..(limit + 5) {
        let (status, _, _) = from(&gw, None, &format!("tgk_guess{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    println!(
        "auth limit: {refused} bad keys answered 401, then 429 with Retry-After {wait} s; \
         other clients unaffected"
    );
}
