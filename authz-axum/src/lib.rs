//! # authz-axum
//!
//! Authentication and authorization for axum handlers, declared where it is read:
//!
//! ```
//! use authz_axum::prelude::*;
//! use axum::extract::Path;
//!
//! authz_axum::catalog! {
//!     /// Every permission this service knows.
//!     pub struct Catalog {
//!         permissions: ["data:read", "data:write", "model:run"],
//!         roles: ["admin"],
//!     }
//! }
//!
//! #[require_permission("model:run")]
//! async fn run_model(Path(id): Path<String>) -> String {
//!     format!("running {id}")
//! }
//!
//! #[require_permission(any("data:write", all("data:read", not("model:run"))))]
//! async fn odd_rule() {}
//!
//! #[require_role("admin")]
//! #[require_permission("data:write")] // stacked attributes all apply (AND)
//! async fn admin_write(principal: Principal) -> String {
//!     principal.subject().to_string()
//! }
//! # fn main() {}
//! ```
//!
//! Permission and role literals are checked against the catalog **at compile time**:
//!
//! ```compile_fail
//! use authz_axum::prelude::*;
//! authz_axum::catalog! { pub struct Catalog { permissions: ["model:run"] } }
//!
//! #[require_permission("model:runn")] // error: unknown permission "model:runn" … did you mean "model:run"?
//! async fn run_model() {}
//! # fn main() {}
//! ```
//!
//! ## What the macro generates
//!
//! `#[require_permission("model:run")] async fn run_model(Path(id): Path<String>)` becomes
//!
//! ```text
//! async fn run_model(
//!     _: ::authz_axum::__private::Guard<Catalog,
//!            ::authz_axum::__private::Perm<{ /* index of "model:run" in Catalog */ }>>,
//!     Path(id): Path<String>,
//! )
//! ```
//!
//! One guard argument is added **in first position**, so authorization happens during
//! extraction, before any other extractor runs and before the request body is read. The return
//! type is untouched (`impl IntoResponse`, `Result<_, _>` work). Several attributes on one
//! handler are merged into one guard that requires all of them. Options:
//! `catalog = path::to::Catalog` (default: `Catalog`, whatever that name means where the handler
//! is: `use crate::auth::Catalog;` is enough) and `crate = path` (default `::authz_axum`). The
//! catalog must be declared in the same crate as the handlers.
//! With axum's `#[debug_handler]`, put the authz attribute **first** (above it): axum's macro
//! re-emits the handler inside its own checks and calls it with the original arity.
//!
//! ## Wiring it into a service
//!
//! A policy, an issuer (here Keycloak, keys by OpenID Connect discovery), the authenticator,
//! the layer, and the production server:
//!
//! ```no_run
//! use std::sync::Arc;
//! use authz_axum::core::jwt::{Algorithm, Provider};
//! use authz_axum::core::{Catalog as _, Policy};
//! use authz_axum::jwks::{JwksOptions, RemoteJwks};
//! use authz_axum::prelude::*;
//! use authz_axum::{Authenticator, Issuer};
//!
//! authz_axum::catalog! { pub struct Catalog { permissions: ["model:run"] } }
//!
//! #[require_permission("model:run")]
//! async fn run_model() -> &'static str { "running\n" }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Arc::new(Catalog::catalog().clone());
//! let policy = Arc::new(Policy::from_toml_str("[roles.analyst]\ngrants = [\"model:run\"]\n", catalog, None)?);
//! let (iss, aud, algs) = ("https://kc.example.com/realms/main", "api.example.com", [Algorithm::RS256]);
//! let keys = RemoteJwks::discover(iss, algs.into_iter().collect(), JwksOptions::default()).await?;
//! keys.start().await?;
//! let issuer = Issuer::new(Provider::Keycloak.verifier(iss, aud, algs).build()?, keys)
//!     .with_mapping(Provider::Keycloak.mapping(&[aud.to_string()])?);
//! let auth = Arc::new(Authenticator::builder(policy).issuer(issuer).build()?);
//! let app = axum::Router::new()
//!     .route("/models/{id}/run", axum::routing::post(run_model))
//!     .layer(AuthLayer::new(auth));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! authz_axum::serve::serve(listener, app, Default::default(), authz_axum::serve::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! Static keys instead: `Issuer::new(verifier, StaticKeys::new(KeySet::from_jwks(..)?))`; API
//! keys: `Authenticator::builder(policy).api_keys(ApiKeys::new(..))`; several issuers: one
//! `.issuer(..)` each.
//!
//! ## Runtime
//!
//! - [`AuthLayer`] runs the one authentication pipeline, [`Authenticator`] (from
//!   `authz-core`), once per request (bearer credential from the `Authorization` header only)
//!   and leaves the outcome for the extractors.
//! - [`Principal`] and the guards answer 400 (`error="invalid_request"`: a malformed or
//!   repeated header), 401 (`WWW-Authenticate: Bearer realm=.., error="invalid_token"`; no
//!   error code for a missing credential or another scheme), 403 (`error="insufficient_scope"`)
//!   or 503 (key source down), with `application/problem+json` bodies that never echo the
//!   credential ([`rejection`]).
//! - [`jwks::RemoteJwks`] (feature `remote`, on by default) fetches and caches a provider's
//!   keys; [`cors::CorsPolicy`] builds CORS that cannot be made permissive by accident;
//!   [`routing::AuditedRouter`] records the route → requirement table.
//! - [`token_source::ClientCredentials`] (feature `remote`) is the outgoing half: an OAuth 2.0
//!   client-credentials token, cached and refreshed single-flight, for calls to other services
//!   (a reqwest helper and a tower layer).
//! - `openapi` (feature `openapi`) turns the route table into an OpenAPI 3.1 document
//!   (utoipa): security schemes, and per operation the security requirement and the
//!   permissions and roles the macros declared (`x-required-permissions`, `x-required-roles`).
//! - [`resource`]: `#[authorize(..)]` and `#[derive(Resource)]`, resource-level rules (owner,
//!   tenant isolation, two-person rules, custom predicates) on a resource loaded by
//!   [`resource::Load`]; a resource the caller may not see is answered like a missing one.
//! - [`engine`]: policy engines (embedded Rego, Cedar, OPA over HTTP; features `rego`,
//!   `cedar`, `opa`) asked by guards that name a policy,
//!   `#[require_permission("model:deploy", policy = "deploy")]`, after the permission check.
//! - [`ApiKeys`] adds API keys as a second credential feeding the same `Principal`; with the
//!   `sqlx` feature, `sql` stores them in SQLite or PostgreSQL.
//!
//! Features: `remote` (default; remote JWKS, OIDC discovery and the token source, pulls in
//! reqwest and rustls),
//! `sqlx` (SQL key stores), `token-service` (the authorization server), `openapi` (utoipa),
//! `metrics` (counters and histograms through the `metrics` facade, see [`observe`]),
//! `rego`, `cedar`, `opa` (the policy engines of [`engine`]).
//! `default-features = false` compiles no HTTP client, TLS stack or
//! SQL driver: static keys and in-memory API keys only.

