//! A test kit (feature `test-util`; never enable it in production builds): a test issuer with
//! its keys served on loopback (JWKS and OpenID Connect discovery), a token builder with the
//! variants tests need (expired, wrong key, another audience, `typ`), principals injected into
//! handlers without tokens, and API keys in memory.
//!
//! ```
//! use authz_axum::testing::TestIssuer;
//! # #[tokio::main] async fn main() {
//! let idp = TestIssuer::start().await; // http://127.0.0.1:port, JWKS + discovery
//! let layer = idp
//!     .setup(authz_axum::core::PermissionCatalog::new(["data:read"]).unwrap())
//!     .policy_toml("[roles.viewer]\ngrants = [\"data:read\"]\n")
//!     .build()
//!     .await
//!     .unwrap();
//! let token = idp.token().subject("ada").roles(["viewer"]).sign();
//! let expired = idp.token().expired().sign();
//! let forged = idp.token().signed_with_another_key().sign();
//! # let _ = (layer, token, expired, forged); }
//! ```
//!
//! Handler tests without tokens: `router.layer(PrincipalLayer::new(principal))` makes every
//! request arrive as `principal` (build one with [`authz_core::Principal::for_testing`]).

use std::sync::Arc;
use std::time::Duration;

use authz_core::apikey::ApiKeyFormat;
use authz_core::keystore::MemoryKeyStore;
use authz_core::{PermissionCatalog, Policy, Principal};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use axum::extract::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::ApiKeys;
use crate::layer::{AuthState, Outcome, Settings};
use crate::rejection::RejectionConfig;
use crate::setup::Setup;

/// The audience [`TestIssuer`] tokens carry by default.
pub const TEST_AUDIENCE: &str = "test-api";

