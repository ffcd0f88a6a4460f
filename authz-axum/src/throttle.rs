//! Throttling failed credential checks: per client address and per credential id, with the
//! `governor` rate limiter (GCRA). Only **failures** are counted and only failures are
//! throttled — a request whose credential is valid is always served — so neither an attacker
//! sharing an address (NAT, a proxy, loopback) nor one hammering a key's id can lock out its
//! owner. Over budget, a failed check answers 429 with `Retry-After` instead of 401.
//!
//! Why not refuse before checking: for the high-entropy credentials checked here (JWT
//! signatures, 256-bit API keys and client secrets) online guessing is hopeless anyway, and a
//! check costs less than the bookkeeping of a block-list; what matters is that floods of bad
//! credentials are told to back off and are visible. Low-entropy secrets (passwords) need a
//! limit before the check, per account: that belongs to the login page.
//!
//! ```
//! use authz_axum::throttle::{FailedAttempts, ThrottleConfig};
//! let throttle = FailedAttempts::new(ThrottleConfig::default());
//! let ip = "203.0.113.7".parse().unwrap();
//! let mut throttled = 0;
//! for _ in 0..200 {
//!     if throttle.record_failure(Some(ip), Some("key-id")).is_some() {
//!         throttled += 1;
//!     }
//! }
//! assert!(throttled > 150);
//! ```

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failure budgets: a burst, then one more failure per `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed checks one client address may make at once (default 50).
    pub per_address_burst: u32,
    /// One more failure allowed per address every … (default 1 s: 60 a minute sustained).
    pub per_address_refill: Duration,
    /// Failed checks against one credential id (an API key's id, a client id) at once
    /// (default 10).
    pub per_credential_burst: u32,
    /// One more failure per credential id every … (default 6 s: 10 a minute sustained).
    pub per_credential_refill: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_address_burst: 50,
            per_address_refill: Duration::from_secs(1),
            per_credential_burst: 10,
            per_credential_refill: Duration::from_secs(6),
        }
    }
}

fn quota(burst: u32, refill: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Counts failed credential checks and says when one is over budget.
pub struct FailedAttempts {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_credential: DefaultKeyedRateLimiter<String>,
    recorded: AtomicU64,
}

impl std::fmt::Debug for FailedAttempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailedAttempts")
            .field("addresses", &self.by_address.len())
            .field("credentials", &self.by_credential.len())
            .finish()
    }
}

impl FailedAttempts {
    /// Budgets from `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            by_address: RateLimiter::keyed(quota(config.per_address_burst, config.per_address_refill)),
            by_credential: RateLimiter::keyed(quota(
                config.per_credential_burst,
                config.per_credential_refill,
            )),
            recorded: AtomicU64::new(0),
        }
    }

    /// Records one failed check from `address` against `credential` (an id, never a secret).
    /// Returns how long the client should wait when either budget is spent (answer 429), or
    /// `None` (answer 401 as usual).
    pub fn record_failure(&self, address: Option<IpAddr>, credential: Option<&str>) -> Option<Duration> {
        let n = self.recorded.fetch_add(1, Ordering::Relaxed);
        if n % 4096 == 4095 {
            // Forget keys whose budget has refilled, so the maps stay bounded by recent abuse.
            self.by_address.retain_recent();
            self.by_credential.retain_recent();
        }
        let now = DefaultClock::default().now();
        let mut wait: Option<Duration> = None;
        if let Some(ip) = address
            && let Err(not_until) = self.by_address.check_key(&ip)
        {
            wait = Some(not_until.wait_time_from(now));
        }
        if let Some(id) = credential
            && let Err(not_until) = self.by_credential.check_key(&id.to_string())
        {
            let w = not_until.wait_time_from(now);
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
        wait.map(|w| w.max(Duration::from_secs(1)))
    }
}
