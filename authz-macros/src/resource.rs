//! `#[derive(Resource)]`: which attributes of a type are its owner and its tenant.
//!
//! ```ignore
//! #[derive(Resource)]
//! #[resource(type = "report", owner = owner, tenant = tenant)]
//! struct Report { id: Uuid, owner: String, tenant: String }
//! ```
//! becomes an `impl Resource` (type name, tenant) and, with `owner`, an `impl Owned`. Each
//! attribute is read as `&self.<field>`, spanned on the field name in the attribute, so a field
//! the type does not have is rustc's "no field" error pointing there.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::ParseStream;
use syn::{DeriveInput, Ident, LitStr, Path};

struct Args {
    type_name: Option<LitStr>,
    owner: Option<Ident>,
    tenant: Option<Ident>,
    krate: Option<Path>,
}

const VALID: &str = "`type = \"name\"`, `owner = field`, `tenant = field` and `crate = path`";

fn parse_args(input: ParseStream<'_>, args: &mut Args) -> syn::Result<()> {
    let keys = crate::args::Keys {
        known: &["type", "owner", "tenant", "crate"],
        valid: VALID,
        owner: "`#[resource(..)]`",
        noun: "resource attribute",
    };
    // Several `#[resource(..)]` attributes add up; a key given in two is still a duplicate.
    crate::args::parse(input, &keys, |key, span, input| {
        let again = match key {
            "type" => {
                let lit: LitStr = input.parse()?;
                if let Err(m) = crate::grammar::check_role_name(&lit.value()) {
                    return Err(syn::Error::new_spanned(&lit, m.replace("role", "resource type")));
                }
                args.type_name.replace(lit).is_some()
            }
            "owner" => args.owner.replace(input.parse()?).is_some(),
            "tenant" => args.tenant.replace(input.parse()?).is_some(),
            _ => args.krate.replace(input.parse()?).is_some(),
        };
        if again {
            return Err(crate::args::duplicate(key, span));
        }
        Ok(())
    })
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(t) => t,
        Err(e) => e.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut args = Args {
        type_name: None,
        owner: None,
        tenant: None,
        krate: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("resource")) {
        attr.parse_args_with(|s: ParseStream<'_>| parse_args(s, &mut args))?;
    }
    if !matches!(input.data, syn::Data::Struct(_)) {
        return Err(syn::Error::new(
            Span::call_site(),
            "`#[derive(Resource)]` goes on a struct whose fields hold the owner and tenant",
        ));
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let krate: Path = args.krate.unwrap_or_else(|| syn::parse_quote!(::authz_axum));
    let type_name = args
        .type_name
        .map(|l| l.value())
        .unwrap_or_else(|| snake(&name.to_string()));
    let p = quote!(#krate::__private);
    let (scoped, tenant_body) = match &args.tenant {
        Some(field) => (
            true,
            quote_spanned! {field.span()=> #p::Party::party(&self.#field) },
        ),
        None => (false, quote!(::core::option::Option::None)),
    };
    let owned = args.owner.as_ref().map(|field| {
        let body = quote_spanned! {field.span()=> #p::Party::party(&self.#field) };
        quote! {
            impl #impl_generics #p::Owned for #name #ty_generics #where_clause {
                #[inline]
                fn owner(&self) -> ::core::option::Option<&str> { #body }
            }
        }
    });
    let mut pairs = Vec::new();
    if let Some(field) = &args.owner {
        pairs.push(quote_spanned! {field.span()=> ("owner", #p::Party::party(&self.#field)) });
    }
    if let Some(field) = &args.tenant {
        pairs.push(quote_spanned! {field.span()=> ("tenant", #p::Party::party(&self.#field)) });
    }
    let n = pairs.len();
    Ok(quote! {
        impl #impl_generics #p::Resource for #name #ty_generics #where_clause {
            const TYPE: &'static str = #type_name;
            const TENANT_SCOPED: bool = #scoped;
            #[inline]
            fn tenant(&self) -> ::core::option::Option<&str> { #tenant_body }
            fn attributes(&self) -> #p::JsonValue {
                let pairs: [(&'static str, ::core::option::Option<&str>); #n] = [#(#pairs),*];
                #p::resource_attributes(pairs)
            }
        }
        #owned
    })
}
