//! Outbound calls and live-call control, end to end: the REST API places the call on the
//! emulated carrier with the organization's own account, the emulator fetches the call's
//! instructions from the gateway's signed outbound webhook, and transfer, recording and hang-up
//! reach the same account. Failures of the customer's carrier are never retried elsewhere.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use telephony_emulator::{Call, Fault};

use super::support::{Gateway, TELNYX_APP, TELNYX_KEY, TWILIO_SID, code};

const TELNYX_ACCOUNT: &str = "7a1b2c3d-0000-4000-8000-000000000001";

const AGENT_URL: &str = "wss://agents.example.com/media";
const CALLEE: &str = "+15005550006";

/// An organization with a Twilio connection, an agent, and +14155550101 imported with it.
/// Returns the API key and the number id.
async fn twilio_setup(gw: &Gateway, name: &str) -> (String, String) {
    let (_, key) = gw.org(name).await;
    let connection = gw.connect_twilio(&key).await;
    let agent = gw.agent(&key, AGENT_URL).await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101", "agent_id": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let number_id = body["number"]["id"].as_str().expect("number id").to_owned();
    (key, number_id)
}

/// A POST with an optional `Idempotency-Key`.
fn post(
    path: &str,
    key: &str,
    idempotency_key: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut request = Request::post(path).header("authorization", format!("Bearer {key}"));
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request")
}

fn outbound_calls(gw: &Gateway) -> Vec<Call> {
    gw.emulator
        .state()
        .calls
        .into_iter()
        .filter(|c| c.direction.starts_with("outbound"))
        .collect()
}

