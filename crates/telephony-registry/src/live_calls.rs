//! Live-call control: placing outbound calls from an organization's numbers, acting on calls in
//! progress (redirect, hang up, record), and the `Idempotency-Key`s of the REST API.
//!
//! Every carrier call goes to the carrier account that owns the number, with the
//! organization's own credentials, and is written to the audit log whatever its outcome. There
//! is no other account to fall back to: when the customer's carrier fails, the action fails.
//!
//! An outbound call gets its call record (and an `outbound_calls` row naming its number,
//! connection and agent) *before* the carrier is asked, because the carrier may fetch the
//! call's instructions from `{public_base_url}/webhooks/{provider}/outbound/{record id}` before
//! its answer to the placement reaches us. The record carries the carrier call id
//! `pending:{record id}` until then.

use std::future::Future;
use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};
use telephony_carrier::{
    CallTarget, Carrier, CarrierError, E164, OutboundCall, Provider, Recording,
};

use crate::call_keys;
use crate::calls::record_from_row;
use crate::entity::{call_record, connection, idempotency, number};
use crate::error::{RegistryError, Result};
use crate::model::{CallRecord, Direction, NumberStatus};
use crate::registry::{Registry, Scope, new_id, now, provider_of};

pub(crate) mod outbound_call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbound_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub call_record_id: String,
        pub org_id: String,
        pub number_id: String,
        pub connection_id: String,
        pub agent_id: Option<String>,
        pub destination: String,
        pub created_at: DateTimeUtc,
    }
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod api_idempotency {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idempotency_key: String,
        pub fingerprint: String,
        pub response_status: Option<i32>,
        pub response_body: Option<String>,
        pub created_at: DateTimeUtc,
    }
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// The carrier call id an outbound call's record carries until the carrier names the call.
const PENDING_PREFIX: &str = "pending:";

/// Statuses after which no live-call action applies.
fn is_over(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    )
}

/// Which of the organization's numbers an outbound call is placed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// The gateway's id of the number.
    NumberId(String),
    /// The number itself, in E.164.
    E164(String),
}

/// A request to place an outbound call connected to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceCall {
    /// The imported number the call is placed from (the caller id).
    pub from: CallerId,
    /// The destination, in E.164.
    pub to: String,
    /// The agent the callee is connected to; `None`: the number's agent.
    pub agent_id: Option<String>,
}

/// An outbound call as the webhook handlers need it: the record and what it was placed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCallInfo {
    /// The call record.
    pub record: CallRecord,
    /// The imported number the call was placed from.
    pub number_id: String,
    /// The connection (carrier account) it was placed with.
    pub connection_id: String,
    /// The agent the callee is connected to.
    pub agent_id: Option<String>,
    /// The destination.
    pub destination: String,
}

impl OutboundCallInfo {
    /// Whether the carrier has not named the call yet (its placement is still being answered).
    #[must_use]
    pub fn carrier_call_pending(&self) -> bool {
        self.record.carrier_call_id.starts_with(PENDING_PREFIX)
    }
}

/// A request's hold on an `Idempotency-Key` it claimed: what lets it store its answer. A
/// request that outlived its lease (another request took the key since) no longer holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyLease {
    /// When the key was claimed (the claim's `created_at`, unique per claim of the key).
    claimed_at: chrono::DateTime<chrono::Utc>,
}

/// The answer to claiming an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is new (or its last claim's lease ran out): this request runs, then stores its
    /// answer with [`Registry::complete_idempotency_key`] and this lease.
    Claimed(IdempotencyLease),
    /// The key was used before for the same request: answer this.
    Replay {
        /// The HTTP status of the first answer.
        status: u16,
        /// The body of the first answer.
        body: String,
    },
    /// The first request with this key is still running (on this or another instance).
    InProgress,
    /// The key was used before for a different request.
    Reused,
}

/// A live-call action, for the audit log.
#[derive(Debug, Clone, Copy)]
enum Action {
    Redirect,
    Hangup,
    StartRecording,
    StopRecording,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect_call",
            Self::Hangup => "hangup_call",
            Self::StartRecording => "start_recording",
            Self::StopRecording => "stop_recording",
        }
    }
}

