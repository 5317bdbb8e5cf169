//! `/v1/calls`: the organization's call records.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_registry::CallRecord;
use utoipa::{IntoParams, ToSchema};

use super::List;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Paging of the call list, newest first.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CallsQuery {
    /// At most this many calls (1 to 500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    /// The gateway's id of the record.
    pub id: String,
    /// `twilio` or `telnyx`.
    pub provider: String,
    /// The carrier's call id.
    pub carrier_call_id: String,
    /// The organization's number concerned.
    pub number: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The carrier's latest status.
    pub status: String,
    /// Duration in seconds, once over.
    pub duration_secs: Option<u64>,
    /// First seen.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<CallRecord> for CallView {
    fn from(c: CallRecord) -> Self {
        Self {
            id: c.id,
            provider: c.provider,
            carrier_call_id: c.carrier_call_id,
            number: c.number,
            direction: c.direction,
            status: c.status,
            duration_secs: c.duration_secs,
            started_at: c.started_at,
            ended_at: c.ended_at,
        }
    }
}

/// List the organization's calls, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", security(("api_key" = [])), params(CallsQuery),
    responses((status = 200, body = List<CallView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    org: Org,
    ApiQuery(query): ApiQuery<CallsQuery>,
) -> Result<Json<List<CallView>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_request("limit must be between 1 and 500"));
    }
    let calls = state.registry().list_calls(&org.id, limit).await?;
    Ok(Json(List {
        data: calls.into_iter().map(Into::into).collect(),
    }))
}
