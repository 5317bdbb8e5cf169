//! What the service stores on the call path: call records, webhook idempotency and the active
//! calls counted for admission control. All of it lives in the database, never in process
//! memory, because several gateway instances behind a load balancer share one PostgreSQL and a
//! retried webhook may reach another instance.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
    sea_query::Expr,
};
use telephony_carrier::Provider;

use crate::call_keys;
use crate::entity::{active_call, audit, call_record, idempotency, number};
use crate::error::{RegistryError, Result};
use crate::forwarding::forwarded_call;
use crate::inbound_writer::CALL_RECORD_FINAL;
use crate::model::{Admission, AuditEntry, CallAdmission, CallRecord, CallUpdate, Number};
use crate::registry::{Registry, new_id, now};

/// Whose calls in progress a new limit counts (see `count_calls_in_progress`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum CountedBy<'a> {
    /// The calls connected to this agent.
    Agent(&'a str),
    /// The calls on this number that reached an agent.
    Number(&'a str),
}

/// On PostgreSQL, takes `SHARE` on `call_records` for a transaction that may count calls in
/// progress (see `Registry::count_calls_in_progress`): first, before it locks any row.
/// Nothing on SQLite, whose writers run one at a time.
pub(crate) async fn lock_for_count<C: ConnectionTrait>(txn: &C) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("LOCK TABLE call_records IN SHARE MODE")
            .await?;
    }
    Ok(())
}

pub(crate) fn record_from_row(row: call_record::Model) -> CallRecord {
    CallRecord {
        id: row.id,
        org_id: row.org_id,
        provider: row.provider,
        carrier_call_id: row.carrier_call_id,
        number: row.number,
        direction: row.direction,
        status: row.status,
        duration_secs: row.duration_secs.and_then(|d| u64::try_from(d).ok()),
        started_at: row.started_at,
        ended_at: row.ended_at,
        forwarded_from: None,
    }
}

