//! The fallback arm of a catalog's checker macro: an undeclared permission or role literal
//! becomes a compile error spanned on the literal, with the closest declared name.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token, bracketed, punctuated::Punctuated};

use crate::grammar;

pub(crate) enum What {
    Permission,
    Role,
}

struct Input {
    literal: syn::Lit,
    known: Vec<String>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let literal: syn::Lit = input.parse()?;
        input.parse::<Token![,]>()?;
        let content;
        bracketed!(content in input);
        let known = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
        Ok(Self {
            literal,
            known: known.iter().map(LitStr::value).collect(),
        })
    }
}

pub(crate) fn unknown(what: What, input: TokenStream) -> TokenStream {
    let Input { literal, known } = match syn::parse2::<Input>(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let span = literal.span();
    let value = match &literal {
        syn::Lit::Str(s) => s.value(),
        _ => String::new(),
    };
    let noun = match what {
        What::Permission => "permission",
        What::Role => "role",
    };
    let mut message = if known.contains(&value) {
        format!("write the {noun} as a plain string literal, e.g. \"{value}\"")
    } else if known.is_empty() && matches!(what, What::Role) {
        format!(
            "unknown role \"{value}\": this catalog declares no roles\n\
             help: add `roles: [\"{value}\", ...]` to the `catalog!` declaration to use #[require_role]"
        )
    } else {
        format!("unknown {noun} \"{value}\": it is not declared in the catalog")
    };
    if !known.contains(&value)
        && !known.is_empty()
        && let Some(best) = grammar::closest(&value, known.iter().map(String::as_str))
    {
        message.push_str(&format!("\nhelp: did you mean \"{best}\"?"));
    } else if !known.contains(&value) && !known.is_empty() {
        message.push_str(&format!("\nhelp: declared {noun}s are: {}", known.join(", ")));
    }
    quote_spanned! {span=> ::core::compile_error!(#message) }
}
