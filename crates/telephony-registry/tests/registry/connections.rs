//! Connecting, rotating, credential health, master-key rotation and disconnecting.

use std::time::Duration;

use sea_orm::{FromQueryResult, Statement};
use telephony_carrier::Provider;
use telephony_registry::{
    ConnectionStatus, NewCredentials, Registry, RegistryConfig, RegistryError, TwilioApiKey,
    WebhookMode, WebhookSecrets,
};
use telephony_vault::{KeyRing, SecretString, VaultError};

use crate::harness::*;
use crate::{
    db_test, import, telnyx_connection, twilio_api_key_connection, twilio_connection, twilio_org,
};

#[derive(Debug, FromQueryResult)]
struct Secrets {
    auth_secret: String,
    api_key_secret: Option<String>,
    previous_auth_secret: Option<String>,
}

async fn stored_secrets(env: &Env) -> Vec<Secrets> {
    Secrets::find_by_statement(Statement::from_string(
        env.db.get_database_backend(),
        "SELECT auth_secret, api_key_secret, previous_auth_secret FROM connections",
    ))
    .all(&env.db)
    .await
    .expect("rows")
}

db_test!(
    connecting_verifies_with_one_read_and_stores_the_token_encrypted,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        assert_eq!(conn.provider, Provider::Twilio);
        assert_eq!(conn.account_id, TWILIO_SID);
        assert_eq!(conn.status, ConnectionStatus::Active);

        let stored = stored_secrets(&env).await;
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].auth_secret.contains(TWILIO_TOKEN));
        assert_eq!(
            KeyRing::key_version_of(&stored[0].auth_secret).expect("version"),
            env.keyring.active_version()
        );

        let audit = env.registry.audit_log(&org, 10).await.expect("audit");
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, "verify_credentials");
        assert_eq!(audit[0].outcome, "ok");
        assert!(!audit[0].changed_account);
        let shown = format!("{audit:?}{conn:?}{:?}", env.registry);
        assert!(!shown.contains(TWILIO_TOKEN));
        let secrets = env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets");
        assert!(!format!("{secrets:?}").contains(TWILIO_TOKEN));
        // One read-only request reached the carrier.
        let requests = env.emulator.state().requests;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "GET");
    }
);

