//! Hostile input: proptest-generated requests through the router (random JSON to every
//! operation of `/openapi.json`, random bytes as bodies, random forms to the webhooks, random
//! paths and query strings, invalid UTF-8) never get a 5xx and never panic; bounds (413, 400,
//! huge headers, a client trickling its headers) hold; stale Telnyx timestamps are refused; a
//! repeated Twilio webhook is one call.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use telephony_vault::SecretString;

use super::support::{Gateway, TELNYX_APP, TELNYX_SEED, TWILIO_SID, TWILIO_TOKEN};

/// Cases per property: bounded so the file runs in seconds on two cores.
const CASES: u32 = 256;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A gateway with one org, a Twilio connection, an agent and an imported number; its key and
/// the ids to put in path parameters.
async fn populated() -> (Gateway, String, Vec<String>) {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("hostile").await;
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
    let number = body["number"]["id"].as_str().expect("id").to_owned();
    (gw, key, vec![connection, number, agent])
}

/// Every operation of the document, as (method, path with `{...}` filled with `id`).
async fn operations(gw: &Gateway, ids: &[String]) -> Vec<(String, String)> {
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            for id in ids {
                let mut filled = String::new();
                let mut rest = path.as_str();
                while let Some(start) = rest.find('{') {
                    filled.push_str(&rest[..start]);
                    filled.push_str(id);
                    rest = &rest[start + rest[start..].find('}').unwrap_or(0) + 1..];
                }
                filled.push_str(rest);
                out.push((method.to_uppercase(), filled));
                if !path.contains('{') {
                    break;
                }
            }
        }
    }
    out
}

