use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "model:run"] }
}

#[require_permission("data:read", "model:run")]
async fn handler() {}

fn main() {}
