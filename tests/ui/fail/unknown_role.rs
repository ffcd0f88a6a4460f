use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog {
        permissions: ["data:read"],
        roles: ["viewer", "analyst", "admin"],
    }
}

#[require_role("admn")]
async fn handler() {}

fn main() {}
