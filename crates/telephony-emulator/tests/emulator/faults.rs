//! Fault injection, the request log and reset, through the `/_emulator/` control API.

use std::time::{Duration, Instant};

use serde_json::json;
use telephony_emulator::Fault;

use crate::support::*;

#[tokio::test]
async fn a_status_fault_fails_the_next_n_matching_requests_in_the_carriers_shape() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let armed = api
        .control("POST", "/_emulator/faults", Some(json!({"method": "GET", "path": "/2010-04-01/Accounts/*/IncomingPhoneNumbers.json", "status": 503, "times": 2})))
        .await;
    assert_eq!(armed.status, 201);
    let path = twilio_path(TW_SID, "/IncomingPhoneNumbers.json");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = api.twilio_get(&path, TW_SID, TW_TOKEN).await;
        if answer.status == 503 {
            assert_eq!(answer.json["code"], 20503);
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [503, 503, 200]);
    // Other routes were never affected.
    assert_eq!(
        api.twilio_get(&twilio_path(TW_SID, ".json"), TW_SID, TW_TOKEN)
            .await
            .status,
        200
    );

    emulator.add_fault(Fault {
        method: None,
        path: "/v2/phone_numbers*".into(),
        status: Some(500),
        delay_ms: 0,
        drop_connection: false,
        times: None,
    });
    for _ in 0..2 {
        let answer = api.telnyx("GET", "/v2/phone_numbers", TX_KEY, None).await;
        assert_eq!(answer.status, 500);
        assert_eq!(answer.json["errors"][0]["code"], "10007");
    }
    assert_eq!(
        api.control("DELETE", "/_emulator/faults", None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.telnyx("GET", "/v2/phone_numbers", TX_KEY, None)
            .await
            .status,
        200
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_delay_fault_slows_the_answer_without_changing_it() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    emulator.add_fault(Fault {
        method: Some("GET".into()),
        path: "/v2/balance".into(),
        status: None,
        delay_ms: 300,
        drop_connection: false,
        times: Some(1),
    });
    let started = Instant::now();
    let answer = api.telnyx("GET", "/v2/balance", TX_KEY, None).await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    api.telnyx("GET", "/v2/balance", TX_KEY, None).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the fault was used up"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_an_answer() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    emulator.add_fault(Fault {
        method: None,
        path: "/2010-04-01/*".into(),
        status: None,
        delay_ms: 0,
        drop_connection: true,
        times: Some(1),
    });
    let path = twilio_path(TW_SID, ".json");
    let failed = api
        .http
        .get(api.url(&path))
        .basic_auth(TW_SID, Some(TW_TOKEN))
        .send()
        .await;
    let error = failed.expect_err("no answer");
    assert!(!error.is_status(), "{error}");
    assert_eq!(api.twilio_get(&path, TW_SID, TW_TOKEN).await.status, 200);
    let log = emulator.state().requests;
    assert_eq!(
        log[0].status, None,
        "the dropped request is logged without a status"
    );
    assert_eq!(log[1].status, Some(200));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_request_log_records_what_clients_sent_and_reset_restores_the_seed() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let path = twilio_path(
        TW_SID,
        &format!("/IncomingPhoneNumbers/{TW_NUMBER_SID}.json"),
    );
    api.twilio_post(
        &path,
        TW_KEY,
        TW_KEY_SECRET,
        &[("VoiceUrl", "https://gw.example/v")],
    )
    .await;
    api.twilio_get(&path, TW_SID, "wrong").await;
    let log = api.control("GET", "/_emulator/requests", None).await.json;
    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["path"], path);
    assert_eq!(log[0]["body"], "VoiceUrl=https%3A%2F%2Fgw.example%2Fv");
    assert_eq!(log[0]["account"], TW_SID);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[1]["account"], serde_json::Value::Null);
    assert_eq!(log[1]["status"], 401);
    let text = log.to_string();
    assert!(
        !text.contains(TW_KEY_SECRET) && !text.contains("wrong"),
        "credentials are never logged"
    );

    assert_eq!(
        api.control("POST", "/_emulator/reset", None).await.status,
        204
    );
    let state = api.control("GET", "/_emulator/state", None).await.json;
    assert_eq!(state["requests"], json!([]));
    let number = state["twilio_numbers"]
        .as_array()
        .expect("numbers")
        .iter()
        .find(|n| n["sid"] == TW_NUMBER_SID)
        .cloned();
    assert_eq!(
        number.expect("seeded number")["voice_url"],
        serde_json::Value::Null
    );
    emulator.shutdown().await;
}
