//! The Twilio client: every operation against the emulated Twilio API.

use telephony_carrier::{
    AvailableQuery, CallTarget, Carrier, CarrierError, InboundConfig, NumberType, OutboundCall,
    Purchase, PurchaseRequest, TwilioAuth, TwilioCredentials, TwilioVoiceConfig,
};
use telephony_vault::SecretString;

use super::support::*;

#[tokio::test]
async fn an_auth_token_verifies_and_names_the_account() {
    let emulator = emulator().await;
    let account = twilio(&emulator).verify_credentials().await.unwrap();
    assert_eq!(account.account_id, TWILIO_SID);
    assert_eq!(account.friendly_name.as_deref(), Some("Acme Voice"));
    assert!(account.active);
}

#[tokio::test]
async fn an_api_key_verifies_without_the_auth_token() {
    let emulator = emulator().await;
    let client = twilio_with(
        &emulator,
        TwilioCredentials {
            account_sid: TWILIO_SID.to_owned(),
            auth: TwilioAuth::ApiKey {
                key_sid: TWILIO_KEY_SID.to_owned(),
                secret: SecretString::new(TWILIO_KEY_SECRET),
            },
        },
    );
    let account = client.verify_credentials().await.unwrap();
    assert_eq!(account.account_id, TWILIO_SID);
    let numbers = client.list_numbers(None).await.unwrap();
    assert_eq!(numbers.numbers.len(), 2);
}

#[tokio::test]
async fn a_wrong_token_is_invalid_credentials_and_is_not_retried() {
    let emulator = emulator().await;
    let client = twilio_with(&emulator, twilio_token("wrong-token"));
    let error = client.verify_credentials().await.unwrap_err();
    assert!(
        matches!(error, CarrierError::InvalidCredentials),
        "{error:?}"
    );
    assert_eq!(requests(&emulator, "/Accounts/").len(), 1);
}

#[tokio::test]
async fn listing_walks_every_page_by_next_page_uri() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
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
    assert_eq!(pages, 3);
    numbers.sort();
    assert_eq!(
        numbers,
        [
            "+14155550100",
            "+14155550101",
            "+14155550102",
            "+14155550103",
            "+14155550104"
        ]
    );
}

#[tokio::test]
async fn a_number_is_fetched_with_its_capabilities_and_voice_settings() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
    let number = client.fetch_number(&e164("+14155550100")).await.unwrap();
    assert!(number.carrier_id.starts_with("PN"));
    assert!(number.capabilities.voice && number.capabilities.sms);
    let InboundConfig::Twilio(voice) = number.inbound else {
        panic!("a twilio number has a twilio configuration");
    };
    assert_eq!(
        voice.voice_url.as_deref(),
        Some("https://old.example/voice")
    );
    assert_eq!(voice.voice_method.as_deref(), Some("GET"));
    assert_eq!(
        voice.status_callback.as_deref(),
        Some("https://old.example/status")
    );
    assert_eq!(voice.voice_application_sid, None);

    // A number that cannot take calls is still fetched: the caller decides what to do with it.
    let sms_only = client.fetch_number(&e164("+14155550102")).await.unwrap();
    assert!(!sms_only.capabilities.voice);
}

#[tokio::test]
async fn a_number_not_in_the_account_is_not_found() {
    let emulator = emulator().await;
    let error = twilio(&emulator)
        .fetch_number(&e164("+19995550100"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::NotFound { what } if what.contains("+19995550100")),
        "{error:?}"
    );
}

#[tokio::test]
async fn replacing_the_voice_url_returns_the_previous_one_and_restoring_puts_it_back() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
    let number = client.fetch_number(&e164("+14155550100")).await.unwrap();
    let gateway = InboundConfig::Twilio(TwilioVoiceConfig {
        voice_url: Some("https://gw.example/webhooks/twilio/voice".to_owned()),
        voice_method: Some("POST".to_owned()),
        ..TwilioVoiceConfig::default()
    });
    let previous = client
        .replace_inbound_config(&number.carrier_id, &gateway)
        .await
        .unwrap();
    assert_eq!(previous, number.inbound);
    let now = client.fetch_number(&number.e164).await.unwrap();
    // Every URL not given is cleared; methods not given fall back to Twilio's default, POST.
    let expected = InboundConfig::Twilio(TwilioVoiceConfig {
        voice_url: Some("https://gw.example/webhooks/twilio/voice".to_owned()),
        voice_method: Some("POST".to_owned()),
        voice_fallback_method: Some("POST".to_owned()),
        status_callback_method: Some("POST".to_owned()),
        ..TwilioVoiceConfig::default()
    });
    assert_eq!(now.inbound, expected);

    let back = client
        .replace_inbound_config(&number.carrier_id, &previous)
        .await
        .unwrap();
    assert_eq!(back, expected);
    let restored = client.fetch_number(&number.e164).await.unwrap();
    assert_eq!(restored.inbound, number.inbound);
}

#[tokio::test]
async fn a_telnyx_configuration_is_refused_before_anything_is_sent() {
    let emulator = emulator().await;
    let error = twilio(&emulator)
        .replace_inbound_config(
            "PN00000000000000000000000000000000",
            &InboundConfig::Telnyx(Default::default()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CarrierError::Unsupported(_)), "{error:?}");
    assert!(emulator.state().requests.is_empty());
}

