//! Outgoing calls to other services (feature `remote`): an OAuth 2.0 client-credentials token
//! source (RFC 6749 §4.4) that fetches an access token, caches it until shortly before it
//! expires, and puts it on outgoing requests as `Authorization: Bearer …` (RFC 6750 §2.1).
//!
//! ```no_run
//! use authz_axum::token_source::{ClientAuth, ClientCredentials, ClientCredentialsLayer, Secret};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let source = ClientCredentials::builder("billing-svc", Secret::new(std::env::var("CLIENT_SECRET")?))
//!     .token_endpoint("https://idp.example.com/oauth/token")
//!     .auth(ClientAuth::ClientSecretBasic) // the default
//!     .scope("invoices:read")
//!     .resource("https://api.example.com") // RFC 8707: the service the token is for
//!     .build()?;
//! // Or from the provider's metadata (RFC 8414 / OpenID Connect discovery):
//! // ClientCredentials::builder(..).discover("https://idp.example.com").await?
//!
//! // With reqwest:
//! let http = reqwest::Client::new();
//! let resp = source.authorize(http.get("https://api.example.com/invoices")).await?.send().await?;
//!
//! // With any tower HTTP client service (here reqwest behind `service_fn`; hyper-util's
//! // `Client` works the same):
//! let client = tower::service_fn(move |req: http::Request<reqwest::Body>| {
//!     let http = http.clone();
//!     async move { Ok::<_, reqwest::Error>(http.execute(req.try_into()?).await?.into()) }
//! });
//! let svc = ServiceBuilder::new().layer(ClientCredentialsLayer::new(source.clone())).service(client);
//! let req = http::Request::get("https://api.example.com/invoices").body(reqwest::Body::from(""))?;
//! let resp: http::Response<reqwest::Body> = svc.oneshot(req).await?;
//! # Ok(()) }
//! ```
//!
//! | situation | behaviour |
//! |---|---|
//! | a token is cached and more than the refresh margin is left | [`ClientCredentials::token`] returns it (no I/O, one short lock) |
//! | no token, or inside the margin | one request to the token endpoint, shared by every concurrent caller |
//! | the response has no `expires_in` | the token is taken to live [`DEFAULT_LIFETIME`] (5 min; [`ClientCredentialsBuilder::default_lifetime`]) |
//! | a refresh fails while the old token has not expired yet | the old token, and a warning in the log |
//! | a refresh fails and there is no unexpired token | the error ([`TokenSourceError`]; `invalid_client` & co. per RFC 6749 §5.2) |
//! | after a failure | no new request for 1 s, 2 s, 4 s … at most 30 s; callers meanwhile get the unexpired token or the same error |
//! | an upstream answers 401 `WWW-Authenticate: Bearer error="invalid_token"` to a request sent by [`ClientCredentialsService`] | that token is dropped from the cache; the *next* request fetches a new one (this one is not retried) |
//!
//! Time is read from the injected [`Clock`] only (default: the system clock); nothing here sleeps
//! or runs on its own timer. The client secret is held in a [`Secret`] and the token in an
//! [`AccessToken`], both with redacted `Debug`; neither ever appears in an error or a log line,
//! and the `Authorization` headers this module sets are marked sensitive.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use authz_core::clock::{self, Clock};
use http::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use reqwest::Url;
use tower::{BoxError, Layer, Service};

/// How long a token is used when the token response has no `expires_in` (RFC 6749 §5.1 makes it
/// optional): 5 minutes, short on purpose — a token that lives longer is merely fetched again
/// early; one assumed to live longer than it does would be refused upstream.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Timeout of one token or discovery request, connection included: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default refresh margin is the smaller of this (60 s) and a tenth of the token's lifetime.
pub const DEFAULT_MAX_MARGIN: Duration = Duration::from_secs(60);

/// Largest token or discovery response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest wait after failures before the next request to the token endpoint.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest `expires_in` honoured (one year): a silly value cannot overflow the arithmetic.
const MAX_LIFETIME_S: u64 = 365 * 24 * 3600;

// ---- secrets and tokens ----------------------------------------------------------------------

