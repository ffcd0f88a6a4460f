//! `key = value, …` argument lists (`#[authorize(..)]`, `#[resource(..)]`): keys are
//! identifiers (or `type` / `crate`), each given at most once; unknown keys get the closest
//! known one as a suggestion.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Ident, Token};

/// The messages of one argument list.
pub(crate) struct Keys<'a> {
    /// The keys it takes.
    pub(crate) known: &'a [&'a str],
    /// Every form, for messages: "`visible = condition`, … and `crate = path`".
    pub(crate) valid: &'a str,
    /// Who takes them: "`#[authorize]`".
    pub(crate) owner: &'a str,
    /// What an unknown key is called: "argument", "resource attribute".
    pub(crate) noun: &'a str,
}

/// Parses the whole list: for each `key =`, `value` parses what follows (the key is known and
/// given for the first time in this list; `span` is the key's).
pub(crate) fn parse(
    input: ParseStream<'_>,
    keys: &Keys<'_>,
    mut value: impl FnMut(&str, Span, ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        let (key, span): (String, Span) = if input.peek(Token![type]) {
            ("type".into(), input.parse::<Token![type]>()?.span)
        } else if input.peek(Token![crate]) {
            ("crate".into(), input.parse::<Token![crate]>()?.span)
        } else {
            let i: Ident = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), format!("expected one of {}", keys.valid)))?;
            (i.to_string(), i.span())
        };
        if !keys.known.contains(&key.as_str()) {
            let hint = crate::grammar::closest(&key, keys.known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(syn::Error::new(
                span,
                format!(
                    "unknown {} `{key}`: {} takes {}{hint}",
                    keys.noun, keys.owner, keys.valid
                ),
            ));
        }
        if seen.contains(&key) {
            return Err(duplicate(&key, span));
        }
        input.parse::<Token![=]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `{key} = ..`: {} takes {}", keys.owner, keys.valid),
            )
        })?;
        value(&key, span, input)?;
        seen.push(key);
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// The error for a key given twice.
pub(crate) fn duplicate(key: &str, span: Span) -> syn::Error {
    syn::Error::new(span, format!("duplicate `{key}`: it may be given once"))
}
