//! [`AuthLayer`]: authenticates each request once, before any handler or extractor, and leaves
//! the outcome in the request's extensions for the extractors.
//!
//! The layer never rejects by itself (public routes stay public); the extractors that need a
//! principal — [`Principal`](crate::Principal), the guards the macros add — turn a missing or
//! invalid credential into 401, a key-source outage into 503. A bad credential is never treated
//! as "anonymous".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use std::net::SocketAddr;

use authz_core::auth::{AuthError, Authenticator};
use authz_core::dpop::{DpopError, DpopVerifier, ProofContext};
use axum::extract::ConnectInfo;
use tracing::Instrument as _;

use crate::throttle::FailedAttempts;

use crate::rejection::{AuthRejection, RejectionConfig};

/// The outcome of authentication for one request: the one value the layer stores.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// No `Authorization` header.
    Anonymous,
    Authenticated(authz_core::Principal),
    /// The `Authorization` header is not a usable bearer credential.
    Header(BearerError),
    /// The credential was checked and refused (401), or could not be checked (503).
    Refused(AuthError),
    /// Refused, and the failure budget of the client address or credential is spent (429).
    Throttled(u64),
    /// The token verified, but its proof of possession did not (RFC 9449).
    Dpop(DpopFailure),
}

impl Outcome {
    /// `(outcome, reason)` codes for spans and metrics (fixed sets, no credential material).
    pub(crate) fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Outcome::Anonymous => ("anonymous", ""),
            Outcome::Authenticated(_) => ("authenticated", ""),
            Outcome::Header(BearerError::Repeated) => ("malformed", "repeated_header"),
            Outcome::Header(BearerError::UnsupportedScheme) => ("malformed", "unsupported_scheme"),
            Outcome::Header(_) => ("malformed", "malformed_header"),
            Outcome::Refused(e @ AuthError::Unavailable) => ("unavailable", crate::observe::reason(e)),
            Outcome::Refused(e) => ("refused", crate::observe::reason(e)),
            Outcome::Throttled(_) => ("throttled", "too_many_failures"),
            Outcome::Dpop(DpopFailure::InvalidProof(_)) => ("dpop_refused", "invalid_dpop_proof"),
            Outcome::Dpop(DpopFailure::UseNonce(_)) => ("dpop_refused", "use_dpop_nonce"),
            Outcome::Dpop(DpopFailure::BoundAsBearer) => ("dpop_refused", "bound_token_as_bearer"),
            Outcome::Dpop(DpopFailure::NotBound) => ("dpop_refused", "token_not_bound"),
        }
    }
}

/// Why a DPoP check failed.
#[derive(Clone, Debug)]
pub(crate) enum DpopFailure {
    /// `invalid_dpop_proof`, with the check that failed.
    InvalidProof(&'static str),
    /// `use_dpop_nonce`, with the nonce to retry with.
    UseNonce(String),
    /// A DPoP-bound token sent with the `Bearer` scheme (or a bound token where DPoP is not
    /// configured): `invalid_token`.
    BoundAsBearer,
    /// The `DPoP` scheme with a token that is not bound: `invalid_token`.
    NotBound,
}

/// What every request of one layer shares: how rejections are shaped, and the policy engine.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) config: Arc<RejectionConfig>,
    /// The policy engine, when one is installed.
    pub(crate) policy: Option<Arc<crate::engine::PolicyHandle>>,
}

/// What the layer leaves in the request extensions: the outcome and one reference count on the
/// layer's settings.
#[derive(Clone, Debug)]
pub(crate) struct AuthState {
    pub(crate) outcome: Outcome,
    pub(crate) settings: Arc<Settings>,
    /// Whether guards record their decision on the current span (as they always did): `false`
    /// only when nobody can see the request's `authz` span, so that a guard does not look the
    /// current span up for nothing.
    pub(crate) traced: bool,
}

impl AuthState {
    /// How rejections are shaped.
    pub(crate) fn config(&self) -> &Arc<RejectionConfig> {
        &self.settings.config
    }

    /// The policy engine, when one is installed.
    pub(crate) fn policy(&self) -> Option<&Arc<crate::engine::PolicyHandle>> {
        self.settings.policy.as_ref()
    }

