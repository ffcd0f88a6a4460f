//! A router that records, for every route, what it requires: the audit table behind
//! `GET /routes`, and a lint of the policy against it.
//!
//! ```ignore
//! let (router, table) = AuditedRouter::new()
//!     .public(Method::GET, "/healthz", healthz)
//!     .get("/datasets", list_datasets)        // its guard says: "data:read"
//!     .post("/models/{id}/run", run_model)    // "model:run"
//!     .into_parts();
//! for finding in table.lint(&policy) { eprintln!("{finding}"); }
//! ```

use std::fmt;

use authz_core::{Catalog, Policy, Requirement, RequirementExpr};
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::engine::PolicyRef;
use crate::extract::{Guard, Principal};

/// A handler whose first argument says what it requires: a [`Guard`] (added by the macros) or a
/// [`Principal`] (any authenticated caller). Implemented for every such async function.
pub trait Describe<Args> {
    /// The requirement.
    fn requirement() -> RequirementExpr;
    /// The policy the guard names (`policy = ".."`), if any.
    fn policy() -> Option<&'static str> {
        None
    }
}

macro_rules! describe {
    ($($t:ident),*) => {
        impl<F, Fut, C, R, P, $($t,)*> Describe<(Guard<C, R, P>, $($t,)*)> for F
        where
            F: FnOnce(Guard<C, R, P>, $($t,)*) -> Fut,
            C: Catalog,
            R: Requirement,
            P: PolicyRef,
        {
            fn requirement() -> RequirementExpr {
                R::describe::<C>()
            }
            fn policy() -> Option<&'static str> {
                P::NAME
            }
        }
        impl<F, Fut, $($t,)*> Describe<(Principal, $($t,)*)> for F
        where
            F: FnOnce(Principal, $($t,)*) -> Fut,
        {
            fn requirement() -> RequirementExpr {
                RequirementExpr::Authenticated
            }
        }
    };
}
describe!();
describe!(T1);
describe!(T1, T2);
describe!(T1, T2, T3);
describe!(T1, T2, T3, T4);
describe!(T1, T2, T3, T4, T5);
describe!(T1, T2, T3, T4, T5, T6);
describe!(T1, T2, T3, T4, T5, T6, T7);
describe!(T1, T2, T3, T4, T5, T6, T7, T8);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
describe!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);

/// One row of the audit table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// The HTTP method.
    pub method: Method,
    /// The route path, as registered.
    pub path: String,
    /// What the route requires.
    pub requirement: RequirementExpr,
    /// The policy its guard names (`policy = ".."`), asked after the requirement holds.
    pub policy: Option<String>,
}

/// Route → requirement, for every route registered through an [`AuditedRouter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    entries: Vec<RouteEntry>,
    checked_in_handlers: Vec<String>,
    dpop_required: Vec<(Method, String)>,
}

/// One row of [`RouteTable::matrix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixRow {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The requirement, as the route table prints it.
    pub requirement: String,
    /// Roles that satisfy it (`None`: public, or any authenticated caller).
    pub roles: Option<Vec<String>>,
}

/// A problem [`RouteTable::lint`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LintFinding {
    /// A declared permission that no route requires (dead weight in roles that grant it).
    UnusedPermission(String),
    /// A route whose requirement no single role of the policy meets.
    Unsatisfiable {
        /// The method.
        method: Method,
        /// The path.
        path: String,
        /// The requirement.
        requirement: String,
    },
}

impl fmt::Display for LintFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LintFinding::UnusedPermission(p) => {
                write!(f, "permission `{p}` is declared but no route requires it")
            }
            LintFinding::Unsatisfiable {
                method,
                path,
                requirement,
            } => {
                write!(
                    f,
                    "{method} {path} requires {requirement}, which no role of the policy satisfies"
                )
            }
        }
    }
}

