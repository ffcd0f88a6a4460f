//! The one authentication pipeline: a bearer credential (JWT or API key) in, a
//! [`Principal`] or an [`AuthError`] out.
//!
//! ```text
//! credential ─▶ prefix_…? ──yes──▶ API key: checksum → store → hash (constant time) → expiry
//!     │ no
//!     ▼
//!  cache hit (same token, before exp, issuer's keys unchanged)? ──▶ Principal
//!     ▼
//!  decode: size → 3 strict base64url segments → header (crit refused, alg in some allowlist;
//!          a header segment a verified token had is remembered, not decoded again)
//!     ▼
//!  capture the claims anyone reads, in one pass (duplicates of those refused)
//!     ▼
//!  select the issuer by `iss` (nothing else unverified is trusted)
//!     ▼
//!  that issuer: alg allowlist, typ → its keys (refresh once if none / unknown kid)
//!     → signature → exp/nbf/iat/iss/audience → token kind → required claims
//!     ▼
//!  claim mapping (roles, scopes, permissions, tenant) → policy → separation of duties
//!     ▼
//!  Principal (cached until exp)
//! ```
//!
//! Every production request runs [`Authenticator::authenticate`]; so do the tests and the
//! benchmarks.
//!
//! ```
//! use std::sync::Arc;
//! use authz_core::auth::{Authenticator, Issuer, StaticKeys};
//! use authz_core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
//! use authz_core::{PermissionCatalog, Policy, RoleSpec};
//!
//! let catalog = Arc::new(PermissionCatalog::new(["data:read"])?);
//! let policy = Arc::new(Policy::builder(catalog).role(RoleSpec::new("viewer").grant("data:read")).build()?);
//! let verifier = JwtVerifier::builder("https://auth.example.com", "api.example.com", [Algorithm::HS256]).build()?;
//! let keys = StaticKeys::new(KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[42; 32])?.with_kid("k1")])?);
//! let auth = Authenticator::builder(policy).issuer(Issuer::new(verifier, keys)).build()?;
//! # let rt = std::task::Context::from_waker(std::task::Waker::noop());
//! # let fut = std::pin::pin!(auth.authenticate("not-a-token"));
//! # let mut cx = rt;
//! # assert!(matches!(fut.poll(&mut cx), std::task::Poll::Ready(Err(_))));
//! # use std::future::Future;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod api_keys;
mod cache;
mod issuer;
pub mod key_cache;
mod keys;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

pub use api_keys::{ApiKeys, Issued};
pub use cache::{CacheStats, DEFAULT_CACHE_ENTRIES};
pub use issuer::Issuer;
pub use key_cache::{
    DEFAULT_KEY_CACHE_ENTRIES, DEFAULT_KEY_CACHE_TTL, KeyCache, KeyCacheConfig, KeyCacheStats,
};
pub use keys::{KeyProvider, RefreshFuture, RefreshOutcome, RefreshReason, StaticKeys};

use crate::apikey::ApiKeyError;
use crate::clock::{self, Clock, unix_seconds};
use crate::jwt::capture::{Captured, REGISTERED};
use crate::jwt::header_memo::HeaderMemo;
use crate::jwt::verifier::{Decoded, decode_remembered};
use crate::jwt::{AlgorithmSet, ConfigError, JwtError, JwtErrorKind as E};
use crate::policy::Policy;
use crate::principal::{AuthMethod, Principal, PrincipalParts, TokenFacts};
use crate::revocation::RevocationList;
use cache::{Entry, TokenCache};

/// Why a credential did not authenticate. Callers only ever see a status: 401 for the
/// `Invalid…` kinds, 503 for [`AuthError::Unavailable`]. Never carries credential material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The bearer JWT was refused (401).
    #[error("bearer token refused: {0}")]
    InvalidToken(E),
    /// The API key was refused (401).
    #[error("API key refused: {0}")]
    InvalidApiKey(ApiKeyError),
    /// No key or key store could answer: the key source is down (503).
    #[error("the credential cannot be checked now: key source or key store unavailable")]
    Unavailable,
}

impl AuthError {
    /// Whether this is the 503 kind.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::Unavailable)
    }
}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        AuthError::InvalidToken(e.kind().clone())
    }
}

impl From<E> for AuthError {
    fn from(e: E) -> Self {
        AuthError::InvalidToken(e)
    }
}

/// What [`Authenticator::readiness`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// Per issuer, how many verification keys are loaded.
    pub issuers: Vec<IssuerReadiness>,
    /// Whether the API-key store answered (`None`: no API keys configured).
    pub api_key_store: Option<bool>,
}