    /// The principal, or the rejection an extractor that needs one must return.
    pub(crate) fn principal(&self) -> Result<&authz_core::Principal, AuthRejection> {
        let c = || self.config().clone();
        match &self.outcome {
            Outcome::Authenticated(p) => Ok(p),
            Outcome::Anonymous => Err(AuthRejection::MissingCredentials(c())),
            Outcome::Header(BearerError::UnsupportedScheme) => Err(AuthRejection::UnsupportedScheme(c())),
            Outcome::Header(e) => Err(AuthRejection::InvalidRequest(c(), e.detail())),
            Outcome::Refused(AuthError::Unavailable) => Err(AuthRejection::KeySourceUnavailable(c())),
            Outcome::Throttled(secs) => Err(AuthRejection::TooManyAttempts(c(), *secs)),
            Outcome::Refused(_) => Err(AuthRejection::InvalidToken(c())),
            Outcome::Dpop(DpopFailure::InvalidProof(why)) => Err(AuthRejection::InvalidDpopProof(c(), why)),
            Outcome::Dpop(DpopFailure::UseNonce(nonce)) => {
                Err(AuthRejection::UseDpopNonce(c(), nonce.clone()))
            }
            Outcome::Dpop(DpopFailure::BoundAsBearer | DpopFailure::NotBound) => {
                Err(AuthRejection::InvalidToken(c()))
            }
        }
    }
}

/// Why the `Authorization` header is not a usable bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// Several `Authorization` headers (RFC 6750 §3.1 `invalid_request`: 400).
    Repeated,
    /// `Bearer` without a token, or a token that is not an RFC 6750 `b64token` (400).
    Malformed,
    /// Another scheme (`Basic …`): RFC 6750 §3 says to answer 401 without an error code.
    UnsupportedScheme,
}

impl BearerError {
    /// A sentence for the caller (never contains the header's value).
    pub fn detail(self) -> &'static str {
        match self {
            BearerError::Repeated => "send exactly one Authorization header",
            BearerError::Malformed => {
                "the Authorization header must be `Bearer <token>` with a well-formed token"
            }
            BearerError::UnsupportedScheme => "this resource accepts only the Bearer authorization scheme",
        }
    }
}

/// The authorization scheme of an access token (RFC 6750 `Bearer`, RFC 9449 `DPoP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: DPoP <token>`, with a `DPoP` proof header.
    DPoP,
}

/// Reads the access token and its scheme (`Bearer` or `DPoP`) from the request's one
/// `Authorization` header; the same rules as [`bearer_token`] otherwise.
///
/// # Errors
/// [`BearerError`]: repeated header, malformed value, another scheme.
pub fn access_token(headers: &HeaderMap) -> Result<Option<(TokenScheme, &str)>, BearerError> {
    match presented(headers, true)? {
        Some((scheme, rest)) => b64token(rest).map(|t| Some((scheme, t))),
        None => Ok(None),
    }
}

/// The one `Authorization` header's scheme (`DPoP` only when `dpop`) and what follows it,
/// leading spaces skipped, not yet checked as a `b64token`.
fn presented(headers: &HeaderMap, dpop: bool) -> Result<Option<(TokenScheme, &[u8])>, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(space) => (&bytes[..space], &bytes[space + 1..]),
        None => (bytes, &[][..]),
    };
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        TokenScheme::Bearer
    } else if dpop && scheme.eq_ignore_ascii_case(b"dpop") {
        TokenScheme::DPoP
    } else {
        return Err(BearerError::UnsupportedScheme);
    };
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    Ok(Some((scheme, &rest[start..])))
}

/// The token after the scheme: an RFC 6750 `b64token` (the same grammar RFC 9449 §7.1 uses).
fn b64token(token: &[u8]) -> Result<&str, BearerError> {
    let is_b64token = !token.is_empty() && {
        let end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        end > 0 && all_b64token_chars(&token[..end])
    };
    if !is_b64token {
        return Err(BearerError::Malformed);
    }
    // Only ASCII passed the check above.
    std::str::from_utf8(token).map_err(|_| BearerError::Malformed)
}

