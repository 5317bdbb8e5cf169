//! Scale: bulk seeding, paging through the organization's numbers, and paging through a large
//! carrier account one carrier page at a time.

use std::collections::HashSet;
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use telephony_carrier::{CarrierClients, RetryPolicy, TelnyxConfig, TwilioConfig};
use telephony_emulator::{Emulator, Seed};
use telephony_registry::{
    AgentTarget, BulkNumber, BulkTenant, BulkTwilioConnection, Registry, RegistryConfig,
    RegistryError, WebhookMode, WebhookSecrets,
};
use telephony_vault::{KeyRing, SecretString};

use crate::harness::*;
use crate::{db_test, done, import, twilio_connection};

/// A large Twilio account: `+1628555xxxx`, every fifth one SMS only.
const LARGE_SID: &str = "AC0000000000000000000000000000cc01";
const LARGE_TOKEN: &str = "large-account-token";
const LARGE_ACCOUNT_NUMBERS: u32 = 2_500;
const CARRIER_PAGE: u32 = 100;

fn large_number(i: u32) -> String {
    format!("+1628555{i:04}")
}

fn large_seed() -> Seed {
    let numbers: Vec<_> = (0..LARGE_ACCOUNT_NUMBERS)
        .map(|i| {
            if i % 5 == 4 {
                serde_json::json!({"phone_number": large_number(i),
                    "capabilities": {"voice": false, "sms": true, "mms": false, "fax": false}})
            } else {
                serde_json::json!({"phone_number": large_number(i)})
            }
        })
        .collect();
    let seed = serde_json::json!({"twilio": {"accounts": [
        {"sid": LARGE_SID, "auth_token": LARGE_TOKEN, "numbers": numbers}
    ]}});
    Seed::from_json_str(&seed.to_string()).expect("seed")
}

