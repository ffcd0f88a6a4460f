//! The policy-engine seam: questions the permission bitset cannot answer ("analysts deploy only
//! their own models, and only to staging") go to a policy engine — embedded Rego, Cedar, or OPA
//! over HTTP — through one trait, [`PolicyEngine`], with one documented [`Input`] document.
//!
//! The order never changes: authentication, then the catalog check (a bit test, the cheap
//! deny), and only when the permission holds, the engine. An engine answers a [`Decision`]:
//! allow or deny, with reasons. **Every failure is a deny with a reason** — a policy that does
//! not compile, an evaluation error, an undefined or non-boolean result, an engine that does not
//! answer in time: never a panic, never a pass.
//!
//! Engines (each behind its cargo feature, so an application that uses none compiles none):
//!
//! | feature | engine | policies |
//! |---|---|---|
//! | `rego` | `rego::RegoEngine` (regorus, embedded) | a directory of `.rego` files; policy `N` is package `authz.N`, rule `allow` |
//! | `cedar` | `cedar::CedarEngine` (cedar-policy) | a directory of `.cedar` files; policy `N` is the file `N.cedar` |
//! | `opa` | `opa::OpaEngine` (OPA's Data API over HTTP) | policy `N` is `POST /v1/data/authz/N/allow` |
//!
//! [`Cached`] puts a short-lived decision cache in front of any engine (the OPA engine is
//! usually wrapped in one).
//!
//! ```
//! use authz_core::engine::{Decision, Input, PolicyEngine, Pending};
//!
//! /// A toy engine: one policy, `weekday`, that allows when the request time is not a weekend.
//! struct Weekdays;
//!
//! impl PolicyEngine for Weekdays {
//!     fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
//!         if policy != "weekday" {
//!             return Pending::ready(Decision::deny(format!("no policy named {policy:?}")));
//!         }
//!         let day = (input.request.time / 86_400 + 4) % 7; // 1970-01-01 was a Thursday
//!         Pending::ready(if day < 5 { Decision::allow() } else { Decision::deny("weekend") })
//!     }
//!     fn policies(&self) -> Vec<String> {
//!         vec!["weekday".into()]
//!     }
//!     fn kind(&self) -> &'static str {
//!         "weekdays"
//!     }
//! }
//! ```

mod cache;
#[cfg(feature = "cedar")]
pub mod cedar;
mod input;
#[cfg(feature = "opa")]
pub mod opa;
#[cfg(feature = "rego")]
pub mod rego;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use cache::{CacheConfig, CacheKey, Cached};
pub use input::{Input, PrincipalInput, RequestInput, ResourceInput};

/// A policy engine: given the name of a policy and the [`Input`] document, allow or deny.
///
/// Implementations must never panic and never allow on a failure: an error while evaluating is
/// [`Decision::deny`] with a reason that says what went wrong (never a secret). An unknown
/// policy name is a deny too — but [`PolicyEngine::policies`] lets the application refuse to
/// start when a route names a policy the engine does not have, so that never happens in
/// production.
pub trait PolicyEngine: Send + Sync + 'static {
    /// Decides `policy` for `input`. Engines that answer synchronously (embedded Rego, Cedar)
    /// return [`Pending::ready`], which costs no allocation; remote ones [`Pending::boxed`].
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a>;

    /// The names of the policies loaded now (for the start-up check of the routes' names).
    fn policies(&self) -> Vec<String>;

    /// A short name of the engine for logs: `"rego"`, `"cedar"`, `"opa"`.
    fn kind(&self) -> &'static str;
}

impl<E: PolicyEngine + ?Sized> PolicyEngine for std::sync::Arc<E> {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        (**self).decide(policy, input)
    }
    fn policies(&self) -> Vec<String> {
        (**self).policies()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

/// An engine's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `true` only when the policy positively allowed the request.
    pub allowed: bool,
    /// Why (the policy's own reasons, or what failed); may be empty for a plain allow. Reasons
    /// are for logs and operators; they never reach the client.
    pub reasons: Vec<String>,
    /// The engine's id for this decision, when it gives one (OPA's `decision_id`), so that the
    /// decision log line can be matched with the engine's own log.
    pub decision_id: Option<String>,
    /// `true` when the engine could not decide (an evaluation error, a timeout, an engine that
    /// is down): always a deny, and never cached.
    pub failed: bool,
}

