//! `/v1/managed/...`: numbers bought in the platform's own carrier account for an organization
//! without a carrier of its own, and `/v1/numbers/{id}/forwarded-from` plus
//! `/v1/forwarded-numbers`: business numbers an organization forwards to one of its numbers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_carrier::{AvailableNumber, AvailableQuery, NumberType, Provider};
use telephony_registry::{ForwardedNumber, ManagedOrder, NewForwardedNumber};
use utoipa::{IntoParams, ToSchema};

use super::List;
use super::numbers::NumberView;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A carrier of the managed path.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderParam {
    /// The platform's Twilio account (a subaccount per organization).
    Twilio,
    /// The platform's Telnyx account.
    Telnyx,
}

impl From<ProviderParam> for Provider {
    fn from(value: ProviderParam) -> Self {
        match value {
            ProviderParam::Twilio => Self::Twilio,
            ProviderParam::Telnyx => Self::Telnyx,
        }
    }
}

/// The kind of number searched for.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TypeParam {
    /// Local (geographic).
    #[default]
    Local,
    /// Mobile.
    Mobile,
    /// Toll-free.
    TollFree,
}

/// A search of the platform's inventory.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// `twilio` or `telnyx`.
    pub provider: ProviderParam,
    /// ISO 3166-1 alpha-2 country code (`US`).
    pub country: String,
    /// Area code (`415`).
    #[serde(default)]
    pub area_code: Option<String>,
    /// `local` (default), `mobile` or `toll_free`.
    #[serde(default, rename = "type")]
    // Inline: a query parameter's enum is not collected into the document's components, so a
    // `$ref` to it would dangle (schemathesis: "Unresolvable reference").
    #[param(inline)]
    pub number_type: TypeParam,
    /// At most this many results (1 to 100, 20 by default).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// What a number can do.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitiesView {
    /// Voice calls.
    pub voice: bool,
    /// SMS.
    pub sms: bool,
    /// MMS.
    pub mms: bool,
    /// Fax.
    pub fax: bool,
}

/// A number for sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableNumberView {
    /// The number, E.164.
    pub e164: String,
    /// What it can do.
    pub capabilities: CapabilitiesView,
    /// Locality or region.
    pub locality: Option<String>,
    /// ISO country code.
    pub country: String,
    /// Monthly cost, a decimal string in `currency`, when the carrier says.
    pub monthly_cost: Option<String>,
    /// ISO 4217 currency of `monthly_cost`.
    pub currency: Option<String>,
}

impl From<AvailableNumber> for AvailableNumberView {
    fn from(n: AvailableNumber) -> Self {
        Self {
            e164: n.e164.into(),
            capabilities: CapabilitiesView {
                voice: n.capabilities.voice,
                sms: n.capabilities.sms,
                mms: n.capabilities.mms,
                fax: n.capabilities.fax,
            },
            locality: n.locality,
            country: n.country,
            monthly_cost: n.monthly_cost,
            currency: n.currency,
        }
    }
}

/// A request to buy a number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyBody {
    /// `twilio` or `telnyx`.
    pub provider: ProviderParam,
    /// The number to buy (from a search), E.164.
    pub e164: String,
}