pub mod cors;
pub mod engine;
pub mod extract;
pub mod layer;
#[cfg(feature = "token-service")]
pub mod oauth;
pub mod observe;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod rejection;
pub mod resource;
pub mod routing;
pub mod serve;
#[cfg(feature = "remote")]
pub mod setup;
#[cfg(feature = "sqlx")]
pub mod sql;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod throttle;
#[cfg(feature = "remote")]
pub mod token_source;

/// The framework-independent core (permission model, policy, the authentication pipeline).
pub use authz_core as core;

/// Remote key sources (a JWKS URL, OIDC discovery): `authz_core::jwks`.
#[cfg(feature = "remote")]
pub use authz_core::jwks;

#[doc(inline)]
pub use authz_core::auth::{ApiKeys, AuthError, Authenticator, Issuer, StaticKeys};
#[doc(inline)]
pub use authz_macros::{
    Resource, authorize, catalog, require_any_permission, require_permission, require_role,
};
#[doc(inline)]
pub use extract::{ApiKey, DpopBound, Guard, Jwt, Principal, Via};
#[doc(inline)]
pub use layer::{AuthLayer, AuthService, BearerError, DpopSettings, TokenScheme, access_token, bearer_token};
#[doc(inline)]
pub use rejection::{AuthRejection, RejectionConfig, RejectionInfo};
#[doc(inline)]
pub use routing::{AuditedRouter, MatrixRow, RouteTable};

/// A configuration value that would be unsafe or cannot work; the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Marks `Authorization`, `Cookie`, `Set-Cookie`, `Proxy-Authorization` and `DPoP` sensitive for every
/// layer below (tower-http), so tracing and logging layers print them as `Sensitive`.
pub fn sensitive_headers_layer() -> tower_http::sensitive_headers::SetSensitiveHeadersLayer {
    use axum::http::header;
    tower_http::sensitive_headers::SetSensitiveHeadersLayer::new([
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::SET_COOKIE,
        axum::http::HeaderName::from_static("dpop"),
    ])
}

/// The names every handler file needs.
pub mod prelude {
    pub use crate::resource::Authorized;
    pub use crate::{
        AuthLayer, Principal, authorize, catalog, require_any_permission, require_permission, require_role,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::engine::{NoPolicy, PolicyRef, assert_policy_checked};
    pub use crate::extract::Guard;
    pub use crate::resource::Checked;
    pub use authz_core::Principal as CorePrincipal;
    pub use authz_core::requirement::{All, AnyOf, Authenticated, Not, Perm, Role};
    pub use authz_core::resource::{
        Owned, Party, Resource, ResourceRule, attributes as resource_attributes, is_owner, is_party,
        same_tenant,
    };
    pub use authz_core::{Catalog, PermissionCatalog, PermissionId};
    pub use authz_macros::{__unknown_permission as unknown_permission, __unknown_role as unknown_role};
    pub use serde_json::Value as JsonValue;
}
