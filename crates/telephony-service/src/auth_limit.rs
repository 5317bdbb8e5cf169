//! A brake on authentication failures: a client (by peer IP address) that presents more than
//! `max_failures` bad API keys within `window` gets `429 too_many_auth_failures` with a
//! `Retry-After` for every further failure until its window ends. A valid key is never refused:
//! behind a load balancer or a NAT many clients share one address, and one client's failures
//! must not lock the others out.
//!
//! It is a brake, not a correctness property: the table is per process and in memory (several
//! instances each count on their own, a restart forgets), and behind a load balancer every
//! client has the balancer's address. API keys are 256-bit random values, so guessing is not
//! what it protects against; it slows a key-spraying client down (each of its refused requests
//! is still one indexed lookup) and makes the attempts visible.
//!
//! Memory is bounded: a fixed table of `slots` entries indexed by a keyed hash of the address
//! (the key is random per process, so a client cannot choose addresses that collide with
//! another's). Each slot remembers one address: a newcomer that lands on an occupied slot takes
//! it over. A client that spreads its attempts over many addresses can therefore evict its own
//! entries and escape the brake, but never gets an innocent client limited: failures are only
//! ever counted against the address that made them. Successful authentications are not counted
//! and never refused.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimitConfig {
    /// Failed authentications a client may have within one window; `0` turns the brake off.
    pub max_failures: u32,
    /// The window (counted from the client's first failure in it).
    pub window: Duration,
    /// How many clients are remembered at once (the memory bound).
    pub slots: usize,
}

impl Default for AuthLimitConfig {
    /// 20 failures a minute, 4096 clients remembered.
    fn default() -> Self {
        Self {
            max_failures: 20,
            window: Duration::from_secs(60),
            slots: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    addr: IpAddr,
    window_start: Instant,
    failures: u32,
}

/// The per-process table of recent authentication failures. See the module documentation.
#[derive(Debug)]
pub struct AuthLimiter {
    config: AuthLimitConfig,
    hasher: RandomState,
    slots: Vec<Mutex<Option<Slot>>>,
}

impl AuthLimiter {
    /// A limiter with `config` (at least one slot).
    #[must_use]
    pub fn new(config: AuthLimitConfig) -> Self {
        let slots = config.slots.max(1);
        Self {
            config,
            hasher: RandomState::new(),
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> AuthLimitConfig {
        self.config
    }

    fn slot(&self, addr: IpAddr) -> &Mutex<Option<Slot>> {
        let hash = self.hasher.hash_one(addr);
        let len = u64::try_from(self.slots.len()).unwrap_or(u64::MAX);
        let index = usize::try_from(hash % len).unwrap_or(0);
        &self.slots[index]
    }

    /// When `addr` is being limited at `now`: how long until it may try again.
    #[must_use]
    pub fn retry_after(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        if self.config.max_failures == 0 {
            return None;
        }
        let slot = self.slot(addr).lock().unwrap_or_else(|e| e.into_inner());
        let entry = slot.as_ref().filter(|s| s.addr == addr)?;
        let elapsed = now.saturating_duration_since(entry.window_start);
        (entry.failures >= self.config.max_failures && elapsed < self.config.window)
            .then(|| self.config.window - elapsed)
    }

    /// Counts one failed authentication from `addr` at `now`.
    pub fn record_failure(&self, addr: IpAddr, now: Instant) {
        if self.config.max_failures == 0 {
            return;
        }
        let mut slot = self.slot(addr).lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(entry)
                if entry.addr == addr
                    && now.saturating_duration_since(entry.window_start) < self.config.window =>
            {
                entry.failures = entry.failures.saturating_add(1);
            }
            _ => {
                *slot = Some(Slot {
                    addr,
                    window_start: now,
                    failures: 1,
                });
            }
        }
    }
}

impl Default for AuthLimiter {
    fn default() -> Self {
        Self::new(AuthLimitConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_client_is_limited_after_its_failures_until_its_window_ends() {
        let limiter = AuthLimiter::new(AuthLimitConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            slots: 16,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.retry_after(ip(1), start), None);
            limiter.record_failure(ip(1), start);
        }
        let wait = limiter.retry_after(ip(1), start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(limiter.retry_after(ip(2), start), None, "another client");
        assert_eq!(
            limiter.retry_after(ip(1), start + Duration::from_secs(60)),
            None
        );
    }

    #[test]
    fn one_slot_holds_one_client_and_never_limits_a_newcomer() {
        let limiter = AuthLimiter::new(AuthLimitConfig {
            max_failures: 2,
            window: Duration::from_secs(60),
            slots: 1,
        });
        let now = Instant::now();
        limiter.record_failure(ip(1), now);
        limiter.record_failure(ip(1), now);
        assert!(limiter.retry_after(ip(1), now).is_some());
        assert_eq!(limiter.retry_after(ip(2), now), None);
        limiter.record_failure(ip(2), now);
        assert_eq!(limiter.retry_after(ip(2), now), None);
        assert_eq!(limiter.slots.len(), 1);
    }

    #[test]
    fn zero_failures_turns_it_off() {
        let limiter = AuthLimiter::new(AuthLimitConfig {
            max_failures: 0,
            ..AuthLimitConfig::default()
        });
        let now = Instant::now();
        for _ in 0..100 {
            limiter.record_failure(ip(1), now);
        }
        assert_eq!(limiter.retry_after(ip(1), now), None);
    }
}
