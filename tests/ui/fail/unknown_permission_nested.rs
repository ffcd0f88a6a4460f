use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "data:write", "model:run"] }
}

#[require_permission(any("data:read", all("data:wirte", not("model:run"))))]
async fn handler() {}

fn main() {}
