//! Operations in flight: the intent protocol that keeps the carrier account and the database
//! in agreement.
//!
//! A workflow that changes both records an `operations` row (kind, number, payload with the
//! configuration before and after) in the same transaction as its first database change and
//! before its first carrier call, and deletes it in the same transaction as its last database
//! change. Any row still present is therefore an operation that did not finish: the carrier
//! failed midway, the process died between two steps, or the database write after a
//! successful carrier change failed.
//!
//! Resolving an operation never trusts what the process remembers: it reads the number at the
//! carrier (the source of truth for what the carrier did) and then goes one fixed way per kind:
//!
//! | kind | direction | what it does |
//! | --- | --- | --- |
//! | `import`, `set_managed` | undo | if the carrier holds the gateway's configuration, put the saved one back; drop the importing row |
//! | `set_outbound_only`, `remove` | finish | if the carrier still holds the gateway's configuration, restore the saved one; update or delete the row |
//! | `repoint` | follow the carrier | if the carrier holds the new gateway configuration, record it as applied; otherwise drop the operation, the old applied one stays |
//!
//! A repoint (after the gateway's public URL changed) moves a number from one gateway
//! configuration to another, never to or from the customer's, so its direction is neither undo
//! nor finish: the database is made to say what the carrier holds, because `applied` is what a
//! later removal compares the carrier with before restoring the saved configuration. An
//! `applied` that disagreed with the carrier would make that removal leave the number pointing
//! at the gateway. Dropping an operation whose change did not happen is safe: the next
//! [`Registry::repoint_managed_numbers`] does it again. A carrier that will not show the number
//! (unreachable, or refusing) leaves a repoint pending, whatever the status code: guessing
//! either way could leave `applied` wrong.
//!
//! Undoing a change to the customer's account, or finishing a restoration of it, are the two
//! directions that never leave the customer's number pointing somewhere they did not choose.
//! A carrier that cannot be reached leaves the operation in place for the next attempt. One that
//! refuses for good (a 4xx): a refused restoration leaves the number as it was (still imported,
//! `active`); a refused undo keeps the change and records it (the number `active` and
//! `managed`, the customer's configuration saved), with a warning in the log.
//!
//! Every workflow on an existing number claims its row first (compare-and-set on `updated_at`,
//! which it bumps; a removal also moves `active` to `removing`, a mode switch keeps the number
//! `active` so calls still reach it) in the transaction that records the intent, so one number
//! has one workflow at a time and each acts on the row as it claimed it; resolving the
//! operation puts a removal's row back to `active` or deletes it.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use telephony_carrier::{Blame, CarrierError, E164, InboundConfig};

use crate::entity::{connection, number, operation};
use crate::error::{RegistryError, Result};
use crate::model::{NumberStatus, RecoveryReport, Restore, WebhookMode};
use crate::numbers::same_routing;
use crate::registry::{Registry, Scope, new_id, now};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Import,
    SetManaged,
    SetOutboundOnly,
    Remove,
    Repoint,
}

impl OpKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::SetManaged => "set_managed",
            Self::SetOutboundOnly => "set_outbound_only",
            Self::Remove => "remove",
            Self::Repoint => "repoint",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "import" => Ok(Self::Import),
            "set_managed" => Ok(Self::SetManaged),
            "set_outbound_only" => Ok(Self::SetOutboundOnly),
            "remove" => Ok(Self::Remove),
            "repoint" => Ok(Self::Repoint),
            other => Err(RegistryError::Corrupt(format!(
                "unknown operation kind {other:?}"
            ))),
        }
    }
}

/// The payload of an operation: enough to finish or undo it without anything else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpPayload {
    pub number_id: String,
    pub e164: String,
    pub carrier_id: String,
    /// The customer's configuration: what was there before (import, set_managed) or the saved
    /// snapshot to put back (set_outbound_only, remove). For a repoint, the gateway's old
    /// applied configuration.
    pub previous: Option<InboundConfig>,
    /// The gateway's configuration: what it sets (import, set_managed, repoint) or what it had
    /// set.
    pub target: Option<InboundConfig>,
}

/// How an operation ended.
#[derive(Debug)]
pub(crate) enum Resolution {
    /// Finished; for removals and switches to `outbound_only`, what happened at the carrier.
    Completed(Restore),
    /// Undone; the error the workflow reports.
    RolledBack(RegistryError),
}

