//! Test calls of a number: recorded before anything is placed, placed with the connection that
//! owns the number (a failure is kept with its code, no other account tried), recognised once
//! by the webhook side, and kept within the organization.

use std::time::Duration;

use telephony_registry::{RegistryError, TestCallState, WebhookMode};

use crate::harness::TWILIO_SID;
use crate::{db_test, done, import, twilio_org};

db_test!(a_test_call_is_placed_reached_once_and_reported, |env| {
    let registry = &env.registry;
    let (org, conn) = twilio_org(registry, "Acme").await;
    let number = done(
        registry
            .import_number(&org, import(&conn, "+14155550101", WebhookMode::Managed))
            .await
            .expect("import"),
    );
    let test = registry
        .start_test_call(&org, &number.id, true, Duration::from_millis(7))
        .await
        .expect("start");
    assert_eq!(test.state, TestCallState::Placing);
    assert_eq!(test.checks_ms, Some(7));
    let placed = registry
        .place_test_call(&org, &test.id, "https://gw.example.com/answer")
        .await
        .expect("placed");
    assert_eq!(placed.state, TestCallState::Placed);
    let call = env
        .emulator
        .state()
        .calls
        .into_iter()
        .find(|c| Some(&c.id) == placed.carrier_call_id.as_ref())
        .expect("the carrier has the call");
    assert_eq!(call.account_sid, TWILIO_SID);
    assert_eq!(
        (call.from.as_str(), call.to.as_str()),
        ("+14155550101", "+14155550101")
    );

    // The webhook side finds it by number, records it once.
    let pending = registry
        .pending_test_call("+14155550101")
        .await
        .expect("lookup")
        .expect("pending");
    assert_eq!(pending.id, test.id);
    assert!(
        registry
            .pending_test_call("+14155550100")
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        registry
            .record_test_call_reached(&test.id, Some("agent-1"), "agent", Duration::from_millis(2))
            .await
            .expect("reached")
    );
    assert!(
        !registry
            .record_test_call_reached(&test.id, None, "no_agent", Duration::ZERO)
            .await
            .expect("again"),
        "a retried webhook changes nothing"
    );
    let report = registry.test_call(&org, &test.id).await.expect("report");
    assert_eq!(report.state, TestCallState::Reached);
    assert_eq!(report.agent_id.as_deref(), Some("agent-1"));
    assert_eq!(report.route.as_deref(), Some("agent"));
    assert_eq!(report.route_ms, Some(2));
    assert!(report.reach_ms.is_some() && report.place_ms.is_some());

    // Another organization sees nothing.
    let other = registry.create_organization("Other").await.expect("org").id;
    assert!(matches!(
        registry.test_call(&other, &test.id).await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        registry
            .start_test_call(&other, &number.id, true, Duration::ZERO)
            .await,
        Err(RegistryError::NotFound(_))
    ));
});

db_test!(
    a_test_call_that_is_not_ready_or_fails_at_the_carrier_says_why,
    |env| {
        let registry = &env.registry;
        let (org, conn) = twilio_org(registry, "Acme").await;
        let number = done(
            registry
                .import_number(&org, import(&conn, "+14155550101", WebhookMode::Managed))
                .await
                .expect("import"),
        );
        let not_ready = registry
            .start_test_call(&org, &number.id, false, Duration::from_millis(3))
            .await
            .expect("start");
        assert_eq!(not_ready.state, TestCallState::NotReady);
        assert_eq!(not_ready.error.as_deref(), Some("number_not_ready"));
        assert!(matches!(
            registry
                .place_test_call(&org, &not_ready.id, "https://gw.example.com/answer")
                .await,
            Err(RegistryError::Conflict(_))
        ));

        env.fault(
            "POST",
            &format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"),
            503,
            1,
        );
        let test = registry
            .start_test_call(&org, &number.id, true, Duration::ZERO)
            .await
            .expect("start");
        let error = registry
            .place_test_call(&org, &test.id, "https://gw.example.com/answer")
            .await
            .expect_err("the carrier fails");
        assert!(
            matches!(error, RegistryError::CarrierUnavailable(_)),
            "{error:?}"
        );
        let report = registry.test_call(&org, &test.id).await.expect("report");
        assert_eq!(report.state, TestCallState::Failed);
        assert_eq!(report.error.as_deref(), Some("carrier_unavailable"));
        assert!(
            env.emulator.state().calls.is_empty(),
            "nothing placed anywhere"
        );
        assert!(
            registry
                .pending_test_call("+14155550101")
                .await
                .expect("lookup")
                .is_none(),
            "a failed test is not pending"
        );
    }
);

db_test!(a_second_test_call_waits_for_the_first, |env| {
    let registry = &env.registry;
    let (org, conn) = twilio_org(registry, "Acme").await;
    let number = done(
        registry
            .import_number(&org, import(&conn, "+14155550101", WebhookMode::Managed))
            .await
            .expect("import"),
    );
    let first = registry
        .start_test_call(&org, &number.id, true, Duration::from_millis(1))
        .await
        .expect("start");
    // While the first is being placed or placed, a second could not be told apart from it.
    let error = registry
        .start_test_call(&org, &number.id, true, Duration::from_millis(1))
        .await
        .expect_err("a second test at once");
    assert!(matches!(error, RegistryError::Conflict(_)), "{error:?}");
    registry
        .place_test_call(&org, &first.id, "https://gw.example.com/answer")
        .await
        .expect("placed");
    assert!(
        registry
            .start_test_call(&org, &number.id, true, Duration::from_millis(1))
            .await
            .is_err(),
        "still running once placed"
    );
    // Once reached, the number can be tested again.
    assert!(
        registry
            .record_test_call_reached(&first.id, None, "no_agent", Duration::from_millis(1))
            .await
            .expect("reached")
    );
    let second = registry
        .start_test_call(&org, &number.id, true, Duration::from_millis(1))
        .await
        .expect("a new test once the first is over");
    assert_ne!(second.id, first.id);
});
