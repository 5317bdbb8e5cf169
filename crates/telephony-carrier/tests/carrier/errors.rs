//! Error classes and retries, with faults injected into the emulator: what is retried, how
//! often, how long it waits, and that no secret ever reaches an error or a debug print.

use std::time::{Duration, Instant};

use telephony_carrier::{
    CallTarget, Carrier, CarrierError, InboundConfig, OutboundCall, PurchaseRequest,
    TwilioVoiceConfig,
};

use super::support::*;

const TWILIO_NUMBERS: &str = "/2010-04-01/Accounts/*/IncomingPhoneNumbers.json";

fn assert_no_secret(text: &str) {
    for secret in [TWILIO_TOKEN, TWILIO_KEY_SECRET, TELNYX_KEY] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

#[tokio::test]
async fn an_idempotent_read_is_retried_until_it_succeeds() {
    let emulator = emulator().await;
    let mut unavailable = fault("GET", TWILIO_NUMBERS);
    unavailable.status = Some(503);
    unavailable.times = Some(2);
    emulator.add_fault(unavailable);

    let page = twilio(&emulator).list_numbers(None).await.unwrap();
    assert_eq!(page.numbers.len(), 2);
    let sent = requests(&emulator, "IncomingPhoneNumbers.json");
    let statuses: Vec<_> = sent.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
}

#[tokio::test]
async fn retries_stop_at_the_maximum_attempts() {
    let emulator = emulator().await;
    let mut unavailable = fault("GET", "/v2/phone_numbers");
    unavailable.status = Some(502);
    emulator.add_fault(unavailable);

    let error = telnyx(&emulator).list_numbers(None).await.unwrap_err();
    assert!(
        matches!(error, CarrierError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(requests(&emulator, "/v2/phone_numbers").len(), 3);
}

#[tokio::test]
async fn a_purchase_that_failed_is_never_sent_twice() {
    let emulator = emulator().await;
    let mut unavailable = fault("POST", TWILIO_NUMBERS);
    unavailable.status = Some(500);
    unavailable.times = Some(1);
    emulator.add_fault(unavailable);

    let error = twilio(&emulator)
        .buy_number(&PurchaseRequest {
            e164: e164("+14155550190"),
            inbound: InboundConfig::Twilio(TwilioVoiceConfig::default()),
            reference: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, CarrierError::Unavailable { .. }),
        "{error:?}"
    );
    let posts: Vec<_> = requests(&emulator, "IncomingPhoneNumbers.json")
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
}

#[tokio::test]
async fn a_call_that_timed_out_is_not_placed_again() {
    let emulator = emulator().await;
    let mut slow = fault("POST", "/2010-04-01/Accounts/*/Calls.json");
    slow.delay_ms = 1_500;
    slow.times = Some(1);
    emulator.add_fault(slow);

    let started = Instant::now();
    let error = twilio(&emulator)
        .place_call(&OutboundCall {
            from: e164("+14155550100"),
            to: e164("+15005550006"),
            instructions: CallTarget::Url {
                url: "https://gw.example/outbound".to_owned(),
            },
            status_callback: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CarrierError::Unavailable { reason } if reason.contains("timed out")),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "the request timeout applies"
    );

    // Whether the carrier acted is unknown after a timeout: the client must not try again,
    // now or later.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let sent = requests(&emulator, "Calls.json");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, None, "the client gave up before the answer");
}

#[tokio::test]
async fn a_read_that_timed_out_is_retried() {
    let emulator = emulator().await;
    let mut slow = fault("GET", "/v2/balance");
    slow.delay_ms = 1_500;
    slow.times = Some(1);
    emulator.add_fault(slow);

    telnyx(&emulator).verify_credentials().await.unwrap();
    assert_eq!(requests(&emulator, "/v2/balance").len(), 2);
}

#[tokio::test]
async fn a_dropped_connection_is_unavailable_and_retried_when_safe() {
    let emulator = emulator().await;
    let mut dropped = fault("GET", "/2010-04-01/Accounts/*.json");
    dropped.drop_connection = true;
    dropped.times = Some(1);
    emulator.add_fault(dropped);
    twilio(&emulator).verify_credentials().await.unwrap();

    let mut dropped = fault("POST", "/2010-04-01/Accounts.json");
    dropped.drop_connection = true;
    emulator.add_fault(dropped);
    let error = twilio(&emulator)
        .create_subaccount("org 7")
        .await
        .unwrap_err();
    assert!(
        matches!(error, CarrierError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(requests(&emulator, "/2010-04-01/Accounts.json").len(), 1);
}

#[tokio::test]
async fn a_rate_limited_read_waits_for_retry_after_then_succeeds() {
    let emulator = emulator().await;
    let mut limited = fault("GET", "/v2/phone_numbers/*");
    limited.status = Some(429);
    limited.times = Some(1);
    emulator.add_fault(limited);

    let started = Instant::now();
    let client = telnyx(&emulator);
    let previous = client
        .replace_inbound_config(
            "1293384261075731001",
            &InboundConfig::Telnyx(Default::default()),
        )
        .await
        .unwrap();
    assert!(matches!(previous, InboundConfig::Telnyx(_)));
    // The emulator answers `Retry-After: 1`; the backoff alone would be at most 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let statuses: Vec<_> = requests(&emulator, "/v2/phone_numbers/")
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("GET".to_owned(), Some(429)),
            ("GET".to_owned(), Some(200)),
            ("PATCH".to_owned(), Some(200))
        ]
    );
}

#[tokio::test]
async fn a_rate_limited_create_reports_the_wait_without_retrying() {
    let emulator = emulator().await;
    let mut limited = fault("POST", "/2010-04-01/Accounts/*/Calls/*/Recordings.json");
    limited.status = Some(429);
    emulator.add_fault(limited);

    let error = twilio(&emulator)
        .start_recording("CA00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(error, CarrierError::RateLimited { retry_after: Some(wait) } if wait == Duration::from_secs(1)),
        "{error:?}"
    );
    assert_eq!(requests(&emulator, "Recordings.json").len(), 1);
}

#[tokio::test]
async fn a_rejected_request_keeps_the_carriers_code_and_is_not_retried() {
    let emulator = emulator().await;
    let mut rejected = fault("PATCH", "/v2/phone_numbers/*");
    rejected.status = Some(422);
    emulator.add_fault(rejected);

    let error = telnyx(&emulator)
        .replace_inbound_config(
            "1293384261075731001",
            &InboundConfig::Telnyx(Default::default()),
        )
        .await
        .unwrap_err();
    match &error {
        CarrierError::Rejected {
            status,
            code,
            message,
        } => {
            assert_eq!(*status, 422);
            assert_eq!(code, "10015");
            assert!(!message.is_empty());
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!error.is_retryable());
    let patches = requests(&emulator, "/v2/phone_numbers/")
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 1);
}

#[tokio::test]
async fn an_injected_401_and_404_map_to_their_classes() {
    let emulator = emulator().await;
    let mut unauthorized = fault("GET", "/2010-04-01/Accounts/*.json");
    unauthorized.status = Some(401);
    unauthorized.times = Some(1);
    emulator.add_fault(unauthorized);
    let error = twilio(&emulator).verify_credentials().await.unwrap_err();
    assert!(
        matches!(error, CarrierError::InvalidCredentials),
        "{error:?}"
    );

    let mut missing = fault("GET", "/v2/balance");
    missing.status = Some(404);
    missing.times = Some(1);
    emulator.add_fault(missing);
    let error = telnyx(&emulator).verify_credentials().await.unwrap_err();
    assert!(matches!(error, CarrierError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn no_error_or_debug_print_shows_a_secret() {
    let emulator = emulator().await;
    let mut errors = Vec::new();
    errors.push(
        twilio_with(&emulator, twilio_token("wrong"))
            .verify_credentials()
            .await
            .unwrap_err(),
    );
    let mut dropped = fault("*", "*");
    dropped.drop_connection = true;
    emulator.add_fault(dropped);
    errors.push(twilio(&emulator).verify_credentials().await.unwrap_err());
    errors.push(telnyx(&emulator).verify_credentials().await.unwrap_err());
    emulator.clear_faults();
    let mut failing = fault("*", "*");
    failing.status = Some(500);
    emulator.add_fault(failing);
    errors.push(twilio(&emulator).list_numbers(None).await.unwrap_err());
    errors.push(telnyx(&emulator).list_numbers(None).await.unwrap_err());

    for error in &errors {
        assert_no_secret(&format!("{error} {error:?}"));
    }
    assert_no_secret(&format!("{:?} {:?}", twilio(&emulator), telnyx(&emulator)));
    assert_no_secret(&format!("{:?}", clients(&emulator)));
}

#[tokio::test]
async fn a_carrier_that_refuses_connections_is_unavailable() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = telephony_carrier::TelnyxConfig {
        base_url: format!("http://127.0.0.1:{port}/v2").parse().unwrap(),
        timeouts: timeouts(),
        retry: retry(),
        page_size: 10,
    };
    let client =
        telephony_carrier::TelnyxClient::new(&config, telnyx_credentials(TELNYX_KEY)).unwrap();
    let error = client.verify_credentials().await.unwrap_err();
    assert!(
        matches!(&error, CarrierError::Unavailable { reason } if reason.contains("connect")),
        "{error:?}"
    );
    assert_eq!(error.blame(), telephony_carrier::Blame::Carrier);
}
