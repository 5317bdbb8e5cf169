//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use telephony_registry::Registry;
use url::Url;

use crate::call_token::CallTokens;

/// The application state: cheap to clone (everything inside is shared).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    metrics: PrometheusHandle,
    public_url: Url,
    telnyx_tolerance: Duration,
    call_tokens: CallTokens,
}

impl AppState {
    /// Builds the state.
    #[must_use]
    pub fn new(
        registry: Registry,
        metrics: PrometheusHandle,
        public_url: Url,
        call_tokens: CallTokens,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                metrics,
                public_url,
                telnyx_tolerance: telephony_webhook::telnyx::DEFAULT_TOLERANCE,
                call_tokens,
            }),
        }
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Prometheus handle, for `/metrics`.
    #[must_use]
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// The public base URL carriers reach the gateway at.
    #[must_use]
    pub fn public_url(&self) -> &Url {
        &self.inner.public_url
    }

    /// The per-call token minter.
    #[must_use]
    pub fn call_tokens(&self) -> &CallTokens {
        &self.inner.call_tokens
    }

    /// How far a Telnyx webhook's timestamp may be from now.
    #[must_use]
    pub fn telnyx_tolerance(&self) -> Duration {
        self.inner.telnyx_tolerance
    }
}
