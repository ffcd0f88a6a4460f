//! API keys as a second credential: issuance, rotation with an overlap window, revocation, and
//! verification that yields the same [`Principal`] as a JWT.
//!
//! A key is read from the store the first time it is presented; later presentations are
//! answered from the verified-key cache ([`KeyCache`], keyed by key id and holding only the
//! key's SHA-256), which [`revoke`](ApiKeys::revoke) and [`rotate`](ApiKeys::rotate) empty of
//! the key at once and a change feed keeps current across instances (see
//! [`key_cache`](super::key_cache)). `last_used_at` is recorded in memory — for cached checks
//! too — and written in batches by a background task, never on the request's critical path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::AuthError;
use super::key_cache::{KeyCache, KeyCacheConfig, Lookup};
use crate::apikey::{self, ApiKeyFormat, ApiKeyRecord, GeneratedKey, KeyHash, ParsedKey};
use crate::clock::{self, Clock};
use crate::keystore::{KeyStore, StoreError};
use crate::{Policy, Principal};

/// API key issuance and verification over a [`KeyStore`].
pub struct ApiKeys {
    format: ApiKeyFormat,
    store: Arc<dyn KeyStore>,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
    cache: KeyCache,
    pending: Mutex<HashMap<String, u64>>,
    /// When (seconds since the epoch) the last store-outage warning was logged.
    last_outage_warning: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("format", &self.format)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The key shown once at creation or rotation, with its stored record.
#[derive(Debug)]
pub struct Issued {
    /// What is stored (no secret in it).
    pub record: ApiKeyRecord,
    /// The raw key: show it to the caller once, then drop it.
    pub key: GeneratedKey,
}

impl ApiKeys {
    /// Keys of `format`, stored in `store`, whose roles resolve through `policy`.
    pub fn new(format: ApiKeyFormat, store: Arc<dyn KeyStore>, policy: Arc<Policy>) -> Arc<Self> {
        Self::with_clock(format, store, policy, clock::system())
    }

    /// Like [`ApiKeys::new`], reading expiry and use times from `clock`.
    ///
    /// The verified-key cache has the defaults of [`KeyCacheConfig`] (10 000 keys, 30 s TTL).
    /// Over a store other processes may write ([`KeyStore::is_shared`], the SQL stores) it
    /// answers nothing until a change feed follows the store
    /// (`authz_axum::sql::KeyDatabase::follow`): without one every check reads the store.
    pub fn with_clock(
        format: ApiKeyFormat,
        store: Arc<dyn KeyStore>,
        policy: Arc<Policy>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Self::with_cache(format, store, policy, clock, KeyCacheConfig::default())
    }

    /// Like [`ApiKeys::with_clock`], with the verified-key cache sized by `cache`
    /// ([`KeyCacheConfig::disabled`]: none).
    pub fn with_cache(
        format: ApiKeyFormat,
        store: Arc<dyn KeyStore>,
        policy: Arc<Policy>,
        clock: Arc<dyn Clock>,
        cache: KeyCacheConfig,
    ) -> Arc<Self> {
        let serving = !store.is_shared();
        Arc::new(Self {
            format,
            store,
            policy,
            clock,
            cache: KeyCache::new(cache, serving),
            pending: Mutex::new(HashMap::new()),
            last_outage_warning: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    /// Writes `last_used_at` every `every` from a background task (which ends when the last
    /// `Arc` is dropped). Needs a Tokio runtime (feature `tokio`).
    #[cfg(feature = "tokio")]
    pub fn start_flusher(self: &Arc<Self>, every: Duration) {
        let weak: std::sync::Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(keys) = weak.upgrade() else { return };
                if let Err(e) = keys.flush_last_used().await {
                    tracing::warn!(error = %e, "could not record API key use; will retry");
                }
            }
        });
    }

    /// The key format.
    pub fn format(&self) -> &ApiKeyFormat {
        &self.format
    }

