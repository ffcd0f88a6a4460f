use authz_axum::prelude::*;

authz_axum::catalog! { pub struct Catalog { permissions: ["report:read"] } }

#[derive(authz_axum::Resource)]
#[resource(owner = owner)]
struct Report {
    owner: String,
}

#[authorize(visible = ownr)]
async fn typo(Authorized(_r): Authorized<Report>) {}

#[authorize(visibel = owner)]
async fn bad_argument(Authorized(_r): Authorized<Report>) {}

#[authorize(visible = owner, deny = hidden)]
async fn bad_deny(Authorized(_r): Authorized<Report>) {}

#[authorize(visible = owner)]
async fn no_parameter(_p: Principal) {}

fn main() {}
