//! Managed numbers (bought in the platform's account, one Twilio subaccount per organization)
//! and forwarded business numbers.

use chrono::SubsecRound;
use telephony_carrier::{AvailableQuery, NumberType, Provider};
use telephony_registry::{
    ForwardedCall, NewForwardedNumber, NumberPath, OrderStatus, PlatformAccounts, PlatformTelnyx,
    PlatformTwilio, Registry, WebhookMode,
};
use telephony_vault::SecretString;

use crate::harness::*;
use crate::{db_test, import, twilio_org};

fn platform() -> PlatformAccounts {
    PlatformAccounts {
        twilio: Some(PlatformTwilio {
            account_sid: TWILIO_SID.to_owned(),
            auth_token: SecretString::new(TWILIO_TOKEN),
        }),
        telnyx: Some(PlatformTelnyx {
            api_key: SecretString::new(TELNYX_KEY),
            public_key: "cHVibGljLWtleQ==".to_owned(),
            texml_app_id: TELNYX_APP.to_owned(),
            account_sid: Some(TELNYX_ACCOUNT.to_owned()),
        }),
    }
}

fn local(area_code: &str) -> AvailableQuery {
    AvailableQuery {
        country: "US".to_owned(),
        area_code: Some(area_code.to_owned()),
        number_type: NumberType::Local,
        limit: 10,
    }
}

async fn managed(env: &Env) -> Registry {
    env.reopen().await.with_platform_accounts(platform())
}

db_test!(
    twilio_purchases_go_to_one_subaccount_per_organization,
    |env| {
        let registry = managed(&env).await;
        let org = registry.create_organization("Acme").await.expect("org").id;
        let found = registry
            .search_managed_numbers(&org, Provider::Twilio, &local("415"))
            .await
            .expect("search");
        assert!(found.iter().any(|n| n.e164.as_str() == "+14155550901"));

        let (order, number) = registry
            .buy_managed_number(&org, Provider::Twilio, "+14155550901")
            .await
            .expect("buy");
        assert_eq!(order.status, OrderStatus::Completed);
        let number = number.expect("bought at once");
        assert_eq!(order.number_id.as_deref(), Some(number.id.as_str()));
        assert_eq!(number.webhook_mode, WebhookMode::Managed);
        assert_eq!(
            registry.number_path(&number).await.expect("path"),
            NumberPath::Managed
        );
        let (_, number_two) = registry
            .buy_managed_number(&org, Provider::Twilio, "+14155550902")
            .await
            .expect("second buy");
        let number_two = number_two.expect("bought at once");
        assert_eq!(number.connection_id, number_two.connection_id);

        let state = env.emulator.state();
        let subaccounts: Vec<_> = state
            .twilio_accounts
            .iter()
            .filter(|a| a.owner_account_sid.as_deref() == Some(TWILIO_SID))
            .collect();
        assert_eq!(subaccounts.len(), 1, "one subaccount for the organization");
        for e164 in ["+14155550901", "+14155550902"] {
            let bought = env.twilio_number(e164);
            assert_eq!(bought.account_sid, subaccounts[0].sid);
            assert_eq!(
                bought.voice_url.as_deref(),
                Some("https://gw.example.com/webhooks/twilio/voice")
            );
        }
        let conn = registry
            .connection(&org, &number.connection_id)
            .await
            .expect("managed connection");
        assert_eq!(conn.account_id, subaccounts[0].sid);
        // The webhook secret is the subaccount's token, which signs its numbers' webhooks.
        match registry.webhook_secrets(&conn.id).await.expect("secrets") {
            telephony_registry::WebhookSecrets::Twilio { current, .. } => {
                assert_eq!(current.expose(), subaccounts[0].auth_token);
            }
            other => panic!("expected twilio secrets, got {other:?}"),
        }
        let audit = registry.audit_log(&org, 50).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == "create_subaccount")
                .count(),
            1
        );
        assert_eq!(actions.iter().filter(|a| **a == "buy_number").count(), 2);
        assert!(actions.contains(&"search_available"));
        for entry in &audit {
            assert!(!entry.outcome.contains(&subaccounts[0].auth_token));
        }

        // A number owned by some organization cannot be bought again.
        let again = registry
            .buy_managed_number(&org, Provider::Twilio, "+14155550901")
            .await
            .expect_err("taken");
        assert_eq!(again.code(), "number_already_imported");
        let bad = registry
            .buy_managed_number(&org, Provider::Twilio, "4155550901")
            .await
            .expect_err("not e164");
        assert_eq!(bad.code(), "invalid_phone_number");

        // Releasing gives the number back to the carrier and forgets it.
        let released = registry
            .release_managed_number(&org, &number.id)
            .await
            .expect("release");
        assert_eq!(released.e164, "+14155550901");
        assert!(!released.already_gone);
        assert!(
            !env.emulator
                .state()
                .twilio_numbers
                .iter()
                .any(|n| n.phone_number == "+14155550901")
        );
        assert_eq!(
            registry
                .number(&org, &number.id)
                .await
                .expect_err("gone")
                .code(),
            "not_found"
        );
        assert_eq!(
            registry
                .managed_order(&org, &order.id)
                .await
                .expect("order")
                .status,
            OrderStatus::Released
        );
    }
);

