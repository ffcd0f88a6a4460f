use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission(any())]
async fn empty_any() {}

#[require_permission(all())]
async fn empty_all() {}

fn main() {}
