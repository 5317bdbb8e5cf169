//! `/v1/numbers`: imported numbers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use telephony_registry::{
    Applied, Check, Diagnostics, ImportRequest, Number, NumberStatus, PlannedChange, RemoveReport,
    Restore, WebhookMode,
};
use utoipa::ToSchema;

use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// How the gateway treats the number's voice configuration at the carrier.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The gateway changes nothing at the carrier (the default).
    #[default]
    OutboundOnly,
    /// The gateway points the number's voice webhook at itself, saving what was there.
    Managed,
}

impl From<Mode> for WebhookMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::OutboundOnly => Self::OutboundOnly,
            Mode::Managed => Self::Managed,
        }
    }
}

impl From<WebhookMode> for Mode {
    fn from(mode: WebhookMode) -> Self {
        match mode {
            WebhookMode::Managed => Self::Managed,
            _ => Self::OutboundOnly,
        }
    }
}

/// A request to import a number of a connected carrier account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The connection whose account owns the number.
    pub connection_id: String,
    /// The number, E.164 (`+14155550100`).
    pub e164: String,
    /// A nickname.
    #[serde(default)]
    pub nickname: Option<String>,
    /// An agent to assign at once.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// `outbound_only` (default) or `managed`.
    #[serde(default)]
    pub mode: Mode,
    /// Only report the carrier-side changes; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Changes to a number; absent fields are left as they are, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The agent to route to (`null` unassigns).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub agent_id: Option<Option<String>>,
    /// The nickname (`null` clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
    /// Switch the webhook mode (to `outbound_only` restores the saved voice configuration).
    #[serde(default)]
    pub webhook_mode: Option<Mode>,
    /// With `webhook_mode`: only report the carrier-side changes.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many simultaneous calls on the number, whatever their agent (at least 1;
    /// `null` removes the limit). A call beyond it goes to the agent's fallback number, else
    /// hears a busy message.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub max_concurrent_calls: Option<Option<u32>>,
}

/// Tells "absent" (outer `None`, via `default`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An imported number.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberView {
    /// Its id.
    pub id: String,
    /// The number, E.164.
    pub e164: String,
    /// How it came to the organization: `imported` (BYOC) or `managed` (bought in the
    /// platform's account). Business numbers forwarded to it are listed by
    /// `/v1/forwarded-numbers`.
    pub path: &'static str,
    /// The connection it belongs to.
    pub connection_id: String,
    /// The carrier's id of the number.
    pub carrier_id: String,
    /// Nickname.
    pub nickname: Option<String>,
    /// The agent inbound calls go to.
    pub agent_id: Option<String>,
    /// `outbound_only` or `managed`.
    pub webhook_mode: Mode,
    /// `importing`, `active` or `removing`.
    pub status: &'static str,
    /// The voice configuration saved before the gateway changed it (managed mode).
    #[schema(value_type = Option<Object>)]
    pub saved_inbound: Option<serde_json::Value>,
    /// When the last call on it was seen, to within a minute.
    pub last_call_at: Option<DateTime<Utc>>,
    /// At most this many simultaneous calls on the number (`null`: no limit).
    pub max_concurrent_calls: Option<u32>,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
}

impl From<Number> for NumberView {
    fn from(n: Number) -> Self {
        Self {
            id: n.id,
            e164: n.e164,
            path: "imported",
            connection_id: n.connection_id,
            carrier_id: n.carrier_id,
            nickname: n.nickname,
            agent_id: n.agent_id,
            webhook_mode: n.webhook_mode.into(),
            status: match n.status {
                NumberStatus::Importing => "importing",
                NumberStatus::Removing => "removing",
                _ => "active",
            },
            saved_inbound: n.saved_inbound.and_then(|c| serde_json::to_value(c).ok()),
            last_call_at: n.last_call_at,
            max_concurrent_calls: n.max_concurrent_calls,
            created_at: n.created_at,
        }
    }
}

/// One carrier-side change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// The number.
    pub e164: String,
    /// Its voice configuration now.
    #[schema(value_type = Object)]
    pub from: serde_json::Value,
    /// Its voice configuration after the change.
    #[schema(value_type = Object)]
    pub to: serde_json::Value,
}

