//! [`Cached`]: a short-lived decision cache in front of any engine.

use std::sync::Arc;
use std::time::Duration;

use super::{Decision, Input, Pending, PolicyEngine};
use crate::clock::Clock;

/// How [`Cached`] caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a decision is reused. Default: 2 s. Longer means a policy change (or a changed
    /// fact outside the input) takes longer to show; the input's `request.time` is part of the
    /// key, so a cached decision is never reused for another second of the clock anyway.
    pub ttl: Duration,
    /// Most decisions kept (least recently used dropped first). Default: 10 000.
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(2),
            capacity: 10_000,
        }
    }
}

/// Wraps an engine with a decision cache keyed by the policy name and the whole input document
/// (its JSON text), entries expiring after [`CacheConfig::ttl`] on the injected clock.
///
/// Only real decisions are cached: a [`Decision::failed`] one (timeout, engine down) is not, so
/// the next request asks again.
pub struct Cached<E> {
    inner: E,
    cache: quick_cache::sync::Cache<String, (Decision, u64)>,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
}

impl<E> std::fmt::Debug for Cached<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("entries", &self.cache.len())
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl<E: PolicyEngine> Cached<E> {
    /// `inner` behind a cache configured by `config`, reading time from `clock`.
    pub fn new(inner: E, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            cache: quick_cache::sync::Cache::new(config.capacity.max(1)),
            clock,
            ttl_ms: u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The wrapped engine.
    pub fn get_ref(&self) -> &E {
        &self.inner
    }

    /// The cache key of `policy` and `input`.
    pub fn key(policy: &str, input: &Input) -> String {
        let mut key = String::with_capacity(policy.len() + 512);
        key.push_str(policy);
        key.push('\0');
        key.push_str(&input.to_json());
        key
    }

    /// The cached decision for `key`, if one is still fresh.
    pub fn lookup(&self, key: &str) -> Option<Decision> {
        let (decision, expires) = self.cache.get(key)?;
        (self.clock.unix_millis() < expires).then_some(decision)
    }

    /// Drops every cached decision (after a policy change, say).
    pub fn clear(&self) {
        self.cache.clear();
    }
}

impl<E: PolicyEngine> PolicyEngine for Cached<E> {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        let key = Self::key(policy, input);
        if let Some(hit) = self.lookup(&key) {
            return Pending::ready(hit);
        }
        let pending = self.inner.decide(policy, input);
        Pending::boxed(async move {
            let decision = pending.await;
            if !decision.failed {
                let expires = self.clock.unix_millis().saturating_add(self.ttl_ms);
                self.cache.insert(key, (decision.clone(), expires));
            }
            decision
        })
    }

    fn policies(&self) -> Vec<String> {
        self.inner.policies()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
