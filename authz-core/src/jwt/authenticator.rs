//! [`JwtAuthenticator`]: verifier + claim mapping + policy + a bounded cache of verified tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::error::{JwtError, JwtErrorKind};
use super::key::KeySet;
use super::mapping::ClaimMapping;
use super::verifier::{JwtVerifier, unix_now};
use crate::policy::Policy;
use crate::principal::{AuthMethod, Principal, PrincipalParts};

/// Default number of verified tokens kept.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// Turns a bearer JWT into a [`Principal`].
///
/// Verified tokens are cached (keyed by the whole token, never served at or past `exp`) so
/// that a client reusing its token is not re-verified on every request. The cache holds at most
/// [`DEFAULT_CACHE_ENTRIES`] (or the configured number of) entries and at most 1.25 KiB per
/// entry of token bytes: tokens larger than 1 KiB count as several entries.
pub struct JwtAuthenticator {
    verifier: JwtVerifier,
    mapping: ClaimMapping,
    /// Top-level claims the mapping reads, computed once.
    wanted: Vec<String>,
    policy: Arc<Policy>,
    cache: Option<TokenCache>,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("verifier", &self.verifier)
            .field("mapping", &self.mapping)
            .field("cache", &self.cache.as_ref().map(|c| c.stats()))
            .finish_non_exhaustive()
    }
}

/// What a cached principal is counted as, besides its token's bytes.
const PRINCIPAL_WEIGHT: u64 = 256;
/// The smallest weight of one entry (a 1 KiB token and its principal).
const ENTRY_WEIGHT: u64 = 1024 + PRINCIPAL_WEIGHT;

#[derive(Clone)]
struct TokenWeighter;

impl Weighter<Box<str>, (Principal, u64)> for TokenWeighter {
    fn weight(&self, key: &Box<str>, _: &(Principal, u64)) -> u64 {
        // The token's bytes plus a share for the principal, but never less than one
        // entry's worth: the budget bounds the entry count and the bytes held.
        (key.len() as u64 + PRINCIPAL_WEIGHT).max(ENTRY_WEIGHT)
    }
}

struct TokenCache {
    entries: Cache<Box<str>, (Principal, u64), TokenWeighter>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    fn new(max_entries: usize) -> Self {
        // At most `max_entries` entries, and at most `max_entries` × 1.25 KiB of tokens.
        let weight = max_entries as u64 * ENTRY_WEIGHT;
        Self {
            entries: Cache::with_weighter(max_entries, weight, TokenWeighter),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.len(),
        }
    }
}

/// Counters of the verified-token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that needed full verification.
    pub misses: u64,
    /// Tokens currently cached.
    pub entries: usize,
}

impl JwtAuthenticator {
    /// An authenticator with the default claim mapping and a cache of
    /// [`DEFAULT_CACHE_ENTRIES`] tokens.
    pub fn new(verifier: JwtVerifier, policy: Arc<Policy>) -> Self {
        let mapping = ClaimMapping::default();
        Self {
            verifier,
            wanted: mapping.top_level_claims(),
            mapping,
            policy,
            cache: Some(TokenCache::new(DEFAULT_CACHE_ENTRIES)),
        }
    }

    /// Replaces the claim mapping.
    pub fn with_mapping(mut self, mapping: ClaimMapping) -> Self {
        self.wanted = mapping.top_level_claims();
        self.mapping = mapping;
        self
    }

    /// Caches up to `max_entries` verified tokens; 0 turns the cache off.
    pub fn with_cache_entries(mut self, max_entries: usize) -> Self {
        self.cache = (max_entries > 0).then(|| TokenCache::new(max_entries));
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The policy principals are resolved with.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Cache counters (all zero when the cache is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(TokenCache::stats).unwrap_or_default()
    }

    /// Forgets every cached token (call when keys were removed from the key set).
    pub fn clear_cache(&self) {
        if let Some(c) = &self.cache {
            c.entries.clear();
        }
    }

    /// The cached principal for `token`, if it is cached and not expired.
    #[inline]
    pub fn cached(&self, token: &str) -> Option<Principal> {
        let cache = self.cache.as_ref()?;
        match cache.entries.get(token) {
            Some((principal, exp)) if unix_now() < exp => {
                cache.hits.fetch_add(1, Ordering::Relaxed);
                Some(principal)
            }
            _ => None,
        }
    }

    /// Verifies `token` against `keys` and maps it to a principal (from the cache when possible).
    pub fn authenticate(&self, token: &str, keys: &KeySet) -> Result<Principal, JwtError> {
        if let Some(p) = self.cached(token) {
            return Ok(p);
        }
        self.authenticate_uncached(token, keys, unix_now())
    }

    /// Verifies as of `now` (seconds since the epoch), bypassing the cache for the lookup.
    pub fn authenticate_uncached(&self, token: &str, keys: &KeySet, now: u64) -> Result<Principal, JwtError> {
        if let Some(c) = &self.cache {
            c.misses.fetch_add(1, Ordering::Relaxed);
        }
        let super::verifier::Verified {
            registered, mapped, ..
        } = self
            .verifier
            .verify_with(token, keys, now, &self.wanted, |claims, payload| {
                self.mapping.map(claims, payload).map_err(JwtError::from)
            })?;
        let subject = registered.sub.clone().ok_or(JwtErrorKind::MissingClaim("sub"))?;
        let catalog = self.policy.catalog();
        let extra_permissions = mapped.permissions.iter().filter_map(|p| catalog.id(p)).collect();
        let exp = registered.exp;
        let principal = Principal::new(
            PrincipalParts {
                subject,
                issuer: Some(registered.iss),
                tenant: mapped.tenant,
                roles: mapped.roles,
                scopes: mapped.scopes,
                extra_permissions,
                expires_at: Some(exp),
                auth_method: AuthMethod::Jwt,
                claims: mapped.custom,
            },
            &self.policy,
        );
        if let Some(c) = &self.cache
            && now < exp
        {
            c.entries.insert(token.into(), (principal.clone(), exp));
        }
        Ok(principal)
    }
}
