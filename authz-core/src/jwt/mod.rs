//! JWT verification: a verifier that enforces the whole validation checklist by construction,
//! keys bound to one algorithm each, and the mapping from verified claims to a
//! [`Principal`](crate::Principal).
//!
//! The request path that uses them is [`crate::auth::Authenticator`].
//!
//! ```
//! use authz_core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
//!
//! let verifier = JwtVerifier::builder("https://auth.example.com", "api.example.com", [Algorithm::HS256]).build()?;
//! let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[42; 32])?.with_kid("k1")])?;
//! assert!(verifier.verify_at("not-a-token", &keys, 1_800_000_000).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod algorithm;
pub(crate) mod capture;
mod error;
mod header;
pub(crate) mod header_memo;
mod key;
mod mapping;
mod provider;
pub(crate) mod verifier;

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
pub use error::{ConfigError, JwtError, JwtErrorKind};
pub use key::{JwksReport, KeyError, KeySet, SkippedKey, VerificationKey};
pub use mapping::{ClaimMapping, ClaimPath};
pub use provider::{Provider, UnknownProvider};
pub use verifier::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_REFUSED_CLAIMS, DEFAULT_TOKEN_TYPES, JwtVerifier,
    JwtVerifierBuilder, MAX_LEEWAY, RegisteredClaims, TokenHeader, VerifiedToken,
};
