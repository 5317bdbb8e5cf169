//! Forwarded business numbers end to end: an organization registers its business number as
//! forwarded to one of its numbers; a call the carrier marks forwarded (`ForwardedFrom`) is
//! recorded with the business number and routed by the business number's settings.

use http::StatusCode;
use serde_json::json;
use telephony_carrier::Provider;
use telephony_emulator::InboundCall;

use super::support::{Gateway, code};

const BUSINESS: &str = "+12125550123";

#[tokio::test]
async fn a_forwarded_call_is_recorded_with_the_business_number_and_routed_by_it() {
    let gateway = Gateway::start().await;
    let (org, key) = gateway.org("Acme").await;
    let connection = gateway.connect_twilio(&key).await;
    let desk = gateway.agent(&key, "wss://agents.example/desk").await;
    let shop = gateway.agent(&key, "sip:shop@agents.example").await;
    let (status, imported) = gateway
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101",
                "mode": "managed", "agent_id": desk})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let number_id = imported["number"]["id"].as_str().expect("id").to_owned();

    let (status, registered) = gateway
        .call(
            "POST",
            &format!("/v1/numbers/{number_id}/forwarded-from"),
            Some(&key),
            Some(json!({"business_number": BUSINESS, "nickname": "shop line", "agent_id": shop})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["path"], "forwarded");
    assert_eq!(registered["target_e164"], "+14155550101");
    let registration = registered["id"].as_str().expect("id").to_owned();

    // Listed with its target.
    let (_, all) = gateway
        .call("GET", "/v1/forwarded-numbers", Some(&key), None)
        .await;
    assert_eq!(all["data"].as_array().expect("list").len(), 1);
    assert_eq!(all["data"][0]["business_number"], BUSINESS);
    assert_eq!(all["data"][0]["target_number_id"], number_id.as_str());
    let (_, numbers) = gateway.call("GET", "/v1/numbers", Some(&key), None).await;
    assert_eq!(numbers["data"][0]["path"], "imported");

    // A forwarded call goes to the business number's agent and is recorded with it.
    let delivery = gateway
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550101".into(),
            from: "+15005550006".into(),
            forwarded_from: Some(BUSINESS.into()),
        })
        .await
        .expect("webhook sent");
    assert_eq!(delivery.status, Some(200), "{}", delivery.body);
    assert!(
        delivery.body.contains("sip:shop@agents.example"),
        "{}",
        delivery.body
    );
    assert!(!delivery.body.contains("wss://agents.example/desk"));
    let recorded = gateway
        .registry
        .forwarded_call(Provider::Twilio, &delivery.call_id)
        .await
        .expect("lookup")
        .expect("recorded as forwarded");
    assert_eq!(recorded.business_number, BUSINESS);
    assert_eq!(recorded.org_id, org);
    assert_eq!(recorded.number_id, number_id);
    assert_eq!(
        recorded.forwarded_number_id.as_deref(),
        Some(registration.as_str())
    );

    // A direct call goes to the number's own agent, and is not marked forwarded.
    let direct = gateway
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550101".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert_eq!(direct.status, Some(200), "{}", direct.body);
    assert!(
        direct.body.contains("wss://agents.example/desk"),
        "{}",
        direct.body
    );
    assert!(
        gateway
            .registry
            .forwarded_call(Provider::Twilio, &direct.call_id)
            .await
            .expect("lookup")
            .is_none()
    );

    // A call forwarded from a number nobody registered is recorded, and routed by the number.
    let unknown = gateway
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550101".into(),
            from: "+15005550006".into(),
            forwarded_from: Some("+12125550999".into()),
        })
        .await
        .expect("webhook sent");
    assert!(
        unknown.body.contains("wss://agents.example/desk"),
        "{}",
        unknown.body
    );
    let recorded = gateway
        .registry
        .forwarded_call(Provider::Twilio, &unknown.call_id)
        .await
        .expect("lookup")
        .expect("recorded as forwarded");
    assert_eq!(recorded.business_number, "+12125550999");
    assert_eq!(recorded.forwarded_number_id, None);

    // Unregistered, the business number's calls go by the number again.
    let (status, _) = gateway
        .call(
            "DELETE",
            &format!("/v1/numbers/{number_id}/forwarded-from/{registration}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = gateway
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550101".into(),
            from: "+15005550006".into(),
            forwarded_from: Some(BUSINESS.into()),
        })
        .await
        .expect("webhook sent");
    assert!(
        after.body.contains("wss://agents.example/desk"),
        "{}",
        after.body
    );

    // The call listing shows every inbound call, the forwarded ones with the business number.
    let (status, calls) = gateway.call("GET", "/v1/calls", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    let forwarded_from = |call_id: &str| {
        let call = calls["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["carrier_call_id"] == call_id)
            .unwrap_or_else(|| panic!("{call_id} listed: {calls}"));
        assert_eq!(call["number"], "+14155550101");
        assert_eq!(call["direction"], "inbound");
        call["forwarded_from"].clone()
    };
    assert_eq!(forwarded_from(&delivery.call_id), BUSINESS);
    assert_eq!(forwarded_from(&unknown.call_id), "+12125550999");
    assert_eq!(forwarded_from(&after.call_id), BUSINESS);
    assert!(forwarded_from(&direct.call_id).is_null());
    let id = calls["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["carrier_call_id"] == delivery.call_id.as_str())
        .and_then(|c| c["id"].as_str())
        .expect("id")
        .to_owned();
    let (status, one) = gateway
        .call("GET", &format!("/v1/calls/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["forwarded_from"], BUSINESS);
}

#[tokio::test]
async fn bad_forwarding_registrations_are_refused_and_change_nothing() {
    let gateway = Gateway::start().await;
    let (_, key) = gateway.org("Acme").await;
    let connection = gateway.connect_twilio(&key).await;
    let (status, imported) = gateway
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550101"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let number_id = imported["number"]["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/numbers/{number_id}/forwarded-from");

    let cases = [
        (
            json!({"business_number": "212 555"}),
            StatusCode::BAD_REQUEST,
            "invalid_phone_number",
        ),
        (
            json!({"business_number": "+14155550101"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"business_number": BUSINESS, "agent_id": "nope"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"business_number": BUSINESS, "extra": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = gateway
            .call("POST", &path, Some(&key), Some(body.clone()))
            .await;
        assert_eq!(status, want_status, "{body} -> {answer}");
        assert_eq!(code(&answer), want_code, "{body} -> {answer}");
    }
    let (_, listed) = gateway.call("GET", &path, Some(&key), None).await;
    assert_eq!(listed["data"], json!([]));

    let (status, _) = gateway
        .call(
            "POST",
            &path,
            Some(&key),
            Some(json!({"business_number": BUSINESS})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = gateway
        .call(
            "POST",
            &path,
            Some(&key),
            Some(json!({"business_number": BUSINESS})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&answer), "conflict");

    // Another organization sees neither the number nor its registrations.
    let (_, other) = gateway.org("Globex").await;
    let (status, answer) = gateway
        .call(
            "POST",
            &path,
            Some(&other),
            Some(json!({"business_number": "+12125550124"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (_, listed) = gateway
        .call("GET", "/v1/forwarded-numbers", Some(&other), None)
        .await;
    assert_eq!(listed["data"], json!([]));
}
