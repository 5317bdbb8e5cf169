//! The import picker, import and its error codes, managed mode, removal, diagnostics and drift.

use telephony_carrier::{InboundConfig, TelnyxVoiceConfig};
use telephony_registry::{
    AgentTarget, Applied, NewAgent, NumberStatus, Registry, RegistryConfig, Restore, WebhookMode,
};

use crate::harness::*;
use crate::{
    customer_voice_url, db_test, done, gateway_voice_url, import, telnyx_connection, twilio_org,
};

db_test!(
    the_picker_lists_voice_numbers_across_pages_and_marks_imported_ones,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import");
        let numbers = env
            .registry
            .list_account_numbers(&org, &conn.id, false)
            .await
            .expect("list");
        let listed: Vec<_> = numbers
            .iter()
            .map(|n| (n.e164.as_str(), n.already_imported))
            .collect();
        assert_eq!(listed, [("+14155550100", false), ("+14155550101", true)]);
        // Three numbers at two a page: the picker walked both pages.
        let all = env
            .registry
            .list_account_numbers(&org, &conn.id, true)
            .await
            .expect("list all");
        assert_eq!(all.len(), 3);
        assert!(
            !all.iter()
                .find(|n| n.e164 == "+14155550102")
                .expect("sms")
                .voice_capable
        );
        let audit = env.registry.audit_log(&org, 50).await.expect("audit");
        assert_eq!(
            audit.iter().filter(|e| e.action == "list_numbers").count(),
            4
        );
    }
);

db_test!(import_refuses_with_a_code_for_each_reason, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let cases = [
        ("4155550100", "invalid_phone_number"),
        ("+1415555010x", "invalid_phone_number"),
        ("+14155550200", "number_not_in_account"),
        ("+14155550102", "number_not_voice_capable"),
    ];
    for (e164, code) in cases {
        let error = env
            .registry
            .import_number(&org, import(&conn, e164, WebhookMode::Managed))
            .await
            .unwrap_err();
        assert_eq!(error.code(), code, "{e164}");
    }
    let mut unknown_conn = import(&conn, "+14155550100", WebhookMode::Managed);
    unknown_conn.connection_id = "nope".into();
    let error = env
        .registry
        .import_number(&org, unknown_conn)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "not_found");
    let mut unknown_agent = import(&conn, "+14155550100", WebhookMode::Managed);
    unknown_agent.agent_id = Some("nope".into());
    let error = env
        .registry
        .import_number(&org, unknown_agent)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "not_found");
    assert!(
        env.registry
            .list_numbers(&org)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        env.twilio_number("+14155550100").voice_url,
        customer_voice_url()
    );
});

