//! Observability of authentication and authorization decisions.
//!
//! **Tracing**: every request through [`crate::AuthLayer`] runs inside one `authz` span (debug
//! level) with the fields `method`, `path`, `outcome` (`authenticated`, `anonymous`, `refused`,
//! `unavailable`, `throttled`, `malformed`, `dpop_refused`), `reason` (a fixed code such as
//! `expired` or `invalid_signature`, never credential material), `sub` (the subject, once
//! authenticated) and `decision` (`allowed` or `forbidden`, set by the guard).
//!
//! **Metrics** (feature `metrics`, through the [`metrics`](https://docs.rs/metrics) facade —
//! install any recorder, e.g. `metrics-exporter-prometheus`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `authz_authentications_total` | counter | `outcome`, `reason` |
//! | `authz_authentication_duration_seconds` | histogram | `outcome` |
//! | `authz_decisions_total` | counter | `decision` (`allowed`, `forbidden`) |
//! | `authz_token_cache_hits` / `authz_token_cache_misses` | gauge (running totals) | — |
//! | `authz_jwks_fetches_total` | counter | `outcome` (`ok`, `error`) — from `authz-core` |
//!
//! Label values come from fixed sets, so cardinality stays bounded whatever callers send.

use authz_core::auth::{AuthError, Authenticator};

/// `authz_authentications_total`.
pub const AUTHENTICATIONS: &str = "authz_authentications_total";
/// `authz_authentication_duration_seconds`.
pub const AUTHENTICATION_SECONDS: &str = "authz_authentication_duration_seconds";
/// `authz_decisions_total`.
pub const DECISIONS: &str = "authz_decisions_total";
/// `authz_token_cache_hits`.
pub const TOKEN_CACHE_HITS: &str = "authz_token_cache_hits";
/// `authz_token_cache_misses`.
pub const TOKEN_CACHE_MISSES: &str = "authz_token_cache_misses";

/// A fixed code for why authentication failed (a metrics label and a span field).
pub fn reason(error: &AuthError) -> &'static str {
    match error {
        AuthError::InvalidToken(kind) => kind.code(),
        AuthError::InvalidApiKey(_) => "invalid_api_key",
        AuthError::Unavailable => "unavailable",
        _ => "other",
    }
}

/// Describes the metrics to the installed recorder (units and help texts). Call once after
/// installing it.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        metrics::describe_counter!(AUTHENTICATIONS, "Authentication outcomes, by outcome and reason");
        metrics::describe_histogram!(
            AUTHENTICATION_SECONDS,
            metrics::Unit::Seconds,
            "Time to authenticate a request (cache hits included)"
        );
        metrics::describe_counter!(DECISIONS, "Guard decisions: allowed or forbidden");
        metrics::describe_gauge!(TOKEN_CACHE_HITS, "Verified-token cache hits since start");
        metrics::describe_gauge!(TOKEN_CACHE_MISSES, "Verified-token cache misses since start");
        metrics::describe_counter!("authz_jwks_fetches_total", "JWKS fetches, by outcome");
    }
}

/// Publishes the authenticator's token-cache counters as gauges (call before rendering a
/// scrape, or periodically).
pub fn record_cache_stats(authenticator: &Authenticator) {
    #[cfg(feature = "metrics")]
    {
        let stats = authenticator.cache_stats();
        metrics::gauge!(TOKEN_CACHE_HITS).set(stats.hits as f64);
        metrics::gauge!(TOKEN_CACHE_MISSES).set(stats.misses as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = authenticator;
}

/// Records one authentication.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn authentication(
    outcome: &'static str,
    reason: &'static str,
    started: Option<std::time::Instant>,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(AUTHENTICATIONS, "outcome" => outcome, "reason" => reason).increment(1);
        if let Some(t) = started {
            metrics::histogram!(AUTHENTICATION_SECONDS, "outcome" => outcome)
                .record(t.elapsed().as_secs_f64());
        }
    }
}

/// Records one guard decision (and puts it on the request's span).
pub(crate) fn decision(decision: &'static str) {
    decision_of(true, decision);
}

/// Records one guard decision; puts it on the current span only if `traced` (the request's
/// `authz` span is enabled: see `AuthState::traced`).
pub(crate) fn decision_of(traced: bool, decision: &'static str) {
    if traced {
        tracing::Span::current().record("decision", decision);
    }
    #[cfg(feature = "metrics")]
    metrics::counter!(DECISIONS, "decision" => decision).increment(1);
}

/// The clock read for the duration histogram: only when metrics are compiled in.
pub(crate) fn start() -> Option<std::time::Instant> {
    #[cfg(feature = "metrics")]
    {
        Some(std::time::Instant::now())
    }
    #[cfg(not(feature = "metrics"))]
    {
        None
    }
}
