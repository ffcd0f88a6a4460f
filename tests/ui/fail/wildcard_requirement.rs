use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission("model:*")]
async fn handler() {}

fn main() {}
