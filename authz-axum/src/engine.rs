//! Policy engines on handlers: `#[require_permission("model:deploy", policy = "deploy")]`.
//!
//! The guard first checks the permission (a bit test: no permission, 403 and the engine is never
//! asked), then asks the policy engine installed on the layer ([`AuthLayer::policy_engine`])
//! to decide the named policy for the request's [`Input`] document. Denied — or the engine
//! failed, timed out, or is not installed — is the same 403 `insufficient_scope` as a missing
//! permission; the engine's reasons go to the decision log (target `authz::decision`), never to
//! the client.
//!
//! **Facts from the body.** The guard runs before the body is read. When a rule needs a fact
//! from the body (the deploy environment), take the body through [`PolicyChecked`]: the guard
//! then leaves the decision to it, and it reads the body, puts what the body type's
//! [`PolicyContext`] selects into the input's `context`, and asks the engine before the handler
//! runs. The macro sees the `PolicyChecked` argument and wires the two together; there is no way
//! to reach the handler without a decision. An extractor that loads the resource between the two
//! can insert [`ResourceAttributes`] into the request's extensions: they become the input's
//! `resource.attributes` (the guard alone only knows the resource's type and id).
//!
//! ```
//! use authz_axum::engine::{PolicyChecked, PolicyContext};
//! use authz_axum::prelude::*;
//! use axum::Json;
//!
//! authz_axum::catalog! { pub struct Catalog { permissions: ["model:deploy"] } }
//!
//! #[derive(serde::Deserialize)]
//! pub struct Deploy { environment: String }
//!
//! impl PolicyContext for Deploy {
//!     fn policy_context(&self) -> serde_json::Value {
//!         serde_json::json!({ "environment": self.environment })
//!     }
//! }
//!
//! #[require_permission("model:deploy", policy = "deploy")]
//! pub async fn deploy(PolicyChecked(Json(body)): PolicyChecked<Json<Deploy>>) -> String {
//!     format!("deploying to {}", body.environment)
//! }
//! # fn main() {}
//! ```
//!
//! At start-up, [`RouteTable::check_policies`](crate::RouteTable::check_policies) refuses an
//! engine that lacks a policy some route names.
//!
//! [`AuthLayer::policy_engine`]: crate::AuthLayer::policy_engine

use std::collections::BTreeMap;
use std::sync::Arc;

use authz_core::clock::Clock;
use authz_core::{Catalog, Requirement, RequirementExpr};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

#[cfg(feature = "cedar")]
#[doc(inline)]
pub use authz_core::engine::cedar;
#[cfg(feature = "opa")]
#[doc(inline)]
pub use authz_core::engine::opa;
#[cfg(feature = "rego")]
#[doc(inline)]
pub use authz_core::engine::rego;
#[doc(inline)]
pub use authz_core::engine::{
    CacheConfig, CacheKey, Cached, Decision, Input, LoadError, Pending, PolicyEngine, PrincipalInput,
    RequestInput, ResourceInput, check_policies,
};

use crate::layer::AuthState;
use crate::rejection::AuthRejection;

/// The policy a guard names (implemented by the macros for a generated marker type; `NoPolicy`
/// when the attribute names none).
pub trait PolicyRef: Send + Sync + 'static {
    /// The policy's name, `None` for no policy.
    const NAME: Option<&'static str>;
    /// Whether the handler takes its body through [`PolicyChecked`], which then decides.
    const DEFERRED: bool;
    /// Whether the handler loads a resource (`#[authorize]`, `Authorized<T>`): the decision
    /// waits for it, so the input carries its attributes (decided right after the resource
    /// check, or by [`PolicyChecked`] when the handler also takes one).
    const AFTER_RESOURCE: bool = false;
}

/// No policy: the guard checks only the requirement.
#[derive(Debug)]
pub struct NoPolicy;

impl PolicyRef for NoPolicy {
    const NAME: Option<&'static str> = None;
    const DEFERRED: bool = false;
}

/// The engine and the clock, as the layer hands them to guards.
#[derive(Clone)]
pub(crate) struct PolicyHandle {
    pub(crate) engine: Arc<dyn PolicyEngine>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHandle")
            .field("engine", &self.engine.kind())
            .finish_non_exhaustive()
    }
}

