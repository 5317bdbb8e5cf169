//! The router: every route of the service, built by one function so tests drive it without a
//! socket (`tower::ServiceExt::oneshot`).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::api::{agents, audit, calls, carriers, numbers};
use crate::state::AppState;
use crate::{ops, webhooks};

/// Builds the service's router. `max_body_bytes` bounds every request body.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/carriers", post(carriers::connect).get(carriers::list))
        .route(
            "/carriers/{id}",
            get(carriers::get).delete(carriers::disconnect),
        )
        .route("/carriers/{id}/credentials", post(carriers::rotate))
        .route(
            "/carriers/{id}/available-numbers",
            get(carriers::available_numbers),
        )
        .route("/numbers", get(numbers::list))
        .route("/numbers/import", post(numbers::import))
        .route(
            "/numbers/{id}",
            get(numbers::get)
                .patch(numbers::update)
                .delete(numbers::remove),
        )
        .route("/numbers/{id}/diagnostics", get(numbers::diagnostics))
        .route("/agents", post(agents::create).get(agents::list))
        .route(
            "/agents/{id}",
            get(agents::get).put(agents::update).delete(agents::delete),
        )
        .route("/calls", get(calls::list))
        .route("/audit-log", get(audit::list));

    Router::new()
        .nest("/v1", v1)
        .route("/webhooks/twilio/voice", post(webhooks::twilio_voice))
        .route("/webhooks/twilio/fallback", post(webhooks::twilio_fallback))
        .route("/webhooks/twilio/status", post(webhooks::twilio_status))
        .route("/webhooks/telnyx/texml", post(webhooks::telnyx_texml))
        .route("/webhooks/telnyx/status", post(webhooks::telnyx_status))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
