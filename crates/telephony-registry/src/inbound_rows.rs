//! The statements that write a group commit's inbound calls that no limit applies to, on both
//! back ends: constant SQL texts with the whole batch bound as one JSON parameter (an array of
//! rows, each an array of strings and nulls in [`Row`]'s order), so that each statement is
//! parsed and planned once per connection and then reused, whatever the batch size. (A
//! multi-row `VALUES` list is a new statement text for every batch size: on PostgreSQL its
//! parsing and planning took a third of the server's time under load.) On PostgreSQL a batch
//! expected to find no record of its calls sends its records by `COPY` instead
//! ([`copy_postgres_batch`]): PostgreSQL's reading of the batch from JSON was about a
//! third of its time a call.
//!
//! Such a call is written as its record alone: an upsert keyed by the carrier's call id that
//! never replaces a final or `in-progress` status with an older one, never touches another
//! organization's record, and notes the number called and the agent reached. It gets an
//! `active_calls` row only when its agent or its number has a limit by the time it is written
//! (a limit set while the call was being answered from a route read before it); the calls in
//! progress when a limit is set are counted by [`crate::Registry::count_calls_in_progress`].

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;

use crate::call_keys;
use crate::error::{RegistryError, Result};
use crate::inbound_writer::{CALL_RECORD_ANSWERED, CALL_RECORD_FINAL, PendingCall};

/// One call of a batch, serialized as a JSON array in this order (the column names below).
/// The last two fields are SQLite's: the call's key digits ([`call_keys::key_digits`]) and
/// whether its record id is a UUID ([`call_keys::is_uuid`]), from which the key tables' key and
/// reference are made.
#[derive(Debug, Serialize)]
pub(crate) struct Row<'a>(
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    bool,
);

/// The names [`Row`]'s fields take in SQL, in order.
const COLUMNS: [&str; 12] = [
    "provider",
    "call_id",
    "org_id",
    "number_id",
    "e164",
    "agent_id",
    "status",
    "business",
    "registration",
    "record_id",
    "key_hex",
    "uuid",
];

/// How many of [`COLUMNS`] PostgreSQL reads (it has no key tables).
const POSTGRES_COLUMNS: usize = 10;

impl<'a> Row<'a> {
    /// The row of `call`, whose record gets the id `record_id`.
    pub(crate) fn of(call: &'a PendingCall, record_id: &'a str) -> Self {
        let (business, registration) = match call.forwarded() {
            Some((business, registration)) => (Some(business), registration),
            None => (None, None),
        };
        Self(
            call.provider.as_str(),
            call.carrier_call_id(),
            call.org_id(),
            call.number_id(),
            call.e164(),
            call.agent().map(|(id, _)| id),
            call.status(),
            business,
            registration,
            record_id,
            call_keys::key_digits(call.provider.as_str(), call.carrier_call_id()),
            call_keys::is_uuid(record_id),
        )
    }
}

impl Row<'_> {
    /// The same row for a call that reached no agent (refused at a limit).
    pub(crate) fn without_agent(mut self) -> Self {
        self.5 = None;
        self
    }
}

/// The batch as the JSON text bound to the statements.
pub(crate) fn rows_json<R: Serialize>(rows: &[R]) -> Result<String> {
    serde_json::to_string(rows).map_err(json_error)
}

/// A list of ids as the JSON text bound to the statements.
fn ids_json(ids: &[&str]) -> Result<String> {
    serde_json::to_string(ids).map_err(json_error)
}

/// A JSON value the statements bind or return that could not be made or read.
fn json_error(error: serde_json::Error) -> RegistryError {
    RegistryError::Database(sea_orm::DbErr::Custom(error.to_string()))
}

/// The i-th bound parameter (1-based) in the back end's syntax.
fn param(backend: DbBackend, i: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => format!("?{i}"),
    }
}

/// A subquery of the batch bound as parameter `i`: one row per call, with [`COLUMNS`].
fn rows_source(backend: DbBackend, i: usize) -> String {
    let (element, from) = match backend {
        DbBackend::Postgres => ("r", format!("jsonb_array_elements(${i}::jsonb) AS r")),
        _ => ("value", format!("jsonb_each(?{i})")),
    };
    let read = match backend {
        DbBackend::Postgres => POSTGRES_COLUMNS,
        _ => COLUMNS.len(),
    };
    let columns: Vec<String> = COLUMNS[..read]
        .iter()
        .enumerate()
        .map(|(k, name)| format!("{element}->>{k} AS {name}"))
        .collect();
    format!("SELECT {} FROM {from}", columns.join(", "))
}