impl RouteTable {
    /// The rows, in registration order.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// The permissions recorded with [`AuditedRouter::checked_in_handlers`].
    pub fn checked_in_handlers(&self) -> &[String] {
        &self.checked_in_handlers
    }

    /// Whether the route `method path` was marked with [`AuditedRouter::require_dpop`]: it
    /// accepts only DPoP-bound access tokens (its handler takes
    /// [`DpopBound`](crate::DpopBound)).
    pub fn requires_dpop(&self, method: &Method, path: &str) -> bool {
        self.dpop_required.iter().any(|(m, p)| m == method && p == path)
    }

    /// Every `(policy name, "METHOD path")` the routes name, in registration order.
    pub fn policies(&self) -> impl Iterator<Item = (&str, String)> + '_ {
        self.entries.iter().filter_map(|e| {
            e.policy
                .as_deref()
                .map(|p| (p, format!("{} {}", e.method, e.path)))
        })
    }

    /// Checks at start-up that `engine` has every policy a route names.
    ///
    /// # Errors
    /// Names each unknown policy, the route that requires it and the engine's policies, e.g.
    /// `unknown policy "deplyo" (required by POST /models/{id}/deploy); the rego engine has:
    /// deploy`. Routes naming a policy with no engine at all:
    /// `POST /models/{id}/deploy names the policy "deploy" but no policy engine is configured`.
    pub fn check_policies(
        &self,
        engine: Option<&dyn authz_core::engine::PolicyEngine>,
    ) -> Result<(), crate::ConfigError> {
        match engine {
            Some(engine) => {
                authz_core::engine::check_policies(engine, self.policies()).map_err(crate::ConfigError)
            }
            None => match self.policies().next() {
                None => Ok(()),
                Some((name, by)) => Err(crate::ConfigError(format!(
                    "{by} names the policy {name:?} but no policy engine is configured"
                ))),
            },
        }
    }

    /// Checks the policy against the routes: permissions that neither a route requires nor a
    /// handler checks itself ([`AuditedRouter::checked_in_handlers`]), and routes whose
    /// requirement no role can satisfy.
    pub fn lint(&self, policy: &Policy) -> Vec<LintFinding> {
        let mut findings = Vec::new();
        let required: std::collections::HashSet<&str> = self
            .entries
            .iter()
            .flat_map(|e| e.requirement.permissions())
            .chain(self.checked_in_handlers.iter().map(String::as_str))
            .collect();
        for p in policy.catalog().permissions() {
            if !required.contains(p.as_str()) {
                findings.push(LintFinding::UnusedPermission(p.to_string()));
            }
        }
        for e in &self.entries {
            if matches!(
                e.requirement,
                RequirementExpr::Public | RequirementExpr::Authenticated
            ) {
                continue;
            }
            if !policy
                .role_names()
                .any(|r| e.requirement.satisfied_by_role(policy, r))
            {
                findings.push(LintFinding::Unsatisfiable {
                    method: e.method.clone(),
                    path: e.path.clone(),
                    requirement: e.requirement.to_string(),
                });
            }
        }
        findings
    }

    /// Route × role: for every route, its requirement and the roles of `policy` that satisfy
    /// it on their own (with inheritance). `roles` is `None` for public routes and routes open
    /// to any authenticated caller.
    pub fn matrix(&self, policy: &Policy) -> Vec<MatrixRow> {
        self.entries
            .iter()
            .map(|e| MatrixRow {
                method: e.method.clone(),
                path: e.path.clone(),
                requirement: e.requirement.to_string(),
                roles: match e.requirement {
                    RequirementExpr::Public | RequirementExpr::Authenticated => None,
                    _ => Some(
                        policy
                            .role_names()
                            .filter(|r| e.requirement.satisfied_by_role(policy, r))
                            .map(str::to_string)
                            .collect(),
                    ),
                },
            })
            .collect()
    }

    /// [`matrix`](Self::matrix) as a Markdown table (`| method | path | requires | roles |`).
    pub fn matrix_markdown(&self, policy: &Policy) -> String {
        let mut out =
            String::from("| method | path | requires | roles that satisfy it |\n|---|---|---|---|\n");
        for row in self.matrix(policy) {
            let roles = match &row.roles {
                None if row.requirement == "public" => "anyone, no credential".to_string(),
                None => "any authenticated caller".to_string(),
                Some(r) if r.is_empty() => "**none**".to_string(),
                Some(r) => r.join(", "),
            };
            out.push_str(&format!(
                "| {} | `{}` | `{}` | {} |\n",
                row.method, row.path, row.requirement, roles
            ));
        }
        out
    }

    /// [`matrix`](Self::matrix) as JSON rows `{method, path, requires, roles}` (`roles` null
    /// for public and any-authenticated routes).
    pub fn matrix_json(&self, policy: &Policy) -> serde_json::Value {
        serde_json::Value::Array(
            self.matrix(policy)
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "method": r.method.as_str(),
                        "path": r.path,
                        "requires": r.requirement,
                        "roles": r.roles,
                    })
                })
                .collect(),
        )
    }

    /// The table as JSON rows `{method, path, requires}`, plus `policy` on routes that name one.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.entries
                .iter()
                .map(|e| {
                    let mut row = serde_json::json!({
                        "method": e.method.as_str(),
                        "path": e.path,
                        "requires": e.requirement.to_string(),
                    });
                    if let Some(p) = &e.policy {
                        row["policy"] = serde_json::json!(p);
                    }
                    row
                })
                .collect(),
        )
    }
}

