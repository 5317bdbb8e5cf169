//! Migrations apply to an empty database, re-run as a no-op, and roll back cleanly.

use sea_orm::{ConnectionTrait, Statement};
use telephony_migrations::{Migrator, MigratorTrait};

use crate::db_test;

async fn table_count(db: &sea_orm::DatabaseConnection) -> i64 {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name <> 'seaql_migrations'"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

db_test!(apply_to_an_empty_database_and_rerun_as_a_no_op, |env| {
    // The harness already migrated the fresh database once: the registry's ten tables and
    // those of later migrations.
    let tables = table_count(&env.db).await;
    assert!(tables >= 10, "{tables} tables");
    Migrator::up(&env.db, None).await.expect("second run");
    env.registry.migrate().await.expect("third run");
    assert_eq!(table_count(&env.db).await, tables);
    let applied = Migrator::get_applied_migrations(&env.db)
        .await
        .expect("applied");
    assert_eq!(applied.len(), Migrator::migrations().len());
});

db_test!(roll_back_to_nothing_and_apply_again, |env| {
    let tables = table_count(&env.db).await;
    Migrator::down(&env.db, None).await.expect("down");
    assert_eq!(table_count(&env.db).await, 0);
    Migrator::up(&env.db, None).await.expect("up again");
    assert_eq!(table_count(&env.db).await, tables);
});

db_test!(
    opening_a_database_migrates_it_and_reopening_is_harmless,
    |env| {
        let opened = telephony_registry::Registry::open(
            &env.url,
            env.keyring.clone(),
            env.factory.clone(),
            env.registry.config().clone(),
        )
        .await
        .expect("open an up-to-date database");
        opened.ping().await.expect("ping");
        let org = opened.create_organization("Acme").await.expect("org");
        assert_eq!(
            env.registry
                .organization(&org.id)
                .await
                .expect("same db")
                .name,
            "Acme"
        );
    }
);

#[tokio::test]
async fn an_in_memory_sqlite_registry_opens_with_its_schema() {
    let env = crate::harness::Env::start(crate::harness::DbKind::Sqlite)
        .await
        .expect("sqlite");
    let memory = telephony_registry::Registry::open(
        "sqlite::memory:",
        env.keyring.clone(),
        env.factory.clone(),
        env.registry.config().clone(),
    )
    .await
    .expect("open in memory");
    let org = memory.create_organization("Acme").await.expect("org");
    assert_eq!(
        memory.organization(&org.id).await.expect("read back").id,
        org.id
    );
    env.finish().await;
}

/// A rolling start: two instances open one fresh PostgreSQL database at the same moment and
/// both succeed (one migrates under the advisory lock, the other then finds nothing to do).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn m7_two_instances_opening_one_fresh_postgres_database_both_succeed() {
    let env = crate::harness::Env::start(crate::harness::DbKind::Sqlite)
        .await
        .expect("sqlite");
    for round in 0..3 {
        let Some((url, pg_drop, _)) =
            crate::harness::fresh_database(crate::harness::DbKind::Postgres).await
        else {
            break;
        };
        let open = || {
            telephony_registry::Registry::open(
                &url,
                env.keyring.clone(),
                env.factory.clone(),
                env.registry.config().clone(),
            )
        };
        let (first, second) = tokio::join!(open(), open());
        let first = first.unwrap_or_else(|e| panic!("round {round}: first: {e}"));
        let second = second.unwrap_or_else(|e| panic!("round {round}: second: {e}"));
        let org = first.create_organization("Acme").await.expect("org");
        second.organization(&org.id).await.expect("one database");
        drop((first, second));
        drop(pg_drop);
    }
    env.finish().await;
}

db_test!(
    agents_and_numbers_with_a_limit_have_an_index_of_their_own,
    |env| {
        // Each group commit of inbound calls looks up whether a call's agent or number has a
        // limit: these partial indexes hold only the rows that have one.
        let sql = match env.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => {
                "SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' \
                 AND name IN ('ix_agents_limited', 'ix_numbers_limited') ORDER BY name"
            }
            _ => {
                "SELECT indexname AS name, indexdef AS definition FROM pg_indexes \
                 WHERE indexname IN ('ix_agents_limited', 'ix_numbers_limited') ORDER BY indexname"
            }
        };
        let rows = env
            .db
            .query_all_raw(Statement::from_string(env.db.get_database_backend(), sql))
            .await
            .expect("indexes");
        let found: Vec<(String, String)> = rows
            .iter()
            .map(|row| {
                (
                    row.try_get::<String>("", "name").expect("name"),
                    row.try_get::<String>("", "definition").expect("definition"),
                )
            })
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        for ((name, definition), table) in found.iter().zip(["agents", "numbers"]) {
            assert!(name.contains(table), "{name}");
            let definition = definition
                .to_lowercase()
                .replace('"', "")
                .replace("public.", "");
            assert!(
                definition.contains(&format!("on {table}"))
                    && definition.contains("where")
                    && definition.contains("max_concurrent_calls is not null"),
                "{name}: {definition}"
            );
        }
    }
);

