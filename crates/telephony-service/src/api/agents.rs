//! `/v1/agents`: where calls go.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_registry::{Agent, AgentTarget, NewAgent};
use utoipa::ToSchema;

use super::List;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// A request to create or replace an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    /// The agent's name.
    pub name: String,
    /// Where it takes calls: a `wss://` media-stream URL or a `sip:` URI.
    pub target: String,
    /// A number (E.164) calls go to when the agent cannot take them.
    #[serde(default)]
    pub fallback_number: Option<String>,
    /// At most this many simultaneous calls.
    #[serde(default)]
    pub max_concurrent_calls: Option<u32>,
}

/// An agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `media_stream` or `sip`.
    pub target_kind: &'static str,
    /// The media-stream URL or SIP URI.
    pub target: String,
    /// Fallback number.
    pub fallback_number: Option<String>,
    /// Concurrency limit.
    pub max_concurrent_calls: Option<u32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Agent> for AgentView {
    fn from(agent: Agent) -> Self {
        let (target_kind, target) = match agent.target {
            AgentTarget::MediaStream(url) => ("media_stream", url),
            AgentTarget::Sip(uri) => ("sip", uri),
        };
        Self {
            id: agent.id,
            name: agent.name,
            target_kind,
            target,
            fallback_number: agent.fallback_number,
            max_concurrent_calls: agent.max_concurrent_calls,
            created_at: agent.created_at,
        }
    }
}

impl AgentBody {
    /// Checks the target with the routing policy's own parser, so an agent the router would
    /// refuse at call time is refused when it is saved.
    fn into_new(self) -> Result<NewAgent, ApiError> {
        let target = self.target.trim().to_owned();
        let parsed = telephony_routing::AgentTarget::parse(&target)
            .map_err(|e| ApiError::invalid_request(format!("target: {e}")))?;
        let target = match parsed {
            telephony_routing::AgentTarget::Sip(_) => AgentTarget::Sip(target),
            _ => AgentTarget::MediaStream(target),
        };
        Ok(NewAgent {
            name: self.name,
            target,
            fallback_number: self.fallback_number,
            max_concurrent_calls: self.max_concurrent_calls,
        })
    }
}

/// Create an agent.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentBody,
    security(("api_key" = [])),
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    org: Org,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let agent = state
        .registry()
        .create_agent(&org.id, body.into_new()?)
        .await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

/// List the organization's agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("api_key" = [])),
    responses((status = 200, body = List<AgentView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    org: Org,
) -> Result<Json<List<AgentView>>, ApiError> {
    let agents = state.registry().list_agents(&org.id).await?;
    Ok(Json(List {
        data: agents.into_iter().map(Into::into).collect(),
    }))
}

/// Get one agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", security(("api_key" = [])),
    params(("id" = String, Path, description = "agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(state.registry().agent(&org.id, &id).await?.into()))
}

/// Replace an agent's settings.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", request_body = AgentBody,
    security(("api_key" = [])), params(("id" = String, Path, description = "agent id")),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state
        .registry()
        .update_agent(&org.id, &id, body.into_new()?)
        .await?;
    Ok(Json(agent.into()))
}

/// Delete an agent; numbers assigned to it are left without an agent.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", security(("api_key" = [])),
    params(("id" = String, Path, description = "agent id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.registry().delete_agent(&org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
