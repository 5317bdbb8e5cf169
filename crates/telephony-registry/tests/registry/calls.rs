//! What the call path stores: call records, webhook idempotency, admission control, and two
//! gateway instances racing to import one number.

use telephony_carrier::Provider;
use telephony_registry::{
    Admission, AgentTarget, CallAdmission, CallUpdate, Direction, NewAgent, WebhookMode,
};

use crate::harness::{Env, PUBLIC_BASE};
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
            number_limit: None,
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
            .end_active_call_in_org(&org, Provider::Twilio, "CA1")
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
    call_ids_of_every_shape_are_each_one_record_and_found_again,
    |env| {
        // On SQLite a record is unique by a compact key of its call id: a Twilio `CallSid`'s
        // 16 bytes, any other id's text. Ids that differ only where the key could confuse them
        // are different calls, and each status callback finds its own record.
        let (org, _) = twilio_org(&env.registry, "Acme").await;
        let sid = "CA0123456789abcdef0123456789abcdef";
        let calls = [
            (Provider::Twilio, sid.to_owned()),
            (Provider::Twilio, sid.to_uppercase()),
            (
                Provider::Twilio,
                "CA0123456789ABCDEF0123456789abcdef".to_owned(),
            ),
            (
                Provider::Twilio,
                "CB0123456789abcdef0123456789abcdef".to_owned(),
            ),
            (Provider::Twilio, sid[..33].to_owned()),
            (Provider::Twilio, format!("{sid}0")),
            (
                Provider::Twilio,
                "CA0123456789abcdef0123456789abcdeg".to_owned(),
            ),
            (Provider::Twilio, format!("twilio:{sid}")),
            (
                Provider::Twilio,
                "v3:Ux3q8hZ5-ExampleCallControlId".to_owned(),
            ),
            (Provider::Telnyx, sid.to_owned()),
            (
                Provider::Telnyx,
                "v3:Ux3q8hZ5-ExampleCallControlId".to_owned(),
            ),
        ];
        let update = |provider: Provider, call_id: &str, status: &str| CallUpdate {
            org_id: org.clone(),
            provider,
            carrier_call_id: call_id.to_owned(),
            number: "+14155550101".into(),
            direction: Direction::Inbound,
            status: status.into(),
            duration_secs: None,
            ended_at: None,
        };
        let mut ids = std::collections::HashSet::new();
        for (provider, call_id) in &calls {
            let first = env
                .registry
                .record_call(update(*provider, call_id, "ringing"))
                .await
                .expect("ringing");
            assert!(
                ids.insert(first.id),
                "{provider:?} {call_id} is a call of its own"
            );
        }
        for (provider, call_id) in &calls {
            let last = env
                .registry
                .record_call(update(*provider, call_id, "completed"))
                .await
                .expect("completed");
            assert!(ids.contains(&last.id), "{provider:?} {call_id} found again");
            assert_eq!(last.carrier_call_id, *call_id);
            assert_eq!(last.status, "completed");
        }
        let listed = env.registry.list_calls(&org, 100).await.expect("calls");
        assert_eq!(listed.len(), calls.len());
        assert!(listed.iter().all(|call| call.status == "completed"));
    }
);

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

/// An organization with an agent limited to one call and an imported number.
async fn one_call_agent(
    registry: &telephony_registry::Registry,
    name: &str,
) -> (String, String, String) {
    let (org, conn) = twilio_org(registry, name).await;
    let agent = registry
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
        registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    (org, agent.id, number.id)
}

fn admission(org: &str, agent: &str, number: &str, id: &str) -> CallAdmission {
    CallAdmission {
        provider: Provider::Twilio,
        carrier_call_id: id.to_owned(),
        org_id: org.to_owned(),
        number_id: number.to_owned(),
        agent_id: Some(agent.to_owned()),
        limit: Some(1),
        number_limit: None,
    }
}

