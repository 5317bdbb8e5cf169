//! SQLite's call-id index: the call keys of new records, and the merge of the recent call keys
//! into the large key table.
//!
//! On SQLite a call record is found by its compact call key through two `WITHOUT ROWID` key
//! tables, `call_keys_recent` and `call_keys` (migration 11; see
//! `telephony_migrations::sqlite_record_ids_by_key`). The registry writes a new record's key
//! itself, in the transaction that inserts the record: each call's key and record reference
//! are worked out here, in Rust ([`key_digits`], [`is_uuid`]), and bound with the records, and
//! the keys of a batch go in with one statement, in key order ([`insert_keys`]). (Until
//! migration 12 two triggers did it row by row, evaluating the key's expression for every
//! insert: 7 to 10 µs of SQLite's work a call, more than half of it: docs/PERFORMANCE.md,
//! sessions 30 and 31.) A change of a record's call id and a record's deletion still move or
//! drop its key by trigger: they are rare.
//!
//! New calls' keys go into the small table, whose few leaves one batch's keys share; this module
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

/// The 32 hexadecimal digits of `call_id` when the call's key is the 16 bytes they spell (a
/// Twilio `CallSid`: `CA` and 32 lowercase hexadecimal digits), `None` when it is the text
/// `provider:call_id`: the key of `telephony_migrations::sqlite_call_key_fast`, worked out
/// without SQL (the tests check the two agree). [`key_sql`] makes the key of these.
pub(crate) fn key_digits<'a>(provider: &str, call_id: &'a str) -> Option<&'a str> {
    let digits = call_id.strip_prefix("CA")?;
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    (provider == "twilio" && digits.len() == 32 && digits.bytes().all(hex)).then_some(digits)
}

/// Whether the record id `id` is a canonical UUID (lowercase, hyphenated), which the key
/// tables hold as its 16 bytes: `telephony_migrations::sqlite_record_ref`, worked out without
/// SQL. Every record id the gateway makes is one. [`ref_sql`] makes the reference of these.
pub(crate) fn is_uuid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The SQL expression of a call's key from the SQL expressions of its provider, its call id and
/// its [`key_digits`] (NULL when there are none).
pub(crate) fn key_sql(provider: &str, call_id: &str, digits: &str) -> String {
    format!("COALESCE(unhex({digits}), {provider} || ':' || {call_id})")
}

/// The SQL expression of a record's reference in the key tables from the SQL expressions of its
/// id and of whether that is a UUID ([`is_uuid`]). `unhex` skips the hyphens, which stand
/// between pairs of digits.
pub(crate) fn ref_sql(id: &str, uuid: &str) -> String {
    format!("(CASE WHEN {uuid} THEN unhex({id}, '-') ELSE {id} END)")
}

/// The insert of the keys of the calls of `source` (a subquery with the columns `provider`,
/// `call_id`, `key_hex`, `record_id` and `uuid`: see [`key_digits`], [`is_uuid`]) into
/// `call_keys_recent`, in key order, except those of calls recorded already (in either table):
/// the number of rows it changes is the number of those calls that were new.
pub(crate) fn insert_keys(source: &str) -> String {
    format!(
        "INSERT INTO call_keys_recent (call_key, record) \
         SELECT k, r FROM (SELECT {key} AS k, {reference} AS r FROM ({source}) AS v) \
         WHERE NOT EXISTS (SELECT 1 FROM call_keys WHERE call_key = k) \
         ORDER BY k ON CONFLICT DO NOTHING",
        key = key_sql("v.provider", "v.call_id", "v.key_hex"),
        reference = ref_sql("v.record_id", "v.uuid"),
    )
}

/// [`insert_keys`] of one call, bound as parameters 1 to 4 (provider, call id, record id and
/// whether that is a UUID), its digits as parameter 5.
static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    insert_keys("SELECT ?1 AS provider, ?2 AS call_id, ?5 AS key_hex, ?3 AS record_id, ?4 AS uuid")
});

