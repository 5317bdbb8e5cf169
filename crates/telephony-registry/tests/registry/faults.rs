//! No half-done state: faults at every step of import, mode switch, removal and disconnection,
//! after which the carrier account and the database agree (at once, or after recovery).

use std::time::Duration;

use telephony_registry::{NumberStatus, Registry, WebhookMode};

use crate::harness::*;
use crate::{customer_voice_url, db_test, done, gateway_voice_url, import, twilio_org};

const UPDATE: &str = "/2010-04-01/Accounts/*/IncomingPhoneNumbers/PN*";
const LOOKUP: &str = "*IncomingPhoneNumbers.json";
const NUMBER: &str = "+14155550100";

/// The carrier and the database agree about `NUMBER`: imported and managed exactly when the
/// carrier points it at the gateway, and nothing is left in flight.
async fn assert_agree(env: &Env, registry: &Registry, org: &str) {
    assert_eq!(
        registry.pending_operations().await.expect("ops"),
        0,
        "operations left"
    );
    let numbers = registry.list_numbers(org).await.expect("list");
    let at_carrier = env.twilio_number(NUMBER).voice_url;
    match numbers.iter().find(|n| n.e164 == NUMBER) {
        Some(number) => {
            assert_eq!(number.status, NumberStatus::Active);
            match number.webhook_mode {
                WebhookMode::Managed => assert_eq!(at_carrier, gateway_voice_url()),
                WebhookMode::OutboundOnly => assert_eq!(at_carrier, customer_voice_url()),
            }
        }
        None => assert_eq!(at_carrier, customer_voice_url()),
    }
}

db_test!(import_with_the_lookup_failing_leaves_nothing, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    env.fault("GET", LOOKUP, 503, 1);
    let error = env
        .registry
        .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_unavailable");
    assert!(
        env.registry
            .list_numbers(&org)
            .await
            .expect("list")
            .is_empty()
    );
    assert_agree(&env, &env.registry, &org).await;
});

db_test!(import_with_the_change_refused_is_undone, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    env.fault("POST", UPDATE, 500, 1);
    let error = env
        .registry
        .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_unavailable");
    assert!(
        env.registry
            .list_numbers(&org)
            .await
            .expect("list")
            .is_empty()
    );
    assert_agree(&env, &env.registry, &org).await;
    let audit = env.registry.audit_log(&org, 5).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "replace_inbound_config" && e.outcome == "error: unavailable")
    );
    // The number can be imported once the carrier is back.
    env.registry
        .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
        .await
        .expect("import");
    assert_agree(&env, &env.registry, &org).await;
});

db_test!(import_rate_limited_says_so, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    env.fault("GET", LOOKUP, 429, 1);
    let error = env
        .registry
        .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_rate_limited");
    assert_agree(&env, &env.registry, &org).await;
});

db_test!(
    import_interrupted_after_the_carrier_change_is_rolled_back_on_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.interrupt_after_change(Box::pin(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed)),
        ))
        .await;
        // The carrier changed, the database holds the intent and an importing row.
        assert_eq!(env.twilio_number(NUMBER).voice_url, gateway_voice_url());
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 1);
        assert!(
            env.registry
                .number_by_e164(NUMBER)
                .await
                .expect("lookup")
                .is_none()
        );
        let error = env
            .registry
            .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "number_already_imported");

        let restarted = env.reopen().await;
        let report = restarted
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(
            (report.rolled_back, report.completed, report.still_pending),
            (1, 0, 0)
        );
        assert!(restarted.list_numbers(&org).await.expect("list").is_empty());
        assert_agree(&env, &restarted, &org).await;
    }
);

db_test!(
    import_whose_database_write_fails_after_the_carrier_change_is_recovered,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.factory.arm(AfterChange::CloseDatabase(env.db.clone()));
        let error = env
            .registry
            .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "internal_error");
        assert_eq!(env.twilio_number(NUMBER).voice_url, gateway_voice_url());

        let restarted = env.reopen().await;
        let report = restarted
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.rolled_back, 1);
        assert_agree(&env, &restarted, &org).await;
    }
);