    /// Whether `role` is a role of the policy keys are resolved with.
    pub fn has_role(&self, role: &str) -> bool {
        self.policy.has_role(role)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// The verified-key cache (its counters; what change feeds drive).
    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// Issues a key for `owner` with `roles` (each must be a role of the policy).
    pub async fn create(
        &self,
        owner: &str,
        roles: Vec<String>,
        expires_at: Option<u64>,
        description: Option<String>,
    ) -> Result<Issued, StoreError> {
        self.create_in_tenant(owner, None, roles, expires_at, description)
            .await
    }

    /// Like [`create`](Self::create), for a key that acts in `tenant` (its principal's
    /// [`Principal::tenant`](crate::Principal::tenant); resource checks compare it with the
    /// resource's tenant). Rotation keeps the tenant.
    ///
    /// # Errors
    /// As [`create`](Self::create); an empty tenant.
    pub async fn create_in_tenant(
        &self,
        owner: &str,
        tenant: Option<&str>,
        roles: Vec<String>,
        expires_at: Option<u64>,
        description: Option<String>,
    ) -> Result<Issued, StoreError> {
        if tenant.is_some_and(|t| t.trim().is_empty()) {
            return Err(StoreError("an API key's tenant cannot be empty".into()));
        }
        if let Some(unknown) = roles.iter().find(|r| !self.policy.has_role(r)) {
            return Err(StoreError(format!(
                "role `{unknown}` is not a role of the policy"
            )));
        }
        if owner.trim().is_empty() {
            return Err(StoreError("an API key needs an owner".into()));
        }
        let key = self.format.generate();
        let mut record = ApiKeyRecord::new(&key, owner, roles, expires_at);
        record.created_at = self.now();
        record.description = description;
        record.tenant = tenant.map(str::to_string);
        self.store.insert(record.clone()).await?;
        tracing::info!(key_id = %record.id, owner = %record.owner, "API key created");
        Ok(Issued { record, key })
    }

    /// Replaces key `id` by a new one with the same owner, roles, scopes and expiry; the old
    /// key keeps working for `overlap` (or until its own expiry, if sooner), then stops — also
    /// when cached: the old key leaves this instance's cache at once and is cached again only
    /// with its new expiry (other instances: through their feed).
    pub async fn rotate(&self, id: &str, overlap: Duration) -> Result<Option<Issued>, StoreError> {
        let rotated = self.rotate_in_store(id, overlap).await;
        // Also after a failure: the write may have landed (a timeout after the commit).
        self.cache.evict(id);
        rotated
    }

    async fn rotate_in_store(&self, id: &str, overlap: Duration) -> Result<Option<Issued>, StoreError> {
        let Some(old) = self.store.get(id).await? else {
            return Ok(None);
        };
        let now = self.now();
        if !old.is_active_at(now) {
            return Ok(None);
        }
        let key = self.format.generate();
        let mut record = ApiKeyRecord::new(&key, old.owner.clone(), old.roles.clone(), old.expires_at);
        record.created_at = now;
        record.scopes = old.scopes.clone();
        record.description = old.description.clone();
        record.rotated_from = Some(old.id.clone());
        record.tenant = old.tenant.clone();
        // Both steps or neither (one transaction in the SQL stores).
        if !self
            .store
            .rotate(record.clone(), id, now.saturating_add(overlap.as_secs()))
            .await?
        {
            return Ok(None);
        }
        tracing::info!(key_id = %record.id, replaces = %id, overlap_s = overlap.as_secs(), "API key rotated");
        Ok(Some(Issued { record, key }))
    }

    /// Revokes key `id` at once; `false` if there is no such key. The key leaves this
    /// instance's cache when the write returns (also after a failure); other instances evict it
    /// when their feed delivers the change (PostgreSQL: at commit; SQLite: next poll).
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let done = self.store.revoke(id, self.now()).await;
        self.cache.evict(id);
        let done = done?;
        if done {
            tracing::info!(key_id = %id, "API key revoked");
        }
        Ok(done)
    }

    /// Every record (never a secret: records hold only hashes).
    pub async fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.list().await
    }

