//! Webhooks the emulator sends as the carriers would: inbound calls and status callbacks, with
//! signatures checked here independently of the emulator's own signing code.

use base64::Engine as _;
use ring::{hmac, signature};
use serde_json::json;
use telephony_emulator::{Carrier, InboundCall, SpecChecker, twilio_signature};

use crate::support::*;

/// Twilio's scheme, written out again: HMAC-SHA1 over the URL and the sorted name/value pairs.
fn independent_twilio_signature(
    token: &str,
    url: &str,
    mut params: Vec<(String, String)>,
) -> String {
    params.sort();
    let data: String = std::iter::once(url.to_string())
        .chain(params.into_iter().map(|(k, v)| k + &v))
        .collect();
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, data.as_bytes()))
}

fn verify_telnyx(captured: &Captured, public_key_b64: &str) {
    let timestamp = captured
        .header("telnyx-timestamp")
        .expect("timestamp header");
    let sig = captured
        .header("telnyx-signature-ed25519")
        .expect("signature header");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .expect("base64 signature");
    let key = base64::engine::general_purpose::STANDARD
        .decode(public_key_b64)
        .expect("base64 key");
    let message = format!("{timestamp}|{}", captured.body);
    signature::UnparsedPublicKey::new(&signature::ED25519, key)
        .verify(message.as_bytes(), &sig)
        .expect("ed25519 signature verifies");
}

#[test]
fn twilio_signing_matches_the_published_vector_t1() {
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    assert_eq!(
        twilio_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}

#[tokio::test]
async fn a_twilio_inbound_call_posts_a_signed_webhook_and_returns_its_answer() {
    let receiver = Receiver::start().await;
    let voice = receiver.url("/webhooks/twilio/voice?tenant=1");
    let status = receiver.url("/webhooks/twilio/status");
    let emulator = start(seed(Some(&voice), Some(&status))).await;
    let api = Api::new(&emulator);

    let answer = api
        .control("POST", "/_emulator/twilio/inbound", Some(json!({"to": "+14155550100", "from": "+15551230000", "forwarded_from": "+15559990000"})))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], 200);
    assert_eq!(answer.json["content_type"], "text/xml");
    assert_eq!(answer.json["body"], TWIML);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let hook = &requests[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.url, voice);
    assert!(
        hook.header("i-twilio-idempotency-token")
            .is_some_and(|t| !t.is_empty())
    );
    let want = independent_twilio_signature(TW_TOKEN, &hook.url, hook.form());
    assert_eq!(hook.header("x-twilio-signature"), Some(want.as_str()));
    let call_sid = hook.param("CallSid").expect("CallSid");
    for (name, value) in [
        ("AccountSid", TW_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("To", "+14155550100"),
        ("Called", "+14155550100"),
        ("From", "+15551230000"),
        ("Caller", "+15551230000"),
        ("ForwardedFrom", "+15559990000"),
    ] {
        assert_eq!(hook.param(name).as_deref(), Some(value), "{name}");
    }
    let call = emulator
        .state()
        .calls
        .into_iter()
        .find(|c| c.id == call_sid)
        .expect("call stored");
    assert_eq!(call.status, "in-progress");

    let ended = api
        .control("POST", &format!("/_emulator/calls/{call_sid}/end"), None)
        .await;
    assert_eq!(ended.status, 200);
    assert_eq!(ended.json["status_callback"]["status"], 200);
    let requests = receiver.requests();
    let callback = &requests[1];
    assert_eq!(callback.url, status);
    assert_eq!(callback.param("CallStatus").as_deref(), Some("completed"));
    assert!(
        callback
            .param("CallDuration")
            .is_some_and(|d| d.parse::<u64>().is_ok())
    );
    let want = independent_twilio_signature(TW_TOKEN, &callback.url, callback.form());
    assert_eq!(callback.header("x-twilio-signature"), Some(want.as_str()));
    emulator.shutdown().await;
}

