//! Imported numbers: the import picker, import, assignment, webhook mode switches, removal,
//! diagnostics and drift detection. Every workflow that changes both the carrier account and
//! the database goes through the intent protocol of [`crate::ops`].

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use telephony_carrier::{
    CarrierError, E164, InboundConfig, PageCursor, Provider, TelnyxVoiceConfig, TwilioVoiceConfig,
};

use crate::entity::{connection, number};
use crate::error::{RegistryError, Result};
use crate::model::{
    AccountNumber, Applied, Check, Diagnostics, Drift, ImportRequest, Number, NumberStatus,
    PlannedChange, RemoveReport, WebhookMode,
};
use crate::ops::{OpKind, OpPayload, Resolution};
use crate::registry::{Registry, Scope, new_id, now, provider_of};

pub(crate) fn to_json(config: &InboundConfig) -> Result<String> {
    serde_json::to_string(config).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

pub(crate) fn from_json(text: Option<&str>) -> Result<Option<InboundConfig>> {
    text.map(|t| serde_json::from_str(t).map_err(|e| RegistryError::Corrupt(e.to_string())))
        .transpose()
}

pub(crate) fn number_from_row(row: number::Model) -> Result<Number> {
    Ok(Number {
        saved_inbound: from_json(row.saved_inbound.as_deref())?,
        applied_inbound: from_json(row.applied_inbound.as_deref())?,
        webhook_mode: WebhookMode::parse(&row.webhook_mode)?,
        status: NumberStatus::parse(&row.status)?,
        id: row.id,
        org_id: row.org_id,
        connection_id: row.connection_id,
        e164: row.e164,
        nickname: row.nickname,
        carrier_id: row.carrier_id,
        agent_id: row.agent_id,
        last_call_at: row.last_call_at,
        max_concurrent_calls: row.max_concurrent_calls.and_then(|n| u32::try_from(n).ok()),
        created_at: row.created_at,
    })
}

fn parse_e164(text: &str) -> Result<E164> {
    E164::parse(text.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)
}

fn empty(value: Option<&String>) -> Option<&str> {
    value.map(String::as_str).filter(|v| !v.is_empty())
}

/// Whether two configurations send calls to the same place. Only the fields that decide where
/// a call goes are compared: carriers fill in defaults (methods) that the gateway did not set.
pub(crate) fn same_routing(a: &InboundConfig, b: &InboundConfig) -> bool {
    match (a, b) {
        (InboundConfig::Twilio(a), InboundConfig::Twilio(b)) => {
            empty(a.voice_url.as_ref()) == empty(b.voice_url.as_ref())
                && empty(a.voice_application_sid.as_ref())
                    == empty(b.voice_application_sid.as_ref())
                && empty(a.trunk_sid.as_ref()) == empty(b.trunk_sid.as_ref())
        }
        (InboundConfig::Telnyx(a), InboundConfig::Telnyx(b)) => {
            empty(a.connection_id.as_ref()) == empty(b.connection_id.as_ref())
        }
        _ => false,
    }
}

/// One page of a carrier account's numbers, for the import picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountNumberPage {
    /// The numbers of this page.
    pub numbers: Vec<AccountNumber>,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

fn invalid_cursor() -> RegistryError {
    RegistryError::InvalidRequest("invalid cursor".into())
}

/// The carrier's cursor, made opaque (base64url) so clients do not come to depend on its form.
fn encode_cursor(cursor: &PageCursor) -> String {
    URL_SAFE_NO_PAD.encode(cursor.0.as_bytes())
}

fn decode_cursor(text: &str) -> Result<PageCursor> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| invalid_cursor())?;
    let inner = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    if inner.is_empty() {
        return Err(invalid_cursor());
    }
    Ok(PageCursor(inner))
}

impl Registry {
    /// The inbound configuration a `managed` number of this connection gets.
    pub(crate) fn managed_config(&self, row: &connection::Model) -> Result<InboundConfig> {
        let base = &self.config.public_base_url;
        match provider_of(row)? {
            Provider::Twilio => Ok(InboundConfig::Twilio(TwilioVoiceConfig {
                voice_url: Some(format!("{base}/webhooks/twilio/voice")),
                voice_method: Some("POST".to_owned()),
                voice_fallback_url: Some(format!("{base}/webhooks/twilio/fallback")),
                voice_fallback_method: Some("POST".to_owned()),
                status_callback: Some(format!("{base}/webhooks/twilio/status")),
                status_callback_method: Some("POST".to_owned()),
                // Either would take precedence over the voice URL at Twilio.
                voice_application_sid: None,
                trunk_sid: None,
            })),
            Provider::Telnyx => {
                let app =
                    row.texml_app_id
                        .clone()
                        .filter(|id| !id.is_empty())
                        .ok_or_else(|| {
                            RegistryError::InvalidRequest(
                        "managed mode on telnyx needs the connection's texml application id".into(),
                    )
                        })?;
                Ok(InboundConfig::Telnyx(TelnyxVoiceConfig {
                    connection_id: Some(app),
                }))
            }
        }
    }

