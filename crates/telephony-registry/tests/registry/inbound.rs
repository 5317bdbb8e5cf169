//! The inbound hot path's registry work: one joined read of a number's route, and one
//! transaction that admits, records and answers a call, once per call across instances.

use sea_orm::ConnectionTrait;
use telephony_carrier::Provider;
use telephony_registry::{
    Admission, Agent, AgentTarget, CallUpdate, Connection, Direction, InboundAnswer, InboundCall,
    NewAgent, Number, Registry, RegistryError, WebhookMode, WebhookSecrets,
};

use crate::harness::TWILIO_TOKEN;
use crate::{db_test, done, import, twilio_org};

/// The settings of an agent answering by media stream, with an optional limit on its
/// concurrent calls.
fn media_agent(max_concurrent_calls: Option<u32>) -> NewAgent {
    NewAgent {
        name: "bot".into(),
        target: AgentTarget::MediaStream("wss://agents.example/s".into()),
        fallback_number: None,
        max_concurrent_calls,
    }
}

/// The first Twilio delivery of the call `carrier_call_id` on `number`, to `agent`: ringing,
/// not forwarded, under `idempotency_key`.
fn ringing<'a>(
    carrier_call_id: &'a str,
    number: &'a Number,
    agent: Option<&'a Agent>,
    idempotency_key: &'a str,
) -> InboundCall<'a> {
    InboundCall {
        provider: Provider::Twilio,
        carrier_call_id,
        number,
        agent,
        status: "ringing",
        forwarded: None,
        idempotency_key,
    }
}

/// The carrier's report (a status callback) of `org`'s inbound call `id` on `number`, with
/// `status` and nothing more.
fn report(org: &str, id: &str, number: &str, status: &str) -> CallUpdate {
    CallUpdate {
        org_id: org.to_owned(),
        provider: Provider::Twilio,
        carrier_call_id: id.to_owned(),
        number: number.to_owned(),
        direction: Direction::Inbound,
        status: status.to_owned(),
        duration_secs: None,
        ended_at: None,
    }
}

/// Answers `calls` at once on `registry` (a burst, written in group commits), each with its
/// admission as its document; the answers in order, a failed one panicking with its call id.
async fn answer_burst(registry: &Registry, calls: &[InboundCall<'_>]) -> Vec<InboundAnswer> {
    let answers = futures::future::join_all(
        calls
            .iter()
            .map(|call| registry.answer_inbound_call(call, |admission| format!("{admission:?}"))),
    )
    .await;
    calls
        .iter()
        .zip(answers)
        .map(|(call, answer)| answer.unwrap_or_else(|e| panic!("{}: {e}", call.carrier_call_id)))
        .collect()
}

/// The idempotency key of each call of `ids` (`voice:<id>`).
fn voice_keys<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("voice:{}", id.as_ref()))
        .collect()
}

/// The ringing calls `ids` (with their `keys`) to `number`, routed to `agent`.
fn ringing_calls<'a, S: AsRef<str>>(
    ids: &'a [S],
    keys: &'a [String],
    number: &'a Number,
    agent: &'a Agent,
) -> Vec<InboundCall<'a>> {
    ids.iter()
        .zip(keys)
        .map(|(id, key)| ringing(id.as_ref(), number, Some(agent), key))
        .collect()
}

