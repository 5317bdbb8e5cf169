//! Regression tests of the security review of this crate, one (or a few) per finding, each
//! named after the bug it pins down.

use std::sync::Arc;

use telephony_carrier::{
    CallTarget, Carrier, CarrierCredentials, CarrierError, InboundConfig, OutboundCall, Purchase,
    PurchaseRequest, TelnyxConfig, TelnyxVoiceConfig, TwilioConfig, TwilioCredentials,
    TwilioVoiceConfig,
};
use telephony_emulator::Emulator;

use super::support::*;

fn telnyx_request(number: &str) -> PurchaseRequest {
    PurchaseRequest {
        e164: e164(number),
        inbound: InboundConfig::Telnyx(TelnyxVoiceConfig {
            connection_id: Some(TELNYX_APP.to_owned()),
        }),
        reference: None,
    }
}

fn twilio_request(number: &str) -> PurchaseRequest {
    PurchaseRequest {
        e164: e164(number),
        inbound: InboundConfig::Twilio(TwilioVoiceConfig {
            voice_url: Some("https://gw.example/voice".to_owned()),
            ..TwilioVoiceConfig::default()
        }),
        reference: None,
    }
}

fn posts(emulator: &Emulator, needle: &str) -> usize {
    requests(emulator, needle)
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

/// A 2xx answer that carries no resource: the emulator answers the injected status with its
/// error body, so the client gets a success status with nothing it can use.
fn garbled_success(method: &str, path: &str) -> telephony_emulator::Fault {
    let mut garbled = fault(method, path);
    garbled.status = Some(200);
    garbled.times = Some(1);
    garbled
}

// Finding 1: a successful Telnyx order whose follow-up read of the number failed was reported
// as a retryable error, inviting a second purchase of a number already billed.
#[tokio::test]
async fn telnyx_purchase_whose_follow_up_fetch_fails_is_pending_not_a_retryable_error() {
    let emulator = emulator_with(|seed| {
        // Orders succeed at once, so `buy_number` reads the number right after ordering it.
        seed.telnyx.number_orders.pending_polls = 0;
        seed.telnyx.number_orders.pending_seconds = 0;
    })
    .await;
    let mut unavailable = fault("GET", "/v2/phone_numbers");
    unavailable.status = Some(503);
    emulator.add_fault(unavailable);

    let client = telnyx(&emulator);
    let purchase = client
        .buy_number(&telnyx_request("+13125550190"))
        .await
        .expect("a bought number is never an error");
    let Purchase::Pending { order_id } = purchase else {
        panic!("expected a pending purchase, got {purchase:?}");
    };
    assert_eq!(posts(&emulator, "/v2/number_orders"), 1);
    assert_eq!(
        requests(&emulator, "/v2/phone_numbers").len(),
        3,
        "the follow-up read was retried as a read"
    );

    // Once Telnyx answers again, the order's status finishes the purchase.
    emulator.clear_faults();
    let status = client.purchase_status(&order_id).await.unwrap();
    let Purchase::Completed { number } = status else {
        panic!("the order completes: {status:?}");
    };
    assert_eq!(number.e164, e164("+13125550190"));
    assert_eq!(
        posts(&emulator, "/v2/number_orders"),
        1,
        "never ordered twice"
    );
}

#[tokio::test]
async fn telnyx_purchase_status_whose_number_read_fails_stays_pending() {
    let emulator = emulator().await;
    let client = telnyx(&emulator);
    let Purchase::Pending { order_id } = client
        .buy_number(&telnyx_request("+13125550190"))
        .await
        .unwrap()
    else {
        panic!("the seeded order is pending once");
    };
    let mut unavailable = fault("GET", "/v2/phone_numbers");
    unavailable.status = Some(500);
    emulator.add_fault(unavailable);
    // The seed keeps the order pending for one poll; the next one succeeds and then reads the
    // number, which fails.
    let mut status = client.purchase_status(&order_id).await.unwrap();
    if matches!(status, Purchase::Pending { .. }) {
        status = client.purchase_status(&order_id).await.unwrap();
    }
    assert_eq!(
        status,
        Purchase::Pending {
            order_id: order_id.clone()
        }
    );
    assert!(!requests(&emulator, "/v2/phone_numbers").is_empty());
}

#[tokio::test]
async fn telnyx_purchase_with_an_unreadable_order_answer_says_it_may_have_bought() {
    let emulator = emulator().await;
    emulator.add_fault(garbled_success("POST", "/v2/number_orders"));
    let error = telnyx(&emulator)
        .buy_number(&telnyx_request("+13125550190"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::Protocol(m) if m.contains("may have been bought")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(posts(&emulator, "/v2/number_orders"), 1);
}

// Finding 2: a Twilio purchase answered 2xx with a body the client could not read was lost.
#[tokio::test]
async fn twilio_purchase_with_an_unreadable_answer_is_not_retryable_and_says_it_may_have_bought() {
    let emulator = emulator().await;
    emulator.add_fault(garbled_success(
        "POST",
        "/2010-04-01/Accounts/*/IncomingPhoneNumbers.json",
    ));
    let error = twilio(&emulator)
        .buy_number(&twilio_request("+14155550190"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::Protocol(m) if m.contains("may have been bought") && m.contains("+14155550190")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(posts(&emulator, "IncomingPhoneNumbers.json"), 1);
}

// Finding 3: a call placed with a 2xx answer that named no call became a plain protocol error.
#[tokio::test]
async fn a_placed_call_whose_answer_names_no_call_says_it_may_have_been_placed() {
    let emulator = emulator().await;
    emulator.add_fault(garbled_success("POST", "/2010-04-01/Accounts/*/Calls.json"));
    emulator.add_fault(garbled_success("POST", "/v2/texml/Accounts/*/Calls"));

    let twilio_error = twilio(&emulator)
        .place_call(&OutboundCall {
            from: e164("+14155550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Markup {
                xml: "<Response/>".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap_err();
    let telnyx_error = telnyx(&emulator)
        .place_call(&OutboundCall {
            from: e164("+13125550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/outbound".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap_err();
    for error in [twilio_error, telnyx_error] {
        assert!(
            matches!(&error, CarrierError::Protocol(m) if m.contains("may have been placed")),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }
    assert_eq!(posts(&emulator, "Calls.json"), 1);
    assert_eq!(posts(&emulator, "/Calls"), 2);
}

/// Every operation that puts a caller's id in the URL, with `id` in each place.
async fn with_id(carrier: &dyn Carrier, id: &str) -> Vec<(&'static str, CarrierError)> {
    let target = CallTarget::Url {
        url: "https://gw.example/next".to_owned(),
    };
    let inbound = match carrier.provider() {
        telephony_carrier::Provider::Twilio => InboundConfig::Twilio(TwilioVoiceConfig::default()),
        telephony_carrier::Provider::Telnyx => InboundConfig::Telnyx(TelnyxVoiceConfig::default()),
    };
    let results = vec![
        ("fetch_call", carrier.fetch_call(id).await.map(drop)),
        (
            "redirect_call",
            carrier.redirect_call(id, &target).await.map(drop),
        ),
        ("hangup_call", carrier.hangup_call(id).await.map(drop)),
        (
            "start_recording",
            carrier.start_recording(id).await.map(drop),
        ),
        (
            "stop_recording(call)",
            carrier.stop_recording(id, "RE1").await.map(drop),
        ),
        (
            "replace_inbound_config",
            carrier.replace_inbound_config(id, &inbound).await.map(drop),
        ),
        ("release_number", carrier.release_number(id).await.map(drop)),
        (
            "purchase_status",
            carrier.purchase_status(id).await.map(drop),
        ),
    ];
    let mut errors = Vec::new();
    for (operation, result) in results {
        match result {
            Err(error) => errors.push((operation, error)),
            Ok(()) => panic!("{operation}({id:?}) succeeded"),
        }
    }
    if carrier.provider() == telephony_carrier::Provider::Twilio {
        // Telnyx sends the recording id in the body, not the path.
        let result = carrier.stop_recording("CA1", id).await;
        errors.push(("stop_recording(recording)", result.unwrap_err()));
    }
    errors
}

// Finding 4: ids of "", "." or ".." addressed another resource, because the url crate skips
// such segments (`stop_recording("..", id)` updated `/Calls/Recordings/{id}.json`).
#[tokio::test]
async fn ids_that_the_url_would_skip_or_split_are_refused_before_anything_is_sent() {
    let emulator = emulator().await;
    let clients = clients(&emulator);
    let carriers: Vec<Arc<dyn Carrier>> = vec![
        clients.client(CarrierCredentials::Twilio(twilio_token(TWILIO_TOKEN))),
        clients.client(CarrierCredentials::Telnyx(telnyx_credentials(TELNYX_KEY))),
    ];
    let long = "x".repeat(500) + "/";
    for carrier in &carriers {
        for id in [
            "", ".", "..", "a/b", "../x", "a\\b", "a?b", "a#b", "a%2e", "a b", "a\nb", "a\u{7}b",
            &long,
        ] {
            for (operation, error) in with_id(carrier.as_ref(), id).await {
                assert!(
                    matches!(&error, CarrierError::NotFound { what } if what.contains("not a valid id") && what.len() < 200 && !what.contains('\n')),
                    "{} {operation}({id:?}): {error:?}",
                    carrier.provider()
                );
                assert!(!error.is_retryable());
            }
        }
    }
    assert!(
        emulator.state().requests.is_empty(),
        "nothing is sent for an invalid id: {:?}",
        emulator.state().requests
    );
}

#[tokio::test]
async fn an_account_sid_that_is_not_one_path_segment_is_refused_before_anything_is_sent() {
    let emulator = emulator().await;
    for sid in ["", "..", "AC1/../AC2"] {
        let client = twilio_with(
            &emulator,
            TwilioCredentials {
                account_sid: sid.to_owned(),
                ..twilio_token(TWILIO_TOKEN)
            },
        );
        let error = client.verify_credentials().await.unwrap_err();
        assert!(
            matches!(error, CarrierError::InvalidCredentials),
            "{error:?}"
        );
        let error = client.list_numbers(None).await.unwrap_err();
        assert!(
            matches!(error, CarrierError::InvalidCredentials),
            "{error:?}"
        );

        let mut credentials = telnyx_credentials(TELNYX_KEY);
        credentials.account_sid = Some(sid.to_owned());
        let client =
            telephony_carrier::TelnyxClient::new(&telnyx_config(&emulator), credentials).unwrap();
        let error = client.fetch_call("v3:1").await.unwrap_err();
        assert!(
            matches!(error, CarrierError::InvalidCredentials),
            "{error:?}"
        );
    }
    assert!(emulator.state().requests.is_empty());
}

// Finding 5: a base URL with user info was printed by `Debug` and turned into an
// `Authorization` header by reqwest; plain http sent credentials in clear text to any host.
#[test]
fn a_base_url_with_user_info_a_query_or_plain_http_to_a_remote_host_is_refused() {
    let refused = [
        "https://user:base-url-password@api.example.com/",
        "https://user@api.example.com/",
        "https://api.example.com/?token=base-url-password",
        "https://api.example.com/#base-url-password",
        "http://api.example.com/",
        "http://10.0.0.1:4010/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost.example.com/",
    ];
    for base in refused {
        let url: url::Url = base.parse().unwrap();
        let twilio = TwilioConfig {
            base_url: Some(url.clone()),
            ..TwilioConfig::default()
        };
        let telnyx = TelnyxConfig {
            base_url: url,
            ..TelnyxConfig::default()
        };
        let errors = [
            twilio.api_base().unwrap_err(),
            telnyx.check().unwrap_err(),
            telephony_carrier::CarrierClients::new(twilio.clone(), TelnyxConfig::default())
                .unwrap_err(),
            telephony_carrier::CarrierClients::new(TwilioConfig::default(), telnyx.clone())
                .unwrap_err(),
        ];
        for error in errors {
            assert!(
                matches!(error, CarrierError::InvalidConfig(_)),
                "{base}: {error:?}"
            );
            assert!(!format!("{error} {error:?}").contains("base-url-password"));
        }
        for debug in [format!("{twilio:?}"), format!("{telnyx:?}")] {
            assert!(!debug.contains("base-url-password"), "{debug}");
            assert!(!debug.contains("user"), "{debug}");
        }
    }

    let accepted = [
        "https://api.example.com/",
        "https://api.example.com:8443/prefix/",
        "http://127.0.0.1:4010/",
        "http://127.1.2.3/",
        "http://localhost:4010/v2",
        "http://LOCALHOST/",
        "http://[::1]:4010/",
    ];
    for base in accepted {
        let url: url::Url = base.parse().unwrap();
        let twilio = TwilioConfig {
            base_url: Some(url.clone()),
            ..TwilioConfig::default()
        };
        let telnyx = TelnyxConfig {
            base_url: url,
            ..TelnyxConfig::default()
        };
        assert!(twilio.api_base().is_ok(), "{base}");
        assert!(telnyx.check().is_ok(), "{base}");
    }
}

async fn placed_call(emulator: &Emulator) -> String {
    twilio(emulator)
        .place_call(&OutboundCall {
            from: e164("+14155550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Markup {
                xml: "<Response><Pause length=\"60\"/></Response>".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap()
        .call_id
}

fn call_updates(emulator: &Emulator, call_id: &str) -> Vec<Option<u16>> {
    requests(emulator, &format!("/Calls/{call_id}.json"))
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect()
}

// Finding 6: a retried Twilio hang-up whose first attempt ended the call (but whose answer was
// lost) got Twilio's "call is not in progress" refusal and reported a failure.
#[tokio::test]
async fn a_retried_twilio_hangup_that_finds_the_call_already_completed_succeeds() {
    let emulator = emulator().await;
    let call_id = placed_call(&emulator).await;
    // The first attempt's fate is unknown to the client (a 5xx); by the time the retry arrives
    // the call is over, as if that first attempt had ended it.
    let mut unavailable = fault(
        "POST",
        &format!("/2010-04-01/Accounts/*/Calls/{call_id}.json"),
    );
    unavailable.status = Some(503);
    unavailable.times = Some(1);
    emulator.add_fault(unavailable);
    emulator.end_call(&call_id).await.unwrap();

    twilio(&emulator).hangup_call(&call_id).await.unwrap();
    assert_eq!(call_updates(&emulator, &call_id), [Some(503), Some(400)]);
}

#[tokio::test]
async fn a_first_twilio_hangup_of_a_completed_call_is_still_rejected() {
    let emulator = emulator().await;
    let call_id = placed_call(&emulator).await;
    emulator.end_call(&call_id).await.unwrap();

    let error = twilio(&emulator).hangup_call(&call_id).await.unwrap_err();
    assert!(
        matches!(&error, CarrierError::Rejected { code, .. } if code == "21220"),
        "{error:?}"
    );
    assert_eq!(call_updates(&emulator, &call_id), [Some(400)]);
}

#[tokio::test]
async fn a_twilio_hangup_retried_after_a_429_of_a_completed_call_is_still_rejected() {
    let emulator = emulator().await;
    let call_id = placed_call(&emulator).await;
    // A 429 means Twilio did not act on the first attempt: the call ended by itself.
    let mut limited = fault(
        "POST",
        &format!("/2010-04-01/Accounts/*/Calls/{call_id}.json"),
    );
    limited.status = Some(429);
    limited.times = Some(1);
    emulator.add_fault(limited);
    emulator.end_call(&call_id).await.unwrap();

    let error = twilio(&emulator).hangup_call(&call_id).await.unwrap_err();
    assert!(
        matches!(&error, CarrierError::Rejected { code, .. } if code == "21220"),
        "{error:?}"
    );
    assert_eq!(call_updates(&emulator, &call_id), [Some(429), Some(400)]);
}
