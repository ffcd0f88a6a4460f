//! One trusted issuer: its verifier (issuer, audiences, algorithms, token-type rules), its own
//! keys and its claim mapping. Issuers never share keys.

use std::fmt;
use std::sync::Arc;

use super::keys::KeyProvider;
use crate::jwt::{ClaimMapping, JwtVerifier};

/// One trusted issuer, isolated from every other: a token is verified only with the keys of
/// the issuer its `iss` names, so a key trusted for issuer A can never sign for issuer B.
///
/// ```
/// use authz_core::auth::{Issuer, StaticKeys};
/// use authz_core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
/// let verifier = JwtVerifier::builder("https://a.example.com", "api", [Algorithm::HS256]).build()?;
/// let keys = StaticKeys::new(KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32])?])?);
/// let issuer = Issuer::new(verifier, keys).with_mapping(ClaimMapping::default().tenant_from("tid")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Issuer {
    pub(crate) verifier: JwtVerifier,
    pub(crate) keys: Arc<dyn KeyProvider>,
    pub(crate) mapping: ClaimMapping,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.verifier.issuer())
            .field("verifier", &self.verifier)
            .field("keys", &self.keys)
            .field("mapping", &self.mapping)
            .finish()
    }
}

impl Issuer {
    /// Tokens whose `iss` equals `verifier.issuer()`, verified with `keys`, mapped with the
    /// default [`ClaimMapping`].
    pub fn new(verifier: JwtVerifier, keys: impl KeyProvider) -> Self {
        Self::with_provider(verifier, Arc::new(keys))
    }

    /// Like [`Issuer::new`], with a shared key provider.
    pub fn with_provider(verifier: JwtVerifier, keys: Arc<dyn KeyProvider>) -> Self {
        Self {
            verifier,
            keys,
            mapping: ClaimMapping::default(),
        }
    }

    /// Replaces the claim mapping.
    pub fn with_mapping(mut self, mapping: ClaimMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// The `iss` this issuer answers for.
    pub fn iss(&self) -> &str {
        self.verifier.issuer()
    }

    /// The verifier.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The key provider.
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.keys
    }

    /// The claim mapping.
    pub fn mapping(&self) -> &ClaimMapping {
        &self.mapping
    }
}
