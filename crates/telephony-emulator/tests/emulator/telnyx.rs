//! Telnyx API v2 behaviour: auth, phone numbers, paging, orders, TeXML apps and calls.

use serde_json::{Value, json};

use crate::support::*;

async fn setup() -> (telephony_emulator::Emulator, Api) {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    (emulator, api)
}

#[tokio::test]
async fn bearer_auth_guards_every_route() {
    let (emulator, api) = setup().await;
    let ok = api.telnyx("GET", "/v2/balance", TX_KEY, None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["data"]["record_type"], "balance");
    for path in ["/v2/balance", "/v2/phone_numbers", "/v2/texml_applications"] {
        let denied = api.telnyx("GET", path, "KEYwrong", None).await;
        assert_eq!(denied.status, 401, "{path}");
        assert_eq!(denied.json["errors"][0]["code"], "10009");
        assert_eq!(denied.json["errors"][0]["title"], "Authentication failed");
    }
    let unknown = api
        .telnyx("GET", "/v2/phone_numbers/999", TX_KEY, None)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["errors"][0]["code"], "10005");
    emulator.shutdown().await;
}

#[tokio::test]
async fn phone_number_pages_carry_meta_and_end_where_total_pages_says() {
    let (emulator, api) = setup().await;
    let mut page_number = 1;
    let mut seen = Vec::new();
    loop {
        let page = api
            .telnyx(
                "GET",
                &format!("/v2/phone_numbers?page[number]={page_number}&page[size]=2"),
                TX_KEY,
                None,
            )
            .await;
        assert_eq!(page.status, 200);
        let meta = &page.json["meta"];
        assert_eq!(meta["total_results"], 5);
        assert_eq!(meta["total_pages"], 3);
        assert_eq!(meta["page_size"], 2);
        assert_eq!(meta["page_number"], page_number);
        for n in page.json["data"].as_array().expect("data") {
            assert_eq!(n["record_type"], "phone_number");
            seen.push(n["phone_number"].as_str().expect("number").to_string());
        }
        if meta["page_number"].as_u64() >= meta["total_pages"].as_u64() {
            break;
        }
        page_number += 1;
    }
    let want: Vec<String> = (0..5).map(|i| format!("+1312555010{i}")).collect();
    assert_eq!(seen, want);
    let filtered = api
        .telnyx(
            "GET",
            "/v2/phone_numbers?filter[phone_number]=%2B13125550103",
            TX_KEY,
            None,
        )
        .await;
    assert_eq!(filtered.json["data"].as_array().map(Vec::len), Some(1));
    let bad = api
        .telnyx("GET", "/v2/phone_numbers?page[size]=0", TX_KEY, None)
        .await;
    assert_eq!(bad.status, 400);
    emulator.shutdown().await;
}

