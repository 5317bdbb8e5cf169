//! Carrier connections: connecting an account (credentials verified, then stored encrypted),
//! rotating its credentials with a grace period for webhook signatures, credential health,
//! master-key rewrapping, and disconnecting.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use telephony_carrier::{
    Carrier, CarrierCredentials, CarrierError, Provider, TelnyxCredentials, TwilioAuth,
    TwilioCredentials,
};
use telephony_vault::Aad;

use crate::entity::{connection, number};
use crate::error::{RegistryError, Result};
use crate::model::{
    Connection, ConnectionStatus, DisconnectReport, NewConnection, NewCredentials, WebhookSecrets,
};
use crate::registry::{
    FIELD_API_KEY_SECRET, FIELD_AUTH, FIELD_PREVIOUS_AUTH, Registry, Scope, new_id, now,
    provider_of,
};

pub(crate) fn connection_from_row(row: &connection::Model) -> Result<Connection> {
    Ok(Connection {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        name: row.name.clone(),
        provider: provider_of(row)?,
        account_id: row.account_id.clone(),
        texml_app_id: row.texml_app_id.clone(),
        region: row.region.clone(),
        api_key_sid: row.api_key_sid.clone(),
        public_key: row.public_key.clone(),
        status: ConnectionStatus::parse(&row.status)?,
        previous_secret_expires_at: row.previous_auth_expires_at,
        created_at: row.created_at,
    })
}

/// The credentials as the carrier client takes them, before anything is stored.
fn client_credentials(credentials: &NewCredentials) -> Result<CarrierCredentials> {
    match credentials {
        NewCredentials::Twilio {
            account_sid,
            auth_token,
            api_key,
        } => {
            if !account_sid.starts_with("AC") || account_sid.len() != 34 {
                return Err(RegistryError::InvalidRequest(
                    "a twilio account sid is AC followed by 32 hex characters".into(),
                ));
            }
            if auth_token.is_empty() {
                return Err(RegistryError::InvalidRequest(
                    "the twilio auth token is empty".into(),
                ));
            }
            let auth = match api_key {
                Some(key) => {
                    if !key.sid.starts_with("SK") || key.secret.is_empty() {
                        return Err(RegistryError::InvalidRequest(
                            "a twilio api key is an SK sid and a secret".into(),
                        ));
                    }
                    TwilioAuth::ApiKey {
                        key_sid: key.sid.clone(),
                        secret: key.secret.clone(),
                    }
                }
                None => TwilioAuth::AuthToken(auth_token.clone()),
            };
            Ok(CarrierCredentials::Twilio(TwilioCredentials {
                account_sid: account_sid.clone(),
                auth,
            }))
        }
        NewCredentials::Telnyx {
            api_key,
            public_key,
            account_sid,
        } => {
            if api_key.is_empty() {
                return Err(RegistryError::InvalidRequest(
                    "the telnyx api key is empty".into(),
                ));
            }
            if public_key.trim().is_empty() {
                return Err(RegistryError::InvalidRequest(
                    "the telnyx public key is empty".into(),
                ));
            }
            let mut creds = TelnyxCredentials::new(api_key.clone());
            creds.account_sid = account_sid.clone();
            Ok(CarrierCredentials::Telnyx(creds))
        }
    }
}

fn verification_error(error: &CarrierError) -> RegistryError {
    match error {
        // The account exists but suspended or closed is refused the same way.
        CarrierError::InvalidCredentials | CarrierError::NotFound { .. } => {
            RegistryError::ProviderVerificationFailed
        }
        other => RegistryError::from_carrier(other),
    }
}

/// The encrypted columns of one set of credentials.
struct Sealed {
    account_id: String,
    auth_secret: String,
    api_key_sid: Option<String>,
    api_key_secret: Option<String>,
    public_key: Option<String>,
}

