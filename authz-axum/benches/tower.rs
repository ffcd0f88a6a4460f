//! What a request pays for authentication and the guard at the tower level — router, layer,
//! guard, handler, no sockets — next to the same router without authentication, in one run:
//! `cargo bench -p authz-axum --bench tower`.
//!
//! Both routers receive the same request (the baseline also carries the `Authorization`
//! header, so it pays for the same header parsing by hyper's types); the token is an HS256
//! token already in the verified-token cache (a client reusing its token).
//!
//! Two ways to call a router, both measured:
//! - `prepared`: the router after `Router::with_state(())`, which is what `axum::serve`
//!   (`into_make_service`) and `authz_axum::serve::serve` run: every handler is turned into a
//!   route once, with its layers applied once.
//! - `unprepared`: the router called directly (as tests do with `oneshot`): axum turns the
//!   handler into a route and applies the route's layers (the `AuthLayer` among them) on every
//!   request.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use authz_axum::Authenticator;
use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt as _;

authz_axum::catalog! { pub struct Catalog { permissions: ["model:run"] } }

#[require_permission("model:run")]
async fn guarded() -> &'static str {
    "ok"
}

async fn open() -> &'static str {
    "ok"
}

fn tower(c: &mut Criterion) {
    let policy = Arc::new(
        Policy::builder(Arc::new(Catalog::catalog().clone()))
            .role(RoleSpec::new("analyst").grant("model:run"))
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
    let authz_router = axum::Router::new()
        .route("/run", axum::routing::get(guarded))
        .layer(AuthLayer::new(auth));
    let plain_router = axum::Router::new().route("/run", axum::routing::get(open));
    let request = || {
        Request::get("/run")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // Warm the verified-token cache.
    let status = rt
        .block_on(authz_router.clone().oneshot(request()))
        .unwrap()
        .status();
    assert_eq!(status, 200);

    for (name, authz_router, plain_router) in [
        (
            "prepared",
            authz_router.clone().with_state(()),
            plain_router.clone().with_state(()),
        ),
        ("unprepared", authz_router, plain_router),
    ] {
        let mut g = c.benchmark_group(format!("tower/HS256_cache_hit/{name}"));
        g.bench_function("no_auth_same_request", |b| {
            b.iter(|| {
                rt.block_on(plain_router.clone().oneshot(black_box(request())))
                    .unwrap()
            })
        });
        g.bench_function("authz_layer_and_guard", |b| {
            b.iter(|| {
                rt.block_on(authz_router.clone().oneshot(black_box(request())))
                    .unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, tower);
criterion_main!(benches);
