//! A short-lived in-process cache of the inbound path's registry read
//! ([`Registry::inbound_route`]), so a voice webhook verifies and routes without reading the
//! number, its connection and its agent every time.
//!
//! # Staleness bound
//!
//! An entry is used for at most the configured TTL after it was read, then read again. So a
//! change committed to the database (a number removed or reassigned, a connection disconnected,
//! a credential rotated, an agent changed) is seen by every instance sharing the database at
//! most one TTL after its commit. Two cases are better than that:
//!
//! - A webhook that fails verification or the account check against a cached entry is checked
//!   again against a fresh read before it is refused, so a rotated credential (or a connection
//!   re-pointed at another account) is accepted at once on every instance.
//! - The previous secret of a rotation stops verifying at the end of its grace period exactly:
//!   the entry carries that time.
//!
//! Unknown numbers are not cached (a number imported a moment ago routes at once). The cache
//! holds at most `capacity` entries; when full, expired entries are dropped, and if it is still
//! full a new route is used without being cached. A TTL of zero disables it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use telephony_carrier::Provider;
use telephony_registry::{InboundRoute, Registry, Result};

/// The cache's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteCacheConfig {
    /// How long a read is used; zero disables the cache.
    pub ttl: Duration,
    /// The most numbers kept at once.
    pub capacity: usize,
}

impl RouteCacheConfig {
    /// No caching: every webhook reads the database.
    pub const DISABLED: Self = Self {
        ttl: Duration::ZERO,
        capacity: 0,
    };
}

/// A route looked up for a webhook, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The route.
    pub route: Arc<InboundRoute>,
    /// Whether it was served from the cache (and so may be up to one TTL old).
    pub cached: bool,
}

#[derive(Debug)]
struct Entry {
    read_at: Instant,
    route: Arc<InboundRoute>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(Provider, String), Entry>,
    /// When expired entries were last swept (at most once a TTL).
    swept_at: Option<Instant>,
}

/// The cache of inbound routes, keyed by provider and the webhook's `To`.
#[derive(Debug)]
pub struct RouteCache {
    config: RouteCacheConfig,
    entries: Mutex<Entries>,
}

impl RouteCache {
    /// An empty cache.
    #[must_use]
    pub fn new(config: RouteCacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> RouteCacheConfig {
        self.config
    }

    fn enabled(&self) -> bool {
        !self.config.ttl.is_zero() && self.config.capacity > 0
    }

    /// The route of the number `to` for `provider`: from the cache when read less than a TTL
    /// ago, else from the registry (and cached). `None` when the registry knows no routable
    /// number of that carrier with that E.164.
    ///
    /// # Errors
    /// As [`Registry::inbound_route`].
    pub async fn lookup(
        &self,
        registry: &Registry,
        provider: Provider,
        to: &str,
    ) -> Result<Option<Lookup>> {
        if self.enabled() {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = entries.map.get(&(provider, to.to_owned()))
                && entry.read_at.elapsed() < self.config.ttl
            {
                return Ok(Some(Lookup {
                    route: Arc::clone(&entry.route),
                    cached: true,
                }));
            }
        }
        self.refresh(registry, provider, to).await
    }

    /// Reads the route from the registry, bypassing the cache, and caches the answer (or drops
    /// the cached entry when the number is gone).
    ///
    /// # Errors
    /// As [`Registry::inbound_route`].
    pub async fn refresh(
        &self,
        registry: &Registry,
        provider: Provider,
        to: &str,
    ) -> Result<Option<Lookup>> {
        let read_at = Instant::now();
        let route = registry.inbound_route(provider, to).await?.map(Arc::new);
        if self.enabled() {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (provider, to.to_owned());
            match &route {
                Some(route) => self.insert(&mut entries, key, read_at, Arc::clone(route)),
                None => {
                    entries.map.remove(&key);
                }
            }
        }
        Ok(route.map(|route| Lookup {
            route,
            cached: false,
        }))
    }

    fn insert(
        &self,
        entries: &mut Entries,
        key: (Provider, String),
        read_at: Instant,
        route: Arc<InboundRoute>,
    ) {
        if entries.map.len() >= self.config.capacity && !entries.map.contains_key(&key) {
            let ttl = self.config.ttl;
            let due = entries.swept_at.is_none_or(|swept| swept.elapsed() >= ttl);
            if due {
                entries.map.retain(|_, entry| entry.read_at.elapsed() < ttl);
                entries.swept_at = Some(Instant::now());
            }
            if entries.map.len() >= self.config.capacity {
                return;
            }
        }
        // A slower read that started earlier must not replace a newer one.
        if let Some(existing) = entries.map.get(&key)
            && existing.read_at > read_at
        {
            return;
        }
        entries.map.insert(key, Entry { read_at, route });
    }

    /// How many routes are cached (expired ones included until swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