/// Every byte is in RFC 6750's `b64token` alphabet without the trailing `=`: `A-Z a-z 0-9 - . _
/// ~ + /`. Branch-free over 32-byte blocks (the compiler vectorises them): a token is read on
/// every request, and a byte-by-byte `all` cost ~0.1 µs for an ordinary JWT.
fn all_b64token_chars(bytes: &[u8]) -> bool {
    #[inline(always)]
    fn allowed(b: u8) -> bool {
        // `| 0x20` folds ASCII upper case onto lower case and maps no other byte into `a-z`.
        ((b | 0x20).wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            // `-` `.` `/` are 0x2D..=0x2F.
            | (b.wrapping_sub(b'-') < 3)
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
    }
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        if !block.iter().fold(true, |ok, &b| ok & allowed(b)) {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| allowed(b))
}

/// Reads the bearer token from the request's one `Authorization` header.
///
/// Returns `Ok(None)` when there is no `Authorization` header. The scheme is matched
/// case-insensitively; the token must be an RFC 6750 `b64token`. Tokens in the query string or
/// a body are never looked at.
///
/// # Errors
/// [`BearerError`]: repeated header, malformed value, another scheme.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    match presented(headers, false)? {
        Some((_, rest)) => b64token(rest).map(Some),
        None => Ok(None),
    }
}

/// Authenticates every request once and stores the outcome for the extractors.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

/// What the layer's services share (one reference count per service, none per request).
#[derive(Clone, Debug)]
struct Shared {
    authenticator: Arc<Authenticator>,
    throttle: Option<Arc<FailedAttempts>>,
    dpop: Option<Arc<DpopSettings>>,
    settings: Arc<Settings>,
}

/// How the layer checks DPoP proofs (RFC 9449).
#[derive(Debug)]
pub struct DpopSettings {
    verifier: DpopVerifier,
    origins: Vec<String>,
}

impl DpopSettings {
    /// Proofs checked by `verifier`. The request URI a proof's `htu` must name is
    /// `origin` + the request path when [`with_origin`](Self::with_origin) is set (do set it
    /// behind a TLS-terminating proxy: `https://api.example.com`), else `http://` + the `Host`
    /// header + the path.
    pub fn new(verifier: DpopVerifier) -> Self {
        Self {
            verifier,
            origins: Vec::new(),
        }
    }

    /// A public origin of this service (`https://api.example.com`), without a path; call once
    /// per name the service is reached by. Set it: without one, `htu` is checked against the
    /// request's own `Host` header, which the client chooses.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into().trim_end_matches('/').to_string());
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &DpopVerifier {
        &self.verifier
    }

    /// The absolute URIs of `req` a proof may name (one per configured origin, or the `Host`).
    fn target_uris(&self, req: &Request) -> Vec<String> {
        let path = req.uri().path();
        if self.origins.is_empty() {
            return req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|host| vec![format!("http://{host}{path}")])
                .unwrap_or_default();
        }
        self.origins.iter().map(|o| format!("{o}{path}")).collect()
    }
}

