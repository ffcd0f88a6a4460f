//! The revocation list on the request path: `cargo bench -p authz-axum-core --bench revocation`.
//!
//! In one run: `RevocationList::is_revoked` on an empty list and on 10 000 entries (a miss, a
//! `jti` hit, a subject hit), next to the production path's cache hit
//! (`Authenticator::authenticate`, what `AuthLayer` calls) without a list, with an empty list
//! and with the 10 000-entry list — the cost a deny-list adds to every request.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::jwt::{Algorithm, JwtVerifier, KeySet};
use authz_core::revocation::{Revocation, RevocationList};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use criterion::{Criterion, criterion_group, criterion_main};

use authz_tests::signed_tokens::signed_tokens;

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

/// 10 000 entries: 9 000 revoked tokens and 1 000 revoked subjects, like a busy hour.
fn full_list() -> RevocationList {
    let list = RevocationList::new();
    for i in 0..9_000 {
        list.insert(&Revocation::Token {
            issuer: ISS.into(),
            jti: format!("jti-{i:06}-aaaaaaaaaaaa"),
            expires_at: 4_102_444_800,
        });
    }
    for i in 0..1_000 {
        list.insert(&Revocation::Subject {
            issuer: ISS.into(),
            subject: format!("user_{i}"),
            issued_before: 1_709_896_400,
            expires_at: 4_102_444_800,
        });
    }
    assert_eq!(list.len(), 10_000);
    list
}

fn lookup(c: &mut Criterion) {
    let empty = RevocationList::new();
    let full = full_list();
    let jti = "jti-004500-aaaaaaaaaaaa";
    let other = "Zq3v0c1xYb2n8m5k7j4h6g";
    let mut g = c.benchmark_group("revocation_lookup");
    g.bench_function("is_revoked/empty", |b| {
        b.iter(|| {
            empty.is_revoked(
                black_box(ISS),
                black_box(Some(other)),
                black_box("user_42"),
                Some(1),
            )
        })
    });
    g.bench_function("is_revoked/10000/miss", |b| {
        b.iter(|| {
            full.is_revoked(
                black_box(ISS),
                black_box(Some(other)),
                black_box("someone"),
                Some(1),
            )
        })
    });
    g.bench_function("is_revoked/10000/hit_jti", |b| {
        b.iter(|| {
            full.is_revoked(
                black_box(ISS),
                black_box(Some(jti)),
                black_box("someone"),
                Some(1),
            )
        })
    });
    g.bench_function("is_revoked/10000/hit_subject", |b| {
        b.iter(|| {
            full.is_revoked(
                black_box(ISS),
                black_box(Some(other)),
                black_box("user_42"),
                Some(1),
            )
        })
    });
    g.finish();
}

fn cache_hit(c: &mut Criterion) {
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
            .build()
            .unwrap(),
    );
    let claims = serde_json::json!({
        "sub": "user_42_live", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "iat": 1_709_896_400u64,
        "jti": "Zq3v0c1xYb2n8m5k7j4h6g", "roles": ["analyst", "viewer"],
    });
    let signed = signed_tokens(&claims)
        .into_iter()
        .find(|s| s.alg == Algorithm::HS256)
        .unwrap();
    let keys = StaticKeys::new(KeySet::new(vec![signed.ours]).unwrap());
    let verifier = JwtVerifier::builder(ISS, AUD, [Algorithm::HS256])
        .build()
        .unwrap();
    let authenticator = |list: Option<Arc<RevocationList>>| {
        let mut b = Authenticator::builder(policy.clone())
            .issuer(Issuer::new(verifier.clone(), keys.clone()))
            .cache_entries(1000);
        if let Some(list) = list {
            b = b.revocations(list);
        }
        b.build().unwrap()
    };
    let token = signed.token;
    let without = authenticator(None);
    let with_empty = authenticator(Some(Arc::new(RevocationList::new())));
    let full = Arc::new(full_list());
    let with_full = authenticator(Some(full.clone()));
    for a in [&without, &with_empty, &with_full] {
        assert!(ready(a.authenticate(&token)).is_ok());
        assert!(ready(a.authenticate(&token)).is_ok(), "a cache hit");
    }
    let mut g = c.benchmark_group("revocation_cache_hit");
    g.bench_function("authenticate/no_list", |b| {
        b.iter(|| ready(without.authenticate(black_box(&token))).unwrap())
    });
    g.bench_function("authenticate/empty_list", |b| {
        b.iter(|| ready(with_empty.authenticate(black_box(&token))).unwrap())
    });
    g.bench_function("authenticate/10000_list_miss", |b| {
        b.iter(|| ready(with_full.authenticate(black_box(&token))).unwrap())
    });
    g.finish();
    // The same token once revoked: refused on the cache hit.
    full.insert(&Revocation::Token {
        issuer: ISS.into(),
        jti: "Zq3v0c1xYb2n8m5k7j4h6g".into(),
        expires_at: 4_102_444_800,
    });
    assert!(ready(with_full.authenticate(&token)).is_err());
}

criterion_group!(benches, lookup, cache_hit);
criterion_main!(benches);
