//! The auth layer answers a request on one of two paths: when nobody can see the request's
//! `authz` span, a credential the caches answer is settled in `call` (no boxed future); when a
//! subscriber enables the span, authentication runs inside it at the first poll, as it always
//! did. Both must give every request the same answer, and count cache hits and misses alike.
//!
//! A test binary of its own: no other test installs a subscriber in this process.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::{Authenticator, Issuer, StaticKeys};
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower::ServiceExt as _;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

authz_axum::catalog! { pub struct Catalog { permissions: ["model:run", "model:deploy"] } }

#[require_permission("model:run")]
async fn run(p: Principal) -> String {
    p.subject().to_string()
}

#[require_permission("model:deploy")]
async fn deploy() -> &'static str {
    "deployed"
}

async fn open(p: Option<Principal>) -> String {
    format!("{:?}", p.map(|p| p.subject().to_string()))
}

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn claims(sub: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({"iss": "https://test.example", "aud": "test", "sub": sub, "exp": exp, "roles": ["analyst"]})
}

fn authenticator() -> Arc<Authenticator> {
    let policy = Arc::new(
        Policy::builder(Arc::new(Catalog::catalog().clone()))
            .role(RoleSpec::new("analyst").grant("model:run"))
            .build()
            .unwrap(),
    );
    let verifier = JwtVerifier::builder("https://test.example", "test", [Algorithm::HS256])
        .build()
        .unwrap();
    let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap()]).unwrap();
    Arc::new(
        Authenticator::builder(policy)
            .issuer(Issuer::new(verifier, StaticKeys::new(keys)))
            .build()
            .unwrap(),
    )
}

/// Status, `WWW-Authenticate` and body of each request, and the cache's hits and misses.
fn answers() -> (Vec<String>, u64, u64) {
    let auth = authenticator();
    let router = axum::Router::new()
        .route("/run", axum::routing::get(run))
        .route("/deploy", axum::routing::get(deploy))
        .route("/open", axum::routing::get(open))
        .layer(AuthLayer::new(auth.clone()))
        .with_state(());
    let good = hs256(SECRET, &claims("alice", 4_102_444_800));
    let expired = hs256(SECRET, &claims("bob", 1_000_000_000));
    let forged = hs256(
        b"another-secret-of-at-least-32-bytes!!",
        &claims("mallory", 4_102_444_800),
    );
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("/run", vec![]),
        ("/open", vec![]),
        ("/run", vec!["Basic dXNlcjpwYXNz".into()]),
        ("/open", vec!["Basic dXNlcjpwYXNz".into()]),
        ("/run", vec!["Bearer a b".into()]),
        ("/run", vec!["Bearer".into()]),
        ("/run", vec![format!("Bearer {good}"), format!("Bearer {good}")]),
        // A miss (verified, then cached), then hits.
        ("/run", vec![format!("Bearer {good}")]),
        ("/run", vec![format!("bearer   {good}")]),
        ("/open", vec![format!("Bearer {good}")]),
        ("/deploy", vec![format!("Bearer {good}")]),
        ("/run", vec![format!("Bearer {expired}")]),
        ("/run", vec![format!("Bearer {forged}")]),
        ("/open", vec![format!("Bearer {forged}")]),
        ("/run", vec![format!("Bearer {good}x")]),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut out = Vec::new();
    for (path, headers) in cases {
        let mut request = Request::get(path);
        for h in &headers {
            request = request.header("authorization", h);
        }
        let response = rt
            .block_on(router.clone().oneshot(request.body(Body::empty()).unwrap()))
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains(&good), "the token echoed back");
        out.push(format!("{path} {status} {challenge:?} {body}"));
    }
    let stats = auth.cache_stats();
    (out, stats.hits, stats.misses)
}

/// How the layer's future looks for a request with no credential, a cached token and an uncached
/// one.
fn future_kinds() -> Vec<String> {
    use tower::{Layer as _, Service as _};
    let auth = authenticator();
    let mut service = AuthLayer::new(auth.clone()).layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(())
    }));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let good = hs256(SECRET, &claims("alice", 4_102_444_800));
    let other = hs256(SECRET, &claims("carol", 4_102_444_800));
    let request = |token: Option<&str>| {
        let mut r = Request::get("/");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::empty()).unwrap()
    };
    // Cache the good token.
    rt.block_on(service.call(request(Some(&good)))).unwrap();
    [None, Some(good.as_str()), Some(other.as_str())]
        .into_iter()
        .map(|token| {
            let future = service.call(request(token));
            let kind = format!("{future:?}");
            rt.block_on(future).unwrap();
            kind
        })
        .collect()
}

/// Enables everything and remembers nothing but how many spans it was asked to make.
struct Everything(AtomicU64);

impl Subscriber for Everything {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn both_paths_answer_every_request_alike() {
    // Nobody sees the span: the path that settles cached answers in `call`.
    let (unobserved, hits, misses) = answers();
    assert_eq!(
        future_kinds(),
        ["AuthFuture(ready)", "AuthFuture(ready)", "AuthFuture(boxed)"],
        "unobserved: only a verification boxes"
    );
    // A subscriber enables the span: authentication inside it at the first poll.
    let subscriber = Arc::new(Everything(AtomicU64::new(0)));
    let (observed, observed_hits, observed_misses) =
        tracing::subscriber::with_default(subscriber.clone(), answers);
    assert!(
        subscriber.0.load(Ordering::Relaxed) >= 15,
        "the observed run made the requests' spans"
    );
    assert_eq!(
        tracing::subscriber::with_default(subscriber.clone(), future_kinds),
        ["AuthFuture(boxed)", "AuthFuture(boxed)", "AuthFuture(boxed)"],
        "observed: authentication inside the span, at the first poll"
    );
    assert_eq!(unobserved, observed);
    assert_eq!((hits, misses), (observed_hits, observed_misses));
    // The good token misses once, then hits three times; the expired token, the forged one
    // (twice: never cached) and the altered one miss.
    assert_eq!((hits, misses), (3, 5));
    let expected = [
        "/run 401 Unauthorized Some(\"Bearer realm=\\\"api\\\"\")",
        "/open 200 OK None None",
        "/run 401 Unauthorized Some(\"Bearer realm=\\\"api\\\"\")",
        "/open 401 Unauthorized Some(\"Bearer realm=\\\"api\\\"\")",
        "/run 400 Bad Request",
        "/run 400 Bad Request",
        "/run 400 Bad Request",
        "/run 200 OK None alice",
        "/run 200 OK None alice",
        "/open 200 OK None Some(\"alice\")",
        "/deploy 403 Forbidden",
        "/run 401 Unauthorized Some(\"Bearer realm=\\\"api\\\", error=\\\"invalid_token\\\"",
        "/run 401 Unauthorized Some(\"Bearer realm=\\\"api\\\", error=\\\"invalid_token\\\"",
        "/open 401 Unauthorized Some(\"Bearer realm=\\\"api\\\", error=\\\"invalid_token\\\"",
        "/run 401 Unauthorized Some(\"Bearer realm=\\\"api\\\", error=\\\"invalid_token\\\"",
    ];
    assert_eq!(unobserved.len(), expected.len());
    for (answer, expected) in unobserved.iter().zip(expected) {
        assert!(
            answer.starts_with(expected),
            "{answer}\n  expected to start with {expected}"
        );
    }
}
