//! JWT verification: a verifier that enforces the whole validation checklist by construction,
//! keys bound to one algorithm each, and the mapping from verified claims to a
//! [`Principal`](crate::Principal).
//!
//! ```
//! use std::sync::Arc;
//! use authz_core::jwt::{Algorithm, JwtAuthenticator, JwtVerifier, KeySet, VerificationKey};
//! use authz_core::{PermissionCatalog, Policy, RoleSpec};
//!
//! let catalog = Arc::new(PermissionCatalog::new(["data:read"])?);
//! let policy = Arc::new(Policy::builder(catalog).role(RoleSpec::new("viewer").grant("data:read")).build()?);
//! let verifier = JwtVerifier::builder("https://auth.example.com", "api.example.com", [Algorithm::HS256]).build()?;
//! let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[42; 32])?.with_kid("k1")])?;
//! let auth = JwtAuthenticator::new(verifier, policy);
//! assert!(auth.authenticate("not-a-token", &keys).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod algorithm;
mod authenticator;
mod capture;
mod error;
mod key;
mod mapping;
mod verifier;

/// Escape hatches that weaken a check. Never the default; each says what it costs.
pub mod dangerous {
    use super::{Algorithm, KeyError, VerificationKey};

    /// An HMAC key shorter than RFC 7518 §3.2 requires (but not empty). A short secret can be
    /// brute-forced offline from any one token; use this only to interoperate with test data
    /// you cannot change.
    pub fn short_hmac_key(alg: Algorithm, secret: &[u8]) -> Result<VerificationKey, KeyError> {
        VerificationKey::hmac_unchecked(alg, secret)
    }
}

pub use algorithm::{Algorithm, AlgorithmSet, KeyFamily, UnsupportedAlgorithm};
pub use authenticator::{CacheStats, DEFAULT_CACHE_ENTRIES, JwtAuthenticator};
pub use error::{ConfigError, JwtError, JwtErrorKind};
pub use key::{KeyError, KeySet, VerificationKey};
pub use mapping::ClaimMapping;
pub use verifier::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, JwtVerifier, JwtVerifierBuilder, MAX_LEEWAY, RegisteredClaims,
    TokenHeader, VerifiedToken,
};