/// A SQL list of string literals (constants of this module only, never input).
fn quoted(statuses: &[&str]) -> String {
    statuses
        .iter()
        .map(|status| format!("'{status}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a call of `source` gets an `active_calls` row: it reached an agent, its agent or its
/// number has a limit now, and the carrier has not reported it over already (a status callback
/// that reached another instance before this write).
///
/// The agents and numbers with a limit are read once per statement, from their partial indexes
/// (`ix_agents_limited`, `ix_numbers_limited`: few rows), not looked up for every call: SQLite
/// makes each list a small in-memory index, and PostgreSQL a hashed subplan, so a batch reads
/// two small indexes once instead of two tables' keys for each call.
fn counted_now(backend: DbBackend, source: &str) -> String {
    format!(
        "{source}.agent_id IS NOT NULL \
         AND ({source}.agent_id IN (SELECT id FROM agents \
                                    WHERE max_concurrent_calls IS NOT NULL) \
              OR {source}.number_id IN (SELECT id FROM numbers \
                                        WHERE max_concurrent_calls IS NOT NULL)) \
         AND NOT EXISTS (SELECT 1 FROM call_records r \
                         WHERE {by_call} \
                           AND r.org_id = {source}.org_id AND r.status IN ({finals}))",
        by_call = record_by_call_id(
            backend,
            "r",
            &format!("{source}.provider"),
            &format!("{source}.call_id")
        ),
        finals = quoted(&CALL_RECORD_FINAL),
    )
}

/// The condition that `record` (a `call_records` alias) is the record of the call whose
/// provider and carrier call id are the SQL expressions `provider` and `call_id`, written so
/// that the back end answers it from its call-id index: on SQLite the two key tables of the
/// call's compact key (see [`telephony_migrations::sqlite_record_ids_by_key`]), on PostgreSQL
/// the index on the provider and the id.
fn record_by_call_id(backend: DbBackend, record: &str, provider: &str, call_id: &str) -> String {
    match backend {
        DbBackend::Sqlite => format!(
            "{record}.id IN {ids} AND {record}.provider = {provider} \
             AND {record}.carrier_call_id = {call_id}",
            ids = telephony_migrations::sqlite_record_ids_by_key(
                &telephony_migrations::sqlite_call_key_fast(provider, call_id)
            ),
        ),
        _ => format!("{record}.provider = {provider} AND {record}.carrier_call_id = {call_id}"),
    }
}

/// One row when some agent or number has a limit on concurrent calls, none otherwise: read
/// from the two partial indexes of [`counted_now`] (no rows in most deployments).
///
/// The active calls' insert reads the batch through a `CROSS JOIN` after it. SQLite keeps the
/// left side of a `CROSS JOIN` as the outer loop, so with no limit anywhere it does not read
/// the batch at all: reading it (the batch's JSON, each call's columns extracted one by one)
/// cost about a microsecond a call (docs/PERFORMANCE.md, session 30). (PostgreSQL runs this
/// statement only for a batch that holds counted calls, so some limit exists.)
const ANY_LIMIT: &str = "SELECT 1 AS limited \
     WHERE EXISTS (SELECT 1 FROM agents WHERE max_concurrent_calls IS NOT NULL) \
        OR EXISTS (SELECT 1 FROM numbers WHERE max_concurrent_calls IS NOT NULL)";

/// The columns the records' insert writes, and the upsert that follows it: a record already
/// there (the carrier reported the call first, or this is another delivery of the webhook)
/// takes the new status unless a non-final one would replace a final one or `in-progress`,
/// and learns the number and agent if it did not know them; another organization's record is
/// left alone.
///
/// On SQLite the statement is the plain insert: the call-id index there is two key tables,
/// not a unique index `ON CONFLICT` could name. The batch's keys go in first
/// ([`call_keys::insert_keys`]), and a call whose key was there already is applied to its
/// record by [`sqlite_known_update`] instead ([`write_sqlite_records`]).
fn record_insert(backend: DbBackend, source: &str) -> String {
    if backend == DbBackend::Sqlite {
        return record_plain_insert(source);
    }
    let newer = newer("excluded.status");
    format!(
        "{insert} \
         ON CONFLICT (provider, carrier_call_id) DO UPDATE \
         SET status = CASE WHEN {newer} THEN excluded.status ELSE call_records.status END, \
             updated_at = CASE WHEN {newer} THEN excluded.updated_at \
                               ELSE call_records.updated_at END, \
             number_id = COALESCE(call_records.number_id, excluded.number_id), \
             agent_id = COALESCE(call_records.agent_id, excluded.agent_id) \
         WHERE call_records.org_id = excluded.org_id \
           AND ({newer} OR call_records.number_id IS NULL \
                OR (call_records.agent_id IS NULL AND excluded.agent_id IS NOT NULL))",
        insert = record_plain_insert(source),
    )
}

/// The condition that the status `status` (an SQL expression) replaces the status of the
/// record `call_records`: it is final, or the record's is neither final nor `in-progress`.
fn newer(status: &str) -> String {
    format!(
        "({status} IN ({finals}) OR call_records.status NOT IN ({answered}))",
        finals = quoted(&CALL_RECORD_FINAL),
        answered = quoted(&CALL_RECORD_ANSWERED),
    )
}

/// SQLite's upsert of the calls of the batch (bound as parameter 2, `at` as 1) recorded
/// before it: each such record takes the call's status unless a non-final one would replace a
/// final one or `in-progress`, and learns the number and agent if it did not know them, as
/// PostgreSQL's upsert ([`record_insert`]) does; another organization's record is left alone.
/// A call is recorded before when its key is in a key table for another record than the one
/// the batch made for it.
fn sqlite_known_update(rows: &str) -> String {
    let key = call_keys::key_sql("v.provider", "v.call_id", "v.key_hex");
    let newer = newer("u.status");
    // `found` is materialized: each call's key is looked up once, not once for each use of
    // `record` in the id's expression.
    format!(
        "WITH found AS MATERIALIZED \
           (SELECT v.org_id, v.status, v.number_id, v.agent_id, {reference} AS made, \
                   COALESCE((SELECT record FROM call_keys_recent WHERE call_key = {key}), \
                            (SELECT record FROM call_keys WHERE call_key = {key})) AS record \
            FROM ({rows}) AS v), \
         u AS (SELECT {existing} AS id, org_id, status, number_id, agent_id FROM found \
               WHERE record IS NOT made) \
         UPDATE call_records \
         SET status = CASE WHEN {newer} THEN u.status ELSE call_records.status END, \
             updated_at = CASE WHEN {newer} THEN ?1 ELSE call_records.updated_at END, \
             number_id = COALESCE(call_records.number_id, u.number_id), \
             agent_id = COALESCE(call_records.agent_id, u.agent_id) \
         FROM u \
         WHERE call_records.id = u.id AND call_records.org_id = u.org_id \
           AND ({newer} OR call_records.number_id IS NULL \
                OR (call_records.agent_id IS NULL AND u.agent_id IS NOT NULL))",
        reference = call_keys::ref_sql("v.record_id", "v.uuid"),
        existing = telephony_migrations::sqlite_record_id("record"),
    )
}

/// The statements of a batch inside a transaction (SQLite, or a PostgreSQL batch that holds
/// counted calls). The three inserts run in this order, active calls, records, forwarded calls,
/// each binding `at` as parameter 1 and the batch as parameter 2; `touch_numbers` binds `at`,
/// the stale time and the numbers' ids.
struct Statements {
    active: String,
    records: String,
    forwarded: String,
    touch_numbers: String,
    /// SQLite's (empty on PostgreSQL): the batch's keys ([`call_keys::insert_keys`]), the
    /// insert of the records of the calls whose keys went in (all of them: `records`, or only
    /// some), and the upsert of the others ([`sqlite_known_update`]).
    keys: String,
    new_records: String,
    known: String,
}

fn statements(backend: DbBackend) -> Statements {
    let sqlite_only = |text: String| {
        if backend == DbBackend::Sqlite {
            text
        } else {
            String::new()
        }
    };
    let at = param(backend, 1);
    let rows = rows_source(backend, 2);
    let records_source = format!(
        "SELECT record_id, org_id, provider, call_id, e164, 'inbound', status, {at}, {at}, \
                number_id, agent_id \
         FROM ({rows}) AS v WHERE true"
    );
    Statements {
        active: format!(
            "INSERT INTO active_calls \
                 (provider, carrier_call_id, org_id, number_id, agent_id, started_at) \
             SELECT provider, call_id, org_id, number_id, agent_id, {at} \
             FROM ({any_limit}) AS limits CROSS JOIN ({rows}) AS v \
             WHERE {counted} ORDER BY provider, call_id \
             ON CONFLICT DO NOTHING",
            any_limit = ANY_LIMIT,
            counted = counted_now(backend, "v"),
        ),
        records: record_insert(backend, &records_source),
        forwarded: format!(
            "INSERT INTO forwarded_calls \
                 (provider, carrier_call_id, org_id, number_id, business_number, \
                  forwarded_number_id, created_at) \
             SELECT provider, call_id, org_id, number_id, business, registration, {at} \
             FROM ({rows}) AS v WHERE business IS NOT NULL ORDER BY provider, call_id \
             ON CONFLICT DO NOTHING"
        ),
        keys: sqlite_only(call_keys::insert_keys(&rows)),
        new_records: sqlite_only(record_plain_insert(&format!(
            "SELECT record_id, org_id, provider, call_id, e164, 'inbound', status, {at}, {at}, \
                    number_id, agent_id \
             FROM ({rows}) AS v \
             WHERE EXISTS (SELECT 1 FROM call_keys_recent \
                           WHERE call_key = {key} AND record = {reference})",
            key = call_keys::key_sql("v.provider", "v.call_id", "v.key_hex"),
            reference = call_keys::ref_sql("v.record_id", "v.uuid"),
        ))),
        known: sqlite_only(sqlite_known_update(&rows)),
        touch_numbers: match backend {
            DbBackend::Postgres => "UPDATE numbers SET last_call_at = $1 \
                 WHERE id IN (SELECT jsonb_array_elements_text($3::jsonb)) \
                   AND (last_call_at IS NULL OR last_call_at < $2) RETURNING id"
                .to_owned(),
            _ => "UPDATE numbers SET last_call_at = ?1 \
                  WHERE id IN (SELECT value FROM json_each(?3)) \
                    AND (last_call_at IS NULL OR last_call_at < ?2) RETURNING id"
                .to_owned(),
        },
    }
}

static SQLITE: LazyLock<Statements> = LazyLock::new(|| statements(DbBackend::Sqlite));
static POSTGRES: LazyLock<Statements> = LazyLock::new(|| statements(DbBackend::Postgres));

fn statements_for(backend: DbBackend) -> &'static Statements {
    match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    }
}

/// Notes `at` as the last call of `numbers` (ids) whose time is older than `stale` or unset;
/// the ids of the numbers it noted.
pub(crate) async fn touch_numbers<C: ConnectionTrait>(
    txn: &C,
    numbers: &[&str],
    at: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Result<Vec<String>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            statements_for(backend).touch_numbers.as_str(),
            [at.into(), stale.into(), Value::from(ids_json(numbers)?)],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "id").map_err(Into::into))
        .collect()
}

