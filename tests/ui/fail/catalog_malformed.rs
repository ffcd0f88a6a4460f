authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read", "model run", "report:*"] }
}

fn main() {}