/// A client secret. `Debug` prints `Secret(<redacted>)`; there is no `Display`, so it cannot end
/// up in a format string by accident. The value is read with [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for sending it to the token endpoint.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// An access token from the token endpoint (RFC 6749 §5.1). Cheap to clone. `Debug` shows
/// everything but the token itself.
#[derive(Clone)]
pub struct AccessToken {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    value: String,
    header: HeaderValue,
    token_type: String,
    scope: Option<String>,
    /// Milliseconds since the Unix epoch, on the source's clock.
    expires_at_ms: u64,
    refresh_at_ms: u64,
}

impl AccessToken {
    /// The token itself, a credential: send it, never log it.
    pub fn secret(&self) -> &str {
        &self.inner.value
    }

    /// `token_type` as the token endpoint spelled it; always `Bearer` in any letter case (other
    /// types are refused when the token is fetched, RFC 6749 §7.1).
    pub fn token_type(&self) -> &str {
        &self.inner.token_type
    }

    /// When the token expires, in whole seconds since the Unix epoch: the source clock's time
    /// when the token request was sent plus `expires_in` (or [`DEFAULT_LIFETIME`]) — on the safe
    /// side by the request's duration.
    pub fn expires_at(&self) -> u64 {
        self.inner.expires_at_ms / 1000
    }

    /// The granted scope (space-separated, RFC 6749 §3.3): the response's `scope`, or the scope
    /// that was requested when the response has none (§5.1); `None` when neither exists.
    pub fn scope(&self) -> Option<&str> {
        self.inner.scope.as_deref()
    }

    /// `Bearer <token>` as a header value marked sensitive (logging layers print `Sensitive`).
    pub fn authorization(&self) -> HeaderValue {
        self.inner.header.clone()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("token_type", &self.inner.token_type)
            .field("expires_at", &self.expires_at())
            .field("scope", &self.inner.scope)
            .finish()
    }
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic: `client_id` and secret each form-urlencoded (RFC 6749 §2.3.1, Appendix B),
    /// then joined by `:` and base64-encoded. The default; every server must support it.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` as parameters of the form body. Only for servers that do
    /// not support Basic (RFC 6749 §2.3.1 says "NOT RECOMMENDED").
    ClientSecretPost,
}

// ---- errors ----------------------------------------------------------------------------------