impl Decision {
    /// Allowed, without reasons.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            reasons: Vec::new(),
            decision_id: None,
            failed: false,
        }
    }

    /// Denied by the policy, with one reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reasons: vec![reason.into()],
            decision_id: None,
            failed: false,
        }
    }

    /// The engine could not decide: a deny, with what went wrong.
    pub fn failure(reason: impl Into<String>) -> Self {
        Self {
            failed: true,
            ..Self::deny(reason)
        }
    }

    /// With the engine's decision id.
    pub fn with_decision_id(mut self, id: Option<String>) -> Self {
        self.decision_id = id;
        self
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allowed { "allow" } else { "deny" })?;
        if !self.reasons.is_empty() {
            write!(f, " ({})", self.reasons.join("; "))?;
        }
        Ok(())
    }
}

/// The future [`PolicyEngine::decide`] returns: ready at once for embedded engines (no
/// allocation), a boxed future for engines that do I/O.
#[must_use = "a decision does nothing until awaited"]
pub struct Pending<'a>(PendingInner<'a>);

enum PendingInner<'a> {
    Ready(Option<Decision>),
    Boxed(Pin<Box<dyn Future<Output = Decision> + Send + 'a>>),
}

impl<'a> Pending<'a> {
    /// An answer that is already known.
    pub fn ready(decision: Decision) -> Self {
        Pending(PendingInner::Ready(Some(decision)))
    }

    /// An answer that needs I/O.
    pub fn boxed(future: impl Future<Output = Decision> + Send + 'a) -> Self {
        Pending(PendingInner::Boxed(Box::pin(future)))
    }
}

impl Future for Pending<'_> {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Decision> {
        match &mut self.get_mut().0 {
            // Polled again after completion: deny rather than panic.
            PendingInner::Ready(d) => Poll::Ready(
                d.take()
                    .unwrap_or_else(|| Decision::failure("decision polled after completion")),
            ),
            PendingInner::Boxed(f) => f.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            PendingInner::Ready(d) => f.debug_tuple("Pending::Ready").field(d).finish(),
            PendingInner::Boxed(_) => f.write_str("Pending::Boxed(..)"),
        }
    }
}

/// A policy could not be loaded: which file, where, and why. The previous policy (if any) keeps
/// serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    /// The file (or directory, or URL) that could not be loaded.
    pub path: String,
    /// What is wrong, with the line and column when the engine reports them.
    pub message: String,
}

impl LoadError {
    /// An error about `path` (a file, directory or URL) saying `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Checks that every name in `required` is a policy `engine` has loaded.
///
/// # Errors
/// A message naming each unknown policy and the loaded ones, e.g.
/// `unknown policy "deplyo" (required by POST /models/{id}/deploy); the rego engine has: deploy`.
pub fn check_policies<'a>(
    engine: &dyn PolicyEngine,
    required: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<(), String> {
    let loaded = engine.policies();
    // name → the routes that require it, in order of first mention.
    let mut unknown: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, by) in required {
        if loaded.iter().any(|l| l == name) {
            continue;
        }
        match unknown.iter_mut().find(|(n, _)| *n == name) {
            Some((_, routes)) => routes.push(by),
            None => unknown.push((name, vec![by])),
        }
    }
    let missing: Vec<String> = unknown
        .iter()
        .map(|(name, by)| format!("unknown policy {name:?} (required by {})", by.join(", ")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let have = if loaded.is_empty() {
        "none".to_string()
    } else {
        loaded.join(", ")
    };
    Err(format!(
        "{}; the {} engine has: {have}",
        missing.join("; "),
        engine.kind()
    ))
}