impl From<PlannedChange> for ChangeView {
    fn from(c: PlannedChange) -> Self {
        Self {
            e164: c.e164,
            from: serde_json::to_value(c.from).unwrap_or_default(),
            to: serde_json::to_value(c.to).unwrap_or_default(),
        }
    }
}

/// The answer to an import or a mode switch.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedView {
    /// `true` when nothing was changed (a dry run).
    pub dry_run: bool,
    /// The number as it is now (absent for a dry run).
    pub number: Option<NumberView>,
    /// The carrier-side changes made, or that would be made.
    pub changes: Vec<ChangeView>,
}

impl From<Applied> for AppliedView {
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Done { number, changes } => Self {
                dry_run: false,
                number: Some(number.into()),
                changes: changes.into_iter().map(Into::into).collect(),
            },
            Applied::DryRun { changes } => Self {
                dry_run: true,
                number: None,
                changes: changes.into_iter().map(Into::into).collect(),
            },
        }
    }
}

/// What removing a number did at the carrier.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoveView {
    /// The number.
    pub e164: String,
    /// `nothing_to_restore`, `restored`, `left_as_repointed` or `number_gone`.
    pub restore: &'static str,
    /// For `left_as_repointed`: what the carrier holds now, left alone.
    #[schema(value_type = Option<Object>)]
    pub current: Option<serde_json::Value>,
}

impl From<RemoveReport> for RemoveView {
    fn from(r: RemoveReport) -> Self {
        let (restore, current) = match r.restore {
            Restore::NothingToRestore => ("nothing_to_restore", None),
            Restore::Restored => ("restored", None),
            Restore::LeftAsRepointed { current } => {
                ("left_as_repointed", serde_json::to_value(current).ok())
            }
            _ => ("number_gone", None),
        };
        Self {
            e164: r.e164,
            restore,
            current,
        }
    }
}

/// One diagnostic check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// A number's troubleshooting checklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosticsView {
    /// The number.
    pub e164: String,
    /// Whether every check passed.
    pub healthy: bool,
    /// The checks, in order.
    pub checks: Vec<CheckView>,
    /// The last call seen, to within a minute.
    pub last_call_at: Option<DateTime<Utc>>,
}

impl From<Diagnostics> for DiagnosticsView {
    fn from(d: Diagnostics) -> Self {
        Self {
            healthy: d.healthy(),
            e164: d.e164,
            checks: d
                .checks
                .into_iter()
                .map(|Check { name, ok, detail }| CheckView {
                    name: name.to_owned(),
                    ok,
                    detail,
                })
                .collect(),
            last_call_at: d.last_call_at,
        }
    }
}

/// Import a number from a connected carrier account (`dry_run` reports the carrier-side changes).
#[utoipa::path(post, path = "/v1/numbers/import", tag = "numbers", request_body = ImportBody,
    security(("api_key" = [])),
    responses((status = 201, body = AppliedView), (status = 200, description = "dry run", body = AppliedView),
        (status = 400, description = "invalid_phone_number", body = ErrorBody),
        (status = 409, description = "number_already_imported", body = ErrorBody),
        (status = 422, description = "number_not_in_account, number_not_voice_capable", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    org: Org,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<AppliedView>), ApiError> {
    let request = ImportRequest {
        connection_id: body.connection_id,
        e164: body.e164,
        nickname: body.nickname,
        agent_id: body.agent_id,
        mode: body.mode.into(),
        dry_run: body.dry_run,
    };
    let applied = state.registry().import_number(&org.id, request).await?;
    let status = if matches!(applied, Applied::DryRun { .. }) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(applied.into())))
}

/// Paging of the organization's numbers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct NumbersQuery {
    /// At most this many numbers (1 to 1000, default 100).
    #[serde(default)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A page of the organization's numbers, in a stable order (oldest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct NumbersPage {
    /// The numbers.
    pub data: Vec<NumberView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// List the organization's numbers, a page at a time.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", security(("api_key" = [])),
    params(NumbersQuery),
    responses((status = 200, body = NumbersPage),
        (status = 400, body = ErrorBody, description = "`invalid_request`: a limit out of range"),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    org: Org,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<NumbersQuery>,
) -> Result<Json<NumbersPage>, ApiError> {
    let (numbers, next_cursor) = state
        .registry()
        .list_numbers_page(&org.id, query.limit.unwrap_or(100), query.cursor.as_deref())
        .await?;
    let managed = state.registry().managed_connection_ids(&org.id).await?;
    Ok(Json(NumbersPage {
        data: numbers
            .into_iter()
            .map(|n| {
                let path = if managed.contains(&n.connection_id) {
                    "managed"
                } else {
                    "imported"
                };
                let mut view = NumberView::from(n);
                view.path = path;
                view
            })
            .collect(),
        next_cursor,
    }))
}