impl AuthLayer {
    /// A layer using `authenticator`, with the default rejection configuration (realm `api`).
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            shared: Arc::new(Shared {
                authenticator,
                throttle: None,
                dpop: None,
                settings: Arc::default(),
            }),
        }
    }

    /// The settings, to change while the layer is built.
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Installs the policy engine that guards naming a policy
    /// (`#[require_permission(.., policy = "name")]`) ask, after their permission check passed
    /// (see [`crate::engine`]). The input's `request.time` is read from the authenticator's
    /// clock. Without an engine, such guards deny (403) and log why. Check the routes' policy
    /// names against it at start-up with
    /// [`RouteTable::check_policies`](crate::RouteTable::check_policies).
    pub fn policy_engine(mut self, engine: Arc<dyn authz_core::engine::PolicyEngine>) -> Self {
        let shared = self.shared_mut();
        shared.settings = Arc::new(Settings {
            config: shared.settings.config.clone(),
            policy: Some(Arc::new(crate::engine::PolicyHandle {
                engine,
                clock: shared.authenticator.clock().clone(),
            })),
        });
        self
    }

    /// Accepts DPoP-bound tokens (`Authorization: DPoP <token>` with a `DPoP` proof header,
    /// RFC 9449 §7) checked by `settings`. Without this, the `DPoP` scheme is refused like any
    /// other scheme. Either way a DPoP-bound token (`cnf.jkt`) sent as `Bearer` is refused.
    pub fn dpop(mut self, settings: DpopSettings) -> Self {
        let algs: Vec<&str> = settings
            .verifier
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect();
        let shared = self.shared_mut();
        let mut config = (*shared.settings.config).clone();
        config.dpop_algs = Some(algs.join(" "));
        shared.settings = Arc::new(Settings {
            config: Arc::new(config),
            policy: shared.settings.policy.clone(),
        });
        shared.dpop = Some(Arc::new(settings));
        self
    }

    /// Throttles failed credential checks (see [`crate::throttle`]): over budget, a failed
    /// check answers 429 with `Retry-After` instead of 401; valid credentials are never
    /// throttled. The client address comes from `ConnectInfo<SocketAddr>` (set by
    /// [`crate::serve::serve`]); without it only the per-credential budget applies.
    pub fn throttle_failures(mut self, throttle: Arc<FailedAttempts>) -> Self {
        self.shared_mut().throttle = Some(throttle);
        self
    }

    /// Uses `config` for realm and body shaping.
    pub fn with_rejections(mut self, mut config: RejectionConfig) -> Self {
        let shared = self.shared_mut();
        config.dpop_algs = shared.settings.config.dpop_algs.clone();
        shared.settings = Arc::new(Settings {
            config: Arc::new(config),
            policy: shared.settings.policy.clone(),
        });
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.shared.authenticator
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AuthService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // Tracing's `log` fallback prints span activity at the span's level, debug, when no
        // subscriber is installed; below that level nothing but a subscriber can see the span.
        let logged = log::max_level() >= log::LevelFilter::Debug;
        // Below debug (the usual production setting) the span would be disabled at once — the
        // first thing `debug_span!` checks is this — so it is not even made.
        let debug = tracing::Level::DEBUG <= tracing::level_filters::STATIC_MAX_LEVEL
            && tracing::Level::DEBUG <= tracing::level_filters::LevelFilter::current();
        if logged || debug {
            let span = tracing::debug_span!(
                "authz",
                method = %req.method(),
                path = %req.uri().path(),
                outcome = tracing::field::Empty,
                reason = tracing::field::Empty,
                sub = tracing::field::Empty,
                decision = tracing::field::Empty,
            );
            if logged || !span.is_disabled() {
                // Someone may see the span: authenticate inside it at the first poll, as this
                // layer always has, so that what is logged stays exactly the same.
                let inner = self.take_ready();
                let future = authenticate_then_call(self.shared.clone(), inner, req, Pending::Ask, true);
                return AuthFuture::boxed(future.instrument(span));
            }
        }
        // Nobody sees the span: no need to make it, enter it or poll inside it.
        let started = crate::observe::start();
        let Some(outcome) = answer_now(&self.shared, &mut req) else {
            // The credential must be verified (a cache miss, an API key from the store): the
            // one path that boxes its future.
            let inner = self.take_ready();
            let future =
                authenticate_then_call(self.shared.clone(), inner, req, Pending::Verify(started), false);
            return AuthFuture::boxed(future);
        };
        let (label, reason) = outcome.labels();
        crate::observe::authentication(label, reason, started);
        req.extensions_mut().insert(AuthState {
            outcome,
            settings: self.shared.settings.clone(),
            traced: false,
        });
        // Answered without waiting (no credential, a malformed header, a cache hit, a
        // refusal): the service that was driven to readiness is called now; nothing is boxed or
        // cloned.
        AuthFuture::ready(Handled {
            inner: self.inner.call(req),
        })
    }
}

