//! DPoP proof verification next to the access token's own verification, in one run:
//! `cargo bench -p authz-axum-core --bench dpop`.
//!
//! `access_token_full_path` is the production authentication of an ES256 access token with
//! the cache off; `access_token_cache_hit` the same with a hit (what a client reusing its token
//! pays); `dpop_proof_es256` is `DpopVerifier::verify` of a fresh ES256 proof with `ath` —
//! every check including the replay cache — which a DPoP request pays on top, every time
//! (proofs are single use, so there is no cache for them).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::dpop::{DpopKey, DpopVerifier, ProofContext};
use authz_core::jwt::{Algorithm, JwtVerifier, KeySet};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[allow(dead_code)] // the DPoP bench needs only the ES256 token
use authz_tests::signed_tokens::{Signed, signed_tokens};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api.example.com";
const URI: &str = "https://api.example.com/models/m1/deploy";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("static keys never wait"),
    }
}

fn dpop(c: &mut Criterion) {
    let catalog = Arc::new(PermissionCatalog::new(["model:deploy"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("admin").grant("model:deploy"))
            .build()
            .unwrap(),
    );
    let claims = serde_json::json!({
        "sub": "admin-client", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "iat": 1_709_896_400u64,
        "roles": ["admin"],
    });
    let Signed { token, ours, .. } = signed_tokens(&claims)
        .into_iter()
        .find(|s| s.alg == Algorithm::ES256)
        .unwrap();
    let keys = StaticKeys::new(KeySet::new(vec![ours]).unwrap());
    let verifier = JwtVerifier::builder(ISS, AUD, [Algorithm::ES256])
        .build()
        .unwrap();
    let authenticator = |cache| {
        Authenticator::builder(policy.clone())
            .issuer(Issuer::new(verifier.clone(), keys.clone()))
            .cache_entries(cache)
            .build()
            .unwrap()
    };
    let (uncached, cached) = (authenticator(0), authenticator(1000));
    assert!(ready(cached.authenticate(&token)).is_ok());

    let key = DpopKey::generate();
    let proofs = DpopVerifier::default();
    // Each proof is single use: a fresh one per iteration, signed outside the measurement, with
    // time moving one second per proof so that the replay cache holds about one window.
    let clock = AtomicU64::new(1_800_000_000);
    let ctx = ProofContext {
        method: "POST",
        uri: URI,
        access_token: Some(&token),
    };
    let mut g = c.benchmark_group("dpop/ES256");
    g.bench_function("access_token_full_path", |b| {
        b.iter(|| ready(uncached.authenticate(black_box(&token))).unwrap())
    });
    g.bench_function("access_token_cache_hit", |b| {
        b.iter(|| ready(cached.authenticate(black_box(&token))).unwrap())
    });
    g.bench_function("dpop_proof_es256", |b| {
        b.iter_batched(
            || {
                let now = clock.fetch_add(1, Ordering::Relaxed);
                (key.proof("POST", URI, Some(&token), None, now), now)
            },
            |(proof, now)| proofs.verify(black_box(&proof), &ctx, now).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, dpop);
criterion_main!(benches);