/// One issuer's part of [`Readiness`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerReadiness {
    /// The issuer's `iss`.
    pub iss: String,
    /// Keys loaded (0: its tokens get 503 until a fetch succeeds).
    pub keys: usize,
}

impl Readiness {
    /// Every issuer has keys and the key store (if any) answers.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys > 0) && self.api_key_store != Some(false)
    }
}

/// The future of [`Authenticator::authenticate`] and [`Authenticator::uncached`]: complete at
/// once for a cache hit, otherwise the verification (boxed: one allocation on the slow path
/// only).
#[must_use = "a future does nothing unless awaited"]
pub struct Authentication<'a>(Step<'a>);

type Pending<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send + 'a>>;

enum Step<'a> {
    Ready(Option<Result<Principal, AuthError>>),
    Pending(Pending<'a>),
}

impl<'a> Authentication<'a> {
    fn pending(f: impl Future<Output = Result<Principal, AuthError>> + Send + 'a) -> Self {
        Self(Step::Pending(Box::pin(f)))
    }
}

impl std::fmt::Debug for Authentication<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Step::Ready(_) => "Authentication(ready)",
            Step::Pending(_) => "Authentication(pending)",
        })
    }
}

impl Future for Authentication<'_> {
    type Output = Result<Principal, AuthError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Step::Ready(out) => Poll::Ready(out.take().expect("Authentication polled after completion")),
            Step::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

/// Seconds of coarse-clock lag the verified-token cache's expiry check covers: in a token's
/// last this-many seconds it reads the exact clock (see `Authenticator::before`).
const COARSE_LAG_COVERED: u64 = 10;

/// Turns a bearer credential into a [`Principal`]: JWTs from one or more isolated
/// [`Issuer`]s, and API keys when [`ApiKeys`] are configured.
///
/// Verified tokens are cached (keyed by the whole token; never served at or past `exp`, nor
/// after the issuer's keys were removed or changed) so that a client reusing its token is not
/// re-verified on every request. The cache holds at most [`DEFAULT_CACHE_ENTRIES`] (or the
/// configured number of) entries and at most 1.25 KiB of token bytes per entry.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    /// Largest size limit and union of allowlists over the issuers (the pre-selection checks).
    max_token_bytes: usize,
    algorithms: AlgorithmSet,
    /// Every non-registered claim any issuer reads.
    reads: Vec<String>,
    policy: Arc<Policy>,
    cache: Option<TokenCache>,
    /// Headers of tokens that verified, by their segment (skips decoding them again).
    headers: HeaderMemo,
    clock: Arc<dyn Clock>,
    api_keys: Option<Arc<ApiKeys>>,
    revocations: Option<Arc<RevocationList>>,
    default_tenant: Option<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuers", &self.issuers)
            .field("api_keys", &self.api_keys.is_some())
            .field("cache", &self.cache.as_ref().map(TokenCache::stats))
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Configures an [`Authenticator`].
#[must_use]
pub struct AuthenticatorBuilder {
    policy: Arc<Policy>,
    issuers: Vec<Issuer>,
    api_keys: Option<Arc<ApiKeys>>,
    clock: Arc<dyn Clock>,
    cache_entries: usize,
    revocations: Option<Arc<RevocationList>>,
    default_tenant: Option<String>,
}