/// A purchase of a managed number.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Its id (for `GET /v1/managed/orders/{id}` and its refresh).
    pub id: String,
    /// `twilio` or `telnyx`.
    pub provider: &'static str,
    /// The number bought.
    pub e164: String,
    /// `buying`, `pending`, `completed`, `failed` or `released`.
    pub status: &'static str,
    /// The number, once bought.
    pub number_id: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<ManagedOrder> for OrderView {
    fn from(order: ManagedOrder) -> Self {
        Self {
            id: order.id,
            provider: order.provider.as_str(),
            e164: order.e164,
            status: order.status.as_str(),
            number_id: order.number_id,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// The answer to a purchase: the order, and the number when the carrier completed it at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseView {
    /// The order.
    pub order: OrderView,
    /// The number (`path` `managed`), or null while the order is pending.
    pub number: Option<NumberView>,
}

/// What releasing a managed number did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    /// The number released.
    pub e164: String,
    /// Whether the carrier no longer had it.
    pub already_gone: bool,
}

/// Search the platform's carrier inventory (capabilities and monthly cost when the carrier
/// says).
#[utoipa::path(get, path = "/v1/managed/available-numbers", tag = "managed",
    security(("api_key" = [])), params(SearchQuery),
    responses((status = 200, body = List<AvailableNumberView>), (status = 400, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    org: Org,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<List<AvailableNumberView>>, ApiError> {
    let country = query.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ApiError::invalid_request(
            "country is an ISO 3166-1 alpha-2 code such as US",
        ));
    }
    let area_code = query
        .area_code
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    if let Some(area) = &area_code
        && (area.len() > 6 || !area.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::invalid_request("area_code is up to 6 digits"));
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_request("limit is between 1 and 100"));
    }
    let search = AvailableQuery {
        country,
        area_code,
        number_type: match query.number_type {
            TypeParam::Local => NumberType::Local,
            TypeParam::Mobile => NumberType::Mobile,
            TypeParam::TollFree => NumberType::TollFree,
        },
        limit,
    };
    let found = state
        .registry()
        .search_managed_numbers(&org.id, query.provider.into(), &search)
        .await?;
    Ok(Json(List {
        data: found.into_iter().map(Into::into).collect(),
    }))
}

/// Buy a number in the platform's account (on Twilio, in the organization's own subaccount,
/// created on the first purchase). 201 when bought; 202 while the carrier completes the order.
#[utoipa::path(post, path = "/v1/managed/numbers", tag = "managed", request_body = BuyBody,
    security(("api_key" = [])),
    responses((status = 201, body = PurchaseView), (status = 202, description = "pending", body = PurchaseView),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn buy(
    State(state): State<AppState>,
    org: Org,
    ApiJson(body): ApiJson<BuyBody>,
) -> Result<(StatusCode, Json<PurchaseView>), ApiError> {
    let (order, number) = state
        .registry()
        .buy_managed_number(&org.id, body.provider.into(), &body.e164)
        .await?;
    let status = if number.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    let number = number.map(|n| {
        let mut view = NumberView::from(n);
        view.path = "managed";
        view
    });
    Ok((
        status,
        Json(PurchaseView {
            order: order.into(),
            number,
        }),
    ))
}

/// List the organization's managed purchases, newest first.
#[utoipa::path(get, path = "/v1/managed/orders", tag = "managed", security(("api_key" = [])),
    responses((status = 200, body = List<OrderView>), (status = 401, body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<AppState>,
    org: Org,
) -> Result<Json<List<OrderView>>, ApiError> {
    let orders = state.registry().list_managed_orders(&org.id).await?;
    Ok(Json(List {
        data: orders.into_iter().map(Into::into).collect(),
    }))
}

/// Get one managed purchase.
#[utoipa::path(get, path = "/v1/managed/orders/{id}", tag = "managed", security(("api_key" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(
        state.registry().managed_order(&org.id, &id).await?.into(),
    ))
}

/// Ask the carrier about a pending purchase now (the background job also does, periodically).
#[utoipa::path(post, path = "/v1/managed/orders/{id}/refresh", tag = "managed",
    security(("api_key" = [])), params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn refresh_order(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(
        state
            .registry()
            .refresh_managed_order(&org.id, &id)
            .await?
            .into(),
    ))
}

/// Release a managed number at the carrier. An imported number is never released (409).
#[utoipa::path(delete, path = "/v1/managed/numbers/{id}", tag = "managed",
    security(("api_key" = [])), params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = ReleaseView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let released = state
        .registry()
        .release_managed_number(&org.id, &id)
        .await?;
    Ok(Json(ReleaseView {
        e164: released.e164,
        already_gone: released.already_gone,
    }))
}

