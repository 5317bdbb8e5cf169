//! Operator endpoints: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.registry().ping().await {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ready" })),
        Err(error) => {
            tracing::warn!(error = %error, "not ready: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "database unreachable",
                }),
            )
        }
    }
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

/// The OpenAPI document of the REST API, generated from the handlers.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// A known path with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