#[tokio::test]
async fn hanging_up_over_rest_sends_the_status_callback() {
    let receiver = Receiver::start().await;
    let emulator = start(seed(
        Some(&receiver.url("/voice")),
        Some(&receiver.url("/status")),
    ))
    .await;
    let api = Api::new(&emulator);
    let delivery = emulator
        .twilio_inbound(InboundCall {
            to: "+14155550100".into(),
            from: "+15551230000".into(),
            forwarded_from: None,
        })
        .await
        .expect("inbound call placed");
    assert_eq!(delivery.status, Some(200));
    let hung_up = api
        .twilio_post(
            &twilio_path(TW_SID, &format!("/Calls/{}.json", delivery.call_id)),
            TW_SID,
            TW_TOKEN,
            &[("Status", "completed")],
        )
        .await;
    assert_eq!(hung_up.status, 200);
    let requests = receiver.wait_for(2).await;
    assert_eq!(requests[1].url, receiver.url("/status"));
    assert_eq!(
        requests[1].param("CallStatus").as_deref(),
        Some("completed")
    );
    assert_eq!(requests[1].param("ForwardedFrom"), None, "not forwarded");
    emulator.shutdown().await;
}

#[tokio::test]
async fn inbound_calls_to_unknown_or_unconfigured_numbers_are_refused() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let unknown = api
        .control(
            "POST",
            "/_emulator/twilio/inbound",
            Some(json!({"to": "+19990000000", "from": "+15551230000"})),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let no_url = api
        .control(
            "POST",
            "/_emulator/twilio/inbound",
            Some(json!({"to": "+14155550101", "from": "+15551230000"})),
        )
        .await;
    assert_eq!(no_url.status, 409);
    let mut trunked = seed(Some("http://127.0.0.1:9/voice"), None);
    trunked.twilio.accounts[0].numbers[0].trunk_sid =
        Some("TK11111111111111111111111111111111".into());
    let trunked = start(trunked).await;
    let error = trunked
        .twilio_inbound(InboundCall {
            to: "+14155550100".into(),
            from: "+15551230000".into(),
            forwarded_from: None,
        })
        .await
        .expect_err("a trunk takes the call");
    assert!(
        matches!(error, telephony_emulator::EmulatorError::RoutedElsewhere(_)),
        "{error}"
    );
    trunked.shutdown().await;
    let no_app = api
        .control(
            "POST",
            "/_emulator/telnyx/inbound",
            Some(json!({"to": "+13125550101", "from": "+15551230000"})),
        )
        .await;
    assert_eq!(no_app.status, 409);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_telnyx_inbound_call_posts_an_ed25519_signed_texml_webhook() {
    let receiver = Receiver::start().await;
    let voice = receiver.url("/webhooks/telnyx/voice");
    let status = receiver.url("/webhooks/telnyx/status");
    let emulator = start(seed(Some(&voice), Some(&status))).await;
    let api = Api::new(&emulator);
    let public_key = emulator.state().telnyx_accounts[0].public_key.clone();
    assert_eq!(
        public_key, TX_PUBLIC_KEY,
        "the published key pair of SIGNATURE_VECTORS.md 2.2"
    );

    let answer = api
        .control(
            "POST",
            "/_emulator/telnyx/inbound",
            Some(json!({"to": "+13125550100", "from": "+15551230000"})),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["body"], TWIML);
    let requests = receiver.requests();
    let hook = &requests[0];
    assert_eq!(hook.url, voice);
    verify_telnyx(hook, &public_key);
    for (name, value) in [
        ("AccountSid", TX_SID),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("To", "+13125550100"),
        ("From", "+15551230000"),
        ("ConnectionId", TX_APP_ID),
    ] {
        assert_eq!(hook.param(name).as_deref(), Some(value), "{name}");
    }
    let call_id = hook.param("CallSid").expect("CallSid");
    assert!(call_id.starts_with("v3:"));

    let ended = emulator
        .end_call(&call_id)
        .await
        .expect("call exists")
        .expect("a status callback");
    assert_eq!(ended.status, Some(200));
    let callback = &receiver.requests()[1];
    assert_eq!(callback.url, status);
    assert_eq!(callback.param("CallStatus").as_deref(), Some("completed"));
    verify_telnyx(callback, &public_key);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_get_voice_webhook_carries_the_parameters_in_the_signed_url() {
    let receiver = Receiver::start().await;
    let mut seed = seed(Some(&receiver.url("/voice")), None);
    seed.twilio.accounts[0].numbers[0].voice_method = "GET".into();
    let emulator = start(seed).await;
    let delivery = emulator
        .twilio_inbound(InboundCall {
            to: "+14155550100".into(),
            from: "+15551230000".into(),
            forwarded_from: None,
        })
        .await
        .expect("inbound call placed");
    assert_eq!(delivery.status, Some(200));
    let hook = &receiver.requests()[0];
    assert_eq!(hook.method, "GET");
    assert!(hook.url.contains("CallStatus=ringing"), "{}", hook.url);
    let want = independent_twilio_signature(TW_TOKEN, &hook.url, Vec::new());
    assert_eq!(hook.header("x-twilio-signature"), Some(want.as_str()));
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_outbound_call_fetches_its_url_signed_once_answered() {
    let receiver = Receiver::start().await;
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let twiml_url = receiver.url("/twiml/outbound");
    let created = api
        .twilio_post(
            &twilio_path(TW_SID, "/Calls.json"),
            TW_SID,
            TW_TOKEN,
            &[
                ("To", "+15550001111"),
                ("From", "+14155550100"),
                ("Url", &twiml_url),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    let requests = receiver.wait_for(1).await;
    let fetch = &requests[0];
    assert_eq!(fetch.url, twiml_url);
    assert_eq!(
        fetch.param("CallSid").as_deref(),
        created.json["sid"].as_str()
    );
    assert_eq!(fetch.param("CallStatus").as_deref(), Some("in-progress"));
    assert_eq!(fetch.param("Direction").as_deref(), Some("outbound-api"));
    let want = independent_twilio_signature(TW_TOKEN, &fetch.url, fetch.form());
    assert_eq!(fetch.header("x-twilio-signature"), Some(want.as_str()));

    let texml_url = receiver.url("/texml/outbound");
    let texml = api
        .telnyx(
            "POST",
            &format!("/v2/texml/Accounts/{TX_SID}/Calls"),
            TX_KEY,
            Some(json!({"ApplicationSid": TX_APP_ID, "To": "+15550001111", "From": "+13125550100", "Url": texml_url})),
        )
        .await;
    assert_eq!(texml.status, 200);
    let requests = receiver.wait_for(2).await;
    assert_eq!(requests[1].url, texml_url);
    verify_telnyx(&requests[1], TX_PUBLIC_KEY);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_call_control_call_reports_json_events_to_its_webhook_url() {
    let specs = SpecChecker::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs"),
    )
    .expect("specs load");
    let receiver = Receiver::start().await;
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let events_url = receiver.url("/webhooks/telnyx/events");
    let dialed = api
        .telnyx(
            "POST",
            "/v2/calls",
            TX_KEY,
            Some(json!({"connection_id": TX_APP_ID, "to": "+15550001111", "from": "+13125550100", "webhook_url": events_url})),
        )
        .await;
    assert_eq!(dialed.status, 200);
    let id = dialed.json["data"]["call_control_id"]
        .as_str()
        .expect("id")
        .to_string();
    receiver.wait_for(2).await;
    let hangup = api
        .telnyx(
            "POST",
            &format!("/v2/calls/{id}/actions/hangup"),
            TX_KEY,
            Some(json!({})),
        )
        .await;
    assert_eq!(hangup.status, 200);
    let requests = receiver.wait_for(3).await;
    let mut kinds = Vec::new();
    for request in &requests {
        assert_eq!(request.url, events_url);
        assert_eq!(request.header("content-type"), Some("application/json"));
        verify_telnyx(request, TX_PUBLIC_KEY);
        let event: serde_json::Value = serde_json::from_str(&request.body).expect("json event");
        assert_eq!(event["data"]["record_type"], "event");
        assert_eq!(event["data"]["payload"]["call_control_id"], id.as_str());
        assert_eq!(event["meta"]["delivered_to"], events_url.as_str());
        let kind = event["data"]["event_type"]
            .as_str()
            .expect("event type")
            .to_string();
        let component = match kind.as_str() {
            "call.initiated" => "CallInitiated",
            "call.answered" => "CallAnswered",
            _ => "CallHangup",
        };
        let mut problems = specs.check_component(Carrier::Telnyx, component, &event["data"]);
        problems.extend(specs.check_component(
            Carrier::Telnyx,
            "CallbackWebhookMeta",
            &event["meta"],
        ));
        assert!(problems.is_empty(), "{kind}: {problems:?}");
        kinds.push(kind);
    }
    assert_eq!(kinds, ["call.initiated", "call.answered", "call.hangup"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_voice_url_falls_back_to_the_fallback_url() {
    let receiver = Receiver::start().await;
    let mut seed = seed(Some("http://127.0.0.1:9/down"), None);
    seed.twilio.accounts[0].numbers[0].voice_fallback_url = Some(receiver.url("/fallback"));
    let emulator = start(seed).await;
    let delivery = emulator
        .twilio_inbound(InboundCall {
            to: "+14155550100".into(),
            from: "+15551230000".into(),
            forwarded_from: None,
        })
        .await
        .expect("inbound call placed");
    assert_eq!(delivery.status, Some(200));
    assert_eq!(delivery.url, receiver.url("/fallback"));
    let log = emulator.state().webhooks;
    let kinds: Vec<(&str, Option<u16>)> = log.iter().map(|w| (w.kind.as_str(), w.status)).collect();
    assert_eq!(kinds, [("voice", None), ("voice_fallback", Some(200))]);
    let hook = &receiver.requests()[0];
    let want = independent_twilio_signature(TW_TOKEN, &hook.url, hook.form());
    assert_eq!(hook.header("x-twilio-signature"), Some(want.as_str()));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_call_placed_to_an_owned_number_rings_its_voice_url() {
    let receiver = Receiver::start().await;
    let voice_url = receiver.url("/voice");
    let emulator = start(seed(Some(&voice_url), None)).await;
    let api = Api::new(&emulator);
    let answer_url = receiver.url("/answer");
    // From the number to itself, as a gateway's test call does.
    let created = api
        .twilio_post(
            &twilio_path(TW_SID, "/Calls.json"),
            TW_SID,
            TW_TOKEN,
            &[
                ("To", "+14155550100"),
                ("From", "+14155550100"),
                ("Url", &answer_url),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    let mut requests = receiver.wait_for(2).await;
    requests.sort_by(|a, b| a.url.cmp(&b.url));
    let (answer, inbound) = (&requests[0], &requests[1]);
    assert_eq!(answer.url, answer_url);
    assert_eq!(inbound.url, voice_url);
    assert_eq!(inbound.param("Direction").as_deref(), Some("inbound"));
    assert_eq!(inbound.param("To").as_deref(), Some("+14155550100"));
    assert_eq!(inbound.param("From").as_deref(), Some("+14155550100"));
    assert_ne!(
        inbound.param("CallSid"),
        answer.param("CallSid"),
        "two legs"
    );
    let want = independent_twilio_signature(TW_TOKEN, &inbound.url, inbound.form());
    assert_eq!(inbound.header("x-twilio-signature"), Some(want.as_str()));

    // A call to a number the emulator does not hold rings nothing.
    api.twilio_post(
        &twilio_path(TW_SID, "/Calls.json"),
        TW_SID,
        TW_TOKEN,
        &[
            ("To", "+15550001111"),
            ("From", "+14155550100"),
            ("Url", &answer_url),
        ],
    )
    .await;
    let requests = receiver.wait_for(3).await;
    assert_eq!(requests[2].url, answer_url);
    assert_eq!(
        emulator
            .state()
            .webhooks
            .iter()
            .filter(|w| w.kind == "voice")
            .count(),
        1
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_pricing_api_gives_the_monthly_price_of_numbers_for_sale() {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    let prices = api
        .twilio_get("/pricing/v1/PhoneNumbers/Countries/US", TW_SID, TW_TOKEN)
        .await;
    assert_eq!(prices.status, 200, "{}", prices.json);
    assert_eq!(prices.json["iso_country"], "US");
    assert_eq!(prices.json["price_unit"], "USD");
    let local = prices.json["phone_number_prices"]
        .as_array()
        .expect("prices")
        .iter()
        .find(|p| p["number_type"] == "local")
        .expect("local price");
    assert_eq!(local["current_price"], 1.15);
    assert_eq!(local["base_price"], 1.15);
    let unknown = api
        .twilio_get("/pricing/v1/PhoneNumbers/Countries/ZZ", TW_SID, TW_TOKEN)
        .await;
    assert_eq!(unknown.status, 404);
    let refused = api
        .twilio_get("/pricing/v1/PhoneNumbers/Countries/US", TW_SID, "wrong")
        .await;
    assert_eq!(refused.status, 401);
    emulator.shutdown().await;
}