impl AuthenticatorBuilder {
    /// The tenant of every principal whose credential names none (a token without the
    /// mapping's tenant claim, an API key made without a tenant). Default: none, and such a
    /// principal sees only resources without a tenant (see `authz_core::resource`).
    ///
    /// # Errors (at [`build`](Self::build))
    /// An empty tenant.
    pub fn default_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.default_tenant = Some(tenant.into());
        self
    }

    /// Consults `list` for every token, after its signature and on every cache hit: a revoked
    /// token is a 401 (`invalid_token`) from the moment it is on the list.
    pub fn revocations(mut self, list: Arc<RevocationList>) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Trusts tokens from `issuer` (several issuers: call once per issuer).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Also accepts API keys. A bearer credential that starts with the key prefix and `_` is
    /// judged as an API key only; anything else as a JWT only. A malformed credential of
    /// either kind is refused, never retried as the other kind.
    pub fn api_keys(mut self, api_keys: Arc<ApiKeys>) -> Self {
        self.api_keys = Some(api_keys);
        self
    }

    /// The clock every expiry decision reads (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Caches up to `max_entries` verified tokens (default [`DEFAULT_CACHE_ENTRIES`]); 0
    /// turns the cache off.
    pub fn cache_entries(mut self, max_entries: usize) -> Self {
        self.cache_entries = max_entries;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// No issuer and no API keys; two issuers with the same `iss`.
    pub fn build(self) -> Result<Authenticator, ConfigError> {
        if self.issuers.is_empty() && self.api_keys.is_none() {
            return Err(ConfigError::NoIssuers);
        }
        if self
            .default_tenant
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::EmptyDefaultTenant);
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            if self.issuers[..i].iter().any(|o| o.iss() == issuer.iss()) {
                return Err(ConfigError::DuplicateIssuer(issuer.iss().to_string()));
            }
        }
        let mut reads: Vec<String> = Vec::new();
        let mut algorithms = AlgorithmSet::default();
        let mut max_token_bytes = 0;
        for issuer in &self.issuers {
            algorithms = algorithms.union(issuer.verifier.algorithms());
            max_token_bytes = max_token_bytes.max(issuer.verifier.max_token_bytes());
            for name in issuer
                .verifier
                .reads()
                .iter()
                .cloned()
                .chain(issuer.mapping.top_level_claims())
            {
                if !REGISTERED.contains(&name.as_str()) && !reads.contains(&name) {
                    reads.push(name);
                }
            }
        }
        Ok(Authenticator {
            issuers: self.issuers,
            max_token_bytes,
            algorithms,
            reads,
            policy: self.policy,
            cache: (self.cache_entries > 0).then(|| TokenCache::new(self.cache_entries)),
            headers: HeaderMemo::new(),
            clock: self.clock,
            api_keys: self.api_keys,
            revocations: self.revocations,
            default_tenant: self.default_tenant,
        })
    }
}