impl<S: Clone> AuthService<S> {
    /// The inner service that was driven to readiness, for a future that calls it later (a
    /// clone takes its place).
    fn take_ready(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// Puts the outcome (and its `labels()`) on a span.
fn record_on(span: &tracing::Span, outcome: &Outcome, label: &'static str, reason: &'static str) {
    span.record("outcome", label);
    if !reason.is_empty() {
        span.record("reason", reason);
    }
    if let Outcome::Authenticated(p) = outcome {
        span.record("sub", p.subject());
    }
}

/// What [`authenticate_then_call`] still has to do.
enum Pending {
    /// Everything: the caches were not asked yet.
    Ask,
    /// Verify the credential (the caches had no answer), timed from then.
    Verify(Option<std::time::Instant>),
}

/// Authenticates the request (or finishes doing so), records the outcome in the metrics and —
/// if `traced` — on the current span (as guards then record their decision), then calls
/// `inner`; runs inside the request's span.
async fn authenticate_then_call<S>(
    shared: Arc<Shared>,
    mut inner: S,
    mut req: Request,
    pending: Pending,
    traced: bool,
) -> Result<S::Response, S::Error>
where
    S: Service<Request>,
{
    let (cached, started) = match pending {
        Pending::Ask => {
            let started = crate::observe::start();
            (answer_now(&shared, &mut req), started)
        }
        Pending::Verify(started) => (None, started),
    };
    let outcome = match cached {
        Some(outcome) => outcome,
        None => verify(&shared, &mut req).await,
    };
    let (label, reason) = outcome.labels();
    if traced {
        record_on(&tracing::Span::current(), &outcome, label, reason);
    }
    crate::observe::authentication(label, reason, started);
    req.extensions_mut().insert(AuthState {
        outcome,
        settings: shared.settings.clone(),
        traced,
    });
    let response = inner.call(req).await;
    // One line per request at debug, carrying the span's final fields (outcome, reason,
    // subject, the guard's decision).
    tracing::debug!("authz: request handled");
    response
}

pin_project! {
    /// The future of [`AuthService`]: the inner service's future, called at once when the
    /// credential could be answered without waiting (none, a malformed header, a cache hit, a
    /// refusal) and nobody sees the request's span, or a boxed future that authenticates first.
    pub struct AuthFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Ready { #[pin] future: Handled<F> },
        Boxed { future: Pin<Box<dyn Future<Output = F::Output> + Send>> },
    }
}

impl<F: Future> AuthFuture<F> {
    fn ready(future: Handled<F>) -> Self {
        Self {
            kind: Kind::Ready { future },
        }
    }

    fn boxed(future: impl Future<Output = F::Output> + Send + 'static) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F: Future> Future for AuthFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { future } => future.poll(cx),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: Future> std::fmt::Debug for AuthFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Ready { .. } => "AuthFuture(ready)",
            Kind::Boxed { .. } => "AuthFuture(boxed)",
        })
    }
}

pin_project! {
    /// The inner service's future, which logs the request's last line when it completes.
    struct Handled<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Handled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let output = ready!(self.project().inner.poll(cx));
        // One line per request at debug, carrying the span's final fields (outcome, reason,
        // subject, the guard's decision).
        tracing::debug!("authz: request handled");
        Poll::Ready(output)
    }
}

