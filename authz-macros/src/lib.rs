//! Attribute macros for **authz**. Use them through `authz-axum`, which re-exports them:
//! generated code names only `::authz_axum::__private` (override with `crate = path`).
//!
//! - [`macro@catalog`]: declares the application's permission catalog (and, optionally, roles).
//! - [`macro@require_permission`], [`macro@require_any_permission`], [`macro@require_role`]:
//!   guard an axum handler; every permission and role literal is checked against the catalog at
//!   compile time.
//!
//! - [`macro@authorize`] and [`derive@Resource`]: a resource-level rule (owner, tenant,
//!   two-person rule, custom predicate) on a resource the handler receives loaded.
//!
//! See the `authz-axum` crate docs for the expansion and examples.

mod args;
mod ast;
mod attr;
mod catalog;
mod expand;
mod expr;
// A byte-identical copy of `authz-core/src/grammar.rs` (a package may not include files from
// outside itself); `tests/tests/it/grammar_copy.rs` checks that the two never drift apart.
#[allow(dead_code, unreachable_pub)]
mod grammar;
mod resource;
mod rule;
mod suggest;

use proc_macro::TokenStream;

/// Declares the permission catalog: every permission the application knows, at compile time.
///
/// ```ignore
/// authz_axum::catalog! {
///     /// The permissions of this service.
///     pub struct Catalog {
///         permissions: ["data:read", "data:write", "model:run"],
///         roles: ["viewer", "admin"],
///     }
/// }
/// ```
#[proc_macro]
pub fn catalog(input: TokenStream) -> TokenStream {
    catalog::expand(input.into()).into()
}

/// Requires a permission expression: `"resource:action"`, `any(...)`, `all(...)`, `not(...)`,
/// `role("name")`, nested. Options: `catalog = path` (default: `Catalog`, as in scope),
/// `crate = path` (default `::authz_axum`), `policy = "name"` (after the requirement holds, the
/// policy engine's policy `name` must allow the request too; see `authz_axum::engine`; the
/// macro then also emits a hidden marker type `__authz_policy_<handler>` beside the handler, so
/// the handler must be a free function, not one in an `impl` block).
#[proc_macro_attribute]
pub fn require_permission(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::guard(attr::Kind::Permission, args.into(), item.into()).into()
}

/// Requires at least one of the listed permissions: sugar for `require_permission(any(...))`.
#[proc_macro_attribute]
pub fn require_any_permission(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::guard(attr::Kind::AnyPermission, args.into(), item.into()).into()
}

/// Requires a role (held directly or by inheritance), declared in the catalog's `roles`.
#[proc_macro_attribute]
pub fn require_role(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::guard(attr::Kind::Role, args.into(), item.into()).into()
}

/// A resource-level rule on a handler that receives `Authorized<T>`: the resource is loaded
/// (`authz_axum::resource::Load`) and checked before any other extractor runs.
///
/// ```ignore
/// #[require_permission("payment:approve")]
/// #[authorize(allow = other_than(initiated_by))]
/// async fn approve(Authorized(payment): Authorized<Payment>) -> Json<Payment> { .. }
/// ```
///
/// Arguments: `visible = condition` (who may see it: anyone else gets the 404 of a missing
/// resource), `allow = condition` (who may do this to it: anyone else who sees it gets 403),
/// `deny = not_found` (404 for both), `reason = ".."` (the 403's detail), `catalog = path`,
/// `crate = path`. Conditions: `owner`,
/// `party(field)`, `other_than(field)`, `same_tenant`, `"resource:action"`, `role("..")`,
/// `owner_or("resource:action")`, `check(path::to::fn)`, `any(..)`, `all(..)`, `not(..)`.
/// Tenant isolation needs no condition: a type that declares a tenant is always compared.
#[proc_macro_attribute]
pub fn authorize(args: TokenStream, item: TokenStream) -> TokenStream {
    rule::authorize(args.into(), item.into()).into()
}

/// Implements `Resource` (and `Owned` with an owner) from
/// `#[resource(type = "report", owner = field, tenant = field)]`. Owner and tenant fields hold
/// subject strings (`String`, `Option<String>`, …); a field the type does not have is a
/// compile error on its name. `type` defaults to the struct name in snake case.
#[proc_macro_derive(Resource, attributes(resource))]
pub fn derive_resource(input: TokenStream) -> TokenStream {
    resource::derive(input.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __unknown_permission(input: TokenStream) -> TokenStream {
    suggest::unknown(suggest::What::Permission, input.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __unknown_role(input: TokenStream) -> TokenStream {
    suggest::unknown(suggest::What::Role, input.into()).into()
}