/// A registry on a fresh database of `kind`, against an emulator holding the large account,
/// with Twilio pages of [`CARRIER_PAGE`] numbers.
async fn large_account_env(
    kind: DbKind,
) -> Option<(
    Registry,
    Emulator,
    Option<PgDatabase>,
    Option<tempfile::TempDir>,
)> {
    let (url, pg, dir) = fresh_database(kind).await?;
    let emulator = Emulator::start(large_seed(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let twilio = TwilioConfig {
        base_url: Some(emulator.twilio_base_url()),
        retry: RetryPolicy::no_retries(),
        page_size: CARRIER_PAGE,
        ..TwilioConfig::default()
    };
    let telnyx = TelnyxConfig {
        base_url: emulator.telnyx_base_url(),
        ..TelnyxConfig::default()
    };
    let clients = CarrierClients::new(twilio, telnyx).expect("clients");
    let registry = Registry::new(
        connect(&url).await,
        KeyRing::generate().expect("keyring"),
        Arc::new(clients),
        RegistryConfig::new(PUBLIC_BASE),
    );
    registry.migrate().await.expect("migrate");
    Some((registry, emulator, pg, dir))
}

async fn the_picker_walks_a_large_account_one_carrier_page_at_a_time(kind: DbKind) {
    let Some((registry, emulator, pg, _dir)) = large_account_env(kind).await else {
        return;
    };
    let org = registry.create_organization("Big").await.expect("org").id;
    let conn = registry
        .connect_carrier(
            &org,
            twilio_connection("big twilio", LARGE_SID, LARGE_TOKEN),
        )
        .await
        .expect("connect");
    let imported = large_number(1_233);
    done(
        registry
            .import_number(&org, import(&conn, &imported, WebhookMode::OutboundOnly))
            .await
            .expect("import"),
    );

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = registry
            .list_account_numbers_page(&org, &conn.id, false, cursor.as_deref())
            .await
            .expect("page");
        pages += 1;
        // One carrier page per call: never more than the carrier's page, whatever the account.
        assert!(page.numbers.len() <= CARRIER_PAGE as usize);
        assert!(page.numbers.iter().all(|n| n.voice_capable));
        seen.extend(
            page.numbers
                .into_iter()
                .map(|n| (n.e164, n.already_imported)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, LARGE_ACCOUNT_NUMBERS / CARRIER_PAGE);
    let voice: Vec<String> = (0..LARGE_ACCOUNT_NUMBERS)
        .filter(|i| i % 5 != 4)
        .map(large_number)
        .collect();
    let listed: Vec<&str> = seen.iter().map(|(e164, _)| e164.as_str()).collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, voice, "every voice number exactly once");
    let marked: Vec<&str> = seen
        .iter()
        .filter(|(_, already)| *already)
        .map(|(e164, _)| e164.as_str())
        .collect();
    assert_eq!(marked, [imported.as_str()]);

    // The cursor is the listing's own: anything else is a clear invalid request.
    for bad in [
        "not a cursor!",
        "",
        "aHR0cHM6Ly9ldmlsLmV4YW1wbGUvP1BhZ2U9Mg",
    ] {
        let error = registry
            .list_account_numbers_page(&org, &conn.id, false, Some(bad))
            .await
            .expect_err("a forged cursor is refused");
        assert_eq!(error.code(), "invalid_request", "{bad:?}: {error}");
    }
    // Another organization's connection is not found, cursor or not.
    let other = registry.create_organization("Other").await.expect("org").id;
    let error = registry
        .list_account_numbers_page(&other, &conn.id, false, None)
        .await
        .expect_err("not this organization's");
    assert_eq!(error.code(), "not_found");

    drop(registry);
    emulator.shutdown().await;
    drop(pg);
}

mod the_picker_walks_a_large_account_one_carrier_page_at_a_time {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_picker_walks_a_large_account_one_carrier_page_at_a_time(
            crate::harness::DbKind::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::the_picker_walks_a_large_account_one_carrier_page_at_a_time(
            crate::harness::DbKind::Postgres,
        )
        .await;
    }
}

fn tenant(name: &str, sids: &[(&str, &str)]) -> BulkTenant {
    BulkTenant {
        name: name.to_owned(),
        connections: sids
            .iter()
            .enumerate()
            .map(|(i, (sid, token))| BulkTwilioConnection {
                name: format!("twilio {i}"),
                account_sid: (*sid).to_owned(),
                auth_token: SecretString::new(*token),
            })
            .collect(),
        agent_target: Some(AgentTarget::MediaStream(format!(
            "wss://agents.example.com/{name}"
        ))),
    }
}

db_test!(
    bulk_seeded_tenants_and_numbers_are_routable_and_page_in_a_stable_order,
    |env| {
        let registry = &env.registry;
        let seeded = registry
            .bulk_create_tenants(&[
                tenant(
                    "alpha",
                    &[
                        ("AC00000000000000000000000000000a01", "alpha-token-0"),
                        ("AC00000000000000000000000000000a02", "alpha-token-1"),
                    ],
                ),
                tenant(
                    "beta",
                    &[("AC00000000000000000000000000000b01", "beta-token-0")],
                ),
            ])
            .await
            .expect("tenants");
        assert_eq!(seeded.len(), 2);
        assert_eq!(seeded[0].connection_ids.len(), 2);
        let (alpha, beta) = (&seeded[0], &seeded[1]);

        // 25 numbers of alpha over its two connections, 3 of beta.
        let mut batch: Vec<BulkNumber> = (0..25)
            .map(|i| BulkNumber {
                org_id: alpha.org_id.clone(),
                connection_id: alpha.connection_ids[i % 2].clone(),
                e164: format!("+1200555{i:04}"),
                carrier_id: format!("PN{i:032x}"),
                agent_id: alpha.agent_id.clone(),
            })
            .collect();
        batch.extend((100..103).map(|i| BulkNumber {
            org_id: beta.org_id.clone(),
            connection_id: beta.connection_ids[0].clone(),
            e164: format!("+1200555{i:04}"),
            carrier_id: format!("PN{i:032x}"),
            agent_id: None,
        }));
        assert_eq!(
            registry.bulk_insert_numbers(&batch).await.expect("numbers"),
            28
        );
        // The load ends with the planner's statistics of what it wrote (PostgreSQL's; SQLite
        // keeps none unless asked to): on PostgreSQL a table never analyzed counts -1 rows.
        registry.refresh_statistics().await.expect("statistics");
        if env.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            for (table, rows) in [("numbers", 28), ("agents", 2), ("connections", 3)] {
                let counted = env
                    .db
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        format!(
                            "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = '{table}'"
                        ),
                    ))
                    .await
                    .expect("pg_class")
                    .and_then(|row| row.try_get::<i64>("", "n").ok());
                assert_eq!(counted, Some(rows), "the planner's row count of {table}");
            }
        }

        // A seeded number routes like an imported one: found by E.164, its connection's token
        // decrypts, its agent is the tenant's.
        let number = registry
            .number_by_e164("+12005550003")
            .await
            .expect("lookup")
            .expect("routable");
        assert_eq!(number.org_id, alpha.org_id);
        assert_eq!(number.connection_id, alpha.connection_ids[1]);
        assert_eq!(number.agent_id, alpha.agent_id);
        match registry
            .webhook_secrets(&number.connection_id)
            .await
            .expect("secrets")
        {
            WebhookSecrets::Twilio {
                account_sid,
                current,
                ..
            } => {
                assert_eq!(account_sid, "AC00000000000000000000000000000a02");
                assert_eq!(current.expose(), "alpha-token-1");
            }
            other => panic!("expected twilio secrets, got {other:?}"),
        }

        // A number imported anywhere is refused, and the whole batch with it.
        let again = vec![
            BulkNumber {
                e164: "+12005559999".to_owned(),
                ..batch[0].clone()
            },
            batch[27].clone(),
        ];
        assert!(matches!(
            registry.bulk_insert_numbers(&again).await,
            Err(RegistryError::NumberAlreadyImported)
        ));
        assert!(
            registry
                .number_by_e164("+12005559999")
                .await
                .expect("lookup")
                .is_none()
        );
        let bad = vec![BulkNumber {
            e164: "12005550000".to_owned(),
            ..batch[0].clone()
        }];
        assert!(matches!(
            registry.bulk_insert_numbers(&bad).await,
            Err(RegistryError::InvalidPhoneNumber)
        ));
        // A number whose connection or agent is another organization's, or does not exist, is
        // refused with the whole batch, on both databases.
        let stray = |connection_id: &str, agent_id: Option<&String>| {
            vec![
                BulkNumber {
                    e164: "+12005558888".to_owned(),
                    ..batch[0].clone()
                },
                BulkNumber {
                    e164: "+12005559999".to_owned(),
                    connection_id: connection_id.to_owned(),
                    agent_id: agent_id.cloned(),
                    ..batch[0].clone()
                },
            ]
        };
        for (what, numbers) in [
            (
                "another organization's connection",
                stray(&beta.connection_ids[0], None),
            ),
            ("an unknown connection", stray("no-such-connection", None)),
            (
                "another organization's agent",
                stray(&alpha.connection_ids[0], beta.agent_id.as_ref()),
            ),
            (
                "an unknown agent",
                stray(&alpha.connection_ids[0], Some(&"no-such-agent".to_owned())),
            ),
        ] {
            let error = registry
                .bulk_insert_numbers(&numbers)
                .await
                .expect_err(what);
            assert_eq!(error.code(), "invalid_request", "{what}: {error}");
            assert!(
                error.to_string().contains("+12005559999"),
                "{what}: {error}"
            );
            for e164 in ["+12005558888", "+12005559999"] {
                assert!(
                    registry
                        .number_by_e164(e164)
                        .await
                        .expect("lookup")
                        .is_none(),
                    "{what}: nothing written"
                );
            }
        }
        let error = registry
            .bulk_create_tenants(&[tenant("gamma", &[("ACnot-a-sid", "t")])])
            .await
            .expect_err("malformed sid");
        assert_eq!(error.code(), "invalid_request");

        // Paging: 10, 10, 5, each number once, in a stable order, only the organization's.
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        let mut sizes = Vec::new();
        loop {
            let (page, next) = registry
                .list_numbers_page(&alpha.org_id, 10, after.as_deref())
                .await
                .expect("page");
            sizes.push(page.len());
            assert!(page.iter().all(|n| n.org_id == alpha.org_id));
            ids.extend(page.into_iter().map(|n| n.id));
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(sizes, [10, 10, 5]);
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "stable order");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
        let everything: HashSet<String> = registry
            .list_numbers(&alpha.org_id)
            .await
            .expect("list")
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids.into_iter().collect::<HashSet<_>>(), everything);
        for limit in [0, 1_001] {
            let error = registry
                .list_numbers_page(&alpha.org_id, limit, None)
                .await
                .expect_err("limit out of range");
            assert_eq!(error.code(), "invalid_request");
        }
    }
);
