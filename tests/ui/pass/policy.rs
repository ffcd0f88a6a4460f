//! A policy named next to the permission: checked by the guard, or by `PolicyChecked` with the
//! body's facts; the route table records the name.
use authz_axum::AuditedRouter;
use authz_axum::engine::{PolicyChecked, PolicyContext};
use authz_axum::prelude::*;
use axum::Json;
use axum::extract::Path;

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run", "model:deploy"] }
}

#[derive(serde::Deserialize)]
pub struct Deploy {
    environment: String,
}

impl PolicyContext for Deploy {
    fn policy_context(&self) -> serde_json::Value {
        serde_json::json!({ "environment": self.environment })
    }
}

#[require_permission("model:run", policy = "run_hours")]
async fn run(Path(id): Path<String>) -> String {
    id
}

#[require_permission("model:deploy", policy = "deploy")]
pub async fn deploy(
    Path(id): Path<String>,
    PolicyChecked(Json(body)): PolicyChecked<Json<Deploy>>,
) -> String {
    format!("{id} to {}", body.environment)
}

// Stacked: the policy may sit on either attribute.
#[require_permission("model:run")]
#[require_permission("model:deploy", policy = "deploy")]
async fn both() {}

fn main() {
    let (_router, table) = AuditedRouter::<()>::new()
        .post("/models/{id}/run", run)
        .post("/models/{id}/deploy", deploy)
        .post("/both", both)
        .into_parts();
    let names: Vec<(&str, String)> = table.policies().collect();
    assert_eq!(
        names,
        [
            ("run_hours", "POST /models/{id}/run".to_string()),
            ("deploy", "POST /models/{id}/deploy".to_string()),
            ("deploy", "POST /both".to_string()),
        ]
    );
}
