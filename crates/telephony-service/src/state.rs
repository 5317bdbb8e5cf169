//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use telephony_registry::Registry;
use url::Url;

use crate::auth_limit::AuthLimiter;
use crate::call_token::CallTokens;
use crate::route_cache::{RouteCache, RouteCacheConfig};

/// The application state: cheap to clone (one shared pointer).
///
/// Axum clones the state for every request, several times (the router, the middleware, the
/// handler's extractor): one reference count to change each time, not one per part.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

/// The parts of the state; [`AppState::with_auth_limiter`] and [`AppState::with_route_cache`]
/// build a new one around the same `Inner`.
#[derive(Debug)]
struct Shared {
    inner: Arc<Inner>,
    auth_limiter: Arc<AuthLimiter>,
    route_cache: Arc<RouteCache>,
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
            shared: Arc::new(Shared {
                inner: Arc::new(Inner {
                    registry,
                    metrics,
                    public_url,
                    telnyx_tolerance: telephony_webhook::telnyx::DEFAULT_TOLERANCE,
                    call_tokens,
                }),
                auth_limiter: Arc::new(AuthLimiter::default()),
                route_cache: Arc::new(RouteCache::new(RouteCacheConfig::DISABLED)),
            }),
        }
    }

    /// The same state with another authentication-failure limiter (see [`crate::auth_limit`]).
    #[must_use]
    pub fn with_auth_limiter(self, limiter: AuthLimiter) -> Self {
        self.with_parts(Arc::new(limiter), None)
    }

    /// The same state with an inbound route cache, kept current by a task polling the
    /// registry's change log (see [`crate::route_cache`]; call it within a Tokio runtime); the
    /// state of [`AppState::new`] caches nothing.
    #[must_use]
    pub fn with_route_cache(self, config: RouteCacheConfig) -> Self {
        let cache = RouteCache::spawn(config, &self.shared.inner.registry);
        let limiter = self.shared.auth_limiter.clone();
        self.with_parts(limiter, Some(cache))
    }

    /// The same state with the given limiter, and cache when given.
    fn with_parts(
        self,
        auth_limiter: Arc<AuthLimiter>,
        route_cache: Option<Arc<RouteCache>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: self.shared.inner.clone(),
                auth_limiter,
                route_cache: route_cache.unwrap_or_else(|| self.shared.route_cache.clone()),
            }),
        }
    }

    /// The inbound route cache.
    #[must_use]
    pub fn route_cache(&self) -> &RouteCache {
        &self.shared.route_cache
    }

    /// The authentication-failure limiter.
    #[must_use]
    pub fn auth_limiter(&self) -> &AuthLimiter {
        &self.shared.auth_limiter
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.shared.inner.registry
    }

    /// The Prometheus handle, for `/metrics`.
    #[must_use]
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.shared.inner.metrics
    }

    /// The public base URL carriers reach the gateway at.
    #[must_use]
    pub fn public_url(&self) -> &Url {
        &self.shared.inner.public_url
    }

    /// The per-call token minter.
    #[must_use]
    pub fn call_tokens(&self) -> &CallTokens {
        &self.shared.inner.call_tokens
    }

    /// How far a Telnyx webhook's timestamp may be from now.
    #[must_use]
    pub fn telnyx_tolerance(&self) -> Duration {
        self.shared.inner.telnyx_tolerance
    }
}
