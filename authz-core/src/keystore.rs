//! Where API key records live: one trait, an in-memory store here, SQLite and PostgreSQL stores
//! in `authz-axum` (feature `sqlx`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use crate::apikey::ApiKeyRecord;

/// A boxed future, so that stores can be used as `dyn KeyStore`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A storage failure (the request then gets 503: the key source is down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key store: {0}")]
pub struct StoreError(pub String);

/// Storage of API key records. Implementations never see a raw key, only its hash.
pub trait KeyStore: Send + Sync + 'static {
    /// Adds a record; an existing id is an error.
    fn insert(&self, record: ApiKeyRecord) -> StoreFuture<'_, ()>;
    /// The record with this id.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>>;
    /// Every record, newest first.
    fn list(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>>;
    /// Marks the key revoked at `at`; `false` if there is no such key.
    fn revoke<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool>;
    /// Moves the key's expiry to `at` (never later than it was); `false` if there is no such key.
    fn expire_by<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool>;
    /// Records last use times, in one batch.
    fn touch<'a>(&'a self, used: &'a [(String, u64)]) -> StoreFuture<'a, ()>;

    /// Whether processes other than this one may change the records (another instance, a CLI
    /// on the same database). Default `true` (the safe answer): then
    /// [`ApiKeys`](crate::auth::ApiKeys)' verified-key cache answers only while a change feed
    /// follows the store. `false` (the memory store): the cache serves from the start, since
    /// every change goes through this process's `ApiKeys`.
    fn is_shared(&self) -> bool {
        true
    }

    /// Whether the store answers (readiness probes). Default: a lookup of an id no key has.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.get("\u{0}readiness").await.map(|_| ()) })
    }

    /// Rotation: moves `old_id`'s expiry to `old_expires_by` (never later) and inserts `new`,
    /// **both or neither**. `false` (and nothing inserted) if `old_id` does not exist or is
    /// revoked. The default runs the two steps one after the other — a store that can, should
    /// override it with one transaction (the memory and SQL stores do).
    fn rotate<'a>(
        &'a self,
        new: ApiKeyRecord,
        old_id: &'a str,
        old_expires_by: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if !self.expire_by(old_id, old_expires_by).await? {
                return Ok(false);
            }
            self.insert(new).await?;
            Ok(true)
        })
    }
}

/// Records in memory (tests, demos). Lost on restart.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    records: RwLock<HashMap<String, ApiKeyRecord>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError("lock poisoned".into())
}

impl KeyStore for MemoryKeyStore {
    /// `false`: only this process sees these records.
    fn is_shared(&self) -> bool {
        false
    }

    fn insert(&self, record: ApiKeyRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut map = self.records.write().map_err(poisoned)?;
            if map.contains_key(&record.id) {
                return Err(StoreError(format!("key id {} exists", record.id)));
            }
            map.insert(record.id.clone(), record);
            Ok(())
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
        Box::pin(async move { Ok(self.records.read().map_err(poisoned)?.get(id).cloned()) })
    }

    fn list(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>> {
        Box::pin(async move {
            let mut all: Vec<ApiKeyRecord> =
                self.records.read().map_err(poisoned)?.values().cloned().collect();
            all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            Ok(all)
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(match self.records.write().map_err(poisoned)?.get_mut(id) {
                Some(r) => {
                    r.revoked_at.get_or_insert(at);
                    true
                }
                None => false,
            })
        })
    }

    fn rotate<'a>(
        &'a self,
        new: ApiKeyRecord,
        old_id: &'a str,
        old_expires_by: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // One lock for both steps.
            let mut map = self.records.write().map_err(poisoned)?;
            if map.contains_key(&new.id) {
                return Err(StoreError(format!("key id {} exists", new.id)));
            }
            match map.get_mut(old_id) {
                Some(r) if r.revoked_at.is_none() => {
                    r.expires_at = Some(r.expires_at.map_or(old_expires_by, |e| e.min(old_expires_by)));
                }
                _ => return Ok(false),
            }
            map.insert(new.id.clone(), new);
            Ok(true)
        })
    }

    fn expire_by<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(match self.records.write().map_err(poisoned)?.get_mut(id) {
                Some(r) => {
                    r.expires_at = Some(r.expires_at.map_or(at, |e| e.min(at)));
                    true
                }
                None => false,
            })
        })
    }

    fn touch<'a>(&'a self, used: &'a [(String, u64)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut map = self.records.write().map_err(poisoned)?;
            for (id, at) in used {
                if let Some(r) = map.get_mut(id) {
                    r.last_used_at = Some(r.last_used_at.map_or(*at, |l| l.max(*at)));
                }
            }
            Ok(())
        })
    }
}
