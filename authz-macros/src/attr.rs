//! The attribute's arguments: one requirement plus `catalog = path`, `crate = path` and
//! `policy = "name"`, each set at most once.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{LitStr, Path, Token};

use crate::expr::{self, Expr};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Permission,
    AnyPermission,
    Role,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Permission => "require_permission",
            Kind::AnyPermission => "require_any_permission",
            Kind::Role => "require_role",
        }
    }

    pub(crate) fn from_attr_name(name: &str) -> Option<Kind> {
        match name {
            "require_permission" => Some(Kind::Permission),
            "require_any_permission" => Some(Kind::AnyPermission),
            "require_role" => Some(Kind::Role),
            _ => None,
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Permission => "#[require_permission(\"model:run\")]",
            Kind::AnyPermission => "#[require_any_permission(\"data:write\", \"model:deploy\")]",
            Kind::Role => "#[require_role(\"admin\")]",
        }
    }
}

mod kw {
    syn::custom_keyword!(catalog);
    syn::custom_keyword!(policy);
}

pub(crate) struct Args {
    pub(crate) requirement: Expr,
    pub(crate) catalog: Option<Path>,
    pub(crate) krate: Option<Path>,
    /// The policy engine's policy asked after the requirement holds.
    pub(crate) policy: Option<LitStr>,
}

/// A policy name: lowercase letters, digits and `_`, starting with a letter (a Rego package
/// segment, a Cedar file name and an OPA path segment alike).
fn check_policy_name(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            lit,
            format!(
                "invalid policy name {name:?}: use lowercase letters, digits and `_`, starting with a letter, \
                 e.g. policy = \"deploy\""
            ),
        ))
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str, span: Span) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            span,
            format!("duplicate argument `{name}`: it may be given once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

const VALID: &str = "`catalog = path::to::Catalog`, `crate = path` and `policy = \"name\"`";
const KEYS: [&str; 3] = ["catalog", "crate", "policy"];

impl Args {
    pub(crate) fn parse(kind: Kind, tokens: TokenStream, call_site: Span) -> syn::Result<Self> {
        let parser = move |input: ParseStream<'_>| Self::parse_inner(kind, input, call_site);
        parser.parse2(tokens)
    }

    fn parse_inner(kind: Kind, input: ParseStream<'_>, call_site: Span) -> syn::Result<Self> {
        let mut requirements: Vec<Expr> = Vec::new();
        let mut catalog = None;
        let mut krate = None;
        let mut policy = None;
        while !input.is_empty() {
            if input.peek(kw::catalog) && input.peek2(Token![=]) {
                let key: kw::catalog = input.parse()?;
                input.parse::<Token![=]>()?;
                let path: Path = input.parse()?;
                set_once(&mut catalog, path, "catalog", key.span)?;
            } else if input.peek(Token![crate]) && input.peek2(Token![=]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path: Path = input.parse()?;
                set_once(&mut krate, path, "crate", key.span)?;
            } else if input.peek(kw::policy) && input.peek2(Token![=]) {
                let key: kw::policy = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected the policy's name as a string, e.g. policy = \"deploy\"",
                    )
                })?;
                check_policy_name(&lit)?;
                set_once(&mut policy, lit, "policy", key.span)?;
            } else if input.peek(syn::Ident) && input.peek2(Token![=]) {
                let key: syn::Ident = input.parse()?;
                let hint = crate::grammar::closest(&key.to_string(), KEYS)
                    .map(|k| format!("\nhelp: did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown argument `{key}`: `{}` takes a requirement, {VALID}{hint}",
                        kind.name()
                    ),
                ));
            } else {
                match kind {
                    Kind::Role => {
                        let lit: LitStr = input.parse().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                format!("expected a role name string, as in {}", kind.example()),
                            )
                        })?;
                        if let Err(m) = crate::grammar::check_role_name(&lit.value()) {
                            return Err(syn::Error::new_spanned(&lit, m));
                        }
                        requirements.push(Expr::Role(lit));
                    }
                    Kind::AnyPermission => {
                        let lit: LitStr = input.parse().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                format!("expected a permission string, as in {}", kind.example()),
                            )
                        })?;
                        expr::check_permission(&lit)?;
                        requirements.push(Expr::Permission(lit));
                    }
                    Kind::Permission => {
                        let e: Expr = input.parse()?;
                        if !requirements.is_empty() {
                            return Err(syn::Error::new(
                                e.span(),
                                "`require_permission` takes one requirement: combine several with \
                                 `all(..)` or `any(..)`, or stack attributes (they all apply)",
                            ));
                        }
                        requirements.push(e);
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let requirement = match (kind, requirements.len()) {
            (_, 0) => {
                return Err(syn::Error::new(
                    call_site,
                    format!("`{}` needs a requirement, as in {}", kind.name(), kind.example()),
                ));
            }
            (Kind::AnyPermission, n) if n > expr::MAX_OPERANDS => {
                return Err(syn::Error::new(
                    call_site,
                    format!("at most {} permissions", expr::MAX_OPERANDS),
                ));
            }
            (Kind::AnyPermission, _) => Expr::Any(call_site, requirements),
            (Kind::Role, 1) => requirements.pop().expect("one"),
            (Kind::Role, _) => {
                return Err(syn::Error::new(
                    requirements[1].span(),
                    "`require_role` takes one role: stack attributes to require several, or use \
                     `require_permission(any(role(\"a\"), role(\"b\")))`",
                ));
            }
            (Kind::Permission, _) => requirements.pop().expect("one"),
        };
        Ok(Args {
            requirement,
            catalog,
            krate,
            policy,
        })
    }
}
