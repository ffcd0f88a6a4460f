//! [`Authenticator`]: one step from the `Authorization` header to a [`Principal`] or a
//! rejection, whatever the key source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authz_core::Principal;
use authz_core::jwt::{CacheStats, JwtAuthenticator, JwtErrorKind, KeySet};

use crate::jwks::{FetchError, RemoteJwks};

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys fixed at start-up (PEM, DER, JWK, JWKS document, HMAC secret).
    Static(Arc<KeySet>),
    /// A remote JWKS (URL or OIDC discovery), cached and refreshed.
    Remote(RemoteJwks),
}

/// Why authentication failed (internal: callers only ever see 401 or 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The token was refused for this reason.
    Invalid(JwtErrorKind),
    /// No key could be obtained.
    Unavailable,
}

/// Authenticates bearer tokens: verification, key lookup (with refetch on unknown `kid`),
/// claim mapping, policy resolution and the verified-token cache.
#[derive(Debug)]
pub struct Authenticator {
    jwt: JwtAuthenticator,
    keys: KeySource,
    seen_removals: AtomicU64,
}

impl Authenticator {
    /// Authenticates JWTs with `jwt`, finding keys in `keys`.
    pub fn new(jwt: JwtAuthenticator, keys: KeySource) -> Self {
        Self {
            jwt,
            keys,
            seen_removals: AtomicU64::new(0),
        }
    }

    /// The JWT authenticator (verifier, mapping, policy).
    pub fn jwt(&self) -> &JwtAuthenticator {
        &self.jwt
    }

    /// The key source.
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// Counters of the verified-token cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.jwt.cache_stats()
    }

    /// Authenticates one bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        if let KeySource::Remote(remote) = &self.keys {
            // Keys were removed at the provider: drop tokens verified with them.
            let removals = remote.removals();
            if self.seen_removals.swap(removals, Ordering::AcqRel) != removals {
                self.jwt.clear_cache();
            }
        }
        if let Some(p) = self.jwt.cached(token) {
            return Ok(p);
        }
        let now = now();
        let invalid = |e: authz_core::jwt::JwtError| AuthFailure::Invalid(e.kind().clone());
        match &self.keys {
            KeySource::Static(keys) => self.jwt.authenticate_uncached(token, keys, now).map_err(invalid),
            KeySource::Remote(remote) => {
                let header = self.jwt.verifier().peek_header(token).map_err(invalid)?;
                let keys = match remote.current() {
                    Some(k) => k,
                    None => {
                        remote.refresh_now().await.map_err(|_| AuthFailure::Unavailable)?;
                        remote.current().ok_or(AuthFailure::Unavailable)?
                    }
                };
                let known = match header.kid.as_deref() {
                    Some(kid) => keys.contains_kid(kid),
                    None => true,
                };
                let keys = if known {
                    keys
                } else {
                    match remote.refresh_for_unknown_kid().await {
                        Ok(()) => remote.current().ok_or(AuthFailure::Unavailable)?,
                        Err(FetchError::CoolingDown) => keys,
                        Err(_) => return Err(AuthFailure::Unavailable),
                    }
                };
                self.jwt.authenticate_uncached(token, &keys, now).map_err(invalid)
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