/// An axum [`Router`] that records each route's requirement as it is added.
#[derive(Debug)]
pub struct AuditedRouter<S = ()> {
    router: Router<S>,
    table: RouteTable,
}

impl<S: Clone + Send + Sync + 'static> Default for AuditedRouter<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// The axum filter for `method`. axum routes only the nine standard methods; any other one
/// (`PURGE`, `PROPFIND`, ...) is refused here, at construction, as axum itself refuses invalid
/// routes: serving it as some other method would put the handler behind the wrong verb.
fn filter(method: &Method, path: &str) -> MethodFilter {
    MethodFilter::try_from(method.clone()).unwrap_or_else(|_| {
        panic!(
            "AuditedRouter: cannot route {method} {path}: axum routes only CONNECT, DELETE, GET, HEAD, \
             OPTIONS, PATCH, POST, PUT and TRACE"
        )
    })
}

impl<S: Clone + Send + Sync + 'static> AuditedRouter<S> {
    /// An empty router.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: RouteTable::default(),
        }
    }

    /// Adds a guarded (or `Principal`-taking) handler; its requirement is read from its type.
    ///
    /// # Panics
    ///
    /// If `method` is not one axum can route (an extension method such as `PURGE`), or if axum
    /// refuses the path (as [`Router::route`] does).
    pub fn route<H, T, D>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + Describe<D>,
        T: 'static,
    {
        let filter = filter(&method, path);
        self.table.entries.push(RouteEntry {
            method: method.clone(),
            path: path.to_string(),
            requirement: H::requirement(),
            policy: H::policy().map(str::to_string),
        });
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    /// Adds a handler that needs no authentication, recorded as public.
    ///
    /// # Panics
    ///
    /// As [`AuditedRouter::route`].
    pub fn public<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = filter(&method, path);
        self.table.entries.push(RouteEntry {
            method: method.clone(),
            path: path.to_string(),
            requirement: RequirementExpr::Public,
            policy: None,
        });
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    /// `route(Method::GET, ..)`.
    pub fn get<H, T, D>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + Describe<D>,
        T: 'static,
    {
        self.route(Method::GET, path, handler)
    }

    /// `route(Method::POST, ..)`.
    pub fn post<H, T, D>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + Describe<D>,
        T: 'static,
    {
        self.route(Method::POST, path, handler)
    }

    /// `route(Method::PUT, ..)`.
    pub fn put<H, T, D>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + Describe<D>,
        T: 'static,
    {
        self.route(Method::PUT, path, handler)
    }

    /// `route(Method::DELETE, ..)`.
    pub fn delete<H, T, D>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S> + Describe<D>,
        T: 'static,
    {
        self.route(Method::DELETE, path, handler)
    }

    /// Records permissions that handlers check themselves (resource-level checks such as
    /// "owner, or `report:read_any`"), so that the lint does not report them as unused.
    pub fn checked_in_handlers<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.table
            .checked_in_handlers
            .extend(permissions.into_iter().map(Into::into));
        self
    }

    /// Records that the route `method path`, already added, accepts only DPoP-bound access
    /// tokens with their proof (RFC 9449). The table cannot see it from the handler's type (the
    /// [`DpopBound`](crate::DpopBound) extractor is not the guard), so say it here, beside the
    /// route: the OpenAPI document (feature `openapi`) then lists only the `dpop` security
    /// scheme for it, and [`RouteTable::requires_dpop`] answers `true`. It changes nothing in
    /// how requests are handled: `DpopBound` does the refusing.
    ///
    /// # Panics
    ///
    /// If no route `method path` was added before (a typo would otherwise go unnoticed).
    pub fn require_dpop(mut self, method: Method, path: &str) -> Self {
        assert!(
            self.table
                .entries
                .iter()
                .any(|e| e.method == method && e.path == path),
            "AuditedRouter::require_dpop: no route {method} {path} was added"
        );
        if !self.table.requires_dpop(&method, path) {
            self.table.dpop_required.push((method, path.to_string()));
        }
        self
    }

    /// The table recorded so far.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// The router and the table.
    pub fn into_parts(self) -> (Router<S>, RouteTable) {
        (self.router, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    #[test]
    fn require_dpop_marks_one_route() {
        let (_, table) = AuditedRouter::<()>::new()
            .public(Method::POST, "/a/{id}", || async {})
            .public(Method::GET, "/a/{id}", || async {})
            .require_dpop(Method::POST, "/a/{id}")
            .into_parts();
        assert!(table.requires_dpop(&Method::POST, "/a/{id}"));
        assert!(!table.requires_dpop(&Method::GET, "/a/{id}"));
    }

    #[test]
    #[should_panic(expected = "no route POST /b was added")]
    fn require_dpop_on_an_unknown_route_panics() {
        let _ = AuditedRouter::<()>::new()
            .public(Method::POST, "/a", || async {})
            .require_dpop(Method::POST, "/b");
    }

    #[test]
    #[should_panic(expected = "cannot route PURGE /cache")]
    fn an_extension_method_is_refused_not_served_as_get() {
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let _ = AuditedRouter::<()>::new().public(purge, "/cache", || async {});
    }

    #[tokio::test]
    async fn every_method_axum_routes_is_routed_as_itself() {
        for method in [
            Method::CONNECT,
            Method::DELETE,
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PATCH,
            Method::POST,
            Method::PUT,
            Method::TRACE,
        ] {
            let (router, table) = AuditedRouter::<()>::new()
                .public(method.clone(), "/x", || async { "ok" })
                .into_parts();
            assert_eq!(table.entries()[0].method, method);
            let other = if method == Method::PUT {
                Method::POST
            } else {
                Method::PUT
            };
            for (m, expected) in [
                (method.clone(), StatusCode::OK),
                (other, StatusCode::METHOD_NOT_ALLOWED),
            ] {
                let req = Request::builder()
                    .method(m.clone())
                    .uri("/x")
                    .body(Body::empty())
                    .unwrap();
                let status = router.clone().oneshot(req).await.unwrap().status();
                assert_eq!(status, expected, "route {method}, request {m}");
            }
        }
    }
}
