//! An OAuth 2.0 authorization server (feature `token-service`): authorization code with PKCE
//! for people, client credentials for machines, refresh-token rotation with reuse detection,
//! revocation (RFC 7009), introspection (RFC 7662), metadata (RFC 8414) and a JWKS with
//! signing-key rotation. Its state model and the [`TokenStore`] trait are in
//! [`authz_core::oauth`]; SQLite and PostgreSQL stores are in [`sql`] (feature `sqlx`).
//!
//! | endpoint | default path | RFC |
//! |---|---|---|
//! | authorization (login page) | `GET`/`POST /authorize` | 6749 §4.1, 7636, 9207 |
//! | token | `POST /token` | 6749 §3.2, §4.1.3, §4.4, §6 |
//! | revocation | `POST /revoke` | 7009 |
//! | introspection | `POST /introspect` | 7662 |
//! | metadata | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | 8414 |
//! | keys | `GET /.well-known/jwks.json` | 7517 |
//! | end the login session | `POST /logout` | |
//!
//! What it enforces, beyond the RFCs' MUSTs (RFC 9700, the OAuth security BCP):
//! - `response_type=code` only (no implicit flow); PKCE S256 only, required for public clients
//!   and by default for every client; redirect URIs matched exactly.
//! - Codes live at most 60 s and are single use; a replayed code revokes every token issued
//!   from it.
//! - Access tokens are RFC 9068 JWTs (`typ: at+jwt`, ES256) living 5–15 minutes unless a
//!   longer lifetime is opted into.
//! - Refresh tokens are 256-bit opaque values stored as SHA-256, bound to the client and a
//!   family, rotated on every use; presenting a spent one revokes the family, its live
//!   descendant included. There is **no grace period** for a retried refresh: a grace window
//!   lets a thief who races the client use the stolen token once unnoticed, which is the window
//!   the BCP's rotation exists to close; a client that lost a response logs in again.
//! - Client secrets are 256-bit, stored as SHA-256, compared in constant time, rotated with an
//!   overlap; passwords are Argon2id; unknown users cost the same time as wrong passwords;
//!   logins and client authentications are throttled (429 + `Retry-After`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use authz_axum::core::clock;
//! use authz_axum::core::oauth::MemoryTokenStore;
//! use authz_axum::oauth::{TokenService, TokenServiceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TokenServiceConfig::new("https://auth.example.com", "https://api.example.com");
//! let service = TokenService::new(config, Arc::new(MemoryTokenStore::new()), clock::system()).await?;
//! let _maintenance = service.spawn_maintenance(std::time::Duration::from_secs(60));
//! let app: axum::Router = service.router();
//! # let _ = app; Ok(()) }
//! ```

mod admin;
mod authorize;
mod client_auth;
mod config;
mod error;
mod introspect;
mod keys;
mod login;
mod metadata;
mod params;
mod password;
#[cfg(feature = "sqlx")]
pub mod sql;
mod token;

use std::sync::Arc;
use std::time::Duration;

use authz_core::clock::Clock;
use authz_core::keystore::StoreError;
use authz_core::oauth::{AccessTokenRecord, TokenStore};
use authz_core::revocation::{Revocation, Revocations};
use axum::Router;
use axum::routing::{get, post};

pub use admin::{ClientRegistration, NewClient, create_user, register_client, rotate_client_secret};
pub use config::{
    ACCESS_TOKEN_LIFETIME_RANGE, ClaimsRequest, Endpoints, ExtraClaims, LoginThrottleConfig,
    TokenServiceConfig,
};
pub use error::OAuthError;
pub use password::{hash_password, verify_password};

use crate::throttle::FailedAttempts;