pub(crate) async fn delete_op<C: ConnectionTrait>(db: &C, op_id: &str) -> Result<()> {
    operation::Entity::delete_by_id(op_id.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Puts a number its operation had claimed (`claimed_as`) back to `active`, as it was.
async fn release_claim<C: ConnectionTrait>(
    db: &C,
    number_id: &str,
    claimed_as: NumberStatus,
) -> Result<()> {
    number::Entity::update_many()
        .col_expr(
            number::Column::Status,
            sea_orm::sea_query::Expr::value(NumberStatus::Active.as_str()),
        )
        .col_expr(
            number::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now()),
        )
        .filter(number::Column::Id.eq(number_id))
        .filter(number::Column::Status.eq(claimed_as.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

const STEP_INTENT: &str = "intent_recorded";
const STEP_RESOLVING: &str = "resolving";

impl Registry {
    /// Records an intent; returns the operation id.
    pub(crate) async fn record_intent<C: ConnectionTrait>(
        &self,
        db: &C,
        kind: OpKind,
        org_id: &str,
        connection_id: &str,
        payload: &OpPayload,
    ) -> Result<String> {
        let at = now();
        let id = new_id();
        operation::ActiveModel {
            id: Set(id.clone()),
            org_id: Set(org_id.to_owned()),
            kind: Set(kind.as_str().to_owned()),
            number: Set(Some(payload.e164.clone())),
            connection_id: Set(connection_id.to_owned()),
            step: Set(STEP_INTENT.to_owned()),
            payload: Set(serde_json::to_string(payload)
                .map_err(|e| RegistryError::Corrupt(e.to_string()))?),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(db)
        .await
        .map_err(|error| {
            if crate::calls::is_unique_violation(&error) {
                RegistryError::Conflict("the number has an operation in progress".into())
            } else {
                error.into()
            }
        })?;
        Ok(id)
    }

    /// Rewrites an operation's payload (a switch to `managed` learns the configuration to save
    /// only after it claimed the number; it is written before the carrier is changed).
    pub(crate) async fn update_intent(&self, op_id: &str, payload: &OpPayload) -> Result<()> {
        let text =
            serde_json::to_string(payload).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        operation::Entity::update_many()
            .col_expr(
                operation::Column::Payload,
                sea_orm::sea_query::Expr::value(text),
            )
            .filter(operation::Column::Id.eq(op_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// How many operations are in flight (for readiness checks and tests).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn pending_operations(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(operation::Entity::find().count(&self.db).await?)
    }

    /// Finishes or undoes every operation left in flight and older than
    /// [`crate::RegistryConfig::stale_operation_after`] (younger ones may belong to another
    /// live instance). Call it at start, and periodically. Each operation is claimed with a
    /// compare-and-set on its `updated_at`, so two instances never resolve the same one.
    /// The same pass also runs [`Registry::sweep_stale_calls`] and forgets previous signing
    /// keys whose rotation grace is over.
    ///
    /// # Errors
    /// [`RegistryError::Database`]. Carrier failures leave the operation pending and are
    /// counted in [`RecoveryReport::still_pending`].
    pub async fn recover_pending_operations(&self) -> Result<RecoveryReport> {
        let stale = chrono::Duration::from_std(self.config.stale_operation_after)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = now().checked_sub_signed(stale).unwrap_or_default();
        let rows = operation::Entity::find()
            .filter(operation::Column::UpdatedAt.lte(cutoff))
            .order_by_asc(operation::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut report = RecoveryReport::default();
        for row in rows {
            let claimed = operation::Entity::update_many()
                .col_expr(
                    operation::Column::Step,
                    sea_orm::sea_query::Expr::value(STEP_RESOLVING),
                )
                .col_expr(
                    operation::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(now()),
                )
                .filter(operation::Column::Id.eq(row.id.as_str()))
                .filter(operation::Column::UpdatedAt.eq(row.updated_at))
                .exec(&self.db)
                .await?;
            if claimed.rows_affected != 1 {
                continue;
            }
            match self.resolve_operation(&row).await {
                Ok(Resolution::Completed(_)) => report.completed += 1,
                Ok(Resolution::RolledBack(_)) => report.rolled_back += 1,
                Err(error) => {
                    tracing::warn!(%error, op_id = %row.id, kind = %row.kind, "operation still pending");
                    report.still_pending += 1;
                }
            }
        }
        // Housekeeping of the same periodic pass; a failure here does not fail recovery.
        match self.sweep_stale_calls().await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "stale active calls no longer counted"),
            Err(error) => tracing::warn!(%error, "could not sweep stale active calls"),
        }
        if let Err(error) = self.clear_expired_secrets().await {
            tracing::warn!(%error, "could not clear expired previous secrets");
        }
        Ok(report)
    }

    pub(crate) async fn resolve_operation_by_id(&self, op_id: &str) -> Result<Resolution> {
        let row = operation::Entity::find_by_id(op_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("operation"))?;
        self.resolve_operation(&row).await
    }

    /// Finishes or undoes one operation, reading the carrier first. An error means the
    /// operation is still pending.
    async fn resolve_operation(&self, op: &operation::Model) -> Result<Resolution> {
        let kind = OpKind::parse(&op.kind)?;
        let payload: OpPayload =
            serde_json::from_str(&op.payload).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        let Some(conn) = connection::Entity::find_by_id(op.connection_id.clone())
            .one(&self.db)
            .await?
        else {
            // The connection is gone, so are its numbers (foreign key): nothing to agree with.
            delete_op(&self.db, &op.id).await?;
            return Ok(Resolution::RolledBack(RegistryError::NotFound(
                "connection",
            )));
        };
        let carrier = self.carrier_of(&conn)?;
        let scope = Scope {
            org_id: &op.org_id,
            connection_id: &conn.id,
            number: Some(&payload.e164),
            live: true,
        };
        let e164 = E164::parse(&payload.e164).map_err(|_| RegistryError::InvalidPhoneNumber)?;

        match kind {
            OpKind::Repoint => {
                self.resolve_repoint(op, &payload, &scope, &e164, &*carrier)
                    .await
            }
            OpKind::Import | OpKind::SetManaged => {
                if let (Some(previous), Some(target)) = (&payload.previous, &payload.target) {
                    match self
                        .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                        .await
                    {
                        // The carrier's id of the number as it is now (a number released and
                        // bought again has a new one), so a stale id cannot 404 forever.
                        Ok(owned) if same_routing(&owned.inbound, target) => {
                            match self
                                .audited(
                                    &scope,
                                    "replace_inbound_config",
                                    true,
                                    carrier.replace_inbound_config(&owned.carrier_id, previous),
                                )
                                .await
                            {
                                Ok(_) => {}
                                Err(e) if e.blame() == Blame::Caller => {
                                    // The carrier refuses the undo for good: retrying cannot
                                    // help, and the number does point at the gateway, so the
                                    // change is kept and recorded instead.
                                    tracing::warn!(
                                        error = %e,
                                        op_id = %op.id,
                                        kind = %op.kind,
                                        "the carrier refused the undo; the change is kept"
                                    );
                                    self.finish_managed(
                                        &op.id,
                                        &payload.number_id,
                                        previous,
                                        target,
                                    )
                                    .await?;
                                    return Ok(Resolution::Completed(Restore::NothingToRestore));
                                }
                                Err(e) => return Err(RegistryError::from_carrier(&e)),
                            }
                        }
                        Ok(_) => {}
                        Err(CarrierError::NotFound { .. }) => {
                            self.confirm_gone(&scope, &*carrier, &e164).await?;
                        }
                        Err(e) => return Err(RegistryError::from_carrier(&e)),
                    }
                }
                let txn = self.db.begin().await?;
                if kind == OpKind::Import {
                    number::Entity::delete_many()
                        .filter(number::Column::Id.eq(payload.number_id.as_str()))
                        .filter(number::Column::Status.eq(NumberStatus::Importing.as_str()))
                        .exec(&txn)
                        .await?;
                }
                delete_op(&txn, &op.id).await?;
                txn.commit().await?;
                Ok(Resolution::RolledBack(RegistryError::CarrierUnavailable(
                    "the change was undone".into(),
                )))
            }
            OpKind::SetOutboundOnly | OpKind::Remove => {
                let mut restore = Restore::NothingToRestore;
                if let (Some(saved), Some(applied)) = (&payload.previous, &payload.target) {
                    restore = match self
                        .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                        .await
                    {
                        Ok(owned) if same_routing(&owned.inbound, applied) => {
                            match self
                                .audited(
                                    &scope,
                                    "replace_inbound_config",
                                    true,
                                    carrier.replace_inbound_config(&owned.carrier_id, saved),
                                )
                                .await
                            {
                                Ok(_) => Restore::Restored,
                                Err(CarrierError::NotFound { .. }) => {
                                    self.confirm_gone(&scope, &*carrier, &e164).await?;
                                    Restore::NumberGone
                                }
                                Err(e) if e.blame() == Blame::Caller => {
                                    // The carrier refused the restore for good: retrying
                                    // cannot help, so the number stays as it was.
                                    self.abandon(op, kind, &payload).await?;
                                    return Ok(Resolution::RolledBack(
                                        RegistryError::from_carrier(&e),
                                    ));
                                }
                                Err(e) => return Err(RegistryError::from_carrier(&e)),
                            }
                        }
                        Ok(owned) => Restore::LeftAsRepointed {
                            current: owned.inbound,
                        },
                        Err(CarrierError::NotFound { .. }) => {
                            self.confirm_gone(&scope, &*carrier, &e164).await?;
                            Restore::NumberGone
                        }
                        Err(e) if e.blame() == Blame::Caller => {
                            // The carrier refuses to even show the number (credentials revoked,
                            // request refused): nothing was changed, so the number stays.
                            self.abandon(op, kind, &payload).await?;
                            return Ok(Resolution::RolledBack(RegistryError::from_carrier(&e)));
                        }
                        Err(e) => return Err(RegistryError::from_carrier(&e)),
                    };
                }
                let txn = self.db.begin().await?;
                if kind == OpKind::Remove {
                    number::Entity::delete_by_id(payload.number_id.clone())
                        .exec(&txn)
                        .await?;
                } else {
                    // A write first: see `finish_managed` on SQLite locks.
                    number::Entity::update_many()
                        .col_expr(
                            number::Column::WebhookMode,
                            sea_orm::sea_query::Expr::value(WebhookMode::OutboundOnly.as_str()),
                        )
                        .col_expr(
                            number::Column::Status,
                            sea_orm::sea_query::Expr::value(NumberStatus::Active.as_str()),
                        )
                        .col_expr(
                            number::Column::SavedInbound,
                            sea_orm::sea_query::Expr::value(Option::<String>::None),
                        )
                        .col_expr(
                            number::Column::AppliedInbound,
                            sea_orm::sea_query::Expr::value(Option::<String>::None),
                        )
                        .col_expr(
                            number::Column::UpdatedAt,
                            sea_orm::sea_query::Expr::value(now()),
                        )
                        .filter(number::Column::Id.eq(payload.number_id.as_str()))
                        .exec(&txn)
                        .await?;
                }
                delete_op(&txn, &op.id).await?;
                txn.commit().await?;
                Ok(Resolution::Completed(restore))
            }
        }
    }

    /// Resolves a repoint by making `applied` say what the carrier holds: the new configuration
    /// when the carrier has it, the old one otherwise (the operation is dropped).
    async fn resolve_repoint(
        &self,
        op: &operation::Model,
        payload: &OpPayload,
        scope: &Scope<'_>,
        e164: &E164,
        carrier: &dyn telephony_carrier::Carrier,
    ) -> Result<Resolution> {
        let Some(new) = &payload.target else {
            delete_op(&self.db, &op.id).await?;
            return Ok(Resolution::RolledBack(RegistryError::Corrupt(
                "a repoint without its target".into(),
            )));
        };
        match self
            .audited(scope, "fetch_number", false, carrier.fetch_number(e164))
            .await
        {
            Ok(owned) if same_routing(&owned.inbound, new) => {
                self.finish_repoint(&op.id, &payload.number_id, new).await?;
                Ok(Resolution::Completed(Restore::NothingToRestore))
            }
            // The change did not happen (the carrier holds the old applied configuration), or
            // someone changed the number in the console since (drift, as before the repoint),
            // or the number left the account: `applied` stays the old one.
            Err(CarrierError::NotFound { .. }) => {
                self.confirm_gone(scope, carrier, e164).await?;
                delete_op(&self.db, &op.id).await?;
                Ok(Resolution::RolledBack(RegistryError::CarrierUnavailable(
                    "the number was not repointed".into(),
                )))
            }
            Ok(_) => {
                delete_op(&self.db, &op.id).await?;
                Ok(Resolution::RolledBack(RegistryError::CarrierUnavailable(
                    "the number was not repointed".into(),
                )))
            }
            // Unreachable, or refusing to show the number (credentials revoked): which
            // configuration it holds is unknown, so the operation waits for the next attempt
            // (a rotation of the credentials, or a disconnection, ends it).
            Err(e) => Err(RegistryError::from_carrier(&e)),
        }
    }

    /// A 404 is what a carrier answers for a number that left the account, but one answer can be
    /// wrong (a carrier's or a proxy's hiccup), and believing it would skip the customer's
    /// restoration for good. Before an operation gives a number up as gone, a second read must
    /// agree; when the number is still there the operation stays pending, and the next attempt
    /// (at once by the caller, or by recovery) finds the number and goes its normal way.
    async fn confirm_gone(
        &self,
        scope: &Scope<'_>,
        carrier: &dyn telephony_carrier::Carrier,
        e164: &E164,
    ) -> Result<()> {
        match self
            .audited(scope, "fetch_number", false, carrier.fetch_number(e164))
            .await
        {
            Err(CarrierError::NotFound { .. }) => Ok(()),
            Ok(_) => {
                tracing::warn!(
                    number = %e164,
                    "the carrier answered 404 for a number it still holds; retried later"
                );
                Err(RegistryError::CarrierUnavailable(
                    "the carrier answered 404 for a number it still holds".into(),
                ))
            }
            Err(e) => Err(RegistryError::from_carrier(&e)),
        }
    }

    /// Gives up an operation that cannot finish: the number is left as it was before it.
    async fn abandon(
        &self,
        op: &operation::Model,
        kind: OpKind,
        payload: &OpPayload,
    ) -> Result<()> {
        let txn = self.db.begin().await?;
        if kind == OpKind::Remove {
            release_claim(&txn, &payload.number_id, NumberStatus::Removing).await?;
        }
        delete_op(&txn, &op.id).await?;
        txn.commit().await?;
        Ok(())
    }
}