/// Get one number.
#[utoipa::path(get, path = "/v1/numbers/{id}", tag = "numbers", security(("api_key" = [])),
    params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NumberView>, ApiError> {
    let number = state.registry().number(&org.id, &id).await?;
    let path = state.registry().number_path(&number).await?.as_str();
    let mut view = NumberView::from(number);
    view.path = path;
    Ok(Json(view))
}

/// Change a number's agent, nickname, webhook mode or limit of concurrent calls.
#[utoipa::path(patch, path = "/v1/numbers/{id}", tag = "numbers", request_body = UpdateBody,
    security(("api_key" = [])), params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = AppliedView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<AppliedView>, ApiError> {
    let registry = state.registry();
    // Check every reference first, so a bad agent id changes nothing.
    let number = registry.number(&org.id, &id).await?;
    // A managed (platform-purchased) number always points at the gateway: nobody else holds
    // its configuration, so `outbound_only` would leave it answering nothing.
    if matches!(body.webhook_mode, Some(Mode::OutboundOnly))
        && registry.number_path(&number).await? == telephony_registry::NumberPath::Managed
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "managed_number_mode_fixed",
            "a managed number always points at the gateway; its webhook mode cannot change",
        ));
    }
    if let Some(Some(agent_id)) = &body.agent_id {
        registry.agent(&org.id, agent_id).await?;
    }
    if body.max_concurrent_calls == Some(Some(0)) {
        return Err(ApiError::invalid_request(
            "max_concurrent_calls is at least 1 (null removes the limit)",
        ));
    }
    if body.dry_run {
        let Some(mode) = body.webhook_mode else {
            return Err(ApiError::invalid_request(
                "dry_run applies to a webhook_mode change",
            ));
        };
        let applied = registry
            .set_webhook_mode(&org.id, &id, mode.into(), true)
            .await?;
        return Ok(Json(applied.into()));
    }
    let changes = match body.webhook_mode {
        Some(mode) => match registry
            .set_webhook_mode(&org.id, &id, mode.into(), false)
            .await?
        {
            Applied::Done { changes, .. } | Applied::DryRun { changes } => changes,
        },
        None => Vec::new(),
    };
    if let Some(agent_id) = &body.agent_id {
        registry
            .assign_agent(&org.id, &id, agent_id.as_deref())
            .await?;
    }
    if let Some(nickname) = &body.nickname {
        registry
            .rename_number(&org.id, &id, nickname.as_deref())
            .await?;
    }
    if let Some(limit) = body.max_concurrent_calls {
        registry.set_number_call_limit(&org.id, &id, limit).await?;
    }
    let number = registry.number(&org.id, &id).await?;
    Ok(Json(Applied::Done { number, changes }.into()))
}

/// Remove a number: restores what `managed` mode changed (unless someone repointed it since);
/// never releases the number at the carrier.
#[utoipa::path(delete, path = "/v1/numbers/{id}", tag = "numbers", security(("api_key" = [])),
    params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = RemoveView), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RemoveView>, ApiError> {
    // A managed number would stay bought (and billed) with nobody holding it: it is released
    // explicitly, with `DELETE /v1/managed/numbers/{id}`.
    let number = state.registry().number(&org.id, &id).await?;
    if state.registry().number_path(&number).await? == telephony_registry::NumberPath::Managed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a managed number is released with DELETE /v1/managed/numbers/{id}",
        ));
    }
    Ok(Json(
        state.registry().remove_number(&org.id, &id).await?.into(),
    ))
}

/// Run the troubleshooting checklist of a number.
#[utoipa::path(get, path = "/v1/numbers/{id}/diagnostics", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = DiagnosticsView), (status = 404, body = ErrorBody)))]
pub async fn diagnostics(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DiagnosticsView>, ApiError> {
    Ok(Json(
        state.registry().diagnose_number(&org.id, &id).await?.into(),
    ))
}
