//! Bulk seeding for benchmarks and large installations: organizations with Twilio connections
//! and an agent each, then numbers, written with chunked multi-row inserts inside transactions.
//!
//! This path trusts its caller (an operator's tool such as `telephony-seed`): it does not ask
//! the carrier whether the credentials work or whether the account owns the numbers, and it
//! never changes a carrier account (numbers are written in `outbound_only` mode, `active`).
//! It does check what the database can tell: a number's connection and agent must be its
//! organization's, on both back ends (SQLite enforces no foreign keys), so a caller's mistake
//! cannot give one organization's number another's credentials or agent.
//! Credentials are still sealed with the vault exactly as [`Registry::connect_carrier`] seals
//! them, and a number already imported anywhere is still refused by the database's UNIQUE
//! constraint.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};
use telephony_carrier::{E164, Provider};
use telephony_vault::{Aad, SecretString};

use crate::agents::check_target;
use crate::entity::{agent, connection, number, organization};
use crate::error::{RegistryError, Result};
use crate::model::{AgentTarget, ConnectionStatus, NumberStatus, WebhookMode};
use crate::registry::{FIELD_AUTH, Registry, new_id, now};

/// Rows per multi-row `INSERT`: 15 columns × 1,000 rows stays under both SQLite's (32,766) and
/// PostgreSQL's (65,535) limits on bound parameters.
const ROWS_PER_INSERT: usize = 1_000;

/// One organization to create in bulk, with its Twilio connections and an optional agent.
#[derive(Debug, Clone)]
pub struct BulkTenant {
    /// The organization's name.
    pub name: String,
    /// Its Twilio connections (each name unique within the organization).
    pub connections: Vec<BulkTwilioConnection>,
    /// Where its agent sends calls (media stream URL or SIP URI); `None` for no agent.
    pub agent_target: Option<AgentTarget>,
}

/// A Twilio connection created in bulk, without asking Twilio.
#[derive(Debug, Clone)]
pub struct BulkTwilioConnection {
    /// The connection's name.
    pub name: String,
    /// The Account SID (`AC` + 32 hex digits).
    pub account_sid: String,
    /// The auth token, stored sealed by the vault.
    pub auth_token: SecretString,
}

/// What [`Registry::bulk_create_tenants`] created for one [`BulkTenant`], in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededTenant {
    /// The organization's id.
    pub org_id: String,
    /// Its agent's id, when one was asked for.
    pub agent_id: Option<String>,
    /// Its connections' ids, in the order given.
    pub connection_ids: Vec<String>,
}

/// A number written in bulk: `active`, `outbound_only`, no saved or applied configuration.
#[derive(Debug, Clone)]
pub struct BulkNumber {
    /// The owning organization.
    pub org_id: String,
    /// The connection it belongs to (of that organization).
    pub connection_id: String,
    /// The number, E.164.
    pub e164: String,
    /// The carrier's id of the number (`PN...` at Twilio).
    pub carrier_id: String,
    /// The agent its calls go to.
    pub agent_id: Option<String>,
}

fn check_account_sid(sid: &str) -> Result<()> {
    let hex = sid.strip_prefix("AC").unwrap_or_default();
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RegistryError::InvalidRequest(
            "an account sid is AC followed by 32 hex digits".into(),
        ))
    }
}