const WEBHOOKS: [&str; 5] = [
    "/webhooks/twilio/voice",
    "/webhooks/twilio/fallback",
    "/webhooks/twilio/status",
    "/webhooks/telnyx/texml",
    "/webhooks/telnyx/status",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("+14155550101"),
            Just("twilio"),
            Just("telnyx"),
            Just("managed"),
            Just("wss://x"),
            Just("sip:a@b"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        Just("name".to_owned()),
        Just("provider".to_owned()),
        Just("target".to_owned()),
        Just("e164".to_owned()),
        Just("mode".to_owned()),
        Just("agent_id".to_owned()),
        Just("connection_id".to_owned()),
        Just("account_sid".to_owned()),
        Just("auth_token".to_owned()),
        Just("max_concurrent_calls".to_owned()),
        Just("nickname".to_owned()),
        Just("fallback".to_owned()),
        "[a-z_]{1,12}",
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Runs `CASES` cases of `strategy` through `check`, returning how many requests were sent.
fn run<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u32
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let count = std::cell::Cell::new(0);
    let result = runner.run(&strategy, |value| {
        count.set(count.get() + 1);
        check(value)
    });
    if let Err(error) = result {
        panic!("{name}: {error}");
    }
    count.get()
}

fn no_server_error(what: &str, status: StatusCode, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(
        !status.is_server_error(),
        "{what}: {status} {}",
        body.to_string()
    );
    Ok(())
}

#[test]
fn random_requests_never_get_a_5xx_nor_panic() {
    let rt = runtime();
    let (gw, key, ids) = rt.block_on(populated());
    let operations = rt.block_on(operations(&gw, &ids));
    let mut sent = 0;

    // Random JSON to every operation.
    let ops = operations.clone();
    sent += run("json", (0..ops.len(), json_value()), |(index, value)| {
        let (method, path) = &ops[index];
        let (status, body) = rt.block_on(gw.call(method, path, Some(&key), Some(value)));
        no_server_error(&format!("{method} {path}"), status, &body)
    });

    // Random bytes (invalid UTF-8 included) under random content types, to every operation and
    // every webhook.
    let targets: Vec<(String, String)> = operations
        .iter()
        .cloned()
        .chain(
            WEBHOOKS
                .iter()
                .map(|p| ("POST".to_owned(), (*p).to_owned())),
        )
        .collect();
    sent += run(
        "bytes",
        (
            0..targets.len(),
            prop::collection::vec(any::<u8>(), 0..512),
            prop_oneof![
                Just("application/json"),
                Just("application/x-www-form-urlencoded"),
                Just("text/plain"),
                Just("application/json; charset=\u{ff}"),
                Just("")
            ],
        ),
        |(index, bytes, content_type)| {
            let (method, path) = &targets[index];
            let mut request = Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("authorization", format!("Bearer {key}"));
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            let request = request.body(Body::from(bytes)).expect("request");
            let (status, body) = rt.block_on(gw.raw(request));
            no_server_error(&format!("{method} {path}"), status, &body)
        },
    );

    // Random forms to the webhooks, with random or missing signatures: never a 5xx, never
    // accepted.
    let field = prop_oneof![
        Just("To".to_owned()),
        Just("From".to_owned()),
        Just("CallSid".to_owned()),
        Just("AccountSid".to_owned()),
        Just("CallStatus".to_owned()),
        Just("ForwardedFrom".to_owned()),
        Just("ConnectionId".to_owned()),
        ".{0,12}",
    ];
    let value = prop_oneof![
        Just("+14155550101".to_owned()),
        Just(TWILIO_SID.to_owned()),
        Just("completed".to_owned()),
        Just("in-progress".to_owned()),
        ".{0,40}",
    ];
    sent += run(
        "webhook forms",
        (
            0..WEBHOOKS.len(),
            prop::collection::vec((field, value), 0..10),
            prop::option::of("[A-Za-z0-9+/=]{0,40}"),
            prop::option::of("[0-9]{0,12}"),
        ),
        |(index, form, signature, timestamp)| {
            let path = WEBHOOKS[index];
            let mut request =
                Request::post(path).header("content-type", "application/x-www-form-urlencoded");
            if let Some(signature) = &signature {
                request = request
                    .header("x-twilio-signature", signature.as_str())
                    .header("telnyx-signature-ed25519", signature.as_str());
            }
            if let Some(timestamp) = &timestamp {
                request = request.header("telnyx-timestamp", timestamp.as_str());
            }
            let body = serde_urlencoded::to_string(&form).expect("form");
            let (status, body) =
                rt.block_on(gw.raw(request.body(Body::from(body)).expect("request")));
            no_server_error(path, status, &body)?;
            prop_assert!(
                !status.is_success(),
                "an unsigned webhook was accepted: {path} {status} {body}"
            );
            Ok(())
        },
    );

    // Random paths and query strings, percent-escapes of invalid UTF-8 included.
    let segment = prop_oneof![
        "[A-Za-z0-9._~-]{0,16}",
        Just("..".to_owned()),
        Just("%ff%fe".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("{id}".to_owned()),
        prop::sample::select(ids.clone()),
    ];
    let prefix = prop_oneof![
        Just("/v1"),
        Just("/v1/carriers"),
        Just("/v1/numbers"),
        Just("/v1/agents"),
        Just("/v1/calls"),
        Just("/webhooks/twilio"),
        Just("")
    ];
    let query = prop::option::of(prop::collection::vec(
        ("[a-z_%0-9]{0,10}", "[A-Za-z0-9%+=&]{0,16}"),
        0..4,
    ));
    sent += run(
        "paths",
        (
            prefix,
            prop::collection::vec(segment, 0..4),
            query,
            prop::sample::select(vec!["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ),
        |(prefix, segments, query, method)| {
            let mut uri = format!("{prefix}/{}", segments.join("/"));
            if let Some(query) = query {
                uri.push('?');
                let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                uri.push_str(&pairs.join("&"));
            }
            let Ok(request) = Request::builder()
                .method(method)
                .uri(uri.as_str())
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
            else {
                return Ok(()); // not a URI a client could send
            };
            let (status, body) = rt.block_on(gw.raw(request));
            no_server_error(&format!("{method} {uri}"), status, &body)
        },
    );

    // Invalid UTF-8 (obs-text) and junk in the Authorization header: 401, never 5xx.
    sent += run(
        "authorization",
        prop::collection::vec(any::<u8>(), 0..64),
        |bytes| {
            let Ok(value) = http::HeaderValue::from_bytes(&bytes) else {
                return Ok(());
            };
            let request = Request::get("/v1/numbers")
                .header("authorization", value)
                .body(Body::empty())
                .expect("request");
            let (status, body) = rt.block_on(gw.raw(request));
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", body.to_string());
            Ok(())
        },
    );
    // The gateway still serves its organization after all of it.
    let (status, _) = rt.block_on(gw.call("GET", "/v1/numbers", Some(&key), None));
    assert_eq!(status, StatusCode::OK);
    #[allow(clippy::print_stdout)]
    {
        println!(
            "hostile: {sent} generated requests over {} operations and {} webhooks: 0 server errors, 0 panics",
            operations.len(),
            WEBHOOKS.len()
        );
    }
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_with_4xx() {
    let (gw, key, _) = populated().await;
    let big = vec![b'a'; 64 * 1024 + 1];
    let oversized = format!("{{\"name\":\"{}\"}}", String::from_utf8_lossy(&big));
    let request = Request::post("/v1/agents")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(oversized))
        .expect("request");
    assert_eq!(gw.raw(request).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    for path in WEBHOOKS {
        let request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(big.clone()))
            .expect("request");
        assert_eq!(
            gw.raw(request).await.0,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}"
        );
    }
    for malformed in ["{", "{\"name\": }", "[1,2", "\u{0}", "nul"] {
        let request = Request::post("/v1/agents")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(malformed))
            .expect("request");
        let (status, body) = gw.raw(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // A webhook form without the fields a call needs: 400. Form decoding itself is lenient
    // (invalid UTF-8 decodes to U+FFFD), so junk values name no number: 404, not a 5xx.
    for (path, form) in [
        ("/webhooks/twilio/voice", "CallSid=%80"),
        ("/webhooks/twilio/voice", ""),
        ("/webhooks/telnyx/texml", "From=%2B1&&&=="),
    ] {
        let request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("request");
        assert_eq!(
            gw.raw(request).await.0,
            StatusCode::BAD_REQUEST,
            "{path} {form:?}"
        );
    }
    for path in WEBHOOKS {
        let request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("To=%ff%fe&CallSid=%80&AccountSid=%00"))
            .expect("request");
        let status = gw.raw(request).await.0;
        assert!(status.is_client_error(), "{path}: {status}");
    }
}

/// Serves the router on a loopback socket with `server::serve` and the given header deadline.
async fn served(gw: &Gateway, header_timeout: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = gw.app.clone();
    tokio::spawn(telephony_service::server::serve(
        listener,
        app,
        header_timeout,
        std::future::pending(),
    ));
    addr
}

/// Sends `head` then trickles `trickle` one byte every `every`; returns what the server sent
/// and how long until it closed the connection (or `None` when the trickle ran out first).
fn trickle(
    addr: std::net::SocketAddr,
    head: &[u8],
    trickle: &[u8],
    every: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    stream.write_all(head).expect("head");
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    for byte in trickle {
        if stream.write_all(&[*byte]).is_err() {
            return (received, Some(start.elapsed()));
        }
        let until = Instant::now() + every;
        while Instant::now() < until {
            match stream.read(&mut buf) {
                Ok(0) => return (received, Some(start.elapsed())),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (received, Some(start.elapsed())),
            }
        }
    }
    (received, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected_at_the_header_deadline() {
    let gw = Gateway::start().await;
    let addr = served(&gw, Duration::from_millis(500)).await;
    // 40 header bytes at one per 100 ms would take 4 s: the server must cut it at ~0.5 s.
    let (received, closed_after) = tokio::task::spawn_blocking(move || {
        trickle(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
            &[b'x'; 40],
            Duration::from_millis(100),
        )
    })
    .await
    .expect("client");
    let closed_after = closed_after.expect("the server kept a trickling client for 4 s");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A client that connects and says nothing is dropped too.
    let (_, idle) =
        tokio::task::spawn_blocking(move || trickle(addr, b"", b"G", Duration::from_secs(3)))
            .await
            .expect("client");
    assert!(idle.is_some(), "an idle connection was kept for 3 s");
    // And the server still answers a normal client.
    let (received, _) = tokio::task::spawn_blocking(move || {
        trickle(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b" ",
            Duration::from_millis(300),
        )
    })
    .await
    .expect("client");
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_are_refused_and_the_server_survives() {
    let gw = Gateway::start().await;
    let addr = served(&gw, Duration::from_secs(5)).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let (received, closed) = tokio::task::spawn_blocking(move || {
        trickle(addr, huge.as_bytes(), b" ", Duration::from_secs(2))
    })
    .await
    .expect("client");
    let text = String::from_utf8_lossy(&received);
    assert!(
        closed.is_some() && (text.is_empty() || text.starts_with("HTTP/1.1 431")),
        "{text}"
    );
    // Many headers, each small.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (received, _) = tokio::task::spawn_blocking(move || {
        trickle(addr, many.as_bytes(), b" ", Duration::from_secs(2))
    })
    .await
    .expect("client");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    let (received, _) = tokio::task::spawn_blocking(move || {
        trickle(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b" ",
            Duration::from_millis(300),
        )
    })
    .await
    .expect("client");
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
}

fn telnyx_request(body: &str, timestamp: u64) -> Request<Body> {
    let signer = telephony_webhook::telnyx::Signer::from_seed_base64(TELNYX_SEED).expect("seed");
    let signed = signer.sign(timestamp, body.as_bytes());
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
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn stale_telnyx_timestamps_are_refused() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("telnyx").await;
    let connection = gw.connect_telnyx(&key).await;
    let agent = gw.agent(&key, "wss://agents.example.com/media").await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+13125550100", "agent_id": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let account = gw.emulator.state().telnyx_accounts[0].account_sid.clone();
    let now = u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970");
    let form = |call: &str| {
        format!(
            "AccountSid={account}&CallSid={call}&From=%2B15005550006&To=%2B13125550100&ConnectionId={TELNYX_APP}"
        )
    };
    // Fresh: accepted (so the refusals below are about the timestamp alone).
    let (status, body) = gw.raw(telnyx_request(&form("fresh"), now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (call, timestamp) in [
        ("ten-minutes-old", now - 600),
        ("an-hour-old", now - 3600),
        ("a-day-old", now - 86_400),
        ("from-the-future", now + 3600),
        ("epoch", 0),
    ] {
        let (status, body) = gw.raw(telnyx_request(&form(call), timestamp)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{call}: {body}");
    }
    // A stale replay of the accepted webhook is refused as well.
    let (status, _) = gw.raw(telnyx_request(&form("fresh"), now - 3600)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn signed_twilio(gw: &Gateway, params: &[(&str, &str)]) -> Request<Body> {
    let path = "/webhooks/twilio/voice";
    let url = format!("{}{path}", gw.public_url);
    let signature = telephony_webhook::twilio::sign(&url, params, &SecretString::new(TWILIO_TOKEN));
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(
            serde_urlencoded::to_string(params).expect("form"),
        ))
        .expect("request")
}

#[tokio::test]
async fn a_repeated_twilio_webhook_is_one_call_one_admission_one_answer() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("repeat").await;
    let connection = gw.connect_twilio(&key).await;
    let (status, agent) = gw
        .call(
            "POST",
            "/v1/agents",
            Some(&key),
            Some(json!({"name": "Solo", "target": "wss://agents.example.com/media", "max_concurrent_calls": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = agent["id"].as_str().expect("id").to_owned();
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101", "agent_id": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let call = |sid: &'static str| {
        [
            ("To", "+14155550101"),
            ("From", "+15005550006"),
            ("CallSid", sid),
            ("AccountSid", TWILIO_SID),
            ("CallStatus", "ringing"),
        ]
    };
    let mut answers = Vec::new();
    for _ in 0..5 {
        let (status, body) = gw.raw(signed_twilio(&gw, &call("CArepeat"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        answers.push(body);
    }
    assert!(
        answers[0].as_str().is_some_and(|b| b.contains("<Stream")),
        "{}",
        answers[0]
    );
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // Admitted once: the limit of one is taken by CArepeat, so another call is not streamed.
    let (status, other) = gw.raw(signed_twilio(&gw, &call("CAother"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        other.as_str().is_some_and(|b| !b.contains("<Stream")),
        "a second call got past a limit of one: {other}"
    );
    let (_, calls) = gw.call("GET", "/v1/calls", Some(&key), None).await;
    let records = calls["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["carrier_call_id"] == "CArepeat")
        .count();
    assert_eq!(records, 1, "{calls}");
}

/// Every `$ref` of `/openapi.json` in `value`, as its JSON pointer (`/components/schemas/X`).
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(r)) => out.push(r.trim_start_matches('#').to_owned()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|inner| refs(inner, out)),
        _ => {}
    }
}

/// Regression: the managed-number search's `type` query enum was a `$ref` to a schema the
/// document did not define, so schemathesis (and any generated client) could not load it.
#[tokio::test]
async fn regression_openapi_refs_to_unregistered_schemas_dangle() {
    let gw = Gateway::start().await;
    let (status, doc) = gw.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "no $ref at all: wrong document?");
    let dangling: Vec<&String> = all.iter().filter(|r| doc.pointer(r).is_none()).collect();
    assert!(dangling.is_empty(), "unresolvable references: {dangling:?}");
}