/// A call id in the form of Twilio's (`CA` and 32 lowercase hexadecimal digits), scattered
/// like Twilio's random ones: a different one for each `i`.
fn twilio_sid(i: u128) -> String {
    format!(
        "CA{:032x}",
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// A new agent of `org` answering by media stream (see [`media_agent`]).
async fn new_agent(registry: &Registry, org: &str, max_concurrent_calls: Option<u32>) -> Agent {
    registry
        .create_agent(org, media_agent(max_concurrent_calls))
        .await
        .expect("agent")
}

/// `e164` imported into `org` from `conn`, for outbound calls only (no carrier change).
async fn imported(registry: &Registry, org: &str, conn: &Connection, e164: &str) -> Number {
    done(
        registry
            .import_number(org, import(conn, e164, WebhookMode::OutboundOnly))
            .await
            .expect("import"),
    )
}

db_test!(one_read_gives_the_number_its_secrets_and_its_agent, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let agent = new_agent(&env.registry, &org, None).await;
    let number = imported(&env.registry, &org, &conn, "+14155550101").await;
    let route = env
        .registry
        .inbound_route(Provider::Twilio, "+14155550101")
        .await
        .expect("read")
        .expect("routable");
    assert_eq!(route.number.id, number.id);
    assert!(route.agent.is_none(), "no agent assigned yet");
    match &route.secrets {
        WebhookSecrets::Twilio {
            account_sid,
            current,
            previous,
        } => {
            assert_eq!(account_sid, &conn.account_id);
            assert_eq!(current.expose(), TWILIO_TOKEN);
            assert!(previous.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(route.account_id, conn.account_id);

    env.registry
        .assign_agent(&org, &number.id, Some(&agent.id))
        .await
        .expect("assign");
    let route = env
        .reopen()
        .await
        .inbound_route(Provider::Twilio, " +14155550101 ")
        .await
        .expect("read")
        .expect("routable");
    assert_eq!(
        route.agent.as_ref().map(|a| a.id.as_str()),
        Some(agent.id.as_str())
    );

    // A Twilio number is no Telnyx number; unknown and malformed numbers route nowhere.
    assert!(
        env.registry
            .inbound_route(Provider::Telnyx, "+14155550101")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        env.registry
            .inbound_route(Provider::Twilio, "+14155550199")
            .await
            .expect("read")
            .is_none()
    );
    assert!(matches!(
        env.registry
            .inbound_route(Provider::Twilio, "sip:bob@example.com")
            .await,
        Err(RegistryError::InvalidPhoneNumber)
    ));

    // A removed number no longer routes.
    env.registry
        .remove_number(&org, &number.id)
        .await
        .expect("remove");
    assert!(
        env.registry
            .inbound_route(Provider::Twilio, "+14155550101")
            .await
            .expect("read")
            .is_none()
    );
});

db_test!(
    a_rotated_connection_routes_with_both_tokens_during_the_grace,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        imported(&env.registry, &org, &conn, "+14155550101").await;
        env.registry
            .rotate_credentials(
                &org,
                &conn.id,
                crate::twilio_connection("main twilio", &conn.account_id, TWILIO_TOKEN).credentials,
            )
            .await
            .expect("rotate");
        let route = env
            .registry
            .inbound_route(Provider::Twilio, "+14155550101")
            .await
            .expect("read")
            .expect("routable");
        let WebhookSecrets::Twilio { previous, .. } = &route.secrets else {
            panic!("a twilio route");
        };
        assert_eq!(previous.as_ref().map(|p| p.expose()), Some(TWILIO_TOKEN));
        let now = chrono::Utc::now();
        assert!(route.previous_valid_at(now));
        // The route says when the previous token stops verifying, for whoever keeps it.
        let grace =
            chrono::Duration::from_std(env.registry.config().rotation_grace).expect("grace");
        assert!(!route.previous_valid_at(now + grace + chrono::Duration::seconds(1)));
    }
);

db_test!(
    a_call_is_admitted_recorded_and_answered_once_across_instances,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, Some(1)).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let call = |id: &'static str, key: &'static str| ringing(id, &number, Some(&agent), key);
        let first = env
            .registry
            .answer_inbound_call(&call("CA1", "voice:CA1"), |admission| {
                format!("{admission:?}")
            })
            .await
            .expect("answer");
        assert_eq!(first.body, "Admitted");
        assert!(first.fresh);

        // The same webhook again, on another instance: the first answer, nothing counted twice.
        let other = env.reopen().await;
        let retried = other
            .answer_inbound_call(&call("CA1", "voice:CA1"), |_| "second".to_owned())
            .await
            .expect("retry");
        assert_eq!(retried.body, "Admitted");
        assert!(!retried.fresh);
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1
        );
        let calls = env.registry.list_calls(&org, 10).await.expect("calls");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].carrier_call_id, "CA1");
        assert_eq!(calls[0].status, "ringing");
        let seen = env.registry.number(&org, &number.id).await.expect("number");
        assert!(
            seen.last_call_at.is_some(),
            "the call is noted on the number"
        );

        // A second call while the first is active: the agent is at its limit, counted in the
        // database, and the refused call is not counted.
        let second = other
            .answer_inbound_call(&call("CA2", "voice:CA2"), |admission| {
                format!("{admission:?}")
            })
            .await
            .expect("second call");
        assert_eq!(second.body, "AtCapacity");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            env.registry
                .list_calls(&org, 10)
                .await
                .expect("calls")
                .len(),
            2,
            "a refused call is still recorded"
        );

        // Once the first call ends, the next is admitted.
        env.registry
            .end_active_call_in_org(&org, Provider::Twilio, "CA1")
            .await
            .expect("end");
        let third = env
            .registry
            .answer_inbound_call(&call("CA3", "voice:CA3"), |admission| {
                format!("{admission:?}")
            })
            .await
            .expect("third call");
        assert_eq!(third.body, "Admitted");
    }
);

db_test!(
    racing_deliveries_of_one_counted_call_answer_the_same_document,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, Some(5)).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let other = env.reopen().await;
        let call = ringing("CA9", &number, Some(&agent), "voice:CA9");
        let (a, b) = tokio::join!(
            env.registry
                .answer_inbound_call(&call, |_| "from the first instance".to_owned()),
            other.answer_inbound_call(&call, |_| "from the second instance".to_owned()),
        );
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(a.body, b.body, "one answer per call");
        assert_eq!(
            u8::from(a.fresh) + u8::from(b.fresh),
            1,
            "exactly one delivery wrote"
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
                .list_calls(&org, 10)
                .await
                .expect("calls")
                .len(),
            1
        );
    }
);

db_test!(
    a_call_with_no_limit_is_answered_at_once_and_written_once_on_any_instance,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let other = env.reopen().await;
        let call = ringing("CA9", &number, Some(&agent), "voice:CA9");
        // Two deliveries racing on two instances, and a third later: each is answered with the
        // admitted document at once (the service renders the same one for every delivery).
        let render = |admission: Admission| format!("{admission:?} for CA9");
        let (a, b) = tokio::join!(
            env.registry.answer_inbound_call(&call, render),
            other.answer_inbound_call(&call, render),
        );
        let again = env
            .registry
            .answer_inbound_call(&call, render)
            .await
            .expect("third");
        for answer in [a.expect("first"), b.expect("second"), again] {
            assert_eq!(answer.body, "Admitted for CA9");
            assert_eq!(answer.admission, Some(Admission::Admitted));
        }
        // This registry reads what it answered: its reads wait for the writes.
        let calls = env.registry.list_calls(&org, 10).await.expect("calls");
        assert_eq!(calls.len(), 1, "one record however many deliveries");
        assert_eq!(calls[0].status, "ringing");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            0,
            "no limit applies: the call is written as its record alone"
        );
        let seen = env.registry.number(&org, &number.id).await.expect("number");
        assert!(
            seen.last_call_at.is_some(),
            "the call is noted on the number"
        );
        // Another instance sees it once written: the other registry's own reads wait for its
        // delivery, and both wrote into one database.
        assert_eq!(other.list_calls(&org, 10).await.expect("calls").len(), 1);
        assert_eq!(
            other
                .stored_response(Provider::Twilio, "voice:CA9")
                .await
                .expect("stored"),
            None,
            "an answer that depends on nothing stored is not stored"
        );

        // The agent is given a limit of one call while CA9 is on the line: CA9 is counted from
        // its record when the limit is set, a late delivery of CA9 is now counted, finds itself
        // already admitted and gets the same answer, and a new call is refused.
        let agent = other
            .update_agent(&org, &agent.id, media_agent(Some(1)))
            .await
            .expect("limit");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1,
            "the call in progress is counted once the limit is set"
        );
        let limited = InboundCall {
            agent: Some(&agent),
            ..call
        };
        let late = other
            .answer_inbound_call(&limited, render)
            .await
            .expect("late delivery");
        assert_eq!(late.body, "Admitted for CA9");
        assert_eq!(late.admission, Some(Admission::AlreadyAdmitted));
        let refused = other
            .answer_inbound_call(
                &InboundCall {
                    carrier_call_id: "CA11",
                    idempotency_key: "voice:CA11",
                    ..limited
                },
                render,
            )
            .await
            .expect("new call");
        assert_eq!(refused.admission, Some(Admission::AtCapacity));
        let agent = other
            .update_agent(&org, &agent.id, media_agent(None))
            .await
            .expect("no limit");
        let call = InboundCall {
            agent: Some(&agent),
            ..call
        };

        // A short call: its "completed" callback reached the other instance before this one
        // wrote the call. It is recorded once, completed, and not left counted as active.
        other
            .record_call(CallUpdate {
                org_id: org.clone(),
                provider: Provider::Twilio,
                carrier_call_id: "CA10".into(),
                number: number.e164.clone(),
                direction: Direction::Inbound,
                status: "completed".into(),
                duration_secs: Some(1),
                ended_at: None,
            })
            .await
            .expect("status callback");
        let short = InboundCall {
            carrier_call_id: "CA10",
            idempotency_key: "voice:CA10",
            ..call
        };
        env.registry
            .answer_inbound_call(&short, render)
            .await
            .expect("answer");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1,
            "only CA9 is active"
        );
        let calls = env.registry.list_calls(&org, 10).await.expect("calls");
        let short = calls
            .iter()
            .find(|c| c.carrier_call_id == "CA10")
            .expect("CA10 recorded");
        assert_eq!(short.status, "completed");
    }
);

