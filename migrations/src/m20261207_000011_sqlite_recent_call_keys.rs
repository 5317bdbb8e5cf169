//! On SQLite, call records are found by their call key through two key tables, a small one of
//! recent calls and a large one merged into in key order, instead of one unique index.
//!
//! Migration 10 keyed each call by 16 bytes ([`crate::sqlite_call_key`]), but a carrier's call
//! ids are random all the same: on a large table each new call's entry in
//! `ux_call_records_call_key` still lands on a leaf of its own, which SQLite writes whole to its
//! log at the commit and back at the checkpoint. Over 1,500,000 records that made the writer's
//! thread about half as fast as on an empty table (docs/PERFORMANCE.md, sessions 27 and 28).
//!
//! Here a new call's key goes into `call_keys_recent`, which stays small, so one batch's keys
//! share its few leaves; the writer moves them into `call_keys` in one sorted pass once there
//! are enough of them (see `telephony-registry`'s `call_keys` module), which writes each leaf
//! of the large table once a merge instead of once a commit. Both tables are `WITHOUT ROWID`
//! B-trees from the call key ([`sqlite_call_key_fast`], the value of migration 10's column
//! `call_key`, which goes) to the record's id ([`sqlite_record_ref`]). A key is in at most
//! one of them, once: the triggers below keep them so for every write of `call_records`, so no
//! statement that writes records needs to know of them.
//!
//! - `tr_call_records_known` (before an insert): a call already recorded is not recorded
//!   again. The insert is applied to the existing record as the upsert of the records'
//!   statements did (`ON CONFLICT (call_key) DO UPDATE`, which needs a unique index on the
//!   table itself): the record takes the new status unless a non-final one would replace a
//!   final one or `in-progress`, and learns the number and agent if it did not know them;
//!   another organization's record is left alone. The row is then dropped (`RAISE(IGNORE)`),
//!   so an insert of a known call changes one row at most and never fails on it.
//! - `tr_call_records_key` (after an insert): the new record's key into `call_keys_recent`.
//! - `tr_call_records_rekey_check` and `tr_call_records_rekey` (before and after a change of
//!   the provider or call id, as when an outbound call learns its carrier call id): a key
//!   another record holds is refused, as the unique index refused it; the key moves with the
//!   record otherwise.
//! - `tr_call_records_forget` (after a delete): the record's key goes with it.
//!
//! (Migration 12 drops the two triggers of inserts: the registry writes a new record's key
//! itself, with the record.)
//!
//! PostgreSQL, which logs row changes rather than pages, keeps its index on (`provider`,
//! `carrier_call_id`): this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::sqlite_call_key;

/// Adds `call_keys` and `call_keys_recent` and their triggers on SQLite, in place of
/// `ux_call_records_call_key` and the generated column `call_records.call_key` it indexed.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

/// The SQL expression of the call key of the call whose provider and carrier call id are the
/// SQL expressions `provider` and `call_id`: the same value as [`sqlite_call_key`] (the
/// expression of migration 10's `call_records.call_key`) for every provider and id, computed
/// without `GLOB`, whose pattern matcher was 7 % of the gateway's CPU with the triggers
/// evaluating the key three times a call (`rtrim` over the digits, tried next, compares each
/// character with each digit: worse). `unhex` takes hexadecimal digits of either case and
/// nothing else, and the id equals its `lower` exactly when none is uppercase. The triggers and
/// every lookup by call id use this one; the migrations' tests check that the two agree.
pub fn sqlite_call_key_fast(provider: &str, call_id: &str) -> String {
    format!(
        "(CASE WHEN {provider} = 'twilio' AND length({call_id}) = 34 \
                    AND substr({call_id}, 1, 2) = 'CA' \
                    AND unhex(substr({call_id}, 3)) IS NOT NULL \
                    AND {call_id} = 'CA' || lower(substr({call_id}, 3)) \
               THEN unhex(substr({call_id}, 3)) \
               ELSE {provider} || ':' || {call_id} END)"
    )
}

/// The SQL expression of the compact form of the record id `id` (an SQL expression) that the
/// key tables hold: the 16 bytes of a canonical (lowercase, hyphenated) UUID, which every
/// record id the gateway makes is, and any other id as its text. One-to-one, like
/// [`sqlite_call_key`], and never to change: [`sqlite_record_id`] reads it back.
pub fn sqlite_record_ref(id: &str) -> String {
    format!(
        "(CASE WHEN length({id}) = 36 AND substr({id}, 9, 1) = '-' \
                    AND substr({id}, 14, 1) = '-' AND substr({id}, 19, 1) = '-' \
                    AND substr({id}, 24, 1) = '-' \
                    AND length(replace({id}, '-', '')) = 32 \
                    AND unhex(replace({id}, '-', '')) IS NOT NULL AND {id} = lower({id}) \
               THEN unhex(replace({id}, '-', '')) ELSE {id} END)"
    )
}

/// The SQL expression of the record id whose compact form ([`sqlite_record_ref`]) is the SQL
/// expression `reference`.
pub fn sqlite_record_id(reference: &str) -> String {
    format!(
        "(CASE WHEN typeof({reference}) = 'blob' \
               THEN lower(substr(hex({reference}), 1, 8) || '-' \
                          || substr(hex({reference}), 9, 4) || '-' \
                          || substr(hex({reference}), 13, 4) || '-' \
                          || substr(hex({reference}), 17, 4) || '-' \
                          || substr(hex({reference}), 21)) \
               ELSE {reference} END)"
    )
}

