//! `catalog! { pub struct Catalog { permissions: [..], roles: [..] } }`

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitStr, Path, Token, Visibility, braced, bracketed};

use crate::grammar;

mod kw {
    syn::custom_keyword!(permissions);
    syn::custom_keyword!(roles);
}

struct CatalogDecl {
    attrs: Vec<Attribute>,
    krate: Option<Path>,
    vis: Visibility,
    name: Ident,
    permissions: Vec<LitStr>,
    roles: Vec<LitStr>,
}

fn list(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    bracketed!(content in input);
    Ok(Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
        .into_iter()
        .collect())
}

impl Parse for CatalogDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut attrs = input.call(Attribute::parse_outer)?;
        let mut krate = None;
        let mut errors = Vec::new();
        attrs.retain(|a| {
            if !a.path().is_ident("authz") {
                return true;
            }
            if let Err(e) = a.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    if krate.is_some() {
                        return Err(meta.error("duplicate argument `crate`"));
                    }
                    krate = Some(meta.value()?.parse::<Path>()?);
                    Ok(())
                } else {
                    Err(meta
                        .error("unknown argument: `#[authz(..)]` on a catalog accepts only `crate = path`"))
                }
            }) {
                errors.push(e);
            }
            false
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let mut permissions: Option<Vec<LitStr>> = None;
        let mut roles: Option<Vec<LitStr>> = None;
        while !body.is_empty() {
            let look = body.lookahead1();
            if look.peek(kw::permissions) {
                let key: kw::permissions = body.parse()?;
                body.parse::<Token![:]>()?;
                if permissions.is_some() {
                    return Err(syn::Error::new(key.span, "duplicate field `permissions`"));
                }
                permissions = Some(list(&body)?);
            } else if look.peek(kw::roles) {
                let key: kw::roles = body.parse()?;
                body.parse::<Token![:]>()?;
                if roles.is_some() {
                    return Err(syn::Error::new(key.span, "duplicate field `roles`"));
                }
                roles = Some(list(&body)?);
            } else {
                return Err(look.error());
            }
            if body.is_empty() {
                break;
            }
            body.parse::<Token![,]>()?;
        }
        let permissions = permissions.ok_or_else(|| {
            syn::Error::new(
                name.span(),
                "a catalog needs `permissions: [\"resource:action\", ..]`",
            )
        })?;
        Ok(Self {
            attrs,
            krate,
            vis,
            name,
            permissions,
            roles: roles.unwrap_or_default(),
        })
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<CatalogDecl>(input).and_then(|d| generate(&d)) {
        Ok(t) => t,
        Err(e) => e.to_compile_error(),
    }
}

fn generate(decl: &CatalogDecl) -> syn::Result<TokenStream> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let mut seen: HashMap<String, &LitStr> = HashMap::new();
    let mut consts: HashMap<String, &LitStr> = HashMap::new();
    for lit in &decl.permissions {
        let value = lit.value();
        if let Err(e) = grammar::parse(&value, false) {
            let message = if e.kind == grammar::GrammarErrorKind::WildcardNotAllowed {
                format!(
                    "`{value}` is a wildcard: a catalog declares concrete permissions; grant `{value}` to a role in the policy instead"
                )
            } else {
                e.message(&value)
            };
            push(syn::Error::new(lit.span(), message));
            continue;
        }
        if seen.insert(value.clone(), lit).is_some() {
            push(syn::Error::new(
                lit.span(),
                format!("permission \"{value}\" is declared twice in the catalog"),
            ));
            continue;
        }
        let c = grammar::const_name(&value);
        if let Some(other) = consts.insert(c.clone(), lit) {
            push(syn::Error::new(
                lit.span(),
                format!(
                    "permissions \"{}\" and \"{value}\" would both be named `{c}`: rename one",
                    other.value()
                ),
            ));
        }
    }
    let mut role_seen: HashMap<String, ()> = HashMap::new();
    for lit in &decl.roles {
        let value = lit.value();
        if let Err(m) = grammar::check_role_name(&value) {
            push(syn::Error::new(lit.span(), m));
        } else if role_seen.insert(value.clone(), ()).is_some() {
            push(syn::Error::new(
                lit.span(),
                format!("role \"{value}\" is declared twice in the catalog"),
            ));
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let CatalogDecl {
        attrs,
        vis,
        name,
        permissions,
        roles,
        ..
    } = decl;
    let krate: Path = decl
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::authz_axum));
    let names: Vec<String> = permissions.iter().map(LitStr::value).collect();
    let role_names: Vec<String> = roles.iter().map(LitStr::value).collect();
    let fingerprint = grammar::fingerprint(names.iter().map(String::as_str));
    let checker = format_ident!("__authz_catalog_{}", name);
    let const_items = names.iter().enumerate().map(|(i, n)| {
        let vis = vis.clone();
        let ident = format_ident!("{}", grammar::const_name(n), span = permissions[i].span());
        let doc = format!("The permission `{n}`.");
        quote! {
            #[doc = #doc]
            #vis const #ident: #krate::__private::PermissionId = #krate::__private::PermissionId::new(#i);
        }
    });
    let permission_arms = names
        .iter()
        .enumerate()
        .map(|(i, n)| quote! { (@permission #n) => { #i }; });
    let role_arms = role_names
        .iter()
        .enumerate()
        .map(|(i, n)| quote! { (@role #n) => { #i }; });
    Ok(quote! {
        #(#attrs)*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        #vis struct #name;

        impl #name {
            #(#const_items)*
        }

        impl #krate::__private::Catalog for #name {
            const PERMISSIONS: &'static [&'static str] = &[#(#names),*];
            const ROLES: &'static [&'static str] = &[#(#role_names),*];
            const FINGERPRINT: u64 = #fingerprint;
            fn catalog() -> &'static #krate::__private::PermissionCatalog {
                static CATALOG: ::std::sync::OnceLock<#krate::__private::PermissionCatalog> =
                    ::std::sync::OnceLock::new();
                CATALOG.get_or_init(#krate::__private::PermissionCatalog::from_static::<#name>)
            }
        }

        #[doc(hidden)]
        #[allow(unused_macros)]
        macro_rules! #checker {
            #(#permission_arms)*
            (@permission $other:literal) => {
                #krate::__private::unknown_permission!($other, [#(#names),*])
            };
            #(#role_arms)*
            (@role $other:literal) => {
                #krate::__private::unknown_role!($other, [#(#role_names),*])
            };
        }
        // The checker shares the catalog's name (macro namespace), so whatever path or `use`
        // names the catalog also names its checker.
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use #checker as #name;
    })
}
