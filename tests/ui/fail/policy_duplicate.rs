use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:deploy"] }
}

#[require_permission("model:deploy", policy = "deploy", policy = "deploy_v2")]
async fn handler() {}

fn main() {}