db_test!(
    a_burst_of_calls_written_together_keeps_every_rule_of_one_call,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let (other_org, _) = twilio_org(&env.registry, "Other").await;
        let free = new_agent(&env.registry, &org, None).await;
        let limited = new_agent(&env.registry, &org, Some(3)).await;
        let plain_number = imported(&env.registry, &org, &conn, "+14155550100").await;
        let limited_number = imported(&env.registry, &org, &conn, "+14155550101").await;
        // The carrier reported CA-final's end before its first webhook; another organization
        // recorded CA-foreign first.
        env.registry
            .record_call(report(&org, "CA-final", "+14155550100", "completed"))
            .await
            .expect("record");
        env.registry
            .record_call(report(
                &other_org,
                "CA-foreign",
                "+14155550103",
                "in-progress",
            ))
            .await
            .expect("record");

        // 40 calls to the free agent and 10 to the limited one, each delivered twice, all at
        // once on one registry: they share group commits.
        let ids: Vec<String> = (0..50).map(|i| format!("CA{i:03}")).collect();
        let keys: Vec<String> = ids.iter().map(|id| format!("voice:{id}")).collect();
        let mut deliveries = Vec::new();
        for (i, (id, key)) in ids.iter().zip(&keys).enumerate() {
            let (number, agent) = if i < 40 {
                (&plain_number, &free)
            } else {
                (&limited_number, &limited)
            };
            for copy in 0..2 {
                deliveries.push((
                    InboundCall {
                        provider: Provider::Twilio,
                        carrier_call_id: id,
                        number,
                        agent: Some(agent),
                        status: "ringing",
                        forwarded: (i % 10 == 0).then_some(("+12125550199", None)),
                        idempotency_key: key,
                    },
                    copy,
                ));
            }
        }
        for id in ["CA-final", "CA-foreign"] {
            deliveries.push((
                InboundCall {
                    provider: Provider::Twilio,
                    carrier_call_id: id,
                    number: &plain_number,
                    agent: Some(&free),
                    status: "ringing",
                    forwarded: None,
                    idempotency_key: if id == "CA-final" {
                        "voice:CA-final"
                    } else {
                        "voice:CA-foreign"
                    },
                },
                0,
            ));
        }
        // A counted call's answer is the stored one, so each delivery renders its own to tell
        // them apart; a call with no limit is answered with its render at once, which must be
        // the same for every delivery (as the service's is).
        let answers = futures::future::join_all(deliveries.iter().map(|(call, copy)| {
            let counted = call.agent.is_some_and(|a| a.max_concurrent_calls.is_some());
            env.registry.answer_inbound_call(call, move |admission| {
                if counted {
                    format!("{admission:?} #{copy}")
                } else {
                    format!("{admission:?}")
                }
            })
        }))
        .await;
        let mut by_key: std::collections::HashMap<&str, Vec<(String, bool)>> = Default::default();
        for ((call, _), answer) in deliveries.iter().zip(answers) {
            let answer = answer.expect("answered");
            by_key
                .entry(call.idempotency_key)
                .or_default()
                .push((answer.body, answer.fresh));
        }
        for (key, answers) in &by_key {
            if keys[40..].iter().any(|k| k == key) {
                assert_eq!(
                    answers.iter().filter(|(_, fresh)| *fresh).count(),
                    1,
                    "{key}: exactly one delivery of a counted call wrote"
                );
            }
            assert!(
                answers.iter().all(|(body, _)| *body == answers[0].0),
                "{key}: one answer per call: {answers:?}"
            );
        }
        let verdicts: Vec<&str> = keys[40..]
            .iter()
            .map(|key| by_key[key.as_str()][0].0.as_str())
            .collect();
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| v.starts_with("Admitted"))
                .count(),
            3,
            "the limited agent admits exactly its limit: {verdicts:?}"
        );
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| v.starts_with("AtCapacity"))
                .count(),
            7
        );
        assert_eq!(
            env.registry
                .active_calls_for_agent(&limited.id)
                .await
                .expect("count"),
            3
        );
        // No limit applies to the free calls: nothing is counted for them until one is set;
        // then each is counted once, from its record; not CA-final, which the carrier reported
        // over before its webhook was written, nor CA-foreign, whose record is another
        // organization's.
        assert_eq!(
            env.registry
                .active_calls_for_agent(&free.id)
                .await
                .expect("count"),
            0
        );
        env.registry
            .update_agent(&org, &free.id, media_agent(Some(100)))
            .await
            .expect("limit");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&free.id)
                .await
                .expect("count"),
            40
        );
        let calls = env.registry.list_calls(&org, 100).await.expect("calls");
        assert_eq!(calls.len(), 51, "one record per call, refused ones too");
        let status_of = |id: &str| {
            calls
                .iter()
                .find(|c| c.carrier_call_id == id)
                .map(|c| c.status.clone())
        };
        assert_eq!(
            status_of("CA-final").as_deref(),
            Some("completed"),
            "a final status is never replaced by ringing"
        );
        assert_eq!(status_of("CA000").as_deref(), Some("ringing"));
        assert_eq!(
            calls.iter().filter(|c| c.forwarded_from.is_some()).count(),
            5
        );
        let foreign = env
            .registry
            .list_calls(&other_org, 10)
            .await
            .expect("calls");
        assert_eq!(foreign.len(), 1);
        assert_eq!(
            foreign[0].status, "in-progress",
            "another organization's record is left alone"
        );
        let seen = env
            .registry
            .number(&org, &limited_number.id)
            .await
            .expect("number");
        assert!(seen.last_call_at.is_some());
    }
);

