//! Prometheus metrics: requests by route and status, webhook latency, carrier calls by action
//! and outcome, signature failures.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError};
use std::time::{Duration, Instant};

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

/// The recorder this process installed (see [`install_recorder`]).
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide metrics recorder, or reuses the one already installed (tests build
/// several routers in one process).
///
/// # Errors
/// When the histogram buckets are refused by the exporter (never for the constants above).
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
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

/// How often [`run_upkeep`] folds the recorded histogram samples into their buckets (the
/// exporter's own default).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the histogram samples recorded since the last pass into their buckets, every `every`,
/// for as long as the returned future runs (the service spawns it beside the server).
///
/// The exporter keeps every sample of a histogram (each webhook's latency) until it is folded:
/// by this upkeep or by rendering `/metrics`. The recorder is built with `build_recorder`,
/// which, unlike the exporter's `install`, starts no upkeep of its own, so without this a
/// gateway nobody scrapes would hold about 16 bytes more for every webhook it ever answered
/// (measured by `tests/metrics_upkeep.rs`).
///
/// A fold that lands while a recording is starting a new block of samples can miss the blocks
/// recorded since the previous fold (metrics-util 0.20's `AtomicBucket` publishes the new block
/// before it links the older ones to it): a window of a few instructions, so a rare loss of
/// some latency samples, whose blocks are then never freed (about 8 bytes a sample); never of
/// a request or a call.
pub async fn run_upkeep(handle: PrometheusHandle, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// The handles of one (route, status): its request counter and, for webhooks, the latency
/// histogram of its route.
#[derive(Clone)]
struct RouteHandles {
    requests: metrics::Counter,
    latency: Option<metrics::Histogram>,
}

/// The handles registered so far, by route and status: looked up under a read lock, so a
/// request allocates no label and hashes no metric key. Bounded by the routes the router
/// matches (and "unmatched") times the statuses it answers.
type HandleTable = std::sync::RwLock<HashMap<String, HashMap<u16, RouteHandles>>>;

fn handles(route: &str, status: u16) -> RouteHandles {
    static TABLE: OnceLock<HandleTable> = OnceLock::new();
    let register = || RouteHandles {
        requests: metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "status" => status.to_string()),
        latency: route
            .starts_with("/webhooks/")
            .then(|| metrics::histogram!(WEBHOOK_LATENCY, "route" => route.to_owned())),
    };
    // Handles taken before the recorder is installed would count nowhere forever: not kept.
    if HANDLE.get().is_none() {
        return register();
    }
    let table = TABLE.get_or_init(HandleTable::default);
    let read = table.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = read.get(route).and_then(|by_status| by_status.get(&status)) {
        return found.clone();
    }
    drop(read);
    let mut write = table.write().unwrap_or_else(PoisonError::into_inner);
    write
        .entry(route.to_owned())
        .or_default()
        .entry(status)
        .or_insert_with(register)
        .clone()
}

/// Middleware counting every request by matched route and status, and timing webhooks.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    record(route, response.status(), started);
    response
}

/// Counts a request answered `status` on `route` (the matched path, or `unmatched`), and times
/// it from `started` when it is a webhook: what [`track`] does for the routed requests, and
/// [`crate::app::App`] for the webhooks it answers before routing.
pub fn record(route: &str, status: http::StatusCode, started: Instant) {
    let handles = handles(route, status.as_u16());
    if let Some(latency) = &handles.latency {
        latency.record(started.elapsed().as_secs_f64());
    }
    handles.requests.increment(1);
}
