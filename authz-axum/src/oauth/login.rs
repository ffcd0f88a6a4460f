//! Limits on login attempts, counted before the password is checked.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::LoginThrottleConfig;

fn quota(burst: u32, refill: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Per (account, address) and per address budgets.
pub(crate) struct LoginThrottle {
    by_account: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginThrottle {
    pub(crate) fn new(c: LoginThrottleConfig) -> Self {
        Self {
            by_account: RateLimiter::keyed(quota(c.per_account_burst, c.per_account_refill)),
            by_address: RateLimiter::keyed(quota(c.per_address_burst, c.per_address_refill)),
        }
    }

    /// Takes one attempt from both budgets; `Some(wait)` when either is spent.
    pub(crate) fn attempt(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = DefaultClock::default().now();
        if self.by_account.len() > 100_000 {
            self.by_account.retain_recent();
            self.by_address.retain_recent();
        }
        let mut wait: Option<Duration> = None;
        if let Some(ip) = address
            && let Err(n) = self.by_address.check_key(&ip)
        {
            wait = Some(n.wait_time_from(now));
        }
        let key = (username.to_lowercase(), address);
        if let Err(n) = self.by_account.check_key(&key) {
            let w = n.wait_time_from(now);
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
        wait.map(|w| w.max(Duration::from_secs(1)))
    }
}