db_test!(a_numbers_last_call_is_noted_to_within_a_minute, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = imported(&env.registry, &org, &conn, "+14155550101").await;
    let other = env.reopen().await;
    // Answers a new call to the number on `registry` and reads the number's last-call time.
    async fn last_call_after(
        registry: &Registry,
        number: &Number,
        id: &'static str,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        registry
            .answer_inbound_call(&ringing(id, number, None, id), |_| "<Response/>".to_owned())
            .await
            .expect("answer");
        registry.settle_inbound_calls().await;
        registry
            .number(&number.org_id, &number.id)
            .await
            .expect("number")
            .last_call_at
    }
    let this = &env.registry;
    let first = last_call_after(this, &number, "CA1")
        .await
        .expect("the first call is noted");
    // A call within the minute leaves the time alone: a busy number's row is not
    // rewritten by every group commit.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(last_call_after(this, &number, "CA2").await, Some(first));
    assert_eq!(last_call_after(&other, &number, "CA3").await, Some(first));
    // Once the time noted is more than a minute old, the next call notes its own. (Aged here
    // behind the instances' backs: the instance that noted the time leaves the number out of
    // its batches for half a minute, knowing the time is recent; the other looks.)
    let old = first - chrono::Duration::minutes(2);
    let sql = match env.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "UPDATE numbers SET last_call_at = $1 WHERE id = $2",
        _ => "UPDATE numbers SET last_call_at = ? WHERE id = ?",
    };
    env.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            env.db.get_database_backend(),
            sql,
            [old.into(), number.id.clone().into()],
        ))
        .await
        .expect("age the last call");
    assert_eq!(
        last_call_after(this, &number, "CA4").await,
        Some(old),
        "the instance that noted the time a moment ago does not look at the number again"
    );
    let fifth = last_call_after(&other, &number, "CA5")
        .await
        .expect("noted");
    assert!(fifth > first, "{fifth} after {first}");
    assert_eq!(
        env.registry
            .list_calls(&org, 10)
            .await
            .expect("calls")
            .len(),
        5,
        "every call is recorded all the same"
    );
});

db_test!(
    a_late_delivery_does_not_turn_an_answered_call_back_to_ringing,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let call = ringing("CA1", &number, None, "voice:CA1");
        let render = |_| "<Response/>".to_owned();
        env.registry
            .answer_inbound_call(&call, render)
            .await
            .expect("answer");
        env.registry.settle_inbound_calls().await;
        // The call is answered: the status callback says so, then the webhook arrives again
        // (a retry the carrier sent before it saw the first answer).
        env.registry
            .record_call(report(&org, "CA1", &number.e164, "in-progress"))
            .await
            .expect("status callback");
        let again = env
            .registry
            .answer_inbound_call(&call, render)
            .await
            .expect("late delivery");
        assert_eq!(again.body, "<Response/>");
        env.registry.settle_inbound_calls().await;
        let calls = env.registry.list_calls(&org, 10).await.expect("calls");
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].status, "in-progress",
            "the late delivery's ringing is older news"
        );
    }
);

db_test!(
    a_limit_set_later_counts_the_calls_in_progress_and_the_calls_answered_before_it_was_seen,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let mut numbers = Vec::new();
        for e164 in ["+14155550100", "+14155550101"] {
            numbers.push(done(
                env.registry
                    .import_number(&org, import(&conn, e164, WebhookMode::OutboundOnly))
                    .await
                    .expect("import"),
            ));
        }
        let (a, b) = (&numbers[0], &numbers[1]);
        let render = |admission: Admission| format!("{admission:?}");
        // No limit anywhere: CA1 and CA3 on number A reach the agent, CA2 on number B too, CA4
        // on number A reaches no agent; CA3 then ends.
        for (id, key, number, agent) in [
            ("CA1", "voice:CA1", a, Some(&agent)),
            ("CA2", "voice:CA2", b, Some(&agent)),
            ("CA3", "voice:CA3", a, Some(&agent)),
            ("CA4", "voice:CA4", a, None),
        ] {
            let answer = env
                .registry
                .answer_inbound_call(&ringing(id, number, agent, key), render)
                .await
                .expect("answer");
            assert_eq!(answer.admission, Some(Admission::Admitted));
        }
        env.registry
            .record_call(CallUpdate {
                org_id: org.clone(),
                provider: Provider::Twilio,
                carrier_call_id: "CA3".into(),
                number: a.e164.clone(),
                direction: Direction::Inbound,
                status: "completed".into(),
                duration_secs: Some(4),
                ended_at: Some(chrono::Utc::now()),
            })
            .await
            .expect("status callback");
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            0,
            "nothing is counted while no limit applies"
        );

        // A limit on number A counts its call in progress that reached an agent (CA1), not the
        // one that ended (CA3) nor the one no agent took (CA4); on another instance.
        let other = env.reopen().await;
        other
            .set_number_call_limit(&org, &a.id, Some(5))
            .await
            .expect("number limit");
        assert_eq!(
            env.registry
                .active_calls_for_number(&a.id)
                .await
                .expect("count"),
            1
        );
        // A limit on the agent counts its calls on both numbers, each once.
        for _ in 0..2 {
            other
                .update_agent(&org, &agent.id, media_agent(Some(5)))
                .await
                .expect("agent limit");
            assert_eq!(
                env.registry
                    .active_calls_for_agent(&agent.id)
                    .await
                    .expect("count"),
                2,
                "CA1 and CA2, once however often the limit is set"
            );
        }

        // A call answered from a route read before the limit (it carries no limit, so it was
        // answered at once, uncounted) is counted by its write, which sees the limit.
        let stale = ringing("CA5", b, Some(&agent), "voice:CA5");
        let answer = env
            .registry
            .answer_inbound_call(&stale, render)
            .await
            .expect("answer");
        assert_eq!(answer.admission, Some(Admission::Admitted));
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            3
        );
        let records = env.registry.list_calls(&org, 10).await.expect("calls");
        assert_eq!(records.len(), 5, "every call recorded once");
    }
);