/// A subquery (in parentheses) of the ids of the records (none or one) whose call key is the
/// SQL expression `key` (see [`sqlite_call_key_fast`]), from both key tables. A query finds the
/// record of a call with `call_records.id IN <this>`, which SQLite answers from the two key
/// tables and the records' primary key.
pub fn sqlite_record_ids_by_key(key: &str) -> String {
    format!(
        "(SELECT {recent} FROM call_keys_recent WHERE call_key = {key} \
          UNION ALL SELECT {merged} FROM call_keys WHERE call_key = {key})",
        recent = sqlite_record_id("call_keys_recent.record"),
        merged = sqlite_record_id("call_keys.record"),
    )
}

/// The statements of [`Migration::up`] after the key tables are made, as text (the triggers).
/// Migration 12 drops the first two (the inserts') and makes them again on its way down.
pub(crate) fn triggers() -> Vec<String> {
    let new_key = sqlite_call_key_fast("NEW.provider", "NEW.carrier_call_id");
    let old_key = sqlite_call_key_fast("OLD.provider", "OLD.carrier_call_id");
    let known = |key: &str| {
        format!(
            "(EXISTS (SELECT 1 FROM call_keys_recent WHERE call_key = {key}) \
              OR EXISTS (SELECT 1 FROM call_keys WHERE call_key = {key}))"
        )
    };
    // The statuses of the records' upsert (`CALL_RECORD_FINAL` and `CALL_RECORD_ANSWERED` in
    // `telephony-registry`); a test there checks the two agree.
    let newer = "(NEW.status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
                  OR call_records.status NOT IN ('completed', 'busy', 'failed', 'no-answer', \
                                                 'canceled', 'in-progress'))";
    vec![
        format!(
            "CREATE TRIGGER tr_call_records_known BEFORE INSERT ON call_records \
             WHEN {known} \
             BEGIN \
               UPDATE call_records \
               SET status = CASE WHEN {newer} THEN NEW.status ELSE call_records.status END, \
                   updated_at = CASE WHEN {newer} THEN NEW.updated_at \
                                     ELSE call_records.updated_at END, \
                   number_id = COALESCE(call_records.number_id, NEW.number_id), \
                   agent_id = COALESCE(call_records.agent_id, NEW.agent_id) \
               WHERE call_records.id IN {ids} \
                 AND call_records.org_id = NEW.org_id \
                 AND ({newer} OR call_records.number_id IS NULL \
                      OR (call_records.agent_id IS NULL AND NEW.agent_id IS NOT NULL)); \
               SELECT RAISE(IGNORE); \
             END",
            known = known(&new_key),
            ids = sqlite_record_ids_by_key(&new_key),
        ),
        format!(
            "CREATE TRIGGER tr_call_records_key AFTER INSERT ON call_records \
             BEGIN \
               INSERT INTO call_keys_recent (call_key, record) VALUES ({new_key}, {record}); \
             END",
            record = sqlite_record_ref("NEW.id"),
        ),
        format!(
            "CREATE TRIGGER tr_call_records_rekey_check \
             BEFORE UPDATE OF provider, carrier_call_id ON call_records \
             WHEN {new_key} IS NOT {old_key} AND {known} \
             BEGIN \
               SELECT RAISE(ABORT, 'UNIQUE constraint failed: call_records.call_key'); \
             END",
            known = known(&new_key),
        ),
        format!(
            "CREATE TRIGGER tr_call_records_rekey \
             AFTER UPDATE OF provider, carrier_call_id ON call_records \
             WHEN {new_key} IS NOT {old_key} \
             BEGIN \
               DELETE FROM call_keys_recent WHERE call_key = {old_key}; \
               DELETE FROM call_keys WHERE call_key = {old_key}; \
               INSERT INTO call_keys_recent (call_key, record) VALUES ({new_key}, {record}); \
             END",
            record = sqlite_record_ref("NEW.id"),
        ),
        format!(
            "CREATE TRIGGER tr_call_records_forget AFTER DELETE ON call_records \
             BEGIN \
               DELETE FROM call_keys_recent WHERE call_key = {old_key}; \
               DELETE FROM call_keys WHERE call_key = {old_key}; \
             END"
        ),
    ]
}

pub(crate) const TRIGGERS: [&str; 5] = [
    "tr_call_records_known",
    "tr_call_records_key",
    "tr_call_records_rekey_check",
    "tr_call_records_rekey",
    "tr_call_records_forget",
];

const KEY_INDEX: &str = "ux_call_records_call_key";

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        // The columns have no declared type, so SQLite applies no affinity: a blob stays a
        // blob, a text a text, as in `call_records.call_key`.
        for table in ["call_keys", "call_keys_recent"] {
            db.execute_unprepared(&format!(
                "CREATE TABLE {table} (call_key NOT NULL PRIMARY KEY, record NOT NULL) \
                 WITHOUT ROWID"
            ))
            .await?;
        }
        // The records already there, in key order (read from the index about to go).
        db.execute_unprepared(&format!(
            "INSERT INTO call_keys (call_key, record) \
             SELECT call_key, {} FROM call_records INDEXED BY {KEY_INDEX} ORDER BY call_key",
            sqlite_record_ref("id")
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX {KEY_INDEX}"))
            .await?;
        // The generated column goes too: nothing reads it now, and SQLite would compute it
        // for every insert, for the triggers' `NEW` row.
        db.execute_unprepared("ALTER TABLE call_records DROP COLUMN call_key")
            .await?;
        for trigger in triggers() {
            db.execute_unprepared(&trigger).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        for trigger in TRIGGERS {
            db.execute_unprepared(&format!("DROP TRIGGER {trigger}"))
                .await?;
        }
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
        for table in ["call_keys_recent", "call_keys"] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_made_is_dropped_on_the_way_down() {
        let made: Vec<String> = triggers()
            .iter()
            .filter_map(|sql| {
                sql.strip_prefix("CREATE TRIGGER ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(made, TRIGGERS);
    }
}