impl Registry {
    /// Verifies new credentials with one read-only carrier call (audited). Returns the carrier
    /// client and the account id the carrier reports.
    async fn verify_new(
        &self,
        org_id: &str,
        connection_id: &str,
        credentials: &NewCredentials,
        region: Option<&str>,
    ) -> Result<(Arc<dyn Carrier>, String)> {
        // The credentials are checked in the region the connection's calls will use, so a
        // region the gateway cannot reach is refused before anything is stored.
        let carrier = self
            .carriers
            .client_in_region(client_credentials(credentials)?, region)
            .map_err(|e| RegistryError::InvalidRequest(e.to_string()))?;
        let scope = Scope {
            org_id,
            connection_id,
            number: None,
            live: false,
        };
        let account = self
            .audited(
                &scope,
                "verify_credentials",
                false,
                carrier.verify_credentials(),
            )
            .await
            .map_err(|e| verification_error(&e))?;
        if !account.active {
            return Err(RegistryError::ProviderVerificationFailed);
        }
        Ok((carrier, account.account_id))
    }

    fn seal(
        &self,
        org_id: &str,
        connection_id: &str,
        credentials: &NewCredentials,
        reported_account: String,
    ) -> Result<Sealed> {
        let aad = |field| Aad {
            org_id,
            connection_id,
            field,
        };
        Ok(match credentials {
            NewCredentials::Twilio {
                account_sid,
                auth_token,
                api_key,
            } => Sealed {
                account_id: account_sid.clone(),
                auth_secret: self.keyring.encrypt(auth_token, &aad(FIELD_AUTH))?,
                api_key_sid: api_key.as_ref().map(|k| k.sid.clone()),
                api_key_secret: api_key
                    .as_ref()
                    .map(|k| self.keyring.encrypt(&k.secret, &aad(FIELD_API_KEY_SECRET)))
                    .transpose()?,
                public_key: None,
            },
            NewCredentials::Telnyx {
                api_key,
                public_key,
                account_sid,
            } => Sealed {
                account_id: account_sid.clone().unwrap_or(reported_account),
                auth_secret: self.keyring.encrypt(api_key, &aad(FIELD_AUTH))?,
                api_key_sid: None,
                api_key_secret: None,
                public_key: Some(public_key.trim().to_owned()),
            },
        })
    }

