//! The revocation list (deny-list) the authenticator consults after a token's signature — and
//! on every cache hit: access tokens revoked before they expire (by `jti`), and every token of
//! a subject issued up to a moment (by `iss` + `sub` + `iat`).
//!
//! The lookup is in process: a read lock and one hash-map probe of a 64-bit keyed hash (no
//! allocation), nothing at all while the list is empty. Entries leave once the tokens they
//! name have expired ([`RevocationList::purge`]). Sharing between instances and surviving
//! restarts is a [`RevocationStore`]'s job (SQLite and PostgreSQL with LISTEN/NOTIFY in
//! `authz-axum`, feature `sqlx`): it records each [`Revocation`] and feeds every instance's
//! list.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::keystore::StoreFuture;

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One token: its issuer and `jti`, kept until `expires_at` (its `exp`).
    Token {
        /// `iss`.
        issuer: String,
        /// `jti`.
        jti: String,
        /// The token's `exp`: after it the entry is useless.
        expires_at: u64,
    },
    /// Every token of `subject` from `issuer` issued at or before `issued_before` (its `iat`),
    /// kept until `expires_at` (the latest `exp` such a token can have).
    Subject {
        /// `iss`.
        issuer: String,
        /// `sub`.
        subject: String,
        /// Tokens with `iat` ≤ this are revoked (tokens without `iat` too).
        issued_before: u64,
        /// When the entry can go.
        expires_at: u64,
    },
}

impl Revocation {
    /// When the entry can be forgotten.
    pub fn expires_at(&self) -> u64 {
        match self {
            Self::Token { expires_at, .. } | Self::Subject { expires_at, .. } => *expires_at,
        }
    }
}

/// A 64-bit key hashed with a per-process random seed (SipHash-1-3 from std): no allocation
/// per lookup, and no one outside the process can aim for a collision.
#[derive(Default)]
struct Keyed(std::collections::hash_map::RandomState);

impl Keyed {
    /// The hasher state after `issuer`: a lookup hashes the issuer once for both keys.
    fn issuer(&self, issuer: &str) -> std::hash::DefaultHasher {
        let mut h = self.0.build_hasher();
        h.write(issuer.as_bytes());
        h.write_u8(0xff);
        h
    }

    fn key_from(issuer: &std::hash::DefaultHasher, kind: u8, value: &str) -> u64 {
        let mut h = issuer.clone();
        h.write_u8(kind);
        h.write(value.as_bytes());
        h.finish()
    }

    fn key(&self, kind: u8, issuer: &str, value: &str) -> u64 {
        Self::key_from(&self.issuer(issuer), kind, value)
    }
}

/// A hasher for keys that already are hashes.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, (u64, u64), std::hash::BuildHasherDefault<Identity>>;

/// The in-process deny-list. Share it (`Arc`) between the authenticator and whatever feeds it.
#[derive(Default)]
pub struct RevocationList {
    seed: Keyed,
    /// key → (`issued_before` for subjects / 0 for tokens, `expires_at`).
    entries: RwLock<Map>,
    len: AtomicUsize,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("entries", &self.len())
            .finish()
    }
}