/// Maps a carrier failure of a live-call action: a refusal because the call is over is
/// `call_not_active` (Twilio 21220 "Call is not in-progress", Telnyx 90018 "Call has already
/// ended"), an unknown call or recording is `not_found`.
fn live_error(error: &CarrierError, action: Action) -> RegistryError {
    match error {
        CarrierError::Rejected { code, .. } if code == "21220" || code == "90018" => {
            RegistryError::CallNotActive
        }
        CarrierError::NotFound { .. } => RegistryError::NotFound(match action {
            Action::StopRecording => "recording",
            _ => "call",
        }),
        other => RegistryError::from_carrier(other),
    }
}

impl Registry {
    fn outbound_url(&self, provider: Provider, record_id: &str, suffix: &str) -> String {
        format!(
            "{}/webhooks/{}/outbound/{record_id}{suffix}",
            self.config.public_base_url,
            provider.as_str()
        )
    }

    /// Places an outbound call from one of the organization's numbers, with the carrier
    /// account that owns the number. When the callee answers, the carrier fetches the call's
    /// instructions from `{public_base_url}/webhooks/{provider}/outbound/{record id}`; status
    /// callbacks go to the same URL plus `/status`. The carrier call is audited
    /// (`place_call`). A failed placement leaves no record, except when the carrier may have
    /// placed the call anyway (an unreadable answer): then the record stays, status `unknown`.
    ///
    /// # Errors
    /// [`RegistryError::InvalidPhoneNumber`] for a destination (or caller id) that is not
    /// E.164; [`RegistryError::NotFound`] for an unknown number or agent of the organization;
    /// [`RegistryError::InvalidRequest`] when neither the request nor the number names an
    /// agent; [`RegistryError::Conflict`] when the number is not active; the carrier's failure
    /// ([`RegistryError::CarrierUnavailable`], [`RegistryError::CarrierCredentialsInvalid`],
    /// [`RegistryError::CarrierRejected`] ...), with no other account tried.
    pub async fn place_outbound_call(
        &self,
        org_id: &str,
        request: &PlaceCall,
    ) -> Result<CallRecord> {
        let to = E164::parse(request.to.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)?;
        let number = match &request.from {
            CallerId::NumberId(id) => self.number_row(org_id, id).await?,
            CallerId::E164(e164) => {
                let e164 =
                    E164::parse(e164.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)?;
                number::Entity::find()
                    .filter(number::Column::OrgId.eq(org_id))
                    .filter(number::Column::E164.eq(e164.as_str()))
                    .one(&self.db)
                    .await?
                    .ok_or(RegistryError::NotFound("number"))?
            }
        };
        if number.status != NumberStatus::Active.as_str() {
            return Err(RegistryError::Conflict("the number is not active".into()));
        }
        let from = E164::parse(&number.e164)
            .map_err(|_| RegistryError::Corrupt("a stored number is not E.164".into()))?;
        let agent_id = match request.agent_id.as_deref().or(number.agent_id.as_deref()) {
            Some(agent_id) => self.agent(org_id, agent_id).await?.id,
            None => {
                return Err(RegistryError::InvalidRequest(
                    "no agent: give agent_id or assign an agent to the number".into(),
                ));
            }
        };
        let conn = self.connection_row(org_id, &number.connection_id).await?;
        let provider = provider_of(&conn)?;
        let carrier = self.carrier_of(&conn)?;

        let id = new_id();
        let at = now();
        let txn = self.db.begin().await?;
        let pending = format!("{PENDING_PREFIX}{id}");
        // A new id's key: nothing else holds it.
        if !call_keys::insert_key(&txn, provider.as_str(), &pending, &id).await? {
            return Err(RegistryError::Conflict(
                "the new call's pending id is taken".into(),
            ));
        }
        call_record::ActiveModel {
            id: Set(id.clone()),
            org_id: Set(org_id.to_owned()),
            provider: Set(provider.as_str().to_owned()),
            carrier_call_id: Set(pending),
            number: Set(number.e164.clone()),
            direction: Set(Direction::Outbound.as_str().to_owned()),
            status: Set("initiating".to_owned()),
            duration_secs: Set(None),
            started_at: Set(at),
            ended_at: Set(None),
            updated_at: Set(at),
            number_id: Set(None),
            agent_id: Set(None),
        }
        .insert(&txn)
        .await?;
        outbound_call::ActiveModel {
            call_record_id: Set(id.clone()),
            org_id: Set(org_id.to_owned()),
            number_id: Set(number.id.clone()),
            connection_id: Set(conn.id.clone()),
            agent_id: Set(Some(agent_id)),
            destination: Set(to.as_str().to_owned()),
            created_at: Set(at),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;

        let call = OutboundCall {
            from,
            to,
            instructions: CallTarget::Url {
                url: self.outbound_url(provider, &id, ""),
            },
            status_callback: Some(self.outbound_url(provider, &id, "/status")),
        };
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(&number.e164),
            live: true,
        };
        let placed = self
            .audited(&scope, "place_call", true, carrier.place_call(&call))
            .await;
        match placed {
            Ok(info) => {
                self.name_carrier_call(&id, &info.call_id).await?;
                // The instructions webhook may have moved the status on already: only an
                // `initiating` record takes the status of the placement's answer.
                call_record::Entity::update_many()
                    .col_expr(call_record::Column::Status, Expr::value(info.status))
                    .col_expr(call_record::Column::UpdatedAt, Expr::value(now()))
                    .filter(call_record::Column::Id.eq(id.as_str()))
                    .filter(call_record::Column::Status.eq("initiating"))
                    .exec(&self.db)
                    .await?;
                self.call(org_id, &id).await
            }
            Err(error) => {
                if matches!(error, CarrierError::Protocol(_)) {
                    // The carrier accepted something: the call may exist. Keep the record.
                    self.set_call_status(&id, "unknown", None).await?;
                } else {
                    outbound_call::Entity::delete_by_id(id.clone())
                        .exec(&self.db)
                        .await?;
                    call_record::Entity::delete_by_id(id.clone())
                        .exec(&self.db)
                        .await?;
                }
                Err(match error {
                    // Nothing was sent: the connection lacks what placing a call needs (a
                    // Telnyx connection without its TeXML account SID).
                    CarrierError::Unsupported(what) => RegistryError::InvalidRequest(format!(
                        "the connection cannot place calls: {what}"
                    )),
                    other => RegistryError::from_carrier(&other),
                })
            }
        }
    }

