//! Organizations and their API keys. Only the SHA-256 of a key is stored: a database leak
//! yields no usable key, and a key is shown once, when it is created.

use base64::Engine as _;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use telephony_vault::SecretString;

use crate::entity::{api_key, organization};
use crate::error::{RegistryError, Result};
use crate::model::{ApiKeyInfo, Organization};
use crate::registry::{Registry, new_id, now};

/// What every API key starts with, so a leaked key is recognisable by secret scanners.
const KEY_PREFIX: &str = "tgk_";

fn hash_key(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn api_key_info(row: api_key::Model) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.id,
        org_id: row.org_id,
        label: row.label,
        prefix: row.prefix,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

impl Registry {
    /// Creates an organization.
    ///
    /// # Errors
    /// [`RegistryError::InvalidRequest`] for an empty name; [`RegistryError::Database`].
    pub async fn create_organization(&self, name: &str) -> Result<Organization> {
        let name = name.trim();
        if name.is_empty() {
            return Err(RegistryError::InvalidRequest(
                "organization name is empty".into(),
            ));
        }
        let row = organization::ActiveModel {
            id: Set(new_id()),
            name: Set(name.to_owned()),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        Ok(Organization {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        })
    }

    /// One organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when there is none with this id.
    pub async fn organization(&self, org_id: &str) -> Result<Organization> {
        let row = organization::Entity::find_by_id(org_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("organization"))?;
        Ok(Organization {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        })
    }

    /// Creates an API key for the organization and returns it: this is the only time the key
    /// is seen, only its hash is stored.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown organization; [`RegistryError::Database`].
    pub async fn create_api_key(
        &self,
        org_id: &str,
        label: &str,
    ) -> Result<(ApiKeyInfo, SecretString)> {
        self.organization(org_id).await?;
        let mut bytes = [0_u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| RegistryError::InvalidRequest("no randomness available".into()))?;
        let key = SecretString::new(format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ));
        let row = api_key::ActiveModel {
            id: Set(new_id()),
            org_id: Set(org_id.to_owned()),
            label: Set(label.trim().to_owned()),
            key_hash: Set(hash_key(key.expose())),
            prefix: Set(key.expose().chars().take(KEY_PREFIX.len() + 6).collect()),
            created_at: Set(now()),
            revoked_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok((api_key_info(row), key))
    }

    /// The organization an API key belongs to.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`] for an unknown or revoked key.
    pub async fn authenticate_api_key(&self, key: &SecretString) -> Result<String> {
        let row = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash_key(key.expose())))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::Unauthorized)?;
        if row.revoked_at.is_some() {
            return Err(RegistryError::Unauthorized);
        }
        Ok(row.org_id)
    }

    /// The organization's API keys, newest first, revoked ones included.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_api_keys(&self, org_id: &str) -> Result<Vec<ApiKeyInfo>> {
        let rows = api_key::Entity::find()
            .filter(api_key::Column::OrgId.eq(org_id))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(api_key_info).collect())
    }

    /// Revokes an API key; it authenticates nothing from now on. Revoking twice is harmless.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when the organization has no such key.
    pub async fn revoke_api_key(&self, org_id: &str, key_id: &str) -> Result<ApiKeyInfo> {
        let row = api_key::Entity::find_by_id(key_id.to_owned())
            .filter(api_key::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("api key"))?;
        if row.revoked_at.is_some() {
            return Ok(api_key_info(row));
        }
        let mut active: api_key::ActiveModel = row.into();
        active.revoked_at = Set(Some(now()));
        Ok(api_key_info(active.update(&self.db).await?))
    }
}
