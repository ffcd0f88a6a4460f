//! The verified-token cache: whole token → principal, never served at or past `exp`, nor after
//! the issuer's keys changed under it.

use std::hash::{Hash, Hasher};
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

/// How many bytes of a token's end are hashed.
const HASHED_TAIL: usize = 32;

/// A cached token. Hashed by its length and its last [`HASHED_TAIL`] bytes — the signature,
/// already uniformly distributed — and compared in full: hashing a 600-byte RS256 token whole
/// cost more than the rest of a cache hit. Only verified tokens are ever inserted, so nobody
/// can fill the cache with colliding tails (each would need a valid signature).
#[derive(Clone, PartialEq, Eq)]
struct TokenKey(Box<str>);

/// A lookup by the presented bytes without allocating.
#[derive(Clone, Copy)]
struct TokenRef<'a>(&'a [u8]);

fn hash_token<H: Hasher>(bytes: &[u8], state: &mut H) {
    state.write_usize(bytes.len());
    state.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(self.0.as_bytes(), state);
    }
}

impl Hash for TokenRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(self.0, state);
    }
}

impl quick_cache::Equivalent<TokenKey> for TokenRef<'_> {
    fn equivalent(&self, key: &TokenKey) -> bool {
        key.0.as_bytes() == self.0
    }
}

#[derive(Clone)]
struct TokenWeighter;

impl Weighter<TokenKey, Entry> for TokenWeighter {
    fn weight(&self, key: &TokenKey, _: &Entry) -> u64 {
        // The token's bytes plus a share for the principal, but never less than one entry's
        // worth: the budget bounds the entry count and the bytes held.
        (key.0.len() as u64 + PRINCIPAL_WEIGHT).max(ENTRY_WEIGHT)
    }
}

pub(crate) struct TokenCache {
    entries: Cache<TokenKey, Entry, TokenWeighter>,
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

    /// The entry of the token whose bytes are `token`. A hit is byte-identical to a token that
    /// verified, so it is a JWS in compact form: base64url segments and dots, nothing else.
    #[inline]
    pub(crate) fn get(&self, token: &[u8]) -> Option<Entry> {
        self.entries.get(&TokenRef(token))
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        // What `get`'s callers rely on: only a compact JWS that decoded is ever a key.
        debug_assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        );
        self.entries.insert(TokenKey(token.into()), entry);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PermissionCatalog, Policy, Principal};
    use std::sync::Arc;

    #[test]
    fn tokens_sharing_a_tail_are_still_different_entries() {
        let catalog = Arc::new(PermissionCatalog::new(["a:b"]).unwrap());
        let policy = Policy::builder(catalog).build().unwrap();
        let entry = |sub: &str| Entry {
            principal: Principal::for_testing(sub, ["r"], &policy),
            exp: u64::MAX,
            issuer: 0,
            generation: 0,
        };
        let cache = TokenCache::new(100);
        let tail = "x".repeat(HASHED_TAIL);
        let (one, two) = (format!("aaa.{tail}"), format!("bbb.{tail}"));
        cache.insert(&one, entry("one"));
        cache.insert(&two, entry("two"));
        assert_eq!(cache.get(one.as_bytes()).unwrap().principal.subject(), "one");
        assert_eq!(cache.get(two.as_bytes()).unwrap().principal.subject(), "two");
        assert!(cache.get(format!("ccc.{tail}").as_bytes()).is_none());
        assert!(cache.get(b"short").is_none());
        cache.insert("short", entry("short"));
        assert_eq!(cache.get(b"short").unwrap().principal.subject(), "short");
    }
}
