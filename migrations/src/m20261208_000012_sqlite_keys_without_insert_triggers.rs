//! On SQLite, the registry writes the call key of a new call record itself, in the transaction
//! that inserts the record, instead of the triggers of migration 11 doing it row by row.
//!
//! `tr_call_records_known` and `tr_call_records_key` evaluated the key and record expressions
//! ([`crate::sqlite_call_key_fast`], [`crate::sqlite_record_ref`]) for every inserted row,
//! looked the key up in both key tables and inserted it into `call_keys_recent` in the order the
//! records came, that of a carrier's random call ids: 7 to 10 µs of the SQLite thread's 11 to
//! 13 a call under load (docs/PERFORMANCE.md, session 30). The registry now works out each
//! key in Rust and inserts a batch's keys in one statement, in key order, before its records
//! (`telephony-registry`'s `call_keys` module); a call whose key was there already is applied to
//! its record as the records' upsert does.
//!
//! The triggers of a change of call id (`tr_call_records_rekey_check`, `tr_call_records_rekey`)
//! and of a deletion (`tr_call_records_forget`) stay: they are rare. A record inserted without
//! the registry (by hand, with SQL) gets no key: it is not found by its call id until the key is
//! written too. PostgreSQL, which keeps its unique index on the call id, is unchanged.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::m20261207_000011_sqlite_recent_call_keys::{TRIGGERS, triggers};

/// Drops the two triggers of inserts into `call_records` on SQLite.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

/// How many of migration 11's triggers (the first ones) this migration drops.
const INSERT_TRIGGERS: usize = 2;

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        for trigger in &TRIGGERS[..INSERT_TRIGGERS] {
            db.execute_unprepared(&format!("DROP TRIGGER {trigger}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        for trigger in &triggers()[..INSERT_TRIGGERS] {
            db.execute_unprepared(trigger).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_triggers_dropped_are_the_inserts_ones() {
        for (name, sql) in TRIGGERS.iter().zip(triggers()).take(INSERT_TRIGGERS) {
            assert!(
                sql.starts_with(&format!("CREATE TRIGGER {name} "))
                    && sql.contains("INSERT ON call_records"),
                "{sql}"
            );
        }
        for sql in &triggers()[INSERT_TRIGGERS..] {
            assert!(!sql.contains("INSERT ON call_records"), "{sql}");
        }
    }
}
