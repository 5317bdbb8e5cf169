//! Every request the clients send, checked against the official OpenAPI specs: the path and
//! method exist, the content type is one the operation accepts, and every query, form and JSON
//! parameter name is one the operation declares. The requests are read back from the
//! emulator's request log after driving every operation of both clients.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use telephony_carrier::{
    AvailableQuery, CallTarget, Carrier, InboundConfig, NumberType, OutboundCall, Purchase,
    PurchaseRequest, TelnyxVoiceConfig, TwilioVoiceConfig,
};
use telephony_emulator::RequestRecord;

use super::support::*;

fn load_spec(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/specs")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the spec {} is readable: {e}", path.display()));
    serde_json::from_str(&text).expect("the spec is json")
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let mut node = spec;
            for part in reference.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            resolve(spec, node)
        }
        None => value,
    }
}

/// Property names of a schema, through `allOf` / `oneOf` / `anyOf`.
fn properties(spec: &Value, schema: &Value, names: &mut BTreeSet<String>) {
    let schema = resolve(spec, schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        names.extend(props.keys().cloned());
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            properties(spec, part, names);
        }
    }
}

/// The spec path template that matches `path`, preferring the most literal segments.
fn find_template<'a>(spec: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&str, usize)> = None;
    for template in spec["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let matched = parts.iter().zip(&segments).all(|(part, segment)| {
            match (part.find('{'), part.find('}')) {
                (Some(open), Some(close)) => {
                    let (prefix, suffix) = (&part[..open], &part[close + 1..]);
                    segment.len() > prefix.len() + suffix.len()
                        && segment.starts_with(prefix)
                        && segment.ends_with(suffix)
                }
                _ => {
                    literal += 1;
                    part == segment
                }
            }
        });
        if matched && best.is_none_or(|(_, l)| literal > l) {
            best = Some((template.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

fn check(spec: &Value, record: &RequestRecord, path: &str) -> Result<String, String> {
    let template = find_template(spec, path).ok_or_else(|| format!("no spec path for {path}"))?;
    let item = &spec["paths"][template];
    let method = record.method.to_ascii_lowercase();
    let operation = item
        .get(&method)
        .ok_or_else(|| format!("{} {template} is not in the spec", record.method))?;

    let mut query_names = BTreeSet::new();
    for parameter in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
    {
        let parameter = resolve(spec, parameter);
        if parameter["in"] == "query" {
            query_names.insert(parameter["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    for (name, _) in url::form_urlencoded::parse(record.query.as_deref().unwrap_or("").as_bytes()) {
        // deepObject parameters (`page[number]`) are declared either whole or by their root.
        let root = name.split('[').next().unwrap_or_default();
        if !query_names.contains(name.as_ref()) && !query_names.contains(root) {
            return Err(format!(
                "{} {template}: query parameter {name} is not declared",
                record.method
            ));
        }
    }

    if record.body.is_empty() {
        return Ok(format!("{} {template}", record.method));
    }
    let content_type = record.content_type.as_deref().unwrap_or_default();
    let body = resolve(
        spec,
        operation.get("requestBody").ok_or_else(|| {
            format!(
                "{} {template} takes no body but one was sent",
                record.method
            )
        })?,
    );
    let media = if content_type.contains("json") {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let schema = body["content"]
        .get(media)
        .map(|m| &m["schema"])
        .ok_or_else(|| format!("{} {template} does not accept {media}", record.method))?;
    let mut declared = BTreeSet::new();
    properties(spec, schema, &mut declared);
    let sent: Vec<String> = if media == "application/json" {
        serde_json::from_str::<serde_json::Map<String, Value>>(&record.body)
            .map_err(|e| format!("{template}: the json body is not an object: {e}"))?
            .keys()
            .cloned()
            .collect()
    } else {
        url::form_urlencoded::parse(record.body.as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect()
    };
    for name in sent {
        if !declared.contains(&name) {
            return Err(format!(
                "{} {template}: body parameter {name} is not declared",
                record.method
            ));
        }
    }
    Ok(format!("{} {template}", record.method))
}

async fn drive_twilio(emulator: &telephony_emulator::Emulator) {
    let client = twilio(emulator);
    client.verify_credentials().await.unwrap();
    let first = client.list_numbers(None).await.unwrap();
    client.list_numbers(first.next.as_ref()).await.unwrap();
    let number = client.fetch_number(&e164("+14155550100")).await.unwrap();
    let previous = client
        .replace_inbound_config(
            &number.carrier_id,
            &InboundConfig::Twilio(TwilioVoiceConfig {
                voice_url: Some("https://gw.example/voice".to_owned()),
                voice_method: Some("POST".to_owned()),
                voice_fallback_method: Some("POST".to_owned()),
                status_callback_method: Some("POST".to_owned()),
                ..TwilioVoiceConfig::default()
            }),
        )
        .await
        .unwrap();
    client
        .replace_inbound_config(&number.carrier_id, &previous)
        .await
        .unwrap();
    let found = client
        .search_available(&AvailableQuery {
            country: "US".to_owned(),
            area_code: Some("415".to_owned()),
            number_type: NumberType::Local,
            limit: 3,
        })
        .await
        .unwrap();
    let Purchase::Completed { number: bought } = client
        .buy_number(&PurchaseRequest {
            e164: found[0].e164.clone(),
            inbound: InboundConfig::Twilio(TwilioVoiceConfig {
                voice_url: Some("https://gw.example/voice".to_owned()),
                voice_method: Some("POST".to_owned()),
                ..TwilioVoiceConfig::default()
            }),
            reference: None,
        })
        .await
        .unwrap()
    else {
        panic!("twilio purchases complete");
    };
    client.purchase_status(&bought.carrier_id).await.unwrap();
    client.release_number(&bought.carrier_id).await.unwrap();
    for instructions in [
        CallTarget::Url {
            url: "https://gw.example/out".to_owned(),
        },
        CallTarget::Markup {
            xml: "<Response/>".to_owned(),
        },
    ] {
        let call = client
            .place_call(&OutboundCall {
                from: e164("+14155550100"),
                to: e164("+15005550006"),
                instructions: instructions.clone(),
                status_callback: Some("https://gw.example/status".to_owned()),
            })
            .await
            .unwrap();
        client.fetch_call(&call.call_id).await.unwrap();
        client
            .redirect_call(&call.call_id, &instructions)
            .await
            .unwrap();
        let recording = client.start_recording(&call.call_id).await.unwrap();
        client
            .stop_recording(&call.call_id, &recording.recording_id)
            .await
            .unwrap();
        client.hangup_call(&call.call_id).await.unwrap();
    }
    client.create_subaccount("org 9").await.unwrap();
}

async fn drive_telnyx(emulator: &telephony_emulator::Emulator) {
    let client = telnyx(emulator);
    client.verify_credentials().await.unwrap();
    let first = client.list_numbers(None).await.unwrap();
    client.list_numbers(first.next.as_ref()).await.unwrap();
    let number = client.fetch_number(&e164("+13125550100")).await.unwrap();
    let previous = client
        .replace_inbound_config(
            &number.carrier_id,
            &InboundConfig::Telnyx(TelnyxVoiceConfig {
                connection_id: Some(TELNYX_OTHER_APP.to_owned()),
            }),
        )
        .await
        .unwrap();
    client
        .replace_inbound_config(&number.carrier_id, &previous)
        .await
        .unwrap();
    let found = client
        .search_available(&AvailableQuery {
            country: "US".to_owned(),
            area_code: Some("312".to_owned()),
            number_type: NumberType::Local,
            limit: 3,
        })
        .await
        .unwrap();
    let purchase = client
        .buy_number(&PurchaseRequest {
            e164: found[0].e164.clone(),
            inbound: InboundConfig::Telnyx(TelnyxVoiceConfig {
                connection_id: Some(TELNYX_APP.to_owned()),
            }),
            reference: Some("gateway-order-1".to_owned()),
        })
        .await
        .unwrap();
    let Purchase::Pending { order_id } = purchase else {
        panic!("the order is pending first");
    };
    // The order is found again by the buyer's reference (a purchase whose answer was lost).
    let again = client
        .find_purchase("gateway-order-1", &found[0].e164)
        .await
        .unwrap();
    match &again {
        Some(Purchase::Pending { order_id: id }) => assert_eq!(id, &order_id),
        Some(Purchase::Completed { number }) => assert_eq!(number.e164, found[0].e164),
        other => panic!("the order is found by its reference: {other:?}"),
    }
    let mut status = client.purchase_status(&order_id).await.unwrap();
    while let Purchase::Pending { .. } = status {
        status = client.purchase_status(&order_id).await.unwrap();
    }
    let Purchase::Completed { number: bought } = status else {
        panic!("the order completes");
    };
    client.release_number(&bought.carrier_id).await.unwrap();
    let call = client
        .place_call(&OutboundCall {
            from: e164("+13125550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/out".to_owned(),
            },
            status_callback: Some("https://gw.example/status".to_owned()),
        })
        .await
        .unwrap();
    client.fetch_call(&call.call_id).await.unwrap();
    client
        .redirect_call(
            &call.call_id,
            &CallTarget::Url {
                url: "https://gw.example/next".to_owned(),
            },
        )
        .await
        .unwrap();
    client
        .redirect_call(
            &call.call_id,
            &CallTarget::Markup {
                xml: "<Response/>".to_owned(),
            },
        )
        .await
        .unwrap();
    let recording = client.start_recording(&call.call_id).await.unwrap();
    client
        .stop_recording(&call.call_id, &recording.recording_id)
        .await
        .unwrap();
    client.hangup_call(&call.call_id).await.unwrap();
}

#[tokio::test]
async fn every_request_the_clients_send_is_in_the_official_specs() {
    let emulator = emulator().await;
    drive_twilio(&emulator).await;
    drive_telnyx(&emulator).await;
    let twilio_spec = load_spec("twilio_api_v2010.json");
    let telnyx_spec = load_spec("telnyx_openapi.json");
    // The Pricing API's spec is not among the shared ones: an excerpt of the official one.
    let pricing_spec: Value = serde_json::from_str(include_str!("twilio_pricing_v1_excerpt.json"))
        .expect("the pricing excerpt is json");

    let mut operations = BTreeSet::new();
    let mut problems = Vec::new();
    for record in emulator.state().requests {
        let checked = match (
            record.path.strip_prefix("/v2"),
            record.path.strip_prefix("/pricing"),
        ) {
            (Some(path), _) => check(&telnyx_spec, &record, path),
            (_, Some(path)) => check(&pricing_spec, &record, path),
            _ => check(&twilio_spec, &record, &record.path),
        };
        match checked {
            Ok(operation) => {
                operations.insert(operation);
            }
            Err(problem) => problems.push(problem),
        }
    }
    assert!(
        problems.is_empty(),
        "requests outside the specs:\n{}",
        problems.join("\n")
    );
    // Both clients' whole surface was exercised, so the check covered every kind of request.
    let expected = [
        "GET /2010-04-01/Accounts/{Sid}.json",
        "POST /2010-04-01/Accounts.json",
        "GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        "POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        "POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
        "DELETE /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
        "GET /2010-04-01/Accounts/{AccountSid}/AvailablePhoneNumbers/{CountryCode}/Local.json",
        "POST /2010-04-01/Accounts/{AccountSid}/Calls.json",
        "POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
        "POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json",
        "POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{Sid}.json",
        "GET /balance",
        "GET /phone_numbers",
        "PATCH /phone_numbers/{id}",
        "DELETE /phone_numbers/{id}",
        "GET /available_phone_numbers",
        "POST /number_orders",
        "GET /number_orders/{number_order_id}",
        "POST /texml/Accounts/{account_sid}/Calls",
        "GET /texml/Accounts/{account_sid}/Calls/{call_sid}",
        "POST /texml/Accounts/{account_sid}/Calls/{call_sid}",
        "POST /calls/{call_control_id}/actions/hangup",
        "POST /calls/{call_control_id}/actions/record_start",
        "POST /calls/{call_control_id}/actions/record_stop",
    ];
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !operations.contains(**e))
        .collect();
    assert!(
        missing.is_empty(),
        "not exercised: {missing:?}\nseen: {operations:#?}"
    );
}