db_test!(refused_credentials_are_not_stored, |env| {
    let org = env.registry.create_organization("Acme").await.expect("org");
    let error = env
        .registry
        .connect_carrier(&org.id, twilio_connection("bad", TWILIO_SID, "wrong-token"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "provider_verification_failed");
    assert!(!error.to_string().contains("wrong-token"));
    assert!(
        env.registry
            .list_connections(&org.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(stored_secrets(&env).await.is_empty());
    let audit = env.registry.audit_log(&org.id, 10).await.expect("audit");
    assert_eq!(audit[0].outcome, "error: invalid_credentials");

    let error = env
        .registry
        .connect_carrier(&org.id, twilio_connection("bad", "not-a-sid", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_request");
});

db_test!(
    an_api_key_connection_verifies_the_key_and_keeps_the_token_for_webhooks,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let error = env
            .registry
            .connect_carrier(
                &org.id,
                twilio_api_key_connection(TWILIO_TOKEN, "wrong-secret"),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), "provider_verification_failed");

        let conn = env
            .registry
            .connect_carrier(
                &org.id,
                twilio_api_key_connection(TWILIO_TOKEN, TWILIO_KEY_SECRET),
            )
            .await
            .expect("connect");
        assert_eq!(conn.api_key_sid.as_deref(), Some(TWILIO_KEY_SID));
        let stored = stored_secrets(&env).await;
        let sealed = stored[0]
            .api_key_secret
            .as_deref()
            .expect("sealed key secret");
        assert!(!sealed.contains(TWILIO_KEY_SECRET));
        match env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets")
        {
            WebhookSecrets::Twilio {
                current,
                previous,
                account_sid,
            } => {
                assert_eq!(current.expose(), TWILIO_TOKEN);
                assert!(previous.is_none());
                assert_eq!(account_sid, TWILIO_SID);
            }
            other => panic!("unexpected {other:?}"),
        }
        // The stored credentials work for the import picker.
        let numbers = env
            .registry
            .list_account_numbers(&org.id, &conn.id, false)
            .await
            .expect("list");
        assert_eq!(numbers.len(), 2);
    }
);

db_test!(
    a_telnyx_connection_keeps_its_public_key_and_texml_app,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let conn = env
            .registry
            .connect_carrier(&org.id, telnyx_connection())
            .await
            .expect("connect telnyx");
        assert_eq!(conn.provider, Provider::Telnyx);
        assert_eq!(conn.texml_app_id.as_deref(), Some(TELNYX_APP));
        match env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets")
        {
            WebhookSecrets::Telnyx { current, previous } => {
                assert_eq!(current.as_deref(), Some("cHVibGljLWtleQ=="));
                assert!(previous.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut bad = telnyx_connection();
        bad.credentials = NewCredentials::Telnyx {
            api_key: SecretString::new("KEYwrong"),
            public_key: "cHVibGljLWtleQ==".into(),
            account_sid: None,
        };
        let error = env
            .registry
            .connect_carrier(&org.id, bad)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "provider_verification_failed");
    }
);

db_test!(
    a_rotated_token_keeps_the_old_one_verifying_during_the_grace_period,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        // REST goes through the API key, so an outdated auth token is still accepted on connect.
        let conn = env
            .registry
            .connect_carrier(
                &org.id,
                twilio_api_key_connection("old-token", TWILIO_KEY_SECRET),
            )
            .await
            .expect("connect");

        // New credentials refused: nothing changes.
        let refused = NewCredentials::Twilio {
            account_sid: TWILIO_SID.into(),
            auth_token: SecretString::new("whatever"),
            api_key: Some(TwilioApiKey {
                sid: TWILIO_KEY_SID.into(),
                secret: SecretString::new("nope"),
            }),
        };
        let error = env
            .registry
            .rotate_credentials(&org.id, &conn.id, refused)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "provider_verification_failed");

        let rotated = env
            .registry
            .rotate_credentials(
                &org.id,
                &conn.id,
                NewCredentials::Twilio {
                    account_sid: TWILIO_SID.into(),
                    auth_token: SecretString::new(TWILIO_TOKEN),
                    api_key: None,
                },
            )
            .await
            .expect("rotate");
        assert!(rotated.previous_secret_expires_at.is_some());
        assert!(rotated.api_key_sid.is_none());
        match env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets")
        {
            WebhookSecrets::Twilio {
                current, previous, ..
            } => {
                assert_eq!(current.expose(), TWILIO_TOKEN);
                assert_eq!(previous.expect("in grace").expose(), "old-token");
            }
            other => panic!("unexpected {other:?}"),
        }

        // With no grace period, the old token stops verifying at once.
        let mut config = RegistryConfig::new(PUBLIC_BASE);
        config.rotation_grace = Duration::ZERO;
        let strict = Registry::new(
            env.db.clone(),
            env.keyring.clone(),
            env.factory.clone(),
            config,
        );
        strict
            .rotate_credentials(
                &org.id,
                &conn.id,
                NewCredentials::Twilio {
                    account_sid: TWILIO_SID.into(),
                    auth_token: SecretString::new(TWILIO_TOKEN),
                    api_key: None,
                },
            )
            .await
            .expect("rotate again");
        match strict.webhook_secrets(&conn.id).await.expect("secrets") {
            WebhookSecrets::Twilio { previous, .. } => assert!(previous.is_none()),
            other => panic!("unexpected {other:?}"),
        }

        // Another account or another carrier is not a rotation.
        let error = env
            .registry
            .rotate_credentials(
                &org.id,
                &conn.id,
                NewCredentials::Twilio {
                    account_sid: TWILIO_SID_2.into(),
                    auth_token: SecretString::new(TWILIO_TOKEN_2),
                    api_key: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        let error = env
            .registry
            .rotate_credentials(&org.id, &conn.id, telnyx_connection().credentials)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "invalid_request");
    }
);

db_test!(
    a_401_on_live_use_degrades_the_connection_and_rotation_heals_it,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        let number = crate::done(
            env.registry
                .import_number(
                    &org,
                    import(&conn, "+14155550100", WebhookMode::OutboundOnly),
                )
                .await
                .expect("import"),
        );
        env.fault("GET", "*IncomingPhoneNumbers.json", 401, 1);
        let error = env
            .registry
            .list_account_numbers(&org, &conn.id, false)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "carrier_credentials_invalid");
        let degraded = env.registry.connection(&org, &conn.id).await.expect("conn");
        assert_eq!(degraded.status, ConnectionStatus::Degraded);

        let healed = env
            .registry
            .rotate_credentials(
                &org,
                &conn.id,
                twilio_connection("x", TWILIO_SID, TWILIO_TOKEN).credentials,
            )
            .await
            .expect("rotate");
        assert_eq!(healed.status, ConnectionStatus::Active);
        // The numbers were not touched.
        assert_eq!(
            env.registry.number(&org, &number.id).await.expect("number"),
            number
        );
        env.registry
            .list_account_numbers(&org, &conn.id, false)
            .await
            .expect("works again");
    }
);

db_test!(
    the_service_reports_a_live_401_and_the_connection_degrades,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.registry
            .report_carrier_call(
                &org,
                &conn.id,
                "hangup_call",
                Some("+14155550100"),
                true,
                Some(&telephony_carrier::CarrierError::InvalidCredentials),
            )
            .await
            .expect("report");
        let degraded = env.registry.connection(&org, &conn.id).await.expect("conn");
        assert_eq!(degraded.status, ConnectionStatus::Degraded);
        let audit = env.registry.audit_log(&org, 1).await.expect("audit");
        assert_eq!(audit[0].action, "hangup_call");
        assert!(!audit[0].changed_account);
    }
);

