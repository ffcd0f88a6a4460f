//! Code generation for the guard attributes.
//!
//! ```ignore
//! #[require_permission("model:run")]
//! async fn run_model(Path(id): Path<String>) -> impl IntoResponse { .. }
//! ```
//! becomes
//! ```ignore
//! async fn run_model(
//!     _: ::authz_axum::__private::Guard<
//!         Catalog,
//!         ::authz_axum::__private::Perm<{ Catalog!(@permission "model:run") }>,
//!     >,
//!     Path(id): Path<String>,
//! ) -> impl IntoResponse { .. }
//! ```
//! The guard is the first extractor, so it runs before any other (and before the body is read).
//! The catalog's checker macro (which `catalog!` declares under the catalog's own name, in the
//! macro namespace) turns the literal into its index, or into a compile error with a suggestion
//! when the catalog does not declare it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Attribute, ItemFn, Path, parse_quote};

use crate::ast;
use crate::attr::{Args, Kind};
use crate::expr::Expr;

pub(crate) fn guard(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                Span::call_site(),
                format!("#[{}] goes on an `async fn` axum handler", kind.name()),
            );
            return with_error(item, e);
        }
    };
    match build(kind, args, &mut item_fn) {
        Ok(tokens) => tokens,
        Err(e) => {
            // Emit the handler unchanged plus the errors, so the IDE keeps working.
            strip_stacked(&mut item_fn);
            with_error(quote!(#item_fn), e)
        }
    }
}

fn with_error(item: TokenStream, e: syn::Error) -> TokenStream {
    let errors = e.to_compile_error();
    quote! { #item #errors }
}

fn stacked_kind(attr: &Attribute) -> Option<Kind> {
    let last = attr.path().segments.last()?;
    Kind::from_attr_name(&last.ident.to_string())
}

fn strip_stacked(item: &mut ItemFn) {
    item.attrs.retain(|a| stacked_kind(a).is_none());
}

fn build(kind: Kind, args: TokenStream, item: &mut ItemFn) -> syn::Result<TokenStream> {
    let mut errors: Option<syn::Error> = None;
    let mut collect = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let mut parsed = Vec::new();
    match Args::parse(kind, args, Span::call_site()) {
        Ok(a) => parsed.push(a),
        Err(e) => collect(e),
    }
    // Stacked guard attributes below this one: all apply (AND), in one guard.
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut item.attrs) {
        match stacked_kind(&attr) {
            Some(k) => {
                let tokens = match &attr.meta {
                    syn::Meta::List(list) => list.tokens.clone(),
                    _ => TokenStream::new(),
                };
                let span = attr.pound_token.span;
                match Args::parse(k, tokens, span) {
                    Ok(a) => parsed.push(a),
                    Err(e) => collect(e),
                }
            }
            None => kept.push(attr),
        }
    }
    item.attrs = kept;
    if let Err(e) = ast::check(item, kind.name()) {
        collect(e);
    }
    let mut catalog: Option<Path> = None;
    let mut krate: Option<Path> = None;
    for a in &parsed {
        for (slot, value, name) in [
            (&mut catalog, &a.catalog, "catalog"),
            (&mut krate, &a.krate, "crate"),
        ] {
            if let Some(v) = value {
                match slot {
                    Some(existing) if quote!(#existing).to_string() != quote!(#v).to_string() => collect(
                        syn::Error::new_spanned(v, format!("stacked guards name different `{name}` paths")),
                    ),
                    _ => *slot = Some(v.clone()),
                }
            }
        }
    }
    let mut policy: Option<&syn::LitStr> = None;
    for a in &parsed {
        if let Some(p) = &a.policy {
            match policy {
                Some(_) => collect(syn::Error::new_spanned(
                    p,
                    "a handler names at most one policy: the stacked guards name two",
                )),
                None => policy = Some(p),
            }
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    let catalog: Path = catalog.unwrap_or_else(|| parse_quote!(Catalog));
    let krate: Path = krate.unwrap_or_else(|| parse_quote!(::authz_axum));
    // `catalog!` puts its checker macro in the macro namespace under the catalog's own name, so
    // the path (or `use`) that names the catalog type names the checker too.
    let checker = catalog.clone();
    let mut requirements: Vec<TokenStream> = parsed
        .iter()
        .map(|a| requirement_type(&a.requirement, &checker, &krate))
        .collect();
    let requirement = if requirements.len() == 1 {
        requirements.pop().expect("one")
    } else {
        quote! { #krate::__private::All<( #(#requirements,)* )> }
    };
    let Some(policy) = policy else {
        let guard: syn::FnArg = parse_quote! {
            _: #krate::__private::Guard<#catalog, #requirement>
        };
        item.sig.inputs.insert(0, guard);
        return Ok(quote!(#item));
    };
    // The policy's name as a type: a marker next to the handler (as utoipa's `#[path]` does).
    let marker = syn::Ident::new(
        &format!("__authz_policy_{}", item.sig.ident),
        item.sig.ident.span(),
    );
    // A `PolicyChecked<..>` argument takes the decision over, with the body's facts; the
    // assertion makes sure it is authz's extractor and not another type of that name.
    let checked: Vec<syn::Type> = item
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some((*t.ty).clone()),
            syn::FnArg::Receiver(_) => None,
        })
        .filter(is_policy_checked)
        .collect();
    let deferred = !checked.is_empty();
    // A resource argument (`#[authorize]`, expanded already or still to come): the decision
    // waits for the loaded resource, so the input carries its attributes.
    let after_resource = item
        .attrs
        .iter()
        .any(|a| a.path().segments.last().is_some_and(|s| s.ident == "authorize"))
        || item.sig.inputs.iter().any(|a| match a {
            syn::FnArg::Typed(t) => is_resource_argument(&t.ty),
            syn::FnArg::Receiver(_) => false,
        });
    let vis = &item.vis;
    let guard: syn::FnArg = parse_quote! {
        _: #krate::__private::Guard<#catalog, #requirement, #marker>
    };
    item.sig.inputs.insert(0, guard);
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;
        impl #krate::__private::PolicyRef for #marker {
            const NAME: ::core::option::Option<&'static str> = ::core::option::Option::Some(#policy);
            const DEFERRED: bool = #deferred;
            const AFTER_RESOURCE: bool = #after_resource;
        }
        #(
            const _: fn() = || { #krate::__private::assert_policy_checked::<#checked>(); };
        )*
        #item
    })
}

/// Whether `ty` is the argument `#[authorize]` fills: `Authorized<..>` as written, or the
/// `Checked<..>` it becomes.
fn is_resource_argument(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Authorized" || s.ident == "Checked"),
        _ => false,
    }
}

/// Whether `ty` is spelled `PolicyChecked<..>` (any path ending so).
fn is_policy_checked(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "PolicyChecked"),
        _ => false,
    }
}

fn requirement_type(expr: &Expr, checker: &Path, krate: &Path) -> TokenStream {
    match expr {
        Expr::Permission(lit) => {
            let span = lit.span();
            quote_spanned! {span=> #krate::__private::Perm<{ #checker!(@permission #lit) }> }
        }
        Expr::Role(lit) => {
            let span = lit.span();
            quote_spanned! {span=> #krate::__private::Role<{ #checker!(@role #lit) }> }
        }
        Expr::All(_, items) => {
            let items = items.iter().map(|e| requirement_type(e, checker, krate));
            quote! { #krate::__private::All<( #(#items,)* )> }
        }
        Expr::Any(_, items) => {
            let items = items.iter().map(|e| requirement_type(e, checker, krate));
            quote! { #krate::__private::AnyOf<( #(#items,)* )> }
        }
        Expr::Not(inner) => {
            let inner = requirement_type(inner, checker, krate);
            quote! { #krate::__private::Not<#inner> }
        }
    }
}
