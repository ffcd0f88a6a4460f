//! Remote JWKS: fetched over HTTPS (plain HTTP only on loopback), cached, refreshed in the
//! background before it expires (honouring `Cache-Control: max-age`), refetched at most once
//! per cool-down when a token names an unknown `kid` (one fetch shared by all concurrent
//! requests), and kept working from cache while the endpoint is slow or down.
//!
//! Requests whose key is cached never wait: they read the current key set through an
//! [`ArcSwap`](arc_swap::ArcSwapOption), and no lock is ever held by a reader.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use authz_core::jwt::{AlgorithmSet, KeySet};
use reqwest::Url;
use tokio::sync::Mutex;

use crate::ConfigError;

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Tunables of a [`RemoteJwks`], each with a safe default.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// How long keys are used when the response has no `Cache-Control: max-age` (default 5 min).
    pub default_ttl: Duration,
    /// Shortest honoured `max-age` (default 30 s): a misconfigured server cannot make us poll.
    pub min_ttl: Duration,
    /// Longest honoured `max-age` (default 24 h): rotated-out keys are dropped eventually.
    pub max_ttl: Duration,
    /// At most one fetch for an unknown `kid` per cool-down (default 30 s).
    pub unknown_kid_cooldown: Duration,
    /// Timeout of one fetch (default 5 s).
    pub timeout: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a fetch failed (never shown to callers; logged).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Network or HTTP failure.
    #[error("JWKS fetch failed: {0}")]
    Http(String),
    /// The document was refused.
    #[error("JWKS document refused: {0}")]
    Invalid(String),
    /// Within the cool-down after the previous attempt.
    #[error("JWKS refetch suppressed: within the cool-down after the previous attempt")]
    CoolingDown,
}

struct Inner {
    url: Url,
    client: reqwest::Client,
    allowed: AlgorithmSet,
    options: JwksOptions,
    keys: ArcSwapOption<KeySet>,
    fetch_lock: Mutex<()>,
    started: Instant,
    /// Milliseconds since `started` of the last fetch caused by an unknown `kid` (u64::MAX: never).
    /// Scheduled refreshes do not count: the cool-down limits what callers can trigger.
    last_kid_fetch_ms: AtomicU64,
    /// Incremented by every fetch attempt, successful or not.
    attempts: AtomicU64,
    /// Result of the latest attempt.
    last_ok: std::sync::atomic::AtomicBool,
    /// Incremented when a refresh removed a `kid` (so caches of verified tokens can be dropped).
    removals: AtomicU64,
    /// Milliseconds since `started` at which the keys should be refreshed.
    refresh_at_ms: AtomicU64,
    fetches: AtomicU64,
}

/// A JWKS endpoint, cached. Cheap to clone.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.inner.url.as_str())
            .field("keys", &self.inner.keys.load().as_ref().map(|k| k.len()))
            .finish()
    }
}

/// Accepts `https://`, and `http://` only for loopback hosts.
pub(crate) fn check_url(url: &str) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url).map_err(|e| ConfigError(format!("{url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(ConfigError(format!(
                    "{url:?} must use https (plain http is allowed only on loopback)"
                )))
            }
        }
        other => Err(ConfigError(format!("{url:?} has scheme {other:?}; use https"))),
    }
}

fn client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authz-axum/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))
}

