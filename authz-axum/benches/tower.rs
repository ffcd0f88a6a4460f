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

use std::hint::black_box;
use std::sync::Arc;

use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::{Authenticator, Issuer, StaticKeys};
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn tower(c: &mut Criterion) {
    let secret = b"a-bench-secret-of-at-least-32-bytes!!";
    let policy = Arc::new(
        Policy::builder(Arc::new(Catalog::catalog().clone()))
            .role(RoleSpec::new("analyst").grant("model:run"))
            .build()
            .unwrap(),
    );
    let verifier = JwtVerifier::builder("https://bench.test", "bench", [Algorithm::HS256])
        .build()
        .unwrap();
    let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, secret).unwrap()]).unwrap();
    let auth = Arc::new(
        Authenticator::builder(policy)
            .issuer(Issuer::new(verifier, StaticKeys::new(keys)))
            .build()
            .unwrap(),
    );
    let token = hs256(
        secret,
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
