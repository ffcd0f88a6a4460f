//! `#[authorize(..)]`: a resource rule declared on the handler.
//!
//! ```ignore
//! #[require_permission("report:read")]
//! #[authorize(visible = owner_or("report:read_any"))]
//! async fn get_report(Authorized(report): Authorized<Report>) -> Json<Report> { .. }
//! ```
//! becomes
//! ```ignore
//! #[doc(hidden)] struct __AuthzRule_get_report;
//! impl ResourceRule<Report> for __AuthzRule_get_report { /* visible / allowed */ }
//! async fn get_report(
//!     _: Guard<Catalog, Perm<..>>,                               // from require_permission
//!     __authz_resource: Checked<Report, __AuthzRule_get_report>, // loads, then checks
//! ) -> Json<Report> {
//!     let Authorized(report): Authorized<Report> = __authz_resource.into_authorized();
//!     ..
//! }
//! ```
//! The checked argument takes the place of the `Authorized<T>` one, so extractors run in the
//! order written: the guard first, the body (always last in axum) after the check.
//!
//! Conditions: `owner`, `party(field)`, `other_than(field)`, `same_tenant`, a permission
//! string, `role("..")`, `owner_or("..")`, `check(path::to::fn)`, `any(..)`, `all(..)`,
//! `not(..)`. A field is read as `resource.<field>` spanned on its name, so a field the type
//! does not have is a compile error there; permission and role literals go through the catalog.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemFn, LitStr, Path, Token, Type, parenthesized, parse_quote};

use crate::expr::check_permission;
use crate::grammar;

pub(crate) enum Cond {
    Owner(Span),
    SameTenant(Span),
    Party(Ident),
    OtherThan(Ident),
    Permission(LitStr),
    Role(LitStr),
    Check(Path),
    Any(Vec<Cond>),
    All(Vec<Cond>),
    Not(Box<Cond>),
}

const FUNCTIONS: &[&str] = &[
    "owner",
    "same_tenant",
    "party",
    "other_than",
    "role",
    "owner_or",
    "check",
    "any",
    "all",
    "not",
];

const EXPECTED: &str = "a permission string, `owner`, `same_tenant`, `party(field)`, `other_than(field)`, \
                        `owner_or(\"resource:action\")`, `role(\"..\")`, `check(path::to::fn)`, `any(..)`, \
                        `all(..)` or `not(..)`";

impl Parse for Cond {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            check_permission(&lit)?;
            return Ok(Cond::Permission(lit));
        }
        let name: Ident = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), format!("expected {EXPECTED}")))?;
        let span = name.span();
        match name.to_string().as_str() {
            "owner" => return Ok(Cond::Owner(span)),
            "same_tenant" => return Ok(Cond::SameTenant(span)),
            _ => {}
        }
        if !input.peek(syn::token::Paren) {
            return Err(unknown(&name));
        }
        let content;
        let parens = parenthesized!(content in input);
        let one_field = |what: &str| -> syn::Result<Ident> {
            let field: Ident = content.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("`{what}(..)` takes the name of one field of the resource, e.g. `{what}(initiated_by)`"),
                )
            })?;
            if !content.is_empty() {
                return Err(syn::Error::new(
                    content.span(),
                    format!("`{what}(..)` takes one field name"),
                ));
            }
            Ok(field)
        };
        let one_lit = |example: &str| -> syn::Result<LitStr> {
            let lit: LitStr = content.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("`{name}(..)` takes one string, e.g. `{name}({example})`"),
                )
            })?;
            if !content.is_empty() {
                return Err(syn::Error::new(
                    content.span(),
                    format!("`{name}(..)` takes one string"),
                ));
            }
            Ok(lit)
        };
        match name.to_string().as_str() {
            "party" => Ok(Cond::Party(one_field("party")?)),
            "other_than" => Ok(Cond::OtherThan(one_field("other_than")?)),
            "role" => {
                let lit = one_lit("\"admin\"")?;
                if let Err(m) = grammar::check_role_name(&lit.value()) {
                    return Err(syn::Error::new_spanned(&lit, m));
                }
                Ok(Cond::Role(lit))
            }
            "owner_or" => {
                let lit = one_lit("\"report:read_any\"")?;
                check_permission(&lit)?;
                Ok(Cond::Any(vec![Cond::Owner(span), Cond::Permission(lit)]))
            }
            "check" => {
                let path: Path = content.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`check(..)` takes the path of a `fn(&Principal, &Resource) -> bool`",
                    )
                })?;
                Ok(Cond::Check(path))
            }
            "any" | "all" | "not" => {
                let args: Vec<Cond> = Punctuated::<Cond, Token![,]>::parse_terminated(&content)?
                    .into_iter()
                    .collect();
                if name == "not" {
                    if args.len() != 1 {
                        return Err(syn::Error::new(
                            parens.span.join(),
                            format!("`not(..)` takes exactly one condition, found {}", args.len()),
                        ));
                    }
                    return Ok(Cond::Not(Box::new(args.into_iter().next().expect("one"))));
                }
                if args.is_empty() {
                    return Err(syn::Error::new(
                        parens.span.join(),
                        format!(
                            "`{name}()` needs at least one condition, e.g. `{name}(owner, \"report:read_any\")`"
                        ),
                    ));
                }
                Ok(if name == "any" {
                    Cond::Any(args)
                } else {
                    Cond::All(args)
                })
            }
            _ => Err(unknown(&name)),
        }
    }
}

