use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "model:run", "model:deploy"] }
}

#[require_permission("model:runn")]
async fn run_model() {}

fn main() {}
