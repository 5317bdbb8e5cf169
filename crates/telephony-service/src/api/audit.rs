//! `/v1/audit-log`: every carrier API call the gateway made for the organization.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_registry::AuditEntry;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Paging of the audit log, newest first.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// At most this many entries (1 to 500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Only entries older than this entry id (the `next_before` of the previous page).
    #[serde(default)]
    pub before: Option<i64>,
}

/// One carrier API call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Entry id (increasing).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Which carrier call.
    pub action: String,
    /// The number concerned.
    pub number: Option<String>,
    /// The connection used.
    pub connection_id: Option<String>,
    /// Whether it changed the carrier account.
    pub changed_account: bool,
    /// `ok` or an error code.
    pub outcome: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: i64::from(e.id),
            at: e.at,
            action: e.action,
            number: e.number,
            connection_id: e.connection_id,
            changed_account: e.changed_account,
            outcome: e.outcome,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub data: Vec<AuditView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Read the organization's audit log, newest first.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", security(("api_key" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    org: Org,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_request("limit must be between 1 and 500"));
    }
    let entries = state
        .registry()
        .audit_page(&org.id, query.before, limit)
        .await?;
    let next_before = if entries.len() as u64 == limit {
        entries.last().map(|e| i64::from(e.id))
    } else {
        None
    };
    Ok(Json(AuditPage {
        data: entries.into_iter().map(Into::into).collect(),
        next_before,
    }))
}