impl Authenticator {
    /// Starts an authenticator whose principals' roles resolve through `policy`.
    pub fn builder(policy: Arc<Policy>) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            policy,
            issuers: Vec::new(),
            api_keys: None,
            clock: clock::system(),
            cache_entries: DEFAULT_CACHE_ENTRIES,
            revocations: None,
            default_tenant: None,
        }
    }

    /// The revocation list consulted, if any.
    pub fn revocations(&self) -> Option<&Arc<RevocationList>> {
        self.revocations.as_ref()
    }

    fn is_revoked(&self, p: &Principal) -> bool {
        match &self.revocations {
            None => false,
            Some(list) => {
                let t = p.token();
                list.is_revoked(
                    p.issuer().unwrap_or_default(),
                    t.jti.as_deref(),
                    p.subject(),
                    t.issued_at,
                )
            }
        }
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// The policy principals are resolved with.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The API keys, if enabled.
    pub fn api_keys(&self) -> Option<&Arc<ApiKeys>> {
        self.api_keys.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Cache counters (all zero when the cache is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(TokenCache::stats).unwrap_or_default()
    }

    /// Whether this authenticator can serve: every issuer has keys loaded and the API-key store
    /// (if any) answers within its bound. For a readiness probe; names no secret.
    pub async fn readiness(&self) -> Readiness {
        let now = self.clock.now();
        let issuers = self
            .issuers
            .iter()
            .map(|i| IssuerReadiness {
                iss: i.iss().to_string(),
                keys: i.keys.keys(now).map_or(0, |k| k.len()),
            })
            .collect();
        let api_key_store = match &self.api_keys {
            None => None,
            Some(k) => Some(k.store().ping().await.is_ok()),
        };
        Readiness {
            issuers,
            api_key_store,
        }
    }

    /// Forgets every cached token.
    pub fn clear_cache(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }

    /// Authenticates one bearer credential (the token or key, without the scheme).
    ///
    /// A cache hit is answered before this returns (the future is already complete, nothing
    /// is allocated); everything else — verification, a key refresh, an API-key store lookup —
    /// runs when the future is awaited. The same as [`cached`](Self::cached), then
    /// [`uncached`](Self::uncached) when that has no answer.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] / [`AuthError::InvalidApiKey`] (401) with the reason;
    /// [`AuthError::Unavailable`] (503) when no key could be had or the key store is down.
    pub fn authenticate<'a>(&'a self, credential: &'a str) -> Authentication<'a> {
        match self.cached(credential) {
            Some(answer) => Authentication(Step::Ready(Some(answer))),
            None => self.uncached(credential),
        }
    }

    /// The answer of [`authenticate`](Self::authenticate) when it needs no verification and
    /// no store: a token in the verified-token cache (still before its `exp`, its issuer's keys
    /// unchanged; refused if revoked since), an API key in the verified-key cache, or an API key
    /// refused for its form alone. `None`: the credential must be verified — call
    /// [`uncached`](Self::uncached) for it (not `authenticate`, which would look it up again).
    ///
    /// A caller that cannot hold [`Authentication`]'s borrows across an `await` (the auth
    /// layer's fast path) answers most requests with this alone, without a future. A token-cache
    /// hit is counted in [`cache_stats`](Self::cache_stats); a `None` counts nothing (`uncached`
    /// counts the miss).
    pub fn cached(&self, credential: &str) -> Option<Result<Principal, AuthError>> {
        if let Some(keys) = &self.api_keys
            && keys.format().claims(credential)
        {
            // A key in the verified-key cache is answered at once, like a cached token.
            return keys
                .answer_now(credential, self.clock.unix_seconds())
                .map(|answer| answer.map(|p| self.in_default_tenant(p)));
        }
        self.cached_token(credential.as_bytes())
    }

    /// The verified-token cache's answer for the token whose bytes are `presented`, as
    /// [`cached`](Self::cached) gives it for a token; `None` for anything else, API keys
    /// included (ask [`cached`](Self::cached) for those).
    ///
    /// For a caller holding the credential as raw header bytes: a hit is byte-identical to a
    /// token that verified — a JWS in compact form, base64url segments and dots (RFC 7515
    /// §7.1) — so it needs no syntax check first; a `None` leaves every check to the caller.
    /// A hit is counted in [`cache_stats`](Self::cache_stats); a `None` counts nothing.
    #[inline]
    pub fn cached_token(&self, presented: &[u8]) -> Option<Result<Principal, AuthError>> {
        let cache = self.cache.as_ref()?;
        let entry = cache.get(presented)?;
        if !self.before(entry.exp)
            || self.issuers[entry.issuer as usize].keys.generation() != entry.generation
        {
            return None;
        }
        cache.hit();
        if self.is_revoked(&entry.principal) {
            return Some(Err(E::Revoked.into()));
        }
        Some(Ok(entry.principal))
    }

    /// Whether it is still before `exp` (seconds since the epoch), exactly as the clock's
    /// `now` would say. The coarse clock answers for all but a token's last
    /// [`COARSE_LAG_COVERED`] seconds: it never leads `now`, and lags it by one timer tick
    /// (milliseconds; longer only if the machine stalled before the tick, as a paused virtual
    /// CPU can). While that lag stays under the margin, a coarse reading more than the margin
    /// before `exp` means `now` is before `exp` too; closer than that, `now` decides.
    #[inline]
    fn before(&self, exp: u64) -> bool {
        unix_seconds(self.clock.now_coarse()).saturating_add(COARSE_LAG_COVERED) < exp
            || self.clock.unix_seconds() < exp
    }

    /// Verifies `credential` without asking the caches first: the second half of
    /// [`authenticate`](Self::authenticate), for a credential [`cached`](Self::cached) had no
    /// answer for (a token counts as a token-cache miss). A token that verifies is inserted into
    /// the cache; an API key is read from its store.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    pub fn uncached<'a>(&'a self, credential: &'a str) -> Authentication<'a> {
        let now = self.clock.now();
        if let Some(keys) = &self.api_keys
            && keys.format().claims(credential)
        {
            let at = unix_seconds(now);
            return Authentication::pending(async move {
                keys.store_answer_at(credential, at)
                    .await
                    .map(|p| self.in_default_tenant(p))
            });
        }
        if let Some(cache) = &self.cache {
            cache.miss();
        }
        Authentication::pending(self.verify(credential, now))
    }

    /// An API key's principal, in the default tenant when it names none.
    fn in_default_tenant(&self, principal: Principal) -> Principal {
        match self.default_tenant.as_deref() {
            Some(t) if principal.tenant().is_none() => principal.in_tenant(t),
            _ => principal,
        }
    }

    async fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        let now_s = unix_seconds(now);
        let decoded = decode_remembered(token, self.max_token_bytes, self.algorithms, Some(&self.headers))?;
        let text = decoded.payload_text()?;
        let mut captured = Captured::default();
        captured.fill(text, &self.reads).map_err(|_| E::InvalidPayload)?;
        let index = self.select(&captured)?;
        let issuer = &self.issuers[index];
        // Only a token that passed every header check may cause a key fetch.
        issuer.verifier.check_header(&decoded)?;
        let (registered, generation) = self.verify_with_keys(issuer, &decoded, &captured, now).await?;
        let mut mapped = issuer.mapping.map(&captured, &decoded.payload)?;
        let tenant = mapped.tenant.take().or_else(|| self.default_tenant.clone());
        issuer.mapping.scope_roles(&mut mapped.roles, tenant.as_deref());
        let valid_until = issuer.verifier.valid_until(&registered);
        let subject = registered.sub.ok_or(E::MissingClaim("sub"))?;
        if subject.trim().is_empty() {
            // RFC 9068 §2.2: `sub` identifies the principal; an empty one identifies nobody.
            return Err(E::InvalidClaim("sub").into());
        }
        let catalog = self.policy.catalog();
        let extra_permissions = mapped.permissions.iter().filter_map(|p| catalog.id(p)).collect();
        let exp = registered.exp;
        let facts = token_facts(&captured, registered.iat)?;
        let principal = Principal::new(
            PrincipalParts {
                subject,
                issuer: Some(registered.iss),
                tenant,
                roles: mapped.roles,
                scopes: mapped.scopes,
                extra_permissions,
                expires_at: Some(exp),
                auth_method: AuthMethod::Jwt,
                claims: mapped.custom,
                token: facts,
            },
            &self.policy,
        );
        if self.is_revoked(&principal) {
            return Err(E::Revoked.into());
        }
        decoded.remember_header(&self.headers);
        if let Some(c) = &self.cache
            && now_s < valid_until
        {
            c.insert(
                token,
                Entry {
                    principal: principal.clone(),
                    // `exp`, or sooner when the issuer bounds a token's age (`max_age`).
                    exp: valid_until,
                    issuer: index as u32,
                    generation,
                },
            );
        }
        Ok(principal)
    }

    /// The issuer whose `iss` the (still unverified) token names.
    fn select(&self, captured: &Captured<'_>) -> Result<usize, AuthError> {
        if self.issuers.len() == 1 {
            // The verifier compares `iss` with its issuer after the signature.
            return Ok(0);
        }
        let raw = captured.get("iss").ok_or(E::MissingClaim("iss"))?;
        let iss: std::borrow::Cow<'_, str> =
            serde_json::from_str(raw.get()).map_err(|_| E::InvalidClaim("iss"))?;
        self.issuers
            .iter()
            .position(|i| i.iss() == iss)
            .ok_or_else(|| E::InvalidIssuer.into())
    }

    /// Key lookup (with at most one refresh), signature and claims. The header was checked by
    /// the caller, before anything could cause a key fetch.
    async fn verify_with_keys(
        &self,
        issuer: &Issuer,
        decoded: &Decoded<'_>,
        captured: &Captured<'_>,
        now: SystemTime,
    ) -> Result<(crate::jwt::RegisteredClaims, u64), AuthError> {
        let now_s = unix_seconds(now);
        let mut refreshed = false;
        loop {
            // Read before the keys: a concurrent swap then makes the entry stale, never wrongly
            // fresh.
            let generation = issuer.keys.generation();
            let Some(keys) = issuer.keys.keys(now) else {
                if refreshed {
                    return Err(AuthError::Unavailable);
                }
                refreshed = true;
                match issuer.keys.refresh(RefreshReason::NoKeys, now).await {
                    RefreshOutcome::Updated => continue,
                    _ => return Err(AuthError::Unavailable),
                }
            };
            match issuer.verifier.verify_keyed(decoded, captured, &keys, now_s) {
                Ok(claims) => return Ok((claims, generation)),
                Err(e) if *e.kind() == E::UnknownKeyId && !refreshed => {
                    refreshed = true;
                    let kid = decoded.header.kid.as_deref().unwrap_or_default();
                    match issuer.keys.refresh(RefreshReason::UnknownKeyId(kid), now).await {
                        RefreshOutcome::Updated => continue,
                        RefreshOutcome::Failed => return Err(AuthError::Unavailable),
                        _ => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `jti`, `iat` and the DPoP binding of a verified token. A `cnf` this crate cannot check (a
/// certificate binding, RFC 8705 `x5t#S256`, or anything but `jkt`) refuses the token: a
/// sender-constrained token must never be accepted without its constraint.
fn token_facts(captured: &Captured<'_>, issued_at: Option<u64>) -> Result<TokenFacts, AuthError> {
    let jti = match captured.get("jti") {
        None => None,
        Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| E::InvalidClaim("jti"))?),
    };
    let jkt = match captured.get("cnf") {
        None => None,
        Some(raw) => {
            let cnf: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw.get()).map_err(|_| E::InvalidClaim("cnf"))?;
            match (cnf.len(), cnf.get("jkt").and_then(|v| v.as_str())) {
                (1, Some(jkt)) if jkt.len() == 43 => Some(jkt.to_string()),
                _ => return Err(E::InvalidClaim("cnf").into()),
            }
        }
    };
    Ok(TokenFacts { jti, issued_at, jkt })
}
