use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission("model:run", catalogue = crate::Catalog)]
async fn handler() {}

fn main() {}