/// Why no token could be had. Never contains the client secret or a token: the server's
/// `error_description` is cut to 300 characters and has the secret blanked out should a server
/// echo it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// The configuration cannot work (a `http://` token endpoint off loopback, no endpoint, an
    /// invalid scope …); or discovery found no usable token endpoint.
    #[error("client credentials: {0}")]
    Config(String),
    /// The request did not complete: connection refused, timeout, TLS failure.
    #[error("token request to {endpoint} failed: {reason}")]
    Http {
        /// The token endpoint.
        endpoint: String,
        /// The cause chain (never a URL with credentials, never the body).
        reason: String,
    },
    /// The token endpoint refused with an RFC 6749 §5.2 error response, such as
    /// `invalid_client` (wrong secret, HTTP 401), `invalid_scope`, `unauthorized_client`,
    /// `invalid_target` (RFC 8707 §2).
    #[error("token endpoint {endpoint} refused the request (HTTP {status}): {error}{}",
        .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The token endpoint.
        endpoint: String,
        /// The HTTP status (400 or 401 per §5.2).
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// A non-2xx status without an RFC 6749 §5.2 body.
    #[error("token endpoint {endpoint} answered HTTP {status}")]
    Status {
        /// The token endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
    /// A 2xx response that is not a usable token response (not JSON, no `access_token`, a
    /// token type other than `Bearer`, a token that is not RFC 6750 `b64token` syntax …).
    #[error("token endpoint {endpoint} sent an unusable response: {reason}")]
    InvalidResponse {
        /// The token endpoint.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl TokenSourceError {
    /// The RFC 6749 §5.2 `error` code (`invalid_client`, `invalid_scope` …), if the token
    /// endpoint sent one.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---- the builder -----------------------------------------------------------------------------

/// Configures a [`ClientCredentials`]; from [`ClientCredentials::builder`].
#[derive(Debug, Clone)]
pub struct ClientCredentialsBuilder {
    token_endpoint: Option<String>,
    client_id: String,
    secret: Secret,
    auth: ClientAuth,
    scopes: Vec<String>,
    resources: Vec<String>,
    audience: Option<String>,
    clock: Arc<dyn Clock>,
    margin: Option<Duration>,
    timeout: Duration,
    default_lifetime: Duration,
    client: Option<reqwest::Client>,
}

impl ClientCredentialsBuilder {
    /// The token endpoint: `https://`, or `http://` on loopback only (the secret travels in the
    /// request). No user name, password or fragment in the URL.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Client authentication (default [`ClientAuth::ClientSecretBasic`]).
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Adds scope tokens: `scope` may hold several separated by spaces. They are sent
    /// space-joined as `scope` (RFC 6749 §3.3; each token printable ASCII without `"` and `\`).
    /// Default: no `scope` parameter (the server's default scope).
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scopes.extend(
            scope
                .as_ref()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        self
    }

    /// Adds a `resource` parameter (RFC 8707 §2): the absolute URI (no fragment) of the service
    /// the token is for; the server puts it in the token's `aud`. May be given several times.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self
    }

    /// Sends `audience` (not a standard parameter: Auth0 and a few others use it instead of
    /// `resource`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The clock every expiry decision reads (default: the system clock). Tests inject a
    /// [`ManualClock`](authz_core::clock::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Fetch a new token when less than `margin` of the current one's lifetime is left. Default:
    /// the smaller of 60 s and a tenth of the lifetime. A configured margin is capped at half the
    /// lifetime, so that even a short-lived token is reused.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// Timeout of one request, connection included (default [`DEFAULT_TIMEOUT`], 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The lifetime assumed when a token response has no `expires_in` (default
    /// [`DEFAULT_LIFETIME`], 5 min).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The HTTP client for token and discovery requests. Default: a reqwest client over rustls
    /// that follows no redirects (a redirect of a token request would be a non-2xx error). The
    /// timeout is set on each request either way.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the source. Nothing is fetched until the first [`ClientCredentials::token`].
    ///
    /// # Errors
    /// [`TokenSourceError::Config`]: no token endpoint, one that is not `https://` (or `http://`
    /// on loopback) or carries credentials or a fragment, an empty `client_id` or secret, a scope
    /// token with characters RFC 6749 §3.3 does not allow, a `resource` that is not an absolute
    /// URI without fragment, a zero timeout, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<ClientCredentials, TokenSourceError> {
        let Some(endpoint) = self.token_endpoint.as_deref() else {
            return Err(config(
                "no token endpoint: set .token_endpoint(url) or use .discover(issuer)",
            ));
        };
        let endpoint = check_endpoint(endpoint)?;
        if self.client_id.is_empty() {
            return Err(config("client_id is empty"));
        }
        if self.secret.expose().is_empty() {
            return Err(config("the client secret is empty"));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !s.bytes().all(is_scope_char)) {
            return Err(config(format!(
                "scope token {bad:?} has a character RFC 6749 §3.3 does not allow"
            )));
        }
        for r in &self.resources {
            match Url::parse(r) {
                Ok(u) if u.fragment().is_none() => {}
                _ => {
                    return Err(config(format!(
                        "resource {r:?} is not an absolute URI without fragment (RFC 8707 §2)"
                    )));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(config("the timeout is zero"));
        }
        let client = match self.client {
            Some(c) => c,
            None => default_client(self.timeout)?,
        };
        let scope = (!self.scopes.is_empty()).then(|| self.scopes.join(" "));
        Ok(ClientCredentials {
            inner: Arc::new(Inner {
                endpoint,
                client_id: self.client_id,
                secret: self.secret,
                auth: self.auth,
                scope,
                resources: self.resources,
                audience: self.audience,
                clock: self.clock,
                margin: self.margin,
                timeout: self.timeout,
                default_lifetime: self.default_lifetime,
                client,
                state: Mutex::new(State::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
            }),
        })
    }

    /// Reads the authorization server's metadata and builds with its `token_endpoint`: first
    /// RFC 8414 (`/.well-known/oauth-authorization-server`, inserted before the issuer's path),
    /// then OpenID Connect Discovery (`{issuer}/.well-known/openid-configuration`). The document
    /// must name exactly `issuer` (RFC 8414 §3.3, OpenID Connect Discovery §4.3). A token
    /// endpoint set with [`token_endpoint`](Self::token_endpoint) is replaced.
    ///
    /// # Errors
    /// [`TokenSourceError::Config`] when neither document can be fetched or names the issuer and
    /// a `token_endpoint` (the message says why for each), or as [`build`](Self::build).
    pub async fn discover(mut self, issuer: &str) -> Result<ClientCredentials, TokenSourceError> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => default_client(self.timeout)?,
        };
        let base = check_endpoint(issuer)?;
        let mut reasons = Vec::new();
        for url in metadata_urls(&base) {
            match fetch_metadata(&client, &url, issuer, self.timeout).await {
                Ok(endpoint) => {
                    self.token_endpoint = Some(endpoint);
                    self.client = Some(client);
                    return self.build();
                }
                Err(e) => reasons.push(format!("{url}: {e}")),
            }
        }
        Err(config(format!(
            "no token endpoint discovered for issuer {issuer:?}: {}",
            reasons.join("; ")
        )))
    }
}

fn config(msg: impl Into<String>) -> TokenSourceError {
    TokenSourceError::Config(msg.into())
}

fn check_endpoint(url: &str) -> Result<Url, TokenSourceError> {
    let parsed = authz_core::jwks::check_url(url).map_err(|e| config(e.0))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(config(
            "the URL carries credentials; give them as client_id and secret",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(config(format!("{url:?} has a fragment")));
    }
    Ok(parsed)
}

fn default_client(timeout: Duration) -> Result<reqwest::Client, TokenSourceError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authz/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config(format!("cannot build the HTTP client: {e}")))
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// The RFC 8414 and the OpenID Connect metadata URLs of an issuer, in that order.
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    oauth.set_query(None);
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    oidc.set_query(None);
    vec![oauth, oidc]
}