/// The decision a guard left to the resource check or to [`PolicyChecked`].
#[derive(Clone)]
pub(crate) struct PendingPolicy {
    name: &'static str,
    input: Input,
    handle: Arc<PolicyHandle>,
    /// A [`PolicyChecked`] argument decides (with the body's facts).
    body: bool,
}

/// Called by the resource check (`#[authorize]`) once the resource passed its rule: a pending
/// policy decision gets the resource's type and attributes, and is taken now unless a
/// [`PolicyChecked`] body decides later. Nothing to do (no allocation) on a route without a
/// policy.
pub(crate) async fn resource_loaded(
    parts: &mut Parts,
    config: &Arc<crate::rejection::RejectionConfig>,
    kind: &str,
    attributes: impl FnOnce() -> serde_json::Value,
) -> Result<(), AuthRejection> {
    let Some(pending) = parts.extensions.get_mut::<PendingPolicy>() else {
        return Ok(());
    };
    let id = pending.input.request.params.get("id").cloned();
    let resource = pending.input.resource.get_or_insert_with(|| ResourceInput {
        kind: kind.to_string(),
        id,
        attributes: serde_json::Value::Null,
    });
    resource.kind = kind.to_string();
    resource.attributes = attributes();
    if pending.body {
        return Ok(());
    }
    let pending = parts.extensions.remove::<PendingPolicy>().expect("present");
    if decide(&pending.handle, pending.name, &pending.input).await {
        Ok(())
    } else {
        Err(denied_with(config.clone()))
    }
}

/// The action and resource type a requirement names (one permission: itself and its resource
/// part; an expression: its printed form and no resource).
fn action_of(requirement: &RequirementExpr) -> (String, Option<String>) {
    match requirement {
        RequirementExpr::Permission(p) => (p.clone(), p.split(':').next().map(str::to_string)),
        other => (other.to_string(), None),
    }
}

/// Builds the input document for a request that passed the permission check of `R`.
async fn input_of<C: Catalog, R: Requirement, S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    principal: &authz_core::Principal,
    clock: &dyn Clock,
) -> Input {
    let (action, resource_type) = action_of(&R::describe::<C>());
    let params: BTreeMap<String, String> = match RawPathParams::from_request_parts(parts, state).await {
        Ok(raw) => raw.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        Err(_) => BTreeMap::new(),
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    Input {
        principal: PrincipalInput::shared::<C>(principal),
        resource: resource_type.map(|kind| ResourceInput {
            kind,
            id: params.get("id").cloned(),
            attributes: serde_json::Value::Null,
        }),
        action,
        request: RequestInput {
            method: parts.method.as_str().to_string(),
            route,
            params,
            time: clock.unix_seconds(),
        },
        context: serde_json::Value::Null,
    }
}

/// Asks the engine and writes the decision log line; `true` only for an allow.
async fn decide(handle: &PolicyHandle, name: &str, input: &Input) -> bool {
    let decision = handle.engine.decide(name, input).await;
    let reasons = decision.reasons.join("; ");
    let decision_id = decision.decision_id.as_deref().unwrap_or("");
    let verdict = if decision.allowed { "allow" } else { "deny" };
    tracing::info!(
        target: "authz::decision",
        engine = handle.engine.kind(),
        policy = name,
        decision = verdict,
        failed = decision.failed,
        decision_id,
        reasons = %reasons,
        subject = %input.principal.subject,
        action = %input.action,
        route = %input.request.route,
        "policy decision"
    );
    if decision.failed {
        tracing::warn!(engine = handle.engine.kind(), policy = name, reasons = %reasons, "policy engine could not decide; denied");
    }
    tracing::Span::current().record("decision", verdict);
    crate::observe::decision(if decision.allowed { "allowed" } else { "forbidden" });
    decision.allowed
}

fn denied(state: &AuthState) -> AuthRejection {
    denied_with(state.config().clone())
}

fn denied_with(config: Arc<crate::rejection::RejectionConfig>) -> AuthRejection {
    AuthRejection::Forbidden(
        config,
        "the request is not allowed by this resource's policy".into(),
    )
}

/// The policy half of the guard: called once the requirement holds.
pub(crate) async fn check<C: Catalog, R: Requirement, P: PolicyRef, S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    auth: &AuthState,
    principal: &authz_core::Principal,
) -> Result<(), AuthRejection> {
    let Some(name) = P::NAME else {
        return Ok(());
    };
    let Some(handle) = auth.policy().cloned() else {
        tracing::error!(
            policy = name,
            "authz: this route names a policy but no policy engine is installed: denying. Add one with \
             AuthLayer::policy_engine."
        );
        return Err(denied(auth));
    };
    let input = input_of::<C, R, S>(parts, state, principal, &*handle.clock).await;
    if P::DEFERRED || P::AFTER_RESOURCE {
        parts.extensions.insert(PendingPolicy {
            name,
            input,
            handle,
            body: P::DEFERRED,
        });
        return Ok(());
    }
    if decide(&handle, name, &input).await {
        Ok(())
    } else {
        Err(denied(auth))
    }
}