db_test!(
    a_number_imported_by_one_org_is_refused_to_another_without_naming_it,
    |env| {
        let (acme, acme_conn) = twilio_org(&env.registry, "Acme").await;
        let (other, other_conn) = twilio_org(&env.registry, "Other").await;
        env.registry
            .import_number(
                &acme,
                import(&acme_conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import");
        let error = env
            .registry
            .import_number(
                &other,
                import(&other_conn, "+14155550100", WebhookMode::Managed),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), "number_already_imported");
        assert!(!error.to_string().contains(&acme));
        assert!(!error.to_string().contains("Acme"));
        let again = env
            .registry
            .import_number(
                &acme,
                import(&acme_conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .unwrap_err();
        assert_eq!(again.code(), "number_already_imported");
        // The other org cannot see the number either.
        let number = &env.registry.list_numbers(&acme).await.expect("list")[0];
        assert_eq!(
            env.registry
                .number(&other, &number.id)
                .await
                .unwrap_err()
                .code(),
            "not_found"
        );
    }
);

db_test!(outbound_only_import_changes_nothing_at_the_carrier, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let before = env.twilio_number("+14155550100");
    let number = done(
        env.registry
            .import_number(
                &org,
                import(&conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    assert_eq!(number.webhook_mode, WebhookMode::OutboundOnly);
    assert_eq!(number.status, NumberStatus::Active);
    assert_eq!(number.nickname.as_deref(), Some("front desk"));
    assert!(number.carrier_id.starts_with("PN"));
    assert_eq!(env.twilio_number("+14155550100"), before);
    assert!(
        env.emulator
            .state()
            .requests
            .iter()
            .all(|r| r.method == "GET")
    );
    let found = env
        .registry
        .number_by_e164("+14155550100")
        .await
        .expect("lookup");
    assert_eq!(found.expect("routable").id, number.id);
});

db_test!(
    a_managed_import_saves_the_config_and_points_the_number_at_the_gateway,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let mut dry = import(&conn, "+14155550100", WebhookMode::Managed);
        dry.dry_run = true;
        let Applied::DryRun { changes } = env
            .registry
            .import_number(&org, dry)
            .await
            .expect("dry run")
        else {
            panic!("expected a dry run");
        };
        assert_eq!(changes.len(), 1);
        let InboundConfig::Twilio(to) = &changes[0].to else {
            panic!("twilio")
        };
        assert_eq!(to.voice_url, gateway_voice_url());
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            customer_voice_url()
        );
        assert!(
            env.registry
                .list_numbers(&org)
                .await
                .expect("list")
                .is_empty()
        );

        let number = done(
            env.registry
                .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
                .await
                .expect("import"),
        );
        assert_eq!(number.webhook_mode, WebhookMode::Managed);
        let InboundConfig::Twilio(saved) = number.saved_inbound.clone().expect("saved") else {
            panic!("twilio")
        };
        assert_eq!(saved.voice_url, customer_voice_url());
        let at_carrier = env.twilio_number("+14155550100");
        assert_eq!(at_carrier.voice_url, gateway_voice_url());
        assert_eq!(at_carrier.voice_method, "POST");
        assert_eq!(
            at_carrier.voice_fallback_url.as_deref(),
            Some("https://gw.example.com/webhooks/twilio/fallback")
        );
        assert_eq!(
            at_carrier.status_callback.as_deref(),
            Some("https://gw.example.com/webhooks/twilio/status")
        );
        let audit = env.registry.audit_log(&org, 1).await.expect("audit");
        assert_eq!(audit[0].action, "replace_inbound_config");
        assert!(audit[0].changed_account);
        assert_eq!(audit[0].number.as_deref(), Some("+14155550100"));
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 0);
    }
);

db_test!(
    a_managed_telnyx_import_ties_the_number_to_the_texml_app,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let conn = env
            .registry
            .connect_carrier(&org.id, telnyx_connection())
            .await
            .expect("telnyx");
        let number = done(
            env.registry
                .import_number(&org.id, import(&conn, "+13125550100", WebhookMode::Managed))
                .await
                .expect("import"),
        );
        assert_eq!(
            number.saved_inbound,
            Some(InboundConfig::Telnyx(TelnyxVoiceConfig {
                connection_id: Some(TELNYX_OTHER_CONN.into())
            }))
        );
        assert_eq!(
            env.telnyx_number("+13125550100").connection_id.as_deref(),
            Some(TELNYX_APP)
        );
        let report = env
            .registry
            .remove_number(&org.id, &number.id)
            .await
            .expect("remove");
        assert_eq!(report.restore, Restore::Restored);
        assert_eq!(
            env.telnyx_number("+13125550100").connection_id.as_deref(),
            Some(TELNYX_OTHER_CONN)
        );
    }
);

db_test!(
    switching_modes_sets_and_restores_the_carrier_config,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(
                    &org,
                    import(&conn, "+14155550100", WebhookMode::OutboundOnly),
                )
                .await
                .expect("import"),
        );
        let Applied::DryRun { changes } = env
            .registry
            .set_webhook_mode(&org, &number.id, WebhookMode::Managed, true)
            .await
            .expect("dry")
        else {
            panic!("dry run")
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            customer_voice_url()
        );

        let managed = done(
            env.registry
                .set_webhook_mode(&org, &number.id, WebhookMode::Managed, false)
                .await
                .expect("managed"),
        );
        assert_eq!(managed.webhook_mode, WebhookMode::Managed);
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            gateway_voice_url()
        );

        let back = done(
            env.registry
                .set_webhook_mode(&org, &number.id, WebhookMode::OutboundOnly, false)
                .await
                .expect("outbound only"),
        );
        assert_eq!(back.webhook_mode, WebhookMode::OutboundOnly);
        assert!(back.saved_inbound.is_none());
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            customer_voice_url()
        );
        assert_eq!(env.registry.pending_operations().await.expect("ops"), 0);
    }
);