/// Writes the calls of `rows` (none counted against a limit when answered) inside the caller's
/// transaction: their active calls where a limit applies now, their records, their forwarding.
pub(crate) async fn write_uncounted<C: ConnectionTrait>(
    txn: &C,
    rows: &[Row<'_>],
    at: DateTime<Utc>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    let sql = statements_for(backend);
    let json = rows_json(rows)?;
    let run = |text: &'static str| {
        Statement::from_sql_and_values(backend, text, [at.into(), Value::from(json.clone())])
    };
    txn.execute_raw(run(&sql.active)).await?;
    if backend == DbBackend::Sqlite {
        write_sqlite_records(txn, rows.len(), &json, at).await?;
    } else {
        txn.execute_raw(run(&sql.records)).await?;
    }
    if rows.iter().any(|row| row.7.is_some()) {
        txn.execute_raw(run(&sql.forwarded)).await?;
    }
    Ok(())
}

/// SQLite's records of the `count` calls of the batch `json` (distinct calls), inside the
/// caller's transaction: their keys go into the key tables first, in key order, and the calls
/// whose keys went in are inserted, all of them in one plain insert when every key went in
/// (almost every batch); the calls recorded before are applied to their records.
async fn write_sqlite_records<C: ConnectionTrait>(
    txn: &C,
    count: usize,
    json: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let sql = &*SQLITE;
    let run = |text: &'static str| {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            text,
            [at.into(), Value::from(json.to_owned())],
        )
    };
    let keyed = txn.execute_raw(run(&sql.keys)).await?.rows_affected();
    if usize::try_from(keyed).is_ok_and(|keyed| keyed == count) {
        txn.execute_raw(run(&sql.records)).await?;
    } else {
        txn.execute_raw(run(&sql.new_records)).await?;
        txn.execute_raw(run(&sql.known)).await?;
    }
    Ok(())
}