fn unknown(name: &Ident) -> syn::Error {
    let other = name.to_string();
    let hint = grammar::closest(&other, FUNCTIONS.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    syn::Error::new(
        name.span(),
        format!("unknown condition `{other}`: expected {EXPECTED}{hint}"),
    )
}

impl Cond {
    fn uses_catalog(&self) -> bool {
        match self {
            Cond::Permission(_) | Cond::Role(_) => true,
            Cond::Any(v) | Cond::All(v) => v.iter().any(Cond::uses_catalog),
            Cond::Not(c) => c.uses_catalog(),
            _ => false,
        }
    }

    /// An expression over `principal: &Principal` and `resource: &R`.
    fn to_tokens(&self, p: &TokenStream, catalog: &Path, ty: &Type) -> TokenStream {
        match self {
            Cond::Owner(span) => quote_spanned! {*span=> #p::is_owner(principal, resource) },
            Cond::SameTenant(span) => {
                quote_spanned! {*span=> {
                    const _: () = ::core::assert!(
                        <#ty as #p::Resource>::TENANT_SCOPED,
                        "`same_tenant` on a resource type that declares no tenant: add `#[resource(tenant = field)]` to the type"
                    );
                    #p::same_tenant::<#ty>(principal, resource)
                }}
            }
            Cond::Party(field) => {
                quote_spanned! {field.span()=> #p::is_party(principal, &resource.#field) }
            }
            Cond::OtherThan(field) => {
                quote_spanned! {field.span()=> !#p::is_party(principal, &resource.#field) }
            }
            Cond::Permission(lit) => {
                let span = lit.span();
                quote_spanned! {span=> principal.can(#p::PermissionId::new(#catalog!(@permission #lit))) }
            }
            Cond::Role(lit) => {
                let span = lit.span();
                quote_spanned! {span=>
                    principal.has_role(<#catalog as #p::Catalog>::ROLES[#catalog!(@role #lit)])
                }
            }
            Cond::Check(path) => {
                quote_spanned! {path_span(path)=> (#path)(principal, resource) }
            }
            Cond::Any(v) => {
                let items = v.iter().map(|c| c.to_tokens(p, catalog, ty));
                quote! { (false #(|| #items)*) }
            }
            Cond::All(v) => {
                let items = v.iter().map(|c| c.to_tokens(p, catalog, ty));
                quote! { (true #(&& #items)*) }
            }
            Cond::Not(c) => {
                let inner = c.to_tokens(p, catalog, ty);
                quote! { !(#inner) }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Cond::Owner(_) => "owner".into(),
            Cond::SameTenant(_) => "same_tenant".into(),
            Cond::Party(f) => format!("party({f})"),
            Cond::OtherThan(f) => format!("other_than({f})"),
            Cond::Permission(l) => format!("{:?}", l.value()),
            Cond::Role(l) => format!("role({:?})", l.value()),
            Cond::Check(p) => format!("check({})", quote!(#p).to_string().replace(' ', "")),
            Cond::Any(v) => format!(
                "any({})",
                v.iter().map(Cond::describe).collect::<Vec<_>>().join(", ")
            ),
            Cond::All(v) => format!(
                "all({})",
                v.iter().map(Cond::describe).collect::<Vec<_>>().join(", ")
            ),
            Cond::Not(c) => format!("not({})", c.describe()),
        }
    }
}

fn path_span(path: &Path) -> Span {
    path.segments
        .last()
        .map(|s| s.ident.span())
        .unwrap_or_else(Span::call_site)
}

struct Args {
    reason: Option<LitStr>,
    visible: Option<Cond>,
    allow: Option<Cond>,
    mask: Option<bool>,
    catalog: Option<Path>,
    krate: Option<Path>,
}

const VALID: &str = "`visible = condition`, `allow = condition`, `deny = not_found | forbidden`, \
                     `reason = \"..\"`, `catalog = path` and `crate = path`";

impl Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            reason: None,
            visible: None,
            allow: None,
            mask: None,
            catalog: None,
            krate: None,
        };
        let keys = crate::args::Keys {
            known: &["visible", "allow", "deny", "reason", "catalog", "crate"],
            valid: VALID,
            owner: "`#[authorize]`",
            noun: "argument",
        };
        crate::args::parse(input, &keys, |key, _, input| {
            match key {
                "visible" => args.visible = Some(input.parse()?),
                "allow" => args.allow = Some(input.parse()?),
                "deny" => {
                    let v: Ident = input.parse()?;
                    args.mask = Some(match v.to_string().as_str() {
                        "not_found" => true,
                        "forbidden" => false,
                        _ => {
                            return Err(syn::Error::new(
                                v.span(),
                                "`deny` is `not_found` (a caller who may see the resource but not act on it \
                                 gets the same 404 as for a missing one) or `forbidden` (403, the default)",
                            ));
                        }
                    });
                }
                "reason" => {
                    args.reason = Some(input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`reason` is a sentence for the 403's detail, e.g. \
                             `reason = \"the initiator may not approve\"`",
                        )
                    })?);
                }
                "catalog" => args.catalog = Some(input.parse()?),
                _ => args.krate = Some(input.parse()?),
            }
            Ok(())
        })?;
        Ok(args)
    }
}

/// The `T` of a parameter typed `Authorized<T>` (any path ending in `Authorized`).
fn authorized_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    if last.ident != "Authorized" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &last.arguments else {
        return None;
    };
    match a.args.first()? {
        syn::GenericArgument::Type(t) if a.args.len() == 1 => Some(t),
        _ => None,
    }
}

fn is_guard(arg: &FnArg) -> bool {
    let FnArg::Typed(pt) = arg else { return false };
    let Type::Path(tp) = &*pt.ty else { return false };
    let segs: Vec<String> = tp.path.segments.iter().map(|s| s.ident.to_string()).collect();
    segs.len() >= 2 && segs[segs.len() - 2] == "__private" && segs[segs.len() - 1] == "Guard"
}

fn has_guard_attribute(item: &ItemFn) -> bool {
    item.attrs.iter().any(|a| {
        a.path().segments.last().is_some_and(|s| {
            matches!(
                s.ident.to_string().as_str(),
                "require_permission" | "require_any_permission" | "require_role"
            )
        })
    })
}

pub(crate) fn authorize(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                Span::call_site(),
                "#[authorize] goes on an `async fn` axum handler",
            );
            let errors = e.to_compile_error();
            return quote! { #item #errors };
        }
    };
    match build(args, &mut item_fn) {
        Ok(t) => t,
        Err(e) => {
            let errors = e.to_compile_error();
            quote! { #item_fn #errors }
        }
    }
}

fn build(args: TokenStream, item: &mut ItemFn) -> syn::Result<TokenStream> {
    let args = Args::parse.parse2(args)?;
    crate::ast::check(item, "authorize")?;
    if !item.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.sig.generics,
            "#[authorize] does not support generic handlers",
        ));
    }
    let found: Vec<usize> = item
        .sig
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            FnArg::Typed(pt) if authorized_inner(&pt.ty).is_some() => Some(i),
            _ => None,
        })
        .collect();
    let index = match found.as_slice() {
        [i] => *i,
        [] => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[authorize] needs a parameter that receives the checked resource: add \
                 `Authorized(resource): Authorized<YourResource>` to the handler",
            ));
        }
        [_, second, ..] => {
            return Err(syn::Error::new_spanned(
                &item.sig.inputs[*second],
                "#[authorize] checks one resource per handler: this is a second `Authorized<..>` parameter",
            ));
        }
    };
    let FnArg::Typed(original) = item.sig.inputs[index].clone() else {
        unreachable!("filtered on typed arguments")
    };
    let resource_ty = authorized_inner(&original.ty).expect("found above").clone();
    let krate: Path = args.krate.unwrap_or_else(|| parse_quote!(::authz_axum));
    let catalog: Path = args.catalog.unwrap_or_else(|| parse_quote!(Catalog));
    let p = quote!(#krate::__private);
    let rule = format_ident!("__AuthzRule_{}", item.sig.ident);
    let vis = &item.vis;
    let uses_catalog = args.visible.as_ref().is_some_and(Cond::uses_catalog)
        || args.allow.as_ref().is_some_and(Cond::uses_catalog);
    let fingerprint = if uses_catalog {
        quote! { ::core::option::Option::Some(<#catalog as #p::Catalog>::FINGERPRINT) }
    } else {
        quote! { ::core::option::Option::None }
    };
    let visible = args
        .visible
        .as_ref()
        .map_or_else(|| quote!(true), |c| c.to_tokens(&p, &catalog, &resource_ty));
    let allow = args
        .allow
        .as_ref()
        .map_or_else(|| quote!(true), |c| c.to_tokens(&p, &catalog, &resource_ty));
    let mask = args.mask.unwrap_or(false);
    let reason = args.reason.as_ref().map_or_else(
        || "the caller may not do this to this resource".to_string(),
        LitStr::value,
    );
    let mut description = Vec::new();
    if let Some(c) = &args.visible {
        description.push(format!("visible: {}", c.describe()));
    }
    if let Some(c) = &args.allow {
        description.push(format!("allow: {}", c.describe()));
    }
    if mask {
        description.push("deny: not_found".into());
    }
    let description = description.join("; ");

    // The checked argument takes the place of the user's: extractors run in the order written
    // (after the guard, which is always first; a body extractor is always last).
    let checked: FnArg = parse_quote! {
        __authz_resource: #p::Checked<#resource_ty, #rule>
    };
    item.sig.inputs[index] = checked;
    // Without a guard (here or still to expand), the resource rule alone still authenticates;
    // a guard keeps the route table's first-argument contract.
    if !item.sig.inputs.first().is_some_and(is_guard) && !has_guard_attribute(item) {
        let guard: FnArg = parse_quote! {
            _: #p::Guard<#catalog, #p::Authenticated>
        };
        item.sig.inputs.insert(0, guard);
    }
    let pat = &original.pat;
    let ty = &original.ty;
    let block = &item.block;
    *item.block = parse_quote! {{
        let #pat: #ty = __authz_resource.into_authorized();
        #block
    }};

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #rule;

        impl #p::ResourceRule<#resource_ty> for #rule {
            const MASK_FORBIDDEN: bool = #mask;
            const REASON: &'static str = #reason;
            const CATALOG_FINGERPRINT: ::core::option::Option<u64> = #fingerprint;
            #[inline]
            #[allow(unused_variables)]
            fn visible(principal: &#p::CorePrincipal, resource: &#resource_ty) -> bool { #visible }
            #[inline]
            #[allow(unused_variables)]
            fn allowed(principal: &#p::CorePrincipal, resource: &#resource_ty) -> bool { #allow }
            fn describe() -> &'static str { #description }
        }

        #item
    })
}