async fn fetch_metadata(
    client: &reqwest::Client,
    url: &Url,
    issuer: &str,
    timeout: Duration,
) -> Result<String, String> {
    let resp = client
        .get(url.clone())
        .timeout(timeout)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let body = read_limited(resp).await?;
    let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_string())?;
    let named = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
    if named != issuer {
        return Err(format!("names issuer {named:?}, not {issuer:?}"));
    }
    let endpoint = doc
        .get("token_endpoint")
        .and_then(|v| v.as_str())
        .ok_or("has no token_endpoint")?;
    check_endpoint(endpoint).map_err(|e| format!("token_endpoint: {e}"))?;
    Ok(endpoint.to_string())
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e.without_url()))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes ("error sending request: connection refused"), never a URL.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

// ---- the source ------------------------------------------------------------------------------

/// A client-credentials token source (RFC 6749 §4.4): fetches, caches and refreshes one access
/// token for one client. Cheap to clone; clones share the cache. See the [module
/// docs](self) for the behaviour table.
#[derive(Clone)]
pub struct ClientCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Url,
    client_id: String,
    secret: Secret,
    auth: ClientAuth,
    scope: Option<String>,
    resources: Vec<String>,
    audience: Option<String>,
    clock: Arc<dyn Clock>,
    margin: Option<Duration>,
    timeout: Duration,
    default_lifetime: Duration,
    client: reqwest::Client,
    state: Mutex<State>,
    /// Held while a request to the token endpoint is under way: the single flight.
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct State {
    token: Option<AccessToken>,
    /// Completed requests to the token endpoint.
    attempts: u64,
    /// The error of the latest request, if it failed.
    last_error: Option<TokenSourceError>,
    /// Consecutive failures, and the earliest time (ms since the epoch) of the next request.
    failures: u32,
    retry_at_ms: u64,
}

impl State {
    /// The cached token while it has not expired (it may be inside the margin).
    fn unexpired(&self, now_ms: u64) -> Option<AccessToken> {
        self.token.clone().filter(|t| now_ms < t.inner.expires_at_ms)
    }

