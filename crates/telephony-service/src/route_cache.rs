//! An in-process cache of the inbound path's registry read ([`Registry::inbound_route`]), so a
//! voice webhook verifies and routes without reading the number, its connection and its agent
//! every time, kept current by the registry's change log of routes.
//!
//! # How it stays current
//!
//! A route is kept until something it is made of changes: the database records every change to
//! a number, a connection or an agent, in the transaction that makes it, whichever instance
//! (or tool) made it ([`Registry::route_changes_since`]). A task of each instance polls that
//! log every quarter of the bound and drops exactly the routes the changes touch: a removed or
//! reassigned number, a disconnected or rotated connection, a changed agent.
//!
//! # Staleness bound
//!
//! A change committed to the database is served from no instance's cache more than the
//! configured bound after its commit:
//!
//! - the cache is used only while the last successful poll *started* less than one bound ago
//!   (a poll sees every change committed before it started). When the database cannot be
//!   polled, the cache is bypassed after one bound, and every webhook reads the database;
//! - a route read while a change was being applied is not cached (it may predate the change).
//!
//! Two cases are better than that:
//!
//! - A webhook that fails verification or the account check against a cached entry is checked
//!   again against a fresh read before it is refused, so a rotated credential (or a connection
//!   re-pointed at another account) is accepted at once on every instance.
//! - The previous secret of a rotation stops verifying at the end of its grace period exactly:
//!   the entry carries that time.
//!
//! Unknown numbers are not cached (a number imported a moment ago routes at once). The cache
//! holds at most `capacity` entries, in two generations: when the young one holds half the
//! capacity, the old one is dropped and the young one becomes old; a route used from the old
//! generation moves back to the young one. So the routes in use stay, and making room costs
//! nothing per call. A bound of zero disables it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use telephony_carrier::Provider;
use telephony_registry::{
    InboundRoute, Registry, Result, RouteChangeKind, RouteChanges, WebhookSecrets,
};
use telephony_webhook::twilio::TwilioKey;

/// The most changes applied one by one per poll; more than that drops every route.
const MAX_CHANGES_PER_POLL: u64 = 10_000;

/// How long the change log keeps a change (older ones are pruned by the instances' polls).
pub const CHANGE_RETENTION: Duration = Duration::from_secs(3_600);

/// How often an instance prunes the change log.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The cache's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteCacheConfig {
    /// The staleness bound: a change is served from no cache longer than this after its
    /// commit; the change log is polled four times per bound. Zero disables the cache.
    pub bound: Duration,
    /// The most numbers kept at once.
    pub capacity: usize,
}

impl RouteCacheConfig {
    /// No caching: every webhook reads the database.
    pub const DISABLED: Self = Self {
        bound: Duration::ZERO,
        capacity: 0,
    };

    /// How often the change log is polled: a quarter of the bound, at least every 10 ms.
    #[must_use]
    pub fn poll_every(&self) -> Duration {
        (self.bound / 4).max(Duration::from_millis(10))
    }
}

/// A number's inbound route, with its connection's Twilio auth tokens made into HMAC keys once
/// per read of the route, so that a webhook checked against a cached route derives none.
#[derive(Debug)]
pub struct Route {
    inbound: InboundRoute,
    current_key: Option<TwilioKey>,
    previous_key: Option<TwilioKey>,
}

impl Route {
    /// The route, with the keys of its Twilio tokens (none for a Telnyx connection, or an
    /// empty token).
    #[must_use]
    pub fn new(inbound: InboundRoute) -> Self {
        let (current_key, previous_key) = match &inbound.secrets {
            WebhookSecrets::Twilio {
                current, previous, ..
            } => (
                TwilioKey::new(current),
                previous.as_ref().and_then(TwilioKey::new),
            ),
            WebhookSecrets::Telnyx { .. } => (None, None),
        };
        Self {
            inbound,
            current_key,
            previous_key,
        }
    }

    /// The keys of the connection's current Twilio token and of its previous one (which the
    /// caller uses only while its grace period runs).
    #[must_use]
    pub fn twilio_keys(&self) -> (Option<&TwilioKey>, Option<&TwilioKey>) {
        (self.current_key.as_ref(), self.previous_key.as_ref())
    }
}

impl std::ops::Deref for Route {
    type Target = InboundRoute;

    fn deref(&self) -> &InboundRoute {
        &self.inbound
    }
}

/// A route looked up for a webhook, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The route.
    pub route: Arc<Route>,
    /// Whether it was served from the cache (and so may be up to one bound old).
    pub cached: bool,
}

type Key = (Provider, String);

#[derive(Debug, Default)]
struct Entries {
    /// Routes cached or used since `old` was set aside.
    map: HashMap<Key, Arc<Route>>,
    /// The routes of the generation before: when `map` holds half the capacity, `old` is
    /// dropped and `map` becomes `old`. A route used from `old` moves back to `map`, so the
    /// routes in use stay, and making room costs nothing per call.
    old: HashMap<Key, Arc<Route>>,
    /// The change-log version the entries are current with (`None` before the first poll).
    version: Option<i64>,
    /// When the last successful poll started.
    synced_at: Option<Instant>,
    /// Counts the times entries were dropped for changes: a read that started at another
    /// epoch may predate a change, and is not cached.
    epoch: u64,
}

/// The cache of inbound routes, keyed by provider and the webhook's `To`.
#[derive(Debug)]
pub struct RouteCache {
    config: RouteCacheConfig,
    entries: Mutex<Entries>,
}

