//! `/v1/calls`: the organization's call records, outbound calls and live-call control
//! (transfer, hang up, record). Every carrier action uses the carrier account that owns the
//! call's number, with the organization's own credentials, and is audited; the POSTs take an
//! `Idempotency-Key` ([`super::idempotency`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_carrier::CallTarget;
use telephony_registry::{CallRecord, CallerId, PlaceCall};
use telephony_routing as routing;
use utoipa::{IntoParams, ToSchema};

use super::{List, idempotency};
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
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
    /// For an inbound call that arrived forwarded: the business number the caller dialled.
    pub forwarded_from: Option<String>,
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
            forwarded_from: c.forwarded_from,
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

/// `POST /v1/calls`: an outbound call from one of the organization's numbers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCallBody {
    /// The gateway's id of the number to call from. Give this or `from`.
    #[serde(default)]
    pub from_number_id: Option<String>,
    /// The number to call from, in E.164. Give this or `from_number_id`.
    #[serde(default)]
    pub from: Option<String>,
    /// The destination, in E.164.
    pub to: String,
    /// The agent the callee is connected to; by default the number's agent.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// `POST /v1/calls/{id}/transfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// An E.164 number (`+14155550123`) or a SIP URI (`sip:desk@pbx.example.com`).
    pub to: String,
}

/// A recording of a live call.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingView {
    /// The carrier's recording id, to stop it.
    pub recording_id: String,
    /// `in-progress`, `stopped`, as the carrier says.
    pub status: String,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_request(crate::extract::scrub(&error.to_string())))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> idempotency::Outcome {
    serde_json::to_value(value)
        .map(|body| (status, body))
        .map_err(|_| ApiError::internal())
}

/// Place an outbound call from one of the organization's numbers, connected to an agent when
/// the callee answers. Uses the carrier account that owns the number and no other.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = PlaceCallBody,
    security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key returns the first answer and places no second call")),
    responses((status = 201, body = CallView),
        (status = 400, description = "invalid_phone_number, invalid_request", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "idempotency_key_reused, idempotency_key_in_progress, conflict", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "carrier_unavailable, carrier_credentials_invalid", body = ErrorBody)))]
pub async fn place(
    State(state): State<AppState>,
    org: Org,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = || async {
        let request: PlaceCallBody = parse_body(&body)?;
        let from = match (request.from_number_id, request.from) {
            (Some(id), None) => CallerId::NumberId(id),
            (None, Some(e164)) => CallerId::E164(e164),
            _ => {
                return Err(ApiError::invalid_request(
                    "give exactly one of from_number_id and from",
                ));
            }
        };
        let record = state
            .registry()
            .place_outbound_call(
                &org.id,
                &PlaceCall {
                    from,
                    to: request.to,
                    agent_id: request.agent_id,
                },
            )
            .await?;
        json(StatusCode::CREATED, &CallView::from(record))
    };
    idempotency::run_once(&state, &org.id, &headers, "POST", "/v1/calls", &body, run).await
}

/// One call of the organization, with its status and duration.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", security(("api_key" = [])),
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, body = CallView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CallView>, ApiError> {
    Ok(Json(state.registry().call(&org.id, &id).await?.into()))
}

/// Transfer a live call to a phone number or a SIP URI.
#[utoipa::path(post, path = "/v1/calls/{id}/transfer", tag = "calls", request_body = TransferBody,
    security(("api_key" = [])),
    params(("id" = String, Path, description = "call id"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key returns the first answer")),
    responses((status = 200, body = CallView),
        (status = 400, description = "invalid_phone_number", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "call_not_active, idempotency_key_reused", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/calls/{id}/transfer");
    let run = || async {
        let request: TransferBody = parse_body(&body)?;
        let to = request.to.trim();
        let target = if to.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
            || to.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        {
            routing::SipUri::parse(to)
                .map(routing::TransferTarget::Sip)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_sip_uri",
                        "to is not a usable SIP URI (a host, no password, visible ASCII)",
                    )
                })?
        } else {
            routing::E164::parse(to)
                .map(routing::TransferTarget::Number)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_phone_number",
                        "to must be an E.164 number or a SIP URI",
                    )
                })?
        };
        let document = CallTarget::Markup {
            xml: target.render(),
        };
        let record = state
            .registry()
            .redirect_live_call(&org.id, &id, &document)
            .await?;
        json(StatusCode::OK, &CallView::from(record))
    };
    idempotency::run_once(&state, &org.id, &headers, "POST", &path, &body, run).await
}

/// Hang up a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/hangup", tag = "calls", security(("api_key" = [])),
    params(("id" = String, Path, description = "call id"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key returns the first answer")),
    responses((status = 200, body = CallView), (status = 404, body = ErrorBody),
        (status = 409, description = "call_not_active", body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn hangup(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/calls/{id}/hangup");
    let run = || async {
        let record = state.registry().hangup_live_call(&org.id, &id).await?;
        json(StatusCode::OK, &CallView::from(record))
    };
    idempotency::run_once(&state, &org.id, &headers, "POST", &path, &[], run).await
}

/// Start recording a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/recordings", tag = "calls", security(("api_key" = [])),
    params(("id" = String, Path, description = "call id"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key returns the first answer and starts no second recording")),
    responses((status = 201, body = RecordingView), (status = 404, body = ErrorBody),
        (status = 409, description = "call_not_active", body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn start_recording(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/calls/{id}/recordings");
    let run = || async {
        let recording = state.registry().start_call_recording(&org.id, &id).await?;
        json(
            StatusCode::CREATED,
            &RecordingView {
                recording_id: recording.recording_id,
                status: recording.status,
            },
        )
    };
    idempotency::run_once(&state, &org.id, &headers, "POST", &path, &[], run).await
}

async fn stop(
    state: &AppState,
    org: &Org,
    id: &str,
    recording_id: &str,
    headers: &HeaderMap,
    method: &str,
    body: &[u8],
) -> Response {
    let path = format!("/v1/calls/{id}/recordings/{recording_id}/stop");
    let run = || async {
        state
            .registry()
            .stop_call_recording(&org.id, id, recording_id)
            .await?;
        json(
            StatusCode::OK,
            &RecordingView {
                recording_id: recording_id.to_owned(),
                status: "stopped".to_owned(),
            },
        )
    };
    idempotency::run_once(state, &org.id, headers, method, &path, body, run).await
}

/// Stop a recording of a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/recordings/{recording_id}/stop", tag = "calls",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "call id"), ("recording_id" = String, Path, description = "recording id"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key returns the first answer")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
        (status = 409, description = "call_not_active", body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn stop_recording(
    State(state): State<AppState>,
    org: Org,
    ApiPath((id, recording_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    stop(&state, &org, &id, &recording_id, &headers, "POST", &[]).await
}

/// Stop a recording of a live call (the same as `POST .../stop`).
#[utoipa::path(delete, path = "/v1/calls/{id}/recordings/{recording_id}", tag = "calls",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "call id"), ("recording_id" = String, Path, description = "recording id")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
        (status = 409, description = "call_not_active", body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn delete_recording(
    State(state): State<AppState>,
    org: Org,
    ApiPath((id, recording_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    stop(&state, &org, &id, &recording_id, &headers, "DELETE", &[]).await
}