db_test!(
    recovery_waits_while_the_carrier_is_down_and_finishes_later,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.interrupt_after_change(Box::pin(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed)),
        ))
        .await;
        env.fault("GET", LOOKUP, 503, 1);
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.still_pending, 1);
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 1);
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.rolled_back, 1);
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(
    switching_to_managed_with_the_change_refused_leaves_it_outbound_only,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        env.fault("POST", UPDATE, 500, 1);
        let error = env
            .registry
            .set_webhook_mode(&org, &number.id, WebhookMode::Managed, false)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "carrier_unavailable");
        assert_eq!(
            env.registry
                .number(&org, &number.id)
                .await
                .expect("n")
                .webhook_mode,
            WebhookMode::OutboundOnly
        );
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(
    switching_to_managed_interrupted_is_undone_on_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        env.interrupt_after_change(Box::pin(env.registry.set_webhook_mode(
            &org,
            &number.id,
            WebhookMode::Managed,
            false,
        )))
        .await;
        assert_eq!(env.twilio_number(NUMBER).voice_url, gateway_voice_url());
        let report = env
            .reopen()
            .await
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.rolled_back, 1);
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(
    switching_back_with_the_restore_failing_is_finished_by_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        env.fault("POST", UPDATE, 503, 1);
        let error = env
            .registry
            .set_webhook_mode(&org, &number.id, WebhookMode::OutboundOnly, false)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "carrier_unavailable");
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert_eq!(
            env.registry
                .number(&org, &number.id)
                .await
                .expect("n")
                .webhook_mode,
            WebhookMode::OutboundOnly
        );
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(switching_back_refused_for_good_stays_managed, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = done(
        env.registry
            .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
            .await
            .expect("import"),
    );
    env.fault("POST", UPDATE, 400, 1);
    let error = env
        .registry
        .set_webhook_mode(&org, &number.id, WebhookMode::OutboundOnly, false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_rejected");
    assert_agree(&env, &env.registry, &org).await;
});

db_test!(
    removing_with_the_restore_failing_is_finished_by_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        env.fault("POST", UPDATE, 500, 1);
        let error = env
            .registry
            .remove_number(&org, &number.id)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "carrier_unavailable");
        assert_eq!(
            env.registry
                .number(&org, &number.id)
                .await
                .expect("n")
                .status,
            NumberStatus::Removing
        );
        let report = env
            .reopen()
            .await
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert!(
            env.registry
                .list_numbers(&org)
                .await
                .expect("list")
                .is_empty()
        );
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(
    removing_interrupted_after_the_restore_is_finished_by_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        env.interrupt_after_change(Box::pin(env.registry.remove_number(&org, &number.id)))
            .await;
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 1);
        let report = env
            .reopen()
            .await
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert!(
            env.registry
                .list_numbers(&org)
                .await
                .expect("list")
                .is_empty()
        );
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(removing_with_the_lookup_refused_keeps_the_number, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = done(
        env.registry
            .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
            .await
            .expect("import"),
    );
    env.fault("GET", LOOKUP, 400, 1);
    let error = env
        .registry
        .remove_number(&org, &number.id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_rejected");
    assert_eq!(
        env.registry
            .number(&org, &number.id)
            .await
            .expect("n")
            .status,
        NumberStatus::Active
    );
    assert_agree(&env, &env.registry, &org).await;
});