/// Waits until the gateway's record of the call has `status`.
async fn wait_for_status(gw: &Gateway, key: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (code, body) = gw
            .call("GET", &format!("/v1/calls/{id}"), Some(key), None)
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        if body["status"] == status {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the call never reached {status}: {last}");
}

/// The emulator's delivery of the instructions webhook of the record `id`.
async fn instructions_delivery(
    gw: &Gateway,
    provider: &str,
    id: &str,
) -> telephony_emulator::WebhookRecord {
    let path = format!("/webhooks/{provider}/outbound/{id}");
    for _ in 0..100 {
        if let Some(delivery) = gw
            .emulator
            .state()
            .webhooks
            .into_iter()
            .find(|w| w.url.ends_with(&path))
        {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the emulator never fetched {path}");
}

async fn audit(gw: &Gateway, key: &str) -> Vec<Value> {
    let (status, body) = gw.call("GET", "/v1/audit-log", Some(key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().expect("data").clone()
}

#[tokio::test]
async fn an_outbound_call_reaches_the_agent_and_is_transferred_recorded_and_hung_up() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Acme").await;

    let (status, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from_number_id": number_id, "to": CALLEE})),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let id = call["id"].as_str().expect("id").to_owned();
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["provider"], "twilio");
    assert_eq!(call["number"], "+14155550101");

    // Placed once, on the organization's own account, pointed at the gateway.
    let placed = outbound_calls(&gw);
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0].account_sid, TWILIO_SID);
    assert_eq!(
        (placed[0].from.as_str(), placed[0].to.as_str()),
        ("+14155550101", CALLEE)
    );
    assert_eq!(call["carrier_call_id"], placed[0].id.as_str());
    assert_eq!(
        placed[0].status_callback.as_deref(),
        Some(format!("{}/webhooks/twilio/outbound/{id}/status", gw.public_url).as_str())
    );

    // The callee answered: the carrier fetched the instructions, which connect the agent.
    let delivery = instructions_delivery(&gw, "twilio", &id).await;
    assert_eq!(delivery.status, Some(200), "{}", delivery.response_body);
    assert!(
        delivery
            .response_body
            .contains(&format!(r#"<Stream url="{AGENT_URL}">"#)),
        "{}",
        delivery.response_body
    );
    assert!(delivery.response_body.contains(&format!(
        r#"<Parameter name="call_id" value="{}"/>"#,
        placed[0].id
    )));
    wait_for_status(&gw, &key, &id, "in-progress").await;

    // Recording: start, then stop (DELETE and POST .../stop are the same action).
    let (status, recording) = gw
        .raw(post(
            &format!("/v1/calls/{id}/recordings"),
            &key,
            None,
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{recording}");
    let recording_id = recording["recording_id"]
        .as_str()
        .expect("recording id")
        .to_owned();
    let state = gw.emulator.state();
    let held = state
        .recordings
        .iter()
        .find(|r| r.id == recording_id)
        .expect("recording at the carrier");
    assert_eq!(
        (held.call_id.as_str(), held.status.as_str()),
        (placed[0].id.as_str(), "in-progress")
    );
    let (status, stopped) = gw
        .call(
            "DELETE",
            &format!("/v1/calls/{id}/recordings/{recording_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let state = gw.emulator.state();
    assert_eq!(
        state
            .recordings
            .iter()
            .find(|r| r.id == recording_id)
            .expect("recording")
            .status,
        "stopped"
    );
    let (status, body) = gw
        .raw(post(
            &format!("/v1/calls/{id}/recordings/RE00000000000000000000000000000000/stop"),
            &key,
            None,
            None,
        ))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );

    // Transfer: the call's instructions become an escaped <Dial>.
    let (status, body) = gw
        .raw(post(
            &format!("/v1/calls/{id}/transfer"),
            &key,
            None,
            Some(json!({"to": "sip:desk@pbx.example.com?X-Ref=a&b"})),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let twiml = outbound_calls(&gw)[0]
        .twiml
        .clone()
        .expect("new instructions");
    assert!(
        twiml.contains("<Dial><Sip>sip:desk@pbx.example.com?X-Ref=a&amp;b</Sip></Dial>"),
        "{twiml}"
    );
    let (status, body) = gw
        .raw(post(
            &format!("/v1/calls/{id}/transfer"),
            &key,
            None,
            Some(json!({"to": "+15005550007"})),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let twiml = outbound_calls(&gw)[0]
        .twiml
        .clone()
        .expect("new instructions");
    assert!(
        twiml.contains("<Dial><Number>+15005550007</Number></Dial>"),
        "{twiml}"
    );

    // Hang up; the call is over for every later action.
    let (status, body) = gw
        .raw(post(&format!("/v1/calls/{id}/hangup"), &key, None, None))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed");
    assert!(body["ended_at"].is_string(), "{body}");
    assert_eq!(outbound_calls(&gw)[0].status, "completed");
    for (path, body) in [
        (
            format!("/v1/calls/{id}/transfer"),
            Some(json!({"to": "+15005550007"})),
        ),
        (format!("/v1/calls/{id}/hangup"), None),
        (format!("/v1/calls/{id}/recordings"), None),
    ] {
        let (status, answer) = gw.raw(post(&path, &key, None, body)).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::CONFLICT, "call_not_active"),
            "{path}: {answer}"
        );
    }

    // Every carrier action is in the audit log, with the number and without a secret.
    let entries = audit(&gw, &key).await;
    let actions: Vec<(&str, &str, bool)> = entries
        .iter()
        .filter(|e| e["number"] == "+14155550101" && e["action"] != "replace_inbound_config")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
                e["changed_account"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("place_call", "ok", true),
        ("start_recording", "ok", true),
        ("stop_recording", "ok", true),
        ("stop_recording", "error: not_found", false),
        ("redirect_call", "ok", true),
        ("hangup_call", "ok", true),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from {actions:?}"
        );
    }
    let text = serde_json::to_string(&entries).expect("json");
    assert!(!text.contains(super::support::TWILIO_TOKEN));
}

#[tokio::test]
async fn a_call_ended_by_the_callee_shows_its_duration_and_refuses_actions() {
    let gw = Gateway::start().await;
    let (key, _) = twilio_setup(&gw, "Acme").await;
    // `from` by E.164; the number's own agent.
    let (status, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from": "+14155550101", "to": CALLEE})),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let id = call["id"].as_str().expect("id").to_owned();
    wait_for_status(&gw, &key, &id, "in-progress").await;
    let carrier_id = call["carrier_call_id"].as_str().expect("carrier id");
    let delivered = gw
        .emulator
        .end_call(carrier_id)
        .await
        .expect("end")
        .expect("status callback");
    assert_eq!(delivered.status, Some(204), "{}", delivered.body);
    let over = wait_for_status(&gw, &key, &id, "completed").await;
    assert!(over["duration_secs"].is_u64(), "{over}");
    assert!(over["ended_at"].is_string(), "{over}");
    let (status, body) = gw
        .raw(post(
            &format!("/v1/calls/{id}/transfer"),
            &key,
            None,
            Some(json!({"to": "+15005550007"})),
        ))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "call_not_active"),
        "{body}"
    );
    // The list shows it too.
    let (_, list) = gw.call("GET", "/v1/calls", Some(&key), None).await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["data"][0]["status"], "completed");
}

#[tokio::test]
async fn a_failing_customer_carrier_fails_the_call_with_no_fallback() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Acme").await;
    gw.emulator.add_fault(Fault {
        method: Some("POST".into()),
        path: format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"),
        status: Some(503),
        delay_ms: 0,
        drop_connection: false,
        times: None,
    });
    let (status, body) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from_number_id": number_id, "to": CALLEE})),
        ))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "carrier_unavailable"),
        "{body}"
    );
    // Nothing placed anywhere, on either carrier; no call record left behind.
    assert!(gw.emulator.state().calls.is_empty());
    let (_, list) = gw.call("GET", "/v1/calls", Some(&key), None).await;
    assert_eq!(list["data"], json!([]));
    // The attempt is audited as failed on the customer's own connection.
    let entries = audit(&gw, &key).await;
    let failed = entries
        .iter()
        .find(|e| e["action"] == "place_call")
        .expect("audited");
    assert_eq!(failed["outcome"], "error: unavailable");
    assert_eq!(failed["changed_account"], false);
    assert_eq!(failed["number"], "+14155550101");
    // Only one attempt reached the carrier: placing a call is never retried.
    let attempts = gw
        .emulator
        .state()
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json"))
        .count();
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_places_one_call() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Acme").await;
    let body = json!({"from_number_id": number_id, "to": CALLEE});
    let (first_status, first) = gw
        .raw(post("/v1/calls", &key, Some("retry-1"), Some(body.clone())))
        .await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    let (again_status, again) = gw
        .raw(post("/v1/calls", &key, Some("retry-1"), Some(body.clone())))
        .await;
    assert_eq!((again_status, &again), (StatusCode::CREATED, &first));
    assert_eq!(outbound_calls(&gw).len(), 1);

    // The same key with another request is refused and places nothing.
    let (status, answer) = gw
        .raw(post(
            "/v1/calls",
            &key,
            Some("retry-1"),
            Some(json!({"from_number_id": number_id, "to": "+15005550009"})),
        ))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "idempotency_key_reused"),
        "{answer}"
    );
    assert_eq!(outbound_calls(&gw).len(), 1);

    // Keys are per organization: another organization's identical key is its own.
    let (_, other_key) = gw.org("Other").await;
    let (status, answer) = gw
        .raw(post(
            "/v1/calls",
            &other_key,
            Some("retry-1"),
            Some(body.clone()),
        ))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{answer}"
    );

    // Three racing requests with one new key: one call.
    let send = || gw.raw(post("/v1/calls", &key, Some("race-1"), Some(body.clone())));
    let (a, b, c) = tokio::join!(send(), send(), send());
    let created: Vec<&Value> = [&a, &b, &c]
        .into_iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert!(!created.is_empty(), "{a:?} {b:?} {c:?}");
    assert!(created.iter().all(|body| body["id"] == created[0]["id"]));
    for (status, body) in [&a, &b, &c] {
        assert!(
            *status == StatusCode::CREATED || code(body) == "idempotency_key_in_progress",
            "{status} {body}"
        );
    }
    assert_eq!(outbound_calls(&gw).len(), 2);

    // A replayed failure stays the first answer: a second hang-up with the key is not re-run.
    let id = first["id"].as_str().expect("id");
    wait_for_status(&gw, &key, id, "in-progress").await;
    let path = format!("/v1/calls/{id}/hangup");
    let (status, _) = gw.raw(post(&path, &key, Some("hang-1"), None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, replay) = gw.raw(post(&path, &key, Some("hang-1"), None)).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    let hangups = gw
        .emulator
        .state()
        .requests
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.ends_with(&format!(
                    "/Calls/{}.json",
                    first["carrier_call_id"].as_str().unwrap_or_default()
                ))
        })
        .count();
    assert_eq!(hangups, 1);

    // A key that is not visible ASCII is refused before anything runs.
    let (status, answer) = gw.raw(post("/v1/calls", &key, Some("é"), Some(body))).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{answer}"
    );
    assert_eq!(outbound_calls(&gw).len(), 2);
}