    /// Connects a carrier account: verifies the credentials with one read-only call, then
    /// stores them encrypted. Refused credentials are not stored.
    ///
    /// # Errors
    /// [`RegistryError::ProviderVerificationFailed`] when the carrier refuses them;
    /// [`RegistryError::InvalidRequest`] for malformed credentials or a name already used in the
    /// organization; a carrier error when the carrier could not be asked.
    pub async fn connect_carrier(&self, org_id: &str, new: NewConnection) -> Result<Connection> {
        self.organization(org_id).await?;
        let name = new.name.trim().to_owned();
        if name.is_empty() {
            return Err(RegistryError::InvalidRequest(
                "connection name is empty".into(),
            ));
        }
        let id = new_id();
        let (_, reported) = self
            .verify_new(org_id, &id, &new.credentials, new.region.as_deref())
            .await?;
        let sealed = self.seal(org_id, &id, &new.credentials, reported)?;
        let at = now();
        let row = connection::ActiveModel {
            id: Set(id),
            org_id: Set(org_id.to_owned()),
            name: Set(name),
            provider: Set(new.credentials.provider().as_str().to_owned()),
            account_id: Set(sealed.account_id),
            texml_app_id: Set(new.texml_app_id),
            region: Set(new.region),
            api_key_sid: Set(sealed.api_key_sid),
            auth_secret: Set(sealed.auth_secret),
            api_key_secret: Set(sealed.api_key_secret),
            public_key: Set(sealed.public_key),
            previous_public_key: Set(None),
            previous_auth_secret: Set(None),
            previous_auth_expires_at: Set(None),
            status: Set(ConnectionStatus::Active.as_str().to_owned()),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await
        .map_err(|error| {
            if crate::calls::is_unique_violation(&error) {
                RegistryError::Conflict("a connection with this name exists".into())
            } else {
                error.into()
            }
        })?;
        connection_from_row(&row)
    }

    pub(crate) async fn connection_row(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<connection::Model> {
        connection::Entity::find_by_id(connection_id.to_owned())
            .filter(connection::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("connection"))
    }

    /// How many numbers are imported through a connection of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown connection of the organization.
    pub async fn count_numbers_of_connection(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<u64> {
        self.connection_row(org_id, connection_id).await?;
        Ok(number::Entity::find()
            .filter(number::Column::OrgId.eq(org_id))
            .filter(number::Column::ConnectionId.eq(connection_id))
            .count(&self.db)
            .await?)
    }

    /// One connection of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such connection.
    pub async fn connection(&self, org_id: &str, connection_id: &str) -> Result<Connection> {
        connection_from_row(&self.connection_row(org_id, connection_id).await?)
    }

    /// The organization's connections, oldest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>> {
        connection::Entity::find()
            .filter(connection::Column::OrgId.eq(org_id))
            .order_by_asc(connection::Column::CreatedAt)
            .all(&self.db)
            .await?
            .iter()
            .map(connection_from_row)
            .collect()
    }

    /// A carrier client with the connection's credentials, for the service's live-call
    /// actions. Report a carrier failure back with [`Registry::report_carrier_call`].
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Vault`] when the secrets cannot be
    /// decrypted.
    pub async fn carrier_for(&self, org_id: &str, connection_id: &str) -> Result<Arc<dyn Carrier>> {
        let row = self.connection_row(org_id, connection_id).await?;
        self.carrier_of(&row)
    }

    /// Tells the registry how a live carrier call went: a 401 marks the connection `degraded`
    /// (visible to the admin until the credentials are rotated). Writes the audit entry.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn report_carrier_call(
        &self,
        org_id: &str,
        connection_id: &str,
        action: &str,
        number: Option<&str>,
        changed_account: bool,
        error: Option<&CarrierError>,
    ) -> Result<()> {
        let scope = Scope {
            org_id,
            connection_id,
            number,
            live: true,
        };
        let outcome = crate::registry::outcome_of(error);
        self.audit(&scope, action, changed_account && error.is_none(), outcome)
            .await;
        if matches!(error, Some(CarrierError::InvalidCredentials)) {
            self.set_connection_status(connection_id, ConnectionStatus::Degraded)
                .await?;
        }
        Ok(())
    }

    /// Rotates a connection's credentials: verifies the new ones, stores them, and keeps the
    /// previous webhook signing key valid for [`crate::RegistryConfig::rotation_grace`]. Heals a
    /// `degraded` connection; imported numbers are untouched.
    ///
    /// # Errors
    /// [`RegistryError::ProviderVerificationFailed`] when the carrier refuses the new
    /// credentials (the old ones stay); [`RegistryError::InvalidRequest`] when they are for
    /// another provider or another Twilio account.
    pub async fn rotate_credentials(
        &self,
        org_id: &str,
        connection_id: &str,
        credentials: NewCredentials,
    ) -> Result<Connection> {
        let row = self.connection_row(org_id, connection_id).await?;
        if credentials.provider() != provider_of(&row)? {
            return Err(RegistryError::InvalidRequest(
                "the new credentials are for another carrier".into(),
            ));
        }
        if let NewCredentials::Twilio { account_sid, .. } = &credentials
            && *account_sid != row.account_id
        {
            return Err(RegistryError::InvalidRequest(
                "the new credentials are for another account; connect it separately".into(),
            ));
        }
        let (carrier, reported) = self
            .verify_new(org_id, connection_id, &credentials, row.region.as_deref())
            .await?;
        if let NewCredentials::Telnyx { .. } = &credentials {
            self.verify_same_telnyx_account(org_id, connection_id, carrier.as_ref())
                .await?;
        }
        // A Telnyx key alone does not reveal the TeXML account: keep the one already known.
        let reported = if reported.is_empty() {
            row.account_id.clone()
        } else {
            reported
        };
        let sealed = self.seal(org_id, connection_id, &credentials, reported)?;
        // The old signing key moves to the `previous` field; it is re-encrypted because the
        // field name is part of its associated data.
        let aad = |field| Aad {
            org_id,
            connection_id,
            field,
        };
        // Telnyx webhooks verify with the public key only: the old API key is never kept.
        let previous = match provider_of(&row)? {
            Provider::Twilio => {
                let old_auth = self.keyring.decrypt(&row.auth_secret, &aad(FIELD_AUTH))?;
                Some(self.keyring.encrypt(&old_auth, &aad(FIELD_PREVIOUS_AUTH))?)
            }
            Provider::Telnyx => None,
        };
        let grace =
            chrono::Duration::from_std(self.config.rotation_grace).unwrap_or(chrono::Duration::MAX);
        let at = now();
        let old_public = row.public_key.clone();
        let mut active: connection::ActiveModel = row.into();
        active.account_id = Set(sealed.account_id);
        active.auth_secret = Set(sealed.auth_secret);
        active.api_key_sid = Set(sealed.api_key_sid);
        active.api_key_secret = Set(sealed.api_key_secret);
        if sealed.public_key.is_some() {
            active.previous_public_key = Set(old_public);
            active.public_key = Set(sealed.public_key);
        }
        active.previous_auth_secret = Set(previous);
        active.previous_auth_expires_at = Set(Some(at.checked_add_signed(grace).unwrap_or(at)));
        active.status = Set(ConnectionStatus::Active.as_str().to_owned());
        active.updated_at = Set(at);
        connection_from_row(&active.update(&self.db).await?)
    }

    /// A Telnyx key does not always name its account: before a rotation accepts one, it must
    /// see a number imported through the connection (one read-only call, audited). A key of
    /// another account does not see it and is refused; a connection without numbers has
    /// nothing to lose.
    async fn verify_same_telnyx_account(
        &self,
        org_id: &str,
        connection_id: &str,
        carrier: &dyn Carrier,
    ) -> Result<()> {
        let Some(known) = number::Entity::find()
            .filter(number::Column::ConnectionId.eq(connection_id))
            .order_by_asc(number::Column::CreatedAt)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        let e164 = telephony_carrier::E164::parse(&known.e164)
            .map_err(|_| RegistryError::Corrupt("a stored number is not E.164".into()))?;
        let scope = Scope {
            org_id,
            connection_id,
            number: Some(&known.e164),
            live: false,
        };
        self.audited(&scope, "fetch_number", false, carrier.fetch_number(&e164))
            .await
            .map_err(|e| verification_error(&e))?;
        Ok(())
    }

    /// Forgets previous signing keys whose grace period is over (they no longer verify
    /// anything). Run by [`Registry::recover_pending_operations`]. Returns how many
    /// connections were cleaned.
    pub(crate) async fn clear_expired_secrets(&self) -> Result<u64> {
        let cleared = connection::Entity::update_many()
            .col_expr(
                connection::Column::PreviousAuthSecret,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .col_expr(
                connection::Column::PreviousPublicKey,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .col_expr(
                connection::Column::PreviousAuthExpiresAt,
                sea_orm::sea_query::Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .filter(connection::Column::PreviousAuthExpiresAt.lte(now()))
            .exec(&self.db)
            .await?;
        Ok(cleared.rows_affected)
    }

    /// The keys webhooks of this connection verify with: the current one, and the previous one
    /// while a rotation's grace period runs. Takes no organization: webhooks are authenticated
    /// by signature alone and the service finds the connection from the number called.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Vault`].
    pub async fn webhook_secrets(&self, connection_id: &str) -> Result<WebhookSecrets> {
        let row = connection::Entity::find_by_id(connection_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("connection"))?;
        let in_grace = row
            .previous_auth_expires_at
            .is_some_and(|expires| expires > now());
        let aad = |field| Aad {
            org_id: &row.org_id,
            connection_id: &row.id,
            field,
        };
        match provider_of(&row)? {
            Provider::Twilio => {
                let current = self.keyring.decrypt(&row.auth_secret, &aad(FIELD_AUTH))?;
                let previous = match (&row.previous_auth_secret, in_grace) {
                    (Some(sealed), true) => {
                        Some(self.keyring.decrypt(sealed, &aad(FIELD_PREVIOUS_AUTH))?)
                    }
                    _ => None,
                };
                Ok(WebhookSecrets::Twilio {
                    account_sid: row.account_id.clone(),
                    current,
                    previous,
                })
            }
            Provider::Telnyx => Ok(WebhookSecrets::Telnyx {
                current: row.public_key.clone(),
                previous: row
                    .previous_public_key
                    .clone()
                    .filter(|_| in_grace)
                    .filter(|key| Some(key) != row.public_key.as_ref()),
            }),
        }
    }

    /// Re-encrypts every stored secret under the key ring's active master key, row by row.
    /// Safe while serving: each row is rewritten only if its ciphertext did not change in the
    /// meantime (a rotation in between wins), and old ciphertexts keep decrypting until the old
    /// key is removed. Returns how many secrets were rewrapped.
    ///
    /// # Errors
    /// [`RegistryError::Vault`] when a secret cannot be decrypted with any loaded key.
    pub async fn rewrap_all_secrets(&self) -> Result<usize> {
        let mut rewrapped = 0;
        let rows = connection::Entity::find().all(&self.db).await?;
        for row in rows {
            let aad = |field| Aad {
                org_id: &row.org_id,
                connection_id: &row.id,
                field,
            };
            let mut update = connection::Entity::update_many()
                .filter(connection::Column::Id.eq(row.id.as_str()))
                .filter(connection::Column::AuthSecret.eq(row.auth_secret.as_str()));
            let mut changed = 0;
            if !self.keyring.is_current(&row.auth_secret)? {
                update = update.col_expr(
                    connection::Column::AuthSecret,
                    sea_orm::sea_query::Expr::value(
                        self.keyring.rewrap(&row.auth_secret, &aad(FIELD_AUTH))?,
                    ),
                );
                changed += 1;
            }
            if let Some(secret) = &row.api_key_secret
                && !self.keyring.is_current(secret)?
            {
                update = update.col_expr(
                    connection::Column::ApiKeySecret,
                    sea_orm::sea_query::Expr::value(Some(
                        self.keyring.rewrap(secret, &aad(FIELD_API_KEY_SECRET))?,
                    )),
                );
                changed += 1;
            }
            if let Some(secret) = &row.previous_auth_secret
                && !self.keyring.is_current(secret)?
            {
                update = update.col_expr(
                    connection::Column::PreviousAuthSecret,
                    sea_orm::sea_query::Expr::value(Some(
                        self.keyring.rewrap(secret, &aad(FIELD_PREVIOUS_AUTH))?,
                    )),
                );
                changed += 1;
            }
            if changed > 0 && update.exec(&self.db).await?.rows_affected == 1 {
                rewrapped += changed;
            }
        }
        Ok(rewrapped)
    }

    /// Disconnects a carrier. With `confirm` false, only reports how many numbers would be
    /// removed. With `confirm` true, removes every number (restoring the configuration the
    /// gateway changed, see [`Registry::remove_number`]) and then deletes the credentials.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; the first error of a number's removal, after which the
    /// connection and the numbers not yet removed stay (call again to finish).
    pub async fn disconnect_carrier(
        &self,
        org_id: &str,
        connection_id: &str,
        confirm: bool,
    ) -> Result<DisconnectReport> {
        self.connection_row(org_id, connection_id).await?;
        let numbers = number::Entity::find()
            .filter(number::Column::ConnectionId.eq(connection_id))
            .filter(number::Column::OrgId.eq(org_id))
            .order_by_asc(number::Column::CreatedAt)
            .all(&self.db)
            .await?;
        if !confirm {
            return Ok(DisconnectReport {
                numbers: numbers.len(),
                deleted: false,
                removed: Vec::new(),
            });
        }
        let mut removed = Vec::with_capacity(numbers.len());
        for row in &numbers {
            removed.push(self.remove_number(org_id, &row.id).await?);
        }
        connection::Entity::delete_by_id(connection_id.to_owned())
            .exec(&self.db)
            .await
            .map_err(|error| {
                // A number imported meanwhile still references the connection. (SQLite
                // reports a foreign key failing under a trigger with another extended code,
                // hence the message too.)
                if matches!(
                    error.sql_err(),
                    Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
                ) || error.to_string().contains("FOREIGN KEY constraint failed")
                {
                    RegistryError::Conflict(
                        "numbers are being imported through this connection; try again".into(),
                    )
                } else {
                    error.into()
                }
            })?;
        Ok(DisconnectReport {
            numbers: numbers.len(),
            deleted: true,
            removed,
        })
    }
}
