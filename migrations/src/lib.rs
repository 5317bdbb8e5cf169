//! Database migrations of the telephony gateway, for SQLite (the embedded default) and
//! PostgreSQL (several gateway instances sharing one server).
//!
//! The schema is written once with sea-query's builder so the same migration runs on both
//! back ends; three migrations are SQLite's alone (`m20261207_000010_sqlite_call_key`: call records
//! unique by a compact key of their call id, [`sqlite_call_key`];
//! `m20261207_000011_sqlite_recent_call_keys`: that key kept in two key tables, recent and
//! merged, [`sqlite_record_ids_by_key`]; `m20261208_000012_sqlite_keys_without_insert_triggers`:
//! a new record's key written by the registry, not by a trigger). Every identifier column is
//! text (UUIDs rendered as strings) and every JSON column is text holding serialized JSON, so
//! nothing depends on a back end's native UUID or JSON type.
//!
//! This crate knows table and column names and nothing else: no entity, no workflow, no
//! carrier. Only `telephony-registry` reads or writes these tables. Migrations are append-only:
//! a released migration is never edited, a change is a new `mYYYYMMDD_NNNNNN_name.rs` file.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_registry;
mod m20261121_000002_calls_and_idempotency_keys;
mod m20261121_000003_managed_and_forwarding;
mod m20261121_000004_review_fixes;
mod m20261121_000005_number_call_limit;
mod m20261121_000006_test_calls_and_expiry;
mod m20261122_000007_route_changes;
mod m20261204_000008_call_routing;
mod m20261205_000009_limit_indexes;
mod m20261207_000010_sqlite_call_key;
mod m20261207_000011_sqlite_recent_call_keys;
mod m20261208_000012_sqlite_keys_without_insert_triggers;

pub use m20261207_000010_sqlite_call_key::sqlite_call_key;
pub use m20261207_000011_sqlite_recent_call_keys::{
    sqlite_call_key_fast, sqlite_record_id, sqlite_record_ids_by_key, sqlite_record_ref,
};

/// Applies the registry schema. `Migrator::up(db, None)` applies every pending migration and is
/// a no-op on an up-to-date database.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_registry::Migration),
            Box::new(m20261121_000002_calls_and_idempotency_keys::Migration),
            Box::new(m20261121_000003_managed_and_forwarding::Migration),
            Box::new(m20261121_000004_review_fixes::Migration),
            Box::new(m20261121_000005_number_call_limit::Migration),
            Box::new(m20261121_000006_test_calls_and_expiry::Migration),
            Box::new(m20261122_000007_route_changes::Migration),
            Box::new(m20261204_000008_call_routing::Migration),
            Box::new(m20261205_000009_limit_indexes::Migration),
            Box::new(m20261207_000010_sqlite_call_key::Migration),
            Box::new(m20261207_000011_sqlite_recent_call_keys::Migration),
            Box::new(m20261208_000012_sqlite_keys_without_insert_triggers::Migration),
        ]
    }
}
