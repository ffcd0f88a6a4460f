//! The verified-key cache of [`ApiKeys`](super::ApiKeys): once a presented key has been checked
//! against its stored record, later presentations of the same key are answered from memory.
//!
//! ```text
//! presented key ─▶ format + checksum ─▶ cache[key id]?
//!   hit  (serving, SHA-256 of the key == cached hash in constant time, now < valid_until)
//!        ─▶ the cached Principal (last use still recorded for the batched flush)
//!   hash differs ─▶ 401 (the stored hash of an id never changes)
//!   miss / past valid_until / not serving ─▶ the store, then cached if valid
//! ```
//!
//! - **What is kept**: the key id (public), `SHA-256` of the key (the [`KeyHash`] the store
//!   already holds) and the principal. Never the raw key.
//! - **How long**: an entry is served until the key's own `expires_at` or `ttl` after it was
//!   read from the store (default [`DEFAULT_KEY_CACHE_TTL`], 30 s), whichever is sooner — the
//!   TTL is the safety net for a change the feed did not deliver.
//! - **Invalidation**: [`ApiKeys::revoke`](super::ApiKeys::revoke) and
//!   [`ApiKeys::rotate`](super::ApiKeys::rotate) evict the key here at once; changes made by
//!   other instances arrive through a change feed (`authz_axum::sql::KeyDatabase::follow`:
//!   PostgreSQL LISTEN/NOTIFY, SQLite polling) that calls [`KeyCache::evict`].
//! - **When it serves**: a store only this process writes ([`KeyStore::is_shared`] `false`, the
//!   memory store) is served from the start. A shared store (SQL) is served only while a feed
//!   follows it: the cache starts suspended, the feed [`resume`](KeyCache::resume)s it once it
//!   listens and [`suspend`](KeyCache::suspend)s it (emptying it) as soon as it loses the
//!   store — every check then goes to the store, as without a cache (503 while the store is
//!   down).
//! - **Races**: a store read that started before an eviction is never cached after it (every
//!   eviction moves an epoch; an insert from an older epoch is dropped).
//!
//! [`KeyHash`]: crate::apikey::KeyHash
//! [`KeyStore::is_shared`]: crate::keystore::KeyStore::is_shared

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache;

use crate::apikey::{ApiKeyRecord, KeyHash};
use crate::principal::Principal;

/// Default number of verified keys kept: 10 000.
pub const DEFAULT_KEY_CACHE_ENTRIES: usize = 10_000;

/// Default longest time an entry is served after it was read from the store: 30 s.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// How the verified-key cache is sized and how long it trusts an entry.
///
/// ```
/// use std::time::Duration;
/// use authz_core::auth::KeyCacheConfig;
///
/// let config = KeyCacheConfig::default().max_entries(50_000).ttl(Duration::from_secs(10));
/// assert_eq!(config.ttl, Duration::from_secs(10));
/// assert!(KeyCacheConfig::disabled().max_entries == 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCacheConfig {
    /// Most keys kept (least recently used go first). `0` disables the cache: every check
    /// reads the store. Default [`DEFAULT_KEY_CACHE_ENTRIES`].
    pub max_entries: usize,
    /// Longest time an entry is served after it was read from the store, in whole seconds
    /// (rounded up, at least 1 s), whatever the feed says: the bound on a change a feed did not
    /// deliver, and on how long a key keeps working through a store outage that no feed
    /// noticed. Default [`DEFAULT_KEY_CACHE_TTL`] (30 s). Shorter is safer and slower.
    pub ttl: Duration,
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_KEY_CACHE_ENTRIES,
            ttl: DEFAULT_KEY_CACHE_TTL,
        }
    }
}

impl KeyCacheConfig {
    /// No cache: every check reads the store (the behaviour before the cache existed).
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            ..Self::default()
        }
    }

    /// Sets [`max_entries`](Self::max_entries).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn ttl_secs(&self) -> u64 {
        let s = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        s.max(1)
    }
}

