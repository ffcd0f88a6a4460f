//! Remote keys (feature `remote`): a JWKS URL or OpenID Connect discovery, fetched over HTTPS
//! (plain HTTP only on loopback), cached, refreshed before `Cache-Control: max-age` runs out,
//! refetched for an unknown `kid` at most once per cool-down (one fetch shared by every
//! concurrent request), and kept working from cache while the endpoint is slow or down.
//!
//! Nothing here sleeps or runs on its own timer: every decision reads the time the
//! authenticator passes in (its injectable [`Clock`]). A request that
//! finds the keys due for refresh starts one background fetch and is served with the current
//! keys meanwhile (stale-while-revalidate).
//!
//! | situation | behaviour |
//! |---|---|
//! | keys cached, fresh | requests read them without locking (an [`ArcSwapOption`]) |
//! | `max-age` × 0.8 elapsed | the next request starts one background refresh |
//! | refresh fails | cached keys stay in use; retries back off 1 s, 2 s, 4 s … up to the cool-down × 6 |
//! | no keys loaded (provider down at start) | 503; one fetch per back-off step, never one per request |
//! | unknown `kid` | one fetch per cool-down (default 5 s); a fetch that finds new keys resets the cool-down |
//! | a key removed, or its material changed under the same `kid` | the [`generation`](crate::auth::KeyProvider::generation) moves: cached tokens are verified again |
//! | an unusable key in the set | skipped and logged once (kid and reason); the rest works |

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use reqwest::Url;

use crate::auth::{KeyProvider, RefreshFuture, RefreshOutcome, RefreshReason};
use crate::clock::{self, Clock, unix_millis as millis};
use crate::jwt::{AlgorithmSet, KeySet};

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
    /// At most one fetch for unknown `kid`s per cool-down (default 5 s): a flood of random
    /// `kid`s costs the provider at most 12 fetches a minute and keeps a genuinely new key out
    /// for at most this long.
    pub unknown_kid_cooldown: Duration,
    /// Timeout of one fetch (default 5 s).
    pub timeout: Duration,
    /// The clock [`RemoteJwks::start`] and [`RemoteJwks::refresh_now`] read (requests pass the
    /// authenticator's time instead: give both the same clock). Default: the system clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            unknown_kid_cooldown: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            clock: clock::system(),
        }
    }
}

/// A remote key source that cannot work as configured; the message names the URL and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwksConfigError(pub String);

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
}

const OUTCOME_NONE: u8 = 0;
const OUTCOME_UPDATED: u8 = 1;
const OUTCOME_UNCHANGED: u8 = 2;
const OUTCOME_FAILED: u8 = 3;
const NEVER: u64 = u64::MAX;

struct Inner {
    url: Url,
    client: reqwest::Client,
    allowed: AlgorithmSet,
    options: JwksOptions,
    clock: Arc<dyn Clock>,
    keys: ArcSwapOption<KeySet>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// Completed fetch attempts, and the outcome of the latest (`OUTCOME_*`).
    attempts: AtomicU64,
    last_outcome: AtomicU8,
    /// Consecutive failures, and the earliest time (ms since the epoch) of the next attempt.
    failures: AtomicU32,
    next_attempt_ms: AtomicU64,
    /// When (ms since the epoch) the last unknown-`kid` fetch started (`NEVER`: none counts).
    last_kid_fetch_ms: AtomicU64,
    /// When (ms since the epoch) the keys are due for a background refresh.
    refresh_at_ms: AtomicU64,
    background: AtomicBool,
    generation: AtomicU64,
    fetches: AtomicU64,
    /// Skipped keys already logged (kid, reason), so each is logged once.
    logged: Mutex<HashSet<(Option<String>, String)>>,
}

/// A JWKS endpoint, cached. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.inner.url.as_str())
            .field("keys", &self.inner.keys.load().as_ref().map(|k| k.len()))
            .field("generation", &self.generation())
            .finish()
    }
}

/// Accepts `https://`, and `http://` only for loopback hosts.
pub fn check_url(url: &str) -> Result<Url, JwksConfigError> {
    let parsed = Url::parse(url).map_err(|e| JwksConfigError(format!("{url:?} is not a URL: {e}")))?;
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
                Err(JwksConfigError(format!(
                    "{url:?} must use https (plain http is allowed only on loopback)"
                )))
            }
        }
        other => Err(JwksConfigError(format!(
            "{url:?} has scheme {other:?}; use https"
        ))),
    }
}

fn client(timeout: Duration) -> Result<reqwest::Client, JwksConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authz/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| JwksConfigError(format!("cannot build the HTTP client: {e}")))
}