/// A loaded resource's attributes for a deferred decision: an extractor that loads the resource
/// (after the guard, before [`PolicyChecked`]) inserts this into the request's extensions, and
/// [`PolicyChecked`] puts it into the input's `resource.attributes` (e.g. `{"owner": "alice"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceAttributes(pub serde_json::Value);

/// What a body type contributes to the policy input's `context`: a small object of the facts a
/// rule needs (e.g. `{"environment": "staging"}`), never the whole body by default.
pub trait PolicyContext {
    /// The facts, as JSON (an object, by convention).
    fn policy_context(&self) -> serde_json::Value;
}

/// A JSON body contributes what its type contributes.
impl<T: PolicyContext> PolicyContext for axum::Json<T> {
    fn policy_context(&self) -> serde_json::Value {
        self.0.policy_context()
    }
}

/// A form body contributes what its type contributes.
impl<T: PolicyContext> PolicyContext for axum::Form<T> {
    fn policy_context(&self) -> serde_json::Value {
        self.0.policy_context()
    }
}

/// The body extractor `E`, taken only after the route's declared policy allowed the request with
/// `E`'s [`PolicyContext`] in the input. Use it as the handler's last argument, on a route whose
/// `#[require_permission(.., policy = "..")]` names the policy.
///
/// Rejections: `E`'s own (a malformed body, as a response) before any decision; 403
/// `insufficient_scope` when the policy denies or the engine fails; 403 as well when the route's
/// guard declared no policy (a wiring mistake, logged).
#[derive(Debug, Clone)]
pub struct PolicyChecked<E>(pub E);

impl<S, E> FromRequest<S> for PolicyChecked<E>
where
    S: Send + Sync,
    E: FromRequest<S> + PolicyContext + Send,
{
    type Rejection = Response;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pending = req.extensions_mut().remove::<PendingPolicy>();
        if let (Some(p), Some(ResourceAttributes(attributes))) = (
            pending.as_mut(),
            req.extensions_mut().remove::<ResourceAttributes>(),
        ) && let Some(resource) = p.input.resource.as_mut()
        {
            resource.attributes = attributes;
        }
        let auth = req.extensions().get::<AuthState>().cloned();
        let Some(auth) = auth else {
            return Err(AuthRejection::LayerMissing.into_response());
        };
        let Some(mut pending) = pending else {
            tracing::error!(
                "authz: PolicyChecked on a route whose guard names no policy: denying. Add `policy = \"..\"` \
                 to the handler's #[require_permission]."
            );
            return Err(denied(&auth).into_response());
        };
        let body = E::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        pending.input.context = body.policy_context();
        if decide(&pending.handle, pending.name, &pending.input).await {
            Ok(PolicyChecked(body))
        } else {
            Err(denied(&auth).into_response())
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Implemented only by [`PolicyChecked`]: the macros check with it that the argument they saw
/// is this crate's extractor.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `authz_axum::engine::PolicyChecked`",
    label = "a handler that names a policy leaves the decision to an argument named `PolicyChecked` only if it is authz's extractor",
    note = "use `authz_axum::engine::PolicyChecked<E>`, or rename this type"
)]
pub trait IsPolicyChecked: sealed::Sealed {}
impl<E> sealed::Sealed for PolicyChecked<E> {}
impl<E> IsPolicyChecked for PolicyChecked<E> {}

#[doc(hidden)]
pub fn assert_policy_checked<T: IsPolicyChecked>() {}
