use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read"] }
}

#[require_role("admin")]
async fn handler() {}

fn main() {}
