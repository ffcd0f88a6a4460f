use authz_axum::prelude::*;

authz_axum::catalog! { pub struct Catalog { permissions: ["payment:approve"] } }

#[derive(authz_axum::Resource)]
struct Payment {
    initiated_by: String,
}

#[require_permission("payment:approve")]
#[authorize(allow = other_than(initiatd_by))]
async fn approve(Authorized(_p): Authorized<Payment>) {}

fn main() {}
