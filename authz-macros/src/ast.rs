//! The handler as the macro sees it, and the checks that make it a guardable axum handler.

use syn::spanned::Spanned;
use syn::{FnArg, ItemFn};

/// axum implements `Handler` for functions of at most 16 extractors; the guard takes one.
pub(crate) const AXUM_MAX_EXTRACTORS: usize = 16;

pub(crate) fn check(item: &ItemFn, attr_name: &str) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    if item.sig.asyncness.is_none() {
        push(syn::Error::new_spanned(
            item.sig.fn_token,
            format!(
                "#[{attr_name}] works on async axum handlers: write `async fn {}`",
                item.sig.ident
            ),
        ));
    }
    if let Some(receiver) = item.sig.inputs.iter().find(|a| matches!(a, FnArg::Receiver(_))) {
        push(syn::Error::new(
            receiver.span(),
            format!(
                "#[{attr_name}] cannot guard a method that takes `self`: axum handlers take extractors \
                 only; pass state with `State<..>` instead"
            ),
        ));
    }
    let n = item.sig.inputs.len();
    if n >= AXUM_MAX_EXTRACTORS {
        let extra = item
            .sig
            .inputs
            .iter()
            .nth(AXUM_MAX_EXTRACTORS - 1)
            .expect("counted");
        push(syn::Error::new(
            extra.span(),
            format!(
                "this handler takes {n} extractors; with the guard #[{attr_name}] adds that is more than \
                 axum's limit of {AXUM_MAX_EXTRACTORS}: group some into a struct that derives `FromRequestParts`"
            ),
        ));
    }
    if let Some(v) = &item.sig.variadic {
        push(syn::Error::new_spanned(
            v,
            "variadic functions cannot be handlers",
        ));
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