#[tokio::test]
async fn patching_a_number_sets_its_connection_and_tags() {
    let (emulator, api) = setup().await;
    let path = format!("/v2/phone_numbers/{TX_NUMBER_ID}");
    let patched = api
        .telnyx(
            "PATCH",
            &path,
            TX_KEY,
            Some(json!({"connection_id": "42", "tags": ["agent:a1"]})),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json["data"]["connection_id"], "42");
    assert_eq!(patched.json["data"]["tags"], json!(["agent:a1"]));
    let fetched = api.telnyx("GET", &path, TX_KEY, None).await;
    assert_eq!(fetched.json["data"]["connection_id"], "42");
    let invalid = api
        .telnyx("PATCH", &path, TX_KEY, Some(json!({"tags": "not-a-list"})))
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json["errors"][0]["source"]["pointer"], "/tags");
    let deleted = api.telnyx("DELETE", &path, TX_KEY, None).await;
    assert_eq!(
        (deleted.status, deleted.json["data"]["status"].clone()),
        (200, Value::from("deleted"))
    );
    assert_eq!(api.telnyx("GET", &path, TX_KEY, None).await.status, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_number_order_stays_pending_for_the_configured_polls_then_succeeds() {
    let (emulator, api) = setup().await;
    let search = api
        .telnyx(
            "GET",
            "/v2/available_phone_numbers?filter[country_code]=US&filter[national_destination_code]=312&filter[phone_number_type]=local",
            TX_KEY,
            None,
        )
        .await;
    assert_eq!(search.status, 200);
    let numbers: Vec<&str> = search.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|n| n["phone_number"].as_str())
        .collect();
    assert_eq!(numbers, ["+13125550190", "+13125550191"]);

    let order = api
        .telnyx(
            "POST",
            "/v2/number_orders",
            TX_KEY,
            Some(json!({"phone_numbers": [{"phone_number": "+13125550190"}], "connection_id": TX_APP_ID})),
        )
        .await;
    assert_eq!(order.status, 200);
    assert_eq!(order.json["data"]["status"], "pending");
    let id = order.json["data"]["id"].as_str().expect("id").to_string();
    let owned = |state: telephony_emulator::StateSnapshot| {
        state
            .telnyx_numbers
            .iter()
            .any(|n| n.phone_number == "+13125550190")
    };
    assert!(!owned(emulator.state()));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let polled = api
            .telnyx("GET", &format!("/v2/number_orders/{id}"), TX_KEY, None)
            .await;
        statuses.push(
            polled.json["data"]["status"]
                .as_str()
                .expect("status")
                .to_string(),
        );
    }
    assert_eq!(statuses, ["pending", "pending", "success"]);
    assert!(owned(emulator.state()));
    let listed = api
        .telnyx(
            "GET",
            "/v2/phone_numbers?filter[phone_number]=13125550190",
            TX_KEY,
            None,
        )
        .await;
    assert_eq!(listed.json["data"][0]["connection_id"], TX_APP_ID);

    let unavailable = api
        .telnyx(
            "POST",
            "/v2/number_orders",
            TX_KEY,
            Some(json!({"phone_numbers": [{"phone_number": "+13125550190"}]})),
        )
        .await;
    assert_eq!(unavailable.status, 422);
    emulator.shutdown().await;
}