async fn h2_stale_calls_stop_counting(kind: crate::harness::DbKind) {
    let mut config = telephony_registry::RegistryConfig::new(PUBLIC_BASE);
    config.max_call_age = std::time::Duration::from_secs(1);
    let Some(env) = Env::start_with(kind, config).await else {
        return;
    };
    let (org, agent, number) = one_call_agent(&env.registry, "Acme").await;
    assert_eq!(
        env.registry
            .admit_call(&admission(&org, &agent, &number, "CA1"))
            .await
            .expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        env.registry
            .admit_call(&admission(&org, &agent, &number, "CA2"))
            .await
            .expect("at the limit"),
        Admission::AtCapacity
    );
    // CA1's end is never reported: once older than the maximum call age it stops counting.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        env.registry
            .active_calls_for_agent(&agent)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        env.registry
            .admit_call(&admission(&org, &agent, &number, "CA3"))
            .await
            .expect("a slot again"),
        Admission::Admitted
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The recovery pass deletes the stale rows (CA1 and now CA3).
    env.registry
        .recover_pending_operations()
        .await
        .expect("recover");
    assert_eq!(env.registry.sweep_stale_calls().await.expect("sweep"), 0);
    assert_eq!(
        env.registry
            .admit_call(&admission(&org, &agent, &number, "CA1"))
            .await
            .expect("the swept call id is new again"),
        Admission::Admitted
    );
    env.finish().await;
}

mod h2_admission_slots_are_freed_without_a_status_callback {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::h2_stale_calls_stop_counting(crate::harness::DbKind::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::h2_stale_calls_stop_counting(crate::harness::DbKind::Postgres).await;
    }
}

db_test!(h2_the_default_maximum_call_age_is_four_hours, |env| {
    assert_eq!(
        env.registry.config().max_call_age,
        std::time::Duration::from_secs(4 * 3600)
    );
    let (org, agent, number) = one_call_agent(&env.registry, "Acme").await;
    env.registry
        .admit_call(&admission(&org, &agent, &number, "CA1"))
        .await
        .expect("admit");
    assert_eq!(env.registry.sweep_stale_calls().await.expect("sweep"), 0);
    assert_eq!(
        env.registry
            .active_calls_for_agent(&agent)
            .await
            .expect("count"),
        1
    );
});

db_test!(
    m3_another_orgs_status_callback_cannot_overwrite_a_call_record,
    |env| {
        let (acme, _, _) = one_call_agent(&env.registry, "Acme").await;
        let other = env
            .registry
            .create_organization("Other")
            .await
            .expect("org");
        let update = |org: &str, status: &str| CallUpdate {
            org_id: org.to_owned(),
            provider: Provider::Twilio,
            carrier_call_id: "CA0000000000000000000000000000cc02".into(),
            number: "+14155550101".into(),
            direction: Direction::Inbound,
            status: status.into(),
            duration_secs: None,
            ended_at: None,
        };
        env.registry
            .record_call(update(&acme, "in-progress"))
            .await
            .expect("record");
        let error = env
            .registry
            .record_call(update(&other.id, "completed"))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "not_found");
        let calls = env.registry.list_calls(&acme, 10).await.expect("calls");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].status, "in-progress");
        assert!(
            env.registry
                .list_calls(&other.id, 10)
                .await
                .expect("calls")
                .is_empty()
        );
    }
);

db_test!(m3_ending_an_active_call_needs_its_org, |env| {
    let (acme, agent, number) = one_call_agent(&env.registry, "Acme").await;
    let other = env
        .registry
        .create_organization("Other")
        .await
        .expect("org");
    env.registry
        .admit_call(&admission(&acme, &agent, &number, "CA1"))
        .await
        .expect("admit");
    env.registry
        .end_active_call_in_org(&other.id, Provider::Twilio, "CA1")
        .await
        .expect("harmless");
    assert_eq!(
        env.registry
            .active_calls_for_agent(&agent)
            .await
            .expect("count"),
        1
    );
    env.registry
        .end_active_call_in_org(&acme, Provider::Twilio, "CA1")
        .await
        .expect("end");
    assert_eq!(
        env.registry
            .active_calls_for_agent(&agent)
            .await
            .expect("count"),
        0
    );
});

