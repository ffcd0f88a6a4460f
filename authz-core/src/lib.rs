//! # authz-core
//!
//! The framework-independent heart of **authz**: the permission model, roles and policy, the
//! verified [`Principal`], and JWT verification. No web framework and no async runtime needed.
//!
//! ```
//! use std::sync::Arc;
//! use authz_core::{PermissionCatalog, Policy, Principal, RoleSpec};
//!
//! // Normally generated at compile time by `authz_axum::catalog!`.
//! let catalog = Arc::new(PermissionCatalog::new(["data:read", "data:write", "model:run"])?);
//! let policy = Policy::builder(catalog.clone())
//!     .role(RoleSpec::new("viewer").grant("data:read"))
//!     .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
//!     .role(RoleSpec::new("admin").inherits("analyst").grant("data:*"))
//!     .build()?;
//!
//! let alice = Principal::for_testing("alice", ["analyst"], &policy);
//! let run = catalog.id("model:run").unwrap();
//! let write = catalog.id("data:write").unwrap();
//! assert!(alice.can(run));          // one bit test
//! assert!(!alice.can(write));
//! assert_eq!(policy.explain(alice.roles(), "data:read").to_string(),
//!            "`data:read` granted via analyst → viewer");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces:
//! - [`Permission`] and the [`grammar`]: `resource:action`, one parser for run time and compile time.
//! - [`PermissionCatalog`] / [`Catalog`]: dense indices, so a [`PermissionSet`] is a bitset.
//! - [`Policy`]: roles with inheritance, `resource:*` grants, separation of duties, least-privilege
//!   reports, from code or a TOML file.
//! - [`Principal`]: the verified caller.
//! - [`jwt`]: a verifier that enforces the whole JWT validation checklist by construction,
//!   key sets as robust as real identity providers need, claim mapping and provider presets.
//! - [`auth`]: **the one authentication pipeline** — bearer JWT (from one or several isolated
//!   issuers) or API key in, [`Principal`] out — with the [`auth::KeyProvider`] seam.
//! - `jwks` (feature `remote`): keys from a JWKS URL or OpenID Connect discovery.
//! - [`apikey`] and [`keystore`]: API keys that feed the same `Principal`, stored only as hashes.
//! - [`resource`]: resource-level checks (owner, tenant, two-person rules) on a loaded resource.
//! - [`clock`]: the one injectable clock every expiry decision reads.
//! - [`engine`]: the policy-engine seam (embedded Rego, Cedar, OPA over HTTP) for the rules a
//!   permission bit cannot express, asked only after the permission check passed.
//!
//! Features: `remote` (remote JWKS and discovery: reqwest with rustls, tokio), `tokio` (the
//! API-key `last_used_at` flusher), `rego`, `cedar` and `opa` (the policy engines of
//! [`engine`]). With neither, nothing async-runtime-, HTTP- or TLS-related
//! is compiled.

pub mod apikey;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod dpop;
pub mod engine;
pub mod grammar;
#[cfg(feature = "remote")]
pub mod jwks;
pub mod jwt;
pub mod keystore;
pub mod oauth;
pub mod permission;
pub mod policy;
pub mod principal;
pub mod requirement;
pub mod resource;
pub mod revocation;
pub mod set;

#[doc(inline)]
pub use catalog::{Catalog, CatalogError, PermissionCatalog, PermissionId};
#[doc(inline)]
pub use permission::{Grant, Permission, PermissionError};
#[doc(inline)]
pub use policy::{
    Constraint, Explanation, Policy, PolicyBuilder, PolicyError, Redundancy, Resolution, RoleSpec,
};
#[doc(inline)]
pub use principal::{AuthMethod, Principal, TokenFacts};
#[doc(inline)]
pub use requirement::{Requirement, RequirementExpr};
#[doc(inline)]
pub use set::PermissionSet;