impl Registry {
    /// The organization's audit log, newest first, at most `limit` entries.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn audit_log(&self, org_id: &str, limit: u64) -> Result<Vec<AuditEntry>> {
        self.audit_page(org_id, None, limit).await
    }

    /// A page of the organization's audit log, newest first: at most `limit` entries with an
    /// id below `before` (from the newest when `None`).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn audit_page(
        &self,
        org_id: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<AuditEntry>> {
        let mut query = audit::Entity::find().filter(audit::Column::OrgId.eq(org_id));
        if let Some(before) = before {
            query = query.filter(audit::Column::Id.lt(before));
        }
        let rows = query
            .order_by_desc(audit::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditEntry {
                id: row.id,
                at: row.at,
                action: row.action,
                number: row.number,
                connection_id: row.connection_id,
                changed_account: row.changed_account,
                outcome: row.outcome,
            })
            .collect())
    }

    /// Records a call or updates its record (keyed by provider and carrier call id), and notes
    /// the time on the number for diagnostics. Status callbacks arrive in any order and more
    /// than once, so this is an upsert; a late non-final status (`ringing`, `in-progress`)
    /// never replaces a final one (`completed`, `busy`, `failed`, `no-answer`, `canceled`).
    ///
    /// A record belongs to the organization that wrote it first: an update from another
    /// organization (a webhook signed with its own credentials naming someone else's call id)
    /// changes nothing, is logged at debug level, and answers [`RegistryError::NotFound`], as
    /// for any other organization's resource.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for another organization's call; [`RegistryError::Database`].
    pub async fn record_call(&self, update: CallUpdate) -> Result<CallRecord> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let duration = update
            .duration_secs
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
        let at = now();
        let backend = self.db.get_database_backend();
        let find = || {
            let query = call_record::Entity::find()
                .filter(call_record::Column::Provider.eq(update.provider.as_str()))
                .filter(call_record::Column::CarrierCallId.eq(update.carrier_call_id.as_str()));
            match backend {
                // Found by its key, from the key tables (see `sqlite_record_ids_by_key`).
                DbBackend::Sqlite => query.filter(Expr::cust_with_values(
                    format!(
                        "id IN {}",
                        telephony_migrations::sqlite_record_ids_by_key(&format!(
                            "(SELECT {} FROM (SELECT ? AS p, ? AS i))",
                            telephony_migrations::sqlite_call_key_fast("p", "i")
                        ))
                    ),
                    [
                        update.provider.as_str(),
                        update.carrier_call_id.as_str(),
                        update.provider.as_str(),
                        update.carrier_call_id.as_str(),
                    ],
                )),
                _ => query,
            }
        };
        let record = match find().one(&self.db).await? {
            Some(row) => self.update_call_row(row, &update, duration).await?,
            None => {
                let id = new_id();
                let insert = call_record::ActiveModel {
                    id: Set(id.clone()),
                    org_id: Set(update.org_id.clone()),
                    provider: Set(update.provider.as_str().to_owned()),
                    carrier_call_id: Set(update.carrier_call_id.clone()),
                    number: Set(update.number.clone()),
                    direction: Set(update.direction.as_str().to_owned()),
                    status: Set(update.status.clone()),
                    duration_secs: Set(duration),
                    started_at: Set(at),
                    ended_at: Set(update.ended_at),
                    updated_at: Set(at),
                    number_id: Set(None),
                    agent_id: Set(None),
                };
                match self.insert_call_record(insert, &update, &id).await? {
                    Some(row) => row,
                    // Another instance recorded the same call in between: update that row.
                    None => {
                        let row = find().one(&self.db).await?.ok_or_else(|| {
                            RegistryError::Conflict("the call's record vanished".into())
                        })?;
                        self.update_call_row(row, &update, duration).await?
                    }
                }
            }
        };
        number::Entity::update_many()
            .col_expr(number::Column::LastCallAt, Expr::value(Some(at)))
            .filter(number::Column::E164.eq(update.number.as_str()))
            .filter(number::Column::OrgId.eq(update.org_id.as_str()))
            .exec(&self.db)
            .await?;
        Ok(record_from_row(record))
    }

    /// Inserts the record `row` (id `id`) of the call of `update`, with its call key on SQLite
    /// ([`call_keys::insert_key`]), in one transaction; `None`, writing nothing, when the call
    /// is recorded already (another instance recorded it since it was looked for).
    async fn insert_call_record(
        &self,
        row: call_record::ActiveModel,
        update: &CallUpdate,
        id: &str,
    ) -> Result<Option<call_record::Model>> {
        let txn = self.db.begin().await?;
        let provider = update.provider.as_str();
        if !call_keys::insert_key(&txn, provider, &update.carrier_call_id, id).await? {
            return Ok(None);
        }
        match row.insert(&txn).await {
            Ok(row) => {
                txn.commit().await?;
                Ok(Some(row))
            }
            Err(error) if is_unique_violation(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    async fn update_call_row(
        &self,
        row: call_record::Model,
        update: &CallUpdate,
        duration: Option<i64>,
    ) -> Result<call_record::Model> {
        if row.org_id != update.org_id {
            tracing::debug!(
                provider = %row.provider,
                "call status update from another organization ignored"
            );
            return Err(RegistryError::NotFound("call"));
        }
        let keep_status = is_final_status(&row.status) && !is_final_status(&update.status);
        let mut active: call_record::ActiveModel = row.into();
        if !keep_status {
            active.status = Set(update.status.clone());
        }
        if duration.is_some() {
            active.duration_secs = Set(duration);
        }
        if update.ended_at.is_some() {
            active.ended_at = Set(update.ended_at);
        }
        active.updated_at = Set(now());
        // A record's organization never changes, so the check above holds for this write.
        Ok(active.update(&self.db).await?)
    }

    /// The organization's call records, newest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_calls(&self, org_id: &str, limit: u64) -> Result<Vec<CallRecord>> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let rows = call_record::Entity::find()
            .filter(call_record::Column::OrgId.eq(org_id))
            .order_by_desc(call_record::Column::StartedAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let records = rows.into_iter().map(record_from_row).collect();
        self.with_forwarding(org_id, records).await
    }

    /// Fills in [`CallRecord::forwarded_from`] from the organization's forwarded calls (one
    /// query for the whole page).
    pub(crate) async fn with_forwarding(
        &self,
        org_id: &str,
        mut records: Vec<CallRecord>,
    ) -> Result<Vec<CallRecord>> {
        let inbound: Vec<String> = records
            .iter()
            .filter(|r| r.direction == "inbound")
            .map(|r| r.carrier_call_id.clone())
            .collect();
        if inbound.is_empty() {
            return Ok(records);
        }
        let forwarded = forwarded_call::Entity::find()
            .filter(forwarded_call::Column::OrgId.eq(org_id))
            .filter(forwarded_call::Column::CarrierCallId.is_in(inbound))
            .all(&self.db)
            .await?;
        for record in &mut records {
            record.forwarded_from = forwarded
                .iter()
                .find(|f| {
                    f.provider == record.provider && f.carrier_call_id == record.carrier_call_id
                })
                .map(|f| f.business_number.clone());
        }
        Ok(records)
    }

    /// Webhook idempotency: stores `response_body` as the answer to (`provider`, `key`) unless
    /// an answer is already stored, and returns the stored answer. A retried webhook, on any
    /// instance, gets the first answer. `key` is the carrier's idempotency key, CallSid plus
    /// status, or event id, as the service chooses.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn remember_response(
        &self,
        provider: Provider,
        key: &str,
        response_body: &str,
    ) -> Result<String> {
        idempotency::Entity::insert(idempotency::ActiveModel {
            provider: Set(provider.as_str().to_owned()),
            idempotency_key: Set(key.to_owned()),
            response_body: Set(response_body.to_owned()),
            created_at: Set(now()),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&self.db)
        .await?;
        let stored =
            idempotency::Entity::find_by_id((provider.as_str().to_owned(), key.to_owned()))
                .one(&self.db)
                .await?
                .ok_or(RegistryError::Conflict(
                    "idempotency record vanished".into(),
                ))?;
        Ok(stored.response_body)
    }

    /// The answer already stored for (`provider`, `key`), if any.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn stored_response(&self, provider: Provider, key: &str) -> Result<Option<String>> {
        Ok(
            idempotency::Entity::find_by_id((provider.as_str().to_owned(), key.to_owned()))
                .one(&self.db)
                .await?
                .map(|row| row.response_body),
        )
    }

    /// Sets the number's limit of concurrent calls (`None` removes it). Admission control
    /// counts every active call of the number against it, whatever the call's agent; the
    /// caller passes it as [`CallAdmission::number_limit`]. A limit set where there was none
    /// counts the number's calls in progress that reached an agent (see
    /// `count_calls_in_progress`), in the same transaction: the limit and its count are
    /// committed together or not at all, so a failure leaves the number without the limit, and
    /// setting it again counts the calls.
    ///
    /// # Errors
    /// [`RegistryError::InvalidRequest`] for a limit of 0 (or one too large to store);
    /// [`RegistryError::NotFound`] when the organization has no such number;
    /// [`RegistryError::Database`].
    pub async fn set_number_call_limit(
        &self,
        org_id: &str,
        number_id: &str,
        limit: Option<u32>,
    ) -> Result<Number> {
        let limit = crate::agents::check_limit(limit)?;
        let txn = self.db.begin().await?;
        if limit.is_some() {
            lock_for_count(&txn).await?;
        }
        // The first statement writes, so SQLite takes its write lock (PostgreSQL the row's)
        // before the limit the number had is read.
        let touched = number::Entity::update_many()
            .col_expr(number::Column::UpdatedAt, Expr::value(now()))
            .filter(number::Column::Id.eq(number_id))
            .filter(number::Column::OrgId.eq(org_id))
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(RegistryError::NotFound("number"));
        }
        let had_limit = number::Entity::find_by_id(number_id.to_owned())
            .one(&txn)
            .await?
            .is_some_and(|row| row.max_concurrent_calls.is_some());
        // One column: a concurrent rename or repoint is not overwritten.
        number::Entity::update_many()
            .col_expr(number::Column::MaxConcurrentCalls, Expr::value(limit))
            .filter(number::Column::Id.eq(number_id))
            .exec(&txn)
            .await?;
        // Calls are counted from the moment a limit applies; one set before counted them.
        if limit.is_some() && !had_limit {
            self.count_calls_in_progress(&txn, org_id, CountedBy::Number(number_id))
                .await?;
        }
        txn.commit().await?;
        self.number(org_id, number_id).await
    }

    /// Counts, against a limit being set, the inbound calls in progress that were answered while
    /// no limit applied to them (such a call is written as its record alone, with no active-call
    /// row): the organization's calls connected to the agent, or to any agent on the number,
    /// started within [`crate::RegistryConfig::max_call_age`] and not reported over. Changes
    /// nothing for calls counted already. Returns how many calls it added.
    ///
    /// It runs in the transaction that sets the limit, and only when a limit is set where there
    /// was none (a limit already set counted the calls). A call written after that transaction
    /// commits sees the limit and is counted by its own write. On PostgreSQL the transaction
    /// first takes `SHARE` on `call_records` ([`lock_for_count`]), before it locks the agent's
    /// or the number's row: it waits for the writes of inbound calls in flight, which may have
    /// read no limit, and then sees their records; the writes that follow wait until it
    /// commits. Every inbound batch takes its conflicting lock on `call_records` before it
    /// reads a limit or locks a row, so the two run one after the other and never wait on each
    /// other's rows. On SQLite, writes are one at a time anyway.
    ///
    /// Its cost: the records of every organization started within the maximum call age are
    /// read (the `started_at` index), while the writes of inbound calls wait on PostgreSQL (the
    /// calls are still answered; their records are written once it is done).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub(crate) async fn count_calls_in_progress<C: ConnectionTrait>(
        &self,
        txn: &C,
        org_id: &str,
        by: CountedBy<'_>,
    ) -> Result<u64> {
        let backend = txn.get_database_backend();
        let p = |i: usize| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => format!("?{i}"),
        };
        let scope = match by {
            CountedBy::Agent(_) => "agent_id",
            CountedBy::Number(_) => "number_id",
        };
        let id = match by {
            CountedBy::Agent(id) | CountedBy::Number(id) => id,
        };
        let finals = CALL_RECORD_FINAL
            .iter()
            .map(|status| format!("'{status}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO active_calls \
                 (provider, carrier_call_id, org_id, number_id, agent_id, started_at) \
             SELECT provider, carrier_call_id, org_id, number_id, agent_id, started_at \
             FROM call_records \
             WHERE started_at >= {cutoff} AND org_id = {org} AND {scope} = {id} \
               AND direction = 'inbound' AND agent_id IS NOT NULL AND number_id IS NOT NULL \
               AND ended_at IS NULL AND status NOT IN ({finals}) \
             ORDER BY provider, carrier_call_id \
             ON CONFLICT DO NOTHING",
            cutoff = p(1),
            org = p(2),
            id = p(3),
        );
        let statement = Statement::from_sql_and_values(
            backend,
            sql,
            [
                self.call_age_cutoff().into(),
                Value::from(org_id),
                Value::from(id),
            ],
        );
        Ok(txn.execute_raw(statement).await?.rows_affected())
    }

    /// Admission control: counts the call against its number's and its agent's concurrency
    /// limits, across every gateway instance. The call's row is inserted first and the counts
    /// taken after, so two racing calls can both be refused at a limit but never both admitted
    /// past it. The number's limit is checked first ([`Admission::NumberAtCapacity`]), then the
    /// agent's ([`Admission::AtCapacity`]); a refused call's row is deleted at once. Calls older
    /// than [`crate::RegistryConfig::max_call_age`] are not counted (their end was never
    /// reported).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn admit_call(&self, call: &CallAdmission) -> Result<Admission> {
        let inserted = active_call::Entity::insert(active_call::ActiveModel {
            provider: Set(call.provider.as_str().to_owned()),
            carrier_call_id: Set(call.carrier_call_id.clone()),
            org_id: Set(call.org_id.clone()),
            number_id: Set(call.number_id.clone()),
            agent_id: Set(call.agent_id.clone()),
            started_at: Set(now()),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&self.db)
        .await?;
        // A conflict shows as `Conflicted` or as zero rows inserted, depending on the back end.
        if matches!(
            inserted,
            sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
        ) {
            return Ok(Admission::AlreadyAdmitted);
        }
        if let Some(limit) = call.number_limit {
            let active = self.active_calls_for_number(&call.number_id).await?;
            if active > u64::from(limit) {
                self.end_active_call_in_org(&call.org_id, call.provider, &call.carrier_call_id)
                    .await?;
                return Ok(Admission::NumberAtCapacity);
            }
        }
        let (Some(agent_id), Some(limit)) = (&call.agent_id, call.limit) else {
            return Ok(Admission::Admitted);
        };
        let active = self.active_calls_for_agent(agent_id).await?;
        if active > u64::from(limit) {
            self.end_active_call_in_org(&call.org_id, call.provider, &call.carrier_call_id)
                .await?;
            return Ok(Admission::AtCapacity);
        }
        Ok(Admission::Admitted)
    }

    /// Stops counting a call of the organization (it ended). Ending an unknown call, or
    /// another organization's, is harmless and changes nothing.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn end_active_call_in_org(
        &self,
        org_id: &str,
        provider: Provider,
        carrier_call_id: &str,
    ) -> Result<()> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        active_call::Entity::delete_many()
            .filter(active_call::Column::Provider.eq(provider.as_str()))
            .filter(active_call::Column::CarrierCallId.eq(carrier_call_id))
            .filter(active_call::Column::OrgId.eq(org_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Stops counting a call, whatever its organization: only for callers that already found
    /// the call within its organization. The public way is [`Registry::end_active_call_in_org`].
    pub(crate) async fn end_active_call(
        &self,
        provider: Provider,
        carrier_call_id: &str,
    ) -> Result<()> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        active_call::Entity::delete_by_id((
            provider.as_str().to_owned(),
            carrier_call_id.to_owned(),
        ))
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// Calls started before this are no longer counted (see
    /// [`crate::RegistryConfig::max_call_age`]).
    fn call_age_cutoff(&self) -> chrono::DateTime<chrono::Utc> {
        let age =
            chrono::Duration::from_std(self.config.max_call_age).unwrap_or(chrono::Duration::MAX);
        now().checked_sub_signed(age).unwrap_or_default()
    }

    /// Deletes the active-call rows older than [`crate::RegistryConfig::max_call_age`]: calls
    /// whose end was never reported. Safe on several instances at once. Returns how many rows
    /// were deleted. [`Registry::recover_pending_operations`] runs it.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn sweep_stale_calls(&self) -> Result<u64> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let swept = active_call::Entity::delete_many()
            .filter(active_call::Column::StartedAt.lt(self.call_age_cutoff()))
            .exec(&self.db)
            .await?;
        Ok(swept.rows_affected)
    }

    /// How many calls are counted against the agent now: the calls admitted while it or their
    /// number had a limit, and the calls in progress when such a limit was set (an inbound call
    /// no limit applies to is not counted; see `count_calls_in_progress`). Calls
    /// older than [`crate::RegistryConfig::max_call_age`] are not counted.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn active_calls_for_agent(&self, agent_id: &str) -> Result<u64> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        Ok(active_call::Entity::find()
            .filter(active_call::Column::AgentId.eq(agent_id))
            .filter(active_call::Column::StartedAt.gte(self.call_age_cutoff()))
            .count(&self.db)
            .await?)
    }

    /// How many calls are counted against the number now (as
    /// [`Registry::active_calls_for_agent`] counts an agent's).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn active_calls_for_number(&self, number_id: &str) -> Result<u64> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        Ok(active_call::Entity::find()
            .filter(active_call::Column::NumberId.eq(number_id))
            .filter(active_call::Column::StartedAt.gte(self.call_age_cutoff()))
            .count(&self.db)
            .await?)
    }
}

/// Whether a carrier call status is final: nothing follows it.
fn is_final_status(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    )
}

pub(crate) fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
