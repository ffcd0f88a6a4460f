//! Extractors: [`Principal`] (any authenticated caller) and [`Guard`] (the argument the
//! macros add, which checks a requirement before any other extractor runs).

use std::marker::PhantomData;
use std::ops::Deref;

use authz_core::{Catalog, Requirement};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use crate::engine::{NoPolicy, PolicyRef};
use crate::layer::AuthState;
use crate::rejection::AuthRejection;

fn state(parts: &Parts) -> Result<&AuthState, AuthRejection> {
    parts
        .extensions
        .get::<AuthState>()
        .ok_or(AuthRejection::LayerMissing)
}

/// The authenticated caller, as an extractor: 401 when the request carries no valid
/// credential, 503 when no key can be had, and a clear 500 when the auth layer is missing.
///
/// Dereferences to [`authz_core::Principal`]. `Option<Principal>` yields `None` for a request
/// without credentials, but still refuses an *invalid* credential.
#[derive(Clone, Debug)]
pub struct Principal(pub authz_core::Principal);

impl Principal {
    /// The core principal.
    pub fn into_inner(self) -> authz_core::Principal {
        self.0
    }
}

impl Deref for Principal {
    type Target = authz_core::Principal;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Principal(state(parts)?.principal()?.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let state = state(parts)?;
        match state.outcome {
            crate::layer::Outcome::Anonymous => Ok(None),
            _ => Ok(Some(Principal(state.principal()?.clone()))),
        }
    }
}

/// The authenticated caller, only if it proved possession of the key its token is bound to
/// (RFC 9449): a route that takes this extractor requires DPoP. A bearer token (or an API key)
/// gets 401 with a `DPoP` challenge. Needs [`crate::AuthLayer::dpop`].
///
/// ```
/// use authz_axum::DpopBound;
/// async fn deploy(DpopBound(caller): DpopBound) -> String {
///     caller.subject().to_string()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct DpopBound(pub authz_core::Principal);

impl<S: Send + Sync> FromRequestParts<S> for DpopBound {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        let principal = state.principal()?;
        // The layer lets a bound token through only with a valid proof by its key.
        if principal.token().jkt.is_none() {
            return Err(AuthRejection::DpopRequired(state.config().clone()));
        }
        Ok(DpopBound(principal.clone()))
    }
}

/// The guard the `#[require_*]` macros put first in a handler's arguments: authenticates (401),
/// then checks the requirement `R` with the indices of catalog `C` (403), then — only if `P`
/// names a policy (`policy = ".."` in the attribute) — asks the policy engine (403 on a deny or
/// an engine failure; see [`crate::engine`]).
pub struct Guard<C, R, P = NoPolicy> {
    principal: authz_core::Principal,
    _marker: Marker<C, R, P>,
}

/// Carries the guard's type parameters without owning any value of them.
type Marker<C, R, P> = PhantomData<fn() -> (C, R, P)>;

impl<C, R, P> Guard<C, R, P> {
    /// The principal that passed the guard.
    pub fn principal(&self) -> &authz_core::Principal {
        &self.principal
    }
}

impl<C, R, P> std::fmt::Debug for Guard<C, R, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("principal", &self.principal)
            .finish()
    }
}

impl<S, C, R, P> FromRequestParts<S> for Guard<C, R, P>
where
    S: Send + Sync,
    C: Catalog,
    R: Requirement,
    P: PolicyRef,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        let principal = state.principal()?;
        if principal.permissions().fingerprint() != C::FINGERPRINT {
            tracing::error!(
                "authz: the principal's permissions were resolved with another catalog than the one this \
                 handler was compiled against; denying. Build the policy from the same `catalog!`."
            );
            return Err(AuthRejection::unmet(state.config().clone(), &R::describe::<C>()));
        }
        if R::is_met::<C>(principal) {
            if P::NAME.is_some() {
                // Only routes that name a policy get here (`P::NAME` is a constant); the engine
                // (here, or in `PolicyChecked` for a deferred decision) records the outcome.
                let principal = principal.clone();
                let auth = state.clone();
                // Out of line: the engine's future (the input document, the decision) is
                // large, and this future is part of every guarded request's handler future —
                // inline, every guard would carry its size, policy or not.
                Box::pin(crate::engine::check::<C, R, P, S>(parts, s, &auth, &principal)).await?;
                return Ok(Guard {
                    principal,
                    _marker: PhantomData,
                });
            }
            crate::observe::decision_of(state.traced, "allowed");
            Ok(Guard {
                principal: principal.clone(),
                _marker: PhantomData,
            })
        } else {
            let requirement = R::describe::<C>();
            tracing::debug!(subject = %principal.subject(), %requirement, "request denied: requirement not met");
            crate::observe::decision_of(state.traced, "forbidden");
            Err(AuthRejection::unmet(state.config().clone(), &requirement))
        }
    }
}

/// Marks which credential a [`Via`] extractor demands.
pub trait CredentialKind: Send + Sync + 'static {
    /// The method.
    const METHOD: authz_core::AuthMethod;
}

/// A bearer JWT.
#[derive(Debug)]
pub struct Jwt;
/// An API key.
#[derive(Debug)]
pub struct ApiKey;

impl CredentialKind for Jwt {
    const METHOD: authz_core::AuthMethod = authz_core::AuthMethod::Jwt;
}
impl CredentialKind for ApiKey {
    const METHOD: authz_core::AuthMethod = authz_core::AuthMethod::ApiKey;
}

/// The principal, if it authenticated with credential kind `K` (else 403): for handlers that
/// must be reached by one kind only, e.g. key management only with a person's JWT.
pub struct Via<K>(pub authz_core::Principal, PhantomData<fn() -> K>);

impl<K> std::fmt::Debug for Via<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Via").field(&self.0).finish()
    }
}

impl<S: Send + Sync, K: CredentialKind> FromRequestParts<S> for Via<K> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        let principal = state.principal()?;
        if principal.auth_method() == K::METHOD {
            Ok(Via(principal.clone(), PhantomData))
        } else {
            Err(AuthRejection::Forbidden(
                state.config().clone(),
                format!(
                    "this resource requires authentication by {}; the caller used {}",
                    K::METHOD,
                    principal.auth_method()
                ),
            ))
        }
    }
}
