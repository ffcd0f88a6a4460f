//! The requirement expression: `"resource:action"`, `any(..)`, `all(..)`, `not(..)`, `role("..")`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token, parenthesized};

use crate::grammar;

/// Most operands of one `any`/`all` (the runtime's tuple impls go this far).
pub(crate) const MAX_OPERANDS: usize = 12;

pub(crate) enum Expr {
    Permission(LitStr),
    Role(LitStr),
    All(Span, Vec<Expr>),
    Any(Span, Vec<Expr>),
    Not(Box<Expr>),
}

const FUNCTIONS: &str = "`any(..)`, `all(..)`, `not(..)` and `role(\"..\")`";

impl Parse for Expr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            check_permission(&lit)?;
            return Ok(Expr::Permission(lit));
        }
        if input.peek(syn::Lit) {
            let lit: syn::Lit = input.parse()?;
            return Err(syn::Error::new_spanned(
                lit,
                "expected a permission string such as \"model:run\"",
            ));
        }
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected a permission string such as \"model:run\", or one of {FUNCTIONS}"),
            )
        })?;
        let content;
        let parens = parenthesized!(content in input);
        let args: Punctuated<Expr, Token![,]> = if name == "role" {
            let lits = Punctuated::<LitStr, Token![,]>::parse_terminated(&content).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "role(..) takes one role name string, e.g. role(\"admin\")",
                )
            })?;
            let mut out = Punctuated::new();
            for lit in lits {
                if let Err(m) = grammar::check_role_name(&lit.value()) {
                    return Err(syn::Error::new_spanned(&lit, m));
                }
                out.push(Expr::Role(lit));
            }
            out
        } else {
            Punctuated::parse_terminated(&content)?
        };
        let span = name.span();
        let args: Vec<Expr> = args.into_iter().collect();
        match name.to_string().as_str() {
            "any" | "all" => {
                if args.is_empty() {
                    return Err(syn::Error::new(
                        parens.span.join(),
                        format!(
                            "`{name}()` needs at least one requirement, e.g. `{name}(\"data:read\", \"data:write\")`"
                        ),
                    ));
                }
                if args.len() > MAX_OPERANDS {
                    return Err(syn::Error::new(
                        parens.span.join(),
                        format!(
                            "`{name}(..)` takes at most {MAX_OPERANDS} requirements; nest them, e.g. `{name}({name}(..), {name}(..))`"
                        ),
                    ));
                }
                Ok(if name == "any" {
                    Expr::Any(span, args)
                } else {
                    Expr::All(span, args)
                })
            }
            "not" => {
                if args.len() != 1 {
                    return Err(syn::Error::new(
                        parens.span.join(),
                        format!("`not(..)` takes exactly one requirement, found {}", args.len()),
                    ));
                }
                Ok(Expr::Not(Box::new(
                    args.into_iter().next().expect("one argument"),
                )))
            }
            "role" => {
                if args.len() != 1 {
                    return Err(syn::Error::new(
                        parens.span.join(),
                        "role(..) takes one role name string, e.g. role(\"admin\")",
                    ));
                }
                Ok(args.into_iter().next().expect("one argument"))
            }
            other => {
                let hint = grammar::closest(other, ["any", "all", "not", "role"])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                Err(syn::Error::new(
                    name.span(),
                    format!("unknown function `{other}`: expected {FUNCTIONS}{hint}"),
                ))
            }
        }
    }
}

/// The same grammar and message as `authz_core::Permission::parse`.
pub(crate) fn check_permission(lit: &LitStr) -> syn::Result<()> {
    let value = lit.value();
    grammar::parse(&value, false)
        .map(|_| ())
        .map_err(|e| syn::Error::new(lit.span(), e.message(&value)))
}

impl Expr {
    pub(crate) fn span(&self) -> Span {
        match self {
            Expr::Permission(l) | Expr::Role(l) => l.span(),
            Expr::All(s, _) | Expr::Any(s, _) => *s,
            Expr::Not(e) => e.span(),
        }
    }
}
