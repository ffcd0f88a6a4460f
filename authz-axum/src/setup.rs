//! Setup in a few lines: one builder from an issuer (keys by OpenID Connect discovery or a JWKS
//! URL), an audience, a policy file and optionally an API-key store, to the [`AuthLayer`]
//! (feature `remote`). [`Setup::from_env`] reads the same settings from the model registry's
//! environment variables.
//!
//! ```no_run
//! use authz_axum::prelude::*;
//! use authz_axum::setup::Setup;
//!
//! authz_axum::catalog! { pub struct Catalog { permissions: ["model:run"] } }
//!
//! #[require_permission("model:run")]
//! async fn run_model() -> &'static str { "running\n" }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = Setup::new::<Catalog>()
//!     .issuer("https://idp.example.com/realms/main") // keys by discovery
//!     .audience("api.example.com")
//!     .policy_file("policy.toml")
//!     .build()
//!     .await?;
//! let app = axum::Router::new().route("/models/{id}/run", axum::routing::post(run_model)).layer(layer);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! authz_axum::serve::serve(listener, app, Default::default(), authz_axum::serve::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! API keys only (no identity provider) — this one runs as a doctest:
//!
//! ```
//! use std::sync::Arc;
//! use authz_axum::setup::Setup;
//!
//! authz_axum::catalog! { pub struct Catalog { permissions: ["model:run"] } }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(authz_axum::core::keystore::MemoryKeyStore::new()); // or sql::connect(url)
//! let layer = Setup::new::<Catalog>()
//!     .api_keys(store, "sk")
//!     .policy_toml("[roles.ops]\ngrants = [\"model:run\"]\n")
//!     .build()
//!     .await?;
//! let keys = layer.authenticator().api_keys().expect("API keys are on").clone();
//! let issued = keys.create("ops-bot", vec!["ops".into()], None, None).await?;
//! assert!(issued.key.expose_raw().starts_with("sk_"));
//! # Ok(()) }
//! ```
//!
//! API keys beside (or instead of) tokens: `.api_keys(store, "sk")` with any
//! [`KeyStore`] — `authz_axum::sql::connect(url)` with feature
//! `sqlx`. For several issuers, provider-specific claim paths or an injected clock, build an
//! [`Authenticator`] yourself (see the crate docs, "Wiring it into a service").

use std::path::PathBuf;
use std::sync::Arc;

use authz_core::apikey::ApiKeyFormat;
use authz_core::jwks::{JwksOptions, RemoteJwks};
use authz_core::jwt::{Algorithm, Provider};
use authz_core::keystore::KeyStore;
use authz_core::{Catalog, PermissionCatalog, Policy};

use crate::{ApiKeys, AuthLayer, Authenticator, Issuer, RejectionConfig};

/// Why a [`Setup`] could not build; the message names the setting (or variable) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authz setup: {0}")]
pub struct SetupError(pub String);

fn err(e: impl std::fmt::Display) -> SetupError {
    SetupError(e.to_string())
}

enum PolicySource {
    File(PathBuf),
    Toml(String),
    Ready(Policy),
}

/// The few settings most services need (see the module docs).
#[must_use]
pub struct Setup {
    catalog: Arc<PermissionCatalog>,
    issuer: Option<String>,
    audience: Option<String>,
    jwks_url: Option<String>,
    algorithms: Vec<Algorithm>,
    provider: Provider,
    policy: Option<PolicySource>,
    api_keys: Option<(Arc<dyn KeyStore>, String)>,
    realm: Option<String>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("algorithms", &self.algorithms)
            .field("provider", &self.provider)
            .field("api_keys", &self.api_keys.as_ref().map(|(_, p)| p))
            .finish_non_exhaustive()
    }
}

/// The algorithms accepted by default: what identity providers sign access tokens with.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

impl Setup {
    /// A setup for the handlers of catalog `C` (the type `catalog!` declares).
    pub fn new<C: Catalog>() -> Self {
        Self::with_catalog(Arc::new(C::catalog().clone()))
    }

    /// A setup for an explicit permission catalog.
    pub fn with_catalog(catalog: Arc<PermissionCatalog>) -> Self {
        Self {
            catalog,
            issuer: None,
            audience: None,
            jwks_url: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            provider: Provider::Generic,
            policy: None,
            api_keys: None,
            realm: None,
        }
    }

