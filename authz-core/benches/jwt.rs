//! Token verification benchmarks: `cargo bench -p authz-axum-core --bench jwt`.
//!
//! Per algorithm, in one run: the raw signature check with a key parsed once (the floor),
//! bare `jsonwebtoken::decode` of the same token (the baseline), authz's verifier alone, and
//! the production path — `auth::Authenticator::authenticate`, exactly what `AuthLayer` calls —
//! with the cache off (full verification to a `Principal`) and on (a hit).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::jwt::{JwtVerifier, KeySet};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};

use authz_tests::signed_tokens::{Signed, jwt_alg, signed_tokens};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api.example.com";

/// Polls once: with static keys the production future never waits.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("static keys never wait"),
    }
}

fn verification(c: &mut Criterion) {
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
            .build()
            .unwrap(),
    );
    let claims = serde_json::json!({
        "sub": "user_42", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "iat": 1_709_896_400u64,
        "roles": ["analyst", "viewer"],
    });
    for Signed {
        alg,
        token,
        ours,
        theirs,
    } in signed_tokens(&claims)
    {
        let keys = StaticKeys::new(KeySet::new(vec![ours]).unwrap());
        let verifier = JwtVerifier::builder(ISS, AUD, [alg]).build().unwrap();
        let authenticator = |cache_entries| {
            Authenticator::builder(policy.clone())
                .issuer(Issuer::new(verifier.clone(), keys.clone()))
                .cache_entries(cache_entries)
                .build()
                .unwrap()
        };
        let uncached = authenticator(0);
        let cached = authenticator(1000);
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &theirs, &validation).is_ok());
        assert!(ready(uncached.authenticate(&token)).is_ok());
        assert!(ready(cached.authenticate(&token)).is_ok());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let set = keys.key_set().clone();
        let key = &set.keys()[0];

        let mut g = c.benchmark_group(format!("verify/{alg}"));
        g.bench_function("raw_signature_check", |b| {
            b.iter(|| key.verify(black_box(input.as_bytes()), black_box(&sig)))
        });
        g.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &theirs, &validation).unwrap()
            })
        });
        g.bench_function("authz_verifier", |b| {
            b.iter(|| {
                verifier
                    .verify_at(black_box(&token), &set, 1_800_000_000)
                    .unwrap()
            })
        });
        g.bench_function("authz_full_path_uncached", |b| {
            b.iter(|| ready(uncached.authenticate(black_box(&token))).unwrap())
        });
        g.bench_function("authz_cache_hit", |b| {
            b.iter(|| ready(cached.authenticate(black_box(&token))).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, verification);
criterion_main!(benches);