db_test!(
    disconnecting_with_a_failure_midway_finishes_on_retry,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        for e164 in [NUMBER, "+14155550101"] {
            env.registry
                .import_number(&org, import(&conn, e164, WebhookMode::Managed))
                .await
                .expect("import");
        }
        // The second number's restore fails: the first is removed, the connection stays.
        let second = env
            .registry
            .list_numbers(&org)
            .await
            .expect("list")
            .into_iter()
            .find(|n| n.e164 == "+14155550101")
            .expect("second");
        env.fault(
            "POST",
            &format!("*/IncomingPhoneNumbers/{}.json", second.carrier_id),
            500,
            1,
        );
        let error = env
            .registry
            .disconnect_carrier(&org, &conn.id, true)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "carrier_unavailable");
        let left = env.registry.list_numbers(&org).await.expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].status, NumberStatus::Removing);
        assert_eq!(
            env.registry
                .list_connections(&org)
                .await
                .expect("list")
                .len(),
            1
        );
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());

        let recovered = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(recovered.completed, 1);
        let report = env
            .registry
            .disconnect_carrier(&org, &conn.id, true)
            .await
            .expect("retry");
        assert!(report.deleted);
        assert_eq!(report.numbers, 0);
        assert!(
            env.registry
                .list_connections(&org)
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(env.twilio_number("+14155550101").voice_url, None);
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 0);
    }
);

db_test!(
    recovery_leaves_a_young_operation_to_the_instance_running_it,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.interrupt_after_change(Box::pin(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed)),
        ))
        .await;
        let mut config = env.registry.config().clone();
        config.stale_operation_after = Duration::from_secs(3600);
        let patient = Registry::new(
            env.db.clone(),
            env.keyring.clone(),
            env.factory.clone(),
            config,
        );
        let report = patient.recover_pending_operations().await.expect("recover");
        assert_eq!(report, telephony_registry::RecoveryReport::default());
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 1);
        // Once it is stale, it is resolved.
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.rolled_back, 1);
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(a_telnyx_import_whose_change_fails_is_undone, |env| {
    let org = env.registry.create_organization("Acme").await.expect("org");
    let conn = env
        .registry
        .connect_carrier(&org.id, crate::telnyx_connection())
        .await
        .expect("telnyx");
    env.fault("PATCH", "/v2/phone_numbers/*", 500, 1);
    let error = env
        .registry
        .import_number(&org.id, import(&conn, "+13125550100", WebhookMode::Managed))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "carrier_unavailable");
    assert!(
        env.registry
            .list_numbers(&org.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(env.registry.pending_operations().await.expect("ops"), 0);
    assert_eq!(
        env.telnyx_number("+13125550100").connection_id.as_deref(),
        Some(TELNYX_OTHER_CONN)
    );

    // Interrupted after the change: recovery puts the customer's connection back.
    env.interrupt_after_change(Box::pin(
        env.registry
            .import_number(&org.id, import(&conn, "+13125550100", WebhookMode::Managed)),
    ))
    .await;
    assert_eq!(
        env.telnyx_number("+13125550100").connection_id.as_deref(),
        Some(TELNYX_APP)
    );
    let report = env
        .reopen()
        .await
        .recover_pending_operations()
        .await
        .expect("recover");
    assert_eq!(report.rolled_back, 1);
    assert_eq!(
        env.telnyx_number("+13125550100").connection_id.as_deref(),
        Some(TELNYX_OTHER_CONN)
    );
    assert!(
        env.registry
            .list_numbers(&org.id)
            .await
            .expect("list")
            .is_empty()
    );
});

db_test!(
    removing_whose_database_write_fails_after_the_restore_is_finished_by_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        env.factory.arm(AfterChange::CloseDatabase(env.db.clone()));
        let error = env
            .registry
            .remove_number(&org, &number.id)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "internal_error");
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());

        let restarted = env.reopen().await;
        assert_eq!(restarted.pending_operations().await.expect("ops"), 1);
        let report = restarted
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert!(restarted.list_numbers(&org).await.expect("list").is_empty());
        assert_agree(&env, &restarted, &org).await;
    }
);

