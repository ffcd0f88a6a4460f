use authz_axum::prelude::*;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run"] }
}

struct Api;

impl Api {
    #[require_permission("model:run")]
    async fn handler(&self) {}
}

fn main() {}
