//! The whole story an admin and a caller live through, on each carrier: connect, list, import
//! in managed mode, assign an agent, take a call, refuse a forged webhook, end the call, remove
//! the number and find the carrier account as it was.

use http::StatusCode;
use serde_json::json;
use telephony_emulator::InboundCall;

use super::support::{Gateway, TELNYX_KEY, TWILIO_TOKEN};

#[tokio::test]
async fn twilio_number_from_import_to_removal() {
    let gw = Gateway::start().await;
    let (org_id, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;

    // The import picker lists voice-capable numbers only.
    let (status, numbers) = gw
        .call(
            "GET",
            &format!("/v1/carriers/{connection}/available-numbers"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{numbers}");
    let listed: Vec<&str> = numbers["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["e164"].as_str())
        .collect();
    assert_eq!(listed, ["+14155550100", "+14155550101"]);

    let agent = gw.agent(&key, "wss://agents.example.com/media").await;

    // A dry run shows the carrier-side change and makes none.
    let import = json!({"connection_id": connection, "e164": "+14155550100", "mode": "managed", "agent_id": agent, "dry_run": true});
    let (status, dry) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(import.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["changes"][0]["from"]["voice_url"],
        "https://old.example.com/voice"
    );
    assert_eq!(
        gw.twilio_voice_url("+14155550100").as_deref(),
        Some("https://old.example.com/voice")
    );

    let mut import = import;
    import["dry_run"] = json!(false);
    let (status, imported) = gw
        .call("POST", "/v1/numbers/import", Some(&key), Some(import))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let number_id = imported["number"]["id"].as_str().expect("id").to_owned();
    let voice_url = format!("{}/webhooks/twilio/voice", gw.public_url);
    assert_eq!(
        gw.twilio_voice_url("+14155550100").as_deref(),
        Some(voice_url.as_str())
    );

    // The carrier calls: the gateway answers TwiML that streams the caller to the agent.
    let delivery = gw
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550100".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert_eq!(delivery.status, Some(200), "{}", delivery.body);
    assert!(
        delivery
            .body
            .contains(r#"<Stream url="wss://agents.example.com/media">"#),
        "{}",
        delivery.body
    );
    assert!(
        delivery.body.contains(&format!(
            r#"<Parameter name="number_id" value="{number_id}"/>"#
        )),
        "{}",
        delivery.body
    );
    assert!(!delivery.body.contains(TWILIO_TOKEN));

    // A webhook signed with another token is refused and routes nothing.
    let forged = telephony_webhook::twilio::sign(
        &voice_url,
        &[
            ("To", "+14155550100"),
            ("CallSid", "CAforged"),
            ("AccountSid", super::support::TWILIO_SID),
        ],
        &telephony_vault::SecretString::new("not-the-token"),
    );
    let request = http::Request::post("/webhooks/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", forged)
        .body(axum::body::Body::from(format!(
            "To=%2B14155550100&CallSid=CAforged&AccountSid={}",
            super::support::TWILIO_SID
        )))
        .expect("request");
    let (status, _) = gw.raw(request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The caller hangs up: the status callback writes the call record.
    let ended = gw
        .emulator
        .end_call(&delivery.call_id)
        .await
        .expect("end")
        .expect("callback sent");
    assert_eq!(ended.status, Some(204), "{}", ended.body);
    let calls = gw.registry.list_calls(&org_id, 10).await.expect("calls");
    let record = calls
        .iter()
        .find(|c| c.carrier_call_id == delivery.call_id)
        .expect("call recorded");
    assert_eq!(record.status, "completed");
    assert!(
        calls.iter().all(|c| c.carrier_call_id != "CAforged"),
        "a forged webhook wrote a record"
    );

    // Removing the number puts back the voice URL it had.
    let (status, removed) = gw
        .call(
            "DELETE",
            &format!("/v1/numbers/{number_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["restore"], "restored");
    assert_eq!(
        gw.twilio_voice_url("+14155550100").as_deref(),
        Some("https://old.example.com/voice")
    );

    // Carrier calls are counted by action and outcome for Prometheus.
    let (_, metrics) = gw.call("GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(
            r#"gateway_carrier_calls_total{action="replace_inbound_config",outcome="ok"}"#
        ),
        "{metrics}"
    );

    // Every carrier call is in the audit log, and no secret is.
    let (status, audit) = gw.call("GET", "/v1/audit-log", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = audit.to_string();
    assert!(text.contains("replace_inbound_config"), "{text}");
    assert!(!text.contains(TWILIO_TOKEN));
}

#[tokio::test]
async fn telnyx_number_from_import_to_removal() {
    let gw = Gateway::start().await;
    let (org_id, key) = gw.org("acme").await;
    let connection = gw.connect_telnyx(&key).await;
    let agent = gw.agent(&key, "wss://agents.example.com/media").await;
    let import = json!({"connection_id": connection, "e164": "+13125550100", "mode": "managed", "agent_id": agent});
    let (status, imported) = gw
        .call("POST", "/v1/numbers/import", Some(&key), Some(import))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let number_id = imported["number"]["id"].as_str().expect("id").to_owned();

    let delivery = gw
        .emulator
        .telnyx_inbound(InboundCall {
            to: "+13125550100".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert_eq!(delivery.status, Some(200), "{}", delivery.body);
    assert!(delivery.body.contains("<Stream"), "{}", delivery.body);
    assert!(delivery.body.contains(&number_id), "{}", delivery.body);

    // An unsigned TeXML webhook is refused.
    let request = http::Request::post("/webhooks/telnyx/texml")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(
            "To=%2B13125550100&CallSid=v3:forged",
        ))
        .expect("request");
    assert_eq!(gw.raw(request).await.0, StatusCode::FORBIDDEN);

    let callback = gw
        .emulator
        .end_call(&delivery.call_id)
        .await
        .expect("end")
        .expect("callback sent");
    assert_eq!(callback.status, Some(204), "{}", callback.body);
    let calls = gw.registry.list_calls(&org_id, 10).await.expect("calls");
    assert!(
        calls
            .iter()
            .any(|c| c.carrier_call_id == delivery.call_id && c.status == "completed"),
        "{calls:?}"
    );

    let (status, removed) = gw
        .call(
            "DELETE",
            &format!("/v1/numbers/{number_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["restore"], "restored");
    let number = gw
        .emulator
        .state()
        .telnyx_numbers
        .into_iter()
        .find(|n| n.phone_number == "+13125550100")
        .expect("number");
    assert_eq!(number.connection_id.as_deref(), Some("2999"));
    let (_, audit) = gw.call("GET", "/v1/audit-log", Some(&key), None).await;
    assert!(!audit.to_string().contains(TELNYX_KEY));
}