/// Writes a ringing Twilio call record `id` of `org` for `call_id` with SQL, as a gateway of any
/// version would have (the test's own constants are the values).
async fn insert_record(
    db: &sea_orm::DatabaseConnection,
    id: &str,
    org: &str,
    call_id: &str,
) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        format!(
            "INSERT INTO call_records (id, org_id, provider, carrier_call_id, number, direction, \
             status, started_at, updated_at) \
             VALUES ('{id}', '{org}', 'twilio', '{call_id}', '+14155550101', 'inbound', \
             'ringing', '2026-12-07T00:00:00Z', '2026-12-07T00:00:00Z')"
        ),
    ))
    .await
}

/// The carrier's report of `org`'s inbound Twilio call `call_id` with `status`.
fn status_callback(org: &str, call_id: &str, status: &str) -> telephony_registry::CallUpdate {
    telephony_registry::CallUpdate {
        org_id: org.to_owned(),
        provider: telephony_carrier::Provider::Twilio,
        carrier_call_id: call_id.to_owned(),
        number: "+14155550101".into(),
        direction: telephony_registry::Direction::Inbound,
        status: status.to_owned(),
        duration_secs: None,
        ended_at: None,
    }
}

db_test!(
    records_written_before_the_compact_call_key_keep_their_identity_after_it,
    |env| {
        // Migration 10 keys SQLite's call records by a compact form of their call id (nothing
        // changes on PostgreSQL). Records written before it are keyed when it runs: their status
        // callbacks find them, and the index still refuses a second record of a call.
        let (org, _) = crate::twilio_org(&env.registry, "Acme").await;
        let sid = "CA0123456789abcdef0123456789abcdef";
        let update = |call_id: &str, status: &str| status_callback(&org, call_id, status);
        Migrator::down(&env.db, Some(3))
            .await
            .expect("down to migration 9");
        let backend = env.db.get_database_backend();
        for call_id in [sid, "CA1"] {
            insert_record(&env.db, &format!("before-{call_id}"), &org, call_id)
                .await
                .expect("a record written before the migration");
        }
        Migrator::up(&env.db, None).await.expect("up again");
        for call_id in [sid, "CA1"] {
            let record = env
                .registry
                .record_call(update(call_id, "completed"))
                .await
                .expect("status callback");
            assert_eq!(record.id, format!("before-{call_id}"));
            assert_eq!(record.status, "completed");
            // PostgreSQL's unique index refuses a second record. (SQLite's key tables are kept
            // by the registry since migration 12, not by the database: a record written with
            // SQL alone is not keyed. The harness checks the keys when the test ends.)
            if backend != sea_orm::DatabaseBackend::Sqlite {
                let again =
                    insert_record(&env.db, &format!("again-{call_id}"), &org, call_id).await;
                assert!(again.is_err(), "{call_id}: a second record refused");
            }
        }
        assert_eq!(
            env.registry
                .list_calls(&org, 10)
                .await
                .expect("calls")
                .len(),
            2
        );
        if backend == sea_orm::DatabaseBackend::Sqlite {
            let rows = env
                .db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT name FROM sqlite_master WHERE type = 'index' \
                     AND tbl_name = 'call_records' AND name LIKE 'ux_%' ORDER BY name",
                ))
                .await
                .expect("indexes");
            let names: Vec<String> = rows
                .iter()
                .map(|row| row.try_get::<String>("", "name").expect("name"))
                .collect();
            assert!(
                names.is_empty(),
                "the key tables index the calls: {names:?}"
            );
            // Since migration 11 the keys are in the key tables, the Twilio one as 16 bytes.
            let keys = env
                .db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT typeof(call_key) AS kind, length(call_key) AS size \
                     FROM call_keys ORDER BY kind",
                ))
                .await
                .expect("keys");
            let keys: Vec<(String, i64)> = keys
                .iter()
                .map(|row| {
                    (
                        row.try_get("", "kind").expect("kind"),
                        row.try_get("", "size").expect("size"),
                    )
                })
                .collect();
            assert_eq!(
                keys,
                [
                    ("blob".to_owned(), 16),
                    ("text".to_owned(), "twilio:CA1".len() as i64)
                ]
            );
        }
    }
);