db_test!(
    master_key_rotation_rewraps_every_secret_and_they_still_decrypt,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let conn = env
            .registry
            .connect_carrier(
                &org.id,
                twilio_api_key_connection("old-token", TWILIO_KEY_SECRET),
            )
            .await
            .expect("connect");
        env.registry
            .rotate_credentials(
                &org.id,
                &conn.id,
                twilio_api_key_connection(TWILIO_TOKEN, TWILIO_KEY_SECRET).credentials,
            )
            .await
            .expect("rotate");
        let new_ring = env.keyring.with_new_active_key().expect("new key");
        let rotated = Registry::new(
            env.db.clone(),
            new_ring.clone(),
            env.factory.clone(),
            env.registry.config().clone(),
        );
        assert_eq!(rotated.rewrap_all_secrets().await.expect("rewrap"), 3);
        for row in stored_secrets(&env).await {
            for sealed in [
                Some(row.auth_secret),
                row.api_key_secret,
                row.previous_auth_secret,
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(
                    KeyRing::key_version_of(&sealed).expect("v"),
                    new_ring.active_version()
                );
            }
        }
        assert_eq!(rotated.rewrap_all_secrets().await.expect("again"), 0);
        match rotated.webhook_secrets(&conn.id).await.expect("secrets") {
            WebhookSecrets::Twilio {
                current, previous, ..
            } => {
                assert_eq!(current.expose(), TWILIO_TOKEN);
                assert_eq!(previous.expect("grace").expose(), "old-token");
            }
            other => panic!("unexpected {other:?}"),
        }
        rotated
            .list_account_numbers(&org.id, &conn.id, false)
            .await
            .expect("carrier calls work with rewrapped secrets");
    }
);