async fn get_limited(client: &reqwest::Client, url: &Url) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let mut resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FetchError::Http(error_chain(&e.without_url())))?;
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
    ///
    /// # Errors
    /// `url` is not `https://` (or `http://` on loopback).
    pub fn new(url: &str, allowed: AlgorithmSet, options: JwksOptions) -> Result<Self, JwksConfigError> {
        let url = check_url(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client: client(options.timeout)?,
                url,
                allowed,
                clock: options.clock.clone(),
                options,
                keys: ArcSwapOption::empty(),
                fetch_lock: tokio::sync::Mutex::new(()),
                attempts: AtomicU64::new(0),
                last_outcome: AtomicU8::new(OUTCOME_NONE),
                failures: AtomicU32::new(0),
                next_attempt_ms: AtomicU64::new(0),
                last_kid_fetch_ms: AtomicU64::new(NEVER),
                refresh_at_ms: AtomicU64::new(0),
                background: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                logged: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// OpenID Connect discovery: reads `{issuer}/.well-known/openid-configuration`, checks that
    /// it names the same `issuer` (OpenID Connect Discovery §4.3), and uses its `jwks_uri`.
    ///
    /// # Errors
    /// The discovery document cannot be fetched, is not JSON, names another issuer or has no
    /// usable `jwks_uri`; the message names the URL.
    pub async fn discover(
        issuer: &str,
        allowed: AlgorithmSet,
        options: JwksOptions,
    ) -> Result<Self, JwksConfigError> {
        let base = issuer.trim_end_matches('/');
        let url = check_url(&format!("{base}/.well-known/openid-configuration"))?;
        let client = client(options.timeout)?;
        let (body, _) = get_limited(&client, &url)
            .await
            .map_err(|e| JwksConfigError(format!("OIDC discovery at {url} failed: {e}")))?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| JwksConfigError(format!("OIDC discovery document at {url} is not JSON: {e}")))?;
        let named = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
        if named != issuer {
            return Err(JwksConfigError(format!(
                "OIDC discovery at {url} names issuer {named:?}, not {issuer:?} (OpenID Connect Discovery §4.3)"
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| JwksConfigError(format!("OIDC discovery document at {url} has no jwks_uri")))?;
        Self::new(jwks_uri, allowed, options)
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// Fetches once now. A failure is not fatal: requests get 503 until a fetch succeeds, and
    /// requests retry with back-off.
    pub async fn start(&self) -> Result<(), FetchError> {
        match self.fetch_shared(self.inner.clock.now(), Gate::None).await {
            RefreshOutcome::Failed => Err(self.last_error()),
            _ => Ok(()),
        }
    }

    fn last_error(&self) -> FetchError {
        FetchError::Http(format!(
            "fetching {} failed (the warning above says why)",
            self.inner.url
        ))
    }

    /// Fetches now (ignoring back-off and cool-down), or shares a fetch already under way.
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        match self.fetch_shared(self.inner.clock.now(), Gate::None).await {
            RefreshOutcome::Failed => Err(self.last_error()),
            _ => Ok(()),
        }
    }

    /// The current key set, if one was ever fetched.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.inner.keys.load_full()
    }

    /// How many fetches were sent so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Moves when a refresh removed a key or changed a key's material.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// One fetch shared by concurrent callers, if `gate` allows it now.
    async fn fetch_shared(&self, now: SystemTime, gate: Gate<'_>) -> RefreshOutcome {
        let inner = &self.inner;
        let now_ms = millis(now);
        let seen = inner.attempts.load(Ordering::Acquire);
        let _guard = inner.fetch_lock.lock().await;
        if inner.attempts.load(Ordering::Acquire) != seen {
            // Someone fetched while we waited: share that result.
            return match inner.last_outcome.load(Ordering::Acquire) {
                OUTCOME_UPDATED => RefreshOutcome::Updated,
                OUTCOME_UNCHANGED => RefreshOutcome::Unchanged,
                _ => RefreshOutcome::Failed,
            };
        }
        let failing = inner.failures.load(Ordering::Acquire) > 0;
        let backing_off = failing && now_ms < inner.next_attempt_ms.load(Ordering::Acquire);
        match gate {
            Gate::None => {}
            Gate::Backoff => {
                if backing_off {
                    return RefreshOutcome::Suppressed;
                }
            }
            Gate::UnknownKid(_) => {
                let last = inner.last_kid_fetch_ms.load(Ordering::Acquire);
                let cooldown = inner.options.unknown_kid_cooldown.as_millis() as u64;
                if last != NEVER && now_ms.saturating_sub(last) < cooldown {
                    // Just an unknown `kid` (401): no fetch within the cool-down.
                    return RefreshOutcome::Suppressed;
                }
                if backing_off {
                    // The source failed moments ago: no usable key for this `kid` (503).
                    return RefreshOutcome::Failed;
                }
                inner.last_kid_fetch_ms.store(now_ms, Ordering::Release);
            }
        }
        let outcome = match self.fetch(now_ms).await {
            Ok(changed) => {
                inner.failures.store(0, Ordering::Release);
                if changed {
                    if let Gate::UnknownKid(kid) = gate
                        && inner.keys.load().as_ref().is_some_and(|k| k.contains_kid(kid))
                    {
                        // The fetch found the key that was asked for: a genuine rotation, so
                        // the next unknown `kid` may fetch at once. (Only then: a provider whose
                        // answers differ between fetches must not reset the cool-down.)
                        inner.last_kid_fetch_ms.store(NEVER, Ordering::Release);
                    }
                    OUTCOME_UPDATED
                } else {
                    OUTCOME_UNCHANGED
                }
            }
            Err(e) => {
                let failures = inner.failures.fetch_add(1, Ordering::AcqRel) + 1;
                let cap = inner.options.unknown_kid_cooldown.max(Duration::from_secs(5)) * 6;
                let backoff = (Duration::from_secs(1) * (1u32 << (failures - 1).min(10))).min(cap);
                inner
                    .next_attempt_ms
                    .store(now_ms + backoff.as_millis() as u64, Ordering::Release);
                if inner.keys.load().is_some() {
                    tracing::warn!(url = %inner.url, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "JWKS fetch failed; the keys fetched before stay in use");
                } else {
                    tracing::warn!(url = %inner.url, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "JWKS fetch failed and no keys are loaded: tokens of this issuer get 503");
                }
                OUTCOME_FAILED
            }
        };
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "authz_jwks_fetches_total",
            "outcome" => if outcome == OUTCOME_FAILED { "error" } else { "ok" }
        )
        .increment(1);
        inner.last_outcome.store(outcome, Ordering::Release);
        inner.attempts.fetch_add(1, Ordering::AcqRel);
        match outcome {
            OUTCOME_UPDATED => RefreshOutcome::Updated,
            OUTCOME_UNCHANGED => RefreshOutcome::Unchanged,
            _ => RefreshOutcome::Failed,
        }
    }

    /// Fetches and installs the key set; `Ok(true)` when it differs from the previous one.
    async fn fetch(&self, now_ms: u64) -> Result<bool, FetchError> {
        let inner = &self.inner;
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let (body, max_age) = get_limited(&inner.client, &inner.url).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(format!("not JSON: {e}")))?;
        let report =
            KeySet::from_jwks_report(&doc, inner.allowed).map_err(|e| FetchError::Invalid(e.to_string()))?;
        if let Ok(mut logged) = inner.logged.lock() {
            for s in &report.skipped {
                if logged.insert((s.kid.clone(), s.reason.clone())) {
                    tracing::warn!(url = %inner.url, kid = ?s.kid, index = s.index, reason = %s.reason,
                        "JWKS key skipped: it will never verify a token");
                }
            }
        }
        let set = report.keys;
        let ttl = max_age.unwrap_or(inner.options.default_ttl).clamp(
            inner.options.min_ttl,
            inner.options.max_ttl.max(inner.options.min_ttl),
        );
        let (changed, lost) = match inner.keys.load().as_ref() {
            None => (true, false),
            Some(old) => {
                let lost = !old.is_subset_of(&set);
                (lost || !set.is_subset_of(old), lost)
            }
        };
        tracing::debug!(url = %inner.url, keys = set.len(), ttl_s = ttl.as_secs(), changed, "JWKS refreshed");
        inner.keys.store(Some(Arc::new(set)));
        if lost {
            // A key was removed or its material changed: tokens it verified must be verified
            // again. Moved only after the new keys are in place (readers load the generation
            // before the keys), so no entry verified with the old keys can carry the new
            // generation.
            inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        let due = now_ms + ttl.mul_f64(0.8).as_millis() as u64;
        inner.refresh_at_ms.store(due, Ordering::Release);
        Ok(changed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate<'a> {
    /// Always fetch (start-up, an explicit refresh).
    None,
    /// Not while backing off after failures.
    Backoff,
    /// Not within the unknown-`kid` cool-down; the `kid` asked for.
    UnknownKid(&'a str),
}

impl KeyProvider for RemoteJwks {
    fn keys(&self, now: SystemTime) -> Option<Arc<KeySet>> {
        let inner = &self.inner;
        let keys = inner.keys.load_full();
        let now_ms = millis(now);
        let backing_off = inner.failures.load(Ordering::Acquire) > 0
            && now_ms < inner.next_attempt_ms.load(Ordering::Acquire);
        if keys.is_some()
            && now_ms >= inner.refresh_at_ms.load(Ordering::Acquire)
            && !backing_off
            && !inner.background.swap(true, Ordering::AcqRel)
        {
            // Due: one background refresh; this request goes on with the current keys.
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let this = self.clone();
                    handle.spawn(async move {
                        this.fetch_shared(now, Gate::Backoff).await;
                        this.inner.background.store(false, Ordering::Release);
                    });
                }
                Err(_) => inner.background.store(false, Ordering::Release),
            }
        }
        keys
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    fn refresh<'a>(&'a self, reason: RefreshReason<'a>, now: SystemTime) -> RefreshFuture<'a> {
        Box::pin(async move {
            let gate = match reason {
                RefreshReason::UnknownKeyId(kid) => Gate::UnknownKid(kid),
                _ => Gate::Backoff,
            };
            self.fetch_shared(now, gate).await
        })
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
