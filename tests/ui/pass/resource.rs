//! Every resource-rule form compiles and routes.
use authz_axum::core::Principal as CorePrincipal;
use authz_axum::prelude::*;
use authz_axum::resource::Load;
use axum::Json;
use axum::Router;
use axum::routing::{get, post};

authz_axum::catalog! {
    pub struct Catalog {
        permissions: ["report:read", "report:read_any", "payment:approve"],
        roles: ["auditor"],
    }
}

#[derive(Clone)]
struct Db;

#[derive(Clone, serde::Serialize, authz_axum::Resource)]
#[resource(type = "report", owner = owner, tenant = tenant)]
struct Report {
    owner: String,
    tenant: Option<String>,
    reviewers: Vec<String>,
}

#[derive(Clone, authz_axum::Resource)]
struct Payment {
    initiated_by: std::sync::Arc<str>,
    approved_by: Option<String>,
}

impl Load<Db> for Report {
    type Id = uuid::Uuid;
    type Error = std::io::Error;
    async fn load(_: &Db, _: uuid::Uuid, _: &CorePrincipal) -> Result<Option<Self>, Self::Error> {
        Ok(None)
    }
}

impl Load<Db> for Payment {
    type Id = (String, u64);
    type Error = String;
    async fn load(_: &Db, _: (String, u64), _: &CorePrincipal) -> Result<Option<Self>, Self::Error> {
        Ok(None)
    }
}

fn reviewer(p: &CorePrincipal, r: &Report) -> bool {
    r.reviewers.iter().any(|x| x == p.subject())
}

#[require_permission("report:read")]
#[authorize(visible = owner_or("report:read_any"))]
async fn read(Authorized(report): Authorized<Report>) -> Json<Report> {
    Json(report)
}

#[authorize(visible = any(owner, role("auditor"), check(reviewer)), allow = all(same_tenant, not("report:read_any")), deny = not_found)]
async fn any_caller(principal: Principal, mut report: Authorized<Report>) -> String {
    report.owner.push('!');
    format!("{} {}", principal.subject(), report.into_inner().owner)
}

#[require_permission("payment:approve")]
#[authorize(allow = all(other_than(initiated_by), not(party(approved_by))), catalog = Catalog, crate = ::authz_axum)]
pub async fn approve(Authorized(_p): Authorized<Payment>, body: String) -> String {
    body
}

fn main() {
    let _: Router = Router::new()
        .route("/reports/{id}", get(read).post(any_caller))
        .route("/tenants/{t}/payments/{id}", post(approve))
        .with_state(Db);
}