/// A business number to register as forwarded to a number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    /// The business number (E.164), at any provider.
    pub business_number: String,
    /// A name for it.
    #[serde(default)]
    pub nickname: Option<String>,
    /// The agent its forwarded calls go to (the target number's agent when absent).
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// A business number forwarded to a number of the organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForwardedView {
    /// Its id.
    pub id: String,
    /// Always `forwarded`.
    pub path: &'static str,
    /// The business number.
    pub business_number: String,
    /// The number calls are forwarded to.
    pub target_number_id: String,
    /// That number, E.164, when known.
    pub target_e164: Option<String>,
    /// Its name.
    pub nickname: Option<String>,
    /// The agent its calls go to (the target number's agent when null).
    pub agent_id: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

fn forwarded_view(f: ForwardedNumber, target_e164: Option<String>) -> ForwardedView {
    ForwardedView {
        id: f.id,
        path: "forwarded",
        business_number: f.business_number,
        target_number_id: f.number_id,
        target_e164,
        nickname: f.nickname,
        agent_id: f.agent_id,
        created_at: f.created_at,
    }
}

/// Register a business number as forwarded to this number: its forwarded calls are recognised
/// and routed by its settings.
#[utoipa::path(post, path = "/v1/numbers/{id}/forwarded-from", tag = "numbers",
    request_body = ForwardBody, security(("api_key" = [])),
    params(("id" = String, Path, description = "number id")),
    responses((status = 201, body = ForwardedView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_forwarded(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ForwardBody>,
) -> Result<(StatusCode, Json<ForwardedView>), ApiError> {
    let target = state.registry().number(&org.id, &id).await?;
    let added = state
        .registry()
        .add_forwarded_number(
            &org.id,
            &id,
            NewForwardedNumber {
                business_number: body.business_number,
                nickname: body.nickname,
                agent_id: body.agent_id,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(forwarded_view(added, Some(target.e164))),
    ))
}

/// The business numbers forwarded to this number.
#[utoipa::path(get, path = "/v1/numbers/{id}/forwarded-from", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = List<ForwardedView>), (status = 404, body = ErrorBody)))]
pub async fn list_forwarded_to(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<ForwardedView>>, ApiError> {
    let target = state.registry().number(&org.id, &id).await?;
    let forwarded = state
        .registry()
        .list_forwarded_numbers(&org.id, Some(&id))
        .await?;
    Ok(Json(List {
        data: forwarded
            .into_iter()
            .map(|f| forwarded_view(f, Some(target.e164.clone())))
            .collect(),
    }))
}

/// Unregister a forwarded business number (the forward itself is set at its provider).
#[utoipa::path(delete, path = "/v1/numbers/{id}/forwarded-from/{forwarded_id}", tag = "numbers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "number id"),
        ("forwarded_id" = String, Path, description = "forwarded number id")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
pub async fn remove_forwarded(
    State(state): State<AppState>,
    org: Org,
    ApiPath((id, forwarded_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let registered = state
        .registry()
        .list_forwarded_numbers(&org.id, Some(&id))
        .await?;
    if !registered.iter().any(|f| f.id == forwarded_id) {
        return Err(ApiError::not_found("forwarded number"));
    }
    state
        .registry()
        .remove_forwarded_number(&org.id, &forwarded_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every business number the organization forwards, each with its target number.
#[utoipa::path(get, path = "/v1/forwarded-numbers", tag = "numbers", security(("api_key" = [])),
    responses((status = 200, body = List<ForwardedView>), (status = 401, body = ErrorBody)))]
pub async fn list_forwarded(
    State(state): State<AppState>,
    org: Org,
) -> Result<Json<List<ForwardedView>>, ApiError> {
    let numbers = state.registry().list_numbers(&org.id).await?;
    let forwarded = state
        .registry()
        .list_forwarded_numbers(&org.id, None)
        .await?;
    Ok(Json(List {
        data: forwarded
            .into_iter()
            .map(|f| {
                let target = numbers
                    .iter()
                    .find(|n| n.id == f.number_id)
                    .map(|n| n.e164.clone());
                forwarded_view(f, target)
            })
            .collect(),
    }))
}