/// Writes one counted call's record and forwarding (its admission was decided and written by
/// the caller) inside the caller's transaction.
pub(crate) async fn write_record<C: ConnectionTrait>(
    txn: &C,
    row: Row<'_>,
    at: DateTime<Utc>,
) -> Result<()> {
    let backend = txn.get_database_backend();
    let sql = statements_for(backend);
    let forwarded = row.7.is_some();
    let json = rows_json(&[row])?;
    let run = |text: &'static str| {
        Statement::from_sql_and_values(backend, text, [at.into(), Value::from(json.clone())])
    };
    if backend == DbBackend::Sqlite {
        write_sqlite_records(txn, 1, &json, at).await?;
    } else {
        txn.execute_raw(run(&sql.records)).await?;
    }
    if forwarded {
        txn.execute_raw(run(&sql.forwarded)).await?;
    }
    Ok(())
}

/// The common table expressions `locked` and `touched` of a PostgreSQL batch: the numbers of
/// the JSON array of ids bound as parameter `ids` whose last-call time is older than `$2` or
/// unset, locked one by one in the order of their ids, then given the time `$1`; `touched`
/// returns their ids.
///
/// Each number is found by its key: the `LATERAL` subquery refers to the outer row and
/// `OFFSET 0` keeps it from being merged into a join, so the plan is a nested loop over the
/// ids whatever the table's size. (Written as `id IN (...)`, the planner read the whole
/// `numbers` table in every batch while the table was small enough, a quarter of a small
/// batch's time.)
fn touch_stale_numbers(ids: usize) -> String {
    format!(
        "locked AS (SELECT n.id \
                    FROM (SELECT DISTINCT number_id \
                          FROM jsonb_array_elements_text(${ids}::jsonb) AS t(number_id) \
                          ORDER BY number_id) AS b, \
                    LATERAL (SELECT id FROM numbers WHERE id = b.number_id \
                             AND (last_call_at IS NULL OR last_call_at < $2) \
                             OFFSET 0 FOR UPDATE) AS n), \
         touched AS (UPDATE numbers SET last_call_at = $1 \
                     WHERE id IN (SELECT id FROM locked) RETURNING id)"
    )
}

