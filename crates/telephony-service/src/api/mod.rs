//! The REST API under `/v1`: what the platform's backend and admin UI call.
//!
//! Every handler authenticates the organization ([`crate::auth::Org`]), calls one registry
//! function and maps the answer to a response type of this module. Response types are the API's
//! own, not the registry's, so the storage model can change without changing the API.

pub mod agents;
pub mod audit;
pub mod calls;
pub mod carriers;
pub mod idempotency;
pub mod managed;
pub mod numbers;
pub mod test_calls;

use std::fmt;

use serde::{Deserialize, Deserializer};
use telephony_vault::SecretString;

/// A credential in a request body: deserialized straight into a [`SecretString`], so no
/// `Debug` print of a request can show it.
#[derive(Clone)]
pub struct SecretInput(pub SecretString);

impl fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for SecretInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(SecretString::new(s)))
    }
}

impl utoipa::PartialSchema for SecretInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Password,
            )))
            .description(Some("A credential. Write-only: never returned by the API."))
            .into()
    }
}

impl utoipa::ToSchema for SecretInput {}

/// A list answer: `{"data": [...]}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct List<T> {
    /// The items.
    pub data: Vec<T>,
}
