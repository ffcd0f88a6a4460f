#[derive(authz_axum::Resource)]
#[resource(owner = ownr)]
struct Report {
    owner: String,
}

#[derive(authz_axum::Resource)]
#[resource(tenant = tenant)]
struct Dataset {
    tenant: u64,
}

#[derive(authz_axum::Resource)]
#[resource(onwer = owner)]
struct Model {
    owner: String,
}

fn main() {}
