//! `AuditedRouter` and `RouteTable::lint`: what the lint reports (and what it must not), and
//! methods axum cannot route refused at construction instead of being served as GET.

use std::sync::Arc;

use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::routing::LintFinding;
use authz_axum::{AuditedRouter, RouteTable};
use axum::http::Method;

use crate::common::{captured_logs, init_tracing};

authz_axum::catalog! {
    pub struct Catalog {
        permissions: ["data:read", "data:write", "report:create", "report:read_any", "audit:read"],
        roles: ["viewer", "auditor"],
    }
}

#[require_permission("data:read")]
async fn list() {}

#[require_permission("report:create")]
async fn create_report() {}

/// Reads any report with `report:read_any`, or one's own without it: checked in the handler.
async fn get_report(_p: Principal) {}

#[require_permission("data:write")]
async fn write() {}

#[require_role("auditor")]
async fn audit_log() {}

async fn healthz() {}

fn policy() -> Policy {
    Policy::builder(Arc::new(Catalog::catalog().clone()))
        .role(RoleSpec::new("viewer").grants(["data:read", "report:create"]))
        .role(
            RoleSpec::new("manager")
                .inherits("viewer")
                .grant("report:read_any"),
        )
        .build()
        .unwrap()
}

fn table() -> RouteTable {
    let (_, table) = AuditedRouter::<()>::new()
        .public(Method::GET, "/healthz", healthz)
        .get("/datasets", list)
        .post("/reports", create_report)
        .get("/reports/{id}", get_report)
        .checked_in_handlers(["report:read_any"])
        .into_parts();
    table
}

#[test]
fn a_permission_checked_in_a_handler_is_not_reported_as_unused() {
    let table = table();
    assert_eq!(table.checked_in_handlers(), ["report:read_any"]);
    let findings = table.lint(&policy());
    assert!(
        !findings.contains(&LintFinding::UnusedPermission("report:read_any".into())),
        "{findings:?}"
    );
    // What no route requires and no handler checks is still reported, and nothing else is.
    assert_eq!(
        findings,
        [
            LintFinding::UnusedPermission("data:write".into()),
            LintFinding::UnusedPermission("audit:read".into()),
        ]
    );
    assert_eq!(
        findings[0].to_string(),
        "permission `data:write` is declared but no route requires it"
    );
}

#[test]
fn without_the_declaration_the_handler_checked_permission_is_reported() {
    let (_, table) = AuditedRouter::<()>::new()
        .get("/datasets", list)
        .post("/reports", create_report)
        .get("/reports/{id}", get_report)
        .get("/audit", audit_log)
        .post("/datasets", write)
        .into_parts();
    let findings = table.lint(&policy());
    assert!(findings.contains(&LintFinding::UnusedPermission("report:read_any".into())));
}

#[test]
fn a_requirement_no_role_satisfies_is_reported() {
    let (_, table) = AuditedRouter::<()>::new()
        .public(Method::GET, "/healthz", healthz)
        .get("/datasets", list)
        .post("/datasets", write)
        .get("/audit", audit_log)
        .post("/reports", create_report)
        .get("/reports/{id}", get_report)
        .checked_in_handlers(["report:read_any", "audit:read"])
        .into_parts();
    let findings = table.lint(&policy());
    assert_eq!(
        findings,
        [
            LintFinding::Unsatisfiable {
                method: Method::POST,
                path: "/datasets".into(),
                requirement: "\"data:write\"".into(),
            },
            LintFinding::Unsatisfiable {
                method: Method::GET,
                path: "/audit".into(),
                requirement: "role(\"auditor\")".into(),
            },
        ]
    );
    assert_eq!(
        findings[1].to_string(),
        "GET /audit requires role(\"auditor\"), which no role of the policy satisfies"
    );
}

#[tokio::test]
async fn the_model_registry_starts_without_policy_lint_warnings() {
    // The example declares `report:read_any` as checked in its report handler; before the lint
    // honoured that declaration, every start logged "policy lint" for it.
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    // Logs are shared by the whole binary: no start, by this test or any other, may warn.
    let lint: Vec<String> = captured_logs()
        .lines()
        .filter(|l| l.contains("policy lint"))
        .map(str::to_string)
        .collect();
    assert!(lint.is_empty(), "{lint:#?}");
    server.stop().await;
}

#[test]
#[should_panic(expected = "cannot route PURGE /cache")]
fn an_extension_method_is_refused_at_construction() {
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let _ = AuditedRouter::<()>::new().route(purge, "/cache", list);
}
