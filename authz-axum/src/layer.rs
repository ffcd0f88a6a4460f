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
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use tower::{Layer, Service};

use std::net::SocketAddr;

use authz_core::auth::{AuthError, Authenticator};
use axum::extract::ConnectInfo;

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
}

/// What the layer leaves in the request extensions.
#[derive(Clone, Debug)]
pub(crate) struct AuthState {
    pub(crate) outcome: Outcome,
    pub(crate) config: Arc<RejectionConfig>,
}

impl AuthState {
    /// The principal, or the rejection an extractor that needs one must return.
    pub(crate) fn principal(&self) -> Result<&authz_core::Principal, AuthRejection> {
        let c = || self.config.clone();
        match &self.outcome {
            Outcome::Authenticated(p) => Ok(p),
            Outcome::Anonymous => Err(AuthRejection::MissingCredentials(c())),
            Outcome::Header(BearerError::UnsupportedScheme) => Err(AuthRejection::UnsupportedScheme(c())),
            Outcome::Header(e) => Err(AuthRejection::InvalidRequest(c(), e.detail())),
            Outcome::Refused(AuthError::Unavailable) => Err(AuthRejection::KeySourceUnavailable(c())),
            Outcome::Throttled(secs) => Err(AuthRejection::TooManyAttempts(c(), *secs)),
            Outcome::Refused(_) => Err(AuthRejection::InvalidToken(c())),
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

/// Reads the bearer token from the request's one `Authorization` header.
///
/// Returns `Ok(None)` when there is no `Authorization` header. The scheme is matched
/// case-insensitively; the token must be an RFC 6750 `b64token`. Tokens in the query string or
/// a body are never looked at.
///
/// # Errors
/// [`BearerError`]: repeated header, malformed value, another scheme.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
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
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(BearerError::UnsupportedScheme);
    }
    let token = {
        let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        &rest[start..]
    };
    let is_b64token = !token.is_empty() && {
        let end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        end > 0
            && token[..end]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    };
    if !is_b64token {
        return Err(BearerError::Malformed);
    }
    // Only ASCII passed the check above.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| BearerError::Malformed)
}

/// Authenticates every request once and stores the outcome for the extractors.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
    config: Arc<RejectionConfig>,
    throttle: Option<Arc<FailedAttempts>>,
}

impl AuthLayer {
    /// A layer using `authenticator`, with the default rejection configuration (realm `api`).
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            authenticator,
            config: Arc::new(RejectionConfig::default()),
            throttle: None,
        }
    }

    /// Throttles failed credential checks (see [`crate::throttle`]): over budget, a failed
    /// check answers 429 with `Retry-After` instead of 401; valid credentials are never
    /// throttled. The client address comes from `ConnectInfo<SocketAddr>` (set by
    /// [`crate::serve::serve`]); without it only the per-credential budget applies.
    pub fn throttle_failures(mut self, throttle: Arc<FailedAttempts>) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Uses `config` for realm and body shaping.
    pub fn with_rejections(mut self, config: RejectionConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
            config: self.config.clone(),
            throttle: self.throttle.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
    config: Arc<RejectionConfig>,
    throttle: Option<Arc<FailedAttempts>>,
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
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was driven to readiness handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        let config = self.config.clone();
        let throttle = self.throttle.clone();
        Box::pin(async move {
            let outcome = authenticate(&authenticator, throttle.as_deref(), &mut req).await;
            req.extensions_mut().insert(AuthState { outcome, config });
            inner.call(req).await
        })
    }
}

async fn authenticate(
    authenticator: &Authenticator,
    throttle: Option<&FailedAttempts>,
    req: &mut Request,
) -> Outcome {
    // Mark the credential sensitive so that no logging layer prints it.
    if let Some(v) = req.headers_mut().get_mut(header::AUTHORIZATION) {
        v.set_sensitive(true);
    }
    let token = match bearer_token(req.headers()) {
        Ok(None) => return Outcome::Anonymous,
        Ok(Some(t)) => t,
        Err(e) => {
            tracing::debug!(reason = e.detail(), "authorization header refused");
            return Outcome::Header(e);
        }
    };
    match authenticator.authenticate(token).await {
        Ok(p) => Outcome::Authenticated(p),
        Err(e @ AuthError::Unavailable) => {
            // The key source logs the outage itself (rate-limited); per request, debug only.
            tracing::debug!("bearer credential not verifiable: key source unavailable");
            Outcome::Refused(e)
        }
        Err(e) => {
            tracing::debug!(reason = %e, "bearer credential refused");
            if let Some(throttle) = throttle {
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