db_test!(assigning_renaming_and_unassigning_an_agent, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let agent = env
        .registry
        .create_agent(
            &org,
            NewAgent {
                name: "bot".into(),
                target: AgentTarget::Sip("sip:bot@agents.example".into()),
                fallback_number: Some("+14155559999".into()),
                max_concurrent_calls: None,
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
    let assigned = env
        .registry
        .assign_agent(&org, &number.id, Some(&agent.id))
        .await
        .expect("assign");
    assert_eq!(assigned.agent_id.as_deref(), Some(agent.id.as_str()));
    let renamed = env
        .registry
        .rename_number(&org, &number.id, Some(" sales "))
        .await
        .expect("rename");
    assert_eq!(renamed.nickname.as_deref(), Some("sales"));
    let unassigned = env
        .registry
        .assign_agent(&org, &number.id, None)
        .await
        .expect("unassign");
    assert!(unassigned.agent_id.is_none());
    let other = env
        .registry
        .create_organization("Other")
        .await
        .expect("org");
    let error = env
        .registry
        .assign_agent(&other.id, &number.id, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "not_found");
});

db_test!(
    removing_restores_only_what_the_gateway_still_holds_and_never_releases,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let first = done(
            env.registry
                .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
                .await
                .expect("import"),
        );
        let report = env
            .registry
            .remove_number(&org, &first.id)
            .await
            .expect("remove");
        assert_eq!(report.restore, Restore::Restored);
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            customer_voice_url()
        );

        // Imported again, then repointed in the console by someone else.
        let second = done(
            env.registry
                .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
                .await
                .expect("import again"),
        );
        repoint_in_console(&env, &org, &conn.id).await;
        let report = env
            .registry
            .remove_number(&org, &second.id)
            .await
            .expect("remove");
        let Restore::LeftAsRepointed {
            current: InboundConfig::Twilio(current),
        } = report.restore
        else {
            panic!("expected the number to be left as repointed")
        };
        assert_eq!(
            current.voice_url.as_deref(),
            Some("https://someone-else.example/webhooks/twilio/voice")
        );
        assert_eq!(
            env.twilio_number("+14155550100").voice_url.as_deref(),
            Some("https://someone-else.example/webhooks/twilio/voice")
        );
        // Never released at the carrier.
        assert!(
            env.emulator
                .state()
                .requests
                .iter()
                .all(|r| r.method != "DELETE")
        );
        assert!(
            env.registry
                .list_numbers(&org)
                .await
                .expect("list")
                .is_empty()
        );
    }
);

/// Someone changes the number's voice URL outside the gateway: simulated by setting it through
/// the carrier API with the same account's credentials.
pub async fn repoint_in_console(env: &Env, org: &str, conn_id: &str) {
    let carrier = env
        .registry
        .carrier_for(org, conn_id)
        .await
        .expect("carrier");
    let owned = carrier
        .fetch_number(&telephony_carrier::E164::parse("+14155550100").expect("e164"))
        .await
        .expect("fetch");
    let InboundConfig::Twilio(mut config) = owned.inbound else {
        panic!("twilio")
    };
    config.voice_url = Some("https://someone-else.example/webhooks/twilio/voice".into());
    carrier
        .replace_inbound_config(&owned.carrier_id, &InboundConfig::Twilio(config))
        .await
        .expect("repoint");
}

