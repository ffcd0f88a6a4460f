//! Attribute macros for **authz**. Use them through `authz-axum`, which re-exports them:
//! generated code names only `::authz_axum::__private` (override with `crate = path`).
//!
//! - [`macro@catalog`]: declares the application's permission catalog (and, optionally, roles).
//! - [`macro@require_permission`], [`macro@require_any_permission`], [`macro@require_role`]:
//!   guard an axum handler; every permission and role literal is checked against the catalog at
//!   compile time.
//!
//! See the `authz-axum` crate docs for the expansion and examples.

mod ast;
mod attr;
mod catalog;
mod expand;
mod expr;
// A byte-identical copy of `authz-core/src/grammar.rs` (a package may not include files from
// outside itself); `tests/tests/it/grammar_copy.rs` checks that the two never drift apart.
#[allow(dead_code, unreachable_pub)]
mod grammar;
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