const TOKEN: u8 = 1;
const SUBJECT: u8 = 2;

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a revocation (idempotent; a later subject cut-off replaces an earlier one).
    pub fn insert(&self, revocation: &Revocation) {
        let (key, value) = match revocation {
            Revocation::Token {
                issuer,
                jti,
                expires_at,
            } => (self.seed.key(TOKEN, issuer, jti), (0, *expires_at)),
            Revocation::Subject {
                issuer,
                subject,
                issued_before,
                expires_at,
            } => (
                self.seed.key(SUBJECT, issuer, subject),
                (*issued_before, *expires_at),
            ),
        };
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(key).or_insert((0, 0));
        slot.0 = slot.0.max(value.0);
        slot.1 = slot.1.max(value.1);
        self.len.store(map.len(), Ordering::Release);
    }

    /// Whether a token of `issuer` with `jti`, `subject` and `issued_at` is revoked.
    pub fn is_revoked(&self, issuer: &str, jti: Option<&str>, subject: &str, issued_at: Option<u64>) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        // The issuer is hashed once for both keys; the subject key only if the jti missed.
        let iss = self.seed.issuer(issuer);
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        if let Some(jti) = jti
            && map.contains_key(&Keyed::key_from(&iss, TOKEN, jti))
        {
            return true;
        }
        match map.get(&Keyed::key_from(&iss, SUBJECT, subject)) {
            Some((before, _)) => issued_at.is_none_or(|iat| iat <= *before),
            None => false,
        }
    }

    /// Forgets entries whose tokens have all expired at `now`; returns how many.
    pub fn purge(&self, now: u64) -> usize {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, (_, exp)| *exp > now);
        self.len.store(map.len(), Ordering::Release);
        before - map.len()
    }

    /// Replaces every entry (a full reload from the store).
    pub fn replace_all<'a>(&self, revocations: impl IntoIterator<Item = &'a Revocation>) {
        let fresh = RevocationList {
            seed: Keyed(self.seed.0.clone()),
            ..Default::default()
        };
        for r in revocations {
            fresh.insert(r);
        }
        let fresh = fresh.entries.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        *map = fresh;
        self.len.store(map.len(), Ordering::Release);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where revocations are recorded so that other instances and restarts see them.
pub trait RevocationStore: Send + Sync + 'static {
    /// Records `revocation` durably and announces it to the other instances.
    fn record(&self, revocation: Revocation) -> StoreFuture<'_, ()>;
    /// Every revocation still in force at `now`.
    fn load(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>>;
    /// Deletes revocations whose tokens have all expired at `now`; returns how many.
    fn purge(&self, now: u64) -> StoreFuture<'_, u64>;
}

/// What revokes: the local list, and the store that shares revocations (if any).
pub struct Revocations {
    list: std::sync::Arc<RevocationList>,
    store: Option<std::sync::Arc<dyn RevocationStore>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("list", &self.list)
            .field("shared", &self.store.is_some())
            .finish()
    }
}

impl Revocations {
    /// Revocations seen by this process only (tests, one instance without a database).
    pub fn local(list: std::sync::Arc<RevocationList>) -> Self {
        Self { list, store: None }
    }

    /// Revocations recorded in `store` (durable, announced to the other instances) and
    /// applied to `list` at once.
    pub fn shared(list: std::sync::Arc<RevocationList>, store: std::sync::Arc<dyn RevocationStore>) -> Self {
        Self {
            list,
            store: Some(store),
        }
    }

    /// The local list (give it to the authenticator).
    pub fn list(&self) -> &std::sync::Arc<RevocationList> {
        &self.list
    }

    /// The store, if shared.
    pub fn store(&self) -> Option<&std::sync::Arc<dyn RevocationStore>> {
        self.store.as_ref()
    }

    /// Records `revocation` (store first: a revocation reported done is durable) and applies it
    /// locally.
    ///
    /// # Errors
    /// The store's; the local list is updated anyway (this instance refuses the token either
    /// way).
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), crate::keystore::StoreError> {
        self.list.insert(&revocation);
        match &self.store {
            Some(store) => store.record(revocation).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_subjects() {
        let list = RevocationList::new();
        assert!(!list.is_revoked("iss", Some("a"), "ada", Some(10)));
        list.insert(&Revocation::Token {
            issuer: "iss".into(),
            jti: "a".into(),
            expires_at: 100,
        });
        assert!(list.is_revoked("iss", Some("a"), "ada", Some(10)));
        assert!(
            !list.is_revoked("other", Some("a"), "ada", Some(10)),
            "per issuer"
        );
        assert!(!list.is_revoked("iss", Some("b"), "ada", Some(10)));
        list.insert(&Revocation::Subject {
            issuer: "iss".into(),
            subject: "ada".into(),
            issued_before: 50,
            expires_at: 200,
        });
        assert!(list.is_revoked("iss", Some("b"), "ada", Some(50)));
        assert!(list.is_revoked("iss", None, "ada", None), "no iat: revoked");
        assert!(
            !list.is_revoked("iss", Some("b"), "ada", Some(51)),
            "issued after the cut-off"
        );
        assert!(!list.is_revoked("iss", Some("b"), "bob", Some(10)));
        assert_eq!(list.purge(100), 1);
        assert!(!list.is_revoked("iss", Some("a"), "zed", Some(10)));
        assert_eq!(list.purge(200), 1);
        assert!(list.is_empty());
    }
}
