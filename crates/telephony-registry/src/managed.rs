//! Managed numbers: numbers the platform buys for an organization in the platform's own carrier
//! account, configured by the operator ([`PlatformAccounts`]).
//!
//! # Where the platform's accounts live
//!
//! The operator's credentials are given to the registry at construction
//! ([`Registry::with_platform_accounts`]); they are never stored as they are. What an
//! organization's managed numbers need is stored as an ordinary row of `connections` owned by
//! that organization (one per provider, recorded in `managed_accounts`), with its secret
//! encrypted like any credential:
//!
//! - Twilio: a subaccount of the platform's account, created on the organization's first
//!   purchase, so costs and reputation stay separate. Its FriendlyName names the organization:
//!   when the database write recording a new subaccount fails (or the process dies), the next
//!   attempt finds that subaccount at Twilio and reuses it rather than creating another. The connection holds the subaccount's SID
//!   and (encrypted) Auth Token, which is also what Twilio signs the subaccount's webhooks with.
//! - Telnyx: the platform's API key (encrypted, bound to the organization's row), public key and
//!   TeXML application id.
//!
//! Because a managed number is an ordinary `numbers` row on that connection (mode `managed`,
//! pointed at the gateway), inbound routing, diagnostics and live-call control work on it
//! unchanged; its path (`managed` rather than `imported`) is read from `managed_accounts`.
//!
//! # Purchases
//!
//! A purchase is a `managed_orders` row written before the carrier is asked (`buying`). A
//! purchase the carrier completes at once becomes a number in the same transaction that marks
//! the order `completed`; one the carrier completes later (Telnyx number orders) stays
//! `pending` with the carrier's order id, and [`Registry::refresh_managed_orders`] (run
//! periodically by the service, and on demand for one order) finishes it. Each pending order is
//! claimed with a compare-and-set on `claimed_at`, so several instances never finish the same
//! order twice, and a claim older than [`crate::RegistryConfig::stale_operation_after`] is taken
//! over (its instance died).
//!
//! # Releasing
//!
//! Only a managed number is ever released at the carrier, and only on an explicit request
//! ([`Registry::release_managed_number`]); an imported number is refused.
//!
//! # Unknown outcomes
//!
//! A purchase or a release whose answer was lost (a timeout, a dropped connection, a 5xx, an
//! answer that could not be read) may have been carried out. It is never taken as not done: the
//! order stays `buying`, the number `removing`, and once older than
//! [`crate::RegistryConfig::stale_operation_after`] the order job reads the account and
//! finishes or undoes it. A 404 on a release is believed only when a read agrees.

use std::collections::HashSet;
use std::fmt;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde::Serialize;
use telephony_carrier::{
    AvailableNumber, AvailableQuery, CarrierCredentials, CarrierError, E164, OwnedNumber, Provider,
    Purchase, PurchaseRequest, TelnyxCredentials, TwilioAuth, TwilioCredentials,
};
use telephony_vault::{Aad, SecretString};

use crate::entity::{connection, number};
use crate::error::{RegistryError, Result};
use crate::model::{ConnectionStatus, Number, NumberStatus, WebhookMode};
use crate::numbers::{number_from_row, same_routing, to_json};
use crate::registry::{FIELD_AUTH, Registry, Scope, new_id, now};

pub(crate) mod managed_account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "managed_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        pub connection_id: Option<String>,
        pub state: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod managed_order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "managed_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub connection_id: String,
        pub provider: String,
        pub e164: String,
        pub order_id: Option<String>,
        pub status: String,
        pub number_id: Option<String>,
        pub claimed_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

const ACCOUNT_CREATING: &str = "creating";
const ACCOUNT_READY: &str = "ready";

/// The platform's Twilio account: the parent of every organization's subaccount.
#[derive(Debug, Clone)]
pub struct PlatformTwilio {
    /// The `AC…` Account SID.
    pub account_sid: String,
    /// Its Auth Token.
    pub auth_token: SecretString,
}

/// The platform's Telnyx account, shared by every organization's managed Telnyx numbers.
#[derive(Debug, Clone)]
pub struct PlatformTelnyx {
    /// The API v2 key.
    pub api_key: SecretString,
    /// The account's Ed25519 public key (base64), to verify its webhooks.
    pub public_key: String,
    /// The TeXML application managed numbers are tied to (its voice URL is the gateway's).
    pub texml_app_id: String,
    /// The TeXML account SID, when known (needed for TeXML live-call control).
    pub account_sid: Option<String>,
}

/// The platform's own carrier accounts, configured by the operator. Either may be absent: the
/// managed path is then refused for that provider.
#[derive(Debug, Clone, Default)]
pub struct PlatformAccounts {
    /// The platform's Twilio account.
    pub twilio: Option<PlatformTwilio>,
    /// The platform's Telnyx account.
    pub telnyx: Option<PlatformTelnyx>,
}

/// How a number came to the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberPath {
    /// Imported from the organization's own carrier account (BYOC).
    Imported,
    /// Bought in the platform's carrier account for the organization.
    Managed,
}

impl NumberPath {
    /// The JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imported => "imported",
            Self::Managed => "managed",
        }
    }
}

/// The state of a managed purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// The carrier is being asked.
    Buying,
    /// The carrier completes the order later.
    Pending,
    /// The number is bought and is a number of the organization.
    Completed,
    /// The carrier refused or cancelled the order, or the request failed.
    Failed,
    /// The number was bought, then released.
    Released,
}