db_test!(
    a_limit_whose_count_of_calls_in_progress_fails_is_not_set_and_setting_it_again_counts_them,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550100").await;
        // A call in progress, answered while no limit applied: written as its record alone.
        let answer = env
            .registry
            .answer_inbound_call(
                &ringing("CA1", &number, Some(&agent), "voice:CA1"),
                |admission| format!("{admission:?}"),
            )
            .await
            .expect("answer");
        assert_eq!(answer.admission, Some(Admission::Admitted));
        env.registry.settle_inbound_calls().await;

        // The database refuses the count's insert (as a failure midway would).
        let (fail, heal) = match env.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => (
                "CREATE TRIGGER refuse_count BEFORE INSERT ON active_calls \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                "DROP TRIGGER refuse_count",
            ),
            _ => (
                "CREATE FUNCTION refuse_count() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_count BEFORE INSERT ON active_calls \
                 FOR EACH ROW EXECUTE FUNCTION refuse_count();",
                "DROP TRIGGER refuse_count ON active_calls; DROP FUNCTION refuse_count();",
            ),
        };
        env.db.execute_unprepared(fail).await.expect("fault");
        let failed = env
            .registry
            .set_number_call_limit(&org, &number.id, Some(5))
            .await
            .expect_err("the count failed");
        assert_eq!(failed.code(), "internal_error", "{failed}");
        let renamed = NewAgent {
            name: "renamed".into(),
            ..media_agent(Some(5))
        };
        env.registry
            .update_agent(&org, &agent.id, renamed.clone())
            .await
            .expect_err("the count failed");
        // Nothing of either change stayed: no limit the calls in progress were not counted
        // against, and not the agent's new name either.
        assert_eq!(
            env.registry
                .number(&org, &number.id)
                .await
                .expect("number")
                .max_concurrent_calls,
            None
        );
        let unchanged = env.registry.agent(&org, &agent.id).await.expect("agent");
        assert_eq!(
            (unchanged.name.as_str(), unchanged.max_concurrent_calls),
            ("bot", None)
        );

        // Once the database accepts it, setting the limits again counts the call in progress.
        env.db.execute_unprepared(heal).await.expect("heal");
        env.registry
            .set_number_call_limit(&org, &number.id, Some(5))
            .await
            .expect("number limit");
        assert_eq!(
            env.registry
                .active_calls_for_number(&number.id)
                .await
                .expect("count"),
            1
        );
        let updated = env
            .registry
            .update_agent(&org, &agent.id, renamed)
            .await
            .expect("agent limit");
        assert_eq!(
            (updated.name.as_str(), updated.max_concurrent_calls),
            ("renamed", Some(5))
        );
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            1
        );
    }
);

db_test!(
    limits_set_and_removed_while_two_instances_answer_calls_count_every_call_once_and_never_deadlock,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let limited = Agent {
            max_concurrent_calls: Some(1000),
            ..agent.clone()
        };
        let a = imported(&env.registry, &org, &conn, "+14155550100").await;
        let b = imported(&env.registry, &org, &conn, "+14155550101").await;
        let other = env.reopen().await;
        // Each instance answers calls on both numbers in bursts, half of them from a route read
        // while the agent had no limit (written by the batch without a transaction on
        // PostgreSQL) and half from one read while it had one (counted in a transaction that
        // locks rows); meanwhile the limits of the agent and of number A are set and removed
        // on either instance, and finally set.
        let answer_all = |registry: Registry, instance: usize| {
            let (agent, limited, a, b) = (agent.clone(), limited.clone(), a.clone(), b.clone());
            async move {
                for burst in 0..15 {
                    let calls: Vec<(String, &Number, &Agent)> = (0..10)
                        .map(|i| {
                            let number = if i % 2 == 0 { &a } else { &b };
                            let route = if (burst + i) % 2 == 0 { &agent } else { &limited };
                            (format!("CA{instance}-{burst}-{i}"), number, route)
                        })
                        .collect();
                    let answers = futures::future::join_all(calls.iter().map(
                        |(id, number, route)| {
                            let key = format!("voice:{id}");
                            let registry = &registry;
                            async move {
                                registry
                                    .answer_inbound_call(
                                        &ringing(id, number, Some(route), &key),
                                        |admission| format!("{admission:?}"),
                                    )
                                    .await
                            }
                        },
                    ))
                    .await;
                    for answer in answers {
                        let answer = answer.expect("every call is answered");
                        assert!(matches!(
                            answer.admission,
                            Some(Admission::Admitted | Admission::AlreadyAdmitted)
                        ));
                    }
                    tokio::task::yield_now().await;
                }
            }
        };
        let toggle = {
            let (first, second) = (env.registry.clone(), other.clone());
            let (org, agent_id, number_id) = (org.clone(), agent.id.clone(), a.id.clone());
            async move {
                for round in 0..6 {
                    let registry = if round % 2 == 0 { &first } else { &second };
                    for limit in [Some(1000), None, Some(1000)] {
                        registry
                            .update_agent(&org, &agent_id, media_agent(limit))
                            .await
                            .expect("agent limit");
                        registry
                            .set_number_call_limit(&org, &number_id, limit)
                            .await
                            .expect("number limit");
                    }
                    if round < 5 {
                        registry
                            .update_agent(&org, &agent_id, media_agent(None))
                            .await
                            .expect("agent limit removed");
                        registry
                            .set_number_call_limit(&org, &number_id, None)
                            .await
                            .expect("number limit removed");
                    }
                }
            }
        };
        tokio::join!(
            answer_all(env.registry.clone(), 1),
            answer_all(other.clone(), 2),
            toggle
        );
        other.settle_inbound_calls().await;
        // Every call was in progress when the last limits were set, or was written after: each
        // is counted once, by the count or by its own write, and none was lost between them.
        assert_eq!(
            env.registry
                .active_calls_for_agent(&agent.id)
                .await
                .expect("count"),
            300
        );
        assert_eq!(
            env.registry
                .active_calls_for_number(&a.id)
                .await
                .expect("count"),
            150
        );
    }
);