/// An ES256 key that signs test tokens.
pub struct TestKey {
    pair: EcdsaKeyPair,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A fresh P-256 key with this `kid`.
    pub fn generate(kid: &str) -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("P-256 key generation");
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("a fresh key");
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            pair,
            kid: kid.into(),
            jwk,
        }
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` under `header` (any header: for tests that tamper with it).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), out.as_bytes())
            .expect("ES256 signing");
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        out
    }
}

/// An identity provider for tests: an ES256 key, its JWKS at `{issuer}/jwks.json` and a
/// discovery document at `{issuer}/.well-known/openid-configuration`, on 127.0.0.1.
pub struct TestIssuer {
    issuer: String,
    key: Arc<TestKey>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Starts serving on a free loopback port (for the life of the tokio runtime).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let key = Arc::new(TestKey::generate("test-key"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let issuer = format!("http://{}", listener.local_addr().expect("an address"));
        let jwks = json!({ "keys": [key.public_jwk()] });
        let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") });
        let app = axum::Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { issuer, key }
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }

    /// The signing key.
    pub fn key(&self) -> &TestKey {
        &self.key
    }

    /// A [`Setup`] trusting this issuer for [`TEST_AUDIENCE`] with ES256 (add a policy and
    /// build).
    pub fn setup(&self, catalog: PermissionCatalog) -> Setup {
        Setup::with_catalog(Arc::new(catalog))
            .issuer(self.issuer.clone())
            .jwks_url(self.jwks_url())
            .audience(TEST_AUDIENCE)
            .algorithms([authz_core::jwt::Algorithm::ES256])
    }

    /// A token builder: subject `test-user`, audience [`TEST_AUDIENCE`], valid for ten
    /// minutes, no roles.
    pub fn token(&self) -> TokenBuilder {
        let now = authz_core::clock::unix_seconds(std::time::SystemTime::now());
        TokenBuilder {
            key: Arc::clone(&self.key),
            other_key: false,
            header: json!({ "alg": "ES256", "kid": self.key.kid }),
            claims: json!({
                "iss": self.issuer, "aud": TEST_AUDIENCE, "sub": "test-user",
                "iat": now, "nbf": now, "exp": now + 600,
                "jti": authz_core::oauth::new_secret()[..16].to_string(),
            }),
        }
    }
}

/// Builds one test token (see [`TestIssuer::token`]).
#[must_use]
pub struct TokenBuilder {
    key: Arc<TestKey>,
    other_key: bool,
    header: Value,
    claims: Value,
}

impl TokenBuilder {
    /// `sub`.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.claims["sub"] = Value::String(sub.into());
        self
    }

    /// `roles`.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.claims["roles"] = Value::Array(roles.into_iter().map(|r| Value::String(r.into())).collect());
        self
    }

    /// `scope` (space-joined).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        let s: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.claims["scope"] = Value::String(s.join(" "));
        self
    }

    /// `aud`.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.claims["aud"] = Value::String(aud.into());
        self
    }

    /// `iss`.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.claims["iss"] = Value::String(iss.into());
        self
    }

    /// Any claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims[name] = value;
        self
    }

    /// Expires `after` from now.
    pub fn expires_in(mut self, after: Duration) -> Self {
        let now = authz_core::clock::unix_seconds(std::time::SystemTime::now());
        self.claims["exp"] = json!(now + after.as_secs());
        self
    }

    /// Expired an hour ago (issued two hours ago).
    pub fn expired(mut self) -> Self {
        let now = authz_core::clock::unix_seconds(std::time::SystemTime::now());
        self.claims["iat"] = json!(now - 7200);
        self.claims["nbf"] = json!(now - 7200);
        self.claims["exp"] = json!(now - 3600);
        self
    }

    /// The header's `typ` (`at+jwt`, `JWT`, …).
    pub fn typ(mut self, typ: &str) -> Self {
        self.header["typ"] = Value::String(typ.into());
        self
    }

    /// Signed with a key the issuer never published (same `kid`): a forgery.
    pub fn signed_with_another_key(mut self) -> Self {
        self.other_key = true;
        self
    }

    /// The claims as they stand.
    pub fn claims(&self) -> &Value {
        &self.claims
    }

    /// The compact JWT.
    pub fn sign(self) -> String {
        if self.other_key {
            TestKey::generate("forger").sign_with_header(&self.header, &self.claims)
        } else {
            self.key.sign_with_header(&self.header, &self.claims)
        }
    }
}

/// Makes every request arrive as one principal, without a token: for handler tests. Put it where
/// the [`crate::AuthLayer`] would go.
#[derive(Clone, Debug)]
pub struct PrincipalLayer {
    principal: Principal,
    policy: Option<Arc<crate::engine::PolicyHandle>>,
}

impl PrincipalLayer {
    /// Requests arrive as `principal` (see [`Principal::for_testing`]).
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            policy: None,
        }
    }

    /// Guards that name a policy ask `engine`, with `request.time` read from `clock` (as
    /// [`AuthLayer::policy_engine`](crate::AuthLayer::policy_engine) does).
    pub fn policy_engine(
        mut self,
        engine: Arc<dyn authz_core::engine::PolicyEngine>,
        clock: Arc<dyn authz_core::clock::Clock>,
    ) -> Self {
        self.policy = Some(Arc::new(crate::engine::PolicyHandle { engine, clock }));
        self
    }
}

impl<S> tower::Layer<S> for PrincipalLayer {
    type Service = PrincipalService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PrincipalService {
            inner,
            principal: self.principal.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// The service [`PrincipalLayer`] produces.
#[derive(Clone, Debug)]
pub struct PrincipalService<S> {
    inner: S,
    principal: Principal,
    policy: Option<Arc<crate::engine::PolicyHandle>>,
}

impl<S: tower::Service<Request>> tower::Service<Request> for PrincipalService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        req.extensions_mut().insert(AuthState {
            outcome: Outcome::Authenticated(self.principal.clone()),
            settings: Arc::new(Settings {
                config: Arc::new(RejectionConfig::default()),
                policy: self.policy.clone(),
            }),
            // No span of its own: guards record on whatever span is current, as they always did.
            traced: true,
        });
        self.inner.call(req)
    }
}

/// API keys in memory under `prefix` for `policy`; create keys with
/// [`ApiKeys::create`](crate::ApiKeys::create).
///
/// # Panics
/// On a prefix outside the API-key grammar.
pub fn api_keys(prefix: &str, policy: Arc<Policy>) -> Arc<ApiKeys> {
    ApiKeys::new(
        ApiKeyFormat::new(prefix).expect("a valid API-key prefix"),
        Arc::new(MemoryKeyStore::new()),
        policy,
    )
}
