use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "data:write"] }
}

#[require_permission(any("data:read", all("data:write"))))]
async fn handler() {}

fn main() {}