db_test!(
    a_call_id_repeated_on_two_numbers_in_one_burst_is_recorded_once_and_loses_no_other_call,
    |env| {
        // An organization can sign webhooks for its own numbers with any CallSid: here it sends
        // one call id to two of its numbers, in the same burst as another organization's calls.
        // Every call must still be recorded, and the repeated id once. (The group commit writes
        // one row per carrier call id, as PostgreSQL's upsert cannot touch one row twice in a
        // statement; a group commit that fails is written again call by call, so this checks
        // the outcome, not which of the two produced it.) The first burst
        // has nothing to count (PostgreSQL writes it as one statement), the second holds calls
        // counted against a limit (a transaction, statement by statement).
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let (forger, forger_conn) = twilio_org(&env.registry, "Forger").await;
        let free = new_agent(&env.registry, &org, None).await;
        let limited = new_agent(&env.registry, &org, Some(100)).await;
        let forger_agent = new_agent(&env.registry, &forger, None).await;
        // The forger's two numbers are in two carrier accounts of its own.
        let second_conn = env
            .registry
            .connect_carrier(
                &forger,
                crate::twilio_connection(
                    "second account",
                    "AC0000000000000000000000000000aa02",
                    "twilio-token-two",
                ),
            )
            .await
            .expect("connect the second account");
        let own = imported(&env.registry, &org, &conn, "+14155550100").await;
        let forged = [
            imported(&env.registry, &forger, &forger_conn, "+14155550101").await,
            imported(&env.registry, &forger, &second_conn, "+14155550200").await,
        ];

        for (burst, with_counted) in [("a", false), ("b", true)] {
            let ids: Vec<String> = (0..30).map(|i| format!("CA-{burst}-{i:02}")).collect();
            let keys: Vec<String> = ids.iter().map(|id| format!("voice:{id}")).collect();
            let repeated = format!("CA-dup-{burst}");
            let forged_keys: Vec<String> = forged
                .iter()
                .map(|n| format!("voice:{}:{repeated}", n.id))
                .collect();
            let mut calls = Vec::new();
            for (i, (id, key)) in ids.iter().zip(&keys).enumerate() {
                let agent = if with_counted && i % 3 == 0 {
                    &limited
                } else {
                    &free
                };
                calls.push(ringing(id, &own, Some(agent), key));
                if i == 10 {
                    for (number, key) in forged.iter().zip(&forged_keys) {
                        calls.push(ringing(&repeated, number, Some(&forger_agent), key));
                    }
                }
            }
            let answers = answer_burst(&env.registry, &calls).await;
            for (call, answer) in calls.iter().zip(answers) {
                assert!(
                    answer.body.starts_with("Admitted"),
                    "{}: {}",
                    call.carrier_call_id,
                    answer.body
                );
            }
            env.registry.settle_inbound_calls().await;

            let recorded = env.registry.list_calls(&org, 1000).await.expect("calls");
            for id in &ids {
                assert_eq!(
                    recorded.iter().filter(|c| &c.carrier_call_id == id).count(),
                    1,
                    "burst {burst}: {id} recorded once"
                );
            }
            let forged_records = env.registry.list_calls(&forger, 1000).await.expect("calls");
            assert_eq!(
                forged_records
                    .iter()
                    .filter(|c| c.carrier_call_id == repeated)
                    .count(),
                1,
                "burst {burst}: the repeated call id is one record"
            );
        }
        assert_eq!(
            env.registry
                .active_calls_for_agent(&limited.id)
                .await
                .expect("count"),
            10,
            "the counted calls of the second burst are counted once each"
        );
    }
);

/// Sets a limit of 100 calls on `agent` of `org` and returns how many of its calls in progress
/// the limit found.
async fn count_once_limited(registry: &Registry, org: &str, agent: &str) -> u64 {
    let agent = registry
        .update_agent(org, agent, media_agent(Some(100)))
        .await
        .expect("limit");
    registry
        .active_calls_for_agent(&agent.id)
        .await
        .expect("count")
}

db_test!(
    a_burst_finding_records_of_some_of_its_calls_merges_them_and_writes_every_call_once,
    |env| {
        // Status callbacks overtook three calls' first webhooks: their records exist when the
        // burst is written. (On PostgreSQL the burst's plain insert of records then fails on
        // the call-id index, writing nothing, and the batch is written again with the upsert.)
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let overtaken = [
            ("CA-x-03", "initiated"),
            ("CA-x-07", "completed"),
            ("CA-x-11", "in-progress"),
        ];
        for (id, status) in overtaken {
            env.registry
                .record_call(report(&org, id, &number.e164, status))
                .await
                .expect("status callback");
        }
        for (burst, size) in [("x", 40), ("y", 20)] {
            let ids: Vec<String> = (0..size).map(|i| format!("CA-{burst}-{i:02}")).collect();
            let keys = voice_keys(&ids);
            let calls = ringing_calls(&ids, &keys, &number, &agent);
            let answers = answer_burst(&env.registry, &calls).await;
            for (call, answer) in calls.iter().zip(answers) {
                assert_eq!(answer.body, "Admitted", "{}", call.carrier_call_id);
            }
            env.registry.settle_inbound_calls().await;
            let recorded = env.registry.list_calls(&org, 1000).await.expect("calls");
            for id in &ids {
                let records: Vec<_> = recorded
                    .iter()
                    .filter(|c| &c.carrier_call_id == id)
                    .collect();
                assert_eq!(records.len(), 1, "{id} recorded once");
                let expected = match id.as_str() {
                    // A final status and `in-progress` are newer news than the webhook's.
                    "CA-x-07" => "completed",
                    "CA-x-11" => "in-progress",
                    _ => "ringing",
                };
                assert_eq!(records[0].status, expected, "{id}");
            }
        }
        // The overtaken records learned the agent from their webhooks: a limit set now counts
        // every call not over (all 60 but the completed CA-x-07).
        assert_eq!(count_once_limited(&env.registry, &org, &agent.id).await, 59);
    }
);