async fn get_limited(client: &reqwest::Client, url: &Url) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let mut resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FetchError::Http(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(FetchError::Http(format!("status {}", resp.status())));
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Http(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::Invalid(format!(
                "larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age` from a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut out = None;
    for directive in value.split(',') {
        let d = directive.trim();
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some((k, v)) = d.split_once('=')
            && k.trim().eq_ignore_ascii_case("max-age")
        {
            out = v
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out
}

impl RemoteJwks {
    /// A JWKS at `url` whose keys may use the `allowed` algorithms. Nothing is fetched until
    /// [`RemoteJwks::start`] or the first request.
    pub fn new(url: &str, allowed: AlgorithmSet, options: JwksOptions) -> Result<Self, ConfigError> {
        let url = check_url(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client: client(options.timeout)?,
                url,
                allowed,
                options,
                keys: ArcSwapOption::empty(),
                fetch_lock: Mutex::new(()),
                started: Instant::now(),
                last_kid_fetch_ms: AtomicU64::new(u64::MAX),
                attempts: AtomicU64::new(0),
                last_ok: std::sync::atomic::AtomicBool::new(false),
                removals: AtomicU64::new(0),
                refresh_at_ms: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
            }),
        })
    }

    /// OpenID Connect discovery: reads `{issuer}/.well-known/openid-configuration`, checks that
    /// it names the same `issuer`, and uses its `jwks_uri`.
    pub async fn discover(
        issuer: &str,
        allowed: AlgorithmSet,
        options: JwksOptions,
    ) -> Result<Self, ConfigError> {
        let base = issuer.trim_end_matches('/');
        let url = check_url(&format!("{base}/.well-known/openid-configuration"))?;
        let client = client(options.timeout)?;
        let (body, _) = get_limited(&client, &url)
            .await
            .map_err(|e| ConfigError(format!("OIDC discovery at {url} failed: {e}")))?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ConfigError(format!("OIDC discovery document at {url} is not JSON: {e}")))?;
        let named = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
        if named != issuer {
            return Err(ConfigError(format!(
                "OIDC discovery at {url} names issuer {named:?}, not {issuer:?} (OpenID Connect Discovery §4.3)"
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ConfigError(format!("OIDC discovery document at {url} has no jwks_uri")))?;
        Self::new(jwks_uri, allowed, options)
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// Fetches once now, then keeps the keys fresh from a background task (which stops when
    /// every clone of this `RemoteJwks` is dropped). Returns the first fetch's result; a failure
    /// is not fatal: requests get 503 until a fetch succeeds.
    pub async fn start(&self) -> Result<(), FetchError> {
        let first = self.refresh_now().await;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(refresh_loop(weak));
        first
    }

    /// The current key set, if one was ever fetched.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.inner.keys.load_full()
    }

    /// How many fetches were sent so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Incremented whenever a refresh dropped a `kid`.
    pub(crate) fn removals(&self) -> u64 {
        self.inner.removals.load(Ordering::Relaxed)
    }

    /// Fetches now, unless another task is already fetching (then shares its result).
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        self.single_flight(false).await
    }

    /// For an unknown `kid`: fetch unless within the cool-down; concurrent callers share one
    /// fetch.
    pub(crate) async fn refresh_for_unknown_kid(&self) -> Result<(), FetchError> {
        self.single_flight(true).await
    }

    async fn single_flight(&self, respect_cooldown: bool) -> Result<(), FetchError> {
        let inner = &self.inner;
        let seen = inner.attempts.load(Ordering::Acquire);
        let _guard = inner.fetch_lock.lock().await;
        if inner.attempts.load(Ordering::Acquire) != seen {
            // Someone fetched while we waited: share that result.
            return if inner.last_ok.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(FetchError::Http("the shared fetch failed".into()))
            };
        }
        if respect_cooldown {
            let last = inner.last_kid_fetch_ms.load(Ordering::Acquire);
            let now = inner.started.elapsed().as_millis() as u64;
            if last != u64::MAX
                && now.saturating_sub(last) < inner.options.unknown_kid_cooldown.as_millis() as u64
            {
                return Err(FetchError::CoolingDown);
            }
            inner.last_kid_fetch_ms.store(now, Ordering::Release);
        }
        let result = self.fetch().await;
        inner.last_ok.store(result.is_ok(), Ordering::Release);
        inner.attempts.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = &result {
            tracing::warn!(url = %inner.url, error = %e, "JWKS fetch failed; cached keys stay in use");
        }
        result
    }

    async fn fetch(&self) -> Result<(), FetchError> {
        let inner = &self.inner;
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let (body, max_age) = get_limited(&inner.client, &inner.url).await?;
        let text = std::str::from_utf8(&body).map_err(|_| FetchError::Invalid("not UTF-8".into()))?;
        let set = KeySet::from_jwks(text, inner.allowed).map_err(|e| FetchError::Invalid(e.to_string()))?;
        let ttl = max_age.unwrap_or(inner.options.default_ttl).clamp(
            inner.options.min_ttl,
            inner.options.max_ttl.max(inner.options.min_ttl),
        );
        if let Some(old) = inner.keys.load().as_ref() {
            let removed = old
                .keys()
                .iter()
                .filter_map(|k| k.kid())
                .any(|kid| !set.contains_kid(kid));
            if removed {
                inner.removals.fetch_add(1, Ordering::AcqRel);
            }
        }
        tracing::debug!(url = %inner.url, keys = set.len(), ttl_s = ttl.as_secs(), "JWKS refreshed");
        inner.keys.store(Some(Arc::new(set)));
        let at = inner.started.elapsed() + ttl.mul_f64(0.8);
        inner
            .refresh_at_ms
            .store(at.as_millis() as u64, Ordering::Release);
        Ok(())
    }
}

async fn refresh_loop(weak: Weak<Inner>) {
    let mut failures: u32 = 0;
    loop {
        let wait = {
            let Some(inner) = weak.upgrade() else { return };
            let now = inner.started.elapsed().as_millis() as u64;
            let due = inner.refresh_at_ms.load(Ordering::Acquire);
            let base = Duration::from_millis(due.saturating_sub(now));
            if failures > 0 {
                // Back off after failures, but never longer than the cool-down × 8.
                let backoff =
                    inner.options.unknown_kid_cooldown.min(Duration::from_secs(5)) * (1 << failures.min(3));
                backoff.max(Duration::from_millis(200))
            } else {
                base.max(Duration::from_millis(200))
            }
        };
        tokio::time::sleep(wait).await;
        let Some(inner) = weak.upgrade() else { return };
        let jwks = RemoteJwks { inner };
        let now = jwks.inner.started.elapsed().as_millis() as u64;
        if failures == 0 && now < jwks.inner.refresh_at_ms.load(Ordering::Acquire) {
            continue;
        }
        match jwks.refresh_now().await {
            Ok(()) => failures = 0,
            Err(_) => failures = failures.saturating_add(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_only() {
        assert!(check_url("https://idp.example.com/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_url("http://[::1]:8080/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://idp.example.com/jwks").is_err());
        assert!(check_url("http://10.0.0.1/jwks").is_err());
        assert!(check_url("ftp://idp.example.com/jwks").is_err());
    }

    #[test]
    fn cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
    }
}
