use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:deploy"] }
}

#[require_permission("model:deploy", policy = deploy)]
async fn handler() {}

fn main() {}
