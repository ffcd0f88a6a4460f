//! One authorization decision, side by side in one run: authz's resolved-principal check, the
//! naive role → set-of-strings check, casbin (RBAC model), cedar-policy and regorus (Rego).
//! The seed's model: viewer ⊂ analyst ⊂ admin; a principal with roles `analyst, viewer`;
//! `model:run` is allowed, `model:deploy` denied. Run: `cargo bench --bench decision` in
//! `bench-peers/`.

#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;

use authz_core::{PermissionCatalog, Policy, Principal, RoleSpec};
use criterion::{Criterion, criterion_group, criterion_main};

const PERMS: [&str; 4] = ["data:read", "data:write", "model:run", "model:deploy"];
const ROLES: [(&str, &[&str]); 3] = [
    ("viewer", &["data:read"]),
    ("analyst", &["data:read", "model:run"]),
    ("admin", &["data:read", "data:write", "model:run", "model:deploy"]),
];

fn authz() -> (Principal, authz_core::PermissionId, authz_core::PermissionId) {
    let catalog = Arc::new(PermissionCatalog::new(PERMS).unwrap());
    let policy = Policy::builder(catalog.clone())
        .role(RoleSpec::new("viewer").grant("data:read"))
        .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
        .role(
            RoleSpec::new("admin")
                .inherits("analyst")
                .grants(["data:write", "model:deploy"]),
        )
        .build()
        .unwrap();
    let p = Principal::for_testing("u", ["analyst", "viewer"], &policy);
    (
        p,
        catalog.id("model:run").unwrap(),
        catalog.id("model:deploy").unwrap(),
    )
}

fn naive() -> HashMap<String, HashSet<String>> {
    ROLES
        .iter()
        .map(|(r, ps)| (r.to_string(), ps.iter().map(|p| p.to_string()).collect()))
        .collect()
}

const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, perm

[policy_definition]
p = sub, perm

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.perm == p.perm
"#;

async fn casbin_enforcer() -> casbin::Enforcer {
    use casbin::prelude::*;
    let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
    let mut e = Enforcer::new(model, MemoryAdapter::default()).await.unwrap();
    e.add_policies(vec![
        vec!["viewer".into(), "data:read".into()],
        vec!["analyst".into(), "model:run".into()],
        vec!["admin".into(), "data:write".into()],
        vec!["admin".into(), "model:deploy".into()],
    ])
    .await
    .unwrap();
    e.add_grouping_policies(vec![
        vec!["analyst".into(), "viewer".into()],
        vec!["admin".into(), "analyst".into()],
        vec!["u".into(), "analyst".into()],
        vec!["u".into(), "viewer".into()],
    ])
    .await
    .unwrap();
    e
}

const CEDAR_POLICIES: &str = r#"
permit(principal in Role::"viewer", action == Action::"data:read", resource);
permit(principal in Role::"analyst", action == Action::"model:run", resource);
permit(principal in Role::"admin", action in [Action::"data:write", Action::"model:deploy"], resource);
"#;

const CEDAR_ENTITIES: &str = r#"[
  {"uid": {"type": "User", "id": "u"}, "attrs": {}, "parents": [{"type": "Role", "id": "analyst"}, {"type": "Role", "id": "viewer"}]},
  {"uid": {"type": "Role", "id": "viewer"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Role", "id": "analyst"}, "attrs": {}, "parents": [{"type": "Role", "id": "viewer"}]},
  {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": [{"type": "Role", "id": "analyst"}]}
]"#;

const REGO: &str = r#"
package authz
import rego.v1

default allow := false

allow if {
    some role in input.roles
    input.permission in data.role_permissions[role]
}
"#;

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (principal, run, deploy) = authz();
    let table = naive();
    let roles = ["analyst".to_string(), "viewer".to_string()];
    let enforcer = rt.block_on(casbin_enforcer());

    use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
    let policies: PolicySet = CEDAR_POLICIES.parse().unwrap();
    let entities = Entities::from_json_str(CEDAR_ENTITIES, None).unwrap();
    let user: EntityUid = r#"User::"u""#.parse().unwrap();
    let resource: EntityUid = r#"Resource::"any""#.parse().unwrap();
    let request = |action: &str| {
        let action: EntityUid = format!("Action::\"{action}\"").parse().unwrap();
        Request::new(user.clone(), action, resource.clone(), Context::empty(), None).unwrap()
    };
    let (cedar_run, cedar_deploy) = (request("model:run"), request("model:deploy"));
    let authorizer = Authorizer::new();

    let mut rego = regorus::Engine::new();
    rego.add_policy("authz.rego".into(), REGO.into()).unwrap();
    let data = serde_json::json!({ "role_permissions": ROLES.iter().map(|(r, p)| (r.to_string(), p.to_vec())).collect::<HashMap<_, _>>() });
    rego.add_data(regorus::Value::from_json_str(&data.to_string()).unwrap())
        .unwrap();
    let input = |perm: &str| {
        regorus::Value::from_json_str(
            &serde_json::json!({"roles": ["analyst", "viewer"], "permission": perm}).to_string(),
        )
        .unwrap()
    };
    let (rego_run, rego_deploy) = (input("model:run"), input("model:deploy"));
    let mut rego_check = |input: &regorus::Value| {
        rego.set_input(input.clone());
        rego.eval_rule("data.authz.allow".into()).unwrap() == regorus::Value::from(true)
    };

    // Every engine agrees before anything is timed.
    use casbin::CoreApi;
    assert!(principal.can(run) && !principal.can(deploy));
    assert!(
        enforcer.enforce(("u", "model:run")).unwrap() && !enforcer.enforce(("u", "model:deploy")).unwrap()
    );
    assert_eq!(
        authorizer
            .is_authorized(&cedar_run, &policies, &entities)
            .decision(),
        Decision::Allow
    );
    assert_eq!(
        authorizer
            .is_authorized(&cedar_deploy, &policies, &entities)
            .decision(),
        Decision::Deny
    );
    assert!(rego_check(&rego_run) && !rego_check(&rego_deploy));

    let check_naive = |perm: &str| {
        roles
            .iter()
            .any(|r| table.get(r).is_some_and(|s| s.contains(perm)))
    };
    let mut g = c.benchmark_group("decision");
    g.bench_function("authz/allowed", |b| {
        b.iter(|| black_box(&principal).can(black_box(run)))
    });
    g.bench_function("authz/denied", |b| {
        b.iter(|| black_box(&principal).can(black_box(deploy)))
    });
    g.bench_function("naive/allowed", |b| {
        b.iter(|| check_naive(black_box("model:run")))
    });
    g.bench_function("naive/denied", |b| {
        b.iter(|| check_naive(black_box("model:deploy")))
    });
    g.bench_function("casbin/allowed", |b| {
        b.iter(|| enforcer.enforce(black_box(("u", "model:run"))).unwrap())
    });
    g.bench_function("casbin/denied", |b| {
        b.iter(|| enforcer.enforce(black_box(("u", "model:deploy"))).unwrap())
    });
    g.bench_function("cedar/allowed", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(black_box(&cedar_run), &policies, &entities)
                .decision()
        })
    });
    g.bench_function("cedar/denied", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(black_box(&cedar_deploy), &policies, &entities)
                .decision()
        })
    });
    g.bench_function("regorus/allowed", |b| b.iter(|| rego_check(black_box(&rego_run))));
    g.bench_function("regorus/denied", |b| {
        b.iter(|| rego_check(black_box(&rego_deploy)))
    });
    g.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
