authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "model:run", "data:read"] }
}

fn main() {}