#[tokio::test]
async fn a_number_is_searched_bought_and_released() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
    let found = client
        .search_available(&AvailableQuery {
            country: "us".to_owned(),
            area_code: Some("415".to_owned()),
            number_type: NumberType::Local,
            limit: 5,
        })
        .await
        .unwrap();
    let numbers: Vec<_> = found.iter().map(|n| n.e164.to_string()).collect();
    assert_eq!(numbers, ["+14155550190"]);
    assert_eq!(found[0].country, "US");
    assert!(found[0].capabilities.voice);

    let inbound = InboundConfig::Twilio(TwilioVoiceConfig {
        voice_url: Some("https://gw.example/voice".to_owned()),
        ..TwilioVoiceConfig::default()
    });
    let purchase = client
        .buy_number(&PurchaseRequest {
            e164: found[0].e164.clone(),
            inbound: inbound.clone(),
            reference: None,
        })
        .await
        .unwrap();
    let Purchase::Completed { number } = purchase else {
        panic!("twilio purchases complete at once: {purchase:?}");
    };
    assert_eq!(number.e164, found[0].e164);
    let InboundConfig::Twilio(voice) = &number.inbound else {
        panic!("twilio configuration");
    };
    assert_eq!(voice.voice_url.as_deref(), Some("https://gw.example/voice"));

    let status = client.purchase_status(&number.carrier_id).await.unwrap();
    assert_eq!(
        status,
        Purchase::Completed {
            number: number.clone()
        }
    );

    client.release_number(&number.carrier_id).await.unwrap();
    let error = client.fetch_number(&number.e164).await.unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn buying_a_number_no_longer_for_sale_is_rejected_with_twilios_code() {
    let emulator = emulator().await;
    let error = twilio(&emulator)
        .buy_number(&PurchaseRequest {
            e164: e164("+14155550999"),
            inbound: InboundConfig::Twilio(TwilioVoiceConfig::default()),
            reference: None,
        })
        .await
        .unwrap_err();
    match error {
        CarrierError::Rejected { status, code, .. } => {
            assert_eq!(status, 400);
            assert_eq!(code, "21422");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_call_is_placed_redirected_recorded_and_hung_up() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
    let call = client
        .place_call(&OutboundCall {
            from: e164("+14155550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/outbound".to_owned(),
            },
            status_callback: Some("https://gw.example/status".to_owned()),
        })
        .await
        .unwrap();
    assert!(call.call_id.starts_with("CA"));
    assert_eq!(call.status, "queued");

    let live = client.fetch_call(&call.call_id).await.unwrap();
    assert_eq!(live.status, "in-progress");
    assert_eq!(live.from, "+14155550100");
    assert!(!live.is_over());

    client
        .redirect_call(
            &call.call_id,
            &CallTarget::Markup {
                xml: "<Response><Say>Transferring</Say></Response>".to_owned(),
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
        Some("<Response><Say>Transferring</Say></Response>")
    );

    let recording = client.start_recording(&call.call_id).await.unwrap();
    assert!(recording.recording_id.starts_with("RE"));
    assert_eq!(recording.status, "in-progress");
    client
        .stop_recording(&call.call_id, &recording.recording_id)
        .await
        .unwrap();

    client.hangup_call(&call.call_id).await.unwrap();
    let over = client.fetch_call(&call.call_id).await.unwrap();
    assert!(over.is_over(), "{over:?}");

    let error = client
        .redirect_call(
            &call.call_id,
            &CallTarget::Url {
                url: "https://gw.example/late".to_owned(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::Rejected { code, .. } if code == "21220"),
        "{error:?}"
    );
}

#[tokio::test]
async fn calling_from_a_number_the_account_cannot_call_from_is_not_voice_capable() {
    let emulator = emulator().await;
    let error = twilio(&emulator)
        .place_call(&OutboundCall {
            from: e164("+19995550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Markup {
                xml: "<Response/>".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::NotVoiceCapable { number } if number == "+19995550100"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_call_is_not_found() {
    let emulator = emulator().await;
    let error = twilio(&emulator)
        .fetch_call("CA00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn a_subaccount_is_created_and_its_token_works() {
    let emulator = emulator().await;
    let (account, token) = twilio(&emulator)
        .create_subaccount("Org 42 managed numbers")
        .await
        .unwrap();
    assert!(account.account_id.starts_with("AC"));
    assert_ne!(account.account_id, TWILIO_SID);
    assert_eq!(
        account.friendly_name.as_deref(),
        Some("Org 42 managed numbers")
    );
    assert!(!format!("{token:?}").contains(token.expose()));

    let sub = twilio_with(
        &emulator,
        TwilioCredentials {
            account_sid: account.account_id.clone(),
            auth: TwilioAuth::AuthToken(token),
        },
    );
    assert_eq!(sub.verify_credentials().await.unwrap(), account);
}

#[tokio::test]
async fn a_search_shows_the_monthly_cost_from_the_pricing_api() {
    let emulator = emulator().await;
    let client = twilio(&emulator);
    let query = AvailableQuery {
        country: "US".to_owned(),
        area_code: Some("415".to_owned()),
        number_type: NumberType::Local,
        limit: 5,
    };
    let found = client.search_available(&query).await.unwrap();
    assert_eq!(found[0].monthly_cost.as_deref(), Some("1.15"));
    assert_eq!(found[0].currency.as_deref(), Some("USD"));
    let pricing = emulator
        .state()
        .requests
        .into_iter()
        .filter(|r| r.path == "/pricing/v1/PhoneNumbers/Countries/US" && r.method == "GET")
        .count();
    assert_eq!(pricing, 1, "one read of the country's prices");

    // Without the Pricing API the numbers are still listed, without a cost.
    emulator.add_fault(telephony_emulator::Fault {
        method: Some("GET".into()),
        path: "/pricing/v1/PhoneNumbers/Countries/US".into(),
        status: Some(500),
        delay_ms: 0,
        drop_connection: false,
        times: None,
    });
    let found = client.search_available(&query).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].monthly_cost, None);
    assert_eq!(found[0].currency, None);
}
