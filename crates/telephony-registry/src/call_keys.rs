//! SQLite's call-id index: the merge of the recent call keys into the large key table.
//!
//! On SQLite a call record is found by its compact call key through two `WITHOUT ROWID` key
//! tables, `call_keys_recent` and `call_keys`, which the triggers of migration 11 keep for
//! every write of `call_records` (see `telephony_migrations::sqlite_record_ids_by_key`). New
//! calls' keys go into the small table, whose few leaves one batch's keys share; this module
//! moves them into the large one in a single pass in key order, which writes each of its leaves
//! once a merge rather than once a commit (the random keys of a carrier's call ids otherwise
//! dirty a leaf of the large index for nearly every call: docs/PERFORMANCE.md, sessions 27 to
//! 29).
//!
//! The inbound writer counts the keys left to merge after every [`CHECK_EVERY`] calls it wrote
//! and merges at [`MERGE_AT`]. A merge is one write transaction, so instances sharing a file
//! merge one after the other (the second finds little or nothing to move); when it happens
//! changes only what a write costs, never what a read finds. Only the inbound writer merges:
//! records written otherwise (status callbacks of calls the writer never saw, outbound calls)
//! wait for its next merge, or for [`Registry::merge_recent_call_keys`](crate::Registry::merge_recent_call_keys).

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::error::Result;

/// How many calls the inbound writer writes between two counts of the recent keys.
pub(crate) const CHECK_EVERY: usize = 16_384;

/// How many recent keys make the writer merge them: over 1,500,000 records, a merge of
/// 131,072 took 0.37 s and saved about 8 µs of SQLite's work a call (docs/PERFORMANCE.md,
/// session 28).
pub(crate) const MERGE_AT: u64 = 131_072;

/// Moves every recent call key into `call_keys`, in one transaction; how many it moved. Nothing
/// on PostgreSQL, which has no key tables.
pub(crate) async fn merge(db: &DatabaseConnection) -> Result<u64> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let started = Instant::now();
    let txn = db.begin().await?;
    // The first statement writes, so the transaction takes SQLite's write lock at once (as the
    // writer's batches do) and reads the recent keys as they are under that lock.
    let moved = txn
        .execute_unprepared(
            "INSERT INTO call_keys (call_key, record) \
             SELECT call_key, record FROM call_keys_recent ORDER BY call_key",
        )
        .await?
        .rows_affected();
    txn.execute_unprepared("DELETE FROM call_keys_recent")
        .await?;
    txn.commit().await?;
    metrics::histogram!("telephony_call_keys_merge_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(keys = moved, elapsed = ?started.elapsed(), "merged the recent call keys");
    Ok(moved)
}

/// How many call keys wait in `call_keys_recent` (0 on PostgreSQL).
pub(crate) async fn recent(db: &DatabaseConnection) -> Result<u64> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) AS n FROM call_keys_recent",
        ))
        .await?;
    let count: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Merges the recent keys if there are at least [`MERGE_AT`] of them: what the inbound writer
/// does after every [`CHECK_EVERY`] calls. Failures are logged: the keys stay where they are,
/// and are found there, until the next attempt.
pub(crate) async fn merge_when_due(db: &DatabaseConnection) {
    let due = match recent(db).await {
        Ok(count) => count >= MERGE_AT,
        Err(error) => {
            tracing::warn!(%error, "could not count the recent call keys");
            false
        }
    };
    if due && let Err(error) = merge(db).await {
        tracing::warn!(%error, "could not merge the recent call keys; they stay where they are");
    }
}

impl crate::Registry {
    /// On SQLite, moves the keys of the calls recorded since the last merge into the large key
    /// table now, and answers how many it moved; nothing on PostgreSQL. The inbound writer
    /// merges by itself every 131,072 calls, so this is for maintenance and tests: a call
    /// is found the same before and after a merge.
    ///
    /// # Errors
    /// [`RegistryError::Database`](crate::RegistryError::Database).
    pub async fn merge_recent_call_keys(&self) -> Result<u64> {
        self.inbound_writer.settle().await;
        merge(&self.db).await
    }

    /// On SQLite, how many call keys wait for the next merge (see
    /// [`Registry::merge_recent_call_keys`](crate::Registry::merge_recent_call_keys)); 0 on
    /// PostgreSQL.
    ///
    /// # Errors
    /// [`RegistryError::Database`](crate::RegistryError::Database).
    pub async fn recent_call_keys(&self) -> Result<u64> {
        recent(&self.db).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Database;
    use telephony_migrations::{Migrator, MigratorTrait};

    use super::*;
    use crate::inbound_writer::{CALL_RECORD_ANSWERED, CALL_RECORD_FINAL};

    /// The trigger that applies an insert of a known call on SQLite (migration 11) names the
    /// statuses of the records' upsert on PostgreSQL: a change to either list must reach the
    /// other (as a new migration).
    #[tokio::test]
    async fn sqlites_known_call_trigger_names_the_upserts_statuses() {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite");
        Migrator::up(&db, None).await.expect("migrated");
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' \
                 AND name = 'tr_call_records_known'",
            ))
            .await
            .expect("query")
            .expect("the trigger");
        let sql: String = row.try_get("", "sql").expect("its text");
        let quoted = |statuses: &[&str]| {
            statuses
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let finals = format!("NEW.status IN ({})", quoted(&CALL_RECORD_FINAL));
        let answered = format!(
            "call_records.status NOT IN ({})",
            quoted(&CALL_RECORD_ANSWERED)
        );
        assert!(sql.contains(&finals), "{finals} in {sql}");
        assert!(sql.contains(&answered), "{answered} in {sql}");
    }
}