/// The whole write of a PostgreSQL batch without counted calls, as one statement (its own
/// transaction, one round trip): data-modifying common table expressions over the batch, in
/// the order of [`write_uncounted`], after the numbers whose last-call time is stale are locked
/// in id order and updated (the inserts wait for that update to finish); each insert runs in
/// key order, so batches of this and other instances wait for each other instead of
/// deadlocking. Binds `at` ($1), the stale time ($2), the batch ($3) and the ids of the numbers
/// whose last-call time to look at ($4: the batch's, less those the writer noted lately, see
/// `LastCallNotes`); returns the ids of the numbers it noted, as a JSON array (`touched`).
/// `records` is the insert of the call records over `fresh` (see [`RecordWrite`]).
///
/// The numbers are locked one by one, each found by its key, in the order of the batch's
/// sorted distinct ids ([`touch_stale_numbers`]).
fn postgres_batch(records: RecordWrite) -> String {
    let rows = rows_source(DbBackend::Postgres, 3);
    let records_source = "SELECT DISTINCT ON (provider, call_id) record_id, org_id, provider, \
                                  call_id, e164, 'inbound', status, $1, $1, number_id, agent_id \
                          FROM fresh ORDER BY provider, call_id";
    format!(
        "WITH v AS ({rows}), {touched}, \
         fresh AS (SELECT * FROM v WHERE (SELECT count(*) FROM touched) >= 0), \
         active AS (INSERT INTO active_calls \
                        (provider, carrier_call_id, org_id, number_id, agent_id, started_at) \
                    SELECT provider, call_id, org_id, number_id, agent_id, $1 FROM fresh \
                    WHERE {counted} ORDER BY provider, call_id \
                    ON CONFLICT DO NOTHING RETURNING 1), \
         records AS ({records} RETURNING 1), \
         forwarded AS (INSERT INTO forwarded_calls \
                           (provider, carrier_call_id, org_id, number_id, business_number, \
                            forwarded_number_id, created_at) \
                       SELECT provider, call_id, org_id, number_id, business, registration, $1 \
                       FROM fresh WHERE business IS NOT NULL ORDER BY provider, call_id \
                       ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT (SELECT count(*) FROM active) + (SELECT count(*) FROM records) \
              + (SELECT count(*) FROM forwarded) AS written, \
                (SELECT COALESCE(json_agg(id), '[]')::text FROM touched) AS touched",
        touched = touch_stale_numbers(4),
        counted = counted_now(DbBackend::Postgres, "fresh"),
        records = match records {
            RecordWrite::Upsert => record_insert(DbBackend::Postgres, records_source),
            RecordWrite::Insert => record_plain_insert(records_source),
        },
    )
}

/// How a PostgreSQL batch writes its call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordWrite {
    /// The upsert of [`record_insert`]: right whatever records exist.
    Upsert,
    /// A plain insert, for a batch expected to find no record of its calls (almost every
    /// batch: a call's first webhook comes before its status callbacks): the records are
    /// copied in ([`copy_postgres_batch`]). If one exists, the batch fails as a whole on the
    /// call-id index (`ux_call_records_provider_call`), writing nothing, and is written again
    /// with the upsert ([`is_record_conflict`]). It spares PostgreSQL the upsert's check of the
    /// call-id index before each row's insert (about 2 µs of the database's 15 per call,
    /// measured), and reading the batch from JSON.
    Insert,
}

static POSTGRES_BATCH_UPSERT: LazyLock<String> =
    LazyLock::new(|| postgres_batch(RecordWrite::Upsert));
static POSTGRES_BATCH_INSERT: LazyLock<String> =
    LazyLock::new(|| postgres_batch(RecordWrite::Insert));

/// The insert of call records that exist nowhere yet (see [`RecordWrite::Insert`]); the
/// upsert ([`record_insert`]) is this with its conflict clause.
fn record_plain_insert(source: &str) -> String {
    format!(
        "INSERT INTO call_records (id, org_id, provider, carrier_call_id, number, direction, \
                                   status, started_at, updated_at, number_id, agent_id) \
         {source}"
    )
}

/// The unique index a [`RecordWrite::Insert`] fails on when a record of one of its calls
/// exists.
const CALL_ID_INDEX: &str = "ux_call_records_provider_call";

/// Whether `error` is a [`RecordWrite::Insert`] that found a record of one of its calls
/// (PostgreSQL's `23505` unique violation on the call-id index).
pub(crate) fn is_record_conflict(error: &RegistryError) -> bool {
    let RegistryError::Database(
        sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))
        | sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error)),
    ) = error
    else {
        return false;
    };
    error.as_database_error().is_some_and(|e| {
        e.code().as_deref() == Some("23505") && e.constraint() == Some(CALL_ID_INDEX)
    })
}