/// The proof-of-possession half (RFC 9449 §7): a bound token needs the `DPoP` scheme and a
/// proof by its key; the `DPoP` scheme needs a bound token.
fn check_possession(
    principal: authz_core::Principal,
    scheme: TokenScheme,
    token: &str,
    dpop: Option<&DpopSettings>,
    authenticator: &Authenticator,
    req: &Request,
) -> Outcome {
    let bound = principal.token().jkt.clone();
    let (settings, jkt) = match (scheme, bound, dpop) {
        (TokenScheme::Bearer, None, _) => return Outcome::Authenticated(principal),
        (TokenScheme::Bearer, Some(_), _) | (TokenScheme::DPoP, Some(_), None) => {
            tracing::debug!("DPoP-bound token presented without its proof");
            return Outcome::Dpop(DpopFailure::BoundAsBearer);
        }
        (TokenScheme::DPoP, None, _) => {
            tracing::debug!("DPoP scheme with a token that is not DPoP-bound");
            return Outcome::Dpop(DpopFailure::NotBound);
        }
        (TokenScheme::DPoP, Some(jkt), Some(settings)) => (settings, jkt),
    };
    let mut proofs = req.headers().get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p.to_str().ok(),
        _ => None,
    };
    let Some(proof) = proof else {
        return Outcome::Dpop(DpopFailure::InvalidProof("send exactly one DPoP header"));
    };
    let uris = settings.target_uris(req);
    if uris.is_empty() {
        return Outcome::Dpop(DpopFailure::InvalidProof(
            "the request has no Host to match htu against",
        ));
    }
    // The proof names one of the service's origins: try each (only a full pass is recorded).
    let now = authenticator.clock().unix_seconds();
    let mut result = Err(DpopError::Invalid("htu does not match the request URI"));
    for uri in &uris {
        let context = ProofContext {
            method: req.method().as_str(),
            uri,
            access_token: Some(token),
        };
        result = settings.verifier.verify(proof, &context, now);
        if !matches!(
            result,
            Err(DpopError::Invalid("htu does not match the request URI"))
        ) {
            break;
        }
    }
    match result {
        Ok(p) if subtle_eq(p.jkt.as_bytes(), jkt.as_bytes()) => Outcome::Authenticated(principal),
        Ok(_) => Outcome::Dpop(DpopFailure::InvalidProof(
            "the proof's key is not the key the token is bound to",
        )),
        Err(DpopError::Invalid(why)) => {
            tracing::debug!(reason = why, "DPoP proof refused");
            Outcome::Dpop(DpopFailure::InvalidProof(why))
        }
        Err(DpopError::UseNonce(n)) => Outcome::Dpop(DpopFailure::UseNonce(n)),
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `DPoP` header's name.
static DPOP: HeaderName = HeaderName::from_static("dpop");

/// Marks the credentials sensitive so that no logging layer prints them: every value of a
/// repeated header (refused as malformed, but a route without a guard still runs), not only the
/// first. One pass over the request's few headers costs less than looking both names up.
fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == header::AUTHORIZATION || name == DPOP {
            value.set_sensitive(true);
        }
    }
}

/// The request's credential and its scheme; `Err` is the outcome when there is nothing to
/// verify.
fn credential<'h>(
    dpop: Option<&DpopSettings>,
    headers: &'h HeaderMap,
) -> Result<(TokenScheme, &'h str), Outcome> {
    let (scheme, rest) = presented_or_outcome(dpop, headers)?;
    match b64token(rest) {
        Ok(token) => Ok((scheme, token)),
        Err(e) => Err(header_refused(e)),
    }
}

/// [`presented`], its refusals and the absence of a credential as outcomes.
fn presented_or_outcome<'h>(
    dpop: Option<&DpopSettings>,
    headers: &'h HeaderMap,
) -> Result<(TokenScheme, &'h [u8]), Outcome> {
    match presented(headers, dpop.is_some()) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(Outcome::Anonymous),
        Err(e) => Err(header_refused(e)),
    }
}

fn header_refused(e: BearerError) -> Outcome {
    tracing::debug!(reason = e.detail(), "authorization header refused");
    Outcome::Header(e)
}

/// The outcome when it needs no waiting: no credential or a malformed one, a credential the
/// authenticator's caches answer (accepted or refused). `None`: it must be verified.
fn answer_now(shared: &Shared, req: &mut Request) -> Option<Outcome> {
    mark_sensitive(req.headers_mut());
    let req = &*req;
    let dpop = shared.dpop.as_deref();
    let (scheme, rest) = match presented_or_outcome(dpop, req.headers()) {
        Ok(presented) => presented,
        Err(outcome) => return Some(outcome),
    };
    let authenticator = &*shared.authenticator;
    // A token byte-identical to one that verified (a compact JWS, which is a `b64token`) is
    // answered before its syntax is checked: the check could only pass.
    let (answer, token) = match authenticator.cached_token(rest) {
        Some(Ok(p)) if scheme == TokenScheme::Bearer && p.token().jkt.is_none() => {
            // What `check_possession` answers for it, without needing the token as text.
            return Some(Outcome::Authenticated(p));
        }
        Some(answer) => {
            // Cannot fail: only verified compact JWS are cache keys (`TokenCache::insert`
            // asserts it); were it ever to, the credential goes to full verification, whose
            // syntax check answers 400.
            let token = b64token(rest).ok();
            debug_assert!(token.is_some(), "a cached token that is not a b64token");
            (answer, token?)
        }
        None => {
            let token = match b64token(rest) {
                Ok(token) => token,
                Err(e) => return Some(header_refused(e)),
            };
            // An API key the verified-key cache knows; any other credential must be verified
            // (the token cache has just missed, so it is not asked again).
            if !authenticator.api_keys().is_some_and(|k| k.format().claims(token)) {
                return None;
            }
            (authenticator.cached(token)?, token)
        }
    };
    Some(conclude(shared, answer, scheme, token, req))
}