#[tokio::test]
async fn another_organizations_call_is_not_found() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Alice").await;
    let (status, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from_number_id": number_id, "to": CALLEE})),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    let id = call["id"].as_str().expect("id");
    wait_for_status(&gw, &key, id, "in-progress").await;

    let (_, mallory) = gw.org("Mallory").await;
    let (status, body) = gw
        .call("GET", &format!("/v1/calls/{id}"), Some(&mallory), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    for (path, body) in [
        (
            format!("/v1/calls/{id}/transfer"),
            Some(json!({"to": "+15005550007"})),
        ),
        (format!("/v1/calls/{id}/hangup"), None),
        (format!("/v1/calls/{id}/recordings"), None),
        (
            format!("/v1/calls/{id}/recordings/RE00000000000000000000000000000000/stop"),
            None,
        ),
    ] {
        let (status, answer) = gw.raw(post(&path, &mallory, None, body)).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {answer}"
        );
    }
    // Mallory cannot place a call from Alice's number either.
    let (status, answer) = gw
        .raw(post(
            "/v1/calls",
            &mallory,
            None,
            Some(json!({"from": "+14155550101", "to": CALLEE})),
        ))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{answer}"
    );
    // Alice's call is untouched.
    let state = gw.emulator.state();
    assert_eq!(
        state
            .calls
            .iter()
            .filter(|c| c.status == "in-progress")
            .count(),
        1
    );
    assert!(state.recordings.is_empty());
}