db_test!(
    a_burst_of_5000_calls_is_written_whole_and_each_call_is_found_again,
    |env| {
        // More calls at once than a PostgreSQL batch holds (2,048); SQLite writes them in
        // batches of up to 16,384. Every call is recorded once, and a status callback finds
        // its call's record rather than writing another.
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let ids: Vec<String> = (0..5_000).map(twilio_sid).collect();
        let keys = voice_keys(&ids);
        let calls = ringing_calls(&ids, &keys, &number, &agent);
        let answers = answer_burst(&env.registry, &calls).await;
        assert!(answers.iter().all(|answer| answer.body == "Admitted"));
        env.registry.settle_inbound_calls().await;
        let ended = env
            .registry
            .record_call(report(&org, &twilio_sid(4_321), &number.e164, "completed"))
            .await
            .expect("a status callback after the burst");
        assert_eq!(ended.carrier_call_id, twilio_sid(4_321));
        assert_eq!(ended.status, "completed");
        // Each call once, and the callback's call over: a second record of it, or a call
        // missing, would change the count.
        assert_eq!(
            count_once_limited(&env.registry, &org, &agent.id).await,
            4_999
        );
    }
);

db_test!(
    twilio_call_sids_in_a_burst_merge_with_their_status_callbacks_and_are_each_counted_once,
    |env| {
        // Call ids in the form of Twilio's (`CA` and 32 lowercase hexadecimal digits), which
        // SQLite keys by the 16 bytes they spell: the burst's upsert, the status callbacks'
        // lookup and the count of calls in progress all meet on the same records.
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        for (i, status) in [(3, "initiated"), (7, "completed"), (11, "in-progress")] {
            env.registry
                .record_call(report(&org, &twilio_sid(i), &number.e164, status))
                .await
                .expect("status callback");
        }
        let ids: Vec<String> = (0..20).map(twilio_sid).collect();
        let keys = voice_keys(&ids);
        let calls = ringing_calls(&ids, &keys, &number, &agent);
        for answer in answer_burst(&env.registry, &calls).await {
            assert_eq!(answer.body, "Admitted");
        }
        env.registry.settle_inbound_calls().await;
        let ended = env
            .registry
            .record_call(report(&org, &twilio_sid(5), &number.e164, "completed"))
            .await
            .expect("a status callback after the burst");
        let recorded = env.registry.list_calls(&org, 1000).await.expect("calls");
        assert_eq!(recorded.len(), 20, "every call recorded once");
        for (i, id) in ids.iter().enumerate() {
            let record = recorded
                .iter()
                .find(|c| &c.carrier_call_id == id)
                .unwrap_or_else(|| panic!("{id} recorded"));
            let expected = match i {
                5 | 7 => "completed",
                11 => "in-progress",
                _ => "ringing",
            };
            assert_eq!(record.status, expected, "{id}");
            if i == 5 {
                assert_eq!(record.id, ended.id, "the callback found the burst's record");
            }
        }
        assert_eq!(count_once_limited(&env.registry, &org, &agent.id).await, 18);
    }
);

db_test!(
    call_ids_with_any_characters_are_recorded_as_sent_and_a_stale_call_on_a_limited_number_is_counted,
    |env| {
        // A CallSid is whatever the signed webhook says: tabs, newlines, backslashes and
        // `\N` come back exactly (on PostgreSQL a batch's records are copied in as text,
        // where those characters delimit and escape fields and rows).
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let limited = imported(&env.registry, &org, &conn, "+14155550100").await;
        let free = imported(&env.registry, &org, &conn, "+14155550101").await;
        let ids: [&str; 5] = ["CA\ttab\t", "CA\\N", "CA\nline\r\n", "\\.", "CA é ünïcode"];
        let keys = voice_keys(&ids);
        let calls = ringing_calls(&ids, &keys, &free, &agent);
        answer_burst(&env.registry, &calls).await;

        // The route of `limited` was read before its limit was set: its call is answered at
        // once, uncounted, and counted by its write, which sees the number's limit (the agent
        // has none).
        env.registry
            .set_number_call_limit(&org, &limited.id, Some(3))
            .await
            .expect("number limit");
        let stale = ringing("CA-stale", &limited, Some(&agent), "voice:CA-stale");
        let answer = env
            .registry
            .answer_inbound_call(&stale, |admission| format!("{admission:?}"))
            .await
            .expect("answer");
        assert_eq!(answer.admission, Some(Admission::Admitted));
        env.registry.settle_inbound_calls().await;
        assert_eq!(
            env.registry
                .active_calls_for_number(&limited.id)
                .await
                .expect("count"),
            1
        );

        let recorded = env.registry.list_calls(&org, 100).await.expect("calls");
        for id in ids.iter().chain(["CA-stale"].iter()) {
            assert_eq!(
                recorded
                    .iter()
                    .filter(|c| c.carrier_call_id == *id)
                    .count(),
                1,
                "{id:?} recorded once, as sent"
            );
        }
        assert_eq!(recorded.len(), 6, "nothing else recorded");
    }
);

db_test!(
    a_dropped_registry_closes_its_writers_connections_and_leaves_a_shared_pool_working,
    |env| {
        // A second registry on the pool of the first (a service linking the crate may build
        // several on one pool). On PostgreSQL its writers write through connections of their
        // own, opened on their thread; dropping the registry ends that thread and closes them,
        // and the shared pool goes on serving the first registry.
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        let render = |_| "<Response/>".to_owned();
        let second = Registry::new(
            env.db.clone(),
            env.keyring.clone(),
            env.factory.clone(),
            env.registry.config().clone(),
        );
        second
            .answer_inbound_call(&ringing("CA-w-1", &number, None, "voice:CA-w-1"), render)
            .await
            .expect("answer on the second registry");
        second.settle_inbound_calls().await;
        let postgres = env.db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let backends = || async {
            let row = env
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()",
                ))
                .await
                .expect("count connections")
                .expect("a row");
            row.try_get::<i64>("", "n").expect("n")
        };
        let with_writers = if postgres { backends().await } else { 0 };
        drop(second);
        if postgres {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while backends().await >= with_writers {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the dropped registry's writers still hold their connections"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        env.registry
            .answer_inbound_call(&ringing("CA-w-2", &number, None, "voice:CA-w-2"), render)
            .await
            .expect("answer on the first registry");
        let calls = env.registry.list_calls(&org, 10).await.expect("calls");
        let mut ids: Vec<&str> = calls.iter().map(|c| c.carrier_call_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["CA-w-1", "CA-w-2"]);
    }
);

