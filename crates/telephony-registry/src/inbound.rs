//! The inbound call path's registry work, in as few round trips as the semantics allow.
//!
//! - [`Registry::inbound_route`]: one joined read (number, its connection's decrypted webhook
//!   secrets and account, its agent) replaces the four reads the path made before.
//! - [`Registry::answer_inbound_call`]: admission control, the call record, the forwarded-call
//!   record, the number's last-call time and the remembered answer, in one transaction shared
//!   with the calls arriving at the same time (group commit, `inbound_writer.rs`): one commit
//!   (one fsync on SQLite) per burst of calls. A retried webhook, on any instance, gets the
//!   first answer and writes nothing.
//!
//! Nothing here is cached: the service may cache [`InboundRoute`] for a bounded time (see
//! `docs/ARCHITECTURE.md`); every write goes to the database.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, FromQueryResult, IdenStatic, Iterable, QueryResult,
    sea_query::{Alias, Expr, ExprTrait, Query},
};
use telephony_carrier::{E164, Provider};
use telephony_vault::Aad;

use crate::agents::agent_from_row;
use crate::entity::{agent, connection, number};
use crate::error::{RegistryError, Result};
use crate::inbound_writer::{CallParts, PendingCall, WriterContext};
use crate::model::{Admission, Agent, Number, NumberStatus, WebhookSecrets};
use crate::numbers::number_from_row;
use crate::registry::{FIELD_AUTH, FIELD_PREVIOUS_AUTH, Registry, now, provider_of};

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
    /// one wrote nothing). Always `true` for a call with no limit to count, which is answered
    /// before its write (a retried delivery of it writes nothing more, but cannot know).
    pub fresh: bool,
    /// The admission verdict the answer was rendered for (`None` when not `fresh`).
    pub admission: Option<Admission>,
}

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

    /// Admits, records and answers an inbound call, in one transaction written together with
    /// the other calls arriving meanwhile (group commit: see `inbound_writer.rs`):
    ///
    /// 1. the number's last-call time is set, when the time noted is more than a minute old
    ///    (on PostgreSQL the rows of the numbers, and of the agents with a limit, are locked in
    ///    the order of their ids, so concurrent calls on one number or agent are counted one
    ///    after the other; SQLite has one writer at a time);
    /// 2. a call that would reach an agent is counted ([`Admission`]): its `active_calls` row is
    ///    inserted, then, when the number or the agent has a limit, the number's and the agent's
    ///    active calls counted against their limits (calls older than
    ///    [`crate::RegistryConfig::max_call_age`] do not count); a refused call's row is deleted;
    /// 3. the call record is inserted, or updated when the carrier already reported the call
    ///    (a final or `in-progress` status is never replaced by a non-final one; another
    ///    organization's record is left alone);
    /// 4. a forwarded call is recorded with its business number;
    /// 5. `render` turns the admission verdict into the document; a counted call's is stored
    ///    under (`provider`, `idempotency_key`) if no answer is stored yet. `render` is called
    ///    before the transaction, for each verdict the call's limits make possible.
    ///
    /// When a counted call's answer was already stored (a retried webhook, here or on another
    /// instance), the transaction writes nothing more, so a retry counts and records nothing
    /// twice. A call with nothing to count stores no answer; its retried webhook writes the
    /// same rows again, which changes nothing (inserts if absent, an upsert that keeps a final
    /// or `in-progress` status).
    ///
    /// **When to answer.** A call counted against a limit (its number or its agent has one) is
    /// answered once the transaction has committed, with the stored answer: its first one,
    /// with `fresh: false`, for a retried webhook. A call with no limit to count can only be
    /// admitted, so it is answered at once with `render(Admission::Admitted)` and written in
    /// the next group commit: `render` must give the same document for the same call (the
    /// service's documents depend on the call, the number's settings and a token that is the
    /// same for every delivery of the call within its time window), which makes a retried
    /// webhook's answer the same on any instance without reading anything. This registry's
    /// methods that read or change calls wait for those writes first
    /// ([`Registry::settle_inbound_calls`]); other instances see them a batch later (up to
    /// 50 ms, the batch's linger, plus its commit; under a load the writer cannot keep up
    /// with, also the calls queued before them: up to 16,384 on SQLite and 8,192 on
    /// PostgreSQL; a read waits at most 2 s). A process killed in between loses the record of
    /// a call it answered, which the carrier's status callback for the call writes again; a
    /// failed write is logged and counted (`telephony_inbound_write_failures_total`).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn answer_inbound_call<F>(
        &self,
        call: &InboundCall<'_>,
        render: F,
    ) -> Result<InboundAnswer>
    where
        F: Fn(Admission) -> String,
    {
        let number = call.number;
        let agent = call.agent;
        let counted = agent.is_some();
        let admitted = render(Admission::Admitted);
        let mut pending = PendingCall::new(&CallParts {
            provider: call.provider,
            carrier_call_id: call.carrier_call_id,
            org_id: &number.org_id,
            number_id: &number.id,
            e164: &number.e164,
            number_limit: number.max_concurrent_calls,
            agent: agent.map(|a| (a.id.as_str(), a.max_concurrent_calls)),
            status: call.status,
            forwarded: call.forwarded,
            idempotency_key: call.idempotency_key,
        });
        pending.number_full = (counted && number.max_concurrent_calls.is_some())
            .then(|| render(Admission::NumberAtCapacity));
        pending.agent_full = agent
            .and_then(|a| a.max_concurrent_calls)
            .map(|_| render(Admission::AtCapacity));
        let context = || WriterContext {
            db: self.db.clone(),
            max_call_age: self.config.max_call_age,
            notes: std::sync::Arc::default(),
            record_conflicts: std::sync::Arc::default(),
        };
        if pending.counted() {
            pending.admitted = admitted;
            return self.inbound_writer.answer(context, pending).await;
        }
        // Nothing to count: the answer is the admitted document whatever the database holds,
        // so the call is answered now and written in the next group commit (which stores no
        // answer for it, so the writer need not hold the document).
        self.inbound_writer.queue_detached(context, pending).await?;
        Ok(InboundAnswer {
            body: admitted,
            fresh: true,
            admission: Some(Admission::Admitted),
        })
    }

    /// Waits until the inbound calls this registry answered before their write (see
    /// [`Registry::answer_inbound_call`]) are written. Every method of this registry that reads
    /// or changes calls does this first, so it sees the calls it answered; another instance
    /// sees them once written: up to 50 ms (the batch's linger) plus a commit later, when the
    /// writer keeps up.
    pub async fn settle_inbound_calls(&self) {
        self.inbound_writer.settle().await;
    }
}
