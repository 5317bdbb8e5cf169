//! `POST /v1/numbers/{id}/test-call`, end to end: the gateway places a call from the number to
//! itself with the carrier account that owns it, the emulator rings the number (its voice
//! webhook reaches the gateway), and the report says it reached the gateway, which agent it
//! was routed to and how long each step took. A number whose checks fail places nothing; a
//! failing customer carrier fails the test with no fallback.

use http::StatusCode;
use serde_json::json;
use telephony_emulator::Fault;

use super::support::{Gateway, TELNYX_APP, TELNYX_KEY, TWILIO_SID, code};

const AGENT_URL: &str = "wss://agents.example.com/media";

/// An organization with a Twilio connection, an agent, and +14155550101 imported in `mode`.
async fn setup(gw: &Gateway, mode: &str) -> (String, String, String) {
    let (_, key) = gw.org("Acme").await;
    let connection = gw.connect_twilio(&key).await;
    let agent = gw.agent(&key, AGENT_URL).await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101",
                "agent_id": agent, "mode": mode})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let number_id = body["number"]["id"].as_str().expect("number id").to_owned();
    (key, number_id, agent)
}

/// The emulator's record of the voice webhook sent to `path` (logged once answered).
async fn voice_delivery(gw: &Gateway, path: &str) -> telephony_emulator::WebhookRecord {
    for _ in 0..100 {
        if let Some(record) = gw
            .emulator
            .state()
            .webhooks
            .into_iter()
            .find(|w| w.kind == "voice" && w.url.ends_with(path))
        {
            return record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the emulator never called {path}");
}

#[tokio::test]
async fn a_test_call_reaches_the_gateway_and_reports_the_agent_and_timings() {
    let gw = Gateway::start().await;
    let (key, number_id, agent) = setup(&gw, "managed").await;

    let (status, report) = gw
        .call(
            "POST",
            &format!("/v1/numbers/{number_id}/test-call"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["state"], "reached");
    assert_eq!(report["ready"], true);
    assert_eq!(report["reached"], true);
    assert_eq!(report["agent_id"], agent.as_str());
    assert_eq!(report["route"], "agent");
    assert_eq!(report["provider"], "twilio");
    for step in [
        "checks_ms",
        "call_placed_ms",
        "webhook_reached_ms",
        "routed_ms",
    ] {
        assert!(report["timings"][step].is_u64(), "{step}: {report}");
    }

    // One call placed, from the number to itself, in the organization's own account.
    let state = gw.emulator.state();
    let placed: Vec<_> = state
        .calls
        .iter()
        .filter(|c| c.direction.starts_with("outbound"))
        .collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].account_sid, TWILIO_SID);
    assert_eq!(
        (placed[0].from.as_str(), placed[0].to.as_str()),
        ("+14155550101", "+14155550101")
    );
    assert_eq!(report["carrier_call_id"], placed[0].id.as_str());
    // Its inbound leg was answered with a hang-up, not connected to the agent.
    let inbound = voice_delivery(&gw, "/webhooks/twilio/voice").await;
    assert_eq!(inbound.status, Some(200));
    assert!(
        inbound.response_body.contains("<Hangup/>"),
        "{}",
        inbound.response_body
    );
    assert!(
        !inbound.response_body.contains(AGENT_URL),
        "{}",
        inbound.response_body
    );

    // The report can be read again; another organization cannot read it.
    let test_id = report["id"].as_str().expect("id");
    let path = format!("/v1/numbers/{number_id}/test-calls/{test_id}");
    let (status, again) = gw.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["state"], "reached");
    let (_, other) = gw.org("Globex").await;
    let (status, _) = gw.call("GET", &path, Some(&other), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An ordinary call to the number still reaches the agent.
    let call = gw
        .emulator
        .twilio_inbound(telephony_emulator::InboundCall {
            to: "+14155550101".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert!(call.body.contains(AGENT_URL), "{}", call.body);
}

#[tokio::test]
async fn a_number_whose_checks_fail_is_not_ready_and_nothing_is_placed() {
    let gw = Gateway::start().await;
    // `outbound_only`: the number's voice webhook is not the gateway's.
    let (key, number_id, _) = setup(&gw, "outbound_only").await;
    let (status, body) = gw
        .call(
            "POST",
            &format!("/v1/numbers/{number_id}/test-call"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "number_not_ready");
    assert!(gw.emulator.state().calls.is_empty(), "nothing placed");
}

#[tokio::test]
async fn a_failing_customer_carrier_fails_the_test_with_no_fallback() {
    let gw = Gateway::start().await;
    let (key, number_id, _) = setup(&gw, "managed").await;
    gw.emulator.add_fault(Fault {
        method: Some("POST".into()),
        path: format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"),
        status: Some(503),
        delay_ms: 0,
        drop_connection: false,
        times: None,
    });
    let (status, body) = gw
        .call(
            "POST",
            &format!("/v1/numbers/{number_id}/test-call"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "carrier_unavailable"),
        "{body}"
    );
    assert!(gw.emulator.state().calls.is_empty());
    let attempts = gw
        .emulator
        .state()
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json"))
        .count();
    assert_eq!(attempts, 1, "one attempt, on the customer's account only");
}

#[tokio::test]
async fn a_telnyx_test_call_reaches_the_gateway_through_the_texml_application() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("Acme").await;
    let public_key = gw.emulator.state().telnyx_accounts[0].public_key.clone();
    let (status, body) = gw
        .call(
            "POST",
            "/v1/carriers",
            Some(&key),
            Some(json!({
                "name": "telnyx", "provider": "telnyx", "api_key": TELNYX_KEY,
                "public_key": public_key, "texml_app_id": TELNYX_APP,
                "account_sid": "7a1b2c3d-0000-4000-8000-000000000001",
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
            Some(json!({"connection_id": connection, "e164": "+13125550100",
                "agent_id": agent, "mode": "managed"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let number_id = body["number"]["id"].as_str().expect("id").to_owned();

    let (status, report) = gw
        .call(
            "POST",
            &format!("/v1/numbers/{number_id}/test-call"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["provider"], "telnyx");
    assert_eq!(report["reached"], true);
    assert_eq!(report["agent_id"], agent.as_str());
    let inbound = voice_delivery(&gw, "/webhooks/telnyx/texml").await;
    assert!(
        inbound.response_body.contains("<Hangup/>"),
        "{}",
        inbound.response_body
    );
}