    /// The cached token while more than the margin is left.
    fn fresh(&self, now_ms: u64) -> Option<AccessToken> {
        self.token.clone().filter(|t| now_ms < t.inner.refresh_at_ms)
    }

    /// After a failure: the unexpired token, or the failure.
    fn after_failure(&self, now_ms: u64) -> Option<Result<AccessToken, TokenSourceError>> {
        let error = self.last_error.clone()?;
        Some(self.unexpired(now_ms).ok_or(error))
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let expires_at = inner.state().token.as_ref().map(AccessToken::expires_at);
        f.debug_struct("ClientCredentials")
            .field("token_endpoint", &inner.endpoint.as_str())
            .field("client_id", &inner.client_id)
            .field("secret", &inner.secret)
            .field("auth", &inner.auth)
            .field("scope", &inner.scope)
            .field("resources", &inner.resources)
            .field("cached_token_expires_at", &expires_at)
            .finish()
    }
}

impl ClientCredentials {
    /// Starts the configuration of a source for `client_id` with `secret`; set the token
    /// endpoint (or [`discover`](ClientCredentialsBuilder::discover) it), then
    /// [`build`](ClientCredentialsBuilder::build).
    pub fn builder(client_id: impl Into<String>, secret: impl Into<Secret>) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            token_endpoint: None,
            client_id: client_id.into(),
            secret: secret.into(),
            auth: ClientAuth::default(),
            scopes: Vec::new(),
            resources: Vec::new(),
            audience: None,
            clock: clock::system(),
            margin: None,
            timeout: DEFAULT_TIMEOUT,
            default_lifetime: DEFAULT_LIFETIME,
            client: None,
        }
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> &str {
        self.inner.endpoint.as_str()
    }

    /// The `client_id`.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// How many requests were sent to the token endpoint so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// An access token: the cached one while more than the refresh margin is left, else a new
    /// one. Concurrent callers that find no fresh token share one request to the token endpoint
    /// (they wait on one lock; the first fetches, the others take its result). If the calling
    /// future is dropped mid-request, the request is abandoned and the next waiter sends its own.
    ///
    /// # Errors
    /// The token endpoint cannot be reached or refuses, and no unexpired token is cached (a
    /// failed refresh while the cached token is still valid returns that token and logs a
    /// warning). During the back-off after a failure, the same error without a new request.
    pub async fn token(&self) -> Result<AccessToken, TokenSourceError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_millis();
        let seen = {
            let state = inner.state();
            if let Some(t) = state.fresh(now) {
                return Ok(t);
            }
            if state.failures > 0
                && now < state.retry_at_ms
                && let Some(outcome) = state.after_failure(now)
            {
                return outcome;
            }
            state.attempts
        };
        let _flight = inner.fetch_lock.lock().await;
        let now = inner.clock.unix_millis();
        {
            let state = inner.state();
            if let Some(t) = state.fresh(now) {
                return Ok(t);
            }
            if state.attempts != seen {
                // A request finished while we waited: share its outcome rather than send another.
                if let Some(outcome) = state.after_failure(now) {
                    return outcome;
                }
                if let Some(t) = state.unexpired(now) {
                    return Ok(t);
                }
            }
        }
        let result = inner.fetch(now).await;
        let mut state = inner.state();
        state.attempts += 1;
        match result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.failures = 0;
                state.last_error = None;
                Ok(token)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let backoff =
                    (Duration::from_secs(1) * (1u32 << (state.failures - 1).min(5))).min(MAX_BACKOFF);
                state.retry_at_ms = now.saturating_add(backoff.as_millis() as u64);
                state.last_error = Some(e.clone());
                match state.unexpired(now) {
                    Some(old) => {
                        tracing::warn!(client_id = %inner.client_id, error = %e,
                            expires_in_s = (old.inner.expires_at_ms - now) / 1000,
                            retry_in_ms = backoff.as_millis() as u64,
                            "token refresh failed; the current token stays in use until it expires");
                        Ok(old)
                    }
                    None => {
                        tracing::warn!(client_id = %inner.client_id, error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            "token request failed and no unexpired token is cached");
                        Err(e)
                    }
                }
            }
        }
    }

    /// Adds `Authorization: Bearer <token>` (marked sensitive) to a reqwest request, replacing
    /// any `Authorization` header it has.
    ///
    /// # Errors
    /// As [`token`](Self::token).
    pub async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, TokenSourceError> {
        let token = self.token().await?;
        Ok(request.header(AUTHORIZATION, token.authorization()))
    }

    /// Forgets the cached token: the next [`token`](Self::token) fetches a new one.
    pub fn invalidate(&self) {
        self.inner.state().token = None;
    }

    /// Forgets `token` if it is still the cached one (a resource server refused it; a newer
    /// token fetched meanwhile is kept). Returns whether it was.
    pub fn invalidate_token(&self, token: &AccessToken) -> bool {
        let mut state = self.inner.state();
        let current = state
            .token
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.inner, &token.inner));
        if current {
            state.token = None;
        }
        current
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    /// One request to the token endpoint (RFC 6749 §4.4.2).
    async fn fetch(&self, now_ms: u64) -> Result<AccessToken, TokenSourceError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        for r in &self.resources {
            form.push(("resource", r));
        }
        if let Some(a) = &self.audience {
            form.push(("audience", a));
        }
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        match self.auth {
            ClientAuth::ClientSecretBasic => {
                let (id, secret) = basic_credentials(&self.client_id, self.secret.expose());
                request = request.basic_auth(id, Some(secret));
            }
            ClientAuth::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.secret.expose()));
            }
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenSourceError::Http {
                endpoint: self.endpoint(),
                reason: error_chain(&e.without_url()),
            })?;
        let status = response.status();
        let body = read_limited(response)
            .await
            .map_err(|reason| TokenSourceError::Http {
                endpoint: self.endpoint(),
                reason,
            })?;
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        let invalid = |reason: &str| TokenSourceError::InvalidResponse {
            endpoint: self.endpoint(),
            reason: reason.to_string(),
        };
        // Read as a JSON value first: serde's typed errors may quote the offending value.
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| invalid("not JSON"))?;
        let value = doc
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid("no access_token string"))?;
        if !is_b64token(value) {
            return Err(invalid("the access_token is not RFC 6750 §2.1 b64token syntax"));
        }
        let token_type = doc
            .get("token_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid("no token_type (RFC 6749 §5.1 requires it)"))?;
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(invalid(&format!(
                "token_type {:?} is not Bearer (RFC 6749 §7.1: a client must not use a token type it does not understand)",
                scrub(token_type, &[])
            )));
        }
        let lifetime_ms = match parse_expires_in(doc.get("expires_in")).map_err(&invalid)? {
            Some(s) => s.min(MAX_LIFETIME_S) * 1000,
            None => (self.default_lifetime.as_millis() as u64).min(MAX_LIFETIME_S * 1000),
        };
        let margin_ms = match self.margin {
            Some(m) => (m.as_millis() as u64).min(lifetime_ms / 2),
            None => (DEFAULT_MAX_MARGIN.as_millis() as u64).min(lifetime_ms / 10),
        };
        let scope = match doc.get("scope").and_then(|v| v.as_str()) {
            Some(s) => Some(s.to_string()),
            None => self.scope.clone(),
        };
        let mut header = HeaderValue::from_str(&format!("Bearer {value}"))
            .map_err(|_| invalid("the access_token cannot be sent in a header"))?;
        header.set_sensitive(true);
        let expires_at_ms = now_ms.saturating_add(lifetime_ms);
        tracing::debug!(client_id = %self.client_id, endpoint = %self.endpoint,
            expires_in_s = lifetime_ms / 1000, scope = scope.as_deref().unwrap_or(""),
            "client-credentials token fetched");
        Ok(AccessToken {
            inner: Arc::new(TokenInner {
                value: value.to_string(),
                header,
                token_type: token_type.to_string(),
                scope,
                expires_at_ms,
                refresh_at_ms: expires_at_ms - margin_ms,
            }),
        })
    }

    /// A non-2xx response: RFC 6749 §5.2 `{"error", "error_description"}` when it is one.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> TokenSourceError {
        let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = doc
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(|v| v.as_str())
            .filter(|e| !e.is_empty() && e.len() <= 100 && e.bytes().all(is_error_char));
        match error {
            Some(error) => {
                // Should a server echo the secret (as sent, or form-encoded), it is blanked out.
                let (_, encoded) = basic_credentials(&self.client_id, self.secret.expose());
                let hide = [self.secret.expose(), encoded.as_str()];
                let description = doc
                    .as_ref()
                    .and_then(|d| d.get("error_description"))
                    .and_then(|v| v.as_str())
                    .map(|d| scrub(d, &hide));
                TokenSourceError::Refused {
                    endpoint: self.endpoint(),
                    status: status.as_u16(),
                    error: scrub(error, &hide),
                    description,
                }
            }
            None => TokenSourceError::Status {
                endpoint: self.endpoint(),
                status: status.as_u16(),
            },
        }
    }
}