impl Registry {
    /// Creates organizations, each with its connections (credentials sealed by the vault, not
    /// verified with the carrier) and agent, in one transaction with multi-row inserts.
    ///
    /// # Errors
    /// [`RegistryError::InvalidRequest`] for an empty name, a malformed Account SID or agent
    /// target, or two connections of one organization with the same name (nothing is written
    /// then); [`RegistryError::Vault`]; [`RegistryError::Database`].
    pub async fn bulk_create_tenants(&self, tenants: &[BulkTenant]) -> Result<Vec<SeededTenant>> {
        let at = now();
        let mut orgs = Vec::with_capacity(tenants.len());
        let mut agents = Vec::new();
        let mut connections = Vec::new();
        let mut seeded = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let name = tenant.name.trim();
            if name.is_empty() {
                return Err(RegistryError::InvalidRequest(
                    "organization name is empty".into(),
                ));
            }
            let org_id = new_id();
            orgs.push(organization::ActiveModel {
                id: Set(org_id.clone()),
                name: Set(name.to_owned()),
                created_at: Set(at),
            });
            let agent_id = match &tenant.agent_target {
                Some(target) => {
                    let (kind, target) = check_target(target)?;
                    let id = new_id();
                    agents.push(agent::ActiveModel {
                        id: Set(id.clone()),
                        org_id: Set(org_id.clone()),
                        name: Set(format!("{name} agent")),
                        target_kind: Set(kind.to_owned()),
                        target: Set(target.to_owned()),
                        fallback_number: Set(None),
                        max_concurrent_calls: Set(None),
                        created_at: Set(at),
                    });
                    Some(id)
                }
                None => None,
            };
            let mut connection_ids = Vec::with_capacity(tenant.connections.len());
            for (i, new) in tenant.connections.iter().enumerate() {
                let conn_name = new.name.trim();
                if conn_name.is_empty() {
                    return Err(RegistryError::InvalidRequest(
                        "connection name is empty".into(),
                    ));
                }
                if tenant.connections[..i]
                    .iter()
                    .any(|other| other.name.trim() == conn_name)
                {
                    return Err(RegistryError::InvalidRequest(
                        "two connections of one organization have the same name".into(),
                    ));
                }
                check_account_sid(&new.account_sid)?;
                let id = new_id();
                let auth_secret = self.keyring.encrypt(
                    &new.auth_token,
                    &Aad {
                        org_id: &org_id,
                        connection_id: &id,
                        field: FIELD_AUTH,
                    },
                )?;
                connections.push(connection::ActiveModel {
                    id: Set(id.clone()),
                    org_id: Set(org_id.clone()),
                    name: Set(conn_name.to_owned()),
                    provider: Set(Provider::Twilio.as_str().to_owned()),
                    account_id: Set(new.account_sid.clone()),
                    texml_app_id: Set(None),
                    region: Set(None),
                    api_key_sid: Set(None),
                    auth_secret: Set(auth_secret),
                    api_key_secret: Set(None),
                    public_key: Set(None),
                    previous_public_key: Set(None),
                    previous_auth_secret: Set(None),
                    previous_auth_expires_at: Set(None),
                    status: Set(ConnectionStatus::Active.as_str().to_owned()),
                    created_at: Set(at),
                    updated_at: Set(at),
                });
                connection_ids.push(id);
            }
            seeded.push(SeededTenant {
                org_id,
                agent_id,
                connection_ids,
            });
        }

        let txn = self.db.begin().await?;
        while !orgs.is_empty() {
            let rest = orgs.split_off(orgs.len().min(ROWS_PER_INSERT));
            organization::Entity::insert_many(std::mem::replace(&mut orgs, rest))
                .exec_without_returning(&txn)
                .await?;
        }
        while !agents.is_empty() {
            let rest = agents.split_off(agents.len().min(ROWS_PER_INSERT));
            agent::Entity::insert_many(std::mem::replace(&mut agents, rest))
                .exec_without_returning(&txn)
                .await?;
        }
        while !connections.is_empty() {
            let rest = connections.split_off(connections.len().min(ROWS_PER_INSERT));
            connection::Entity::insert_many(std::mem::replace(&mut connections, rest))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(seeded)
    }

