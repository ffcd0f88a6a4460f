//! The one clock every expiry decision reads: token `exp`/`nbf`/`iat`, API key expiry, the
//! verified-token cache, JWKS `max-age` and cool-downs.
//!
//! Production uses [`SystemClock`]; tests inject a [`ManualClock`] and move it instead of
//! sleeping.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use authz_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.unix_seconds(), 1_800_000_090);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (0 before the epoch).
    fn unix_seconds(&self) -> u64 {
        unix_seconds(self.now())
    }

    /// The current time in milliseconds since the Unix epoch (0 before the epoch).
    fn unix_millis(&self) -> u64 {
        unix_millis(self.now())
    }
}

/// Whole seconds since the Unix epoch (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before the epoch).
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The operating system's wall clock (`SystemTime::now`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to: for tests. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn at(t: SystemTime) -> Self {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            millis: Arc::new(AtomicU64::new(millis)),
        }
    }

    /// A clock stopped at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.millis.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }

    /// Sets the clock to `t` (it may go backwards: a test of clock skew).
    pub fn set(&self, t: SystemTime) {
        let millis = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.millis.store(millis, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::Acquire))
    }
}

/// The clock used when none is configured.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
