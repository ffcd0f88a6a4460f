//! How the check and the verify path scale: catalog size (10 → 1,000 permissions), roles per
//! principal (1 → 100), and distinct tokens in flight (1 → 100,000) against the default
//! verified-token cache (10,000 entries). Run: `cargo bench --bench scaling` in `bench-peers/`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use authz_core::{PermissionCatalog, Policy, Principal, RoleSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn catalog_of(n: usize) -> Arc<PermissionCatalog> {
    Arc::new(PermissionCatalog::new((0..n).map(|i| format!("res{}:act{i}", i / 10))).unwrap())
}

fn check_vs_catalog_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("check_vs_catalog_size");
    for n in [10, 100, 1000] {
        let catalog = catalog_of(n);
        let last = catalog.permissions()[n - 1].to_string();
        let policy = Policy::builder(catalog.clone())
            .role(RoleSpec::new("r").grants([last.clone()]))
            .build()
            .unwrap();
        let p = Principal::for_testing("u", ["r"], &policy);
        let id = catalog.id(&last).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(&p).can(black_box(id)))
        });
    }
    g.finish();
}

fn resolution_vs_roles(c: &mut Criterion) {
    let catalog = catalog_of(200);
    let mut builder = Policy::builder(catalog.clone());
    for r in 0..100 {
        builder =
            builder.role(RoleSpec::new(format!("role{r}")).grant(catalog.permissions()[r * 2].to_string()));
    }
    let policy = builder.build().unwrap();
    let mut g = c.benchmark_group("resolution_vs_roles_per_principal");
    for n in [1, 10, 100] {
        let roles: Vec<String> = (0..n).map(|r| format!("role{r}")).collect();
        g.bench_with_input(BenchmarkId::new("cold", n), &roles, |b, roles| {
            b.iter(|| policy.resolve(black_box(roles)))
        });
        g.bench_with_input(BenchmarkId::new("cached", n), &roles, |b, roles| {
            b.iter(|| policy.resolve_cached(black_box(roles)))
        });
    }
    g.finish();
}

fn tokens_in_flight(c: &mut Criterion) {
    let catalog = catalog_of(10);
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("res0:act0"))
            .build()
            .unwrap(),
    );
    let secret = [9u8; 32];
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let keys = StaticKeys::new(
        KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &secret).unwrap()]).unwrap(),
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let token = |i: usize| {
        let claims = serde_json::json!({"iss": "i", "aud": "a", "sub": format!("user{i}"), "exp": 4_102_444_800u64, "roles": ["viewer"]});
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let all: Vec<String> = (0..100_000).map(token).collect();
    let mut g = c.benchmark_group("verify_vs_distinct_tokens");
    g.sample_size(10);
    for n in [1, 100, 10_000, 100_000] {
        let auth = Authenticator::builder(policy.clone())
            .issuer(Issuer::new(
                JwtVerifier::builder("i", "a", [Algorithm::HS256])
                    .build()
                    .unwrap(),
                keys.clone(),
            ))
            .build()
            .unwrap();
        let tokens = &all[..n];
        let mut i = 0;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                ready(auth.authenticate(black_box(&tokens[i]))).unwrap()
            })
        });
        let s = auth.cache_stats();
        eprintln!(
            "distinct tokens {n}: hit ratio {:.3}, cached entries {} (bound: 10,000 entries)",
            s.hits as f64 / (s.hits + s.misses).max(1) as f64,
            s.entries
        );
    }
    g.finish();
}

criterion_group!(
    benches,
    check_vs_catalog_size,
    resolution_vs_roles,
    tokens_in_flight
);
criterion_main!(benches);

/// The production future, polled once: with static keys it never waits.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("static keys never wait"),
    }
}
