//! `/v1/carriers`: the organization's carrier connections (Twilio or Telnyx accounts).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_registry::{
    AccountNumber, Connection, ConnectionStatus, DisconnectReport, NewConnection, NewCredentials,
    TwilioApiKey,
};
use utoipa::{IntoParams, ToSchema};

use super::numbers::RemoveView;
use super::{List, SecretInput};
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Credentials of a carrier account, by provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum CredentialsBody {
    /// A Twilio account: Account SID + Auth Token, optionally an API key for REST calls (the
    /// Auth Token is then used only to check webhook signatures).
    Twilio {
        /// `AC…` Account SID.
        account_sid: String,
        /// The account's Auth Token.
        auth_token: SecretInput,
        /// `SK…` API key SID.
        #[serde(default)]
        api_key_sid: Option<String>,
        /// The API key's secret.
        #[serde(default)]
        api_key_secret: Option<SecretInput>,
        /// Processing region: `us1` (default), `ie1`, `au1`.
        #[serde(default)]
        region: Option<String>,
    },
    /// A Telnyx account.
    Telnyx {
        /// API v2 key.
        api_key: SecretInput,
        /// The account's Ed25519 public key (base64), for webhook signatures.
        public_key: String,
        /// The TeXML application numbers are pointed at in `managed` mode.
        #[serde(default)]
        texml_app_id: Option<String>,
        /// TeXML account SID, for call control.
        #[serde(default)]
        account_sid: Option<String>,
    },
}

impl CredentialsBody {
    fn split(self) -> Result<(NewCredentials, Option<String>, Option<String>), ApiError> {
        Ok(match self {
            Self::Twilio {
                account_sid,
                auth_token,
                api_key_sid,
                api_key_secret,
                region,
            } => {
                let api_key = match (api_key_sid, api_key_secret) {
                    (Some(sid), Some(secret)) => Some(TwilioApiKey {
                        sid,
                        secret: secret.0,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(ApiError::invalid_request(
                            "api_key_sid and api_key_secret go together",
                        ));
                    }
                };
                (
                    NewCredentials::Twilio {
                        account_sid,
                        auth_token: auth_token.0,
                        api_key,
                    },
                    None,
                    region,
                )
            }
            Self::Telnyx {
                api_key,
                public_key,
                texml_app_id,
                account_sid,
            } => (
                NewCredentials::Telnyx {
                    api_key: api_key.0,
                    public_key,
                    account_sid,
                },
                texml_app_id,
                None,
            ),
        })
    }
}

/// A request to connect a carrier account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectBody {
    /// A name, unique in the organization.
    pub name: String,
    /// The credentials; verified with one read-only call before anything is stored.
    #[serde(flatten)]
    pub credentials: CredentialsBody,
}

/// A request to rotate a connection's credentials.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RotateBody {
    /// The new credentials, for the same provider.
    #[serde(flatten)]
    pub credentials: CredentialsBody,
}

/// A carrier connection: identifiers, never secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `twilio` or `telnyx`.
    pub provider: String,
    /// Twilio Account SID or Telnyx account id.
    pub account_id: String,
    /// Telnyx TeXML application id.
    pub texml_app_id: Option<String>,
    /// Twilio region.
    pub region: Option<String>,
    /// Twilio API key SID, when REST calls use one.
    pub api_key_sid: Option<String>,
    /// Telnyx public key.
    pub public_key: Option<String>,
    /// `active`, or `degraded` when the carrier refused the stored credentials: rotate them.
    pub status: String,
    /// While a rotation's grace period runs: when the previous token stops verifying webhooks.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// How many numbers are imported through it (in single-connection answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_count: Option<u64>,
    /// When it was connected.
    pub created_at: DateTime<Utc>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id,
            name: c.name,
            provider: c.provider.as_str().to_owned(),
            account_id: c.account_id,
            texml_app_id: c.texml_app_id,
            region: c.region,
            api_key_sid: c.api_key_sid,
            public_key: c.public_key,
            status: match c.status {
                ConnectionStatus::Degraded => "degraded",
                _ => "active",
            }
            .to_owned(),
            previous_secret_expires_at: c.previous_secret_expires_at,
            number_count: None,
            created_at: c.created_at,
        }
    }
}

/// A number of the carrier account, for the import picker.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountNumberView {
    /// The number, E.164.
    pub e164: String,
    /// The carrier's id.
    pub carrier_id: String,
    /// The carrier's friendly name.
    pub friendly_name: Option<String>,
    /// Whether it can take voice calls.
    pub voice_capable: bool,
    /// Whether it is already imported (by any organization).
    pub already_imported: bool,
}

impl From<AccountNumber> for AccountNumberView {
    fn from(n: AccountNumber) -> Self {
        Self {
            e164: n.e164,
            carrier_id: n.carrier_id,
            friendly_name: n.friendly_name,
            voice_capable: n.voice_capable,
            already_imported: n.already_imported,
        }
    }
}

/// Options of the account-numbers listing.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AccountNumbersQuery {
    /// Also list numbers that cannot take voice calls.
    #[serde(default)]
    pub include_non_voice: bool,
    /// The `next_cursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One page of the carrier account's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountNumbersPage {
    /// The numbers of this page (at most one carrier page; possibly none when the carrier's
    /// page held only numbers filtered out).
    pub data: Vec<AccountNumberView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Options of a disconnection.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DisconnectQuery {
    /// `true` to disconnect; otherwise only report what would be removed.
    #[serde(default)]
    pub confirm: bool,
}