db_test!(an_imported_number_is_never_released, |env| {
    let registry = managed(&env).await;
    let (org, conn) = twilio_org(&registry, "Acme").await;
    let number = crate::done(
        registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    assert_eq!(
        registry.number_path(&number).await.expect("path"),
        NumberPath::Imported
    );
    let refused = registry
        .release_managed_number(&org, &number.id)
        .await
        .expect_err("imported");
    assert_eq!(refused.code(), "conflict");
    assert!(
        env.emulator
            .state()
            .twilio_numbers
            .iter()
            .any(|n| n.phone_number == "+14155550101")
    );
    assert!(
        !registry
            .audit_log(&org, 50)
            .await
            .expect("audit")
            .iter()
            .any(|e| e.action == "release_number")
    );
    // Another organization's number is not found, not refused.
    let other = registry.create_organization("Other").await.expect("org").id;
    assert_eq!(
        registry
            .release_managed_number(&other, &number.id)
            .await
            .expect_err("other org")
            .code(),
        "not_found"
    );
});

db_test!(a_pending_telnyx_order_is_finished_after_a_restart, |env| {
    let registry = managed(&env).await;
    let org = registry.create_organization("Acme").await.expect("org").id;
    let (order, number) = registry
        .buy_managed_number(&org, Provider::Telnyx, "+13125550901")
        .await
        .expect("buy");
    assert_eq!(order.status, OrderStatus::Pending);
    assert!(number.is_none());
    assert!(
        registry
            .number_by_e164("+13125550901")
            .await
            .expect("lookup")
            .is_none()
    );
    drop(registry);

    // Another process (or this one restarted) finishes it from the database alone.
    let restarted = managed(&env).await;
    let first = restarted.refresh_managed_orders().await.expect("refresh");
    assert_eq!(first.still_pending, 1, "the emulator answers pending once");
    let second = restarted.refresh_managed_orders().await.expect("refresh");
    assert_eq!(second.completed, 1);
    let number = restarted
        .number_by_e164("+13125550901")
        .await
        .expect("lookup")
        .expect("the number exists");
    assert_eq!(number.org_id, org);
    assert_eq!(
        restarted.number_path(&number).await.expect("path"),
        NumberPath::Managed
    );
    assert_eq!(
        env.telnyx_number("+13125550901").connection_id.as_deref(),
        Some(TELNYX_APP)
    );
    let order = restarted
        .managed_order(&org, &order.id)
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::Completed);
    assert_eq!(order.number_id.as_deref(), Some(number.id.as_str()));
    // The operator changes the platform's Telnyx account: a start brings the connection along.
    let mut changed = platform();
    if let Some(telnyx) = changed.telnyx.as_mut() {
        telnyx.public_key = "bmV3LWtleQ==".to_owned();
    }
    let moved = env.reopen().await.with_platform_accounts(changed);
    assert_eq!(moved.sync_platform_telnyx().await.expect("sync"), 1);
    assert_eq!(moved.sync_platform_telnyx().await.expect("sync"), 0);
    match moved
        .webhook_secrets(&number.connection_id)
        .await
        .expect("secrets")
    {
        telephony_registry::WebhookSecrets::Telnyx { current, .. } => {
            assert_eq!(current.as_deref(), Some("bmV3LWtleQ=="));
        }
        other => panic!("expected telnyx secrets, got {other:?}"),
    }
    // Nothing left to do.
    assert_eq!(
        restarted.refresh_managed_orders().await.expect("refresh"),
        telephony_registry::OrderRefresh::default()
    );
});

