//! Live-call control: outbound calls placed with the organization's own carrier account,
//! actions on calls the carrier already ended, and the REST API's idempotency keys.

use telephony_carrier::CallTarget;
use telephony_registry::{
    AgentTarget, CallerId, IdempotencyClaim, NewAgent, PlaceCall, Registry, RegistryError,
    WebhookMode,
};

use crate::harness::{PUBLIC_BASE, TWILIO_SID};
use crate::{db_test, done, import, twilio_org};

/// An organization with +14155550101 imported (outbound only) and an agent on it; returns the
/// organization id and the number id.
async fn caller(registry: &Registry, name: &str) -> (String, String) {
    let (org, conn) = twilio_org(registry, name).await;
    let agent = registry
        .create_agent(
            &org,
            NewAgent {
                name: "bot".into(),
                target: AgentTarget::MediaStream("wss://agents.example/s".into()),
                fallback_number: None,
                max_concurrent_calls: None,
            },
        )
        .await
        .expect("agent");
    let mut request = import(&conn, "+14155550101", WebhookMode::OutboundOnly);
    request.agent_id = Some(agent.id);
    let number = done(registry.import_number(&org, request).await.expect("import"));
    (org, number.id)
}

fn call_to(number_id: &str, to: &str) -> PlaceCall {
    PlaceCall {
        from: CallerId::NumberId(number_id.to_owned()),
        to: to.to_owned(),
        agent_id: None,
    }
}

db_test!(
    an_outbound_call_uses_the_numbers_own_account_and_is_audited,
    |env| {
        let (org, number_id) = caller(&env.registry, "Acme").await;
        let record = env
            .registry
            .place_outbound_call(&org, &call_to(&number_id, "+15005550006"))
            .await
            .expect("placed");
        assert_eq!(record.direction, "outbound");
        assert_eq!(record.number, "+14155550101");
        let calls = env.emulator.state().calls;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].account_sid, TWILIO_SID);
        assert_eq!(record.carrier_call_id, calls[0].id);
        assert_eq!(
            calls[0].url.as_deref(),
            Some(format!("{PUBLIC_BASE}/webhooks/twilio/outbound/{}", record.id).as_str())
        );
        // Another instance sees the same record and its outbound details.
        let other = env.reopen().await;
        assert_eq!(other.call(&org, &record.id).await.expect("record"), record);
        let info = other
            .outbound_call(&record.id)
            .await
            .expect("read")
            .expect("outbound");
        assert_eq!(info.number_id, number_id);
        assert_eq!(info.destination, "+15005550006");
        assert!(!info.carrier_call_pending());
        let audit = env.registry.audit_log(&org, 10).await.expect("audit");
        let placed = audit
            .iter()
            .find(|e| e.action == "place_call")
            .expect("audited");
        assert_eq!(
            (placed.outcome.as_str(), placed.changed_account),
            ("ok", true)
        );
        assert_eq!(placed.number.as_deref(), Some("+14155550101"));
    }
);

db_test!(a_failing_carrier_leaves_no_call_and_no_record, |env| {
    let (org, number_id) = caller(&env.registry, "Acme").await;
    env.fault(
        "POST",
        &format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"),
        503,
        1,
    );
    let error = env
        .registry
        .place_outbound_call(&org, &call_to(&number_id, "+15005550006"))
        .await
        .expect_err("the carrier failed");
    assert_eq!(error.code(), "carrier_unavailable");
    assert!(env.emulator.state().calls.is_empty());
    assert!(
        env.registry
            .list_calls(&org, 10)
            .await
            .expect("list")
            .is_empty()
    );
    let audit = env.registry.audit_log(&org, 10).await.expect("audit");
    let failed = audit
        .iter()
        .find(|e| e.action == "place_call")
        .expect("audited");
    assert_eq!(
        (failed.outcome.as_str(), failed.changed_account),
        ("error: unavailable", false)
    );
});

db_test!(
    a_placement_the_carrier_answered_unreadably_keeps_its_record_as_unknown,
    |env| {
        // The carrier may have placed the call: its record stays, with the pending call id it
        // was given (found by it like any other: the harness checks its key on SQLite).
        let (org, number_id) = caller(&env.registry, "Acme").await;
        env.fault(
            "POST",
            &format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"),
            200,
            1,
        );
        let error = env
            .registry
            .place_outbound_call(&org, &call_to(&number_id, "+15005550006"))
            .await
            .expect_err("an answer that is not a call");
        assert_eq!(error.code(), "carrier_unavailable", "{error}");
        let calls = env.registry.list_calls(&org, 10).await.expect("list");
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].status, "unknown");
        assert!(
            calls[0].carrier_call_id.starts_with("pending:"),
            "{calls:?}"
        );
    }
);