db_test!(
    a_number_with_an_operation_in_flight_refuses_another,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        env.interrupt_after_change(Box::pin(env.registry.set_webhook_mode(
            &org,
            &number.id,
            WebhookMode::Managed,
            false,
        )))
        .await;
        let error = env
            .registry
            .remove_number(&org, &number.id)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "conflict");
        let error = env
            .registry
            .set_webhook_mode(&org, &number.id, WebhookMode::Managed, false)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "conflict");
        // The refused removal left the number as it was.
        assert_eq!(
            env.registry
                .number(&org, &number.id)
                .await
                .expect("n")
                .status,
            NumberStatus::Active
        );
        env.registry
            .recover_pending_operations()
            .await
            .expect("recover");
        env.registry
            .remove_number(&org, &number.id)
            .await
            .expect("remove once the operation is resolved");
        assert_agree(&env, &env.registry, &org).await;
    }
);

db_test!(
    h1_double_click_managed_never_saves_the_gateway_as_the_customer_config,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        // Two independent pools, as two instances behind a load balancer would have.
        let first = env.reopen().await;
        let second = env.reopen().await;
        for round in 0..4 {
            let (a, b) = tokio::join!(
                first.set_webhook_mode(&org, &number.id, WebhookMode::Managed, false),
                second.set_webhook_mode(&org, &number.id, WebhookMode::Managed, false),
            );
            for result in [&a, &b] {
                if let Err(error) = result {
                    assert_eq!(error.code(), "conflict", "round {round}: {error}");
                }
            }
            assert!(a.is_ok() || b.is_ok(), "round {round}: {a:?} / {b:?}");
            let managed = env.registry.number(&org, &number.id).await.expect("n");
            assert_eq!(managed.status, NumberStatus::Active);
            assert_eq!(managed.webhook_mode, WebhookMode::Managed);
            match managed.saved_inbound {
                Some(telephony_carrier::InboundConfig::Twilio(saved)) => {
                    assert_eq!(saved.voice_url, customer_voice_url(), "round {round}");
                }
                other => panic!("round {round}: saved {other:?}"),
            }
            assert_agree(&env, &env.registry, &org).await;
            env.registry
                .set_webhook_mode(&org, &number.id, WebhookMode::OutboundOnly, false)
                .await
                .expect("back");
            assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
        }
    }
);

db_test!(
    h1_a_removal_racing_a_switch_never_strands_the_number,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let first = env.reopen().await;
        let second = env.reopen().await;
        for round in 0..4 {
            let number = done(
                env.registry
                    .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                    .await
                    .expect("import"),
            );
            let (switched, removed) = tokio::join!(
                first.set_webhook_mode(&org, &number.id, WebhookMode::Managed, false),
                second.remove_number(&org, &number.id),
            );
            for error in [switched.as_ref().err(), removed.as_ref().err()]
                .into_iter()
                .flatten()
            {
                // The loser either met the claim (conflict) or read after the removal.
                assert!(
                    matches!(error.code(), "conflict" | "not_found"),
                    "round {round}: {error}"
                );
            }
            // Whatever won, the carrier and the database agree.
            assert_agree(&env, &env.registry, &org).await;
            for left in env.registry.list_numbers(&org).await.expect("list") {
                env.registry
                    .remove_number(&org, &left.id)
                    .await
                    .expect("clean up");
            }
            assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
        }
    }
);

db_test!(
    h1_a_number_already_pointing_at_the_gateway_keeps_its_saved_config,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        // The admin pointed the number at the gateway by hand, as outbound_only allows.
        let carrier = env
            .registry
            .carrier_for(&org, &conn.id)
            .await
            .expect("carrier");
        carrier
            .replace_inbound_config(
                &number.carrier_id,
                &telephony_carrier::InboundConfig::Twilio(telephony_carrier::TwilioVoiceConfig {
                    voice_url: gateway_voice_url(),
                    voice_method: Some("POST".to_owned()),
                    ..Default::default()
                }),
            )
            .await
            .expect("by hand");
        let managed = done(
            env.registry
                .set_webhook_mode(&org, &number.id, WebhookMode::Managed, false)
                .await
                .expect("managed"),
        );
        // The gateway's own configuration is never saved as the customer's.
        assert_eq!(managed.saved_inbound, None);
        assert_eq!(managed.status, NumberStatus::Active);
    }
);