    /// Verifies a presented key now and returns its principal.
    ///
    /// # Errors
    /// [`AuthError::InvalidApiKey`] (401) or [`AuthError::Unavailable`] (503: store down).
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        self.authenticate_at(presented, self.now()).await
    }

    /// Verifies a presented key as of `at` (seconds since the epoch): from the verified-key
    /// cache when it holds the key (same hash, compared in constant time; `at` before the
    /// key's expiry and the entry's TTL), else from the store, caching a valid result.
    ///
    /// # Errors
    /// [`AuthError::InvalidApiKey`] (401: malformed, unknown, wrong secret, revoked, expired)
    /// or [`AuthError::Unavailable`] (503: the store did not answer and the cache could not).
    pub async fn authenticate_at(&self, presented: &str, at: u64) -> Result<Principal, AuthError> {
        let parsed = self.format.parse(presented).map_err(AuthError::InvalidApiKey)?;
        let hash = KeyHash::of(parsed.raw());
        if let Some(answer) = self.cache_answer(parsed, &hash, at) {
            return answer;
        }
        self.store_answer(parsed, &hash, at).await
    }

    /// What can be said without awaiting anything (the auth layer's fast path): a malformed
    /// key, or the verified-key cache's answer. `None`: the store must be read
    /// ([`store_answer_at`](Self::store_answer_at)).
    pub(crate) fn answer_now(&self, presented: &str, at: u64) -> Option<Result<Principal, AuthError>> {
        let parsed = match self.format.parse(presented) {
            Ok(p) => p,
            Err(e) => return Some(Err(AuthError::InvalidApiKey(e))),
        };
        self.cache_answer(parsed, &KeyHash::of(parsed.raw()), at)
    }

    /// [`authenticate_at`](Self::authenticate_at) without the cache lookup, for a key
    /// [`answer_now`](Self::answer_now) could not answer.
    pub(crate) async fn store_answer_at(&self, presented: &str, at: u64) -> Result<Principal, AuthError> {
        let parsed = self.format.parse(presented).map_err(AuthError::InvalidApiKey)?;
        self.store_answer(parsed, &KeyHash::of(parsed.raw()), at).await
    }

    fn cache_answer(
        &self,
        parsed: ParsedKey<'_>,
        hash: &KeyHash,
        at: u64,
    ) -> Option<Result<Principal, AuthError>> {
        match self.cache.lookup(parsed.id(), hash, at) {
            Lookup::Hit(principal) => {
                self.record_use(parsed.id(), at);
                Some(Ok(principal))
            }
            // The stored hash of an id never changes (a change would have evicted it).
            Lookup::Mismatch => Some(Err(AuthError::InvalidApiKey(apikey::ApiKeyError::Mismatch))),
            Lookup::Miss => None,
        }
    }

    async fn store_answer(
        &self,
        parsed: ParsedKey<'_>,
        hash: &KeyHash,
        at: u64,
    ) -> Result<Principal, AuthError> {
        let ticket = self.cache.ticket();
        let record = self.store.get(parsed.id()).await.map_err(|e| {
            // At most one warning per second: an outage under load must not flood the log.
            let last = self
                .last_outage_warning
                .load(std::sync::atomic::Ordering::Relaxed);
            if at > last
                && self
                    .last_outage_warning
                    .compare_exchange(
                        last,
                        at,
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                    )
                    .is_ok()
            {
                tracing::warn!(error = %e, "API key store unavailable: key requests get 503");
            } else {
                tracing::debug!(error = %e, "API key store unavailable");
            }
            AuthError::Unavailable
        })?;
        let principal = apikey::authenticate_hashed(parsed, hash, record.as_ref(), &self.policy, at)
            .map_err(AuthError::InvalidApiKey)?;
        if let Some(record) = &record {
            self.cache.insert(ticket, record, principal.clone(), at);
        }
        self.record_use(parsed.id(), at);
        Ok(principal)
    }

    /// Remembers a successful use for the next [`flush_last_used`](Self::flush_last_used).
    fn record_use(&self, id: &str, at: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            match pending.get_mut(id) {
                Some(last) => *last = (*last).max(at),
                None => {
                    pending.insert(id.to_string(), at);
                }
            }
        }
    }

    /// Writes the pending `last_used_at` times in one batch.
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        let batch: Vec<(String, u64)> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return Err(StoreError("lock poisoned".into())),
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.touch(&batch).await {
            // Put them back (keeping any newer use) for the next flush.
            if let Ok(mut p) = self.pending.lock() {
                for (id, at) in batch {
                    let e = p.entry(id).or_insert(at);
                    *e = (*e).max(at);
                }
            }
            return Err(e);
        }
        Ok(())
    }
}