#[tokio::test]
async fn texml_applications_are_created_listed_and_fetched() {
    let (emulator, api) = setup().await;
    let missing = api
        .telnyx(
            "POST",
            "/v2/texml_applications",
            TX_KEY,
            Some(json!({"friendly_name": "x"})),
        )
        .await;
    assert_eq!(missing.status, 422);
    let created = api
        .telnyx(
            "POST",
            "/v2/texml_applications",
            TX_KEY,
            Some(json!({"friendly_name": "gateway", "voice_url": "https://gw.example/texml", "status_callback": "https://gw.example/status"})),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json["data"]["voice_method"], "post");
    let id = created.json["data"]["id"].as_str().expect("id").to_string();
    let fetched = api
        .telnyx("GET", &format!("/v2/texml_applications/{id}"), TX_KEY, None)
        .await;
    assert_eq!(
        fetched.json["data"]["voice_url"],
        "https://gw.example/texml"
    );
    let listed = api
        .telnyx("GET", "/v2/texml_applications", TX_KEY, None)
        .await;
    assert_eq!(listed.json["meta"]["total_results"], 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn texml_calls_and_call_control_actions_drive_a_call_to_its_end() {
    let (emulator, api) = setup().await;
    let calls = format!("/v2/texml/Accounts/{TX_SID}/Calls");
    let created = api
        .telnyx(
            "POST",
            &calls,
            TX_KEY,
            Some(
                json!({"ApplicationSid": TX_APP_ID, "To": "+15550001111", "From": "+13125550100"}),
            ),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.json["status"], "queued");
    let sid = created.json["call_sid"]
        .as_str()
        .expect("call sid")
        .to_string();
    let other_account = api
        .telnyx(
            "POST",
            "/v2/texml/Accounts/someone-else/Calls",
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(other_account.status, 404);

    let record = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/record_start"),
            TX_KEY,
            Some(json!({"format": "mp3", "channels": "dual"})),
        )
        .await;
    assert_eq!(
        (record.status, record.json["data"]["result"].clone()),
        (200, Value::from("ok"))
    );
    let bad_record = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/record_start"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(bad_record.status, 422);
    let stop = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/record_stop"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(stop.status, 200);
    let transfer = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/transfer"),
            TX_KEY,
            Some(json!({"to": "sip:agent@example.com"})),
        )
        .await;
    assert_eq!(transfer.status, 200);
    assert_eq!(
        emulator.state().calls[0].transferred_to.as_deref(),
        Some("sip:agent@example.com")
    );

    let redirect = api
        .http
        .post(api.url(&format!("{calls}/{sid}")))
        .bearer_auth(TX_KEY)
        .form(&[("Url", "https://gw.example/next")])
        .send()
        .await
        .expect("sent");
    assert_eq!(redirect.status().as_u16(), 200);
    let recs = format!("{calls}/{sid}/Recordings.json");
    let started = api
        .telnyx_form("POST", &recs, TX_KEY, &[("RecordingTrack", "inbound")])
        .await;
    assert_eq!(
        (started.status, started.json["track"].clone()),
        (200, Value::from("inbound"))
    );
    let rec = format!(
        "{calls}/{sid}/Recordings/{}.json",
        started.json["sid"].as_str().expect("sid")
    );
    assert_eq!(
        api.telnyx_form("POST", &rec, TX_KEY, &[("Status", "paused")])
            .await
            .status,
        200
    );
    assert_eq!(
        api.telnyx_form("POST", &rec, TX_KEY, &[("Status", "stopped")])
            .await
            .status,
        200
    );
    let resumed = api
        .telnyx_form("POST", &rec, TX_KEY, &[("Status", "in-progress")])
        .await;
    assert_eq!(resumed.status, 422, "a stopped recording cannot resume");
    let hangup = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/hangup"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(hangup.status, 200);
    let again = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{sid}/actions/hangup"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(again.status, 422);
    let fetched = api
        .telnyx("GET", &format!("{calls}/{sid}"), TX_KEY, None)
        .await;
    assert_eq!(fetched.json["status"], "completed");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_per_account_rate_limit_answers_10011() {
    let (emulator, api) = setup().await;
    let mut limited = None;
    let mut first = None;
    for _ in 0..6 {
        let answer = api.telnyx("GET", "/v2/balance", TX_LIMITED_KEY, None).await;
        if answer.status == 429 {
            limited = Some(answer);
        } else if first.is_none() {
            first = Some(answer);
        }
    }
    let first = first.expect("the first request of a window is answered");
    let header = |a: &Answer, name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header(&first, "x-ratelimit-limit").as_deref(), Some("2"));
    assert!(header(&first, "x-ratelimit-remaining").is_some());
    let limited = limited.expect("six quick requests exceed two per second");
    assert_eq!(limited.json["errors"][0]["code"], "10011");
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_dialed_call_control_call_is_alive_until_hung_up() {
    let (emulator, api) = setup().await;
    let missing = api
        .telnyx(
            "POST",
            "/v2/calls",
            TX_KEY,
            Some(json!({"to": "+15550001111"})),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json["errors"][0]["code"], "10004");
    let dialed = api
        .telnyx(
            "POST",
            "/v2/calls",
            TX_KEY,
            Some(json!({"connection_id": TX_APP_ID, "to": "+15550001111", "from": "+13125550100", "client_state": "YWJj"})),
        )
        .await;
    assert_eq!(dialed.status, 200);
    assert_eq!(dialed.json["data"]["client_state"], "YWJj");
    let id = dialed.json["data"]["call_control_id"]
        .as_str()
        .expect("id")
        .to_string();
    let alive = |answer: &Answer| answer.json["data"]["is_alive"].clone();
    assert_eq!(
        alive(
            &api.telnyx("GET", &format!("/v2/calls/{id}"), TX_KEY, None)
                .await
        ),
        true
    );
    let hangup = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{id}/actions/hangup"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(hangup.status, 200);
    assert_eq!(
        alive(
            &api.telnyx("GET", &format!("/v2/calls/{id}"), TX_KEY, None)
                .await
        ),
        false
    );
    emulator.shutdown().await;
}