/// The outcome after verifying the credential ([`answer_now`] had none).
async fn verify(shared: &Shared, req: &mut Request) -> Outcome {
    mark_sensitive(req.headers_mut());
    // Only the headers (`Sync`, unlike the body) are borrowed across the await.
    let headers = req.headers();
    let (scheme, token) = match credential(shared.dpop.as_deref(), headers) {
        Ok(credential) => credential,
        Err(outcome) => return outcome,
    };
    let answer = shared.authenticator.uncached(token).await;
    conclude(shared, answer, scheme, token, req)
}

/// The outcome of the authenticator's answer: proof of possession for a principal; for a
/// refusal, the log line and the failure budget.
fn conclude(
    shared: &Shared,
    answer: Result<authz_core::Principal, AuthError>,
    scheme: TokenScheme,
    token: &str,
    req: &Request,
) -> Outcome {
    let authenticator = &*shared.authenticator;
    match answer {
        Ok(p) => check_possession(p, scheme, token, shared.dpop.as_deref(), authenticator, req),
        Err(e @ AuthError::Unavailable) => {
            // The key source logs the outage itself (rate-limited); per request, debug only.
            tracing::debug!("bearer credential not verifiable: key source unavailable");
            Outcome::Refused(e)
        }
        Err(e) => {
            tracing::debug!(reason = %e, "bearer credential refused");
            if let Some(throttle) = &shared.throttle {
                let address = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                // An API key's id (public), never anything secret; JWTs count per address only.
                let id = authenticator
                    .api_keys()
                    .and_then(|k| k.format().parse(token).ok())
                    .map(|p| p.id().to_string());
                if let Some(wait) = throttle.record_failure(address, id.as_deref()) {
                    // Debug only: a flood must not become a flood of log lines.
                    tracing::debug!(client = ?address, retry_after_s = wait.as_secs(), "failed credential checks over budget");
                    return Outcome::Throttled(wait.as_secs().max(1));
                }
            }
            Outcome::Refused(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(values: &[&[u8]]) -> Result<Option<String>, BearerError> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        bearer_token(&h).map(|t| t.map(str::to_string))
    }

    #[test]
    fn the_b64token_alphabet_byte_by_byte() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            // Alone, and at every position of a block and of the remainder.
            for len in [1, 31, 32, 33, 64, 70] {
                for at in 0..len {
                    let mut token = vec![b'a'; len];
                    token[at] = b;
                    assert_eq!(
                        all_b64token_chars(&token),
                        expected,
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[b"Bearer abc.def.ghi"]), Ok(Some("abc.def.ghi".into())));
        assert_eq!(parse(&[b"bEaReR abc"]), Ok(Some("abc".into())));
        assert_eq!(parse(&[b"Bearer abc=="]), Ok(Some("abc==".into())));
        assert_eq!(
            parse(&[b"Basic dXNlcjpwYXNz"]),
            Err(BearerError::UnsupportedScheme)
        );
        assert_eq!(parse(&[b"Negotiate"]), Err(BearerError::UnsupportedScheme));
        assert_eq!(parse(&[b"Bearer"]), Err(BearerError::Malformed));
        assert_eq!(parse(&[b"Bearer "]), Err(BearerError::Malformed));
        assert_eq!(parse(&[b"Bearer a b"]), Err(BearerError::Malformed));
        assert_eq!(parse(&[b"Bearer ="]), Err(BearerError::Malformed));
        assert_eq!(parse(&[b"Bearer a\xffb"]), Err(BearerError::Malformed));
        assert_eq!(parse(&[b"Bearer a", b"Bearer b"]), Err(BearerError::Repeated));
    }
}
