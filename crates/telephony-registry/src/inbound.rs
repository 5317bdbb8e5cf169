//! The inbound call path's registry work, in as few round trips as the semantics allow.
//!
//! - [`Registry::inbound_route`]: one joined read (number, its connection's decrypted webhook
//!   secrets and account, its agent) replaces the four reads the path made before.
//! - [`Registry::answer_inbound_call`]: admission control, the call record, the forwarded-call
//!   record, the number's last-call time and the remembered answer, in one transaction, so one
//!   commit (one fsync on SQLite) per call. A retried webhook, on any instance, gets the first
//!   answer: the loser of the insert-if-absent of the answer rolls back everything it wrote.
//!
//! Nothing here is cached: the service may cache [`InboundRoute`] for a bounded time (see
//! `docs/ARCHITECTURE.md`); every write goes to the database.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, IdenStatic, Iterable,
    QueryFilter, QueryResult, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, LockType, Query},
};
use telephony_carrier::{E164, Provider};
use telephony_vault::Aad;

use crate::agents::agent_from_row;
use crate::calls::is_unique_violation;
use crate::entity::{active_call, agent, call_record, connection, idempotency, number};
use crate::error::{RegistryError, Result};
use crate::forwarding::forwarded_call;
use crate::model::{Admission, Agent, Direction, Number, NumberStatus, WebhookSecrets};
use crate::numbers::number_from_row;
use crate::registry::{FIELD_AUTH, FIELD_PREVIOUS_AUTH, Registry, new_id, now, provider_of};

/// Everything the inbound path needs to verify and route a webhook for one number, read at once.
#[derive(Debug, Clone)]
pub struct InboundRoute {
    /// The number called (never `importing`).
    pub number: Number,
    /// Its connection's carrier.
    pub provider: Provider,
    /// Its connection's account id: the Twilio Account SID webhooks must carry, or the Telnyx
    /// TeXML account SID (empty when the admin did not give it).
    pub account_id: String,
    /// The connection's webhook secrets: the current one and, when the connection was rotated
    /// and its grace had not ended at the time of the read, the previous one.
    pub secrets: WebhookSecrets,
    /// When the previous secret in [`InboundRoute::secrets`] stops verifying. A holder of this
    /// route for longer than the read must not use the previous secret after this time.
    pub previous_expires_at: Option<DateTime<Utc>>,
    /// The number's agent, when it has one (of the same organization).
    pub agent: Option<Agent>,
}

impl InboundRoute {
    /// Whether the previous secret may still verify at `at`.
    #[must_use]
    pub fn previous_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.previous_expires_at.is_some_and(|expires| expires > at)
    }
}

/// An inbound call to admit, record and answer (see [`Registry::answer_inbound_call`]).
#[derive(Debug, Clone, Copy)]
pub struct InboundCall<'a> {
    /// The carrier.
    pub provider: Provider,
    /// The carrier's call id.
    pub carrier_call_id: &'a str,
    /// The number called.
    pub number: &'a Number,
    /// The agent the call would reach (the number's, or a forwarding registration's); the call
    /// is counted for admission control only when there is one.
    pub agent: Option<&'a Agent>,
    /// The status the webhook reports (`ringing` when it says none).
    pub status: &'a str,
    /// When the call arrived forwarded: the business number (E.164) and the registration that
    /// routed it, if registered.
    pub forwarded: Option<(&'a str, Option<&'a str>)>,
    /// The webhook idempotency key its answer is remembered under.
    pub idempotency_key: &'a str,
}

/// The answer to an inbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAnswer {
    /// The document to answer the carrier with.
    pub body: String,
    /// `false` when this is the first answer of an earlier delivery of the same webhook (this
    /// one wrote nothing).
    pub fresh: bool,
}

const CALL_RECORD_FINAL: [&str; 5] = ["completed", "busy", "failed", "no-answer", "canceled"];

fn col<C: sea_orm::sea_query::IntoIden>(table: &'static str, column: C) -> Expr {
    Expr::col((Alias::new(table), column))
}