db_test!(managed_numbers_need_a_platform_account, |env| {
    let org = env
        .registry
        .create_organization("Acme")
        .await
        .expect("org")
        .id;
    let error = env
        .registry
        .buy_managed_number(&org, Provider::Twilio, "+14155550901")
        .await
        .expect_err("no platform account");
    assert_eq!(error.code(), "invalid_request");
    assert!(
        env.emulator
            .state()
            .twilio_accounts
            .iter()
            .all(|a| a.owner_account_sid.is_none())
    );
});

db_test!(forwarded_business_numbers_are_stored_per_target, |env| {
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    let number = crate::done(
        env.registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    let agent = env
        .registry
        .create_agent(
            &org,
            telephony_registry::NewAgent {
                name: "front desk".into(),
                target: telephony_registry::AgentTarget::Sip("sip:desk@agents.example".into()),
                fallback_number: None,
                max_concurrent_calls: None,
            },
        )
        .await
        .expect("agent");
    let added = env
        .registry
        .add_forwarded_number(
            &org,
            &number.id,
            NewForwardedNumber {
                business_number: " +12125550123 ".into(),
                nickname: Some("shop".into()),
                agent_id: Some(agent.id.clone()),
            },
        )
        .await
        .expect("add");
    assert_eq!(added.business_number, "+12125550123");
    let new = |business: &str| NewForwardedNumber {
        business_number: business.into(),
        nickname: None,
        agent_id: None,
    };
    let duplicate = env
        .registry
        .add_forwarded_number(&org, &number.id, new("+12125550123"))
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.code(), "conflict");
    let invalid = env
        .registry
        .add_forwarded_number(&org, &number.id, new("212-555-0123"))
        .await
        .expect_err("not e164");
    assert_eq!(invalid.code(), "invalid_phone_number");
    let itself = env
        .registry
        .add_forwarded_number(&org, &number.id, new("+14155550101"))
        .await
        .expect_err("itself");
    assert_eq!(itself.code(), "invalid_request");
    let other = env
        .registry
        .create_organization("Other")
        .await
        .expect("org")
        .id;
    assert_eq!(
        env.registry
            .add_forwarded_number(&other, &number.id, new("+12125550124"))
            .await
            .expect_err("other org")
            .code(),
        "not_found"
    );

    let reopened = env.reopen().await;
    let found = reopened
        .forwarded_number_for(&number.id, "+12125550123")
        .await
        .expect("lookup")
        .expect("registered");
    assert_eq!(found, added);
    assert!(
        reopened
            .forwarded_number_for(&number.id, "+12125550999")
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        reopened
            .list_forwarded_numbers(&org, None)
            .await
            .expect("list"),
        vec![added.clone()]
    );
    assert!(
        reopened
            .list_forwarded_numbers(&other, None)
            .await
            .expect("list")
            .is_empty()
    );

    let call = ForwardedCall {
        provider: Provider::Twilio,
        carrier_call_id: "CA0001".into(),
        org_id: org.clone(),
        number_id: number.id.clone(),
        business_number: "+12125550123".into(),
        forwarded_number_id: Some(added.id.clone()),
        created_at: chrono::Utc::now().trunc_subsecs(6),
    };
    reopened.record_forwarded_call(&call).await.expect("record");
    // A retried webhook records it once.
    reopened
        .record_forwarded_call(&call)
        .await
        .expect("record again");
    assert_eq!(
        reopened
            .forwarded_call(Provider::Twilio, "CA0001")
            .await
            .expect("lookup"),
        Some(call.clone())
    );
    assert_eq!(
        reopened.list_forwarded_calls(&org, 10).await.expect("list"),
        vec![call]
    );

    reopened
        .remove_forwarded_number(&org, &added.id)
        .await
        .expect("remove");
    assert_eq!(
        reopened
            .remove_forwarded_number(&org, &added.id)
            .await
            .expect_err("gone")
            .code(),
        "not_found"
    );
});

