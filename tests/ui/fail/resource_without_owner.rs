use authz_axum::prelude::*;

authz_axum::catalog! { pub struct Catalog { permissions: ["report:read"] } }

#[derive(authz_axum::Resource)]
#[resource(tenant = tenant)]
struct Report {
    tenant: String,
}

#[authorize(visible = owner)]
async fn read(Authorized(_r): Authorized<Report>) {}

fn main() {}
