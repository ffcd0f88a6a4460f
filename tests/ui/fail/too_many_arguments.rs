use authz_axum::prelude::*;
use axum::http::{HeaderMap, Method, Uri, Version};

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission("model:run")]
async fn handler(
    _a: HeaderMap,
    _b: Method,
    _c: Uri,
    _d: Version,
    _e: HeaderMap,
    _f: Method,
    _g: Uri,
    _h: Version,
    _i: HeaderMap,
    _j: Method,
    _k: Uri,
    _l: Version,
    _m: HeaderMap,
    _n: Method,
    _o: Uri,
    _p: Version,
) {
}

fn main() {}