db_test!(
    h1_an_interrupted_switch_holds_the_number_until_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
                .await
                .expect("import"),
        );
        env.interrupt_after_change(Box::pin(env.registry.set_webhook_mode(
            &org,
            &number.id,
            WebhookMode::Managed,
            false,
        )))
        .await;
        // Still active and routable while it is being switched...
        let claimed = env.registry.number(&org, &number.id).await.expect("n");
        assert_eq!(claimed.status, NumberStatus::Active);
        assert!(
            env.registry
                .number_by_e164(NUMBER)
                .await
                .expect("lookup")
                .is_some()
        );
        // ...but claimed: a workflow that read the row before cannot act on it.
        for error in [
            env.registry
                .set_webhook_mode(&org, &number.id, WebhookMode::Managed, false)
                .await
                .unwrap_err(),
            env.registry
                .remove_number(&org, &number.id)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(error.code(), "conflict");
        }
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.rolled_back, 1);
        assert_agree(&env, &env.registry, &org).await;
        let after = env.registry.number(&org, &number.id).await.expect("n");
        assert_eq!(after.webhook_mode, WebhookMode::OutboundOnly);
    }
);

db_test!(
    m1_an_undo_the_carrier_refuses_for_good_rolls_forward,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.interrupt_after_change(Box::pin(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed)),
        ))
        .await;
        assert_eq!(env.twilio_number(NUMBER).voice_url, gateway_voice_url());
        // The carrier refuses the undo for good (a 4xx): retrying cannot help.
        env.fault("POST", UPDATE, 400, 1);
        let report = env
            .registry
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert_eq!(report.still_pending, 0);
        // The number is imported as the carrier has it: managed, the customer's config saved.
        let numbers = env.registry.list_numbers(&org).await.expect("list");
        assert_eq!(numbers.len(), 1);
        match &numbers[0].saved_inbound {
            Some(telephony_carrier::InboundConfig::Twilio(saved)) => {
                assert_eq!(saved.voice_url, customer_voice_url());
            }
            other => panic!("saved {other:?}"),
        }
        assert!(
            env.registry
                .number_by_e164(NUMBER)
                .await
                .expect("lookup")
                .is_some()
        );
        assert_agree(&env, &env.registry, &org).await;
        // And removing it restores the customer's configuration.
        env.registry
            .remove_number(&org, &numbers[0].id)
            .await
            .expect("remove");
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
    }
);

db_test!(m1_an_undo_the_carrier_cannot_do_yet_is_retried, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = done(
        env.registry
            .import_number(&org, import(&conn, NUMBER, WebhookMode::OutboundOnly))
            .await
            .expect("import"),
    );
    env.interrupt_after_change(Box::pin(env.registry.set_webhook_mode(
        &org,
        &number.id,
        WebhookMode::Managed,
        false,
    )))
    .await;
    env.fault("POST", UPDATE, 503, 1);
    let report = env
        .registry
        .recover_pending_operations()
        .await
        .expect("recover");
    assert_eq!(report.still_pending, 1);
    let report = env
        .registry
        .recover_pending_operations()
        .await
        .expect("recover");
    assert_eq!(report.rolled_back, 1);
    assert_agree(&env, &env.registry, &org).await;
});

const MOVED_BASE: &str = "https://new-gw.example.com";

fn moved_voice_url() -> Option<String> {
    Some(format!("{MOVED_BASE}/webhooks/twilio/voice"))
}

/// The voice URL an applied (or saved) configuration routes to.
fn voice_url(config: Option<&telephony_carrier::InboundConfig>) -> Option<String> {
    match config {
        Some(telephony_carrier::InboundConfig::Twilio(config)) => config.voice_url.clone(),
        _ => None,
    }
}

/// A registry on the same database, on its own pool, after the gateway's public URL moved.
async fn moved_registry(env: &Env) -> (Registry, sea_orm::DatabaseConnection) {
    let db = connect(&env.url).await;
    let mut config = telephony_registry::RegistryConfig::new(MOVED_BASE);
    config.stale_operation_after = Duration::ZERO;
    let registry = Registry::new(db.clone(), env.keyring.clone(), env.factory.clone(), config);
    (registry, db)
}

