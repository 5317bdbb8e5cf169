//! The statements that write a group commit's inbound calls that no limit applies to, on both
//! back ends: constant SQL texts with the whole batch bound as one JSON parameter (an array of
//! rows, each an array of strings and nulls in [`Row`]'s order), so that each statement is
//! parsed and planned once per connection and then reused, whatever the batch size. (A
//! multi-row `VALUES` list is a new statement text for every batch size: on PostgreSQL its
//! parsing and planning took a third of the server's time under load.)
//!
//! Such a call is written as its record alone: an upsert keyed by the carrier's call id that
//! never replaces a final or `in-progress` status with an older one, never touches another
//! organization's record, and notes the number called and the agent reached. It gets an
//! `active_calls` row only when its agent or its number has a limit by the time it is written
//! (a limit set while the call was being answered from a route read before it); the calls in
//! progress when a limit is set are counted by [`crate::Registry::count_calls_in_progress`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;

use crate::error::{RegistryError, Result};
use crate::inbound_writer::{CALL_RECORD_ANSWERED, CALL_RECORD_FINAL, PendingCall};

/// One call of a batch, serialized as a JSON array in this order (the column names below).
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
);

/// The names [`Row`]'s fields take in SQL, in order.
const COLUMNS: [&str; 10] = [
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
];

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
pub(crate) fn rows_json(rows: &[Row<'_>]) -> Result<String> {
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
    let columns: Vec<String> = COLUMNS
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
fn counted_now(source: &str) -> String {
    format!(
        "{source}.agent_id IS NOT NULL \
         AND ({source}.agent_id IN (SELECT id FROM agents \
                                    WHERE max_concurrent_calls IS NOT NULL) \
              OR {source}.number_id IN (SELECT id FROM numbers \
                                        WHERE max_concurrent_calls IS NOT NULL)) \
         AND NOT EXISTS (SELECT 1 FROM call_records r \
                         WHERE r.provider = {source}.provider \
                           AND r.carrier_call_id = {source}.call_id \
                           AND r.org_id = {source}.org_id AND r.status IN ({finals}))",
        finals = quoted(&CALL_RECORD_FINAL),
    )
}

/// The columns the records' insert writes, and the upsert that follows it: a record already
/// there (the carrier reported the call first, or this is another delivery of the webhook)
/// takes the new status unless a non-final one would replace a final one or `in-progress`,
/// and learns the number and agent if it did not know them; another organization's record is
/// left alone.
fn record_insert(source: &str) -> String {
    let newer = format!(
        "(excluded.status IN ({finals}) OR call_records.status NOT IN ({answered}))",
        finals = quoted(&CALL_RECORD_FINAL),
        answered = quoted(&CALL_RECORD_ANSWERED),
    );
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

/// The statements of a batch inside a transaction (SQLite, or a PostgreSQL batch that holds
/// counted calls). The three inserts run in this order, active calls, records, forwarded calls,
/// each binding `at` as parameter 1 and the batch as parameter 2; `touch_numbers` binds `at`,
/// the stale time and the numbers' ids.
struct Statements {
    active: String,
    records: String,
    forwarded: String,
    touch_numbers: String,
}

fn statements(backend: DbBackend) -> Statements {
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
             SELECT provider, call_id, org_id, number_id, agent_id, {at} FROM ({rows}) AS v \
             WHERE {counted} ORDER BY provider, call_id \
             ON CONFLICT DO NOTHING",
            counted = counted_now("v"),
        ),
        records: record_insert(&records_source),
        forwarded: format!(
            "INSERT INTO forwarded_calls \
                 (provider, carrier_call_id, org_id, number_id, business_number, \
                  forwarded_number_id, created_at) \
             SELECT provider, call_id, org_id, number_id, business, registration, {at} \
             FROM ({rows}) AS v WHERE business IS NOT NULL ORDER BY provider, call_id \
             ON CONFLICT DO NOTHING"
        ),
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
    txn.execute_raw(run(&sql.records)).await?;
    if rows.iter().any(|row| row.7.is_some()) {
        txn.execute_raw(run(&sql.forwarded)).await?;
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
    txn.execute_raw(run(&sql.records)).await?;
    if forwarded {
        txn.execute_raw(run(&sql.forwarded)).await?;
    }
    Ok(())
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
/// sorted distinct ids: the `LATERAL` subquery refers to the outer row and `OFFSET 0` keeps it
/// from being merged into a join, so the plan is a nested loop over the ids whatever the
/// table's size. (Written as `id IN (...)`, the planner read the whole `numbers` table in every
/// batch while the table was small enough, a quarter of a small batch's time.)
fn postgres_batch(records: RecordWrite) -> String {
    let rows = rows_source(DbBackend::Postgres, 3);
    let records_source = "SELECT DISTINCT ON (provider, call_id) record_id, org_id, provider, \
                                  call_id, e164, 'inbound', status, $1, $1, number_id, agent_id \
                          FROM fresh ORDER BY provider, call_id";
    format!(
        "WITH v AS ({rows}), \
         locked AS (SELECT n.id \
                    FROM (SELECT DISTINCT number_id \
                          FROM jsonb_array_elements_text($4::jsonb) AS t(number_id) \
                          ORDER BY number_id) AS b, \
                    LATERAL (SELECT id FROM numbers WHERE id = b.number_id \
                             AND (last_call_at IS NULL OR last_call_at < $2) \
                             OFFSET 0 FOR UPDATE) AS n), \
         touched AS (UPDATE numbers SET last_call_at = $1 \
                     WHERE id IN (SELECT id FROM locked) RETURNING id), \
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
        counted = counted_now("fresh"),
        records = match records {
            RecordWrite::Upsert => record_insert(records_source),
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
    /// batch: a call's first webhook comes before its status callbacks). If one exists, the
    /// statement fails as a whole on the call-id index (`ux_call_records_provider_call`),
    /// writing nothing, and the batch is written again with the upsert
    /// ([`is_record_conflict`]). It spares PostgreSQL the upsert's check of the call-id index
    /// before each row's insert (about 2 µs of the database's 15 per call, measured).
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
