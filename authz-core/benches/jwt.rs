//! Token verification benchmarks: `cargo bench -p authz-axum-core --bench jwt`.
//!
//! Per algorithm, in one run: the raw signature check with a key parsed once (the floor),
//! bare `jsonwebtoken::decode` of the same token (the baseline), authz's verifier alone, and
//! the production path — `auth::Authenticator::authenticate`, exactly what `AuthLayer` calls —
//! with the cache off (full verification to a `Principal`) and on (a hit).
//!
//! With `--features remote`, the production path again with the keys from a remote JWKS
//! (`RemoteJwks`, fetched once from a loopback endpoint at start, as a service fetches its
//! identity provider's keys), cache off and on, for every algorithm but HS256 (a shared secret
//! is never published in a JWKS).

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

use authz_tests::signed_tokens::{Signed, jwt_alg, signed_tokens_with_jwks};

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
    #[cfg(feature = "remote")]
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Remote key sets may start background refreshes: give them a runtime.
    #[cfg(feature = "remote")]
    let _runtime = rt.enter();
    for (
        Signed {
            alg,
            token,
            ours,
            theirs,
        },
        jwk,
    ) in signed_tokens_with_jwks(&claims)
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
        #[cfg(feature = "remote")]
        if let Some(jwk) = jwk {
            use authz_core::jwks::{JwksOptions, RemoteJwks};
            let url = jwks_endpoint(&serde_json::json!({ "keys": [jwk] }));
            let jwks = RemoteJwks::new(&url, [alg].into_iter().collect(), JwksOptions::default()).unwrap();
            rt.block_on(jwks.start()).unwrap();
            let remote = |cache_entries| {
                Authenticator::builder(policy.clone())
                    .issuer(Issuer::new(verifier.clone(), jwks.clone()))
                    .cache_entries(cache_entries)
                    .build()
                    .unwrap()
            };
            let (uncached, cached) = (remote(0), remote(1000));
            assert!(ready(uncached.authenticate(&token)).is_ok());
            assert!(ready(cached.authenticate(&token)).is_ok());
            g.bench_function("authz_full_path_uncached_remote_jwks", |b| {
                b.iter(|| ready(uncached.authenticate(black_box(&token))).unwrap())
            });
            g.bench_function("authz_cache_hit_remote_jwks", |b| {
                b.iter(|| ready(cached.authenticate(black_box(&token))).unwrap())
            });
        }
        #[cfg(not(feature = "remote"))]
        let _ = jwk;
        g.finish();
    }
}

/// A loopback JWKS endpoint serving `jwks` (with a one-hour `max-age`, so no refresh falls
/// inside a measurement); its URL.
#[cfg(feature = "remote")]
fn jwks_endpoint(jwks: &serde_json::Value) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let body = jwks.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    // A GET: no body; read the head up to its blank line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=3600\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if out.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

criterion_group!(benches, verification);
criterion_main!(benches);
