//! Resource-level authorization on the handler: load the resource the path names, check the
//! handler's rule (owner, tenant, two-person rule, custom predicate), hand the handler the
//! loaded resource.
//!
//! ```
//! use authz_axum::prelude::*;
//! use authz_axum::resource::{Authorized, Load};
//! use axum::Json;
//!
//! authz_axum::catalog! {
//!     pub struct Catalog { permissions: ["report:read", "report:read_any"] }
//! }
//!
//! #[derive(Clone, serde::Serialize, authz_axum::Resource)]
//! #[resource(type = "report", owner = owner, tenant = tenant)]
//! struct Report { id: u64, owner: String, tenant: String, title: String }
//!
//! #[derive(Clone)]
//! struct AppState { /* a database pool */ }
//!
//! impl Load<AppState> for Report {
//!     type Id = u64; // from the route's one path parameter, `/reports/{id}`
//!     type Error = std::convert::Infallible; // a store error is answered with 503
//!     async fn load(_: &AppState, id: u64, _: &authz_axum::core::Principal)
//!         -> Result<Option<Self>, Self::Error> {
//!         Ok(None) // SELECT … WHERE id = $1
//!     }
//! }
//!
//! /// The owner, or anyone holding `report:read_any`; anyone else — and anyone in another
//! /// tenant — gets the same 404 as for a report that does not exist.
//! #[require_permission("report:read")]
//! #[authorize(visible = owner_or("report:read_any"))]
//! async fn get_report(Authorized(report): Authorized<Report>) -> Json<Report> {
//!     Json(report)
//! }
//! # fn main() {}
//! ```
//!
//! The order of decisions, for every route with `#[authorize]`:
//!
//! 1. authentication (401) and the handler's permission guard (403), as everywhere; then the
//!    extractors written before the `Authorized<T>` argument (a body extractor is always last,
//!    so the body is never read before the check);
//! 2. the path parameters are read as [`Load::Id`]; an id that does not parse is a **404**;
//! 3. [`Load::load`]: `Ok(None)` is a **404**, `Err` a **503** (the error is logged);
//! 4. [`authz_core::resource::decide`]: another tenant (a type that declares one) or not
//!    `visible` is the **same 404**; not `allow`ed is a **403** (`insufficient_scope`), or the
//!    same 404 on a route with `deny = not_found`;
//! 5. the handler runs with the resource (no second load).
//!
//! Every 404 from these steps is one response, byte for byte ([`AuthRejection::NotFound`]).

use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub use authz_core::resource::{Decision, Owned, Party, Reason, Resource, ResourceRule, decide};

use crate::layer::AuthState;
use crate::rejection::AuthRejection;

/// How to load a resource type from the application's store, by the route's path parameters.
///
/// `S` is the router's state (what `State<S>` extracts).
pub trait Load<S: Send + Sync>: Resource + Sized {
    /// The path parameters that name one resource, deserialized like axum's
    /// [`Path`]: one value for `/reports/{id}` (`Uuid`, `u64`, `String`, …), a tuple or a
    /// struct for several. A value that does not deserialize is answered with the 404 of a
    /// missing resource.
    type Id: DeserializeOwned + Send;
    /// The store's error: logged (never sent), answered with 503.
    type Error: std::fmt::Display + Send;

    /// The resource `id` names, or `None`. `principal` is the authenticated caller, for a
    /// store that wants to narrow its query (e.g. by tenant) as a second line of defence; the
    /// decision itself is the handler's rule.
    fn load(
        state: &S,
        id: Self::Id,
        principal: &authz_core::Principal,
    ) -> impl Future<Output = Result<Option<Self>, Self::Error>> + Send;
}

/// The loaded resource that passed the handler's rule: the parameter `#[authorize]` fills.
/// Using it without `#[authorize]` on the handler does not compile (it is not an extractor).
#[derive(Debug, Clone)]
pub struct Authorized<R>(pub R);

impl<R> Authorized<R> {
    /// The resource.
    pub fn into_inner(self) -> R {
        self.0
    }
}

impl<R> Deref for Authorized<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.0
    }
}

impl<R> DerefMut for Authorized<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.0
    }
}

/// The extractor `#[authorize]` puts in place of the handler's `Authorized<R>` argument: loads
/// `R` and applies `Rule` (see the module docs for the order). Not meant to be named by hand.
pub struct Checked<R, Rule> {
    resource: R,
    _rule: PhantomData<fn() -> Rule>,
}

impl<R, Rule> Checked<R, Rule> {
    /// What the handler receives.
    pub fn into_authorized(self) -> Authorized<R> {
        Authorized(self.resource)
    }
}

impl<R, Rule> std::fmt::Debug for Checked<R, Rule> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked").finish_non_exhaustive()
    }
}

impl<S, R, Rule> FromRequestParts<S> for Checked<R, Rule>
where
    S: Send + Sync,
    R: Load<S>,
    Rule: ResourceRule<R>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<AuthState>()
            .ok_or(AuthRejection::LayerMissing)?;
        let config = auth.config().clone();
        let principal = auth.principal()?.clone();
        let id = match Path::<R::Id>::from_request_parts(parts, state).await {
            Ok(Path(id)) => id,
            Err(PathRejection::MissingPathParams(_)) => {
                tracing::error!(
                    resource = R::TYPE,
                    "authz: the route has no path parameter to load this resource by; answering 404"
                );
                return Err(AuthRejection::NotFound(config));
            }
            Err(_) => return Err(AuthRejection::NotFound(config)),
        };
        let resource = match R::load(state, id, &principal).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(AuthRejection::NotFound(config)),
            Err(e) => {
                tracing::warn!(resource = R::TYPE, error = %e, "resource store unavailable");
                return Err(AuthRejection::StoreUnavailable(config));
            }
        };
        match decide::<R, Rule>(&principal, &resource) {
            (Decision::Allow, _) => {
                // A policy named on the handler decides now, with the resource's attributes
                // (or later, with the body's facts too, in `PolicyChecked`).
                crate::engine::resource_loaded(parts, &config, R::TYPE, || resource.attributes()).await?;
                crate::observe::decision("allowed");
                Ok(Checked {
                    resource,
                    _rule: PhantomData,
                })
            }
            (decision, reason) => {
                tracing::debug!(
                    subject = %principal.subject(),
                    resource = R::TYPE,
                    rule = Rule::describe(),
                    ?reason,
                    "resource access denied"
                );
                if reason == Reason::CatalogMismatch {
                    tracing::error!(
                        "authz: the principal's permissions were resolved with another catalog than the \
                         one this rule was compiled against; denying"
                    );
                }
                crate::observe::decision("forbidden");
                Err(match decision {
                    Decision::Forbidden => AuthRejection::Forbidden(config, Rule::REASON.into()),
                    _ => AuthRejection::NotFound(config),
                })
            }
        }
    }
}
