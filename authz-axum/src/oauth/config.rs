//! The token service's settings, with the seed's defaults.

use std::time::Duration;

use crate::throttle::ThrottleConfig;

/// Where the endpoints are mounted (paths below the issuer URL). Published in the metadata
/// documents (RFC 8414 §2), which are always at `/.well-known/oauth-authorization-server` and
/// `/.well-known/openid-configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint (RFC 6749 §3.1), `GET` and `POST`. Default `/authorize`.
    pub authorize: String,
    /// Token endpoint (RFC 6749 §3.2). Default `/token`.
    pub token: String,
    /// Revocation endpoint (RFC 7009). Default `/revoke`.
    pub revoke: String,
    /// Introspection endpoint (RFC 7662). Default `/introspect`.
    pub introspect: String,
    /// The JWKS (RFC 7517). Default `/.well-known/jwks.json`.
    pub jwks: String,
    /// Ends the login session at the authorization server (`POST`). Default `/logout`.
    pub logout: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            authorize: "/authorize".into(),
            token: "/token".into(),
            revoke: "/revoke".into(),
            introspect: "/introspect".into(),
            jwks: "/.well-known/jwks.json".into(),
            logout: "/logout".into(),
        }
    }
}

/// Limits on login attempts at the authorization endpoint, counted **before** the password is
/// checked (passwords are low-entropy). Keyed per account *and* client address, and per
/// address: an attacker elsewhere cannot lock an account's owner out, and one address cannot
/// spray many accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottleConfig {
    /// Attempts on one account from one address at once (default 5).
    pub per_account_burst: u32,
    /// One more attempt per account and address every … (default 30 s).
    pub per_account_refill: Duration,
    /// Attempts from one address, any account, at once (default 20).
    pub per_address_burst: u32,
    /// One more attempt per address every … (default 3 s).
    pub per_address_refill: Duration,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self {
            per_account_burst: 5,
            per_account_refill: Duration::from_secs(30),
            per_address_burst: 20,
            per_address_refill: Duration::from_secs(3),
        }
    }
}

/// Settings of a [`TokenService`](super::TokenService). Build with
/// [`TokenServiceConfig::new`] and adjust fields; [`TokenService::new`](super::TokenService::new)
/// checks them.
#[derive(Debug, Clone)]
pub struct TokenServiceConfig {
    /// The issuer identifier (`iss`, RFC 8414 §2): an `https` URL (or `http` on loopback)
    /// without query or fragment; endpoints are published below it.
    pub issuer: String,
    /// The `aud` of every access token (the resource server's identifier).
    pub audience: String,
    /// Access-token lifetime. Default 10 minutes; must lie within 5–15 minutes (the seed's
    /// range) unless [`allow_long_access_tokens`](Self::allow_long_access_tokens).
    pub access_token_lifetime: Duration,
    /// Opt-in to access tokens living longer than 15 minutes (up to 24 h). A stolen access token
    /// is valid until it expires: prefer refresh tokens.
    pub allow_long_access_tokens: bool,
    /// Authorization-code lifetime: default and maximum 60 s.
    pub code_lifetime: Duration,
    /// A refresh-token family unused this long is dead. Default 7 days.
    pub refresh_idle_timeout: Duration,
    /// A refresh-token family ends this long after the grant, however used. Default 30 days.
    pub refresh_absolute_lifetime: Duration,
    /// Login session at the authorization server. Default 8 hours.
    pub session_lifetime: Duration,
    /// After a client-secret rotation the old secret keeps working this long. Default 24 h.
    pub secret_overlap: Duration,
    /// PKCE for confidential clients too (public clients always need it). Default `true`
    /// (RFC 9700 §2.1.1).
    pub require_pkce_for_confidential: bool,
    /// Signing keys are rotated automatically after this long (by
    /// [`TokenService::maintain`](super::TokenService::maintain)). Default 30 days.
    pub key_rotation_period: Duration,
    /// A new signing key is published this long before it signs. Must exceed
    /// [`jwks_max_age`](Self::jwks_max_age). Default 15 minutes.
    pub key_publish_ahead: Duration,
    /// `Cache-Control: max-age` of the JWKS. Default 5 minutes.
    pub jwks_max_age: Duration,
    /// The endpoints' paths.
    pub endpoints: Endpoints,
    /// The realm of `WWW-Authenticate: Basic` challenges. Default `"token service"`.
    pub realm: String,
    /// `Secure` on the cookies. Default (`None`): on unless the issuer is `http://` on a
    /// loopback address.
    pub secure_cookies: Option<bool>,
    /// Login attempts.
    pub login_throttle: LoginThrottleConfig,
    /// Failed client authentications (token, revocation, introspection endpoints).
    pub client_throttle: ThrottleConfig,
    /// Adds claims to every access token (e.g. the subject's `tenant`); see [`ExtraClaims`].
    /// Default none.
    pub extra_claims: Option<ExtraClaims>,
}

