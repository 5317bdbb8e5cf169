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