/// On SQLite, the keys in the two key tables of the call-id index and in both of them; None on
/// PostgreSQL, which has none.
async fn call_keys(db: &sea_orm::DatabaseConnection) -> Option<(i64, i64, i64)> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return None;
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            "SELECT (SELECT count(*) FROM call_keys_recent) AS recent, \
                    (SELECT count(*) FROM call_keys) AS merged, \
                    (SELECT count(*) FROM call_keys_recent JOIN call_keys USING (call_key)) \
                        AS both_tables",
        ))
        .await
        .expect("key tables")
        .expect("a row");
    let count = |column: &str| row.try_get::<i64>("", column).expect(column);
    Some((count("recent"), count("merged"), count("both_tables")))
}

db_test!(
    calls_recorded_before_and_after_a_merge_of_the_call_keys_are_each_found_and_recorded_once,
    |env| {
        // SQLite finds a call's record through two key tables, the recent calls' and the merged
        // ones' (the writer merges every 131,072 calls; here on demand). A status callback, a
        // webhook whose record a callback wrote first, and a limit's count of calls in progress
        // find a call's record the same wherever its key is; nothing is recorded twice.
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let agent = new_agent(&env.registry, &org, None).await;
        let number = imported(&env.registry, &org, &conn, "+14155550101").await;
        // Ten calls answered, two reported by the carrier before their webhooks (one of them
        // with an id not of Twilio's form), then all merged.
        let early: Vec<String> = (0..10).map(twilio_sid).collect();
        let keys = voice_keys(&early);
        answer_burst(
            &env.registry,
            &ringing_calls(&early, &keys, &number, &agent),
        )
        .await;
        for (id, status) in [
            (twilio_sid(100), "in-progress"),
            ("CA-odd".into(), "completed"),
        ] {
            env.registry
                .record_call(report(&org, &id, &number.e164, status))
                .await
                .expect("a status callback before the webhook");
        }
        let merged = env.registry.merge_recent_call_keys().await.expect("merge");
        assert_eq!(env.registry.recent_call_keys().await.expect("recent"), 0);
        if let Some((recent, in_merged, both)) = call_keys(&env.db).await {
            assert_eq!((merged, recent, in_merged, both), (12, 0, 12, 0));
        } else {
            assert_eq!(merged, 0, "PostgreSQL has no key tables");
        }
        // Ten more calls, their keys recent, and the webhooks of the two reported calls.
        let late: Vec<String> = (10..20).map(twilio_sid).collect();
        let mut ids = late.clone();
        ids.extend([twilio_sid(100), "CA-odd".into()]);
        let keys = voice_keys(&ids);
        for answer in
            answer_burst(&env.registry, &ringing_calls(&ids, &keys, &number, &agent)).await
        {
            assert_eq!(answer.body, "Admitted");
        }
        env.registry.settle_inbound_calls().await;
        // Status callbacks for a merged call and a recent one find the burst's records.
        let recorded = env.registry.list_calls(&org, 100).await.expect("calls");
        for id in [&early[4], &late[6]] {
            let ended = env
                .registry
                .record_call(report(&org, id, &number.e164, "completed"))
                .await
                .expect("status callback");
            let record = recorded
                .iter()
                .find(|c| &c.carrier_call_id == id)
                .unwrap_or_else(|| panic!("{id} recorded"));
            assert_eq!(ended.id, record.id, "{id}: the callback found its record");
        }
        let recorded = env.registry.list_calls(&org, 100).await.expect("calls");
        assert_eq!(recorded.len(), 22, "every call recorded once");
        let status = |id: &str| {
            recorded
                .iter()
                .find(|c| c.carrier_call_id == id)
                .map(|c| c.status.clone())
                .unwrap_or_else(|| panic!("{id} recorded"))
        };
        assert_eq!(
            status(&twilio_sid(100)),
            "in-progress",
            "ringing is older news"
        );
        assert_eq!(status("CA-odd"), "completed");
        assert_eq!(status(&early[4]), "completed");
        assert_eq!(status(&late[6]), "completed");
        assert_eq!(status(&early[5]), "ringing");
        if let Some((recent, merged, both)) = call_keys(&env.db).await {
            assert_eq!(
                (recent, merged, both),
                (10, 12, 0),
                "one key for each record"
            );
        }
        // The reported calls learned their agent from their webhooks: a limit now counts every
        // call not over (22 less the three completed).
        assert_eq!(count_once_limited(&env.registry, &org, &agent.id).await, 19);
        // Merged again, everything is found as before: another status callback and a late
        // delivery of a webhook change the one record each.
        env.registry.merge_recent_call_keys().await.expect("merge");
        if let Some((recent, merged, both)) = call_keys(&env.db).await {
            assert_eq!((recent, merged, both), (0, 22, 0));
        }
        let ended = env
            .registry
            .record_call(report(&org, &late[7], &number.e164, "busy"))
            .await
            .expect("status callback");
        assert_eq!(ended.status, "busy");
        let retried = ringing(&late[7], &number, Some(&agent), "voice:retried");
        env.registry
            .answer_inbound_call(&retried, |_| "<Response/>".to_owned())
            .await
            .expect("a late delivery under another key");
        env.registry.settle_inbound_calls().await;
        let recorded = env.registry.list_calls(&org, 100).await.expect("calls");
        assert_eq!(recorded.len(), 22);
        let record = recorded
            .iter()
            .find(|c| c.carrier_call_id == late[7])
            .expect("recorded");
        assert_eq!(record.id, ended.id);
        assert_eq!(record.status, "busy", "ringing is older news");
    }
);
