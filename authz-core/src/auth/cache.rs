//! The verified-token cache: whole token → principal, never served at or past `exp`, nor after
//! the issuer's keys changed under it.

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::principal::Principal;

/// Default number of verified tokens kept.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// What a cached principal is counted as, besides its token's bytes.
const PRINCIPAL_WEIGHT: u64 = 256;
/// The smallest weight of one entry (a 1 KiB token and its principal).
const ENTRY_WEIGHT: u64 = 1024 + PRINCIPAL_WEIGHT;

/// A cached verification.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) principal: Principal,
    /// `exp`, seconds since the epoch.
    pub(crate) exp: u64,
    /// Which issuer verified it.
    pub(crate) issuer: u32,
    /// That issuer's key generation at verification time.
    pub(crate) generation: u64,
}

#[derive(Clone)]
struct TokenWeighter;

impl Weighter<Box<str>, Entry> for TokenWeighter {
    fn weight(&self, key: &Box<str>, _: &Entry) -> u64 {
        // The token's bytes plus a share for the principal, but never less than one entry's
        // worth: the budget bounds the entry count and the bytes held.
        (key.len() as u64 + PRINCIPAL_WEIGHT).max(ENTRY_WEIGHT)
    }
}

pub(crate) struct TokenCache {
    entries: Cache<Box<str>, Entry, TokenWeighter>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// At most `max_entries` entries, and at most `max_entries` × 1.25 KiB of tokens.
    pub(crate) fn new(max_entries: usize) -> Self {
        let weight = max_entries as u64 * ENTRY_WEIGHT;
        Self {
            entries: Cache::with_weighter(max_entries, weight, TokenWeighter),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(token)
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.entries.insert(token.into(), entry);
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    pub(crate) fn stats(&self) -> CacheStats {
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
