//! Conformance with the official OpenAPI specs in `shared/specs`: every route the emulator
//! answered exists in the spec with that method, and every JSON body it returned uses only the
//! property names the spec's response schema declares (with the declared basic types), with the
//! required ones present.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use telephony_emulator::{Carrier, RequestRecord, SpecChecker};

use crate::support::*;

fn checker() -> SpecChecker {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs");
    SpecChecker::load(&dir).expect("the official specs load")
}

/// Known, documented extensions beyond the spec (see the crate docs).
const EXTENSIONS: &[(&str, &str)] = &[("/texml/Accounts/{account_sid}/Calls", "call_sid")];

struct Exchange {
    carrier: Carrier,
    method: &'static str,
    path: String,
    status: u16,
    body: Value,
}

async fn exchanges(api: &Api) -> Vec<Exchange> {
    let mut out = Vec::new();
    let mut tw = |method: &'static str, path: String, answer: Answer| {
        out.push(Exchange {
            carrier: Carrier::Twilio,
            method,
            path,
            status: answer.status,
            body: answer.json,
        });
    };
    let acct = twilio_path(TW_SID, ".json");
    tw(
        "GET",
        acct.clone(),
        api.twilio_get(&acct, TW_SID, TW_TOKEN).await,
    );
    tw(
        "POST",
        acct.clone(),
        api.twilio_post(&acct, TW_SID, TW_TOKEN, &[("FriendlyName", "Parent")])
            .await,
    );
    let accounts = "/2010-04-01/Accounts.json".to_string();
    tw(
        "POST",
        accounts.clone(),
        api.twilio_post(&accounts, TW_SID, TW_TOKEN, &[("FriendlyName", "sub")])
            .await,
    );
    tw(
        "GET",
        accounts.clone(),
        api.twilio_get(&accounts, TW_SID, TW_TOKEN).await,
    );
    let numbers = twilio_path(TW_SID, "/IncomingPhoneNumbers.json");
    tw(
        "GET",
        numbers.clone(),
        api.twilio_get(&format!("{numbers}?PageSize=2"), TW_SID, TW_TOKEN)
            .await,
    );
    let one = twilio_path(
        TW_SID,
        &format!("/IncomingPhoneNumbers/{TW_NUMBER_SID}.json"),
    );
    tw(
        "GET",
        one.clone(),
        api.twilio_get(&one, TW_SID, TW_TOKEN).await,
    );
    tw(
        "POST",
        one.clone(),
        api.twilio_post(
            &one,
            TW_SID,
            TW_TOKEN,
            &[("VoiceUrl", "https://gw.example/v")],
        )
        .await,
    );
    let local = twilio_path(TW_SID, "/AvailablePhoneNumbers/US/Local.json");
    tw(
        "GET",
        local.clone(),
        api.twilio_get(&local, TW_SID, TW_TOKEN).await,
    );
    let bought = api
        .twilio_post(
            &numbers,
            TW_SID,
            TW_TOKEN,
            &[("PhoneNumber", "+14155550190")],
        )
        .await;
    let bought_sid = bought.json["sid"].as_str().unwrap_or_default().to_string();
    tw("POST", numbers.clone(), bought);
    let release = twilio_path(TW_SID, &format!("/IncomingPhoneNumbers/{bought_sid}.json"));
    tw(
        "DELETE",
        release.clone(),
        api.twilio_delete(&release, TW_SID, TW_TOKEN).await,
    );
    let calls = twilio_path(TW_SID, "/Calls.json");
    let call = api
        .twilio_post(
            &calls,
            TW_SID,
            TW_TOKEN,
            &[
                ("To", "+15550001111"),
                ("From", "+14155550100"),
                ("Url", "https://x/t"),
            ],
        )
        .await;
    let call_sid = call.json["sid"].as_str().unwrap_or_default().to_string();
    tw("POST", calls.clone(), call);
    tw(
        "GET",
        calls.clone(),
        api.twilio_get(&calls, TW_SID, TW_TOKEN).await,
    );
    let recs = twilio_path(TW_SID, &format!("/Calls/{call_sid}/Recordings.json"));
    let rec = api.twilio_post(&recs, TW_SID, TW_TOKEN, &[]).await;
    let rec_sid = rec.json["sid"].as_str().unwrap_or_default().to_string();
    tw("POST", recs.clone(), rec);
    tw(
        "GET",
        recs.clone(),
        api.twilio_get(&recs, TW_SID, TW_TOKEN).await,
    );
    let rec_one = twilio_path(
        TW_SID,
        &format!("/Calls/{call_sid}/Recordings/{rec_sid}.json"),
    );
    tw(
        "POST",
        rec_one.clone(),
        api.twilio_post(&rec_one, TW_SID, TW_TOKEN, &[("Status", "stopped")])
            .await,
    );
    tw(
        "GET",
        rec_one.clone(),
        api.twilio_get(&rec_one, TW_SID, TW_TOKEN).await,
    );
    let call_one = twilio_path(TW_SID, &format!("/Calls/{call_sid}.json"));
    tw(
        "GET",
        call_one.clone(),
        api.twilio_get(&call_one, TW_SID, TW_TOKEN).await,
    );
    tw(
        "POST",
        call_one.clone(),
        api.twilio_post(&call_one, TW_SID, TW_TOKEN, &[("Status", "completed")])
            .await,
    );

    let mut tx = |method: &'static str, path: &str, answer: Answer| {
        out.push(Exchange {
            carrier: Carrier::Telnyx,
            method,
            path: path.to_string(),
            status: answer.status,
            body: answer.json,
        });
    };
    tx(
        "GET",
        "/v2/balance",
        api.telnyx("GET", "/v2/balance", TX_KEY, None).await,
    );
    tx(
        "GET",
        "/v2/phone_numbers",
        api.telnyx("GET", "/v2/phone_numbers?page[size]=2", TX_KEY, None)
            .await,
    );
    let number = format!("/v2/phone_numbers/{TX_NUMBER_ID}");
    tx(
        "GET",
        &number,
        api.telnyx("GET", &number, TX_KEY, None).await,
    );
    tx(
        "PATCH",
        &number,
        api.telnyx("PATCH", &number, TX_KEY, Some(json!({"tags": ["a"]})))
            .await,
    );
    tx(
        "GET",
        "/v2/available_phone_numbers",
        api.telnyx(
            "GET",
            "/v2/available_phone_numbers?filter[country_code]=US",
            TX_KEY,
            None,
        )
        .await,
    );
    let order = api
        .telnyx(
            "POST",
            "/v2/number_orders",
            TX_KEY,
            Some(json!({"phone_numbers": [{"phone_number": "+13125550191"}]})),
        )
        .await;
    let order_id = order.json["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tx("POST", "/v2/number_orders", order);
    tx(
        "GET",
        "/v2/number_orders",
        api.telnyx(
            "GET",
            "/v2/number_orders?filter[status]=pending",
            TX_KEY,
            None,
        )
        .await,
    );
    let order_path = format!("/v2/number_orders/{order_id}");
    tx(
        "GET",
        &order_path,
        api.telnyx("GET", &order_path, TX_KEY, None).await,
    );
    tx(
        "GET",
        "/v2/texml_applications",
        api.telnyx("GET", "/v2/texml_applications", TX_KEY, None)
            .await,
    );
    let app = api
        .telnyx(
            "POST",
            "/v2/texml_applications",
            TX_KEY,
            Some(json!({"friendly_name": "g", "voice_url": "https://gw.example/t"})),
        )
        .await;
    let app_id = app.json["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tx("POST", "/v2/texml_applications", app);
    let app_path = format!("/v2/texml_applications/{app_id}");
    tx(
        "GET",
        &app_path,
        api.telnyx("GET", &app_path, TX_KEY, None).await,
    );
    tx(
        "PATCH",
        &app_path,
        api.telnyx(
            "PATCH",
            &app_path,
            TX_KEY,
            Some(json!({"friendly_name": "g2", "voice_url": "https://gw.example/t2"})),
        )
        .await,
    );
    let texml_calls = format!("/v2/texml/Accounts/{TX_SID}/Calls");
    let texml_call = api
        .telnyx(
            "POST",
            &texml_calls,
            TX_KEY,
            Some(
                json!({"ApplicationSid": TX_APP_ID, "To": "+15550001111", "From": "+13125550100"}),
            ),
        )
        .await;
    let texml_sid = texml_call.json["call_sid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tx("POST", &texml_calls, texml_call);
    for (action, body) in [
        (
            "record_start",
            json!({"format": "mp3", "channels": "single"}),
        ),
        ("record_stop", json!({})),
        ("transfer", json!({"to": "+15550002222"})),
    ] {
        let path = format!("/v2/calls/{texml_sid}/actions/{action}");
        tx(
            "POST",
            &path,
            api.telnyx("POST", &path, TX_KEY, Some(body)).await,
        );
    }
    let texml_recs = format!("{texml_calls}/{texml_sid}/Recordings.json");
    let texml_rec = api
        .telnyx_form(
            "POST",
            &texml_recs,
            TX_KEY,
            &[("RecordingChannels", "dual")],
        )
        .await;
    let texml_rec_sid = texml_rec.json["sid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tx("POST", &texml_recs, texml_rec);
    let texml_rec_one = format!("{texml_calls}/{texml_sid}/Recordings/{texml_rec_sid}.json");
    tx(
        "POST",
        &texml_rec_one,
        api.telnyx_form("POST", &texml_rec_one, TX_KEY, &[("Status", "stopped")])
            .await,
    );
    let texml_one = format!("{texml_calls}/{texml_sid}");
    tx(
        "GET",
        &texml_one,
        api.telnyx("GET", &texml_one, TX_KEY, None).await,
    );
    let hangup = format!("/v2/calls/{texml_sid}/actions/hangup");
    tx(
        "POST",
        &hangup,
        api.telnyx("POST", &hangup, TX_KEY, Some(json!({}))).await,
    );
    let dialed = api
        .telnyx(
            "POST",
            "/v2/calls",
            TX_KEY,
            Some(json!({"connection_id": TX_APP_ID, "to": "+15550003333", "from": "+13125550100"})),
        )
        .await;
    let control_id = dialed.json["data"]["call_control_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tx("POST", "/v2/calls", dialed);
    let status = format!("/v2/calls/{control_id}");
    tx(
        "GET",
        &status,
        api.telnyx("GET", &status, TX_KEY, None).await,
    );
    out
}

#[tokio::test]
async fn every_route_and_response_matches_the_official_specs() {
    let specs = checker();
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let exchanges = exchanges(&api).await;

    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for x in &exchanges {
        let label = format!("{} {}", x.method, x.path);
        if !(200..300).contains(&x.status) {
            problems.push(format!(
                "{label}: scenario step failed with {} {}",
                x.status, x.body
            ));
            continue;
        }
        let Some(template) = specs.template_for(x.carrier, &x.path) else {
            problems.push(format!("{label}: no such path in the spec"));
            continue;
        };
        let mut body = x.body.clone();
        for (path, extra) in EXTENSIONS {
            if template == *path
                && let Some(object) = body.as_object_mut()
            {
                object.remove(*extra);
            }
        }
        if x.status != 204 {
            problems.extend(specs.check_response(x.carrier, x.method, &x.path, x.status, &body));
        }
        checked.insert(format!("{} {template}", x.method));
    }
    // Every request of the scenario (sent by this test's client) conforms too: route, method,
    // query parameters and body fields.
    for record in emulator.state().requests {
        problems.extend(specs.check_request(&record));
    }
    assert!(
        problems.is_empty(),
        "spec mismatches:\n{}",
        problems.join("\n")
    );
    assert!(
        checked.len() >= 25,
        "too few operations checked: {checked:#?}"
    );
    emulator.shutdown().await;
}

#[test]
fn the_request_checker_flags_what_the_real_api_would_not_accept() {
    let specs = checker();
    let record = |carrier,
                  method: &str,
                  path: &str,
                  query: Option<&str>,
                  content_type: Option<&str>,
                  body: &str| RequestRecord {
        seq: 1,
        carrier: Some(carrier),
        method: method.into(),
        path: path.into(),
        query: query.map(str::to_string),
        content_type: content_type.map(str::to_string),
        body: body.into(),
        account: None,
        status: Some(200),
    };
    let number = format!("/2010-04-01/Accounts/{TW_SID}/IncomingPhoneNumbers/{TW_NUMBER_SID}.json");
    let form = Some("application/x-www-form-urlencoded");
    let cases = [
        (
            record(
                Carrier::Twilio,
                "POST",
                &number,
                None,
                form,
                "VoiceUrl=https%3A%2F%2Fx",
            ),
            None,
        ),
        (
            record(Carrier::Twilio, "POST", &number, None, form, "voiceUrl=x"),
            Some("body field `voiceUrl`"),
        ),
        (
            record(Carrier::Twilio, "PATCH", &number, None, form, ""),
            Some("no patch"),
        ),
        (
            record(
                Carrier::Twilio,
                "POST",
                &number,
                None,
                Some("application/json"),
                "{}",
            ),
            Some("not accepted"),
        ),
        (
            record(
                Carrier::Twilio,
                "GET",
                "/2010-04-01/Accounts/AC1/Numbers.json",
                None,
                None,
                "",
            ),
            Some("no such path"),
        ),
        (
            record(
                Carrier::Telnyx,
                "GET",
                "/v2/phone_numbers",
                Some("page[size]=1&filter[phone_number]=%2B1"),
                None,
                "",
            ),
            None,
        ),
        (
            record(
                Carrier::Telnyx,
                "GET",
                "/v2/phone_numbers",
                Some("pageSize=1"),
                None,
                "",
            ),
            Some("query parameter `pageSize`"),
        ),
        (
            record(
                Carrier::Telnyx,
                "POST",
                "/v2/texml_applications",
                None,
                Some("application/json"),
                r#"{"friendly_name":"x"}"#,
            ),
            Some("required body field `voice_url`"),
        ),
    ];
    for (request, want) in cases {
        let problems = specs.check_request(&request);
        match want {
            None => assert!(
                problems.is_empty(),
                "{} {}: {problems:?}",
                request.method,
                request.path
            ),
            Some(fragment) => assert!(
                problems.iter().any(|p| p.contains(fragment)),
                "{} {}: expected `{fragment}` in {problems:?}",
                request.method,
                request.path
            ),
        }
    }
}

#[tokio::test]
async fn error_bodies_have_the_documented_shapes() {
    let specs = checker();
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let twilio_404 = api
        .twilio_get(
            &twilio_path(TW_SID, "/Calls/CA00000000000000000000000000000000.json"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    let keys: BTreeSet<&str> = twilio_404
        .json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "message", "more_info", "status"]),
        "legacy 2010 error body"
    );

    let telnyx_404 = api.telnyx("GET", "/v2/phone_numbers/1", TX_KEY, None).await;
    let mut errors = specs.check_component(Carrier::Telnyx, "Errors", &telnyx_404.json);
    let validation = api
        .telnyx("POST", "/v2/number_orders", TX_KEY, Some(json!({})))
        .await;
    errors.extend(specs.check_component(Carrier::Telnyx, "Errors", &validation.json));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        validation.json["errors"][0]["source"]["pointer"],
        "/phone_numbers"
    );
    emulator.shutdown().await;
}
