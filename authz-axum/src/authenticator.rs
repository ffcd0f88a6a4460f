//! [`Authenticator`]: one step from the `Authorization` header to a [`Principal`] or a
//! rejection, whatever the key source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authz_core::Principal;
use authz_core::apikey::ApiKeyError;

use crate::apikeys::{ApiKeys, KeyFailure};
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
#[non_exhaustive]
pub enum AuthFailure {
    /// The token was refused for this reason.
    Invalid(JwtErrorKind),
    /// The API key was refused for this reason.
    InvalidKey(ApiKeyError),
    /// No key could be obtained (JWKS down, key store down).
    Unavailable,
}

/// Authenticates bearer tokens: verification, key lookup (with refetch on unknown `kid`),
/// claim mapping, policy resolution and the verified-token cache.
#[derive(Debug)]
pub struct Authenticator {
    jwt: JwtAuthenticator,
    keys: KeySource,
    api_keys: Option<Arc<ApiKeys>>,
    seen_removals: AtomicU64,
}

impl Authenticator {
    /// Authenticates JWTs with `jwt`, finding keys in `keys`.
    pub fn new(jwt: JwtAuthenticator, keys: KeySource) -> Self {
        Self {
            jwt,
            keys,
            api_keys: None,
            seen_removals: AtomicU64::new(0),
        }
    }

    /// Also accepts API keys. A bearer credential that starts with the key prefix and `_` is
    /// judged as an API key only; anything else as a JWT only. A malformed credential of
    /// either kind is refused, never retried as the other kind.
    pub fn with_api_keys(mut self, api_keys: Arc<ApiKeys>) -> Self {
        self.api_keys = Some(api_keys);
        self
    }

    /// The API keys, if enabled.
    pub fn api_keys(&self) -> Option<&Arc<ApiKeys>> {
        self.api_keys.as_ref()
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
        if let Some(keys) = &self.api_keys
            && keys.format().claims(token)
        {
            return keys.authenticate(token).await.map_err(|e| match e {
                KeyFailure::Invalid(e) => AuthFailure::InvalidKey(e),
                KeyFailure::Unavailable => AuthFailure::Unavailable,
            });
        }
        if let KeySource::Remote(remote) = &self.keys {
            // Keys were removed at the provider: drop tokens verified with them.
            let removals = remote.removals();
            // A plain load on the hot path; the write happens only when keys were removed.
            if self.seen_removals.load(Ordering::Acquire) != removals
                && self.seen_removals.swap(removals, Ordering::AcqRel) != removals
            {
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
                let keys = match remote.current() {
                    Some(k) => k,
                    None => {
                        // Only a well-formed token with an allowed `alg` may cause a fetch.
                        self.jwt.verifier().peek_header(token).map_err(invalid)?;
                        remote.refresh_now().await.map_err(|_| AuthFailure::Unavailable)?;
                        remote.current().ok_or(AuthFailure::Unavailable)?
                    }
                };
                match self.jwt.authenticate_uncached(token, &keys, now) {
                    // The key lookup happens after the header checks and before any signature
                    // work, so only a well-formed token can ask for a refetch.
                    Err(e) if *e.kind() == JwtErrorKind::UnknownKeyId => {
                        match remote.refresh_for_unknown_kid().await {
                            Ok(()) => {
                                let keys = remote.current().ok_or(AuthFailure::Unavailable)?;
                                self.jwt.authenticate_uncached(token, &keys, now).map_err(invalid)
                            }
                            Err(FetchError::CoolingDown) => Err(invalid(e)),
                            Err(_) => Err(AuthFailure::Unavailable),
                        }
                    }
                    other => other.map_err(invalid),
                }
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