/// Writes a PostgreSQL batch of calls none of which is counted (see [`postgres_batch`]),
/// looking at the last-call times of `numbers`, its records as `records` says; the ids of the
/// numbers it noted.
pub(crate) async fn write_postgres_batch<C: ConnectionTrait>(
    db: &C,
    rows: &[Row<'_>],
    numbers: &[&str],
    at: DateTime<Utc>,
    stale: DateTime<Utc>,
    records: RecordWrite,
) -> Result<Vec<String>> {
    let text = match records {
        RecordWrite::Upsert => &POSTGRES_BATCH_UPSERT,
        RecordWrite::Insert => &POSTGRES_BATCH_INSERT,
    };
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        text.as_str(),
        [
            at.into(),
            stale.into(),
            Value::from(rows_json(rows)?),
            Value::from(ids_json(numbers)?),
        ],
    );
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(Vec::new());
    };
    let touched: String = row.try_get("", "touched")?;
    serde_json::from_str(&touched).map_err(json_error)
}

/// The first statement of a copied batch ([`copy_postgres_batch`]): locks and updates the
/// numbers whose last-call time is stale, as [`postgres_batch`] does, and says which of the
/// batch's agents and numbers have a limit now. Binds `at` ($1), the stale time ($2), the ids
/// of the numbers whose last-call time to look at ($3), and the batch's agents' ($4) and
/// numbers' ($5) ids, each a JSON array; returns three JSON arrays of ids: `touched`,
/// `agents` and `numbers`. The limited agents and numbers are read from their partial indexes
/// once, as in [`counted_now`], and the batch's ids looked up in them.
static POSTGRES_COPY_PRELUDE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {touched} \
         SELECT (SELECT COALESCE(json_agg(id), '[]')::text FROM touched) AS touched, \
                (SELECT COALESCE(json_agg(b.id), '[]')::text \
                 FROM jsonb_array_elements_text($4::jsonb) AS b(id) \
                 WHERE b.id IN (SELECT id FROM agents WHERE max_concurrent_calls IS NOT NULL)) \
                  AS agents, \
                (SELECT COALESCE(json_agg(b.id), '[]')::text \
                 FROM jsonb_array_elements_text($5::jsonb) AS b(id) \
                 WHERE b.id IN (SELECT id FROM numbers WHERE max_concurrent_calls IS NOT NULL)) \
                  AS numbers",
        touched = touch_stale_numbers(3),
    )
});

/// The `COPY` of a batch's call records, in the columns [`copy_records_text`] writes.
const COPY_RECORDS: &str = "COPY call_records (id, org_id, provider, carrier_call_id, number, \
                            direction, status, started_at, updated_at, number_id, agent_id) \
                            FROM STDIN";