db_test!(l3_a_late_ringing_never_replaces_a_final_status, |env| {
    let (org, _, _) = one_call_agent(&env.registry, "Acme").await;
    let update = |status: &str, duration| CallUpdate {
        org_id: org.clone(),
        provider: Provider::Twilio,
        carrier_call_id: "CA0000000000000000000000000000cc03".into(),
        number: "+14155550101".into(),
        direction: Direction::Inbound,
        status: status.into(),
        duration_secs: duration,
        ended_at: None,
    };
    for (status, duration) in [("ringing", None), ("completed", Some(42))] {
        env.registry
            .record_call(update(status, duration))
            .await
            .expect("record");
    }
    for late in ["ringing", "in-progress"] {
        let record = env
            .registry
            .record_call(update(late, None))
            .await
            .expect("late");
        assert_eq!(record.status, "completed");
        assert_eq!(record.duration_secs, Some(42));
    }
    // A final status may still follow another one (the carrier's last word wins).
    let record = env
        .registry
        .record_call(update("failed", None))
        .await
        .expect("final");
    assert_eq!(record.status, "failed");
});

/// An organization with one number and two agents without a limit of their own, so only the
/// number's limit can refuse a call.
async fn two_agents_on_one_number(
    registry: &telephony_registry::Registry,
) -> (String, [String; 2], String) {
    let (org, conn) = twilio_org(registry, "Acme").await;
    let mut agents = Vec::new();
    for name in ["first", "second"] {
        let agent = registry
            .create_agent(
                &org,
                NewAgent {
                    name: name.into(),
                    target: AgentTarget::MediaStream("wss://agents.example/s".into()),
                    fallback_number: None,
                    max_concurrent_calls: None,
                },
            )
            .await
            .expect("agent");
        agents.push(agent.id);
    }
    let number = done(
        registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    let agents = [agents[0].clone(), agents[1].clone()];
    (org, agents, number.id)
}

fn number_admission(
    org: &str,
    agent: &str,
    number: &telephony_registry::Number,
    id: &str,
) -> CallAdmission {
    CallAdmission {
        provider: Provider::Twilio,
        carrier_call_id: id.to_owned(),
        org_id: org.to_owned(),
        number_id: number.id.clone(),
        agent_id: Some(agent.to_owned()),
        limit: None,
        number_limit: number.max_concurrent_calls,
    }
}

db_test!(a_number_at_its_limit_refuses_the_next_call, |env| {
    let (org, [first, second], number_id) = two_agents_on_one_number(&env.registry).await;
    assert_eq!(
        env.registry
            .number(&org, &number_id)
            .await
            .expect("number")
            .max_concurrent_calls,
        None,
        "an imported number has no limit"
    );
    let number = env
        .registry
        .set_number_call_limit(&org, &number_id, Some(1))
        .await
        .expect("set the limit");
    assert_eq!(number.max_concurrent_calls, Some(1));
    let other_instance = env.reopen().await;
    let number = other_instance
        .number(&org, &number_id)
        .await
        .expect("stored");
    assert_eq!(number.max_concurrent_calls, Some(1));
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &first, &number, "CA1"))
            .await
            .expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        other_instance
            .admit_call(&number_admission(&org, &first, &number, "CA1"))
            .await
            .expect("retry"),
        Admission::AlreadyAdmitted
    );
    // Another agent, another instance: the number's calls are counted whatever their agent.
    assert_eq!(
        other_instance
            .admit_call(&number_admission(&org, &second, &number, "CA2"))
            .await
            .expect("second"),
        Admission::NumberAtCapacity
    );
    // The refused call is not counted.
    assert_eq!(
        env.registry
            .active_calls_for_number(&number_id)
            .await
            .expect("count"),
        1
    );
    // Both limits apply: under the number's limit, the agent's still refuses.
    let number = env
        .registry
        .set_number_call_limit(&org, &number_id, Some(5))
        .await
        .expect("raise");
    let agent_limited = CallAdmission {
        limit: Some(1),
        ..number_admission(&org, &first, &number, "CA3")
    };
    assert_eq!(
        env.registry
            .admit_call(&agent_limited)
            .await
            .expect("agent limit"),
        Admission::AtCapacity
    );
});