#[tokio::test]
async fn bad_destinations_and_requests_get_clear_errors_and_place_nothing() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Acme").await;
    for (body, status, expected) in [
        (
            json!({"from_number_id": number_id, "to": "12345"}),
            StatusCode::BAD_REQUEST,
            "invalid_phone_number",
        ),
        (
            json!({"from_number_id": number_id, "to": "+1 415 555"}),
            StatusCode::BAD_REQUEST,
            "invalid_phone_number",
        ),
        (
            json!({"from": "not-a-number", "to": CALLEE}),
            StatusCode::BAD_REQUEST,
            "invalid_phone_number",
        ),
        (
            json!({"from_number_id": number_id, "from": "+14155550101", "to": CALLEE}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"to": CALLEE}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"from_number_id": "nope", "to": CALLEE}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"from_number_id": number_id, "to": CALLEE, "agent_id": "nope"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"from_number_id": number_id}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let (got, answer) = gw
            .raw(post("/v1/calls", &key, None, Some(body.clone())))
            .await;
        assert_eq!((got, code(&answer)), (status, expected), "{body}: {answer}");
    }
    assert!(gw.emulator.state().calls.is_empty());

    let (_, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from_number_id": number_id, "to": CALLEE})),
        ))
        .await;
    let id = call["id"].as_str().expect("id");
    wait_for_status(&gw, &key, id, "in-progress").await;
    for (to, expected) in [
        ("5550007", "invalid_phone_number"),
        ("+0123", "invalid_phone_number"),
        ("sip:user:secret@pbx.example.com", "invalid_sip_uri"),
        ("sip:", "invalid_sip_uri"),
    ] {
        let (status, answer) = gw
            .raw(post(
                &format!("/v1/calls/{id}/transfer"),
                &key,
                None,
                Some(json!({"to": to})),
            ))
            .await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, expected),
            "{to}: {answer}"
        );
    }
    assert!(
        outbound_calls(&gw)[0].twiml.is_none(),
        "nothing was sent to the carrier"
    );
}

