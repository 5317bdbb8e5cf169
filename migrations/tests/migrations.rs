//! The migrations on an embedded SQLite database. (The registry's tests run them on
//! PostgreSQL too, with the rest of the registry.)

use sea_orm_migration::sea_orm::{ConnectOptions, Database, DatabaseConnection};
use telephony_migrations::{Migrator, MigratorTrait};

async fn empty_database() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    // One connection: every connection to `:memory:` is a different database.
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await.expect("in-memory sqlite")
}

#[tokio::test]
async fn an_empty_database_gets_every_migration_and_a_rerun_changes_nothing() {
    let db = empty_database().await;
    assert_eq!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .len(),
        Migrator::migrations().len()
    );
    Migrator::up(&db, None).await.expect("up");
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .is_empty()
    );
    Migrator::up(&db, None)
        .await
        .expect("a second run is a no-op");
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("applied")
            .len(),
        Migrator::migrations().len()
    );
}

#[tokio::test]
async fn down_removes_what_up_created() {
    let db = empty_database().await;
    Migrator::up(&db, None).await.expect("up");
    Migrator::down(&db, None).await.expect("down");
    assert_eq!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .len(),
        Migrator::migrations().len()
    );
    Migrator::up(&db, None).await.expect("up again");
}

/// The value of the SQL expression `expression` over the texts bound as `?1`, `?2`..., as its
/// type and a hexadecimal rendering of its bytes, so blobs and texts compare.
async fn evaluate(db: &DatabaseConnection, expression: &str, values: &[&str]) -> String {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("SELECT typeof(v) || ':' || hex(v) AS v FROM (SELECT {expression} AS v)"),
            values.iter().map(|&value| value.into()),
        ))
        .await
        .expect("evaluated")
        .expect("a row");
    row.try_get::<String>("", "v").expect("a text")
}

#[tokio::test]
async fn the_fast_call_key_is_the_call_key_for_every_kind_of_call_id() {
    // The triggers and lookups of migration 11 compute the key without GLOB; the records'
    // `call_key` (migration 10) is the original expression. They must agree on every id.
    let db = empty_database().await;
    let ids = [
        "CA0123456789abcdef0123456789abcdef",
        "CA0123456789ABCDEF0123456789abcdef",
        "CA0123456789abcdef0123456789abcdeg",
        "CA0123456789abcdef0123456789abcde",
        "CA0123456789abcdef0123456789abcdef0",
        "CB0123456789abcdef0123456789abcdef",
        "ca0123456789abcdef0123456789abcdef",
        "CA0123456789abcdef0123456789abcd\u{e9}",
        "CA0123456789abcdef 0123456789abcdef",
        "CA-0123456789abcdef0123456789abcdef",
        "CA",
        "",
        "v3:abc-123",
        "CA1",
        "CAffffffffffffffffffffffffffffffff",
        "CA00000000000000000000000000000000",
    ];
    for provider in ["twilio", "telnyx"] {
        for id in ids {
            let original = telephony_migrations::sqlite_call_key("?1", "?2");
            let fast = telephony_migrations::sqlite_call_key_fast("?1", "?2");
            assert_eq!(
                evaluate(&db, &fast, &[provider, id]).await,
                evaluate(&db, &original, &[provider, id]).await,
                "{provider} {id:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_record_id_comes_back_from_its_compact_form() {
    // The key tables hold a canonical UUID as its 16 bytes and any other id as its text.
    let db = empty_database().await;
    let cases = [
        ("0190f3a2-7c4e-7d21-8b3a-0123456789ab", "blob"),
        ("0190F3A2-7C4E-7D21-8B3A-0123456789AB", "text"),
        ("0190f3a27c4e7d218b3a0123456789ab", "text"),
        ("0190f3a2-7c4e-7d21-8b3a-0123456789a-", "text"),
        ("0190f3a2-7c4e-7d21-8b3a-0123456789ag", "text"),
        ("0190f3a2-7c4e7-d21-8b3a-0123456789ab", "text"),
        ("before-CA1", "text"),
        ("", "text"),
    ];
    for (id, kind) in cases {
        let reference = telephony_migrations::sqlite_record_ref("?1");
        let back = telephony_migrations::sqlite_record_id(&reference);
        assert!(
            evaluate(&db, &reference, &[id])
                .await
                .starts_with(&format!("{kind}:")),
            "{id:?} kept as a {kind}"
        );
        let expected = format!("text:{}", hex(id));
        assert_eq!(evaluate(&db, &back, &[id]).await, expected, "{id:?}");
    }
}

/// The uppercase hexadecimal form of `text`'s bytes, as SQLite's `hex` renders it.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}