db_test!(diagnostics_run_the_checklist_and_drift_is_detected, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = done(
        env.registry
            .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
            .await
            .expect("import"),
    );
    let diagnostics = env
        .registry
        .diagnose_number(&org, &number.id)
        .await
        .expect("diagnose");
    for name in [
        "credentials_valid",
        "number_in_account",
        "voice_capable",
        "points_at_gateway",
        "region_matches",
    ] {
        assert!(
            diagnostics.check(name).expect(name).ok,
            "{name}: {diagnostics:?}"
        );
    }
    assert!(!diagnostics.check("agent_assigned").expect("agent").ok);
    assert!(diagnostics.last_call_at.is_none());
    assert!(
        env.registry
            .detect_drift(&org)
            .await
            .expect("drift")
            .is_empty()
    );

    repoint_in_console(&env, &org, &conn.id).await;
    let diagnostics = env
        .registry
        .diagnose_number(&org, &number.id)
        .await
        .expect("diagnose");
    assert!(!diagnostics.check("points_at_gateway").expect("check").ok);
    assert!(!diagnostics.healthy());
    let drift = env.registry.detect_drift(&org).await.expect("drift");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].e164, "+14155550100");

    env.fault("GET", "/2010-04-01/Accounts/*", 401, 10);
    let diagnostics = env
        .registry
        .diagnose_number(&org, &number.id)
        .await
        .expect("diagnose");
    assert!(!diagnostics.check("credentials_valid").expect("check").ok);
    assert!(!diagnostics.check("number_in_account").expect("check").ok);
});

db_test!(
    a_new_public_url_repoints_every_managed_number_it_still_holds,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = done(
            env.registry
                .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
                .await
                .expect("import"),
        );
        done(
            env.registry
                .import_number(
                    &org,
                    import(&conn, "+14155550101", WebhookMode::OutboundOnly),
                )
                .await
                .expect("import"),
        );
        let moved = Registry::new(
            env.db.clone(),
            env.keyring.clone(),
            env.factory.clone(),
            RegistryConfig::new("https://new-gw.example.com/"),
        );
        assert_eq!(moved.repoint_managed_numbers().await.expect("repoint"), 1);
        assert_eq!(
            env.twilio_number("+14155550100").voice_url.as_deref(),
            Some("https://new-gw.example.com/webhooks/twilio/voice")
        );
        assert_eq!(env.twilio_number("+14155550101").voice_url, None);
        assert_eq!(moved.repoint_managed_numbers().await.expect("again"), 0);
        // The customer's saved config is untouched, so removal still restores it.
        let report = moved.remove_number(&org, &number.id).await.expect("remove");
        assert_eq!(report.restore, Restore::Restored);
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            customer_voice_url()
        );
    }
);

db_test!(managed_mode_on_telnyx_needs_a_texml_app, |env| {
    let org = env.registry.create_organization("Acme").await.expect("org");
    let mut new = telnyx_connection();
    new.texml_app_id = None;
    let conn = env
        .registry
        .connect_carrier(&org.id, new)
        .await
        .expect("telnyx");
    let error = env
        .registry
        .import_number(&org.id, import(&conn, "+13125550100", WebhookMode::Managed))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_request");
});

db_test!(
    l1_an_unowned_number_does_not_reveal_that_it_is_imported,
    |env| {
        let (acme, acme_conn) = twilio_org(&env.registry, "Acme").await;
        env.registry
            .import_number(
                &acme,
                import(&acme_conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import");
        let other = env
            .registry
            .create_organization("Other")
            .await
            .expect("org");
        let other_conn = env
            .registry
            .connect_carrier(
                &other.id,
                crate::twilio_connection("second account", TWILIO_SID_2, TWILIO_TOKEN_2),
            )
            .await
            .expect("connect");
        // The second account does not own the number: that is all it learns.
        let error = env
            .registry
            .import_number(
                &other.id,
                import(&other_conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), "number_not_in_account");
        // An owner still hears that the number is taken.
        let (third, third_conn) = twilio_org(&env.registry, "Third").await;
        let error = env
            .registry
            .import_number(
                &third,
                import(&third_conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), "number_already_imported");
    }
);
