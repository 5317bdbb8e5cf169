//! Call forwarding: an organization keeps its business number at any provider and forwards it
//! to one of its gateway numbers (imported or managed). It registers the business number on
//! that target number, optionally with its own agent; an inbound call whose carrier says it was
//! forwarded from a registered business number is routed by the business number's settings and
//! recorded with it (`forwarded_calls`, keyed like `call_records` by provider and call id).
//!
//! A business number is registered per target number: the same business number may be
//! registered by two organizations on their own numbers without either seeing the other, since a
//! forwarded call is matched only among the registrations of the number it arrived on.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use telephony_carrier::{E164, Provider};

use crate::error::{RegistryError, Result};
use crate::registry::{Registry, new_id, now};

pub(crate) mod forwarded_number {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forwarded_numbers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub number_id: String,
        pub business_number: String,
        pub nickname: Option<String>,
        pub agent_id: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod forwarded_call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forwarded_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub carrier_call_id: String,
        pub org_id: String,
        pub number_id: String,
        pub business_number: String,
        pub forwarded_number_id: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// A request to register a business number forwarded to one of the organization's numbers.
#[derive(Debug, Clone)]
pub struct NewForwardedNumber {
    /// The business number, E.164 (at any provider).
    pub business_number: String,
    /// The admin's name for it.
    pub nickname: Option<String>,
    /// The agent its forwarded calls go to; the target number's agent when absent.
    pub agent_id: Option<String>,
}

/// A business number forwarded to a number of the organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardedNumber {
    /// Its id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// The gateway number calls are forwarded to.
    pub number_id: String,
    /// The business number, E.164.
    pub business_number: String,
    /// The admin's name for it.
    pub nickname: Option<String>,
    /// The agent its calls go to (the target number's agent when absent).
    pub agent_id: Option<String>,
    /// When it was registered.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An inbound call that arrived forwarded from a business number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardedCall {
    /// Which carrier.
    pub provider: Provider,
    /// The carrier's call id.
    pub carrier_call_id: String,
    /// The organization.
    pub org_id: String,
    /// The gateway number the call arrived on.
    pub number_id: String,
    /// The business number the caller dialled (the carrier's `ForwardedFrom`).
    pub business_number: String,
    /// The registration that routed it, when the business number is registered.
    pub forwarded_number_id: Option<String>,
    /// When the call was seen.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn forwarded_from_row(row: forwarded_number::Model) -> ForwardedNumber {
    ForwardedNumber {
        id: row.id,
        org_id: row.org_id,
        number_id: row.number_id,
        business_number: row.business_number,
        nickname: row.nickname,
        agent_id: row.agent_id,
        created_at: row.created_at,
    }
}

fn call_from_row(row: forwarded_call::Model) -> Result<ForwardedCall> {
    let provider = match row.provider.as_str() {
        "twilio" => Provider::Twilio,
        "telnyx" => Provider::Telnyx,
        other => {
            return Err(RegistryError::Corrupt(format!(
                "unknown provider {other:?}"
            )));
        }
    };
    Ok(ForwardedCall {
        provider,
        carrier_call_id: row.carrier_call_id,
        org_id: row.org_id,
        number_id: row.number_id,
        business_number: row.business_number,
        forwarded_number_id: row.forwarded_number_id,
        created_at: row.created_at,
    })
}