db_test!(
    actions_on_a_call_the_carrier_ended_answer_call_not_active,
    |env| {
        let (org, number_id) = caller(&env.registry, "Acme").await;
        let record = env
            .registry
            .place_outbound_call(&org, &call_to(&number_id, "+15005550006"))
            .await
            .expect("placed");
        // The callee hangs up; the status callback never reaches the gateway (its public URL is
        // not reachable from here), so only the carrier knows the call is over.
        let _ = env.emulator.end_call(&record.carrier_call_id).await;
        let markup = CallTarget::Markup {
            xml: "<Response><Hangup/></Response>".into(),
        };
        let redirect = env
            .registry
            .redirect_live_call(&org, &record.id, &markup)
            .await;
        assert!(
            matches!(redirect, Err(RegistryError::CallNotActive)),
            "{redirect:?}"
        );
        let hangup = env.registry.hangup_live_call(&org, &record.id).await;
        assert!(
            matches!(hangup, Err(RegistryError::CallNotActive)),
            "{hangup:?}"
        );
        let audit = env.registry.audit_log(&org, 10).await.expect("audit");
        assert!(
            audit.iter().any(|e| e.action == "redirect_call"
                && e.outcome.contains("21220")
                && !e.changed_account),
            "{audit:?}"
        );
        // Another organization's id is not found, before any carrier call.
        let other = env
            .registry
            .create_organization("Other")
            .await
            .expect("org");
        let theirs = env.registry.hangup_live_call(&other.id, &record.id).await;
        assert!(
            matches!(theirs, Err(RegistryError::NotFound("call"))),
            "{theirs:?}"
        );
        assert!(matches!(
            env.registry.call(&other.id, &record.id).await,
            Err(RegistryError::NotFound("call"))
        ));
    }
);

db_test!(a_live_call_is_recorded_and_hung_up_once, |env| {
    let (org, number_id) = caller(&env.registry, "Acme").await;
    let record = env
        .registry
        .place_outbound_call(&org, &call_to(&number_id, "+15005550006"))
        .await
        .expect("placed");
    let recording = env
        .registry
        .start_call_recording(&org, &record.id)
        .await
        .expect("recording");
    env.registry
        .stop_call_recording(&org, &record.id, &recording.recording_id)
        .await
        .expect("stopped");
    let ended = env
        .registry
        .hangup_live_call(&org, &record.id)
        .await
        .expect("hung up");
    assert_eq!(ended.status, "completed");
    assert!(ended.ended_at.is_some());
    // Over as recorded: refused without asking the carrier again.
    let requests = env.emulator.state().requests.len();
    let again = env.registry.hangup_live_call(&org, &record.id).await;
    assert!(
        matches!(again, Err(RegistryError::CallNotActive)),
        "{again:?}"
    );
    assert_eq!(env.emulator.state().requests.len(), requests);
});

db_test!(an_idempotency_key_is_claimed_once_per_organization, |env| {
    let org = env.registry.create_organization("Acme").await.expect("org");
    let other = env
        .registry
        .create_organization("Other")
        .await
        .expect("org");
    let claim = |registry: Registry, org: String, fingerprint: &'static str| async move {
        registry
            .claim_idempotency_key(&org, "key-1", fingerprint)
            .await
            .expect("claim")
    };
    let IdempotencyClaim::Claimed(lease) =
        claim(env.registry.clone(), org.id.clone(), "fp-a").await
    else {
        panic!("a new key is claimed");
    };
    // Another instance, while the first request runs.
    let second = env.reopen().await;
    assert_eq!(
        claim(second.clone(), org.id.clone(), "fp-a").await,
        IdempotencyClaim::InProgress
    );
    assert_eq!(
        claim(second.clone(), org.id.clone(), "fp-b").await,
        IdempotencyClaim::Reused
    );
    assert!(
        env.registry
            .complete_idempotency_key(&org.id, "key-1", &lease, 201, "{\"id\":\"first\"}")
            .await
            .expect("complete")
    );
    // A second completion never replaces the first answer.
    assert!(
        !second
            .complete_idempotency_key(&org.id, "key-1", &lease, 500, "{}")
            .await
            .expect("complete again")
    );
    assert_eq!(
        claim(second.clone(), org.id.clone(), "fp-a").await,
        IdempotencyClaim::Replay {
            status: 201,
            body: "{\"id\":\"first\"}".into()
        }
    );
    assert_eq!(
        claim(second, org.id.clone(), "fp-b").await,
        IdempotencyClaim::Reused
    );
    // Keys are per organization.
    assert!(matches!(
        claim(env.registry.clone(), other.id.clone(), "fp-b").await,
        IdempotencyClaim::Claimed(_)
    ));
});

/// The same database seen by an instance with other idempotency settings.
async fn with_idempotency(
    env: &crate::harness::Env,
    lease: std::time::Duration,
    key_ttl: std::time::Duration,
    webhook_ttl: std::time::Duration,
) -> Registry {
    let mut config = env.registry.config().clone();
    config.idempotency_lease = lease;
    config.idempotency_key_ttl = key_ttl;
    config.webhook_idempotency_ttl = webhook_ttl;
    Registry::new(
        crate::harness::connect(&env.url).await,
        env.keyring.clone(),
        env.factory.clone(),
        config,
    )
}