#[derive(Clone)]
struct Entry {
    hash: KeyHash,
    principal: Principal,
    /// Served while `now < valid_until` (seconds since the epoch).
    valid_until: u64,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A verified key: its principal.
    Hit(Principal),
    /// The id is cached but the presented key's hash is not the stored one.
    Mismatch,
    /// Ask the store.
    Miss,
}

/// A ticket taken before a store read: the read may be cached only if no eviction happened
/// since.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

/// Counters of the verified-key cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCacheStats {
    /// Checks answered from memory.
    pub hits: u64,
    /// Checks that read the store (not cached, past their time, or the cache not serving).
    pub misses: u64,
    /// Keys currently cached.
    pub entries: usize,
    /// Whether the cache answers checks now (see [`KeyCache::is_serving`]).
    pub serving: bool,
}

/// The verified-key cache of one [`ApiKeys`](super::ApiKeys) (see the [module docs](self)).
/// Change feeds drive it through [`evict`](Self::evict), [`suspend`](Self::suspend) and
/// [`resume`](Self::resume).
pub struct KeyCache {
    entries: Option<Cache<String, Entry>>,
    ttl_secs: u64,
    serving: AtomicBool,
    /// Moved by every eviction, under `writes`.
    epoch: AtomicU64,
    /// Serialises inserts with evictions (never taken on a hit).
    writes: Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counters only: entries hold principals and key hashes.
        f.debug_struct("KeyCache")
            .field("ttl_secs", &self.ttl_secs)
            .field("stats", &self.stats())
            .finish()
    }
}

