//! What a handler's `policy = "…"` adds to a request whose decision is in the cache — router,
//! layer, guard, input document, decision cache, handler, no sockets — next to the same guard
//! without a policy, in one run: `cargo bench -p authz-axum --bench policy`.
//!
//! Both routes require `model:deploy`; the token (HS256) is already in the verified-token cache
//! and the engine's decision in the decision cache (`Cached`), so the difference is what the
//! policy seam costs a request in production when the engine is not asked: building the
//! [`Input`](authz_axum::core::engine::Input) from the principal and the request, the cache hit,
//! and the decision's bookkeeping (no subscriber is installed, so the decision log line is
//! not formatted; with `info` logging it adds a line per request). The engine behind the cache
//! allows everything: it is asked once per second per distinct input (`request.time` is part
//! of the key), which at this rate is noise.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use authz_axum::Authenticator;
use authz_axum::core::engine::{CacheConfig, Cached, Decision, Input, Pending, PolicyEngine};
use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

authz_axum::catalog! { pub struct Catalog { permissions: ["model:deploy"] } }

#[require_permission("model:deploy")]
async fn without_policy() -> &'static str {
    "ok"
}

#[require_permission("model:deploy", policy = "deploy")]
async fn with_policy() -> &'static str {
    "ok"
}

/// Allows everything (what it decides is not what is measured: the cache answers).
#[derive(Debug)]
struct Allow;

impl PolicyEngine for Allow {
    fn decide<'a>(&'a self, _: &'a str, _: &'a Input) -> Pending<'a> {
        Pending::ready(Decision::allow())
    }
    fn policies(&self) -> Vec<String> {
        vec!["deploy".into()]
    }
    fn kind(&self) -> &'static str {
        "allow"
    }
}

fn policy_route(c: &mut Criterion) {
    let policy = Arc::new(
        Policy::builder(Arc::new(Catalog::catalog().clone()))
            .role(RoleSpec::new("analyst").grant("model:deploy"))
            .build()
            .unwrap(),
    );
    let auth = Arc::new(
        Authenticator::builder(policy)
            .issuer(support::issuer())
            .build()
            .unwrap(),
    );
    let token = support::hs256(
        &serde_json::json!({"iss": "https://bench.test", "aud": "bench", "sub": "u", "exp": 4_102_444_800u64, "roles": ["analyst"]}),
    );
    let engine = Arc::new(Cached::new(
        Allow,
        CacheConfig::default(),
        authz_axum::core::clock::system(),
    ));
    let router = axum::Router::new()
        .route("/models/{id}/plain", axum::routing::post(without_policy))
        .route("/models/{id}/deploy", axum::routing::post(with_policy))
        .layer(AuthLayer::new(auth).policy_engine(engine.clone()));
    let request = |path: &str| {
        Request::post(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for path in ["/models/m-1/plain", "/models/m-1/deploy"] {
        let status = rt
            .block_on(router.clone().oneshot(request(path)))
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(engine.len(), 1, "the policy route's decision is cached");

    let mut g = c.benchmark_group("tower/policy_cache_hit");
    g.bench_function("guard_without_policy", |b| {
        b.iter(|| {
            rt.block_on(router.clone().oneshot(black_box(request("/models/m-1/plain"))))
                .unwrap()
        })
    });
    g.bench_function("guard_with_policy", |b| {
        b.iter(|| {
            rt.block_on(router.clone().oneshot(black_box(request("/models/m-1/deploy"))))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, policy_route);
criterion_main!(benches);