impl RouteCache {
    /// An empty cache, used only once [`RouteCache::poll`] has succeeded (see
    /// [`RouteCache::spawn`] for one that keeps itself current).
    #[must_use]
    pub fn new(config: RouteCacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// A cache kept current by a task polling `registry`'s change log (on the current Tokio
    /// runtime; the task ends when the cache is dropped). Without a runtime, or when disabled,
    /// the cache is never used.
    #[must_use]
    pub fn spawn(config: RouteCacheConfig, registry: &Registry) -> Arc<Self> {
        let cache = Arc::new(Self::new(config));
        if cache.enabled()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(keep_current(Arc::downgrade(&cache), registry.clone()));
        }
        cache
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> RouteCacheConfig {
        self.config
    }

    fn enabled(&self) -> bool {
        !self.config.bound.is_zero() && self.config.capacity > 0
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the cache may be used: the last successful poll started less than a bound ago.
    fn current(&self, entries: &Entries) -> bool {
        entries
            .synced_at
            .is_some_and(|at| at.elapsed() < self.config.bound)
    }

    /// The route of the number `to` for `provider`: from the cache while it is current, else
    /// from the registry (and cached). `None` when the registry knows no routable number of
    /// that carrier with that E.164.
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
            let mut entries = self.entries();
            if self.current(&entries) {
                let key = (provider, to.to_owned());
                let found = match entries.map.get(&key) {
                    Some(route) => Some(Arc::clone(route)),
                    None => entries.old.remove(&key).inspect(|route| {
                        self.insert(&mut entries, key, Arc::clone(route));
                    }),
                };
                if let Some(route) = found {
                    return Ok(Some(Lookup {
                        route,
                        cached: true,
                    }));
                }
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
        let epoch = self.enabled().then(|| self.entries().epoch);
        let route = registry
            .inbound_route(provider, to)
            .await?
            .map(|route| Arc::new(Route::new(route)));
        if let Some(epoch) = epoch {
            let mut entries = self.entries();
            let key = (provider, to.to_owned());
            match &route {
                // A read that overlapped the application of a change may predate it.
                Some(route) if entries.epoch == epoch => {
                    self.insert(&mut entries, key, Arc::clone(route));
                }
                _ => {
                    entries.map.remove(&key);
                    entries.old.remove(&key);
                }
            }
        }
        Ok(route.map(|route| Lookup {
            route,
            cached: false,
        }))
    }

    fn insert(&self, entries: &mut Entries, key: Key, route: Arc<Route>) {
        entries.old.remove(&key);
        entries.map.insert(key, route);
        if entries.map.len() >= self.config.capacity.div_ceil(2) {
            entries.old = std::mem::take(&mut entries.map);
        }
    }

    /// Polls the change log once: drops the routes the changes since the last poll touch (every
    /// route on the first poll, or when changes were lost), and makes the cache current.
    ///
    /// # Errors
    /// As [`Registry::route_changes_since`]; the cache is left as it was.
    pub async fn poll(&self, registry: &Registry) -> Result<()> {
        let started = Instant::now();
        let since = self.entries().version;
        let changes = match since {
            None => RouteChanges::Lost {
                version: registry.route_version().await?,
            },
            Some(after) => {
                registry
                    .route_changes_since(after, MAX_CHANGES_PER_POLL)
                    .await?
            }
        };
        let mut entries = self.entries();
        if entries.version != since {
            // Another poll applied these changes meanwhile.
            return Ok(());
        }
        match changes {
            RouteChanges::Lost { version } => {
                entries.map.clear();
                entries.old.clear();
                entries.epoch += 1;
                entries.version = Some(version);
            }
            RouteChanges::Listed { version, changes } => {
                if !changes.is_empty() {
                    let touched: HashSet<(RouteChangeKind, &str)> = changes
                        .iter()
                        .map(|change| (change.kind, change.id.as_str()))
                        .collect();
                    entries.map.retain(|_, route| !touches(&touched, route));
                    entries.old.retain(|_, route| !touches(&touched, route));
                    entries.epoch += 1;
                }
                entries.version = Some(version);
            }
        }
        entries.synced_at = Some(started);
        Ok(())
    }

    /// How many routes are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        let entries = self.entries();
        entries.map.len() + entries.old.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a change touches a route: its number, its connection, or its agent (the number's
/// or the route's).
fn touches(touched: &HashSet<(RouteChangeKind, &str)>, route: &InboundRoute) -> bool {
    let number = &route.number;
    touched.contains(&(RouteChangeKind::Number, number.id.as_str()))
        || touched.contains(&(RouteChangeKind::Connection, number.connection_id.as_str()))
        || number
            .agent_id
            .as_deref()
            .is_some_and(|id| touched.contains(&(RouteChangeKind::Agent, id)))
        || route
            .agent
            .as_ref()
            .is_some_and(|agent| touched.contains(&(RouteChangeKind::Agent, agent.id.as_str())))
}

/// Polls the change log for `cache` until it is dropped; prunes old changes now and then.
async fn keep_current(cache: Weak<RouteCache>, registry: Registry) {
    let Some(every) = cache.upgrade().map(|cache| cache.config.poll_every()) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<Instant> = None;
    loop {
        tick.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        if let Err(error) = cache.poll(&registry).await {
            tracing::warn!(%error, "route change log poll failed; the route cache is bypassed after its bound");
            continue;
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            if let Err(error) = registry.prune_route_changes(CHANGE_RETENTION).await {
                tracing::debug!(%error, "route change log prune failed; retrying later");
            }
        }
    }
}