/// On SQLite, notes the key of the call `call_id` of `provider` as that of the record
/// `record_id`, in the caller's transaction, unless the call is recorded already; whether it
/// did. (Always true on PostgreSQL, whose unique index on the call id refuses a second record
/// at its insert.) Every insert of a call record outside the inbound writer's batches goes with
/// one of these, in the same transaction.
pub(crate) async fn insert_key<C: ConnectionTrait>(
    txn: &C,
    provider: &str,
    call_id: &str,
    record_id: &str,
) -> Result<bool> {
    if txn.get_database_backend() != DbBackend::Sqlite {
        return Ok(true);
    }
    let inserted = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            INSERT_ONE.as_str(),
            [
                provider.into(),
                call_id.into(),
                record_id.into(),
                is_uuid(record_id).into(),
                key_digits(provider, call_id).map(str::to_owned).into(),
            ],
        ))
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

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

    /// The key and record reference worked out in Rust ([`key_digits`], [`is_uuid`], made by
    /// [`key_sql`] and [`ref_sql`]) and those of the SQL definitions the key tables were
    /// filled with (migration 11's `sqlite_call_key_fast` and `sqlite_record_ref`), for each
    /// of `cases` (provider, call id, record id): they must be the same values, or a record
    /// would not be found by its call id.
    async fn agree(db: &DatabaseConnection, cases: &[(String, String, String)]) {
        for (provider, call_id, id) in cases {
            let digits = key_digits(provider, call_id).map(str::to_owned);
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    format!(
                        "SELECT {ours} IS {theirs} AS same_key, \
                                {our_ref} IS {their_ref} AS same_ref, \
                                typeof({ours}) AS kind \
                         FROM (SELECT ?1 AS p, ?2 AS c, ?3 AS d, ?4 AS i, ?5 AS u)",
                        ours = key_sql("p", "c", "d"),
                        theirs = telephony_migrations::sqlite_call_key_fast("p", "c"),
                        our_ref = ref_sql("i", "u"),
                        their_ref = telephony_migrations::sqlite_record_ref("i"),
                    ),
                    [
                        provider.as_str().into(),
                        call_id.as_str().into(),
                        digits.clone().into(),
                        id.as_str().into(),
                        is_uuid(id).into(),
                    ],
                ))
                .await
                .expect("query")
                .expect("a row");
            let same = |column: &str| row.try_get::<bool>("", column).expect(column);
            assert!(same("same_key"), "the key of {provider} {call_id:?}");
            assert!(same("same_ref"), "the reference of {id:?}");
            let kind: String = row.try_get("", "kind").expect("kind");
            assert_eq!(kind == "blob", digits.is_some(), "{call_id:?}");
        }
    }

    #[tokio::test]
    async fn keys_and_references_worked_out_in_rust_are_those_of_the_sql_definitions() {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite");
        let sid = "CA0123456789abcdef0123456789abcdef";
        let uuid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let mut cases: Vec<(String, String, String)> = [
            ("twilio", sid, uuid),
            (
                "twilio",
                "CA0123456789ABCDEF0123456789abcdef",
                "0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            ),
            (
                "twilio",
                "ca0123456789abcdef0123456789abcdef",
                "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",
            ),
            (
                "twilio",
                "CA0123456789abcdef0123456789abcde",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
            ),
            (
                "twilio",
                "CA0123456789abcdef0123456789abcdeg",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",
            ),
            (
                "twilio",
                "CA0123456789abcdef0123456789abcdef0",
                "0190a1b2-c3d4-7e5f-8a9b0-c1d2e3f4a5b",
            ),
            (
                "twilio",
                "CA0123456789abcdef0123456789abcdé",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aé",
            ),
            ("telnyx", sid, "record-1"),
            ("twilio", "pending:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", ""),
            ("telnyx", "v3:abc-DEF_123", "--------"),
            ("twilio", "", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b "),
        ]
        .iter()
        .map(|(p, c, i)| ((*p).to_owned(), (*c).to_owned(), (*i).to_owned()))
        .collect();
        // Random ones: of Twilio's form or near it, and anything at all.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = (
            proptest::prop_oneof!["twilio", "telnyx"],
            proptest::prop_oneof!["CA[0-9a-fA-F]{30,34}", ".{0,40}"],
            proptest::prop_oneof!["[0-9a-fA-F-]{34,38}", ".{0,40}"],
        );
        for _ in 0..512 {
            let tree =
                proptest::strategy::Strategy::new_tree(&strategy, &mut runner).expect("a case");
            cases.push(proptest::strategy::ValueTree::current(&tree));
        }
        for _ in 0..64 {
            cases.push((
                "twilio".into(),
                format!("CA{}", uuid::Uuid::new_v4().simple()),
                crate::registry::new_id(),
            ));
        }
        agree(&db, &cases).await;
    }

    /// A call's key goes in once: a second record of the call is refused, in either table.
    #[tokio::test]
    async fn a_calls_key_is_written_once() {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite");
        Migrator::up(&db, None).await.expect("migrated");
        let sid = "CA0123456789abcdef0123456789abcdef";
        let first = crate::registry::new_id();
        let second = crate::registry::new_id();
        assert!(insert_key(&db, "twilio", sid, &first).await.expect("first"));
        assert!(
            !insert_key(&db, "twilio", sid, &second)
                .await
                .expect("again")
        );
        assert!(
            insert_key(&db, "telnyx", sid, &second)
                .await
                .expect("another provider's")
        );
        assert_eq!(merge(&db).await.expect("merge"), 2);
        assert!(
            !insert_key(&db, "twilio", sid, &second)
                .await
                .expect("once merged")
        );
        assert_eq!(recent(&db).await.expect("recent"), 0);
    }
}