/// Why a token service could not start.
#[derive(Debug, thiserror::Error)]
pub enum TokenServiceError {
    /// A setting is out of range (the message names it).
    #[error("token service configuration: {0}")]
    Config(String),
    /// The store did not answer or holds unusable keys.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The authorization server. Cheap to share (`Arc`); [`router`](Self::router) mounts it.
pub struct TokenService {
    config: TokenServiceConfig,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    keys: keys::SigningKeys,
    client_failures: FailedAttempts,
    logins: login::LoginThrottle,
    dummy_hash: String,
    revocations: std::sync::OnceLock<Arc<Revocations>>,
    dpop: Arc<authz_core::dpop::DpopVerifier>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// A signed access token and what was recorded about it.
#[derive(Clone)]
pub struct IssuedAccessToken {
    /// The JWT. A bearer credential: never log it.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (seconds since the epoch).
    pub expires_at: u64,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("token", &"<redacted>")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenService {
    /// Checks `config`, opens the signing keys (making the first one if the store has none) and
    /// returns the service.
    ///
    /// # Errors
    /// [`TokenServiceError::Config`] naming the setting; [`TokenServiceError::Store`] when the
    /// store does not answer.
    pub async fn new(
        config: TokenServiceConfig,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, TokenServiceError> {
        config.validate().map_err(TokenServiceError::Config)?;
        let keys = keys::SigningKeys::open(store.as_ref(), clock.unix_seconds()).await?;
        let dummy_hash = password::dummy_hash().await;
        Ok(Arc::new(Self {
            client_failures: FailedAttempts::new(config.client_throttle),
            logins: login::LoginThrottle::new(config.login_throttle),
            config,
            store,
            clock,
            keys,
            dummy_hash,
            revocations: std::sync::OnceLock::new(),
            dpop: Arc::new(authz_core::dpop::DpopVerifier::default()),
        }))
    }

    /// The settings.
    pub fn config(&self) -> &TokenServiceConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    /// Every endpoint, at the configured paths (see the module docs). Handlers can read the
    /// client address from `ConnectInfo<SocketAddr>` (set by [`crate::serve`] and by
    /// `into_make_service_with_connect_info`); without it throttling is per account/client only.
    pub fn router(self: &Arc<Self>) -> Router {
        let e = &self.config.endpoints;
        Router::new()
            .route(
                &e.authorize,
                get(authorize::get_authorize).post(authorize::post_authorize),
            )
            .route(&e.token, post(token::token).fallback(error::method_not_allowed))
            .route(
                &e.revoke,
                post(introspect::revoke).fallback(error::method_not_allowed),
            )
            .route(
                &e.introspect,
                post(introspect::introspect).fallback(error::method_not_allowed),
            )
            .route(&e.jwks, get(metadata::jwks))
            .route(&e.logout, post(authorize::logout))
            .route("/.well-known/oauth-authorization-server", get(metadata::metadata))
            .route("/.well-known/openid-configuration", get(metadata::metadata))
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
            .with_state(Arc::clone(self))
    }

    /// The token endpoint alone, for mounting at a second (legacy) path; the metadata names
    /// only [`Endpoints::token`].
    pub fn token_endpoint(self: &Arc<Self>) -> axum::routing::MethodRouter {
        post(token::token)
            .fallback(error::method_not_allowed)
            .with_state(Arc::clone(self))
    }

    /// Puts every access token this service revokes on `revocations` (the resource servers'
    /// deny-list, shared through its store), from now on. Without it, a revoked access token is
    /// inactive for introspection but a resource server verifying JWTs locally accepts it until
    /// it expires. Set once; later calls are ignored.
    pub fn publish_revocations_to(&self, revocations: Arc<Revocations>) {
        let _ = self.revocations.set(revocations);
    }

    /// `scheme://host[:port]` of the issuer.
    pub(crate) fn issuer_origin(&self) -> String {
        url::Url::parse(&self.config.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.config.issuer.clone())
    }

    /// Whether the revocation list (if attached) refuses this token of ours: its `jti`, or every
    /// token of its subject up to a moment.
    pub(crate) fn on_deny_list(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        jti: &str,
    ) -> bool {
        let Some(r) = self.revocations.get() else {
            return false;
        };
        let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default();
        let iat = claims.get("iat").and_then(|v| v.as_u64());
        r.list().is_revoked(&self.config.issuer, Some(jti), sub, iat)
    }

    /// Revokes one access token on the deny-list (if one is attached).
    pub(crate) async fn deny(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        match self.revocations.get() {
            Some(r) => {
                r.revoke(Revocation::Token {
                    issuer: self.config.issuer.clone(),
                    jti: jti.to_string(),
                    expires_at,
                })
                .await
            }
            None => Ok(()),
        }
    }

    /// Revokes a refresh-token family, its access tokens in the store and on the deny-list.
    /// Returns whether the family was live.
    pub(crate) async fn revoke_family(&self, id: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let revoked = self.store.revoke_family(id, now).await?;
        if self.revocations.get().is_some() {
            for a in self.store.family_access(id).await? {
                if a.expires_at > now {
                    self.deny(&a.jti, a.expires_at).await?;
                }
            }
        }
        Ok(revoked)
    }

    /// Revokes every token of `subject` (a user, or a client's own client-credentials tokens):
    /// its refresh-token families, and — on the deny-list — every access token issued to it up
    /// to now. Returns the families revoked.
    ///
    /// # Errors
    /// The store's.
    pub async fn revoke_subject(&self, subject: &str) -> Result<u64, StoreError> {
        let now = self.now();
        let families = self.store.revoke_subject(subject, now).await?;
        if let Some(r) = self.revocations.get() {
            r.revoke(Revocation::Subject {
                issuer: self.config.issuer.clone(),
                subject: subject.to_string(),
                issued_before: now,
                expires_at: now + self.config.access_token_lifetime.as_secs() + 60,
            })
            .await?;
        }
        tracing::info!(sub = %subject, families, "every token of the subject revoked");
        Ok(families)
    }

    /// The current JWKS document (every key not retired, a pending one included).
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.ring().jwks(self.now())
    }

    /// Signs an access token (RFC 9068), bound to a DPoP key when `jkt` is given (`cnf.jkt`).
    /// With a `family` (a user grant) its `jti` is recorded
    /// under the family, so that revoking the family revokes it; without one nothing is written
    /// until the token is revoked.
    ///
    /// # Errors
    /// The store's, when recording fails.
    pub async fn issue_access_token(
        &self,
        client_id: &str,
        subject: &str,
        roles: &[String],
        scope: &[String],
        family: Option<&str>,
        jkt: Option<&str>,
    ) -> Result<IssuedAccessToken, StoreError> {
        let (issued, record) = self.sign_access_token(client_id, subject, roles, scope, family, jkt)?;
        // Tokens of a grant are recorded so that revoking the grant (reuse, replay, revocation)
        // revokes them. A client-credentials token has no grant to follow: it is recorded only
        // if it is revoked (a deny-list entry), which keeps a store write off that hot path.
        if family.is_some() {
            self.store.insert_access(record).await?;
        }
        Ok(issued)
    }

    /// Signs an access token; returns it and the record that describes it (the caller decides
    /// whether to store it: a grant writes it with its other writes, in one transaction).
    pub(crate) fn sign_access_token(
        &self,
        client_id: &str,
        subject: &str,
        roles: &[String],
        scope: &[String],
        family: Option<&str>,
        jkt: Option<&str>,
    ) -> Result<(IssuedAccessToken, AccessTokenRecord), StoreError> {
        let record = self.new_access_record(client_id, subject, family, self.now());
        let issued = self.sign_recorded(&record, roles, scope, jkt)?;
        Ok((issued, record))
    }

    /// The record of an access token about to be issued at `now`: a fresh `jti` (128 bits),
    /// `exp` after the configured lifetime.
    pub(crate) fn new_access_record(
        &self,
        client_id: &str,
        subject: &str,
        family: Option<&str>,
        now: u64,
    ) -> AccessTokenRecord {
        AccessTokenRecord {
            jti: authz_core::oauth::new_secret()[..22].to_string(),
            family_id: family.map(str::to_string),
            client_id: client_id.to_string(),
            subject: subject.to_string(),
            expires_at: now + self.config.access_token_lifetime.as_secs(),
            revoked_at: None,
        }
    }

    /// Signs the access token a record describes (`iat`/`nbf` its `exp` less the lifetime).
    pub(crate) fn sign_recorded(
        &self,
        record: &AccessTokenRecord,
        roles: &[String],
        scope: &[String],
        jkt: Option<&str>,
    ) -> Result<IssuedAccessToken, StoreError> {
        let (client_id, subject, jti, exp) = (
            record.client_id.as_str(),
            record.subject.as_str(),
            record.jti.clone(),
            record.expires_at,
        );
        let now = exp - self.config.access_token_lifetime.as_secs();
        let mut claims = serde_json::json!({
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.audience,
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
            "scope": scope.join(" "),
            "roles": roles,
        });
        if let Some(jkt) = jkt {
            // RFC 9449 §6.1: bound to the key of the client's DPoP proof.
            claims["cnf"] = serde_json::json!({ "jkt": jkt });
        }
        if let Some(hook) = &self.config.extra_claims {
            let request = config::ClaimsRequest {
                subject,
                client_id,
                roles,
            };
            let object = claims.as_object_mut().expect("an object");
            for (name, value) in (hook.0)(&request) {
                if object.contains_key(&name) || name == "cnf" {
                    tracing::warn!(claim = %name, "extra claim dropped: the token service sets it");
                    continue;
                }
                object.insert(name, value);
            }
        }
        let token = self.keys.sign(&claims, now)?;
        Ok(IssuedAccessToken {
            token,
            jti,
            expires_at: exp,
        })
    }

    /// Publishes a new signing key now; it signs after
    /// [`key_publish_ahead`](TokenServiceConfig::key_publish_ahead), and the current key leaves
    /// the JWKS once its last token has expired. Returns the new `kid`.
    ///
    /// # Errors
    /// The store's.
    pub async fn rotate_signing_key(&self) -> Result<String, StoreError> {
        let kid = self
            .keys
            .rotate(
                self.store.as_ref(),
                self.now(),
                self.config.key_publish_ahead.as_secs(),
                self.config.access_token_lifetime.as_secs() + 60,
            )
            .await?;
        tracing::info!(kid = %kid, "signing key published; it signs after the publication delay");
        Ok(kid)
    }

    /// One maintenance round: reloads the keys (other instances may have rotated), rotates
    /// them when the newest is older than
    /// [`key_rotation_period`](TokenServiceConfig::key_rotation_period), and deletes expired
    /// rows. Returns the rows deleted.
    ///
    /// # Errors
    /// The store's.
    pub async fn maintain(&self) -> Result<u64, StoreError> {
        self.keys.reload(self.store.as_ref()).await?;
        let now = self.now();
        if self
            .keys
            .newest_signs_from()
            .is_none_or(|t| now >= t + self.config.key_rotation_period.as_secs())
        {
            self.rotate_signing_key().await?;
        }
        self.store.purge_expired(now).await
    }

    /// Runs [`maintain`](Self::maintain) every `every` on the tokio runtime (errors are logged
    /// and retried next round).
    pub fn spawn_maintenance(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match service.maintain().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "token service: expired rows deleted"),
                    Err(e) => tracing::warn!(error = %e, "token service maintenance failed"),
                }
            }
        })
    }
}

/// The client's address from `ConnectInfo<SocketAddr>`, when the server provides it.
pub(crate) struct ClientAddress(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
