//! Where an issuer's verification keys come from: the [`KeyProvider`] seam.
//!
//! The authenticator asks its provider for the current [`KeySet`] once per token it has to
//! verify, and asks it to [`refresh`](KeyProvider::refresh) only when no key is loaded or a
//! well-formed token names an unknown `kid` (after every header check, before any signature
//! work). [`StaticKeys`] never changes; `RemoteJwks` (feature `remote`) fetches a JWKS or
//! follows OIDC discovery.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::jwt::{AlgorithmSet, KeyError, KeySet};

/// A boxed future returned by [`KeyProvider::refresh`].
pub type RefreshFuture<'a> = Pin<Box<dyn Future<Output = RefreshOutcome> + Send + 'a>>;

/// Why the authenticator asks for a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshReason<'a> {
    /// No key set is loaded at all.
    NoKeys,
    /// A well-formed token names this `kid`, which the current set does not have.
    UnknownKeyId(&'a str),
}

/// What a refresh achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// New keys are in place: verify again.
    Updated,
    /// The keys are as they were (the token's `kid` is unknown: 401).
    Unchanged,
    /// No refresh now (within the cool-down after the previous one): 401 for an unknown `kid`,
    /// 503 when no key is loaded.
    Suppressed,
    /// The key source could not be reached or answered nonsense: 503.
    Failed,
}

/// A source of verification keys for one issuer.
///
/// Implementations must be cheap on [`keys`](Self::keys) and
/// [`generation`](Self::generation) (the request path calls them) and must never let one
/// request's refresh block readers.
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// The keys to verify with at `now`, or `None` while none could be loaded.
    fn keys(&self, now: SystemTime) -> Option<Arc<KeySet>>;

    /// A number that changes whenever a key was removed or its material changed: tokens
    /// verified under an older generation are verified again (compared on every cache hit).
    /// Adding keys does not change it. Default: always 0 (keys never change).
    fn generation(&self) -> u64 {
        0
    }

    /// Asks for fresher keys. Default: nothing can change ([`RefreshOutcome::Unchanged`]).
    fn refresh<'a>(&'a self, reason: RefreshReason<'a>, now: SystemTime) -> RefreshFuture<'a> {
        let _ = (reason, now);
        Box::pin(async { RefreshOutcome::Unchanged })
    }
}

/// Keys fixed at start-up: PEM, DER, JWK, a JWKS document, HMAC secrets.
///
/// ```
/// use authz_core::auth::StaticKeys;
/// use authz_core::jwt::{Algorithm, KeySet, VerificationKey};
/// let keys = StaticKeys::new(KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32])?])?);
/// # Ok::<(), authz_core::jwt::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// These keys, forever.
    pub fn new(keys: KeySet) -> Self {
        Self(Arc::new(keys))
    }

    /// Keys from a JWKS document (unusable keys skipped and logged; see [`KeySet::from_jwks`]).
    pub fn from_jwks(json: &str, allowed: AlgorithmSet) -> Result<Self, KeyError> {
        KeySet::from_jwks(json, allowed).map(Self::new)
    }

    /// The key set.
    pub fn key_set(&self) -> &Arc<KeySet> {
        &self.0
    }
}

impl From<KeySet> for StaticKeys {
    fn from(keys: KeySet) -> Self {
        Self::new(keys)
    }
}

impl KeyProvider for StaticKeys {
    fn keys(&self, _: SystemTime) -> Option<Arc<KeySet>> {
        Some(self.0.clone())
    }
}
