use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:deploy"] }
}

#[require_permission("model:deploy", polcy = "deploy")]
async fn handler() {}

fn main() {}
