//! What the call path stores: call records, webhook idempotency, admission control, and two
//! gateway instances racing to import one number.

use telephony_carrier::Provider;
use telephony_registry::{
    Admission, AgentTarget, CallAdmission, CallUpdate, Direction, NewAgent, WebhookMode,
};

use crate::{db_test, done, import, twilio_org};

db_test!(a_retried_webhook_gets_the_first_answer, |env| {
    let first = env
        .registry
        .remember_response(
            Provider::Twilio,
            "CA1:ringing",
            "<Response>first</Response>",
        )
        .await
        .expect("store");
    assert_eq!(first, "<Response>first</Response>");
    let retried = env
        .reopen()
        .await
        .remember_response(
            Provider::Twilio,
            "CA1:ringing",
            "<Response>second</Response>",
        )
        .await
        .expect("store again");
    assert_eq!(retried, "<Response>first</Response>");
    // Keys are per provider.
    let telnyx = env
        .registry
        .remember_response(Provider::Telnyx, "CA1:ringing", "other")
        .await
        .expect("telnyx");
    assert_eq!(telnyx, "other");
    assert_eq!(
        env.registry
            .stored_response(Provider::Twilio, "CA2")
            .await
            .expect("lookup"),
        None
    );
});

db_test!(
    an_agent_at_its_limit_refuses_the_next_call_across_instances,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = env
            .registry
            .create_agent(
                &org,
                NewAgent {
                    name: "bot".into(),
                    target: AgentTarget::MediaStream("wss://agents.example/s".into()),
                    fallback_number: None,
                    max_concurrent_calls: Some(1),
                },
            )
            .await
            .expect("agent");
        let number = done(
            env.registry
                .import_number(
                    &org,
                    import(&conn, "+14155550101", WebhookMode::OutboundOnly),
                )
                .await
                .expect("import"),
        );
        let call = |id: &str| CallAdmission {
            provider: Provider::Twilio,
            carrier_call_id: id.to_owned(),
            org_id: org.clone(),
            number_id: number.id.clone(),
            agent_id: Some(agent.id.clone()),
            limit: agent.max_concurrent_calls,
        };
        let other_instance = env.reopen().await;
        assert_eq!(
            env.registry.admit_call(&call("CA1")).await.expect("admit"),
            Admission::Admitted
        );
        assert_eq!(
            other_instance
                .admit_call(&call("CA1"))
                .await
                .expect("retry"),
            Admission::AlreadyAdmitted
        );
        assert_eq!(
            other_instance
                .admit_call(&call("CA2"))
                .await
                .expect("second"),
            Admission::AtCapacity
        );
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            env.registry
                .active_calls_for_number(&number.id)
                .await
                .expect("count"),
            1
        );
        env.registry
            .end_active_call(Provider::Twilio, "CA1")
            .await
            .expect("end");
        assert_eq!(
            other_instance.admit_call(&call("CA2")).await.expect("now"),
            Admission::Admitted
        );
    }
);

db_test!(call_records_are_upserted_and_seen_by_diagnostics, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = done(
        env.registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    let update = |status: &str, duration| CallUpdate {
        org_id: org.clone(),
        provider: Provider::Twilio,
        carrier_call_id: "CA0000000000000000000000000000cc01".into(),
        number: "+14155550101".into(),
        direction: Direction::Inbound,
        status: status.into(),
        duration_secs: duration,
        ended_at: None,
    };
    let first = env
        .registry
        .record_call(update("ringing", None))
        .await
        .expect("ringing");
    let last = env
        .registry
        .record_call(update("completed", Some(42)))
        .await
        .expect("completed");
    assert_eq!(first.id, last.id);
    assert_eq!(last.status, "completed");
    assert_eq!(last.duration_secs, Some(42));
    let calls = env.registry.list_calls(&org, 10).await.expect("calls");
    assert_eq!(calls.len(), 1);
    let diagnostics = env
        .registry
        .diagnose_number(&org, &number.id)
        .await
        .expect("diagnose");
    assert!(diagnostics.last_call_at.is_some());
});

db_test!(
    two_instances_racing_to_import_one_number_cannot_both_win,
    |env| {
        let (acme, acme_conn) = twilio_org(&env.registry, "Acme").await;
        let (other, other_conn) = twilio_org(&env.registry, "Other").await;
        // Two independent pools, as two gateway processes would have.
        let first = env.reopen().await;
        let second = env.reopen().await;
        for round in 0..5 {
            let mode = if round % 2 == 0 {
                WebhookMode::Managed
            } else {
                WebhookMode::OutboundOnly
            };
            let (a, b) = tokio::join!(
                first.import_number(&acme, import(&acme_conn, "+14155550100", mode)),
                second.import_number(&other, import(&other_conn, "+14155550100", mode)),
            );
            let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "round {round}: {a:?} / {b:?}");
            let loser = if a.is_ok() { b } else { a };
            assert_eq!(loser.unwrap_err().code(), "number_already_imported");
            // Release it for the next round.
            for (org, registry) in [(&acme, &first), (&other, &second)] {
                for number in registry.list_numbers(org).await.expect("list") {
                    registry
                        .remove_number(org, &number.id)
                        .await
                        .expect("remove");
                }
            }
            assert_eq!(first.pending_operations().await.expect("ops"), 0);
        }
    }
);
