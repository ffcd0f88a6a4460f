use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

#[require_permission("model:run:fast")]
async fn third_colon() {}

#[require_permission("model: run")]
async fn whitespace() {}

#[require_permission("Model:Run")]
async fn uppercase() {}

#[require_permission(":run")]
async fn empty_resource() {}

fn main() {}