/// Writes a PostgreSQL batch of calls none of which is counted, expected to find no record of
/// its calls ([`RecordWrite::Insert`]), in one transaction on a connection of `pool`: the
/// same writes as [`write_postgres_batch`], with the records sent by `COPY` instead of read by
/// PostgreSQL from a JSON parameter (reading a batch from JSON was about a third of
/// PostgreSQL's time a call). In order, as in that statement, so that batches of this and
/// other instances take their locks in one order:
///
/// 1. `LOCK TABLE call_records IN ROW EXCLUSIVE MODE` (the lock the records' insert takes
///    anyway), before any limit is read: a count of calls in progress when a limit is set
///    (which holds `SHARE` on the table) runs before this batch, whose reads then see the
///    limit, or after it, and counts its records (`count_calls_in_progress`);
/// 2. the numbers' last-call times, and which of the batch's agents and numbers have a limit
///    now ([`POSTGRES_COPY_PRELUDE`]);
/// 3. the active calls of the calls whose agent or number has a limit now (the statement of
///    [`write_uncounted`], over those calls alone; none in most batches);
/// 4. the records, one per call id in the order of their keys (by bytes, which is the
///    database's order for the ASCII ids carriers give; where a collation orders two ids
///    otherwise, two batches holding both could deadlock, which PostgreSQL detects and the
///    writer retries), by `COPY`, which fails whole if a record of one of them exists;
/// 5. the forwarded calls (the statement of [`write_uncounted`], over those calls alone).
///
/// Returns the ids of the numbers whose last-call time it noted.
pub(crate) async fn copy_postgres_batch(
    pool: &sqlx::PgPool,
    rows: &[Row<'_>],
    numbers: &[&str],
    at: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Result<Vec<String>> {
    let agents: Vec<&str> = distinct(rows.iter().filter_map(|row| row.5));
    let batch_numbers: Vec<&str> = distinct(rows.iter().map(|row| row.3));
    // One round trip: the transaction begins with the lock.
    let mut txn = pool
        .begin_with("BEGIN; LOCK TABLE call_records IN ROW EXCLUSIVE MODE")
        .await
        .map_err(sqlx_error)?;
    let prelude = sqlx::query(POSTGRES_COPY_PRELUDE.as_str())
        .bind(at)
        .bind(stale)
        .bind(ids_json(numbers)?)
        .bind(ids_json(&agents)?)
        .bind(ids_json(&batch_numbers)?)
        .fetch_one(&mut *txn)
        .await
        .map_err(sqlx_error)?;
    let column = |name: &str| -> Result<Vec<String>> {
        let text: String = prelude.try_get(name).map_err(sqlx_error)?;
        serde_json::from_str(&text).map_err(json_error)
    };
    let touched = column("touched")?;
    let limited_agents: HashSet<String> = column("agents")?.into_iter().collect();
    let limited_numbers: HashSet<String> = column("numbers")?.into_iter().collect();
    let sql = statements_for(DbBackend::Postgres);
    if !limited_agents.is_empty() || !limited_numbers.is_empty() {
        let limited: Vec<&Row<'_>> = rows
            .iter()
            .filter(|row| {
                row.5.is_some_and(|agent| {
                    limited_agents.contains(agent) || limited_numbers.contains(row.3)
                })
            })
            .collect();
        if !limited.is_empty() {
            sqlx::query(sql.active.as_str())
                .bind(at)
                .bind(rows_json(&limited)?)
                .execute(&mut *txn)
                .await
                .map_err(sqlx_error)?;
        }
    }
    let mut copy = txn.copy_in_raw(COPY_RECORDS).await.map_err(sqlx_error)?;
    let sent = copy
        .send(copy_records_text(rows, at).into_bytes())
        .await
        .map(|_| ());
    match sent {
        Ok(()) => copy.finish().await.map(|_| ()).map_err(sqlx_error)?,
        Err(error) => {
            let _ = copy.abort("the batch could not be sent").await;
            return Err(sqlx_error(error));
        }
    }
    let forwarded: Vec<&Row<'_>> = rows.iter().filter(|row| row.7.is_some()).collect();
    if !forwarded.is_empty() {
        sqlx::query(sql.forwarded.as_str())
            .bind(at)
            .bind(rows_json(&forwarded)?)
            .execute(&mut *txn)
            .await
            .map_err(sqlx_error)?;
    }
    txn.commit().await.map_err(sqlx_error)?;
    Ok(touched)
}

/// The distinct values of `ids`, in the order they first come.
fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

/// An error of a statement sent through sqlx itself, as sea-orm reports one (so that
/// [`is_record_conflict`] and the writer's retries read both alike).
fn sqlx_error(error: sqlx::Error) -> RegistryError {
    RegistryError::Database(sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(
        Arc::new(error),
    )))
}

/// The records of `rows` in `COPY`'s text format, in the columns of [`COPY_RECORDS`]: one line
/// per distinct call id (the first of the batch's calls with that id, as `DISTINCT ON` keeps
/// one), in the order of (provider, call id).
fn copy_records_text(rows: &[Row<'_>], at: DateTime<Utc>) -> String {
    let mut order: Vec<(usize, &Row<'_>)> = rows.iter().enumerate().collect();
    // Of the calls with one id, the first of the batch comes first and is kept.
    order.sort_unstable_by(|(i, a), (j, b)| (a.0, a.1, i).cmp(&(b.0, b.1, j)));
    order.dedup_by(|(_, b), (_, a)| (a.0, a.1) == (b.0, b.1));
    let at = at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let mut text = String::with_capacity(order.len() * 256);
    for (_, row) in order {
        let fields = [
            Some(row.9),
            Some(row.2),
            Some(row.0),
            Some(row.1),
            Some(row.4),
            Some("inbound"),
            Some(row.6),
            Some(at.as_str()),
            Some(at.as_str()),
            Some(row.3),
            row.5,
        ];
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                text.push('\t');
            }
            match field {
                Some(value) => push_copy_escaped(&mut text, value),
                None => text.push_str("\\N"),
            }
        }
        text.push('\n');
    }
    text
}

/// Appends `value` to `text` as a field of `COPY`'s text format: a backslash, and the tab,
/// newline and carriage return that delimit fields and rows, are escaped; every other
/// character stands for itself.
fn push_copy_escaped(text: &mut String, value: &str) {
    // Almost every value has none of them: one pass over all its bytes without an early exit
    // (which the compiler vectorizes) says so, for any byte below 14 or a backslash.
    if !value
        .bytes()
        .fold(false, |found, b| found | (b < 14) | (b == b'\\'))
    {
        text.push_str(value);
        return;
    }
    let special = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    let mut rest = value;
    // Each of the four is one byte of UTF-8 that no other character contains, so the text is
    // cut only between characters.
    while let Some(at) = rest.as_bytes().iter().position(special) {
        text.push_str(&rest[..at]);
        let escaped = match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        };
        text.push_str(escaped);
        rest = &rest[at + 1..];
    }
    text.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A call of `org` on `call_id`, with or without an agent.
    fn row<'a>(call_id: &'a str, org: &'a str, agent: Option<&'a str>) -> Row<'a> {
        Row(
            "twilio",
            call_id,
            org,
            "num-1",
            "+14155550101",
            agent,
            "ringing",
            None,
            None,
            "rec-1",
            call_keys::key_digits("twilio", call_id),
            false,
        )
    }

    /// `COPY`'s text format read back: rows of fields, `None` for `\N`.
    fn parse_copy_text(text: &str) -> Vec<Vec<Option<String>>> {
        let Some(text) = text.strip_suffix('\n') else {
            assert!(text.is_empty(), "every row ends with a newline");
            return Vec::new();
        };
        text.split('\n')
            .map(|line| {
                line.split('\t')
                    .map(|field| {
                        if field == "\\N" {
                            return None;
                        }
                        let mut value = String::new();
                        let mut chars = field.chars();
                        while let Some(c) = chars.next() {
                            if c != '\\' {
                                value.push(c);
                                continue;
                            }
                            match chars.next() {
                                Some('\\') => value.push('\\'),
                                Some('t') => value.push('\t'),
                                Some('n') => value.push('\n'),
                                Some('r') => value.push('\r'),
                                other => panic!("unexpected escape {other:?} in {field:?}"),
                            }
                        }
                        Some(value)
                    })
                    .collect()
            })
            .collect()
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000, 123_456_789).expect("a time")
    }

    /// SQLite's statements of a batch's records look each call up by its key (the key tables'
    /// and the records' primary keys): none reads a whole table, whose size grows with every
    /// call answered.
    #[tokio::test]
    async fn sqlites_batch_statements_find_calls_by_their_keys() {
        use sea_orm::Database;
        use telephony_migrations::{Migrator, MigratorTrait};
        let db = Database::connect("sqlite::memory:").await.expect("SQLite");
        Migrator::up(&db, None).await.expect("migrated");
        let sql = statements_for(DbBackend::Sqlite);
        for (name, text) in [
            ("keys", &sql.keys),
            ("records", &sql.records),
            ("new_records", &sql.new_records),
            ("known", &sql.known),
        ] {
            let plan = db
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    format!("EXPLAIN QUERY PLAN {text}"),
                ))
                .await
                .expect("a plan");
            let steps: Vec<String> = plan
                .iter()
                .map(|row| row.try_get::<String>("", "detail").expect("detail"))
                .collect();
            for step in &steps {
                let scanned = step
                    .strip_prefix("SCAN ")
                    .map(|table| table.split_whitespace().next().unwrap_or(""));
                assert!(
                    !matches!(
                        scanned,
                        Some("call_keys" | "call_keys_recent" | "call_records")
                    ),
                    "{name} reads a whole table: {steps:#?}"
                );
            }
        }
    }

    #[test]
    fn copied_records_are_one_per_call_id_in_key_order_keeping_the_first_call() {
        let rows = [
            row("CA2", "org-a", Some("agent-1")),
            row("CA1", "org-a", None),
            row("CA2", "org-b", Some("agent-2")),
        ];
        let parsed = parse_copy_text(&copy_records_text(&rows, at()));
        let at = Some("2025-12-06 05:46:40.123456+00".to_owned());
        let text = |s: &str| Some(s.to_owned());
        assert_eq!(
            parsed,
            vec![
                vec![
                    text("rec-1"),
                    text("org-a"),
                    text("twilio"),
                    text("CA1"),
                    text("+14155550101"),
                    text("inbound"),
                    text("ringing"),
                    at.clone(),
                    at.clone(),
                    text("num-1"),
                    None,
                ],
                vec![
                    text("rec-1"),
                    text("org-a"),
                    text("twilio"),
                    text("CA2"),
                    text("+14155550101"),
                    text("inbound"),
                    text("ringing"),
                    at.clone(),
                    at,
                    text("num-1"),
                    text("agent-1"),
                ],
            ]
        );
    }

    #[test]
    fn copied_text_escapes_what_delimits_fields_and_rows() {
        let rows = [row("a\tb\\c\nd\re\\N", "org", None)];
        let text = copy_records_text(&rows, at());
        assert!(
            text.contains("\ttwilio\ta\\tb\\\\c\\nd\\re\\\\N\t"),
            "escaped call id in {text:?}"
        );
        assert_eq!(text.matches('\n').count(), 1, "one row: {text:?}");
        assert_eq!(text.matches('\t').count(), 10, "eleven fields: {text:?}");
    }

    proptest! {
        #[test]
        fn any_call_id_and_organization_come_back_from_the_copied_text(
            call_id in "[a-z\\\\\t\n\r\u{e9}N ]{0,12}",
            org in "[\\\\\tN\n]{0,4}",
        ) {
            let rows = [row(&call_id, &org, Some("\\N"))];
            let parsed = parse_copy_text(&copy_records_text(&rows, at()));
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].len(), 11);
            prop_assert_eq!(parsed[0][3].as_deref(), Some(call_id.as_str()));
            prop_assert_eq!(parsed[0][1].as_deref(), Some(org.as_str()));
            prop_assert_eq!(parsed[0][10].as_deref(), Some("\\N"));
        }
    }
}