    /// Sets the carrier call id of an outbound record still `pending:`.
    async fn name_carrier_call(&self, record_id: &str, carrier_call_id: &str) -> Result<()> {
        call_record::Entity::update_many()
            .col_expr(
                call_record::Column::CarrierCallId,
                Expr::value(carrier_call_id),
            )
            .filter(call_record::Column::Id.eq(record_id))
            .filter(call_record::Column::CarrierCallId.starts_with(PENDING_PREFIX))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn set_call_status(
        &self,
        record_id: &str,
        status: &str,
        duration_secs: Option<u64>,
    ) -> Result<()> {
        let Some(row) = call_record::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let was_over = is_over(&row.status);
        let mut active: call_record::ActiveModel = row.into();
        active.status = Set(status.to_owned());
        if let Some(duration) = duration_secs {
            active.duration_secs = Set(Some(i64::try_from(duration).unwrap_or(i64::MAX)));
        }
        if is_over(status) && !was_over {
            active.ended_at = Set(Some(now()));
        }
        active.updated_at = Set(now());
        active.update(&self.db).await?;
        Ok(())
    }

    /// One call record of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such call (another
    /// organization's call included).
    pub async fn call(&self, org_id: &str, record_id: &str) -> Result<CallRecord> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let record = call_record::Entity::find_by_id(record_id.to_owned())
            .filter(call_record::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .map(record_from_row)
            .ok_or(RegistryError::NotFound("call"))?;
        let mut records = self.with_forwarding(org_id, vec![record]).await?;
        records.pop().ok_or(RegistryError::NotFound("call"))
    }

    /// An outbound call placed through [`Registry::place_outbound_call`], by record id, in any
    /// organization: for the webhook handlers, which authenticate the carrier by the signature
    /// of the connection named here.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn outbound_call(&self, record_id: &str) -> Result<Option<OutboundCallInfo>> {
        let Some(outbound) = outbound_call::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(record) = call_record::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(OutboundCallInfo {
            record: record_from_row(record),
            number_id: outbound.number_id,
            connection_id: outbound.connection_id,
            agent_id: outbound.agent_id,
            destination: outbound.destination,
        }))
    }

    /// Writes what a verified webhook says about an outbound call: names the carrier call when
    /// the record still waits for it, and sets the status (and duration, once over).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown record; [`RegistryError::Conflict`] when the
    /// record already names another carrier call.
    pub async fn update_outbound_call(
        &self,
        record_id: &str,
        carrier_call_id: &str,
        status: &str,
        duration_secs: Option<u64>,
    ) -> Result<CallRecord> {
        self.name_carrier_call(record_id, carrier_call_id).await?;
        let row = call_record::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("call"))?;
        if row.carrier_call_id != carrier_call_id {
            return Err(RegistryError::Conflict(
                "the webhook is for another call".into(),
            ));
        }
        // A late `in-progress` never reopens a call that is over.
        if !is_over(&row.status) || is_over(status) {
            self.set_call_status(record_id, status, duration_secs)
                .await?;
        }
        let row = call_record::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("call"))?;
        Ok(record_from_row(row))
    }

    /// The live call, the connection that owns it and its client: the connection the outbound
    /// call was placed with, or the connection of the organization's number for an inbound call.
    async fn live_call(
        &self,
        org_id: &str,
        record_id: &str,
    ) -> Result<(call_record::Model, connection::Model, Arc<dyn Carrier>)> {
        let record = call_record::Entity::find_by_id(record_id.to_owned())
            .filter(call_record::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("call"))?;
        if is_over(&record.status) || record.carrier_call_id.starts_with(PENDING_PREFIX) {
            return Err(RegistryError::CallNotActive);
        }
        let connection_id = match outbound_call::Entity::find_by_id(record_id.to_owned())
            .one(&self.db)
            .await?
        {
            Some(outbound) => outbound.connection_id,
            None => {
                number::Entity::find()
                    .filter(number::Column::OrgId.eq(org_id))
                    .filter(number::Column::E164.eq(record.number.as_str()))
                    .one(&self.db)
                    .await?
                    .ok_or(RegistryError::NotFound("number"))?
                    .connection_id
            }
        };
        let conn = self.connection_row(org_id, &connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        Ok((record, conn, carrier))
    }

    async fn live_action<T, F, Fut>(
        &self,
        org_id: &str,
        record_id: &str,
        action: Action,
        call: F,
    ) -> Result<(call_record::Model, T)>
    where
        F: FnOnce(Arc<dyn Carrier>, String) -> Fut,
        Fut: Future<Output = std::result::Result<T, CarrierError>>,
    {
        let (record, conn, carrier) = self.live_call(org_id, record_id).await?;
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(&record.number),
            live: true,
        };
        let result = self
            .audited(
                &scope,
                action.as_str(),
                true,
                call(carrier, record.carrier_call_id.clone()),
            )
            .await;
        match result {
            Ok(value) => Ok((record, value)),
            Err(error) => Err(live_error(&error, action)),
        }
    }

    /// Gives a live call new instructions (a transfer), with the carrier account that owns it.
    /// Audited as `redirect_call`.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown call of the organization;
    /// [`RegistryError::CallNotActive`] when the call is over (as recorded, or as the carrier
    /// says); the carrier's failure, with no other account tried.
    pub async fn redirect_live_call(
        &self,
        org_id: &str,
        record_id: &str,
        target: &CallTarget,
    ) -> Result<CallRecord> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let (record, ()) = self
            .live_action(
                org_id,
                record_id,
                Action::Redirect,
                |carrier, call_id| async move { carrier.redirect_call(&call_id, target).await },
            )
            .await?;
        Ok(record_from_row(record))
    }

    /// Hangs up a live call, with the carrier account that owns it, and records it
    /// `completed` (the carrier's status callback brings the duration). Audited as
    /// `hangup_call`.
    ///
    /// # Errors
    /// As [`Registry::redirect_live_call`].
    pub async fn hangup_live_call(&self, org_id: &str, record_id: &str) -> Result<CallRecord> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let (record, ()) = self
            .live_action(
                org_id,
                record_id,
                Action::Hangup,
                |carrier, call_id| async move { carrier.hangup_call(&call_id).await },
            )
            .await?;
        self.set_call_status(&record.id, "completed", None).await?;
        if let Some(provider) = provider_named(&record.provider) {
            self.end_active_call(provider, &record.carrier_call_id)
                .await?;
        }
        self.call(org_id, record_id).await
    }

    /// Starts recording a live call, with the carrier account that owns it. Audited as
    /// `start_recording`.
    ///
    /// # Errors
    /// As [`Registry::redirect_live_call`].
    pub async fn start_call_recording(&self, org_id: &str, record_id: &str) -> Result<Recording> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let (_, recording) = self
            .live_action(
                org_id,
                record_id,
                Action::StartRecording,
                |carrier, call_id| async move { carrier.start_recording(&call_id).await },
            )
            .await?;
        Ok(recording)
    }

    /// Stops a recording of a live call. Audited as `stop_recording`.
    ///
    /// # Errors
    /// As [`Registry::redirect_live_call`]; [`RegistryError::NotFound`] (`recording`) for a
    /// recording the carrier does not know on this call.
    pub async fn stop_call_recording(
        &self,
        org_id: &str,
        record_id: &str,
        recording_id: &str,
    ) -> Result<()> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        self.live_action(
            org_id,
            record_id,
            Action::StopRecording,
            |carrier, call_id| async move { carrier.stop_recording(&call_id, recording_id).await },
        )
        .await?;
        Ok(())
    }

    /// Claims an `Idempotency-Key` of the organization for a request with this `fingerprint`
    /// (a digest of the method, path and body). Insert-if-absent: of two instances racing on
    /// one key, exactly one gets [`IdempotencyClaim::Claimed`].
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn claim_idempotency_key(
        &self,
        org_id: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotencyClaim> {
        let claimed_at = now();
        let inserted = api_idempotency::Entity::insert(api_idempotency::ActiveModel {
            org_id: Set(org_id.to_owned()),
            idempotency_key: Set(key.to_owned()),
            fingerprint: Set(fingerprint.to_owned()),
            response_status: Set(None),
            response_body: Set(None),
            created_at: Set(claimed_at),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&self.db)
        .await?;
        // A conflict shows as `Conflicted` or as zero rows inserted, depending on the back end.
        if !matches!(
            inserted,
            sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
        ) {
            return Ok(IdempotencyClaim::Claimed(IdempotencyLease { claimed_at }));
        }
        let row = api_idempotency::Entity::find_by_id((org_id.to_owned(), key.to_owned()))
            .one(&self.db)
            .await?
            .ok_or_else(|| RegistryError::Conflict("idempotency record vanished".into()))?;
        let completed = row.response_status.is_some() && row.response_body.is_some();
        // An answer older than its time to live is forgotten (the sweep may not have run yet),
        // and a claim older than its lease belongs to a request that died: either way the key
        // is free again, taken with a compare-and-set on the claim's time.
        let expired = if completed {
            row.created_at < age_cutoff(self.config.idempotency_key_ttl)
        } else {
            row.fingerprint == fingerprint
                && row.created_at < age_cutoff(self.config.idempotency_lease)
        };
        if expired {
            // Each claim of the key has its own time, the lease that completes it.
            let claimed_at = claimed_at.max(row.created_at + chrono::Duration::microseconds(1));
            let retaken = api_idempotency::Entity::update_many()
                .col_expr(
                    api_idempotency::Column::Fingerprint,
                    Expr::value(fingerprint.to_owned()),
                )
                .col_expr(
                    api_idempotency::Column::ResponseStatus,
                    Expr::value(Option::<i32>::None),
                )
                .col_expr(
                    api_idempotency::Column::ResponseBody,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(api_idempotency::Column::CreatedAt, Expr::value(claimed_at))
                .filter(api_idempotency::Column::OrgId.eq(org_id))
                .filter(api_idempotency::Column::IdempotencyKey.eq(key))
                .filter(api_idempotency::Column::CreatedAt.eq(row.created_at))
                .exec(&self.db)
                .await?;
            if retaken.rows_affected == 1 {
                if !completed {
                    tracing::warn!(
                        "an idempotency key's lease expired without an answer; claimed again"
                    );
                }
                return Ok(IdempotencyClaim::Claimed(IdempotencyLease { claimed_at }));
            }
            // Another instance took it first: it is running now.
            return Ok(IdempotencyClaim::InProgress);
        }
        if row.fingerprint != fingerprint {
            return Ok(IdempotencyClaim::Reused);
        }
        Ok(match (row.response_status, row.response_body) {
            (Some(status), Some(body)) => IdempotencyClaim::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body,
            },
            _ => IdempotencyClaim::InProgress,
        })
    }

    /// Deletes expired idempotency records, at most `batch` of each kind per call: answers to
    /// `Idempotency-Key`s older than [`crate::RegistryConfig::idempotency_key_ttl`] (and claims
    /// that never got an answer, once that old) and stored webhook answers older than
    /// [`crate::RegistryConfig::webhook_idempotency_ttl`]. Safe on several instances at once.
    /// Returns how many rows of each were deleted (API keys, webhooks).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn sweep_idempotency(&self, batch: u64) -> Result<(u64, u64)> {
        let batch = batch.max(1);
        let key_cutoff = age_cutoff(self.config.idempotency_key_ttl);
        // Bounded: delete up to the `batch`-th oldest expired row (ties included).
        let api_bound = api_idempotency::Entity::find()
            .filter(api_idempotency::Column::CreatedAt.lt(key_cutoff))
            .order_by_asc(api_idempotency::Column::CreatedAt)
            .offset(batch - 1)
            .one(&self.db)
            .await?;
        let mut api_delete = api_idempotency::Entity::delete_many()
            .filter(api_idempotency::Column::CreatedAt.lt(key_cutoff));
        if let Some(bound) = api_bound {
            api_delete =
                api_delete.filter(api_idempotency::Column::CreatedAt.lte(bound.created_at));
        }
        let api = api_delete.exec(&self.db).await?.rows_affected;

        let hook_cutoff = age_cutoff(self.config.webhook_idempotency_ttl);
        let hook_bound = idempotency::Entity::find()
            .filter(idempotency::Column::CreatedAt.lt(hook_cutoff))
            .order_by_asc(idempotency::Column::CreatedAt)
            .offset(batch - 1)
            .one(&self.db)
            .await?;
        let mut hook_delete = idempotency::Entity::delete_many()
            .filter(idempotency::Column::CreatedAt.lt(hook_cutoff));
        if let Some(bound) = hook_bound {
            hook_delete = hook_delete.filter(idempotency::Column::CreatedAt.lte(bound.created_at));
        }
        let hooks = hook_delete.exec(&self.db).await?.rows_affected;
        Ok((api, hooks))
    }

    /// Stores the answer to a claimed `Idempotency-Key`; later requests with the key get it.
    /// Only the request that holds the key's claim stores its answer (`lease`, from
    /// [`IdempotencyClaim::Claimed`]), once: a request that outlived its lease, the key since
    /// taken by another request, stores nothing, and `false` says so.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn complete_idempotency_key(
        &self,
        org_id: &str,
        key: &str,
        lease: &IdempotencyLease,
        status: u16,
        body: &str,
    ) -> Result<bool> {
        let stored = api_idempotency::Entity::update_many()
            .col_expr(
                api_idempotency::Column::ResponseStatus,
                Expr::value(Some(i32::from(status))),
            )
            .col_expr(
                api_idempotency::Column::ResponseBody,
                Expr::value(Some(body.to_owned())),
            )
            .filter(api_idempotency::Column::OrgId.eq(org_id))
            .filter(api_idempotency::Column::IdempotencyKey.eq(key))
            .filter(api_idempotency::Column::CreatedAt.eq(lease.claimed_at))
            .filter(api_idempotency::Column::ResponseStatus.is_null())
            .exec(&self.db)
            .await?;
        Ok(stored.rows_affected == 1)
    }
}

/// The time `age` ago.
fn age_cutoff(age: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    now().checked_sub_signed(age).unwrap_or_default()
}

fn provider_named(name: &str) -> Option<Provider> {
    match name {
        "twilio" => Some(Provider::Twilio),
        "telnyx" => Some(Provider::Telnyx),
        _ => None,
    }
}