impl Registry {
    /// Everything the inbound path needs for the routable number `e164` of `provider`, in one
    /// query: the number, its connection's decrypted webhook secrets and account id, and its
    /// agent. `None` when no routable number has this E.164 (unknown, still `importing`) or its
    /// connection is another carrier's (a Twilio webhook for a Telnyx number is for no number
    /// of ours).
    ///
    /// # Errors
    /// [`RegistryError::InvalidPhoneNumber`] for a `e164` that is not E.164;
    /// [`RegistryError::Vault`] when a secret cannot be decrypted; [`RegistryError::Database`].
    pub async fn inbound_route(
        &self,
        provider: Provider,
        e164: &str,
    ) -> Result<Option<InboundRoute>> {
        let e164 = E164::parse(e164.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)?;
        let mut query = Query::select();
        query.from_as(number::Entity, Alias::new("n"));
        for column in number::Column::iter() {
            query.expr_as(
                col("n", column),
                Alias::new(format!("n_{}", column.as_str())),
            );
        }
        for column in connection::Column::iter() {
            query.expr_as(
                col("c", column),
                Alias::new(format!("c_{}", column.as_str())),
            );
        }
        for column in agent::Column::iter() {
            query.expr_as(
                col("a", column),
                Alias::new(format!("a_{}", column.as_str())),
            );
        }
        query
            .join_as(
                sea_orm::JoinType::InnerJoin,
                connection::Entity,
                Alias::new("c"),
                col("c", connection::Column::Id)
                    .equals((Alias::new("n"), number::Column::ConnectionId)),
            )
            .join_as(
                sea_orm::JoinType::LeftJoin,
                agent::Entity,
                Alias::new("a"),
                col("a", agent::Column::Id)
                    .equals((Alias::new("n"), number::Column::AgentId))
                    .and(
                        col("a", agent::Column::OrgId)
                            .equals((Alias::new("n"), number::Column::OrgId)),
                    ),
            )
            .and_where(col("n", number::Column::E164).eq(e164.as_str()))
            .and_where(col("n", number::Column::Status).ne(NumberStatus::Importing.as_str()));
        let backend = self.db.get_database_backend();
        let Some(row) = self.db.query_one_raw(backend.build(&query)).await? else {
            return Ok(None);
        };
        self.route_from_row(provider, &row)
    }

    fn route_from_row(
        &self,
        provider: Provider,
        row: &QueryResult,
    ) -> Result<Option<InboundRoute>> {
        let conn = connection::Model::from_query_result(row, "c_")?;
        if provider_of(&conn)? != provider {
            return Ok(None);
        }
        let number = number_from_row(number::Model::from_query_result(row, "n_")?)?;
        let agent = match row.try_get::<Option<String>>("a_", "id")? {
            Some(_) => Some(agent_from_row(agent::Model::from_query_result(row, "a_")?)?),
            None => None,
        };
        let at = now();
        let in_grace = conn
            .previous_auth_expires_at
            .is_some_and(|expires| expires > at);
        let aad = |field| Aad {
            org_id: &conn.org_id,
            connection_id: &conn.id,
            field,
        };
        let secrets = match provider {
            Provider::Twilio => WebhookSecrets::Twilio {
                account_sid: conn.account_id.clone(),
                current: self.keyring.decrypt(&conn.auth_secret, &aad(FIELD_AUTH))?,
                previous: match (&conn.previous_auth_secret, in_grace) {
                    (Some(sealed), true) => {
                        Some(self.keyring.decrypt(sealed, &aad(FIELD_PREVIOUS_AUTH))?)
                    }
                    _ => None,
                },
            },
            Provider::Telnyx => WebhookSecrets::Telnyx {
                current: conn.public_key.clone(),
                previous: conn
                    .previous_public_key
                    .clone()
                    .filter(|_| in_grace)
                    .filter(|key| Some(key) != conn.public_key.as_ref()),
            },
        };
        Ok(Some(InboundRoute {
            number,
            provider,
            account_id: conn.account_id,
            secrets,
            previous_expires_at: conn.previous_auth_expires_at.filter(|_| in_grace),
            agent,
        }))
    }

