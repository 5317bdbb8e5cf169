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
