use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission("model:run", crate = ::authz_axum, crate = ::authz_axum)]
async fn handler() {}

fn main() {}