/// What a disconnection removes (or removed).
#[derive(Debug, Serialize, ToSchema)]
pub struct DisconnectView {
    /// How many numbers it removes.
    pub numbers: usize,
    /// Whether the connection and its credentials were deleted (false for a preview).
    pub deleted: bool,
    /// One entry a removed number.
    pub removed: Vec<RemoveView>,
}

impl From<DisconnectReport> for DisconnectView {
    fn from(r: DisconnectReport) -> Self {
        Self {
            numbers: r.numbers,
            deleted: r.deleted,
            removed: r.removed.into_iter().map(Into::into).collect(),
        }
    }
}

/// Connect a carrier account.
#[utoipa::path(post, path = "/v1/carriers", tag = "carriers", request_body = ConnectBody,
    security(("api_key" = [])),
    responses((status = 201, body = ConnectionView),
        (status = 400, body = ErrorBody), (status = 422, description = "provider_verification_failed", body = ErrorBody),
        (status = 502, description = "carrier_unavailable", body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    org: Org,
    ApiJson(body): ApiJson<ConnectBody>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let (credentials, texml_app_id, region) = body.credentials.split()?;
    let new = NewConnection {
        name: body.name,
        credentials,
        texml_app_id,
        region,
    };
    let connection = state.registry().connect_carrier(&org.id, new).await?;
    Ok((StatusCode::CREATED, Json(connection.into())))
}

/// List the organization's carrier connections.
#[utoipa::path(get, path = "/v1/carriers", tag = "carriers", security(("api_key" = [])),
    responses((status = 200, body = List<ConnectionView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    org: Org,
) -> Result<Json<List<ConnectionView>>, ApiError> {
    let connections = state.registry().list_connections(&org.id).await?;
    Ok(Json(List {
        data: connections.into_iter().map(Into::into).collect(),
    }))
}

/// Get one connection, with the count of its numbers.
#[utoipa::path(get, path = "/v1/carriers/{id}", tag = "carriers", security(("api_key" = [])),
    params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    let registry = state.registry();
    let connection = registry.connection(&org.id, &id).await?;
    let count = registry.count_numbers_of_connection(&org.id, &id).await?;
    let mut view = ConnectionView::from(connection);
    view.number_count = Some(count);
    Ok(Json(view))
}

/// Rotate a connection's credentials. Webhooks signed with the previous token keep verifying
/// for the configured grace period; a `degraded` connection becomes `active` again.
#[utoipa::path(post, path = "/v1/carriers/{id}/credentials", tag = "carriers",
    request_body = RotateBody, security(("api_key" = [])),
    params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody),
        (status = 422, description = "provider_verification_failed", body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<Json<ConnectionView>, ApiError> {
    let (credentials, _, _) = body.credentials.split()?;
    refuse_managed(&state, &org.id, &id).await?;
    let connection = state
        .registry()
        .rotate_credentials(&org.id, &id, credentials)
        .await?;
    Ok(Json(connection.into()))
}

/// Disconnect a carrier: without `confirm=true` only reports how many numbers it would remove;
/// with it, removes them all (restoring what `managed` mode changed) and deletes the credentials.
#[utoipa::path(delete, path = "/v1/carriers/{id}", tag = "carriers", security(("api_key" = [])),
    params(("id" = String, Path, description = "connection id"), DisconnectQuery),
    responses((status = 200, body = DisconnectView), (status = 404, body = ErrorBody)))]
pub async fn disconnect(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DisconnectQuery>,
) -> Result<Json<DisconnectView>, ApiError> {
    refuse_managed(&state, &org.id, &id).await?;
    let report = state
        .registry()
        .disconnect_carrier(&org.id, &id, query.confirm)
        .await?;
    Ok(Json(report.into()))
}

/// The carrier account's numbers, for the import picker: voice-capable only unless asked,
/// each marked when already imported. One carrier page per request, so accounts of any size
/// are listed in bounded memory: follow `next_cursor` until it is `null`.
#[utoipa::path(get, path = "/v1/carriers/{id}/available-numbers", tag = "carriers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "connection id"), AccountNumbersQuery),
    responses((status = 200, body = AccountNumbersPage),
        (status = 400, body = ErrorBody, description = "`invalid_request`: a cursor this listing did not hand out"),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn available_numbers(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AccountNumbersQuery>,
) -> Result<Json<AccountNumbersPage>, ApiError> {
    let page = state
        .registry()
        .list_account_numbers_page(
            &org.id,
            &id,
            query.include_non_voice,
            query.cursor.as_deref(),
        )
        .await?;
    Ok(Json(AccountNumbersPage {
        data: page.numbers.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The connection holding the organization's managed numbers belongs to the platform's account:
/// its credentials are the platform's, and dropping it would leave bought numbers unreleased.
async fn refuse_managed(state: &AppState, org_id: &str, id: &str) -> Result<(), ApiError> {
    if state
        .registry()
        .managed_connection_ids(org_id)
        .await?
        .contains(id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this connection holds managed numbers: release them with DELETE /v1/managed/numbers/{id}",
        ));
    }
    Ok(())
}
