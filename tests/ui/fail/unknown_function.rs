use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission(anyof("model:run"))]
async fn handler() {}

fn main() {}