db_test!(
    a_key_held_by_a_dead_request_is_claimed_again_after_its_lease,
    |env| {
        use std::time::Duration;
        let org = env.registry.create_organization("Acme").await.expect("org");
        let day = Duration::from_secs(86_400);
        let IdempotencyClaim::Claimed(dead) = env
            .registry
            .claim_idempotency_key(&org.id, "key-1", "fp-a")
            .await
            .expect("claim")
        else {
            panic!("a new key is claimed");
        };
        // Within the lease (5 minutes by default) the key is in progress.
        assert_eq!(
            env.registry
                .claim_idempotency_key(&org.id, "key-1", "fp-a")
                .await
                .expect("claim"),
            IdempotencyClaim::InProgress
        );
        // Past the lease, the request is taken for dead: one instance re-claims, the next sees it
        // in progress again; another body is still refused.
        let expired = with_idempotency(&env, Duration::ZERO, day, day).await;
        assert_eq!(
            expired
                .claim_idempotency_key(&org.id, "key-1", "fp-b")
                .await
                .expect("claim"),
            IdempotencyClaim::Reused
        );
        let IdempotencyClaim::Claimed(second) = expired
            .claim_idempotency_key(&org.id, "key-1", "fp-a")
            .await
            .expect("claim")
        else {
            panic!("claimed again after the lease");
        };
        assert_eq!(
            env.registry
                .claim_idempotency_key(&org.id, "key-1", "fp-a")
                .await
                .expect("claim"),
            IdempotencyClaim::InProgress
        );
        // The request taken for dead was only slow: it finishes now, but no longer holds the
        // key, so its answer is not the key's; the request holding it stores its own.
        assert!(
            !env.registry
                .complete_idempotency_key(&org.id, "key-1", &dead, 201, "{\"id\":\"first\"}")
                .await
                .expect("complete late")
        );
        assert!(
            expired
                .complete_idempotency_key(&org.id, "key-1", &second, 201, "{\"id\":\"second\"}")
                .await
                .expect("complete")
        );
        // A completed key is not leased: it replays, however old its claim.
        assert_eq!(
            expired
                .claim_idempotency_key(&org.id, "key-1", "fp-a")
                .await
                .expect("claim"),
            IdempotencyClaim::Replay {
                status: 201,
                body: "{\"id\":\"second\"}".into()
            }
        );
    }
);

db_test!(
    expired_idempotency_records_are_swept_in_bounded_batches,
    |env| {
        use std::time::Duration;
        use telephony_carrier::Provider;
        let org = env.registry.create_organization("Acme").await.expect("org");
        for key in ["k1", "k2", "k3"] {
            let IdempotencyClaim::Claimed(lease) = env
                .registry
                .claim_idempotency_key(&org.id, key, "fp")
                .await
                .expect("claim")
            else {
                panic!("a new key is claimed");
            };
            assert!(
                env.registry
                    .complete_idempotency_key(&org.id, key, &lease, 200, "{}")
                    .await
                    .expect("complete")
            );
        }
        for key in ["CA1:completed", "CA2:completed"] {
            env.registry
                .remember_response(Provider::Twilio, key, "<Response/>")
                .await
                .expect("remember");
        }
        // Nothing is old enough under the defaults (24 h and 48 h).
        assert_eq!(
            env.registry.sweep_idempotency(10).await.expect("sweep"),
            (0, 0)
        );
        assert_eq!(
            env.registry
                .claim_idempotency_key(&org.id, "k1", "fp")
                .await
                .expect("claim"),
            IdempotencyClaim::Replay {
                status: 200,
                body: "{}".into()
            }
        );

        let day = Duration::from_secs(86_400);
        // Keys expire; webhook answers are kept longer.
        let keys_expired = with_idempotency(&env, Duration::ZERO, Duration::ZERO, day).await;
        assert_eq!(
            keys_expired.sweep_idempotency(2).await.expect("sweep"),
            (2, 0)
        );
        assert_eq!(
            keys_expired.sweep_idempotency(2).await.expect("sweep"),
            (1, 0)
        );
        assert!(
            matches!(
                env.registry
                    .claim_idempotency_key(&org.id, "k1", "another body")
                    .await
                    .expect("claim"),
                IdempotencyClaim::Claimed(_)
            ),
            "an expired key is free again"
        );
        assert!(
            env.registry
                .stored_response(Provider::Twilio, "CA1:completed")
                .await
                .expect("read")
                .is_some()
        );
        let all_expired = with_idempotency(&env, Duration::ZERO, day, Duration::ZERO).await;
        assert_eq!(
            all_expired.sweep_idempotency(10).await.expect("sweep"),
            (0, 2)
        );
        assert!(
            env.registry
                .stored_response(Provider::Twilio, "CA1:completed")
                .await
                .expect("read")
                .is_none()
        );
    }
);
