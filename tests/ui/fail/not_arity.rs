use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "data:export"] }
}

#[require_permission(not("data:read", "data:export"))]
async fn handler() {}

fn main() {}