/// RFC 6749 §2.3.1: `client_id` and secret are form-urlencoded (Appendix B) before they are
/// joined with `:` and base64-encoded.
fn basic_credentials(client_id: &str, secret: &str) -> (String, String) {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    (enc(client_id), enc(secret))
}

/// RFC 6749 §5.2: `error` is `1*( %x20-21 / %x23-5B / %x5D-7E )`.
fn is_error_char(b: u8) -> bool {
    matches!(b, 0x20 | 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// `expires_in` in seconds: a non-negative number (a fraction is cut; a negative one is 0) or a
/// string of digits (some servers quote it). `None` when absent or `null`.
fn parse_expires_in(v: Option<&serde_json::Value>) -> Result<Option<u64>, &'static str> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            Ok(Some(n.as_u64().unwrap_or_else(|| {
                n.as_f64().filter(|f| f.is_finite() && *f > 0.0).unwrap_or(0.0) as u64
            })))
        }
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| "expires_in is not a number of seconds"),
        Some(_) => Err("expires_in is not a number of seconds"),
    }
}

/// Server text made safe for an error message: the `hide` values blanked out, control
/// characters dropped, at most 300 characters.
fn scrub(text: &str, hide: &[&str]) -> String {
    let mut s = text.to_string();
    for h in hide.iter().filter(|h| !h.is_empty()) {
        s = s.replace(h, "<redacted>");
    }
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Whether a response carries `WWW-Authenticate: Bearer … error="invalid_token"` (RFC 6750 §3).
fn invalid_token_challenge(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
        let Ok(v) = v.to_str() else { return false };
        let v = v.trim_start();
        v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            && v[6..].split(',').any(|param| {
                param.split_once('=').is_some_and(|(k, val)| {
                    k.trim().eq_ignore_ascii_case("error") && val.trim().trim_matches('"') == "invalid_token"
                })
            })
    })
}