    /// The account's numbers for the import picker, each marked when it is already imported.
    /// Only voice-capable numbers unless `include_non_voice`. Walks every page of the account
    /// into one list: for large accounts use [`Registry::list_account_numbers_page`].
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; a carrier error (a 401 also marks the connection degraded).
    pub async fn list_account_numbers(
        &self,
        org_id: &str,
        connection_id: &str,
        include_non_voice: bool,
    ) -> Result<Vec<AccountNumber>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .list_account_numbers_page(
                    org_id,
                    connection_id,
                    include_non_voice,
                    cursor.as_deref(),
                )
                .await?;
            out.extend(page.numbers);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// One page of the account's numbers for the import picker: one carrier page per call, so
    /// an account of any size is listed in bounded memory. Pass `None` for the first page, then
    /// each page's `next_cursor` (an opaque token) until it is `None`. A page may hold fewer
    /// numbers than the carrier's page size (non-voice numbers are left out unless
    /// `include_non_voice`), even none.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::InvalidRequest`] for a cursor this listing
    /// did not hand out; a carrier error (a 401 also marks the connection degraded).
    pub async fn list_account_numbers_page(
        &self,
        org_id: &str,
        connection_id: &str,
        include_non_voice: bool,
        cursor: Option<&str>,
    ) -> Result<AccountNumberPage> {
        let carrier_cursor = cursor.map(decode_cursor).transpose()?;
        let row = self.connection_row(org_id, connection_id).await?;
        let carrier = self.carrier_of(&row)?;
        let scope = Scope {
            org_id,
            connection_id,
            number: None,
            live: true,
        };
        let page = self
            .audited(
                &scope,
                "list_numbers",
                false,
                carrier.list_numbers(carrier_cursor.as_ref()),
            )
            .await
            .map_err(|e| match e {
                // The carrier client refuses a cursor that is not one of its own next pages
                // before sending anything.
                CarrierError::Rejected { ref code, .. }
                    if carrier_cursor.is_some() && code == "invalid_cursor" =>
                {
                    invalid_cursor()
                }
                CarrierError::Protocol(_) if carrier_cursor.is_some() => invalid_cursor(),
                e => RegistryError::from_carrier(&e),
            })?;
        let wanted: Vec<_> = page
            .numbers
            .into_iter()
            .filter(|n| include_non_voice || n.capabilities.voice)
            .collect();
        let e164s: Vec<&str> = wanted.iter().map(|n| n.e164.as_str()).collect();
        let imported: HashSet<String> = if e164s.is_empty() {
            HashSet::new()
        } else {
            number::Entity::find()
                .filter(number::Column::E164.is_in(e164s))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|n| n.e164)
                .collect()
        };
        Ok(AccountNumberPage {
            numbers: wanted
                .into_iter()
                .map(|n| AccountNumber {
                    already_imported: imported.contains(n.e164.as_str()),
                    e164: n.e164.to_string(),
                    carrier_id: n.carrier_id,
                    friendly_name: n.friendly_name,
                    voice_capable: n.capabilities.voice,
                })
                .collect(),
            next_cursor: page.next.map(|c| encode_cursor(&c)),
        })
    }

    async fn already_imported(&self, e164: &E164) -> Result<bool> {
        Ok(number::Entity::find()
            .filter(number::Column::E164.eq(e164.as_str()))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Imports a number. Checks the E.164 form, that the account owns it and it can take voice
    /// calls, and that no organization imported it yet (a database UNIQUE constraint decides
    /// between racing imports). In `managed` mode, saves the number's inbound configuration and
    /// points it at the gateway. A dry run returns the carrier-side changes and changes nothing.
    ///
    /// # Errors
    /// `invalid_phone_number`, `number_not_in_account`, `number_not_voice_capable`,
    /// `number_already_imported`, `not_found` (connection or agent), `invalid_request`, or a
    /// carrier error (after which nothing is left changed, or the change is pending recovery).
    pub async fn import_number(&self, org_id: &str, request: ImportRequest) -> Result<Applied> {
        let e164 = parse_e164(&request.e164)?;
        let conn = self.connection_row(org_id, &request.connection_id).await?;
        if let Some(agent_id) = &request.agent_id {
            self.agent(org_id, agent_id).await?;
        }
        let target = match request.mode {
            WebhookMode::Managed => Some(self.managed_config(&conn)?),
            WebhookMode::OutboundOnly => None,
        };
        let carrier = self.carrier_of(&conn)?;
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(e164.as_str()),
            live: true,
        };
        let owned = self
            .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
            .await
            .map_err(|e| RegistryError::from_carrier(&e))?;
        if !owned.capabilities.voice {
            return Err(RegistryError::NumberNotVoiceCapable);
        }
        // A cheap early answer, only once the account proved it owns the number (otherwise any
        // organization could probe which numbers are imported anywhere); the UNIQUE constraint
        // below is what actually decides.
        if self.already_imported(&e164).await? {
            return Err(RegistryError::NumberAlreadyImported);
        }
        let changes: Vec<PlannedChange> = target
            .iter()
            .map(|to| PlannedChange {
                e164: e164.to_string(),
                from: owned.inbound.clone(),
                to: to.clone(),
            })
            .collect();
        if request.dry_run {
            return Ok(Applied::DryRun { changes });
        }
        let at = now();
        let number_id = new_id();
        let mut row = number::ActiveModel {
            id: Set(number_id.clone()),
            org_id: Set(org_id.to_owned()),
            connection_id: Set(conn.id.clone()),
            e164: Set(e164.to_string()),
            nickname: Set(request.nickname.map(|n| n.trim().to_owned())),
            carrier_id: Set(owned.carrier_id.clone()),
            agent_id: Set(request.agent_id),
            webhook_mode: Set(WebhookMode::OutboundOnly.as_str().to_owned()),
            status: Set(NumberStatus::Active.as_str().to_owned()),
            saved_inbound: Set(None),
            applied_inbound: Set(None),
            last_call_at: Set(None),
            max_concurrent_calls: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let Some(target) = target else {
            // outbound_only: nothing changes at the carrier, one insert is the whole import.
            let row = row.insert(&self.db).await.map_err(unique_to_imported)?;
            return Ok(Applied::Done {
                number: number_from_row(row)?,
                changes,
            });
        };

        // managed: the row (status `importing`) claims the number and the intent is recorded,
        // in one transaction, before the carrier is touched.
        row.status = Set(NumberStatus::Importing.as_str().to_owned());
        let payload = OpPayload {
            number_id,
            e164: e164.to_string(),
            carrier_id: owned.carrier_id.clone(),
            previous: Some(owned.inbound.clone()),
            target: Some(target.clone()),
        };
        let txn = self.db.begin().await?;
        row.insert(&txn).await.map_err(unique_to_imported)?;
        let op = self
            .record_intent(&txn, OpKind::Import, org_id, &conn.id, &payload)
            .await?;
        txn.commit().await?;

        let result = self
            .audited(
                &scope,
                "replace_inbound_config",
                true,
                carrier.replace_inbound_config(&owned.carrier_id, &target),
            )
            .await;
        match result {
            Ok(previous) => {
                let number = self
                    .finish_managed(&op, &payload.number_id, &previous, &target)
                    .await?;
                Ok(Applied::Done { number, changes })
            }
            Err(error) => Err(self.after_carrier_failure(&op, &error).await),
        }
    }

    /// Marks a number managed and active with its saved and applied configuration and deletes
    /// the operation, in one transaction. A `saved` configuration that routes like `applied`
    /// (the number already pointed at the gateway) is not the customer's: the saved one the row
    /// already holds is kept.
    pub(crate) async fn finish_managed(
        &self,
        op_id: &str,
        number_id: &str,
        saved: &InboundConfig,
        applied: &InboundConfig,
    ) -> Result<Number> {
        let mut update = number::Entity::update_many()
            .col_expr(
                number::Column::WebhookMode,
                Expr::value(WebhookMode::Managed.as_str()),
            )
            .col_expr(
                number::Column::Status,
                Expr::value(NumberStatus::Active.as_str()),
            )
            .col_expr(
                number::Column::AppliedInbound,
                Expr::value(Some(to_json(applied)?)),
            )
            .col_expr(number::Column::UpdatedAt, Expr::value(now()));
        if !same_routing(saved, applied) {
            update = update.col_expr(
                number::Column::SavedInbound,
                Expr::value(Some(to_json(saved)?)),
            );
        }
        // The write comes first in the transaction: on SQLite a transaction that reads before
        // it writes can fail at once with `database is locked` when another one writes.
        let txn = self.db.begin().await?;
        let updated = update
            .filter(number::Column::Id.eq(number_id))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(RegistryError::NotFound("number"));
        }
        crate::ops::delete_op(&txn, op_id).await?;
        let row = number::Entity::find_by_id(number_id.to_owned())
            .one(&txn)
            .await?
            .ok_or(RegistryError::NotFound("number"))?;
        txn.commit().await?;
        number_from_row(row)
    }

    /// Records a repoint done at the carrier: the new applied configuration (the saved one is
    /// the customer's and stays) and the operation deleted, in one transaction.
    pub(crate) async fn finish_repoint(
        &self,
        op_id: &str,
        number_id: &str,
        applied: &InboundConfig,
    ) -> Result<()> {
        let applied = to_json(applied)?;
        // The write comes first in the transaction: see `finish_managed` on SQLite locks.
        let txn = self.db.begin().await?;
        number::Entity::update_many()
            .col_expr(number::Column::AppliedInbound, Expr::value(Some(applied)))
            .col_expr(number::Column::UpdatedAt, Expr::value(now()))
            .filter(number::Column::Id.eq(number_id))
            .exec(&txn)
            .await?;
        crate::ops::delete_op(&txn, op_id).await?;
        txn.commit().await?;
        Ok(())
    }

    /// After a carrier call of a workflow failed: resolve the operation at once (the carrier
    /// is read and the operation finished or undone); if that cannot be done either, the
    /// operation stays for [`Registry::recover_pending_operations`]. Returns the error to give.
    pub(crate) async fn after_carrier_failure(
        &self,
        op_id: &str,
        error: &CarrierError,
    ) -> RegistryError {
        match self.resolve_operation_by_id(op_id).await {
            Ok(_) => {}
            Err(resolve_error) => {
                tracing::warn!(error = %resolve_error, op_id, "operation left for recovery");
            }
        }
        RegistryError::from_carrier(error)
    }

    pub(crate) async fn number_row(&self, org_id: &str, number_id: &str) -> Result<number::Model> {
        number::Entity::find_by_id(number_id.to_owned())
            .filter(number::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("number"))
    }

    /// One number of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such number.
    pub async fn number(&self, org_id: &str, number_id: &str) -> Result<Number> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        number_from_row(self.number_row(org_id, number_id).await?)
    }

    /// The organization's numbers, oldest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_numbers(&self, org_id: &str) -> Result<Vec<Number>> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        number::Entity::find()
            .filter(number::Column::OrgId.eq(org_id))
            .order_by_asc(number::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(number_from_row)
            .collect()
    }

    /// A page of the organization's numbers in a stable order (by id, which grows with
    /// creation time): at most `limit` numbers (1 to 1,000) after the number `after` (the last
    /// id of the previous page; `None` for the first page). Returns the numbers and the id to
    /// pass as `after` for the next page, `None` on the last page.
    ///
    /// # Errors
    /// [`RegistryError::InvalidRequest`] for a `limit` out of range; [`RegistryError::Database`].
    pub async fn list_numbers_page(
        &self,
        org_id: &str,
        limit: u64,
        after: Option<&str>,
    ) -> Result<(Vec<Number>, Option<String>)> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        if !(1..=1_000).contains(&limit) {
            return Err(RegistryError::InvalidRequest(
                "limit is from 1 to 1000".into(),
            ));
        }
        let mut query = number::Entity::find()
            .filter(number::Column::OrgId.eq(org_id))
            .order_by_asc(number::Column::Id);
        if let Some(after) = after {
            query = query.filter(number::Column::Id.gt(after));
        }
        // One more than asked tells whether a next page exists without a count.
        let mut rows = query.limit(limit + 1).all(&self.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        let numbers = rows
            .into_iter()
            .map(number_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((numbers, next))
    }

    /// The routable number with this E.164 (any organization): the first lookup of the inbound
    /// call path. A number still being imported is not routable yet.
    ///
    /// # Errors
    /// [`RegistryError::InvalidPhoneNumber`]; [`RegistryError::Database`].
    pub async fn number_by_e164(&self, e164: &str) -> Result<Option<Number>> {
        let e164 = parse_e164(e164)?;
        number::Entity::find()
            .filter(number::Column::E164.eq(e164.as_str()))
            .filter(number::Column::Status.ne(NumberStatus::Importing.as_str()))
            .one(&self.db)
            .await?
            .map(number_from_row)
            .transpose()
    }

    /// Assigns an agent to the number, or unassigns it with `None`.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown number or agent of the organization.
    pub async fn assign_agent(
        &self,
        org_id: &str,
        number_id: &str,
        agent_id: Option<&str>,
    ) -> Result<Number> {
        let row = self.number_row(org_id, number_id).await?;
        if let Some(agent_id) = agent_id {
            self.agent(org_id, agent_id).await?;
        }
        let mut active: number::ActiveModel = row.into();
        active.agent_id = Set(agent_id.map(str::to_owned));
        active.updated_at = Set(now());
        number_from_row(active.update(&self.db).await?)
    }

    /// Renames the number (`None` clears the nickname).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub async fn rename_number(
        &self,
        org_id: &str,
        number_id: &str,
        nickname: Option<&str>,
    ) -> Result<Number> {
        let row = self.number_row(org_id, number_id).await?;
        let mut active: number::ActiveModel = row.into();
        active.nickname = Set(nickname
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()));
        active.updated_at = Set(now());
        number_from_row(active.update(&self.db).await?)
    }

    /// Switches the number's webhook mode. To `managed`: saves the current inbound
    /// configuration and points the number at the gateway. To `outbound_only`: restores the
    /// saved configuration, unless someone repointed the number since (then it is left as is).
    /// A dry run reports the carrier-side changes only.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Conflict`] while the number is being
    /// imported, switched or removed, or when it changed while being read; a carrier error.
    pub async fn set_webhook_mode(
        &self,
        org_id: &str,
        number_id: &str,
        mode: WebhookMode,
        dry_run: bool,
    ) -> Result<Applied> {
        let row = self.number_row(org_id, number_id).await?;
        if row.status != NumberStatus::Active.as_str() {
            return Err(RegistryError::Conflict(
                "the number has an operation in progress".into(),
            ));
        }
        let current_mode = WebhookMode::parse(&row.webhook_mode)?;
        if current_mode == mode {
            return Ok(if dry_run {
                Applied::DryRun { changes: vec![] }
            } else {
                Applied::Done {
                    number: number_from_row(row)?,
                    changes: vec![],
                }
            });
        }
        if mode == WebhookMode::OutboundOnly
            && self
                .managed_connection_ids(org_id)
                .await?
                .contains(&row.connection_id)
        {
            return Err(RegistryError::Conflict(
                "a managed number always points at the gateway".into(),
            ));
        }
        let conn = self.connection_row(org_id, &row.connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(&row.e164),
            live: true,
        };
        let e164 = parse_e164(&row.e164)?;
        match mode {
            WebhookMode::Managed => {
                let target = self.managed_config(&conn)?;
                if dry_run {
                    let owned = self
                        .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                        .await
                        .map_err(|e| RegistryError::from_carrier(&e))?;
                    return Ok(Applied::DryRun {
                        changes: vec![PlannedChange {
                            e164: row.e164.clone(),
                            from: owned.inbound,
                            to: target,
                        }],
                    });
                }
                // The row is claimed (compare-and-set on what was read) in the transaction that
                // records the intent; the carrier is read only after, so the saved configuration
                // is never one a concurrent switch wrote. The number stays `active` (routable)
                // while it is switched: the intent's unique index keeps other workflows out.
                let mut payload = OpPayload {
                    number_id: row.id.clone(),
                    e164: row.e164.clone(),
                    carrier_id: row.carrier_id.clone(),
                    previous: None,
                    target: Some(target.clone()),
                };
                let txn = self.db.begin().await?;
                claim_number(&txn, &row, NumberStatus::Active).await?;
                let op = self
                    .record_intent(&txn, OpKind::SetManaged, org_id, &conn.id, &payload)
                    .await?;
                txn.commit().await?;
                let owned = match self
                    .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                    .await
                {
                    Ok(owned) => owned,
                    Err(error) => return Err(self.after_carrier_failure(&op, &error).await),
                };
                payload.previous = Some(owned.inbound.clone());
                self.update_intent(&op, &payload).await?;
                let changes = vec![PlannedChange {
                    e164: row.e164.clone(),
                    from: owned.inbound.clone(),
                    to: target.clone(),
                }];
                let result = self
                    .audited(
                        &scope,
                        "replace_inbound_config",
                        true,
                        carrier.replace_inbound_config(&row.carrier_id, &target),
                    )
                    .await;
                match result {
                    Ok(previous) => {
                        let number = self
                            .finish_managed(&op, &row.id, &previous, &target)
                            .await?;
                        Ok(Applied::Done { number, changes })
                    }
                    Err(error) => Err(self.after_carrier_failure(&op, &error).await),
                }
            }
            WebhookMode::OutboundOnly => {
                let owned = self
                    .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                    .await
                    .map_err(|e| RegistryError::from_carrier(&e))?;
                let saved = from_json(row.saved_inbound.as_deref())?;
                let applied = from_json(row.applied_inbound.as_deref())?;
                let changes = match (&saved, &applied) {
                    (Some(saved), Some(applied)) if same_routing(&owned.inbound, applied) => {
                        vec![PlannedChange {
                            e164: row.e164.clone(),
                            from: owned.inbound.clone(),
                            to: saved.clone(),
                        }]
                    }
                    _ => vec![],
                };
                if dry_run {
                    return Ok(Applied::DryRun { changes });
                }
                // The claim proves `saved` and `applied` are still what the row holds.
                let payload = OpPayload {
                    number_id: row.id.clone(),
                    e164: row.e164.clone(),
                    carrier_id: row.carrier_id.clone(),
                    previous: saved,
                    target: applied,
                };
                let txn = self.db.begin().await?;
                claim_number(&txn, &row, NumberStatus::Active).await?;
                let op = self
                    .record_intent(&txn, OpKind::SetOutboundOnly, org_id, &conn.id, &payload)
                    .await?;
                txn.commit().await?;
                match self.resolve_operation_by_id(&op).await? {
                    Resolution::Completed(_) => Ok(Applied::Done {
                        number: self.number(org_id, number_id).await?,
                        changes,
                    }),
                    Resolution::RolledBack(error) => Err(error),
                }
            }
        }
    }

    /// Removes a number from the gateway. When the gateway had changed its configuration
    /// (`managed`), restores the saved one, but only while the carrier still holds what the
    /// gateway set: if someone repointed the number since, it is left and the report says so.
    /// The number is never released at the carrier.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Conflict`] while it is being imported,
    /// switched or removed, or when it changed while being read; a carrier error when the
    /// restore failed (the number then stays, or its removal is pending recovery).
    pub async fn remove_number(&self, org_id: &str, number_id: &str) -> Result<RemoveReport> {
        let row = self.number_row(org_id, number_id).await?;
        if row.status == NumberStatus::Importing.as_str() {
            return Err(RegistryError::Conflict(
                "the number is being imported".into(),
            ));
        }
        // The claim (compare-and-set on what was read, in the intent's transaction) proves the
        // payload is what the row holds: a switch finishing in between makes this a conflict.
        let payload = OpPayload {
            number_id: row.id.clone(),
            e164: row.e164.clone(),
            carrier_id: row.carrier_id.clone(),
            previous: from_json(row.saved_inbound.as_deref())?,
            target: from_json(row.applied_inbound.as_deref())?,
        };
        let txn = self.db.begin().await?;
        claim_number(&txn, &row, NumberStatus::Removing).await?;
        let op = self
            .record_intent(&txn, OpKind::Remove, org_id, &row.connection_id, &payload)
            .await?;
        txn.commit().await?;
        match self.resolve_operation_by_id(&op).await? {
            Resolution::Completed(restore) => Ok(RemoveReport {
                e164: row.e164,
                restore,
            }),
            Resolution::RolledBack(error) => Err(error),
        }
    }

    /// Runs the troubleshooting checklist of one number: credentials still valid, number still
    /// in the account and voice capable, voice URL pointing at the gateway (managed mode),
    /// region matching, agent assigned, last call seen.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Database`]. Carrier failures become
    /// failed checks, not errors.
    pub async fn diagnose_number(&self, org_id: &str, number_id: &str) -> Result<Diagnostics> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let row = self.number_row(org_id, number_id).await?;
        let conn = self.connection_row(org_id, &row.connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(&row.e164),
            live: true,
        };
        let mut checks = Vec::new();
        let verified = self
            .audited(
                &scope,
                "verify_credentials",
                false,
                carrier.verify_credentials(),
            )
            .await;
        checks.push(Check {
            name: "credentials_valid",
            ok: verified.as_ref().is_ok_and(|account| account.active),
            detail: match &verified {
                Ok(account) if account.active => "the carrier accepts the credentials".into(),
                Ok(_) => "the carrier account is suspended or closed".into(),
                Err(CarrierError::InvalidCredentials) => {
                    "the carrier rejects the credentials: rotate them".into()
                }
                Err(e) => format!(
                    "the carrier could not be asked: {}",
                    RegistryError::from_carrier(e).code()
                ),
            },
        });
        let e164 = parse_e164(&row.e164)?;
        let fetched = if verified.is_ok() {
            Some(
                self.audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                    .await,
            )
        } else {
            None
        };
        let owned = match &fetched {
            Some(Ok(owned)) => Some(owned),
            _ => None,
        };
        checks.push(Check {
            name: "number_in_account",
            ok: owned.is_some(),
            detail: match &fetched {
                Some(Ok(_)) => "the account owns the number".into(),
                Some(Err(CarrierError::NotFound { .. })) => {
                    "the number is no longer in the carrier account".into()
                }
                Some(Err(e)) => format!(
                    "could not be checked: {}",
                    RegistryError::from_carrier(e).code()
                ),
                None => "not checked: the credentials failed".into(),
            },
        });
        checks.push(Check {
            name: "voice_capable",
            ok: owned.is_some_and(|n| n.capabilities.voice),
            detail: match owned {
                Some(n) if n.capabilities.voice => "the number can take voice calls".into(),
                Some(_) => "the number cannot take voice calls".into(),
                None => "not checked".into(),
            },
        });
        if row.webhook_mode == WebhookMode::Managed.as_str() {
            let expected = self.managed_config(&conn)?;
            let ok = owned.is_some_and(|n| same_routing(&n.inbound, &expected));
            checks.push(Check {
                name: "points_at_gateway",
                ok,
                detail: if ok {
                    "inbound calls reach the gateway".into()
                } else if owned.is_some() {
                    "the number's inbound configuration was changed outside the gateway".into()
                } else {
                    "not checked".into()
                },
            });
        }
        if provider_of(&conn)? == Provider::Twilio {
            // The client for this connection is built for its own region (and that region's
            // edge); the check is that such a client can exist, i.e. the region is reachable.
            let region = conn
                .region
                .clone()
                .unwrap_or_else(|| self.config.twilio_region.clone());
            let reachable = self
                .credentials_of(&conn)
                .ok()
                .map(|creds| self.carriers.client_in_region(creds, Some(&region)).is_ok());
            let ok = reachable == Some(true);
            checks.push(Check {
                name: "region_matches",
                ok,
                detail: if ok {
                    format!("live-call actions go to the connection's region {region}")
                } else {
                    format!("the gateway cannot reach the twilio region {region}")
                },
            });
        }
        checks.push(Check {
            name: "agent_assigned",
            ok: row.agent_id.is_some(),
            detail: if row.agent_id.is_some() {
                "an agent takes the calls".into()
            } else {
                "no agent: callers hear a message and the call ends".into()
            },
        });
        Ok(Diagnostics {
            e164: row.e164,
            checks,
            last_call_at: row.last_call_at,
        })
    }

    /// Finds the organization's managed numbers whose inbound configuration no longer matches
    /// what the gateway set (changed in the carrier console).
    ///
    /// # Errors
    /// [`RegistryError::Database`]; a carrier error other than a number gone from the account.
    pub async fn detect_drift(&self, org_id: &str) -> Result<Vec<Drift>> {
        let rows = number::Entity::find()
            .filter(number::Column::OrgId.eq(org_id))
            .filter(number::Column::WebhookMode.eq(WebhookMode::Managed.as_str()))
            .filter(number::Column::Status.eq(NumberStatus::Active.as_str()))
            .order_by_asc(number::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut drift = Vec::new();
        for row in rows {
            let Some(expected) = from_json(row.applied_inbound.as_deref())? else {
                continue;
            };
            let conn = self.connection_row(org_id, &row.connection_id).await?;
            let carrier = self.carrier_of(&conn)?;
            let scope = Scope {
                org_id,
                connection_id: &conn.id,
                number: Some(&row.e164),
                live: true,
            };
            let e164 = parse_e164(&row.e164)?;
            match self
                .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                .await
            {
                Ok(owned) if same_routing(&owned.inbound, &expected) => {}
                Ok(owned) => drift.push(Drift {
                    number_id: row.id,
                    e164: row.e164,
                    expected,
                    actual: owned.inbound,
                }),
                Err(CarrierError::NotFound { .. }) => {}
                Err(e) => return Err(RegistryError::from_carrier(&e)),
            }
        }
        Ok(drift)
    }

    /// Re-points every managed number (all organizations) whose applied configuration differs
    /// from what [`crate::RegistryConfig::public_base_url`] now gives: run after the gateway's
    /// public URL changed. A number someone repointed in the console is left alone, and so is
    /// one with another workflow in flight (the next run picks it up). Returns how many numbers
    /// were re-pointed. Each repoint goes through the intent protocol (kind `repoint`), so a
    /// failure between the carrier change and the database write is finished by
    /// [`Registry::recover_pending_operations`].
    ///
    /// # Errors
    /// [`RegistryError::Database`]; the first carrier error (numbers before it stay done).
    pub async fn repoint_managed_numbers(&self) -> Result<usize> {
        let rows = number::Entity::find()
            .filter(number::Column::WebhookMode.eq(WebhookMode::Managed.as_str()))
            .filter(number::Column::Status.eq(NumberStatus::Active.as_str()))
            .order_by_asc(number::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut repointed = 0;
        for listed in rows {
            // Read again: the claim below compares with the row as it is now.
            let Some(row) = number::Entity::find_by_id(listed.id).one(&self.db).await? else {
                continue;
            };
            if row.webhook_mode != WebhookMode::Managed.as_str()
                || row.status != NumberStatus::Active.as_str()
            {
                continue;
            }
            let conn = self.connection_row(&row.org_id, &row.connection_id).await?;
            let target = self.managed_config(&conn)?;
            let Some(applied) = from_json(row.applied_inbound.as_deref())? else {
                continue;
            };
            if same_routing(&applied, &target) {
                continue;
            }
            let carrier = self.carrier_of(&conn)?;
            let scope = Scope {
                org_id: &row.org_id,
                connection_id: &conn.id,
                number: Some(&row.e164),
                live: true,
            };
            let e164 = parse_e164(&row.e164)?;
            // The number is claimed (compare-and-set on what was read) and the intent recorded
            // in one transaction, before the carrier is read or changed: a removal or switch
            // that claimed it first makes this number wait for the next run, and one that
            // comes after is refused until the repoint ends.
            let payload = OpPayload {
                number_id: row.id.clone(),
                e164: row.e164.clone(),
                carrier_id: row.carrier_id.clone(),
                previous: Some(applied.clone()),
                target: Some(target.clone()),
            };
            let txn = self.db.begin().await?;
            let intent = match claim_number(&txn, &row, NumberStatus::Active).await {
                Ok(()) => {
                    self.record_intent(&txn, OpKind::Repoint, &row.org_id, &conn.id, &payload)
                        .await
                }
                Err(error) => Err(error),
            };
            let op = match intent {
                Ok(op) => op,
                Err(RegistryError::Conflict(_)) => {
                    tracing::info!(number_id = %row.id, "a workflow is in flight on the number; not repointed now");
                    continue;
                }
                Err(error) => return Err(error),
            };
            txn.commit().await?;
            let owned = match self
                .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                .await
            {
                Ok(owned) => owned,
                Err(error) => {
                    // Nothing was changed yet.
                    crate::ops::delete_op(&self.db, &op).await?;
                    return Err(RegistryError::from_carrier(&error));
                }
            };
            if !same_routing(&owned.inbound, &applied) {
                crate::ops::delete_op(&self.db, &op).await?;
                continue;
            }
            if let Err(error) = self
                .audited(
                    &scope,
                    "replace_inbound_config",
                    true,
                    carrier.replace_inbound_config(&row.carrier_id, &target),
                )
                .await
            {
                return Err(self.after_carrier_failure(&op, &error).await);
            }
            // Only the applied config changes; the saved snapshot is the customer's.
            self.finish_repoint(&op, &row.id, &target).await?;
            repointed += 1;
        }
        Ok(repointed)
    }
}

/// Claims an `active` number for an operation: moves it to `status` (a switch keeps it
/// `active`, a removal makes it `removing`) and bumps `updated_at`, only if it is still exactly
/// the row that was read (same `updated_at`). Run in the transaction that records the intent:
/// together with the one-operation-per-number index, no workflow acts on data that changed
/// since it read it, and a workflow that read before another one claimed the row gets a
/// conflict.
async fn claim_number<C: ConnectionTrait>(
    db: &C,
    row: &number::Model,
    status: NumberStatus,
) -> Result<()> {
    let claimed = number::Entity::update_many()
        .col_expr(number::Column::Status, Expr::value(status.as_str()))
        .col_expr(number::Column::UpdatedAt, Expr::value(now()))
        .filter(number::Column::Id.eq(row.id.as_str()))
        .filter(number::Column::OrgId.eq(row.org_id.as_str()))
        .filter(number::Column::Status.eq(NumberStatus::Active.as_str()))
        .filter(number::Column::UpdatedAt.eq(row.updated_at))
        .exec(db)
        .await?;
    if claimed.rows_affected == 1 {
        Ok(())
    } else {
        Err(RegistryError::Conflict(
            "the number has an operation in progress or changed meanwhile; try again".into(),
        ))
    }
}

fn unique_to_imported(error: sea_orm::DbErr) -> RegistryError {
    if crate::calls::is_unique_violation(&error) {
        RegistryError::NumberAlreadyImported
    } else {
        error.into()
    }
}
