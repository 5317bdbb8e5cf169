//! Voice agents: where an imported number's inbound calls go.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait, sea_query::Expr,
};
use telephony_carrier::E164;

use crate::entity::agent;
use crate::error::{RegistryError, Result};
use crate::model::{Agent, AgentTarget, NewAgent};
use crate::registry::{Registry, new_id, now};

pub(crate) fn agent_from_row(row: agent::Model) -> Result<Agent> {
    let target = match row.target_kind.as_str() {
        "media_stream" => AgentTarget::MediaStream(row.target),
        "sip" => AgentTarget::Sip(row.target),
        other => {
            return Err(RegistryError::Corrupt(format!(
                "unknown agent target kind {other:?}"
            )));
        }
    };
    Ok(Agent {
        id: row.id,
        org_id: row.org_id,
        name: row.name,
        target,
        fallback_number: row.fallback_number,
        max_concurrent_calls: row.max_concurrent_calls.and_then(|n| u32::try_from(n).ok()),
        created_at: row.created_at,
    })
}

/// A concurrency limit as stored: at least 1, and small enough for the column.
pub(crate) fn check_limit(limit: Option<u32>) -> Result<Option<i32>> {
    match limit {
        Some(0) => Err(RegistryError::InvalidRequest(
            "a concurrency limit is at least 1".into(),
        )),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| RegistryError::InvalidRequest("concurrency limit too large".into())),
        None => Ok(None),
    }
}

pub(crate) fn check_target(target: &AgentTarget) -> Result<(&'static str, &str)> {
    match target {
        AgentTarget::MediaStream(url) => {
            if url.starts_with("wss://") || url.starts_with("ws://") {
                Ok(("media_stream", url))
            } else {
                Err(RegistryError::InvalidRequest(
                    "a media stream url starts with wss:// or ws://".into(),
                ))
            }
        }
        AgentTarget::Sip(uri) => {
            if (uri.starts_with("sip:") || uri.starts_with("sips:")) && uri.contains('@') {
                Ok(("sip", uri))
            } else {
                Err(RegistryError::InvalidRequest(
                    "a sip uri looks like sip:user@host".into(),
                ))
            }
        }
    }
}

impl Registry {
    /// Creates an agent.
    ///
    /// # Errors
    /// [`RegistryError::InvalidRequest`] for an empty name, a target that is neither a
    /// `ws(s)://` URL nor a SIP URI, or a limit of 0; [`RegistryError::InvalidPhoneNumber`]
    /// for a fallback that is not E.164.
    pub async fn create_agent(&self, org_id: &str, new: NewAgent) -> Result<Agent> {
        self.organization(org_id).await?;
        let name = new.name.trim();
        if name.is_empty() {
            return Err(RegistryError::InvalidRequest("agent name is empty".into()));
        }
        let (kind, target) = check_target(&new.target)?;
        if let Some(fallback) = &new.fallback_number {
            E164::parse(fallback).map_err(|_| RegistryError::InvalidPhoneNumber)?;
        }
        let limit = check_limit(new.max_concurrent_calls)?;
        let row = agent::ActiveModel {
            id: Set(new_id()),
            org_id: Set(org_id.to_owned()),
            name: Set(name.to_owned()),
            target_kind: Set(kind.to_owned()),
            target: Set(target.to_owned()),
            fallback_number: Set(new.fallback_number),
            max_concurrent_calls: Set(limit),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        agent_from_row(row)
    }

    /// Replaces an agent's settings (name, target, fallback, limit); its id and the numbers
    /// assigned to it stay. A limit set where there was none counts its calls in progress
    /// against it (see `count_calls_in_progress`), in the same transaction: the settings and
    /// the count are committed together or not at all.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown agent of the organization; the errors of
    /// [`Registry::create_agent`] for invalid settings.
    pub async fn update_agent(&self, org_id: &str, agent_id: &str, new: NewAgent) -> Result<Agent> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(RegistryError::InvalidRequest("agent name is empty".into()));
        }
        let (kind, target) = check_target(&new.target)?;
        if let Some(fallback) = &new.fallback_number {
            E164::parse(fallback).map_err(|_| RegistryError::InvalidPhoneNumber)?;
        }
        let limit = check_limit(new.max_concurrent_calls)?;
        let txn = self.db.begin().await?;
        if limit.is_some() {
            crate::calls::lock_for_count(&txn).await?;
        }
        // The first statement writes, so SQLite takes its write lock (PostgreSQL the row's)
        // before the limit the agent had is read.
        let written = agent::Entity::update_many()
            .col_expr(agent::Column::Name, Expr::value(name))
            .col_expr(agent::Column::TargetKind, Expr::value(kind))
            .col_expr(agent::Column::Target, Expr::value(target))
            .col_expr(
                agent::Column::FallbackNumber,
                Expr::value(new.fallback_number.clone()),
            )
            .filter(agent::Column::Id.eq(agent_id))
            .filter(agent::Column::OrgId.eq(org_id))
            .exec(&txn)
            .await?;
        if written.rows_affected == 0 {
            return Err(RegistryError::NotFound("agent"));
        }
        let had_limit = agent::Entity::find_by_id(agent_id.to_owned())
            .one(&txn)
            .await?
            .is_some_and(|row| row.max_concurrent_calls.is_some());
        agent::Entity::update_many()
            .col_expr(agent::Column::MaxConcurrentCalls, Expr::value(limit))
            .filter(agent::Column::Id.eq(agent_id))
            .exec(&txn)
            .await?;
        // Calls are counted from the moment a limit applies; one set before counted them.
        if limit.is_some() && !had_limit {
            self.count_calls_in_progress(&txn, org_id, crate::calls::CountedBy::Agent(agent_id))
                .await?;
        }
        txn.commit().await?;
        self.agent(org_id, agent_id).await
    }

    /// One agent of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such agent.
    pub async fn agent(&self, org_id: &str, agent_id: &str) -> Result<Agent> {
        let row = agent::Entity::find_by_id(agent_id.to_owned())
            .filter(agent::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("agent"))?;
        agent_from_row(row)
    }

    /// The organization's agents, oldest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_agents(&self, org_id: &str) -> Result<Vec<Agent>> {
        agent::Entity::find()
            .filter(agent::Column::OrgId.eq(org_id))
            .order_by_asc(agent::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(agent_from_row)
            .collect()
    }

    /// Deletes an agent; numbers assigned to it become unassigned.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such agent.
    pub async fn delete_agent(&self, org_id: &str, agent_id: &str) -> Result<()> {
        self.agent(org_id, agent_id).await?;
        // Unassign explicitly rather than rely on ON DELETE SET NULL, which SQLite only
        // honours with foreign keys switched on.
        crate::entity::number::Entity::update_many()
            .col_expr(
                crate::entity::number::Column::AgentId,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .filter(crate::entity::number::Column::AgentId.eq(agent_id))
            .exec(&self.db)
            .await?;
        agent::Entity::delete_by_id(agent_id.to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