// ---- tower -----------------------------------------------------------------------------------

/// A tower layer for HTTP *client* services: every request gets `Authorization: Bearer <token>`
/// from a [`ClientCredentials`] (replacing any `Authorization` it had; marked sensitive).
///
/// Works with any service taking `http::Request<B>` and answering `http::Response<R>` (hyper-util's
/// `Client`, reqwest behind `service_fn`, …). When the upstream answers 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1), the token that request
/// carried is dropped from the cache (unless a newer one replaced it meanwhile), so that the next
/// request fetches a new one; the 401 itself is returned as it is — the request is not retried,
/// its body is gone. Errors are boxed ([`BoxError`]): a [`TokenSourceError`] when no token could
/// be had (the request is then not sent), or the inner service's error.
#[derive(Debug, Clone)]
pub struct ClientCredentialsLayer {
    source: ClientCredentials,
}

impl ClientCredentialsLayer {
    /// A layer that authorizes requests with tokens from `source`.
    pub fn new(source: ClientCredentials) -> Self {
        Self { source }
    }
}

impl<S> Layer<S> for ClientCredentialsLayer {
    type Service = ClientCredentialsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientCredentialsService {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service [`ClientCredentialsLayer`] produces.
#[derive(Debug, Clone)]
pub struct ClientCredentialsService<S> {
    inner: S,
    source: ClientCredentials,
}

impl<S> ClientCredentialsService<S> {
    /// Wraps `inner`, authorizing its requests with tokens from `source`.
    pub fn new(inner: S, source: ClientCredentials) -> Self {
        Self { inner, source }
    }

    /// The token source.
    pub fn source(&self) -> &ClientCredentials {
        &self.source
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The future of [`ClientCredentialsService`].
pub type ResponseFuture<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for ClientCredentialsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<http::Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was driven to readiness sends this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let token = source.token().await?;
            request.headers_mut().insert(AUTHORIZATION, token.authorization());
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() == StatusCode::UNAUTHORIZED
                && invalid_token_challenge(response.headers())
                && source.invalidate_token(&token)
            {
                tracing::debug!(client_id = %source.client_id(),
                    "upstream refused the token (invalid_token): the next request fetches a new one");
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_first() {
        // RFC 6749 §2.3.1 / Appendix B: space is '+', reserved characters are %XX.
        let (id, secret) = basic_credentials("svc:a", "p a+s%s/é");
        assert_eq!(id, "svc%3Aa");
        assert_eq!(secret, "p+a%2Bs%25s%2F%C3%A9");
        assert_eq!(basic_credentials("svc-1", "abc").1, "abc");
    }

    #[test]
    fn b64token_and_scope_syntax() {
        assert!(is_b64token("eyJ.abc-_~+/=="));
        assert!(!is_b64token("a b"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("tok\"en"));
        assert!(is_scope_char(b'a') && !is_scope_char(b'"') && !is_scope_char(b' '));
    }

    #[test]
    fn expires_in_shapes() {
        use serde_json::json;
        assert_eq!(parse_expires_in(None), Ok(None));
        assert_eq!(parse_expires_in(Some(&json!(3600))), Ok(Some(3600)));
        assert_eq!(parse_expires_in(Some(&json!("3599"))), Ok(Some(3599)));
        assert_eq!(parse_expires_in(Some(&json!(59.9))), Ok(Some(59)));
        assert_eq!(parse_expires_in(Some(&json!(-5))), Ok(Some(0)));
        assert!(parse_expires_in(Some(&json!("soon"))).is_err());
    }

    #[test]
    fn invalid_token_challenges() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="x""#));
        assert!(!invalid_token_challenge(&h));
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
            ),
        );
        assert!(invalid_token_challenge(&h));
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
        );
        assert!(!invalid_token_challenge(&h));
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(
            scrub("bad secret hunter2-very-secret\n", &["hunter2-very-secret"]),
            "bad secret <redacted>"
        );
        let builder = ClientCredentials::builder("svc", s).token_endpoint("https://idp.example.com/token");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let source = builder.build().unwrap();
        assert!(!format!("{source:?}").contains("hunter2"));
    }

    #[test]
    fn configuration_is_checked() {
        let b = || ClientCredentials::builder("svc", "secret");
        assert!(b().build().is_err(), "no endpoint");
        assert!(
            b().token_endpoint("http://idp.example.com/token")
                .build()
                .is_err()
        );
        assert!(
            b().token_endpoint("https://u:p@idp.example.com/token")
                .build()
                .is_err()
        );
        assert!(b().token_endpoint("http://127.0.0.1:1/token").build().is_ok());
        let ok = || b().token_endpoint("https://idp.example.com/token");
        assert!(ok().scope("a \"b\"").build().is_err());
        assert!(ok().resource("not a uri").build().is_err());
        assert!(ok().resource("https://api.example.com/#frag").build().is_err());
        assert!(ok().resource("urn:example:api").scope("a b").build().is_ok());
        assert!(
            ClientCredentials::builder("svc", "")
                .token_endpoint("https://x.example/t")
                .build()
                .is_err()
        );
    }

    #[test]
    fn metadata_locations() {
        let urls = metadata_urls(&Url::parse("https://idp.example.com/realms/main").unwrap());
        assert_eq!(
            urls[0].as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/main"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://idp.example.com/realms/main/.well-known/openid-configuration"
        );
        let urls = metadata_urls(&Url::parse("https://idp.example.com").unwrap());
        assert_eq!(
            urls[0].as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }
}
