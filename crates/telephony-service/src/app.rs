//! The router: every route of the service, built by one function so tests drive it without a
//! socket (`tower::ServiceExt::oneshot`).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::api::{agents, audit, calls, carriers, managed, numbers, test_calls};
use crate::state::AppState;
use crate::{ops, outbound, webhooks};

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
        .route("/numbers/{id}/test-call", post(test_calls::place))
        .route("/numbers/{id}/test-calls/{test_id}", get(test_calls::get))
        .route(
            "/numbers/{id}/forwarded-from",
            post(managed::add_forwarded).get(managed::list_forwarded_to),
        )
        .route(
            "/numbers/{id}/forwarded-from/{forwarded_id}",
            axum::routing::delete(managed::remove_forwarded),
        )
        .route("/forwarded-numbers", get(managed::list_forwarded))
        .route("/managed/available-numbers", get(managed::search))
        .route("/managed/numbers", post(managed::buy))
        .route(
            "/managed/numbers/{id}",
            axum::routing::delete(managed::release),
        )
        .route("/managed/orders", get(managed::list_orders))
        .route("/managed/orders/{id}", get(managed::get_order))
        .route("/managed/orders/{id}/refresh", post(managed::refresh_order))
        .route("/agents", post(agents::create).get(agents::list))
        .route(
            "/agents/{id}",
            get(agents::get).put(agents::update).delete(agents::delete),
        )
        .route("/calls", get(calls::list).post(calls::place))
        .route("/calls/{id}", get(calls::get))
        .route("/calls/{id}/transfer", post(calls::transfer))
        .route("/calls/{id}/hangup", post(calls::hangup))
        .route("/calls/{id}/recordings", post(calls::start_recording))
        .route(
            "/calls/{id}/recordings/{recording_id}",
            axum::routing::delete(calls::delete_recording),
        )
        .route(
            "/calls/{id}/recordings/{recording_id}/stop",
            post(calls::stop_recording),
        )
        .route("/audit-log", get(audit::list));

    Router::new()
        .nest("/v1", v1)
        .route("/webhooks/twilio/voice", post(webhooks::twilio_voice))
        .route("/webhooks/twilio/fallback", post(webhooks::twilio_fallback))
        .route("/webhooks/twilio/status", post(webhooks::twilio_status))
        .route("/webhooks/telnyx/texml", post(webhooks::telnyx_texml))
        .route("/webhooks/telnyx/status", post(webhooks::telnyx_status))
        .route(
            "/webhooks/twilio/test-call/answer",
            post(crate::test_call::answer),
        )
        .route(
            "/webhooks/telnyx/test-call/answer",
            post(crate::test_call::answer),
        )
        .route(
            "/webhooks/twilio/outbound/{id}",
            post(outbound::twilio_instructions),
        )
        .route(
            "/webhooks/twilio/outbound/{id}/status",
            post(outbound::twilio_status),
        )
        .route(
            "/webhooks/telnyx/outbound/{id}",
            post(outbound::telnyx_instructions),
        )
        .route(
            "/webhooks/telnyx/outbound/{id}/status",
            post(outbound::telnyx_status),
        )
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