/// What an [`ExtraClaims`] hook is told about the token being issued.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ClaimsRequest<'a> {
    /// The token's `sub`: the user, or the client itself for `client_credentials`.
    pub subject: &'a str,
    /// The `client_id`.
    pub client_id: &'a str,
    /// The roles the token will carry.
    pub roles: &'a [String],
}

/// A hook that returns extra claims for an access token, called at every issuance (refreshes
/// included, so a change applies from the next token). The claims the service sets itself
/// (`iss`, `sub`, `aud`, `client_id`, `iat`, `nbf`, `exp`, `jti`, `scope`, `roles`, `cnf`)
/// cannot be replaced: such a key is dropped with a warning.
///
/// ```
/// use authz_axum::oauth::{ClaimsRequest, ExtraClaims};
/// let tenants = ExtraClaims::new(|r: &ClaimsRequest<'_>| {
///     let mut m = serde_json::Map::new();
///     if r.subject.starts_with("acme-") {
///         m.insert("tenant".into(), "acme".into());
///     }
///     m
/// });
/// ```
#[derive(Clone)]
pub struct ExtraClaims(
    #[allow(clippy::type_complexity)]
    pub(crate)  std::sync::Arc<
        dyn Fn(&ClaimsRequest<'_>) -> serde_json::Map<String, serde_json::Value> + Send + Sync,
    >,
);

impl ExtraClaims {
    /// Wraps `hook`.
    pub fn new(
        hook: impl Fn(&ClaimsRequest<'_>) -> serde_json::Map<String, serde_json::Value> + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(hook))
    }
}

impl std::fmt::Debug for ExtraClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraClaims(..)")
    }
}

/// The range access-token lifetimes must lie in without the opt-in.
pub const ACCESS_TOKEN_LIFETIME_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(300)..=Duration::from_secs(900);

impl TokenServiceConfig {
    /// The defaults for `issuer` and `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            audience: audience.into(),
            access_token_lifetime: Duration::from_secs(600),
            allow_long_access_tokens: false,
            code_lifetime: Duration::from_secs(60),
            refresh_idle_timeout: Duration::from_secs(7 * 86_400),
            refresh_absolute_lifetime: Duration::from_secs(30 * 86_400),
            session_lifetime: Duration::from_secs(8 * 3600),
            secret_overlap: Duration::from_secs(86_400),
            require_pkce_for_confidential: true,
            key_rotation_period: Duration::from_secs(30 * 86_400),
            key_publish_ahead: Duration::from_secs(900),
            jwks_max_age: Duration::from_secs(300),
            endpoints: Endpoints::default(),
            realm: "token service".into(),
            secure_cookies: None,
            login_throttle: LoginThrottleConfig::default(),
            client_throttle: ThrottleConfig::default(),
            extra_claims: None,
        }
    }

    /// Checks the settings; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.issuer)
            .map_err(|e| format!("issuer {:?} is not a URL: {e}", self.issuer))?;
        let loopback = is_loopback(&url);
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(format!(
                "issuer {:?} must be https (http only on a loopback address)",
                self.issuer
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "issuer {:?} must not have a query or fragment",
                self.issuer
            ));
        }
        if self.audience.is_empty() {
            return Err("audience must not be empty".into());
        }
        let lifetime = self.access_token_lifetime;
        if self.allow_long_access_tokens {
            if lifetime.is_zero() || lifetime > Duration::from_secs(86_400) {
                return Err("access_token_lifetime must lie within 1 s – 24 h".into());
            }
        } else if !ACCESS_TOKEN_LIFETIME_RANGE.contains(&lifetime) {
            return Err(format!(
                "access_token_lifetime is {} s: it must lie within 300–900 s (5–15 minutes); \
                 set allow_long_access_tokens to go beyond",
                lifetime.as_secs()
            ));
        }
        if self.code_lifetime.is_zero() || self.code_lifetime > Duration::from_secs(60) {
            return Err("code_lifetime must lie within 1–60 s".into());
        }
        if self.refresh_idle_timeout.is_zero() || self.refresh_idle_timeout > self.refresh_absolute_lifetime {
            return Err("refresh_idle_timeout must be positive and at most refresh_absolute_lifetime".into());
        }
        if self.key_publish_ahead <= self.jwks_max_age {
            return Err(
                "key_publish_ahead must exceed jwks_max_age (caches must see a key before its tokens)".into(),
            );
        }
        let e = &self.endpoints;
        for (name, path) in [
            ("authorize", &e.authorize),
            ("token", &e.token),
            ("revoke", &e.revoke),
            ("introspect", &e.introspect),
            ("jwks", &e.jwks),
            ("logout", &e.logout),
        ] {
            if !path.starts_with('/') {
                return Err(format!("endpoints.{name} {path:?} must start with '/'"));
            }
        }
        Ok(())
    }

    /// Whether cookies carry `Secure`.
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies.unwrap_or_else(|| {
            url::Url::parse(&self.issuer).map_or(true, |u| !(u.scheme() == "http" && is_loopback(&u)))
        })
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
