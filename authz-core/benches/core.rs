//! Benchmarks of the permission model: `cargo bench -p authz-axum-core`.
//!
//! Every group measures authz next to the baseline it replaces, in the same run, so that
//! BENCHMARKS.md can report ratios.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;

use authz_core::{PermissionCatalog, Policy, Principal, RoleSpec};
use criterion::{Criterion, criterion_group, criterion_main};

fn seed_policy() -> (Arc<PermissionCatalog>, Policy) {
    let catalog = Arc::new(
        PermissionCatalog::new(["data:read", "data:write", "model:run", "model:deploy"]).expect("catalog"),
    );
    let policy = Policy::builder(catalog.clone())
        .role(RoleSpec::new("viewer").grant("data:read"))
        .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
        .role(
            RoleSpec::new("admin")
                .inherits("analyst")
                .grants(["data:write", "model:deploy"]),
        )
        .build()
        .expect("policy");
    (catalog, policy)
}

/// The seed's Python pattern, in Rust: role → set of permission strings.
fn naive_table() -> HashMap<String, HashSet<String>> {
    let mut m = HashMap::new();
    let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    m.insert("viewer".to_string(), set(&["data:read"]));
    m.insert("analyst".to_string(), set(&["data:read", "model:run"]));
    m.insert(
        "admin".to_string(),
        set(&["data:read", "data:write", "model:run", "model:deploy"]),
    );
    m
}

fn naive_check(table: &HashMap<String, HashSet<String>>, roles: &[String], permission: &str) -> bool {
    roles
        .iter()
        .any(|r| table.get(r).is_some_and(|s| s.contains(permission)))
}

fn check(c: &mut Criterion) {
    let (catalog, policy) = seed_policy();
    let principal = Principal::for_testing("u", ["analyst", "viewer"], &policy);
    let run = catalog.id("model:run").expect("declared");
    let deploy = catalog.id("model:deploy").expect("declared");
    let table = naive_table();
    let roles = vec!["analyst".to_string(), "viewer".to_string()];
    let mut g = c.benchmark_group("permission_check");
    g.bench_function("authz_bitset/allowed", |b| {
        b.iter(|| black_box(&principal).can(black_box(run)))
    });
    g.bench_function("authz_bitset/denied", |b| {
        b.iter(|| black_box(&principal).can(black_box(deploy)))
    });
    g.bench_function("naive_hashmap/allowed", |b| {
        b.iter(|| naive_check(black_box(&table), black_box(&roles), black_box("model:run")))
    });
    g.bench_function("naive_hashmap/denied", |b| {
        b.iter(|| naive_check(black_box(&table), black_box(&roles), black_box("model:deploy")))
    });
    g.finish();
}

fn resolution(c: &mut Criterion) {
    let (_, policy) = seed_policy();
    let roles = ["analyst", "viewer"];
    let mut g = c.benchmark_group("role_resolution");
    g.bench_function("cold/resolve(analyst,viewer)", |b| {
        b.iter(|| policy.resolve(black_box(roles)))
    });
    g.bench_function("cached/resolve_cached(analyst,viewer)", |b| {
        b.iter(|| policy.resolve_cached(black_box(&roles)))
    });
    g.bench_function("principal_from_roles", |b| {
        b.iter(|| Principal::for_testing("u", black_box(roles), &policy))
    });
    g.finish();
}

fn policy_load(c: &mut Criterion) {
    let permissions: Vec<String> = (0..200).map(|i| format!("res{}:act{}", i / 10, i % 10)).collect();
    let catalog = Arc::new(PermissionCatalog::new(&permissions).expect("catalog"));
    let mut toml = String::new();
    for r in 0..1000 {
        toml.push_str(&format!("[roles.role{r}]\n"));
        if r > 0 {
            toml.push_str(&format!("inherits = [\"role{}\"]\n", r / 2));
        }
        let grants: Vec<String> = (0..5)
            .map(|k| format!("\"{}\"", permissions[(r * 7 + k * 13) % 200]))
            .collect();
        toml.push_str(&format!("grants = [{}]\n\n", grants.join(", ")));
    }
    let mut g = c.benchmark_group("policy_load");
    g.sample_size(10);
    g.bench_function("toml_1000_roles_x_200_permissions", |b| {
        b.iter(|| Policy::from_toml_str(black_box(&toml), catalog.clone(), None).expect("valid"))
    });
    g.finish();
}

criterion_group!(benches, check, resolution, policy_load);
criterion_main!(benches);