db_test!(
    disconnecting_reports_then_removes_every_number_and_the_credentials,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        env.registry
            .import_number(&org, import(&conn, "+14155550100", WebhookMode::Managed))
            .await
            .expect("import managed");
        env.registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import");
        let preview = env
            .registry
            .disconnect_carrier(&org, &conn.id, false)
            .await
            .expect("preview");
        assert_eq!((preview.numbers, preview.deleted), (2, false));
        assert_eq!(
            env.registry.list_numbers(&org).await.expect("list").len(),
            2
        );

        let report = env
            .registry
            .disconnect_carrier(&org, &conn.id, true)
            .await
            .expect("disconnect");
        assert_eq!((report.numbers, report.deleted), (2, true));
        assert!(
            env.registry
                .list_numbers(&org)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            env.registry
                .list_connections(&org)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(stored_secrets(&env).await.is_empty());
        // The managed number points back at the customer, and both are still in the account.
        assert_eq!(
            env.twilio_number("+14155550100").voice_url,
            crate::customer_voice_url()
        );
        assert_eq!(env.emulator.state().twilio_numbers.len(), 4);
        let error = env.registry.connection(&org, &conn.id).await.unwrap_err();
        assert_eq!(error.code(), "not_found");
    }
);

db_test!(
    a_telnyx_rotation_keeps_the_previous_public_key_during_the_grace_period,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let conn = env
            .registry
            .connect_carrier(&org.id, telnyx_connection())
            .await
            .expect("connect telnyx");
        let rotated = env
            .registry
            .rotate_credentials(
                &org.id,
                &conn.id,
                NewCredentials::Telnyx {
                    api_key: SecretString::new(TELNYX_KEY),
                    public_key: "bmV3LWtleQ==".into(),
                    account_sid: None,
                },
            )
            .await
            .expect("rotate");
        // The TeXML account is kept when the new credentials do not name it.
        assert_eq!(rotated.account_id, TELNYX_ACCOUNT);
        match env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets")
        {
            WebhookSecrets::Telnyx { current, previous } => {
                assert_eq!(current.as_deref(), Some("bmV3LWtleQ=="));
                assert_eq!(previous.as_deref(), Some("cHVibGljLWtleQ=="));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
);

fn telnyx_credentials(api_key: &str) -> NewCredentials {
    NewCredentials::Telnyx {
        api_key: SecretString::new(api_key),
        public_key: "bmV3LXB1YmxpYy1rZXk=".to_owned(),
        account_sid: None,
    }
}

db_test!(
    m4_a_telnyx_rotation_refuses_a_key_of_another_account,
    |env| {
        let org = env.registry.create_organization("Acme").await.expect("org");
        let conn = env
            .registry
            .connect_carrier(&org.id, telnyx_connection())
            .await
            .expect("connect");
        // Without numbers there is nothing a foreign key could take over: accepted.
        env.registry
            .rotate_credentials(&org.id, &conn.id, telnyx_credentials(TELNYX_KEY_2))
            .await
            .expect("no numbers yet");
        env.registry
            .rotate_credentials(&org.id, &conn.id, telnyx_credentials(TELNYX_KEY))
            .await
            .expect("back to the account's key");
        env.registry
            .import_number(
                &org.id,
                import(&conn, "+13125550100", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import");
        let error = env
            .registry
            .rotate_credentials(&org.id, &conn.id, telnyx_credentials(TELNYX_KEY_2))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "provider_verification_failed");
        // The stored key is unchanged: the number is still reachable with it.
        let diagnostics = env.registry.list_numbers(&org.id).await.expect("list");
        assert_eq!(diagnostics.len(), 1);
        env.registry
            .list_account_numbers(&org.id, &conn.id, false)
            .await
            .expect("the old key still works");
        let audit = env.registry.audit_log(&org.id, 20).await.expect("audit");
        assert!(audit.iter().any(|e| e.action == "fetch_number"
            && e.outcome == "error: not_found"
            && !e.changed_account));
        // The account's own key is accepted.
        env.registry
            .rotate_credentials(&org.id, &conn.id, telnyx_credentials(TELNYX_KEY))
            .await
            .expect("same account");
    }
);

db_test!(l5_a_telnyx_rotation_keeps_no_old_api_key, |env| {
    let org = env.registry.create_organization("Acme").await.expect("org");
    let conn = env
        .registry
        .connect_carrier(&org.id, telnyx_connection())
        .await
        .expect("connect");
    env.registry
        .rotate_credentials(&org.id, &conn.id, telnyx_credentials(TELNYX_KEY))
        .await
        .expect("rotate");
    let stored = stored_secrets(&env).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].previous_auth_secret, None);
    // The previous public key, the only thing Telnyx webhooks verify with, is kept.
    match env
        .registry
        .webhook_secrets(&conn.id)
        .await
        .expect("secrets")
    {
        WebhookSecrets::Telnyx { current, previous } => {
            assert_eq!(current.as_deref(), Some("bmV3LXB1YmxpYy1rZXk="));
            assert_eq!(previous.as_deref(), Some("cHVibGljLWtleQ=="));
        }
        WebhookSecrets::Twilio { .. } => panic!("twilio secrets for a telnyx connection"),
    }
});

async fn l5_expired_previous_secrets_are_cleared(kind: DbKind) {
    let mut config = RegistryConfig::new(PUBLIC_BASE);
    config.rotation_grace = Duration::ZERO;
    let Some(env) = Env::start_with(kind, config).await else {
        return;
    };
    let (org, conn) = twilio_org(&env.registry, "Acme").await;
    env.registry
        .rotate_credentials(
            &org,
            &conn.id,
            NewCredentials::Twilio {
                account_sid: TWILIO_SID.into(),
                auth_token: SecretString::new(TWILIO_TOKEN),
                api_key: None,
            },
        )
        .await
        .expect("rotate");
    assert!(stored_secrets(&env).await[0].previous_auth_secret.is_some());
    env.registry
        .recover_pending_operations()
        .await
        .expect("recovery pass");
    assert_eq!(stored_secrets(&env).await[0].previous_auth_secret, None);
    let after = env.registry.connection(&org, &conn.id).await.expect("conn");
    assert_eq!(after.previous_secret_expires_at, None);
    env.finish().await;
}

mod l5_expired_previous_secrets_are_cleared_by_the_recovery_pass {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::l5_expired_previous_secrets_are_cleared(crate::harness::DbKind::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::l5_expired_previous_secrets_are_cleared(crate::harness::DbKind::Postgres).await;
    }
}

db_test!(
    l6_a_number_imported_during_a_disconnection_is_a_conflict,
    |env| {
        let (org, conn) = twilio_org(&env.registry, "Acme").await;
        // An import that lands between the removal of the numbers and the deletion of the
        // connection, made deterministic with a trigger on the delete.
        let sql = match env.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => {
                "CREATE TRIGGER import_during_disconnect BEFORE DELETE ON connections \
                 BEGIN \
                 INSERT INTO numbers (id, org_id, connection_id, e164, carrier_id, \
                 webhook_mode, status, created_at, updated_at) VALUES ('racing', OLD.org_id, \
                 OLD.id, '+14155550101', 'PNracing', 'outbound_only', 'importing', \
                 '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00'); \
                 END;"
            }
            _ => {
                "CREATE FUNCTION import_during_disconnect() RETURNS trigger AS $$ \
                 BEGIN \
                 INSERT INTO numbers (id, org_id, connection_id, e164, carrier_id, \
                 webhook_mode, status, created_at, updated_at) VALUES ('racing', OLD.org_id, \
                 OLD.id, '+14155550101', 'PNracing', 'outbound_only', 'importing', now(), \
                 now()); \
                 RETURN OLD; \
                 END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER import_during_disconnect BEFORE DELETE ON connections \
                 FOR EACH ROW EXECUTE FUNCTION import_during_disconnect();"
            }
        };
        sea_orm::ConnectionTrait::execute_unprepared(&env.db, sql)
            .await
            .expect("trigger");
        let error = env
            .registry
            .disconnect_carrier(&org, &conn.id, true)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "conflict", "{error}");
        env.registry
            .connection(&org, &conn.id)
            .await
            .expect("the connection stays");
    }
);

