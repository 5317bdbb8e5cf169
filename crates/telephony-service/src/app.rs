//! The service: every route of the gateway, built by one function ([`app`]) so tests drive it
//! without a socket (`tower::ServiceExt::oneshot`), exactly as the server does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::{agents, audit, calls, carriers, managed, numbers, test_calls};
use crate::state::AppState;
use crate::webhooks::Webhook;
use crate::{ops, outbound};

/// The gateway's HTTP service: the carriers' webhooks at their fixed paths ([`Webhook`]) are
/// answered before any routing, every other request goes through [`router`].
///
/// A webhook is the inbound hot path: the caller waits for its answer. Through the router it
/// also paid for matching the path, the metrics middleware's boxed service and future, the
/// matched path and URL parameters put in the request, and extractors that clone the headers:
/// about 1.5 µs of the gateway's 26 µs of CPU per call on a two-core machine, and answering
/// webhooks here raised the closed-loop throughput by about 6 % (`docs/PERFORMANCE.md`,
/// session 19). Here a webhook gets the same treatment without them: the same
/// body limit (read the way axum's `Bytes` extractor reads it, with the same refusals), the
/// same handler ([`Webhook::answer`]) and the same metrics ([`crate::metrics::record`]).
#[derive(Clone)]
pub struct App {
    router: Router,
    state: AppState,
    body_limit: DefaultBodyLimit,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// Builds the service. `max_body_bytes` bounds every request body.
pub fn app(state: AppState, max_body_bytes: usize) -> App {
    App {
        router: router(state.clone(), max_body_bytes),
        state,
        body_limit: DefaultBodyLimit::max(max_body_bytes),
    }
}

impl tower::Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let webhook = if request.method() == http::Method::POST {
            Webhook::at(request.uri().path())
        } else {
            None
        };
        let Some(webhook) = webhook else {
            return Box::pin(tower::Service::call(&mut self.router, request));
        };
        let state = self.state.clone();
        let body_limit = self.body_limit;
        Box::pin(async move {
            let started = Instant::now();
            let (parts, body) = request.into_parts();
            let mut body = Request::new(body);
            body_limit.apply(&mut body);
            let response = match Bytes::from_request(body, &()).await {
                Ok(body) => {
                    webhook
                        .answer(&state, &parts.uri, &parts.headers, &body)
                        .await
                }
                Err(refused) => refused.into_response(),
            };
            crate::metrics::record(webhook.path(), response.status(), started);
            Ok(response)
        })
    }
}

/// Builds the router of every route, the webhooks included (see [`App`], which answers those
/// before routing). `max_body_bytes` bounds every request body.
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

    let routes = Webhook::ALL
        .into_iter()
        .fold(Router::new().nest("/v1", v1), |routes, webhook| {
            routes.route(webhook.path(), webhook.route())
        });
    routes
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
