//! Prometheus metrics: requests by route and status, webhook latency, carrier calls by action
//! and outcome, signature failures.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Name of the request counter.
pub const HTTP_REQUESTS: &str = "gateway_http_requests_total";
/// Name of the webhook latency histogram (seconds).
pub const WEBHOOK_LATENCY: &str = "gateway_webhook_duration_seconds";
/// Name of the carrier-call counter (recorded by the registry, which makes every carrier call).
pub const CARRIER_CALLS: &str = telephony_registry::CARRIER_CALLS_METRIC;
/// Name of the signature-failure counter.
pub const SIGNATURE_FAILURES: &str = "gateway_webhook_signature_failures_total";

/// Buckets for the webhook latency histogram: the inbound path is measured in milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Installs the process-wide metrics recorder, or reuses the one already installed (tests build
/// several routers in one process).
///
/// # Errors
/// When the histogram buckets are refused by the exporter (never for the constants above).
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(WEBHOOK_LATENCY.to_owned()),
            LATENCY_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle.clone());
        Ok(handle)
    } else {
        // Another recorder won a race; use the one stored by whoever installed it, if it is ours.
        Ok(HANDLE.get().cloned().unwrap_or(handle))
    }
}

/// Middleware counting every request by matched route and status, and timing webhooks.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    if route.starts_with("/webhooks/") {
        metrics::histogram!(WEBHOOK_LATENCY, "route" => route.clone())
            .record(started.elapsed().as_secs_f64());
    }
    metrics::counter!(HTTP_REQUESTS, "route" => route, "status" => status).increment(1);
    response
}
