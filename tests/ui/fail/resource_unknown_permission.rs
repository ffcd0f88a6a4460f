use authz_axum::prelude::*;

authz_axum::catalog! { pub struct Catalog { permissions: ["report:read", "report:read_any"] } }

#[derive(authz_axum::Resource)]
#[resource(owner = owner)]
struct Report {
    owner: String,
}

#[authorize(visible = owner_or("report:read_anyy"))]
async fn read(Authorized(_r): Authorized<Report>) {}

fn main() {}