db_test!(
    a_telnyx_purchase_left_buying_while_its_order_is_pending_is_followed_not_failed,
    |env| {
        use sea_orm::ConnectionTrait;
        let registry = managed(&env).await;
        let org = registry.create_organization("Acme").await.expect("org").id;
        let (order, _) = registry
            .buy_managed_number(&org, Provider::Telnyx, "+13125550901")
            .await
            .expect("buy");
        assert_eq!(order.status, OrderStatus::Pending);
        // Telnyx holds the order under the gateway's order id.
        let orders = env.emulator.state().number_orders;
        assert_eq!(orders.len(), 1);
        assert_eq!(
            orders[0].customer_reference.as_deref(),
            Some(order.id.as_str())
        );
        // The process died after Telnyx accepted the order, before the database heard of it.
        env.db
            .execute_unprepared(&format!(
                "UPDATE managed_orders SET status = 'buying', order_id = NULL WHERE id = '{}'",
                order.id
            ))
            .await
            .expect("back to buying");

        // The number is not in the account while the order is pending: the order job finds
        // the order by its reference and follows it (here to its end, in the same pass),
        // rather than failing a purchase that Telnyx completes later.
        let restarted = managed(&env).await;
        let report = restarted.refresh_managed_orders().await.expect("refresh");
        assert_eq!(
            (report.completed, report.failed, report.still_pending),
            (1, 0, 0),
            "{report:?}"
        );
        let finished = restarted
            .managed_order(&org, &order.id)
            .await
            .expect("order");
        assert_eq!(finished.status, OrderStatus::Completed);
        let number = restarted
            .number(&org, &finished.number_id.expect("number recorded"))
            .await
            .expect("number");
        assert_eq!(number.e164, "+13125550901");
        assert_eq!(
            env.emulator.state().number_orders.len(),
            1,
            "nothing bought twice"
        );
    }
);

db_test!(
    purchases_left_buying_by_a_dead_process_are_reconciled,
    |env| {
        use sea_orm::ConnectionTrait;
        let registry = managed(&env).await;
        let org = registry.create_organization("Acme").await.expect("org").id;
        let (order, number) = registry
            .buy_managed_number(&org, Provider::Twilio, "+14155550901")
            .await
            .expect("buy");
        let number = number.expect("bought at once");
        // The process died after the carrier sold the number, before the database heard of it;
        // and another died before the carrier was asked for +14155550902.
        env.db
            .execute_unprepared(&format!("DELETE FROM numbers WHERE id = '{}'", number.id))
            .await
            .expect("forget the number");
        env.db
            .execute_unprepared(&format!(
                "UPDATE managed_orders SET status = 'buying', number_id = NULL WHERE id = '{}'",
                order.id
            ))
            .await
            .expect("back to buying");
        env.db
            .execute_unprepared(&format!(
                "INSERT INTO managed_orders (id, org_id, connection_id, provider, e164, order_id, \
             status, number_id, claimed_at, created_at, updated_at) \
             SELECT 'never-asked', org_id, connection_id, provider, '+14155550902', NULL, \
             'buying', NULL, NULL, created_at, updated_at FROM managed_orders WHERE id = '{}'",
                order.id
            ))
            .await
            .expect("second stuck order");

        // After a restart (the stale threshold is zero in these tests), the job reconciles both.
        let restarted = managed(&env).await;
        let report = restarted.refresh_managed_orders().await.expect("refresh");
        assert_eq!((report.completed, report.failed), (1, 1), "{report:?}");
        let finished = restarted
            .managed_order(&org, &order.id)
            .await
            .expect("order");
        assert_eq!(finished.status, OrderStatus::Completed);
        let number_id = finished.number_id.expect("number recorded");
        let recovered = restarted.number(&org, &number_id).await.expect("number");
        assert_eq!(recovered.e164, "+14155550901");
        assert_eq!(recovered.webhook_mode, WebhookMode::Managed);
        assert_eq!(
            restarted
                .managed_order(&org, "never-asked")
                .await
                .expect("order")
                .status,
            OrderStatus::Failed
        );
        assert!(
            env.emulator
                .state()
                .twilio_numbers
                .iter()
                .all(|n| n.phone_number != "+14155550902"),
            "reconciling buys nothing"
        );
        // A second pass, on any instance, finds nothing left.
        let again = registry.refresh_managed_orders().await.expect("refresh");
        assert_eq!((again.completed, again.failed), (0, 0));
    }
);