impl Registry {
    /// Registers a business number as forwarded to one of the organization's numbers.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown number or agent of the organization;
    /// [`RegistryError::InvalidPhoneNumber`] for a business number that is not E.164;
    /// [`RegistryError::InvalidRequest`] when it is the target number itself;
    /// [`RegistryError::Conflict`] when it is already registered on that number.
    pub async fn add_forwarded_number(
        &self,
        org_id: &str,
        number_id: &str,
        new: NewForwardedNumber,
    ) -> Result<ForwardedNumber> {
        let target = self.number(org_id, number_id).await?;
        let business = E164::parse(new.business_number.trim())
            .map_err(|_| RegistryError::InvalidPhoneNumber)?;
        if business.as_str() == target.e164 {
            return Err(RegistryError::InvalidRequest(
                "a number cannot be forwarded to itself".into(),
            ));
        }
        if let Some(agent_id) = &new.agent_id {
            self.agent(org_id, agent_id).await?;
        }
        let nickname = new
            .nickname
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        let row = forwarded_number::ActiveModel {
            id: Set(new_id()),
            org_id: Set(org_id.to_owned()),
            number_id: Set(target.id),
            business_number: Set(business.as_str().to_owned()),
            nickname: Set(nickname),
            agent_id: Set(new.agent_id),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await
        .map_err(|error| {
            if crate::calls::is_unique_violation(&error) {
                RegistryError::Conflict(
                    "this business number is already forwarded to the number".into(),
                )
            } else {
                error.into()
            }
        })?;
        Ok(forwarded_from_row(row))
    }

    /// The organization's forwarded business numbers, of one target number or of all.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_forwarded_numbers(
        &self,
        org_id: &str,
        number_id: Option<&str>,
    ) -> Result<Vec<ForwardedNumber>> {
        let mut query =
            forwarded_number::Entity::find().filter(forwarded_number::Column::OrgId.eq(org_id));
        if let Some(number_id) = number_id {
            query = query.filter(forwarded_number::Column::NumberId.eq(number_id));
        }
        Ok(query
            .order_by_asc(forwarded_number::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(forwarded_from_row)
            .collect())
    }

    /// Unregisters a forwarded business number (nothing changes at any carrier: the forward
    /// itself is set at the business number's provider).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub async fn remove_forwarded_number(&self, org_id: &str, forwarded_id: &str) -> Result<()> {
        let deleted = forwarded_number::Entity::delete_many()
            .filter(forwarded_number::Column::Id.eq(forwarded_id))
            .filter(forwarded_number::Column::OrgId.eq(org_id))
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(RegistryError::NotFound("forwarded number"));
        }
        Ok(())
    }

    /// The registration of `business_number` on the number `number_id`, for the inbound path.
    /// A business number that is not E.164 is simply not registered.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn forwarded_number_for(
        &self,
        number_id: &str,
        business_number: &str,
    ) -> Result<Option<ForwardedNumber>> {
        let Ok(business) = E164::parse(business_number.trim()) else {
            return Ok(None);
        };
        Ok(forwarded_number::Entity::find()
            .filter(forwarded_number::Column::NumberId.eq(number_id))
            .filter(forwarded_number::Column::BusinessNumber.eq(business.as_str()))
            .one(&self.db)
            .await?
            .map(forwarded_from_row))
    }

    /// Records that a call arrived forwarded from a business number. Insert-if-absent: a
    /// retried webhook records the call once.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn record_forwarded_call(&self, call: &ForwardedCall) -> Result<()> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        let inserted = forwarded_call::ActiveModel {
            provider: Set(call.provider.as_str().to_owned()),
            carrier_call_id: Set(call.carrier_call_id.clone()),
            org_id: Set(call.org_id.clone()),
            number_id: Set(call.number_id.clone()),
            business_number: Set(call.business_number.clone()),
            forwarded_number_id: Set(call.forwarded_number_id.clone()),
            created_at: Set(call.created_at),
        }
        .insert(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if crate::calls::is_unique_violation(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The forwarding record of one call, if it arrived forwarded.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn forwarded_call(
        &self,
        provider: Provider,
        carrier_call_id: &str,
    ) -> Result<Option<ForwardedCall>> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        forwarded_call::Entity::find_by_id((
            provider.as_str().to_owned(),
            carrier_call_id.to_owned(),
        ))
        .one(&self.db)
        .await?
        .map(call_from_row)
        .transpose()
    }

    /// The organization's forwarded calls, newest first.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn list_forwarded_calls(
        &self,
        org_id: &str,
        limit: u64,
    ) -> Result<Vec<ForwardedCall>> {
        // Calls this registry answered before their write: see `answer_inbound_call`.
        self.inbound_writer.settle().await;
        use sea_orm::QuerySelect;
        forwarded_call::Entity::find()
            .filter(forwarded_call::Column::OrgId.eq(org_id))
            .order_by_desc(forwarded_call::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(call_from_row)
            .collect()
    }
}