db_test!(
    m6_repoint_whose_database_write_fails_after_the_carrier_change_is_finished_by_recovery,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        let (moved, moved_db) = moved_registry(&env).await;
        env.factory.arm(AfterChange::CloseDatabase(moved_db));
        let error = moved.repoint_managed_numbers().await.unwrap_err();
        assert_eq!(error.code(), "internal_error");
        assert_eq!(env.twilio_number(NUMBER).voice_url, moved_voice_url());

        let (restarted, _db) = moved_registry(&env).await;
        assert_eq!(restarted.pending_operations().await.expect("ops"), 1);
        let report = restarted
            .recover_pending_operations()
            .await
            .expect("recover");
        assert_eq!(report.completed, 1);
        assert_eq!(restarted.pending_operations().await.expect("ops"), 0);
        let after = restarted.number(&org, &number.id).await.expect("number");
        assert_eq!(after.status, NumberStatus::Active);
        assert_eq!(after.webhook_mode, WebhookMode::Managed);
        // `applied` says what the carrier holds; the customer's saved configuration is kept.
        assert_eq!(
            voice_url(after.applied_inbound.as_ref()),
            env.twilio_number(NUMBER).voice_url
        );
        assert_eq!(
            voice_url(after.saved_inbound.as_ref()),
            customer_voice_url()
        );
        assert_eq!(restarted.repoint_managed_numbers().await.expect("again"), 0);
        // So a removal restores the customer's configuration instead of leaving the number
        // pointing at the gateway.
        let report = restarted
            .remove_number(&org, &number.id)
            .await
            .expect("remove");
        assert_eq!(report.restore, telephony_registry::Restore::Restored);
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
    }
);

db_test!(
    m6_a_repoint_racing_a_removal_never_strands_the_number,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let (moved, _db) = moved_registry(&env).await;

        // A repoint stopped after its carrier change keeps the number from being removed until
        // recovery has recorded what the carrier holds; the removal then restores it.
        let number = done(
            env.registry
                .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                .await
                .expect("import"),
        );
        env.interrupt_after_change(Box::pin(moved.repoint_managed_numbers()))
            .await;
        assert_eq!(env.twilio_number(NUMBER).voice_url, moved_voice_url());
        let error = moved.remove_number(&org, &number.id).await.unwrap_err();
        assert_eq!(error.code(), "conflict");
        let report = moved.recover_pending_operations().await.expect("recover");
        assert_eq!(report.completed, 1);
        let report = moved.remove_number(&org, &number.id).await.expect("remove");
        assert_eq!(report.restore, telephony_registry::Restore::Restored);
        assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());

        // Truly concurrent: whichever wins, once both ended and recovery ran, removing the number
        // (if it is still there) leaves the customer's configuration at the carrier.
        for _ in 0..3 {
            let number = done(
                env.registry
                    .import_number(&org, import(&conn, NUMBER, WebhookMode::Managed))
                    .await
                    .expect("import"),
            );
            let (repointed, removed) = tokio::join!(
                moved.repoint_managed_numbers(),
                moved.remove_number(&org, &number.id)
            );
            drop((repointed, removed));
            moved.recover_pending_operations().await.expect("recover");
            assert_eq!(moved.pending_operations().await.expect("ops"), 0);
            if let Ok(left) = moved.number(&org, &number.id).await {
                assert_eq!(
                    voice_url(left.applied_inbound.as_ref()),
                    env.twilio_number(NUMBER).voice_url,
                    "applied disagrees with the carrier"
                );
                moved.remove_number(&org, &number.id).await.expect("remove");
            }
            assert!(moved.list_numbers(&org).await.expect("list").is_empty());
            assert_eq!(env.twilio_number(NUMBER).voice_url, customer_voice_url());
        }
        assert_agree(&env, &moved, &org).await;
    }
);