// Review finding H3: `keys rotate` (or another instance) wrote a new active key to the key file
// and re-wrapped every secret, and a running instance that never reloaded its ring failed every
// decryption until restarted.
db_test!(
    running_instance_keeps_decrypting_after_another_rotates_the_master_key_file,
    |env| {
        let dir = tempfile::tempdir().expect("temp dir");
        let key_file = dir.path().join("master.key");
        env.keyring.save(&key_file).expect("save keys");
        // Instance A: started before the rotation, never restarted.
        let a = env.reopen().await.with_key_file(&key_file);
        let org = a.create_organization("Acme").await.expect("org");
        let conn = a
            .connect_carrier(
                &org.id,
                twilio_api_key_connection("old-token", TWILIO_KEY_SECRET),
            )
            .await
            .expect("connect");
        a.rotate_credentials(
            &org.id,
            &conn.id,
            twilio_api_key_connection(TWILIO_TOKEN, TWILIO_KEY_SECRET).credentials,
        )
        .await
        .expect("rotate");

        // Instance B: `keys rotate` adds a new active key to the shared file and re-wraps.
        let rotated = KeyRing::from_file(&key_file)
            .expect("load keys")
            .with_new_active_key()
            .expect("new key");
        rotated.save(&key_file).expect("save rotated keys");
        let b = Registry::new(
            env.db.clone(),
            rotated.clone(),
            env.factory.clone(),
            env.registry.config().clone(),
        )
        .with_key_file(&key_file);
        assert_eq!(b.rewrap_all_secrets().await.expect("rewrap"), 3);

        // A reloads the file on the unknown version and carries on.
        match a
            .webhook_secrets(&conn.id)
            .await
            .expect("secrets after rotation")
        {
            WebhookSecrets::Twilio {
                current, previous, ..
            } => {
                assert_eq!(current.expose(), TWILIO_TOKEN);
                assert_eq!(previous.expect("grace").expose(), "old-token");
            }
            other => panic!("unexpected {other:?}"),
        }
        a.list_account_numbers(&org.id, &conn.id, false)
            .await
            .expect("carrier calls work on the running instance");
        // New secrets are sealed under the key A reloaded, not the one it started with.
        let (_, second) = twilio_org(&a, "Beta").await;
        a.webhook_secrets(&second.id)
            .await
            .expect("the new carrier's secrets decrypt");
        for row in stored_secrets(&env).await {
            assert_eq!(
                KeyRing::key_version_of(&row.auth_secret).expect("v"),
                rotated.active_version()
            );
        }
        assert_eq!(b.rewrap_all_secrets().await.expect("nothing left"), 0);
    }
);

db_test!(
    ring_without_the_key_version_and_no_key_file_gives_the_unknown_version_error,
    |env| {
        let (_, conn) = twilio_org(&env.registry, "Acme").await;
        let rotated = env.keyring.with_new_active_key().expect("new key");
        let b = Registry::new(
            env.db.clone(),
            rotated.clone(),
            env.factory.clone(),
            env.registry.config().clone(),
        );
        assert_eq!(b.rewrap_all_secrets().await.expect("rewrap"), 1);
        // Keys given as a value: nothing to reload, the error names the missing version.
        let error = env
            .registry
            .webhook_secrets(&conn.id)
            .await
            .expect_err("stale ring");
        assert!(
            matches!(
                error,
                RegistryError::Vault(VaultError::UnknownKeyVersion { version })
                    if version == rotated.active_version()
            ),
            "{error:?}"
        );
        assert!(!env.registry.reload_keys(), "no key file to reload");
    }
);