    /// The trusted issuer (`iss`, compared exactly). Its keys come from OpenID Connect
    /// discovery (`{issuer}/.well-known/openid-configuration`) unless a
    /// [`jwks_url`](Self::jwks_url) is given.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The issuer's JWKS URL (instead of discovery).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// This service's identifier, which tokens must name in `aud`. Required with an issuer.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The algorithm allowlist (default [`DEFAULT_ALGORITHMS`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// A provider preset (claim paths and token rules: Keycloak, Auth0, Entra, Okta, Cognito,
    /// Google; default generic).
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// The policy (roles → permissions) from a TOML file.
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy = Some(PolicySource::File(path.into()));
        self
    }

    /// The policy from TOML text.
    pub fn policy_toml(mut self, toml: impl Into<String>) -> Self {
        self.policy = Some(PolicySource::Toml(toml.into()));
        self
    }

    /// A policy built in code ([`Policy::builder`]); it must use the same catalog.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(PolicySource::Ready(policy));
        self
    }

    /// Also accepts API keys (`Authorization: Bearer {prefix}_…`) kept in `store`.
    ///
    /// With the memory store, verified keys are cached in memory. With a SQL store nothing here
    /// follows its change feed, so every key check reads the store; for memory-speed checks
    /// build [`ApiKeys`] yourself over `authz_axum::sql::open` and start
    /// `KeyDatabase::follow` (see the README, "API keys").
    pub fn api_keys(mut self, store: Arc<dyn KeyStore>, prefix: impl Into<String>) -> Self {
        self.api_keys = Some((store, prefix.into()));
        self
    }

    /// The realm of `WWW-Authenticate` challenges (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The settings from the environment, with the model registry's variable names:
    /// `AUTHZ_ISSUER`, `AUTHZ_AUDIENCE`, `AUTHZ_JWKS_URL` (else discovery), `AUTHZ_ALGORITHMS`
    /// (comma-separated), `AUTHZ_PROVIDER`, `AUTHZ_POLICY` (a file, required). API keys and
    /// stores are not read here: add them with [`api_keys`](Self::api_keys).
    ///
    /// # Errors
    /// A malformed variable, named.
    pub fn from_env<C: Catalog>() -> Result<Self, SetupError> {
        Self::from_lookup(Arc::new(C::catalog().clone()), |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup of variables (tests, config files).
    ///
    /// # Errors
    /// A malformed or empty variable, named.
    pub fn from_lookup(
        catalog: Arc<PermissionCatalog>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SetupError> {
        let var = |name: &str| -> Result<Option<String>, SetupError> {
            match lookup(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Err(SetupError(format!(
                    "{name} is set but empty: unset it or give a value"
                ))),
                Some(v) => Ok(Some(v.trim().to_string())),
            }
        };
        let mut setup = Self::with_catalog(catalog);
        if let Some(v) = var("AUTHZ_ISSUER")? {
            setup = setup.issuer(v);
        }
        if let Some(v) = var("AUTHZ_AUDIENCE")? {
            setup = setup.audience(v);
        }
        if let Some(v) = var("AUTHZ_JWKS_URL")? {
            setup = setup.jwks_url(v);
        }
        if let Some(v) = var("AUTHZ_ALGORITHMS")? {
            let mut algs = Vec::new();
            for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                algs.push(name.parse::<Algorithm>().map_err(|_| {
                    SetupError(format!(
                        "AUTHZ_ALGORITHMS: {name:?} is not an algorithm (RS256, PS256, ES256, EdDSA, …; case-sensitive)"
                    ))
                })?);
            }
            setup = setup.algorithms(algs);
        }
        if let Some(v) = var("AUTHZ_PROVIDER")? {
            setup = setup.provider(
                v.parse::<Provider>()
                    .map_err(|e| SetupError(format!("AUTHZ_PROVIDER: {e}")))?,
            );
        }
        if let Some(v) = var("AUTHZ_POLICY")? {
            setup = setup.policy_file(v);
        }
        Ok(setup)
    }

    /// Loads the policy, fetches the issuer's keys once (discovery or JWKS URL), and returns the
    /// layer. The keys are refreshed in the background from then on.
    ///
    /// # Errors
    /// No policy; an issuer without an audience (or the reverse); neither an issuer nor API
    /// keys; a policy file that does not load (its message names the file, line, role and
    /// permission); keys that cannot be fetched.
    pub async fn build(self) -> Result<AuthLayer, SetupError> {
        let policy = match self.policy {
            None => {
                return Err(SetupError(
                    "no policy: call .policy_file(path) (AUTHZ_POLICY), .policy_toml(text) or .policy(policy)".into(),
                ));
            }
            Some(PolicySource::File(p)) => Policy::from_toml_file(&p, self.catalog.clone()).map_err(err)?,
            Some(PolicySource::Toml(t)) => {
                Policy::from_toml_str(&t, self.catalog.clone(), None).map_err(err)?
            }
            Some(PolicySource::Ready(p)) => p,
        };
        let policy = Arc::new(policy);
        let mut builder = Authenticator::builder(policy.clone());
        match (self.issuer, self.audience) {
            (Some(iss), Some(aud)) => {
                let allowed = self.algorithms.iter().copied().collect();
                let keys = match &self.jwks_url {
                    Some(url) => RemoteJwks::new(url, allowed, JwksOptions::default()).map_err(err)?,
                    None => RemoteJwks::discover(&iss, allowed, JwksOptions::default())
                        .await
                        .map_err(|e| {
                            SetupError(format!(
                                "discovery of {iss}: {e} (or give .jwks_url / AUTHZ_JWKS_URL)"
                            ))
                        })?,
                };
                keys.start()
                    .await
                    .map_err(|e| SetupError(format!("the keys of {iss} could not be fetched: {e}")))?;
                let verifier = self
                    .provider
                    .verifier(iss.clone(), aud.clone(), self.algorithms.iter().copied())
                    .build()
                    .map_err(err)?;
                let mapping = self.provider.mapping(std::slice::from_ref(&aud)).map_err(err)?;
                builder = builder.issuer(Issuer::new(verifier, keys).with_mapping(mapping));
            }
            (Some(_), None) => {
                return Err(SetupError(
                    "an issuer needs an audience: call .audience(..) (AUTHZ_AUDIENCE)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(SetupError(
                    "an audience without an issuer: call .issuer(..) (AUTHZ_ISSUER)".into(),
                ));
            }
            (None, None) if self.api_keys.is_none() => {
                return Err(SetupError(
                    "nothing to authenticate with: give an issuer (AUTHZ_ISSUER) or API keys".into(),
                ));
            }
            (None, None) => {}
        }
        if let Some((store, prefix)) = self.api_keys {
            let format = ApiKeyFormat::new(prefix).map_err(err)?;
            builder = builder.api_keys(ApiKeys::new(format, store, policy));
        }
        let authenticator = Arc::new(builder.build().map_err(err)?);
        let mut layer = AuthLayer::new(authenticator);
        if let Some(realm) = self.realm {
            layer = layer.with_rejections(RejectionConfig::new(realm).map_err(err)?);
        }
        Ok(layer)
    }
}