impl KeyCache {
    /// A cache sized by `config`; `serving` says whether it answers from the start (a store no
    /// other process writes) or waits for a feed's [`resume`](Self::resume).
    pub(crate) fn new(config: KeyCacheConfig, serving: bool) -> Self {
        Self {
            entries: (config.max_entries > 0).then(|| Cache::new(config.max_entries)),
            ttl_secs: config.ttl_secs(),
            serving: AtomicBool::new(serving),
            epoch: AtomicU64::new(0),
            writes: Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether checks are answered from memory now: `false` when disabled, and for a shared
    /// store until a feed [`resume`](Self::resume)s it and after it
    /// [`suspend`](Self::suspend)s it.
    pub fn is_serving(&self) -> bool {
        self.entries.is_some() && self.serving.load(Ordering::Acquire)
    }

    /// How long an entry is trusted at most, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The key `hash` (of the presented key, whose id is `id`) as of `now`.
    #[inline]
    pub(crate) fn lookup(&self, id: &str, hash: &KeyHash, now: u64) -> Lookup {
        let Some(entries) = &self.entries else {
            return Lookup::Miss;
        };
        if !self.serving.load(Ordering::Acquire) {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        }
        match entries.get(id) {
            Some(e) if now < e.valid_until => {
                if e.hash.matches(hash) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    Lookup::Hit(e.principal)
                } else {
                    Lookup::Mismatch
                }
            }
            Some(_) => {
                // Past the key's expiry or the TTL: the store decides again.
                entries.remove(id);
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// Taken before reading the store.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.epoch.load(Ordering::Acquire))
    }

    /// Caches `record`'s verification (read at `now`), unless an eviction happened since
    /// `ticket` or the cache is not serving.
    pub(crate) fn insert(&self, ticket: Ticket, record: &ApiKeyRecord, principal: Principal, now: u64) {
        let Some(entries) = &self.entries else {
            return;
        };
        let valid_until = record
            .expires_at
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(self.ttl_secs));
        let _w = self.lock();
        if self.serving.load(Ordering::Acquire) && self.epoch.load(Ordering::Acquire) == ticket.0 {
            entries.insert(
                record.id.clone(),
                Entry {
                    hash: record.hash,
                    principal,
                    valid_until,
                },
            );
        }
    }

    /// Forgets key `id` (revoked, rotated, expired or edited): its next check reads the store.
    /// Store reads in flight are not cached afterwards.
    pub fn evict(&self, id: &str) {
        let _w = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.remove(id);
        }
    }

    /// Forgets every key.
    pub fn clear(&self) {
        let _w = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Stops answering from memory and forgets every key (a feed lost the store: changes from
    /// other instances may be missed). Every check reads the store until
    /// [`resume`](Self::resume).
    pub fn suspend(&self) {
        let _w = self.lock();
        self.serving.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Forgets every key and answers from memory again (a feed follows the store: it is
    /// listening, or has just read the change sequence). Call it only once the feed will
    /// see every later change.
    pub fn resume(&self) {
        let _w = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.clear();
        }
        self.serving.store(true, Ordering::Release);
    }

    /// Hits, misses, size and whether it is serving.
    pub fn stats(&self) -> KeyCacheStats {
        KeyCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.as_ref().map_or(0, Cache::len),
            serving: self.is_serving(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apikey::{self, ApiKeyFormat};
    use crate::{PermissionCatalog, Policy, RoleSpec};

    fn verified(now: u64, expires_at: Option<u64>) -> (String, ApiKeyRecord, Principal) {
        let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
        let policy = Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap();
        let format = ApiKeyFormat::default();
        let key = format.generate();
        let record = ApiKeyRecord::new(&key, "bot", vec!["viewer".into()], expires_at);
        let raw = key.expose_raw().to_string();
        let p = apikey::authenticate(format.parse(&raw).unwrap(), Some(&record), &policy, now).unwrap();
        (raw, record, p)
    }

    fn hit(cache: &KeyCache, raw: &str, record: &ApiKeyRecord, now: u64) -> bool {
        matches!(cache.lookup(&record.id, &KeyHash::of(raw), now), Lookup::Hit(_))
    }

    #[test]
    fn a_read_that_started_before_an_eviction_is_not_cached_after_it() {
        let cache = KeyCache::new(KeyCacheConfig::default(), true);
        let (raw, record, p) = verified(100, None);
        let ticket = cache.ticket();
        cache.evict(&record.id); // e.g. a revocation committed while the record was read
        cache.insert(ticket, &record, p.clone(), 100);
        assert!(!hit(&cache, &raw, &record, 100));
        cache.insert(cache.ticket(), &record, p, 100);
        assert!(hit(&cache, &raw, &record, 100));
        assert!(matches!(
            cache.lookup(&record.id, &KeyHash::of("azk_other"), 100),
            Lookup::Mismatch
        ));
    }

    #[test]
    fn expiry_ttl_and_suspension() {
        let cache = KeyCache::new(KeyCacheConfig::default().ttl(Duration::from_millis(1500)), true);
        assert_eq!(cache.ttl_secs(), 2, "rounded up to whole seconds");
        let (raw, record, p) = verified(100, Some(101));
        cache.insert(cache.ticket(), &record, p.clone(), 100);
        assert!(hit(&cache, &raw, &record, 100));
        assert!(!hit(&cache, &raw, &record, 101), "never at or past expires_at");
        let (raw, record, p) = verified(100, None);
        cache.insert(cache.ticket(), &record, p.clone(), 100);
        assert!(hit(&cache, &raw, &record, 101));
        assert!(!hit(&cache, &raw, &record, 102), "never past the TTL");

        cache.insert(cache.ticket(), &record, p.clone(), 102);
        let ticket = cache.ticket();
        cache.suspend();
        assert!(!cache.is_serving() && cache.stats().entries == 0);
        assert!(!hit(&cache, &raw, &record, 102));
        cache.insert(ticket, &record, p.clone(), 102);
        cache.insert(cache.ticket(), &record, p.clone(), 102);
        assert_eq!(cache.stats().entries, 0, "nothing cached while suspended");
        cache.resume();
        cache.insert(ticket, &record, p.clone(), 102);
        assert_eq!(cache.stats().entries, 0, "a ticket from before the resume");
        cache.insert(cache.ticket(), &record, p, 102);
        assert!(hit(&cache, &raw, &record, 102));
        assert!(!format!("{cache:?}").contains(&raw[4..]));
    }

    #[test]
    fn disabled_caches_nothing() {
        let cache = KeyCache::new(KeyCacheConfig::disabled(), true);
        let (raw, record, p) = verified(100, None);
        cache.insert(cache.ticket(), &record, p, 100);
        cache.resume();
        assert!(!cache.is_serving());
        assert!(!hit(&cache, &raw, &record, 100));
    }
}
