//! On SQLite, call records are unique by a compact key of their carrier call id instead of by
//! the id's text.
//!
//! Carriers' call ids are random, so each new call's entry in the call-id index lands on a leaf
//! of its own, which the commit writes to the log and the checkpoint writes back: SQLite logs
//! whole pages, and on a large table that is most of what a call costs its writer. A Twilio
//! `CallSid` (`CA` and 32 lowercase hexadecimal digits, 34 bytes of text) is keyed by the 16
//! bytes its digits spell; any other id by its text behind its provider's name. The index's
//! entries are half as long, so it has half the leaves, and a checkpoint finds more of them
//! dirtied more than once (measured in interleaved pairs with 700,000 and 1,000,000 records:
//! 18 to 32 % more calls a second, 4 to 6 µs less of the gateway's CPU a call; four runs of
//! the full benchmark did not tell the builds apart: docs/PERFORMANCE.md, session 25).
//!
//! The key is a virtual generated column, `call_key`, computed by SQLite from `provider` and
//! `carrier_call_id` ([`sqlite_call_key`]), with the unique index `ux_call_records_call_key`
//! in place of `ux_call_records_provider_call`. It is one-to-one: two calls share a key only if
//! they share provider and id (a blob never equals a text, the hexadecimal digits are lowercase
//! only, and a provider's name holds no `:`). PostgreSQL, which logs row changes rather than
//! pages, keeps its index on (`provider`, `carrier_call_id`): this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds `call_records.call_key` and `ux_call_records_call_key` on SQLite.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

/// The SQL expression of the call key of the call whose provider and carrier call id are the
/// SQL expressions `provider` and `call_id` (column names, or a subquery's): the key this
/// migration gave `call_records.call_key`. A query finds a record by its key with
/// `call_key = <this expression of its values>`, which SQLite answers from
/// `ux_call_records_call_key`. (Migration 11 replaced the column and its index with two key
/// tables holding the same key, computed by [`crate::sqlite_call_key_fast`], and found with
/// [`crate::sqlite_record_ids_by_key`].) It must never change: the key of the records already written
/// was computed with it (a new key would be a new migration).
pub fn sqlite_call_key(provider: &str, call_id: &str) -> String {
    format!(
        "(CASE WHEN {provider} = 'twilio' AND length({call_id}) = 34 \
                    AND substr({call_id}, 1, 2) = 'CA' \
                    AND substr({call_id}, 3) NOT GLOB '*[^0-9a-f]*' \
               THEN unhex(substr({call_id}, 3)) \
               ELSE {provider} || ':' || {call_id} END)"
    )
}

const KEY_INDEX: &str = "ux_call_records_call_key";
const TEXT_INDEX: &str = "ux_call_records_provider_call";

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        // The column has no declared type, so SQLite applies no affinity to the key: a blob
        // stays a blob, a text a text.
        db.execute_unprepared(&format!(
            "ALTER TABLE call_records ADD COLUMN call_key \
             GENERATED ALWAYS AS {} VIRTUAL",
            sqlite_call_key("provider", "carrier_call_id")
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX {KEY_INDEX} ON call_records (call_key)"
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX {TEXT_INDEX}"))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX {TEXT_INDEX} ON call_records (provider, carrier_call_id)"
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX {KEY_INDEX}"))
            .await?;
        db.execute_unprepared("ALTER TABLE call_records DROP COLUMN call_key")
            .await?;
        Ok(())
    }
}
