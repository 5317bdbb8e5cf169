//! The Telnyx client: every operation against the emulated Telnyx API.

use telephony_carrier::{
    AvailableQuery, CallTarget, Carrier, CarrierError, InboundConfig, NumberType, OutboundCall,
    Purchase, PurchaseRequest, TelnyxClient, TelnyxCredentials, TelnyxVoiceConfig,
};
use telephony_vault::SecretString;

use super::support::*;

fn connection(id: &str) -> InboundConfig {
    InboundConfig::Telnyx(TelnyxVoiceConfig {
        connection_id: Some(id.to_owned()),
    })
}

#[tokio::test]
async fn the_credential_check_is_one_read_only_call() {
    let emulator = emulator().await;
    let account = telnyx(&emulator).verify_credentials().await.unwrap();
    assert_eq!(account.account_id, TELNYX_ACCOUNT);
    let sent = emulator.state().requests;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("GET", "/v2/balance")
    );
}

#[tokio::test]
async fn a_wrong_key_is_invalid_credentials() {
    let emulator = emulator().await;
    let client =
        TelnyxClient::new(&telnyx_config(&emulator), telnyx_credentials("KEYWRONG")).unwrap();
    let error = client.verify_credentials().await.unwrap_err();
    assert!(
        matches!(error, CarrierError::InvalidCredentials),
        "{error:?}"
    );
    assert_eq!(emulator.state().requests.len(), 1, "never retried");
}

