//! `POST /v1/numbers/{id}/test-call`: verify a number end to end.
//!
//! The number's configuration checks run first (the diagnostics checklist, and the number
//! must be in `managed` mode, pointed at the gateway); a number is `ready` only when they all
//! pass, and a test of a number that is not ready places nothing
//! (409 `number_not_ready`). Then a short call is placed from the number to itself through the
//! carrier account that owns it (the organization's own connection for an imported number,
//! the platform's subaccount for a managed one; a failure of that carrier fails the test, no
//! other account is tried). Its inbound leg reaches the gateway's voice webhook, which records
//! it (see [`crate::test_call`]). The request waits for that, polling the database (so the
//! leg may reach any instance), at most [`WAIT`]: `200` with the report once reached, else
//! `202` with the report so far and a `Location` to read it later.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use telephony_registry::{TestCall, TestCallState, WebhookMode};
use utoipa::ToSchema;

use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::state::AppState;

/// How long the request waits for the inbound leg.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often the database is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// How long each step took, in milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestCallTimings {
    /// The configuration checks.
    pub checks_ms: Option<u64>,
    /// The carrier accepting the call.
    pub call_placed_ms: Option<u64>,
    /// From the carrier's acceptance to the webhook reaching the gateway.
    pub webhook_reached_ms: Option<u64>,
    /// Routing the inbound leg.
    pub routed_ms: Option<u64>,
}

/// A test call's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestCallView {
    /// The test's id.
    pub id: String,
    /// The number tested.
    pub number_id: String,
    /// The number, E.164.
    pub e164: String,
    /// The carrier the call was placed through.
    pub provider: String,
    /// `not_ready`, `placing`, `placed` (not reached yet), `reached` or `failed`.
    pub state: String,
    /// Whether the number's configuration checks passed.
    pub ready: bool,
    /// Whether the call reached the gateway.
    pub reached: bool,
    /// The agent the call was routed to (none when the number has no agent).
    pub agent_id: Option<String>,
    /// What routing decided: `agent` or `no_agent`.
    pub route: Option<String>,
    /// The error code when the test failed.
    pub error: Option<String>,
    /// The carrier's id of the placed call.
    pub carrier_call_id: Option<String>,
    /// How long each step took.
    pub timings: TestCallTimings,
    /// When the test started.
    pub created_at: DateTime<Utc>,
}

impl From<TestCall> for TestCallView {
    fn from(t: TestCall) -> Self {
        Self {
            id: t.id,
            number_id: t.number_id,
            e164: t.e164,
            provider: t.provider.as_str().to_owned(),
            state: t.state.as_str().to_owned(),
            ready: t.state != TestCallState::NotReady,
            reached: t.state == TestCallState::Reached,
            agent_id: t.agent_id,
            route: t.route,
            error: t.error,
            carrier_call_id: t.carrier_call_id,
            timings: TestCallTimings {
                checks_ms: t.checks_ms,
                call_placed_ms: t.place_ms,
                webhook_reached_ms: t.reach_ms,
                routed_ms: t.route_ms,
            },
            created_at: t.created_at,
        }
    }
}

/// Place a test call to the number and report whether it reached the gateway, the agent it was
/// routed to and how long each step took. Waits up to 10 s for the call: `200` once it reached
/// the gateway, else `202` with the report so far (read it later at the `Location`).
#[utoipa::path(post, path = "/v1/numbers/{id}/test-call", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path, description = "number id")),
    responses((status = 200, body = TestCallView, description = "the call reached the gateway"),
        (status = 202, body = TestCallView, description = "placed, not reached yet"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`number_not_ready`: a configuration check failed"),
        (status = 502, body = ErrorBody, description = "the number's carrier failed")))]
pub async fn place(
    State(state): State<AppState>,
    org: Org,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let registry = state.registry();
    let started = Instant::now();
    let number = registry.number(&org.id, &id).await?;
    let diagnostics = registry.diagnose_number(&org.id, &id).await?;
    let checks = started.elapsed();
    // An `outbound_only` number's calls do not come to the gateway: it is not ready for
    // inbound calls, whatever else passes.
    let inbound = number.webhook_mode == WebhookMode::Managed;
    let ready = inbound && diagnostics.healthy();
    let test = registry
        .start_test_call(&org.id, &id, ready, checks)
        .await?;
    if !ready {
        let mut failed: Vec<&str> = diagnostics
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        if !inbound {
            failed.push("webhook_mode (outbound_only: calls do not come to the gateway)");
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "number_not_ready",
            format!(
                "the number's configuration checks failed ({}); see GET /v1/numbers/{id}/diagnostics",
                failed.join(", ")
            ),
        ));
    }
    let answer_url = format!(
        "{}{}",
        state.public_url().as_str().trim_end_matches('/'),
        crate::test_call::answer_path(test.provider.as_str())
    );
    registry
        .place_test_call(&org.id, &test.id, &answer_url)
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let current = registry.test_call(&org.id, &test.id).await?;
        if current.state == TestCallState::Reached {
            return Ok((StatusCode::OK, Json(TestCallView::from(current))).into_response());
        }
        if Instant::now() >= deadline {
            let location = format!("/v1/numbers/{id}/test-calls/{}", current.id);
            let mut response =
                (StatusCode::ACCEPTED, Json(TestCallView::from(current))).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(http::header::LOCATION, value);
            }
            return Ok(response);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Read a test call's report.
#[utoipa::path(get, path = "/v1/numbers/{id}/test-calls/{test_id}", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path, description = "number id"),
        ("test_id" = String, Path, description = "test call id")),
    responses((status = 200, body = TestCallView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    org: Org,
    ApiPath((id, test_id)): ApiPath<(String, String)>,
) -> Result<Json<TestCallView>, ApiError> {
    let test = state.registry().test_call(&org.id, &test_id).await?;
    if test.number_id != id {
        return Err(ApiError::from(telephony_registry::RegistryError::NotFound(
            "test call",
        )));
    }
    Ok(Json(test.into()))
}