#[tokio::test]
async fn a_telnyx_outbound_call_reaches_the_agent_with_texml() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("Acme").await;
    // Placing a TeXML call needs the TeXML account SID on the connection.
    let public_key = gw.emulator.state().telnyx_accounts[0].public_key.clone();
    let (status, body) = gw
        .call(
            "POST",
            "/v1/carriers",
            Some(&key),
            Some(json!({
                "name": "telnyx", "provider": "telnyx", "api_key": TELNYX_KEY,
                "public_key": public_key, "texml_app_id": TELNYX_APP,
                "account_sid": TELNYX_ACCOUNT,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let connection = body["id"].as_str().expect("id").to_owned();
    let agent = gw.agent(&key, AGENT_URL).await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+13125550100", "agent_id": agent, "mode": "managed"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from": "+13125550100", "to": CALLEE})),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    assert_eq!(call["provider"], "telnyx");
    let id = call["id"].as_str().expect("id");
    let delivery = instructions_delivery(&gw, "telnyx", id).await;
    assert_eq!(delivery.status, Some(200), "{}", delivery.response_body);
    assert!(
        delivery
            .response_body
            .contains(r#"bidirectionalMode="rtp""#),
        "{}",
        delivery.response_body
    );
    wait_for_status(&gw, &key, id, "in-progress").await;
    let requests = gw.emulator.state().requests;
    assert!(
        requests
            .iter()
            .any(|r| r.path.contains("/texml/") && r.method == "POST")
    );
    assert!(
        !serde_json::to_string(&call)
            .expect("json")
            .contains(TELNYX_KEY)
    );

    let (status, body) = gw
        .raw(post(&format!("/v1/calls/{id}/hangup"), &key, None, None))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = gw
        .raw(post(&format!("/v1/calls/{id}/hangup"), &key, None, None))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "call_not_active"),
        "{body}"
    );
}

fn signed_twilio(gw: &Gateway, path: &str, params: &[(&str, &str)], token: &str) -> Request<Body> {
    let url = format!("{}{path}", gw.public_url);
    let signature =
        telephony_webhook::twilio::sign(&url, params, &telephony_vault::SecretString::new(token));
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(
            serde_urlencoded::to_string(params).expect("form"),
        ))
        .expect("request")
}

#[tokio::test]
async fn outbound_webhooks_are_verified_and_must_name_the_placed_call() {
    let gw = Gateway::start().await;
    let (key, number_id) = twilio_setup(&gw, "Acme").await;
    let (_, call) = gw
        .raw(post(
            "/v1/calls",
            &key,
            None,
            Some(json!({"from_number_id": number_id, "to": CALLEE})),
        ))
        .await;
    let id = call["id"].as_str().expect("id");
    let carrier_id = call["carrier_call_id"].as_str().expect("carrier id");
    wait_for_status(&gw, &key, id, "in-progress").await;
    let path = format!("/webhooks/twilio/outbound/{id}");
    let params = |call_sid: &'static str| {
        [
            ("To", CALLEE),
            ("From", "+14155550101"),
            ("CallSid", call_sid),
            ("AccountSid", TWILIO_SID),
            ("CallStatus", "in-progress"),
        ]
    };
    // Signed with a wrong token: refused.
    let forged = params("CAforged");
    let (status, _) = gw
        .raw(signed_twilio(&gw, &path, &forged, "not-the-token"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Signed correctly but about another call: refused, and the record keeps its call.
    let (status, _) = gw
        .raw(signed_twilio(
            &gw,
            &path,
            &forged,
            super::support::TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, record) = gw
        .call("GET", &format!("/v1/calls/{id}"), Some(&key), None)
        .await;
    assert_eq!(record["carrier_call_id"], carrier_id);
    // An unknown record: 404.
    let unknown = "/webhooks/twilio/outbound/00000000-0000-0000-0000-000000000000";
    let (status, _) = gw
        .raw(signed_twilio(
            &gw,
            unknown,
            &forged,
            super::support::TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The real call, retried: the same document as the first time.
    let first = instructions_delivery(&gw, "twilio", id).await.response_body;
    let real: Vec<(&str, &str)> = vec![
        ("To", CALLEE),
        ("From", "+14155550101"),
        ("CallSid", carrier_id),
        ("AccountSid", TWILIO_SID),
        ("CallStatus", "in-progress"),
    ];
    let (status, again) = gw
        .raw(signed_twilio(
            &gw,
            &path,
            &real,
            super::support::TWILIO_TOKEN,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again.as_str(), Some(first.as_str()));
}