#[tokio::test]
async fn listing_walks_every_page_by_page_number() {
    let emulator = emulator().await;
    let client = telnyx(&emulator);
    let mut numbers = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = client.list_numbers(cursor.as_ref()).await.unwrap();
        pages += 1;
        numbers.extend(page.numbers.into_iter().map(|n| n.e164.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(
        pages, 3,
        "five numbers, two a page, and no extra empty page"
    );
    numbers.sort();
    assert_eq!(numbers.len(), 5);
    assert_eq!(numbers[0], "+13125550100");
    assert_eq!(numbers[4], "+13125550104");
}

#[tokio::test]
async fn a_number_is_fetched_with_its_connection() {
    let emulator = emulator().await;
    let number = telnyx(&emulator)
        .fetch_number(&e164("+13125550100"))
        .await
        .unwrap();
    assert_eq!(number.carrier_id, "1293384261075731001");
    assert_eq!(number.inbound, connection(TELNYX_APP));
    assert_eq!(number.friendly_name.as_deref(), Some("front desk"));
    assert!(number.capabilities.voice);
}

#[tokio::test]
async fn a_number_not_in_the_account_is_not_found() {
    let emulator = emulator().await;
    let error = telnyx(&emulator)
        .fetch_number(&e164("+13125559999"))
        .await
        .unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn replacing_the_connection_returns_the_previous_one() {
    let emulator = emulator().await;
    let client = telnyx(&emulator);
    let previous = client
        .replace_inbound_config("1293384261075731001", &connection(TELNYX_OTHER_APP))
        .await
        .unwrap();
    assert_eq!(previous, connection(TELNYX_APP));
    let now = client.fetch_number(&e164("+13125550100")).await.unwrap();
    assert_eq!(now.inbound, connection(TELNYX_OTHER_APP));

    // A number without a connection is restored to none.
    let none = InboundConfig::Telnyx(TelnyxVoiceConfig::default());
    let previous = client
        .replace_inbound_config("1293384261075731002", &connection(TELNYX_APP))
        .await
        .unwrap();
    assert_eq!(previous, none);
    client
        .replace_inbound_config("1293384261075731002", &previous)
        .await
        .unwrap();
    let restored = client.fetch_number(&e164("+13125550101")).await.unwrap();
    assert_eq!(restored.inbound, none);
}

#[tokio::test]
async fn an_unknown_number_id_is_not_found_on_update() {
    let emulator = emulator().await;
    let error = telnyx(&emulator)
        .replace_inbound_config("999", &connection(TELNYX_APP))
        .await
        .unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn an_order_stays_pending_until_telnyx_completes_it() {
    let emulator = emulator().await;
    let client = telnyx(&emulator);
    let found = client
        .search_available(&AvailableQuery {
            country: "US".to_owned(),
            area_code: Some("312".to_owned()),
            number_type: NumberType::Local,
            limit: 10,
        })
        .await
        .unwrap();
    let numbers: Vec<_> = found.iter().map(|n| n.e164.to_string()).collect();
    assert_eq!(numbers, ["+13125550190"]);
    assert!(found[0].capabilities.voice);

    let purchase = client
        .buy_number(&PurchaseRequest {
            e164: found[0].e164.clone(),
            inbound: connection(TELNYX_APP),
            reference: None,
        })
        .await
        .unwrap();
    let Purchase::Pending { order_id } = purchase else {
        panic!("the seeded order stays pending once: {purchase:?}");
    };
    let mut status = client.purchase_status(&order_id).await.unwrap();
    for _ in 0..3 {
        if !matches!(status, Purchase::Pending { .. }) {
            break;
        }
        status = client.purchase_status(&order_id).await.unwrap();
    }
    let Purchase::Completed { number } = status else {
        panic!("the order completes: {status:?}");
    };
    assert_eq!(number.e164, found[0].e164);
    assert_eq!(number.inbound, connection(TELNYX_APP));

    client.release_number(&number.carrier_id).await.unwrap();
    let error = client.fetch_number(&number.e164).await.unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let emulator = emulator().await;
    let error = telnyx(&emulator)
        .purchase_status("5a1b3c4d-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn a_texml_call_is_placed_redirected_recorded_and_hung_up() {
    let emulator = emulator().await;
    let client = telnyx(&emulator);
    let call = client
        .place_call(&OutboundCall {
            from: e164("+13125550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/outbound".to_owned(),
            },
            status_callback: Some("https://gw.example/status".to_owned()),
        })
        .await
        .unwrap();
    assert!(!call.call_id.is_empty());

    let live = client.fetch_call(&call.call_id).await.unwrap();
    assert_eq!(live.status, "in-progress");
    assert_eq!(live.to, "+15005550006");

    client
        .redirect_call(
            &call.call_id,
            &CallTarget::Markup {
                xml: "<Response><Hangup/></Response>".to_owned(),
            },
        )
        .await
        .unwrap();
    let stored = emulator
        .state()
        .calls
        .into_iter()
        .find(|c| c.id == call.call_id)
        .unwrap();
    assert_eq!(
        stored.twiml.as_deref(),
        Some("<Response><Hangup/></Response>")
    );

    let recording = client.start_recording(&call.call_id).await.unwrap();
    assert_eq!(recording.recording_id, call.call_id);
    assert_eq!(emulator.state().recordings.len(), 1);
    client
        .stop_recording(&call.call_id, &recording.recording_id)
        .await
        .unwrap();
    assert!(
        emulator
            .state()
            .recordings
            .iter()
            .all(|r| r.status == "stopped")
    );

    client.hangup_call(&call.call_id).await.unwrap();
    assert!(client.fetch_call(&call.call_id).await.unwrap().is_over());
    let error = client.hangup_call(&call.call_id).await.unwrap_err();
    assert!(
        matches!(&error, CarrierError::Rejected { status: 422, code, .. } if code == "90018"),
        "{error:?}"
    );
}

#[tokio::test]
async fn calling_from_a_number_without_a_connection_is_not_voice_capable() {
    let emulator = emulator().await;
    let error = telnyx(&emulator)
        .place_call(&OutboundCall {
            from: e164("+13125550101"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/outbound".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, CarrierError::NotVoiceCapable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn texml_calls_need_the_account_sid_and_nothing_is_sent_without_it() {
    let emulator = emulator().await;
    let client = TelnyxClient::new(
        &telnyx_config(&emulator),
        TelnyxCredentials::new(SecretString::new(TELNYX_KEY)),
    )
    .unwrap();
    let error = client.fetch_call("v3:abc").await.unwrap_err();
    assert!(matches!(error, CarrierError::Unsupported(_)), "{error:?}");
    let error = client
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
    assert!(matches!(error, CarrierError::Unsupported(_)), "{error:?}");
    assert!(emulator.state().requests.is_empty());
    // Everything else works with the key alone.
    assert_eq!(client.verify_credentials().await.unwrap().account_id, "");
}