    /// Writes numbers in one transaction, 1,000 rows per statement. Call it with
    /// chunks of a few thousand to seed millions without holding them all in memory. Returns
    /// how many rows were written.
    ///
    /// # Errors
    /// [`RegistryError::InvalidPhoneNumber`] for a number that is not E.164, and
    /// [`RegistryError::InvalidRequest`] for one whose connection or agent does not exist or is
    /// another organization's (nothing is written then); [`RegistryError::NumberAlreadyImported`]
    /// when one is already imported (the transaction is rolled back); [`RegistryError::Database`],
    /// for instance for an unknown organization on PostgreSQL.
    pub async fn bulk_insert_numbers(&self, numbers: &[BulkNumber]) -> Result<u64> {
        let at = now();
        let mut rows = Vec::with_capacity(numbers.len());
        for n in numbers {
            let e164 = E164::parse(n.e164.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)?;
            rows.push(number::ActiveModel {
                id: Set(new_id()),
                org_id: Set(n.org_id.clone()),
                connection_id: Set(n.connection_id.clone()),
                e164: Set(e164.as_str().to_owned()),
                nickname: Set(None),
                carrier_id: Set(n.carrier_id.clone()),
                agent_id: Set(n.agent_id.clone()),
                webhook_mode: Set(WebhookMode::OutboundOnly.as_str().to_owned()),
                status: Set(NumberStatus::Active.as_str().to_owned()),
                saved_inbound: Set(None),
                applied_inbound: Set(None),
                last_call_at: Set(None),
                max_concurrent_calls: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
            });
        }
        let mut written = 0;
        let txn = self.db.begin().await?;
        // Checked inside the transaction that writes the numbers: on PostgreSQL a connection or
        // agent deleted meanwhile is still caught by its foreign key.
        check_owners(&txn, numbers).await?;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(ROWS_PER_INSERT));
            let chunk = std::mem::replace(&mut rows, rest);
            written += number::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await
                .map_err(|error| {
                    if crate::calls::is_unique_violation(&error) {
                        RegistryError::NumberAlreadyImported
                    } else {
                        error.into()
                    }
                })?;
        }
        txn.commit().await?;
        Ok(written)
    }

    /// Brings the database's planner statistics of the tables a bulk load writes up to date,
    /// as after any bulk load: on PostgreSQL, `ANALYZE` of the organizations, connections,
    /// agents and numbers (autovacuum would get to it within a minute or so; until then the
    /// planner guesses, for instance that most agents have a limit on concurrent calls). On
    /// SQLite, which plans without statistics unless asked to keep them, nothing.
    ///
    /// # Errors
    /// [`RegistryError::Database`] when the statement fails.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if self.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            self.db
                .execute_unprepared("ANALYZE organizations, connections, agents, numbers")
                .await?;
        }
        Ok(())
    }
}

/// Fails unless every number's connection and agent exist and belong to the number's
/// organization (one query per 1,000 distinct ids of each).
async fn check_owners<C: ConnectionTrait>(db: &C, numbers: &[BulkNumber]) -> Result<()> {
    let connections: BTreeSet<&str> = numbers.iter().map(|n| n.connection_id.as_str()).collect();
    let connection_owners = owners::<connection::Entity, _>(
        db,
        &connections,
        connection::Column::Id,
        connection::Column::OrgId,
    )
    .await?;
    let agents: BTreeSet<&str> = numbers
        .iter()
        .filter_map(|n| n.agent_id.as_deref())
        .collect();
    let agent_owners =
        owners::<agent::Entity, _>(db, &agents, agent::Column::Id, agent::Column::OrgId).await?;
    for n in numbers {
        if connection_owners.get(&n.connection_id) != Some(&n.org_id) {
            return Err(RegistryError::InvalidRequest(format!(
                "number {}: its connection is not one of its organization's",
                n.e164.trim()
            )));
        }
        if let Some(agent_id) = &n.agent_id
            && agent_owners.get(agent_id) != Some(&n.org_id)
        {
            return Err(RegistryError::InvalidRequest(format!(
                "number {}: its agent is not one of its organization's",
                n.e164.trim()
            )));
        }
    }
    Ok(())
}

/// The owning organization of each of `ids` that exists, read `ROWS_PER_INSERT` ids at a time.
async fn owners<E, C>(
    db: &C,
    ids: &BTreeSet<&str>,
    id: E::Column,
    org_id: E::Column,
) -> Result<BTreeMap<String, String>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut owners = BTreeMap::new();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let rows: Vec<(String, String)> = E::find()
            .select_only()
            .column(id)
            .column(org_id)
            .filter(id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        owners.extend(rows);
    }
    Ok(owners)
}