db_test!(
    a_number_call_limit_of_zero_is_refused_and_null_removes_it,
    |env| {
        let (org, [first, _], number_id) = two_agents_on_one_number(&env.registry).await;
        let zero = env
            .registry
            .set_number_call_limit(&org, &number_id, Some(0))
            .await
            .expect_err("0 is refused");
        assert_eq!(zero.code(), "invalid_request");
        let (other_org, _) = twilio_org(&env.registry, "Other").await;
        let foreign = env
            .registry
            .set_number_call_limit(&other_org, &number_id, Some(1))
            .await
            .expect_err("another organization's number");
        assert_eq!(foreign.code(), "not_found");
        assert_eq!(
            env.registry
                .number(&org, &number_id)
                .await
                .expect("number")
                .max_concurrent_calls,
            None,
            "nothing changed"
        );
        env.registry
            .set_number_call_limit(&org, &number_id, Some(1))
            .await
            .expect("set");
        let number = env
            .registry
            .set_number_call_limit(&org, &number_id, None)
            .await
            .expect("clear");
        assert_eq!(number.max_concurrent_calls, None);
        for id in ["CA1", "CA2", "CA3"] {
            assert_eq!(
                env.registry
                    .admit_call(&number_admission(&org, &first, &number, id))
                    .await
                    .expect("admit"),
                Admission::Admitted
            );
        }
    }
);

db_test!(a_finished_call_frees_the_numbers_slot, |env| {
    let (org, [first, second], number_id) = two_agents_on_one_number(&env.registry).await;
    let number = env
        .registry
        .set_number_call_limit(&org, &number_id, Some(1))
        .await
        .expect("set the limit");
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &first, &number, "CA1"))
            .await
            .expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &second, &number, "CA2"))
            .await
            .expect("at the limit"),
        Admission::NumberAtCapacity
    );
    env.registry
        .end_active_call_in_org(&org, Provider::Twilio, "CA1")
        .await
        .expect("end");
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &second, &number, "CA2"))
            .await
            .expect("a slot again"),
        Admission::Admitted
    );
});

async fn number_stale_calls_stop_counting(kind: crate::harness::DbKind) {
    let mut config = telephony_registry::RegistryConfig::new(PUBLIC_BASE);
    config.max_call_age = std::time::Duration::from_secs(1);
    let Some(env) = Env::start_with(kind, config).await else {
        return;
    };
    let (org, [first, second], number_id) = two_agents_on_one_number(&env.registry).await;
    let number = env
        .registry
        .set_number_call_limit(&org, &number_id, Some(1))
        .await
        .expect("set the limit");
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &first, &number, "CA1"))
            .await
            .expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &second, &number, "CA2"))
            .await
            .expect("at the limit"),
        Admission::NumberAtCapacity
    );
    // CA1's end is never reported: once older than the maximum call age it stops counting.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        env.registry
            .admit_call(&number_admission(&org, &second, &number, "CA2"))
            .await
            .expect("a slot again"),
        Admission::Admitted
    );
    env.finish().await;
}

mod a_numbers_call_older_than_the_maximum_age_stops_counting {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::number_stale_calls_stop_counting(crate::harness::DbKind::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::number_stale_calls_stop_counting(crate::harness::DbKind::Postgres).await;
    }
}
