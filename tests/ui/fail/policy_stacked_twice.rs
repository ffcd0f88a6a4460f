use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run", "model:deploy"] }
}

#[require_permission("model:run", policy = "run_hours")]
#[require_permission("model:deploy", policy = "deploy")]
async fn handler() {}

fn main() {}
