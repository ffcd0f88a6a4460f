authz_axum::catalog! {
    pub struct Catalog { permissions: ["data:read-all", "data:read_all"] }
}

fn main() {}