    /// Admits, records and answers an inbound call, in one transaction:
    ///
    /// 1. the number's last-call time is set (on PostgreSQL this locks the number's row, and
    ///    the agent's row is locked when it has a limit, so concurrent calls on one number or
    ///    agent are counted one after the other; SQLite has one writer at a time);
    /// 2. a call that would reach an agent is counted ([`Admission`]): its `active_calls` row is
    ///    inserted, then the number's and the agent's active calls counted against their
    ///    limits (calls older than [`crate::RegistryConfig::max_call_age`] do not count); a
    ///    refused call's row is deleted;
    /// 3. the call record is inserted, or updated when the carrier already reported the call
    ///    (a final status is never replaced by a non-final one; another organization's record is
    ///    left alone);
    /// 4. a forwarded call is recorded with its business number;
    /// 5. `render` turns the admission verdict into the document, which is stored under
    ///    (`provider`, `idempotency_key`) if no answer is stored yet.
    ///
    /// When an answer was already stored (a retried webhook, here or on another instance), the
    /// transaction is rolled back, so a retry counts and records nothing twice, and that first
    /// answer is returned with `fresh: false`.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn answer_inbound_call<F>(
        &self,
        call: &InboundCall<'_>,
        render: F,
    ) -> Result<InboundAnswer>
    where
        F: FnOnce(Admission) -> String + Send,
    {
        let backend = self.db.get_database_backend();
        let provider = call.provider.as_str();
        let number = call.number;
        let _writer = match backend {
            DbBackend::Sqlite => Some(self.sqlite_writer.lock().await),
            _ => None,
        };
        let at = now();
        let txn = self.db.begin().await?;
        // The first statement writes, so SQLite takes its write lock here (waiting up to the
        // busy timeout) rather than failing to upgrade a read snapshot later.
        number::Entity::update_many()
            .col_expr(number::Column::LastCallAt, Expr::value(Some(at)))
            .filter(number::Column::Id.eq(number.id.as_str()))
            .exec(&txn)
            .await?;
        let admission = match call.agent {
            None => Admission::Admitted,
            Some(agent) => {
                if backend == DbBackend::Postgres && agent.max_concurrent_calls.is_some() {
                    let mut lock = Query::select();
                    lock.column(agent::Column::Id)
                        .from(agent::Entity)
                        .and_where(Expr::col(agent::Column::Id).eq(agent.id.as_str()))
                        .lock(LockType::Update);
                    txn.query_one_raw(backend.build(&lock)).await?;
                }
                self.admit_in(&txn, call, agent, at).await?
            }
        };
        let recorded = call_record::Entity::insert(call_record::ActiveModel {
            id: sea_orm::ActiveValue::Set(new_id()),
            org_id: sea_orm::ActiveValue::Set(number.org_id.clone()),
            provider: sea_orm::ActiveValue::Set(provider.to_owned()),
            carrier_call_id: sea_orm::ActiveValue::Set(call.carrier_call_id.to_owned()),
            number: sea_orm::ActiveValue::Set(number.e164.clone()),
            direction: sea_orm::ActiveValue::Set(Direction::Inbound.as_str().to_owned()),
            status: sea_orm::ActiveValue::Set(call.status.to_owned()),
            duration_secs: sea_orm::ActiveValue::Set(None),
            started_at: sea_orm::ActiveValue::Set(at),
            ended_at: sea_orm::ActiveValue::Set(None),
            updated_at: sea_orm::ActiveValue::Set(at),
        })
        .on_conflict_do_nothing_on([
            call_record::Column::Provider,
            call_record::Column::CarrierCallId,
        ])
        .exec_without_returning(&txn)
        .await?;
        if !inserted(&recorded) {
            let mut update = call_record::Entity::update_many()
                .col_expr(call_record::Column::UpdatedAt, Expr::value(at))
                .filter(call_record::Column::Provider.eq(provider))
                .filter(call_record::Column::CarrierCallId.eq(call.carrier_call_id))
                .filter(call_record::Column::OrgId.eq(number.org_id.as_str()));
            if !CALL_RECORD_FINAL.contains(&call.status) {
                update = update.filter(call_record::Column::Status.is_not_in(CALL_RECORD_FINAL));
            }
            let updated = update
                .col_expr(call_record::Column::Status, Expr::value(call.status))
                .exec(&txn)
                .await?;
            if updated.rows_affected == 0 {
                tracing::debug!(provider, "inbound call record left as it was");
            }
        }
        if let Some((business, registration)) = call.forwarded {
            forwarded_call::Entity::insert(forwarded_call::ActiveModel {
                provider: sea_orm::ActiveValue::Set(provider.to_owned()),
                carrier_call_id: sea_orm::ActiveValue::Set(call.carrier_call_id.to_owned()),
                org_id: sea_orm::ActiveValue::Set(number.org_id.clone()),
                number_id: sea_orm::ActiveValue::Set(number.id.clone()),
                business_number: sea_orm::ActiveValue::Set(business.to_owned()),
                forwarded_number_id: sea_orm::ActiveValue::Set(registration.map(str::to_owned)),
                created_at: sea_orm::ActiveValue::Set(at),
            })
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
        }
        let document = render(admission);
        let stored = idempotency::Entity::insert(idempotency::ActiveModel {
            provider: sea_orm::ActiveValue::Set(provider.to_owned()),
            idempotency_key: sea_orm::ActiveValue::Set(call.idempotency_key.to_owned()),
            response_body: sea_orm::ActiveValue::Set(document.clone()),
            created_at: sea_orm::ActiveValue::Set(at),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&txn)
        .await;
        let stored = match stored {
            Ok(result) => inserted(&result),
            Err(error) if is_unique_violation(&error) => false,
            Err(error) => return Err(error.into()),
        };
        if stored {
            txn.commit().await?;
            return Ok(InboundAnswer {
                body: document,
                fresh: true,
            });
        }
        // Answered before: keep nothing of this delivery, answer the first document.
        let first =
            idempotency::Entity::find_by_id((provider.to_owned(), call.idempotency_key.to_owned()))
                .one(&txn)
                .await?
                .ok_or_else(|| RegistryError::Conflict("idempotency record vanished".into()))?;
        txn.rollback().await?;
        Ok(InboundAnswer {
            body: first.response_body,
            fresh: false,
        })
    }

    async fn admit_in<C: ConnectionTrait>(
        &self,
        txn: &C,
        call: &InboundCall<'_>,
        agent: &Agent,
        at: DateTime<Utc>,
    ) -> Result<Admission> {
        let number = call.number;
        let row = active_call::Entity::insert(active_call::ActiveModel {
            provider: sea_orm::ActiveValue::Set(call.provider.as_str().to_owned()),
            carrier_call_id: sea_orm::ActiveValue::Set(call.carrier_call_id.to_owned()),
            org_id: sea_orm::ActiveValue::Set(number.org_id.clone()),
            number_id: sea_orm::ActiveValue::Set(number.id.clone()),
            agent_id: sea_orm::ActiveValue::Set(Some(agent.id.clone())),
            started_at: sea_orm::ActiveValue::Set(at),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
        if !inserted(&row) {
            return Ok(Admission::AlreadyAdmitted);
        }
        let age =
            chrono::Duration::from_std(self.config.max_call_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = at.checked_sub_signed(age).unwrap_or_default();
        let count = |column: active_call::Column, id: &str| {
            use sea_orm::PaginatorTrait;
            active_call::Entity::find()
                .filter(column.eq(id.to_owned()))
                .filter(active_call::Column::StartedAt.gte(cutoff))
                .count(txn)
        };
        let verdict = if let Some(limit) = number.max_concurrent_calls
            && count(active_call::Column::NumberId, &number.id).await? > u64::from(limit)
        {
            Admission::NumberAtCapacity
        } else if let Some(limit) = agent.max_concurrent_calls
            && count(active_call::Column::AgentId, &agent.id).await? > u64::from(limit)
        {
            Admission::AtCapacity
        } else {
            return Ok(Admission::Admitted);
        };
        active_call::Entity::delete_by_id((
            call.provider.as_str().to_owned(),
            call.carrier_call_id.to_owned(),
        ))
        .exec(txn)
        .await?;
        Ok(verdict)
    }
}

/// Whether an insert-if-absent inserted (a conflict shows as `Conflicted` or as zero rows
/// inserted, depending on the back end).
fn inserted(result: &sea_orm::TryInsertResult<u64>) -> bool {
    !matches!(
        result,
        sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
    )
}