db_test!(
    a_subaccount_whose_creation_was_never_recorded_is_reused,
    |env| {
        use sea_orm::ConnectionTrait;
        use telephony_carrier::{TwilioAuth, TwilioClient, TwilioConfig, TwilioCredentials};
        let registry = managed(&env).await;
        let org = registry.create_organization("Acme").await.expect("org").id;
        // An earlier attempt created the subaccount at Twilio, then its database write failed
        // (the claim it wrote is left `creating`).
        let parent = TwilioClient::new(
            &TwilioConfig {
                base_url: Some(env.emulator.twilio_base_url()),
                ..TwilioConfig::default()
            },
            TwilioCredentials {
                account_sid: TWILIO_SID.to_owned(),
                auth: TwilioAuth::AuthToken(SecretString::new(TWILIO_TOKEN)),
            },
        )
        .expect("client");
        let (orphan, _) = parent
            .create_subaccount(&format!("telephony-gateway org {org}"))
            .await
            .expect("subaccount");
        env.db
            .execute_unprepared(&format!(
                "INSERT INTO managed_accounts (org_id, provider, connection_id, state, created_at, \
             updated_at) SELECT id, 'twilio', NULL, 'creating', created_at, created_at \
             FROM organizations WHERE id = '{org}'"
            ))
            .await
            .expect("claim left behind");
        // Another organization's subaccount is not taken.
        parent
            .create_subaccount("telephony-gateway org someone-else")
            .await
            .expect("subaccount");
        let subaccounts = || {
            env.emulator
                .state()
                .twilio_accounts
                .into_iter()
                .filter(|a| a.owner_account_sid.as_deref() == Some(TWILIO_SID))
                .count()
        };
        assert_eq!(subaccounts(), 2);

        // The next purchase (the claim is stale) finds the subaccount and reuses it.
        let (_, number) = registry
            .buy_managed_number(&org, Provider::Twilio, "+14155550901")
            .await
            .expect("buy");
        let number = number.expect("bought at once");
        assert_eq!(
            subaccounts(),
            2,
            "no second subaccount for the organization"
        );
        let conn = registry
            .connection(&org, &number.connection_id)
            .await
            .expect("managed connection");
        assert_eq!(conn.account_id, orphan.account_id);
        assert_eq!(
            env.twilio_number("+14155550901").account_sid,
            orphan.account_id
        );
        let audit = registry.audit_log(&org, 50).await.expect("audit");
        assert!(audit.iter().any(|e| e.action == "find_subaccount"));
        assert!(audit.iter().all(|e| e.action != "create_subaccount"));

        // A new organization still gets a new one.
        let other = registry
            .create_organization("Globex")
            .await
            .expect("org")
            .id;
        registry
            .buy_managed_number(&other, Provider::Twilio, "+14155550902")
            .await
            .expect("buy");
        assert_eq!(subaccounts(), 3);
    }
);