/// The number of `call_id`'s records.
async fn records_of(db: &sea_orm::DatabaseConnection, call_id: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT count(*) AS n FROM call_records WHERE carrier_call_id = '{call_id}'"),
    ))
    .await
    .expect("count")
    .expect("a row")
    .try_get::<i64>("", "n")
    .expect("n")
}

db_test!(
    records_keep_their_identity_across_the_key_tables_both_ways,
    |env| {
        // Migration 11 moves SQLite's call-id index into two key tables (nothing changes on
        // PostgreSQL); its `down` puts the unique index back. Records written on either side,
        // merged or recent, are found by their status callbacks and never recorded twice.
        let (org, _) = crate::twilio_org(&env.registry, "Acme").await;
        let calls = ["CA0123456789abcdef0123456789abcdef", "CA1", "CA2"];
        let update = |call_id: &str, status: &str| status_callback(&org, call_id, status);
        let mut ids = Vec::new();
        for (i, call_id) in calls.iter().enumerate() {
            if i == 2 {
                env.registry.merge_recent_call_keys().await.expect("merge");
            }
            let record = env
                .registry
                .record_call(update(call_id, "ringing"))
                .await
                .expect("a call recorded");
            ids.push(record.id);
        }
        let sqlite = env.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
        Migrator::down(&env.db, Some(2))
            .await
            .expect("down to migration 10");
        for call_id in calls {
            let again = insert_record(&env.db, &format!("again-{call_id}"), &org, call_id).await;
            assert!(again.is_err(), "{call_id}: the unique index is back");
        }
        insert_record(&env.db, "written-between", &org, "CA3")
            .await
            .expect("a record written before the migration runs again");
        Migrator::up(&env.db, None).await.expect("up again");
        if sqlite {
            assert_eq!(
                env.registry.recent_call_keys().await.expect("recent"),
                0,
                "the migration fills the merged table"
            );
        }
        ids.push("written-between".into());
        for (call_id, id) in calls.iter().chain(&["CA3"]).zip(&ids) {
            let record = env
                .registry
                .record_call(update(call_id, "completed"))
                .await
                .expect("status callback");
            assert_eq!(&record.id, id, "{call_id}");
            assert_eq!(record.status, "completed");
            if !sqlite {
                let again =
                    insert_record(&env.db, &format!("again-{call_id}"), &org, call_id).await;
                assert!(again.is_err(), "{call_id}: a second record refused");
            }
            assert_eq!(
                records_of(&env.db, call_id).await,
                1,
                "{call_id} recorded once"
            );
        }
        if sqlite {
            assert_eq!(
                env.registry.merge_recent_call_keys().await.expect("merge"),
                0
            );
        }
    }
);

db_test!(
    records_written_while_the_insert_triggers_were_back_are_found_after_them,
    |env| {
        // Migration 12 drops the triggers that keyed SQLite's inserted records (the registry
        // keys them itself); its `down` makes them again. A record inserted with SQL in between
        // is keyed by them, a second record of its call is dropped, and after `up` the call's
        // status callback finds the record. Nothing changes on PostgreSQL, whose unique index
        // refuses the second record.
        let (org, _) = crate::twilio_org(&env.registry, "Acme").await;
        let sid = "CA0123456789abcdef0123456789abcdef";
        Migrator::down(&env.db, Some(1)).await.expect("down one");
        insert_record(&env.db, "written-between", &org, sid)
            .await
            .expect("a record written before the migration runs again");
        let again = insert_record(&env.db, "again", &org, sid).await;
        assert!(
            again.is_err() || env.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite,
            "a second record refused"
        );
        assert_eq!(records_of(&env.db, sid).await, 1, "recorded once");
        Migrator::up(&env.db, None).await.expect("up again");
        let record = env
            .registry
            .record_call(status_callback(&org, sid, "completed"))
            .await
            .expect("status callback");
        assert_eq!(record.id, "written-between");
        assert_eq!(record.status, "completed");
        assert_eq!(records_of(&env.db, sid).await, 1, "still recorded once");
    }
);