impl OrderStatus {
    /// The stored and JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buying => "buying",
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Released => "released",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "buying" => Self::Buying,
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "released" => Self::Released,
            other => {
                return Err(RegistryError::Corrupt(format!(
                    "unknown order status {other:?}"
                )));
            }
        })
    }
}

/// A purchase of a managed number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedOrder {
    /// Its id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// Which carrier.
    pub provider: Provider,
    /// The number bought.
    pub e164: String,
    /// Where the purchase is.
    pub status: OrderStatus,
    /// The number, once bought.
    pub number_id: Option<String>,
    /// When it was asked for.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What a pass of [`Registry::refresh_managed_orders`] did (purchases left `buying` by a dead
/// process included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderRefresh {
    /// Orders the carrier completed: their numbers now exist.
    pub completed: usize,
    /// Orders the carrier refused or cancelled.
    pub failed: usize,
    /// Orders still pending (or the carrier could not be asked).
    pub still_pending: usize,
}

/// What releasing a managed number did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedRelease {
    /// The number released.
    pub e164: String,
    /// Whether the carrier no longer had it (released elsewhere already).
    pub already_gone: bool,
}

fn order_from_row(row: &managed_order::Model) -> Result<ManagedOrder> {
    Ok(ManagedOrder {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        provider: parse_provider(&row.provider)?,
        e164: row.e164.clone(),
        status: OrderStatus::parse(&row.status)?,
        number_id: row.number_id.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn parse_provider(text: &str) -> Result<Provider> {
    match text {
        "twilio" => Ok(Provider::Twilio),
        "telnyx" => Ok(Provider::Telnyx),
        other => Err(RegistryError::Corrupt(format!(
            "unknown provider {other:?}"
        ))),
    }
}

/// The FriendlyName of an organization's Twilio subaccount: it names the organization, so a
/// subaccount whose creation was never recorded is found again.
fn subaccount_name(org_id: &str) -> String {
    format!("telephony-gateway org {org_id}")
}

/// The audit scope of a call made with the platform's account itself (no organization
/// connection exists yet, or none is concerned).
fn platform_connection(provider: Provider) -> &'static str {
    match provider {
        Provider::Twilio => "platform:twilio",
        _ => "platform:telnyx",
    }
}

impl fmt::Display for NumberPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Registry {
    /// The same registry with the platform's own carrier accounts, for managed numbers.
    #[must_use]
    pub fn with_platform_accounts(mut self, accounts: PlatformAccounts) -> Self {
        self.platform = std::sync::Arc::new(accounts);
        self
    }

    /// The platform's carrier accounts.
    #[must_use]
    pub fn platform_accounts(&self) -> &PlatformAccounts {
        &self.platform
    }

    /// A client on the platform's own account of `provider`.
    fn platform_credentials(&self, provider: Provider) -> Result<CarrierCredentials> {
        match provider {
            Provider::Twilio => {
                let twilio = self.platform.twilio.as_ref().ok_or_else(|| {
                    RegistryError::InvalidRequest(
                        "the platform has no twilio account for managed numbers".into(),
                    )
                })?;
                Ok(CarrierCredentials::Twilio(TwilioCredentials {
                    account_sid: twilio.account_sid.clone(),
                    auth: TwilioAuth::AuthToken(twilio.auth_token.clone()),
                }))
            }
            _ => {
                let telnyx = self.platform.telnyx.as_ref().ok_or_else(|| {
                    RegistryError::InvalidRequest(
                        "the platform has no telnyx account for managed numbers".into(),
                    )
                })?;
                let mut creds = TelnyxCredentials::new(telnyx.api_key.clone());
                creds.account_sid.clone_from(&telnyx.account_sid);
                Ok(CarrierCredentials::Telnyx(creds))
            }
        }
    }

    /// Searches the platform's inventory of numbers for sale (audited, read-only).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown organization;
    /// [`RegistryError::InvalidRequest`] when the platform has no account of `provider`; a
    /// carrier error.
    pub async fn search_managed_numbers(
        &self,
        org_id: &str,
        provider: Provider,
        query: &AvailableQuery,
    ) -> Result<Vec<AvailableNumber>> {
        self.organization(org_id).await?;
        let carrier = self.carriers.client(self.platform_credentials(provider)?);
        let scope = Scope {
            org_id,
            connection_id: platform_connection(provider),
            number: None,
            live: false,
        };
        self.audited(
            &scope,
            "search_available",
            false,
            carrier.search_available(query),
        )
        .await
        .map_err(|e| RegistryError::from_carrier(&e))
    }

    /// The connection ids of the organization's managed accounts.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn managed_connection_ids(&self, org_id: &str) -> Result<HashSet<String>> {
        Ok(managed_account::Entity::find()
            .filter(managed_account::Column::OrgId.eq(org_id))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|row| row.connection_id)
            .collect())
    }

    /// How a number came to its organization.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn number_path(&self, number: &Number) -> Result<NumberPath> {
        let managed = managed_account::Entity::find()
            .filter(managed_account::Column::OrgId.eq(number.org_id.as_str()))
            .filter(managed_account::Column::ConnectionId.eq(number.connection_id.as_str()))
            .one(&self.db)
            .await?;
        Ok(if managed.is_some() {
            NumberPath::Managed
        } else {
            NumberPath::Imported
        })
    }

    /// The organization's managed connection of `provider`, created on first use: for Twilio a
    /// subaccount of the platform's account (one carrier call, audited), for Telnyx a row holding
    /// the platform's account. The (organization, provider) key is claimed first, so two
    /// instances never create two subaccounts; a claim left by a dead instance is taken over
    /// once stale.
    async fn managed_connection(
        &self,
        org_id: &str,
        provider: Provider,
    ) -> Result<connection::Model> {
        let credentials = self.platform_credentials(provider)?;
        let key = (org_id.to_owned(), provider.as_str().to_owned());
        let existing = managed_account::Entity::find_by_id(key.clone())
            .one(&self.db)
            .await?;
        match existing {
            Some(row) if row.state == ACCOUNT_READY => {
                let id = row.connection_id.ok_or_else(|| {
                    RegistryError::Corrupt("a ready managed account has no connection".into())
                })?;
                return self.connection_row(org_id, &id).await;
            }
            Some(row) => {
                let stale = chrono::Duration::from_std(self.config.stale_operation_after)
                    .unwrap_or(chrono::Duration::MAX);
                if row.updated_at > now().checked_sub_signed(stale).unwrap_or_default() {
                    return Err(RegistryError::Conflict(
                        "the organization's managed account is being set up; retry".into(),
                    ));
                }
                let claimed = managed_account::Entity::update_many()
                    .col_expr(
                        managed_account::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(now()),
                    )
                    .filter(managed_account::Column::OrgId.eq(org_id))
                    .filter(managed_account::Column::Provider.eq(provider.as_str()))
                    .filter(managed_account::Column::State.eq(ACCOUNT_CREATING))
                    .filter(managed_account::Column::UpdatedAt.eq(row.updated_at))
                    .exec(&self.db)
                    .await?;
                if claimed.rows_affected != 1 {
                    return Err(RegistryError::Conflict(
                        "the organization's managed account is being set up; retry".into(),
                    ));
                }
            }
            None => {
                let at = now();
                let inserted = managed_account::ActiveModel {
                    org_id: Set(key.0.clone()),
                    provider: Set(key.1.clone()),
                    connection_id: Set(None),
                    state: Set(ACCOUNT_CREATING.to_owned()),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(&self.db)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(error) if crate::calls::is_unique_violation(&error) => {
                        return Err(RegistryError::Conflict(
                            "the organization's managed account is being set up; retry".into(),
                        ));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        match self
            .create_managed_connection(org_id, provider, credentials)
            .await
        {
            Ok(row) => {
                managed_account::Entity::update_many()
                    .col_expr(
                        managed_account::Column::ConnectionId,
                        sea_orm::sea_query::Expr::value(row.id.clone()),
                    )
                    .col_expr(
                        managed_account::Column::State,
                        sea_orm::sea_query::Expr::value(ACCOUNT_READY),
                    )
                    .col_expr(
                        managed_account::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(now()),
                    )
                    .filter(managed_account::Column::OrgId.eq(org_id))
                    .filter(managed_account::Column::Provider.eq(provider.as_str()))
                    .exec(&self.db)
                    .await?;
                Ok(row)
            }
            Err(error) => {
                // Nothing was created at the carrier (or it refused): free the claim.
                if let Err(db) = managed_account::Entity::delete_by_id(key)
                    .exec(&self.db)
                    .await
                {
                    tracing::warn!(error = %db, "could not free the managed account claim");
                }
                Err(error)
            }
        }
    }

    async fn create_managed_connection(
        &self,
        org_id: &str,
        provider: Provider,
        credentials: CarrierCredentials,
    ) -> Result<connection::Model> {
        let id = new_id();
        let aad = Aad {
            org_id,
            connection_id: &id,
            field: FIELD_AUTH,
        };
        let (account_id, secret, public_key, texml_app_id) = match credentials {
            CarrierCredentials::Twilio(parent) => {
                let client = self.carriers.twilio(parent).ok_or_else(|| {
                    RegistryError::InvalidRequest(
                        "the carrier factory cannot create twilio subaccounts".into(),
                    )
                })?;
                let scope = Scope {
                    org_id,
                    connection_id: platform_connection(Provider::Twilio),
                    number: None,
                    live: false,
                };
                // The name carries the organization id: a subaccount created by an attempt
                // whose database write failed (or whose process died) is found and reused, never
                // created twice.
                let friendly_name = subaccount_name(org_id);
                let existing = self
                    .audited(
                        &scope,
                        "find_subaccount",
                        false,
                        client.find_subaccount(&friendly_name),
                    )
                    .await
                    .map_err(|e| RegistryError::from_carrier(&e))?;
                let (account, token) = match existing {
                    Some(found) => {
                        tracing::info!(
                            account = %found.0.account_id,
                            "reusing the organization's twilio subaccount left by an earlier attempt"
                        );
                        found
                    }
                    None => self
                        .audited(
                            &scope,
                            "create_subaccount",
                            true,
                            client.create_subaccount(&friendly_name),
                        )
                        .await
                        .map_err(|e| RegistryError::from_carrier(&e))?,
                };
                (account.account_id, token, None, None)
            }
            CarrierCredentials::Telnyx(_) => {
                let telnyx = self.platform.telnyx.as_ref().ok_or_else(|| {
                    RegistryError::InvalidRequest(
                        "the platform has no telnyx account for managed numbers".into(),
                    )
                })?;
                (
                    telnyx
                        .account_sid
                        .clone()
                        .unwrap_or_else(|| "platform".to_owned()),
                    telnyx.api_key.clone(),
                    Some(telnyx.public_key.clone()),
                    Some(telnyx.texml_app_id.clone()),
                )
            }
        };
        let at = now();
        let row = connection::ActiveModel {
            id: Set(id.clone()),
            org_id: Set(org_id.to_owned()),
            name: Set(format!("managed {} (platform)", provider.as_str())),
            provider: Set(provider.as_str().to_owned()),
            account_id: Set(account_id),
            texml_app_id: Set(texml_app_id),
            region: Set(None),
            api_key_sid: Set(None),
            auth_secret: Set(self.keyring.encrypt(&secret, &aad)?),
            api_key_secret: Set(None),
            public_key: Set(public_key),
            previous_public_key: Set(None),
            previous_auth_secret: Set(None),
            previous_auth_expires_at: Set(None),
            status: Set(ConnectionStatus::Active.as_str().to_owned()),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await?;
        Ok(row)
    }

    /// Brings every organization's managed Telnyx connection up to date with the platform's
    /// Telnyx account as configured now (API key, public key, TeXML application, account SID),
    /// so an operator who rotates the platform's key changes one setting and restarts. Returns
    /// how many connections were updated. Call it at start.
    ///
    /// # Errors
    /// [`RegistryError::Database`]; [`RegistryError::Vault`].
    pub async fn sync_platform_telnyx(&self) -> Result<usize> {
        let Some(telnyx) = self.platform.telnyx.as_ref() else {
            return Ok(0);
        };
        let rows = managed_account::Entity::find()
            .filter(managed_account::Column::Provider.eq(Provider::Telnyx.as_str()))
            .filter(managed_account::Column::State.eq(ACCOUNT_READY))
            .all(&self.db)
            .await?;
        let mut updated = 0;
        for account in rows {
            let Some(connection_id) = account.connection_id else {
                continue;
            };
            let row = self.connection_row(&account.org_id, &connection_id).await?;
            let aad = Aad {
                org_id: &row.org_id,
                connection_id: &row.id,
                field: FIELD_AUTH,
            };
            let current = self.keyring.decrypt(&row.auth_secret, &aad)?;
            let account_id = telnyx
                .account_sid
                .clone()
                .unwrap_or_else(|| "platform".to_owned());
            if current.expose() == telnyx.api_key.expose()
                && row.public_key.as_deref() == Some(telnyx.public_key.as_str())
                && row.texml_app_id.as_deref() == Some(telnyx.texml_app_id.as_str())
                && row.account_id == account_id
            {
                continue;
            }
            let sealed = self.keyring.encrypt(&telnyx.api_key, &aad)?;
            let mut active: connection::ActiveModel = row.into();
            active.auth_secret = Set(sealed);
            active.public_key = Set(Some(telnyx.public_key.clone()));
            active.texml_app_id = Set(Some(telnyx.texml_app_id.clone()));
            active.account_id = Set(account_id);
            active.status = Set(ConnectionStatus::Active.as_str().to_owned());
            active.updated_at = Set(now());
            active.update(&self.db).await?;
            updated += 1;
        }
        Ok(updated)
    }

    /// Buys a number in the platform's account for the organization (in its own subaccount on
    /// Twilio, created on the first purchase), pointed at the gateway. A purchase the carrier
    /// completes later is returned `pending` and finished by [`Registry::refresh_managed_orders`].
    ///
    /// # Errors
    /// [`RegistryError::InvalidPhoneNumber`]; [`RegistryError::NumberAlreadyImported`] when the
    /// number is already a number of some organization; [`RegistryError::InvalidRequest`] when
    /// the platform has no account of `provider`; [`RegistryError::Conflict`] while another
    /// request sets up the organization's managed account; [`RegistryError::CarrierRejected`]
    /// when the carrier refuses the order; a carrier error.
    pub async fn buy_managed_number(
        &self,
        org_id: &str,
        provider: Provider,
        e164: &str,
    ) -> Result<(ManagedOrder, Option<Number>)> {
        self.organization(org_id).await?;
        let e164 = E164::parse(e164.trim()).map_err(|_| RegistryError::InvalidPhoneNumber)?;
        self.platform_credentials(provider)?;
        let taken = number::Entity::find()
            .filter(number::Column::E164.eq(e164.as_str()))
            .one(&self.db)
            .await?;
        if taken.is_some() {
            return Err(RegistryError::NumberAlreadyImported);
        }
        let conn = self.managed_connection(org_id, provider).await?;
        let at = now();
        let order = managed_order::ActiveModel {
            id: Set(new_id()),
            org_id: Set(org_id.to_owned()),
            connection_id: Set(conn.id.clone()),
            provider: Set(provider.as_str().to_owned()),
            e164: Set(e164.as_str().to_owned()),
            order_id: Set(None),
            status: Set(OrderStatus::Buying.as_str().to_owned()),
            number_id: Set(None),
            claimed_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await?;
        let carrier = self.carrier_of(&conn)?;
        let request = PurchaseRequest {
            e164: e164.clone(),
            inbound: self.managed_config(&conn)?,
            reference: Some(order.id.clone()),
        };
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(e164.as_str()),
            live: true,
        };
        let result = self
            .audited(&scope, "buy_number", true, carrier.buy_number(&request))
            .await;
        match result {
            Ok(Purchase::Completed { number }) => {
                let (order, number) = self.finish_order(&order, &conn, number).await?;
                Ok((order, Some(number)))
            }
            Ok(Purchase::Pending { order_id }) => {
                let row = self
                    .set_order(&order, OrderStatus::Pending, Some(order_id))
                    .await?;
                Ok((order_from_row(&row)?, None))
            }
            Ok(Purchase::Failed { .. }) => {
                self.set_order(&order, OrderStatus::Failed, None).await?;
                Err(RegistryError::CarrierRejected(
                    "the carrier refused the number order".into(),
                ))
            }
            Err(error) if outcome_unknown(&error) => {
                // The order may have reached the carrier (a timeout, a dropped connection, a
                // 5xx): the order stays `buying`, and once stale the order job reads the
                // account and finishes it as a purchase or fails it, so a number paid for is
                // never one the gateway does not show.
                tracing::warn!(%error, order = %order.id, "managed purchase outcome unknown; left for the order job");
                Err(RegistryError::from_carrier(&error))
            }
            Err(error) => {
                self.set_order(&order, OrderStatus::Failed, None).await?;
                Err(RegistryError::from_carrier(&error))
            }
        }
    }

    async fn set_order(
        &self,
        row: &managed_order::Model,
        status: OrderStatus,
        order_id: Option<String>,
    ) -> Result<managed_order::Model> {
        let mut active: managed_order::ActiveModel = row.clone().into();
        active.status = Set(status.as_str().to_owned());
        if order_id.is_some() {
            active.order_id = Set(order_id);
        }
        active.claimed_at = Set(None);
        active.updated_at = Set(now());
        Ok(active.update(&self.db).await?)
    }

    /// Makes a bought number a number of the organization: points it at the gateway when the
    /// carrier did not (audited), then writes the number and completes the order in one
    /// transaction.
    async fn finish_order(
        &self,
        order: &managed_order::Model,
        conn: &connection::Model,
        owned: OwnedNumber,
    ) -> Result<(ManagedOrder, Number)> {
        let wanted = self.managed_config(conn)?;
        if !same_routing(&owned.inbound, &wanted) {
            let carrier = self.carrier_of(conn)?;
            let scope = Scope {
                org_id: &order.org_id,
                connection_id: &conn.id,
                number: Some(&order.e164),
                live: true,
            };
            self.audited(
                &scope,
                "replace_inbound_config",
                true,
                carrier.replace_inbound_config(&owned.carrier_id, &wanted),
            )
            .await
            .map_err(|e| RegistryError::from_carrier(&e))?;
        }
        let at = now();
        let number_id = new_id();
        let txn = self.db.begin().await?;
        let row = number::ActiveModel {
            id: Set(number_id.clone()),
            org_id: Set(order.org_id.clone()),
            connection_id: Set(conn.id.clone()),
            e164: Set(order.e164.clone()),
            nickname: Set(None),
            carrier_id: Set(owned.carrier_id.clone()),
            agent_id: Set(None),
            webhook_mode: Set(WebhookMode::Managed.as_str().to_owned()),
            status: Set(NumberStatus::Active.as_str().to_owned()),
            saved_inbound: Set(None),
            applied_inbound: Set(Some(to_json(&wanted)?)),
            last_call_at: Set(None),
            max_concurrent_calls: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&txn)
        .await
        .map_err(|error| {
            if crate::calls::is_unique_violation(&error) {
                RegistryError::NumberAlreadyImported
            } else {
                error.into()
            }
        })?;
        let mut active: managed_order::ActiveModel = order.clone().into();
        active.status = Set(OrderStatus::Completed.as_str().to_owned());
        active.number_id = Set(Some(number_id));
        active.claimed_at = Set(None);
        active.updated_at = Set(at);
        let order = active.update(&txn).await?;
        txn.commit().await?;
        Ok((order_from_row(&order)?, number_from_row(row)?))
    }

    /// One managed purchase of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub async fn managed_order(&self, org_id: &str, order_id: &str) -> Result<ManagedOrder> {
        order_from_row(&self.order_row(org_id, order_id).await?)
    }

    async fn order_row(&self, org_id: &str, order_id: &str) -> Result<managed_order::Model> {
        managed_order::Entity::find_by_id(order_id.to_owned())
            .filter(managed_order::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("order"))
    }

    /// The organization's managed purchases, newest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_managed_orders(&self, org_id: &str) -> Result<Vec<ManagedOrder>> {
        managed_order::Entity::find()
            .filter(managed_order::Column::OrgId.eq(org_id))
            .order_by_desc(managed_order::Column::CreatedAt)
            .all(&self.db)
            .await?
            .iter()
            .map(order_from_row)
            .collect()
    }

    /// Claims a pending order: a compare-and-set on `claimed_at`, which must be what was read
    /// (or stale), so two instances never finish the same order.
    async fn claim_order(&self, row: &managed_order::Model) -> Result<bool> {
        let stale = chrono::Duration::from_std(self.config.stale_operation_after)
            .unwrap_or(chrono::Duration::MAX);
        if let Some(claimed) = row.claimed_at
            && claimed > now().checked_sub_signed(stale).unwrap_or_default()
        {
            return Ok(false);
        }
        let same_claim = match row.claimed_at {
            Some(at) => Condition::all().add(managed_order::Column::ClaimedAt.eq(at)),
            None => Condition::all().add(managed_order::Column::ClaimedAt.is_null()),
        };
        let claimed = managed_order::Entity::update_many()
            .col_expr(
                managed_order::Column::ClaimedAt,
                sea_orm::sea_query::Expr::value(Some(now())),
            )
            .filter(managed_order::Column::Id.eq(row.id.as_str()))
            .filter(managed_order::Column::Status.eq(OrderStatus::Pending.as_str()))
            .filter(same_claim)
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Asks the carrier about one claimed pending order and records the answer.
    async fn resolve_order(&self, row: &managed_order::Model) -> Result<OrderStatus> {
        let release = |error: RegistryError| async move {
            let mut active: managed_order::ActiveModel = row.clone().into();
            active.claimed_at = Set(None);
            if let Err(db) = active.update(&self.db).await {
                tracing::warn!(error = %db, "could not release the order claim");
            }
            error
        };
        let conn = match self.connection_row(&row.org_id, &row.connection_id).await {
            Ok(conn) => conn,
            Err(error) => return Err(release(error).await),
        };
        let Some(order_id) = row.order_id.clone() else {
            return Err(RegistryError::Corrupt(
                "a pending order has no carrier order id".into(),
            ));
        };
        let carrier = match self.carrier_of(&conn) {
            Ok(carrier) => carrier,
            Err(error) => return Err(release(error).await),
        };
        let scope = Scope {
            org_id: &row.org_id,
            connection_id: &conn.id,
            number: Some(&row.e164),
            live: true,
        };
        let answer = self
            .audited(
                &scope,
                "purchase_status",
                false,
                carrier.purchase_status(&order_id),
            )
            .await;
        match answer {
            Ok(Purchase::Completed { number }) => match self.finish_order(row, &conn, number).await
            {
                Ok(_) => Ok(OrderStatus::Completed),
                Err(error) => Err(release(error).await),
            },
            Ok(Purchase::Pending { .. }) => {
                self.set_order(row, OrderStatus::Pending, None).await?;
                Ok(OrderStatus::Pending)
            }
            Ok(Purchase::Failed { .. }) => {
                self.set_order(row, OrderStatus::Failed, None).await?;
                Ok(OrderStatus::Failed)
            }
            Err(error @ CarrierError::NotFound { .. }) => {
                // The carrier has no such order: nothing was bought.
                self.set_order(row, OrderStatus::Failed, None).await?;
                tracing::warn!(%error, order = %row.id, "the carrier does not know the order");
                Ok(OrderStatus::Failed)
            }
            Err(error) => Err(release(RegistryError::from_carrier(&error)).await),
        }
    }

    /// Finishes every pending managed purchase the carrier has completed (or refused), and
    /// resolves purchases and releases whose outcome was unknown once they are stale. Safe to
    /// run on several instances at once: each order or number is claimed first. Call it
    /// periodically.
    ///
    /// # Errors
    /// [`RegistryError::Database`]. Carrier failures leave the order pending and are counted in
    /// [`OrderRefresh::still_pending`].
    pub async fn refresh_managed_orders(&self) -> Result<OrderRefresh> {
        let mut report = self.reconcile_stuck_purchases().await?;
        let released = self.reconcile_stuck_releases().await?;
        if released > 0 {
            tracing::info!(released, "stuck managed releases resolved");
        }
        let rows = managed_order::Entity::find()
            .filter(managed_order::Column::Status.eq(OrderStatus::Pending.as_str()))
            .order_by_asc(managed_order::Column::CreatedAt)
            .all(&self.db)
            .await?;
        for row in rows {
            if !self.claim_order(&row).await? {
                continue;
            }
            match self.resolve_order(&row).await {
                Ok(OrderStatus::Completed) => report.completed += 1,
                Ok(OrderStatus::Failed) => report.failed += 1,
                Ok(_) => report.still_pending += 1,
                Err(error) => {
                    tracing::warn!(%error, order = %row.id, "managed order still pending");
                    report.still_pending += 1;
                }
            }
        }
        Ok(report)
    }

    /// Purchases left `buying` by a process that died between recording the order and
    /// recording the carrier's answer: once older than
    /// [`crate::RegistryConfig::stale_operation_after`], each is claimed (compare-and-set on
    /// its status and last change, so one instance takes it) and the carrier is asked for the
    /// purchase made under the order's id ([`telephony_carrier::Carrier::find_purchase`]: the
    /// order at Telnyx, the number in the account at Twilio). A completed purchase is finished,
    /// a Telnyx order still in progress makes the order `pending` (the pass over pending
    /// orders follows it), and when nothing was bought the order is `failed`. A carrier that
    /// cannot be asked leaves the order `buying`, for the next pass.
    async fn reconcile_stuck_purchases(&self) -> Result<OrderRefresh> {
        let stale = chrono::Duration::from_std(self.config.stale_operation_after)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = now().checked_sub_signed(stale).unwrap_or_default();
        let rows = managed_order::Entity::find()
            .filter(managed_order::Column::Status.eq(OrderStatus::Buying.as_str()))
            .filter(managed_order::Column::UpdatedAt.lte(cutoff))
            .order_by_asc(managed_order::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut report = OrderRefresh::default();
        for row in rows {
            let at = now();
            let claimed = managed_order::Entity::update_many()
                .col_expr(
                    managed_order::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(at),
                )
                .col_expr(
                    managed_order::Column::ClaimedAt,
                    sea_orm::sea_query::Expr::value(Some(at)),
                )
                .filter(managed_order::Column::Id.eq(row.id.as_str()))
                .filter(managed_order::Column::Status.eq(OrderStatus::Buying.as_str()))
                .filter(managed_order::Column::UpdatedAt.eq(row.updated_at))
                .exec(&self.db)
                .await?;
            if claimed.rows_affected != 1 {
                continue;
            }
            let mut row = row;
            row.updated_at = at;
            row.claimed_at = Some(at);
            match self.reconcile_purchase(&row).await {
                Ok(OrderStatus::Completed) => report.completed += 1,
                // Now a pending order: the pass over pending orders that follows reports it.
                Ok(OrderStatus::Pending) => {}
                Ok(_) => report.failed += 1,
                Err(error) => {
                    tracing::warn!(%error, order = %row.id, "stuck managed purchase not reconciled yet");
                    report.still_pending += 1;
                }
            }
        }
        Ok(report)
    }

    /// Reads the carrier for one claimed `buying` order and records the answer.
    async fn reconcile_purchase(&self, row: &managed_order::Model) -> Result<OrderStatus> {
        let conn = self.connection_row(&row.org_id, &row.connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        let e164 = E164::parse(&row.e164).map_err(|_| {
            RegistryError::Corrupt("a managed order holds an invalid number".into())
        })?;
        let scope = Scope {
            org_id: &row.org_id,
            connection_id: &conn.id,
            number: Some(&row.e164),
            live: true,
        };
        // The order's id is the purchase's reference at the carrier (Telnyx keeps it on the
        // number order): an order the carrier has not finished yet is found, and becomes a
        // pending order, instead of a failed one whose number is bought later anyway.
        let found = self
            .audited(
                &scope,
                "find_purchase",
                false,
                carrier.find_purchase(&row.id, &e164),
            )
            .await;
        match found {
            Ok(Some(Purchase::Completed { number })) => {
                self.finish_order(row, &conn, number).await?;
                Ok(OrderStatus::Completed)
            }
            Ok(Some(Purchase::Pending { order_id })) => {
                self.set_order(row, OrderStatus::Pending, Some(order_id))
                    .await?;
                Ok(OrderStatus::Pending)
            }
            Ok(Some(Purchase::Failed { .. }) | None) => {
                self.set_order(row, OrderStatus::Failed, None).await?;
                Ok(OrderStatus::Failed)
            }
            Err(error) => Err(RegistryError::from_carrier(&error)),
        }
    }

    /// Asks the carrier about one pending purchase of the organization now (an admin's
    /// refresh) and returns the order as it is afterwards. An order that is not pending, or is
    /// being refreshed by another instance, is returned as it is.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; a carrier error (the order stays pending).
    pub async fn refresh_managed_order(
        &self,
        org_id: &str,
        order_id: &str,
    ) -> Result<ManagedOrder> {
        let row = self.order_row(org_id, order_id).await?;
        if row.status == OrderStatus::Pending.as_str() && self.claim_order(&row).await? {
            self.resolve_order(&row).await?;
        }
        self.managed_order(org_id, order_id).await
    }

    /// Releases a managed number at the carrier (audited) and forgets it. Refused for a number
    /// imported from the organization's own account: the gateway never releases those.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Conflict`] for an imported number or one
    /// not yet active; a carrier error (the number is kept, active; or, when the release may
    /// have happened, left `removing` for [`Registry::refresh_managed_orders`]).
    pub async fn release_managed_number(
        &self,
        org_id: &str,
        number_id: &str,
    ) -> Result<ManagedRelease> {
        let row = number::Entity::find_by_id(number_id.to_owned())
            .filter(number::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("number"))?;
        let managed = self.managed_connection_ids(org_id).await?;
        if !managed.contains(&row.connection_id) {
            return Err(RegistryError::Conflict(
                "an imported number is never released at the carrier; remove it instead".into(),
            ));
        }
        if row.status == NumberStatus::Importing.as_str() {
            return Err(RegistryError::Conflict("the number is not active".into()));
        }
        // Mark it `removing` first: calls stop being routed to an agent, and a crash after the
        // release leaves a row that a repeated request finishes.
        let marked = number::Entity::update_many()
            .col_expr(
                number::Column::Status,
                sea_orm::sea_query::Expr::value(NumberStatus::Removing.as_str()),
            )
            .col_expr(
                number::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now()),
            )
            .filter(number::Column::Id.eq(row.id.as_str()))
            .filter(number::Column::Status.eq(row.status.as_str()))
            .exec(&self.db)
            .await?;
        if marked.rows_affected != 1 {
            return Err(RegistryError::Conflict(
                "the number is changing; retry".into(),
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
        let released = self
            .audited(
                &scope,
                "release_number",
                true,
                carrier.release_number(&row.carrier_id),
            )
            .await;
        let already_gone = match released {
            Ok(()) => false,
            Err(CarrierError::NotFound { .. }) => {
                // A single 404 may lie: the number is gone only when a read agrees.
                let e164 = E164::parse(&row.e164).map_err(|_| {
                    RegistryError::Corrupt("a managed number holds an invalid number".into())
                })?;
                match self
                    .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                    .await
                {
                    Err(CarrierError::NotFound { .. }) => true,
                    Ok(_) => {
                        self.put_back(&row).await;
                        return Err(RegistryError::CarrierUnavailable(
                            "the carrier answered 404 for a number it still holds; retry".into(),
                        ));
                    }
                    // Not known either way: left `removing` for the order job.
                    Err(error) => return Err(RegistryError::from_carrier(&error)),
                }
            }
            // The release may have reached the carrier: the number stays `removing`, and once
            // stale the order job reads the account and finishes the release or undoes it.
            Err(error) if outcome_unknown(&error) => {
                tracing::warn!(%error, number = %row.e164, "managed release outcome unknown; left for the order job");
                return Err(RegistryError::from_carrier(&error));
            }
            Err(error) => {
                self.put_back(&row).await;
                return Err(RegistryError::from_carrier(&error));
            }
        };
        self.forget_released(&row).await?;
        Ok(ManagedRelease {
            e164: row.e164,
            already_gone,
        })
    }

    /// Puts a number marked `removing` back as it was (the release did not happen).
    async fn put_back(&self, row: &number::Model) {
        let mut active: number::ActiveModel = row.clone().into();
        active.status = Set(row.status.clone());
        active.updated_at = Set(now());
        if let Err(db) = active.update(&self.db).await {
            tracing::warn!(error = %db, "could not put the number back to active");
        }
    }

    /// Releases left `removing` by a carrier whose answer was lost (or a process that died
    /// after marking the number): once older than
    /// [`crate::RegistryConfig::stale_operation_after`], each is claimed (compare-and-set on
    /// its status and last change) and the carrier is read: a number the account no longer
    /// holds (two reads agreeing) is forgotten, one it still holds is put back `active`. A
    /// carrier that cannot be asked leaves it for the next pass. Returns how many were
    /// resolved.
    async fn reconcile_stuck_releases(&self) -> Result<usize> {
        let stale = chrono::Duration::from_std(self.config.stale_operation_after)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = now().checked_sub_signed(stale).unwrap_or_default();
        let managed: HashSet<String> = managed_account::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|row| row.connection_id)
            .collect();
        if managed.is_empty() {
            return Ok(0);
        }
        let rows = number::Entity::find()
            .filter(number::Column::Status.eq(NumberStatus::Removing.as_str()))
            .filter(number::Column::UpdatedAt.lte(cutoff))
            .filter(number::Column::ConnectionId.is_in(managed))
            .all(&self.db)
            .await?;
        let mut resolved = 0;
        for row in rows {
            // A removal through the intent protocol is recovery's to finish.
            let in_flight = crate::entity::operation::Entity::find()
                .filter(crate::entity::operation::Column::Number.eq(row.e164.as_str()))
                .one(&self.db)
                .await?;
            if in_flight.is_some() {
                continue;
            }
            let at = now();
            let claimed = number::Entity::update_many()
                .col_expr(
                    number::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(at),
                )
                .filter(number::Column::Id.eq(row.id.as_str()))
                .filter(number::Column::Status.eq(NumberStatus::Removing.as_str()))
                .filter(number::Column::UpdatedAt.eq(row.updated_at))
                .exec(&self.db)
                .await?;
            if claimed.rows_affected != 1 {
                continue;
            }
            let mut row = row;
            row.updated_at = at;
            match self.reconcile_release(&row).await {
                Ok(()) => resolved += 1,
                Err(error) => {
                    tracing::warn!(%error, number = %row.e164, "stuck managed release not reconciled yet");
                }
            }
        }
        Ok(resolved)
    }

    /// Reads the carrier for one claimed `removing` managed number and records the answer.
    async fn reconcile_release(&self, row: &number::Model) -> Result<()> {
        let conn = self.connection_row(&row.org_id, &row.connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        let e164 = E164::parse(&row.e164).map_err(|_| {
            RegistryError::Corrupt("a managed number holds an invalid number".into())
        })?;
        let scope = Scope {
            org_id: &row.org_id,
            connection_id: &conn.id,
            number: Some(&row.e164),
            live: true,
        };
        for _ in 0..2 {
            match self
                .audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
                .await
            {
                Err(CarrierError::NotFound { .. }) => {}
                Ok(_) => {
                    // Still held: the release did not happen; the number is active again.
                    number::Entity::update_many()
                        .col_expr(
                            number::Column::Status,
                            sea_orm::sea_query::Expr::value(NumberStatus::Active.as_str()),
                        )
                        .col_expr(
                            number::Column::UpdatedAt,
                            sea_orm::sea_query::Expr::value(now()),
                        )
                        .filter(number::Column::Id.eq(row.id.as_str()))
                        .filter(number::Column::UpdatedAt.eq(row.updated_at))
                        .exec(&self.db)
                        .await?;
                    return Ok(());
                }
                Err(error) => return Err(RegistryError::from_carrier(&error)),
            }
        }
        self.forget_released(row).await
    }

    /// Marks the number's order released and deletes the number, in one transaction.
    async fn forget_released(&self, row: &number::Model) -> Result<()> {
        let txn = self.db.begin().await?;
        managed_order::Entity::update_many()
            .col_expr(
                managed_order::Column::Status,
                sea_orm::sea_query::Expr::value(OrderStatus::Released.as_str()),
            )
            .col_expr(
                managed_order::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now()),
            )
            .filter(managed_order::Column::NumberId.eq(row.id.as_str()))
            .exec(&txn)
            .await?;
        number::Entity::delete_by_id(row.id.clone())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Whether a failed carrier request may still have been carried out (a timeout, a dropped
/// connection, a 5xx, an answer that could not be read): only a read of the account can tell.
fn outcome_unknown(error: &CarrierError) -> bool {
    matches!(
        error,
        CarrierError::Unavailable { .. } | CarrierError::Protocol(_)
    )
}
