use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:deploy"] }
}

#[require_permission("model:deploy", policy = "Deploy/Prod")]
async fn handler() {}

fn main() {}
