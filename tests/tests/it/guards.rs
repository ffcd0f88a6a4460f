//! Each guard form over real HTTP: allowed → the handler runs; denied → 403, the handler body
//! never ran and the request body was never read. Also: no layer → a clear error, never a pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use authz_axum::core::{Catalog as _, Policy, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::{Authenticator, Issuer, StaticKeys};
use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::routing::post;

use crate::common::{http, init_tracing, now, remember_secret};

authz_axum::catalog! {
    pub struct Catalog {
        permissions: ["data:read", "data:write", "data:export", "model:run", "model:deploy"],
        roles: ["viewer", "admin"],
    }
}

static RAN: AtomicUsize = AtomicUsize::new(0);
static BODY_READ: AtomicUsize = AtomicUsize::new(0);

/// A body extractor that records that it ran.
struct TracedBody;

impl<S: Send + Sync> FromRequest<S> for TracedBody {
    type Rejection = axum::http::StatusCode;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        BODY_READ.fetch_add(1, Ordering::SeqCst);
        let _ = axum::body::Bytes::from_request(req, state).await;
        Ok(TracedBody)
    }
}

#[require_permission("model:run")]
async fn single(_b: TracedBody) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[require_permission(any("data:write", "model:deploy"))]
async fn any_of(_b: TracedBody) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[require_permission(all("data:read", not("data:export")))]
async fn all_not(_b: TracedBody) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[require_role("admin")]
async fn role(_b: TracedBody) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[require_permission("data:read")]
#[require_permission("model:run")]
async fn stacked(_b: TracedBody) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

const SECRET: &[u8] = b"guards-test-secret-of-32-bytes!!";

fn policy() -> Arc<Policy> {
    let catalog = Arc::new(Catalog::catalog().clone());
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("runner").grant("model:run"))
            .role(RoleSpec::new("exporter").grants(["data:read", "data:export"]))
            .role(
                RoleSpec::new("admin")
                    .inherits("viewer")
                    .grants(["data:write", "model:deploy"]),
            )
            .build()
            .unwrap(),
    )
}

fn token(roles: &[&str]) -> String {
    let claims = serde_json::json!({
        "iss": "https://issuer.test", "aud": "guards", "sub": format!("user-{}", roles.join("+")),
        "exp": now() + 300, "roles": roles,
    });
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    remember_secret(&t);
    t
}

fn authenticator() -> Arc<Authenticator> {
    let verifier = JwtVerifier::builder("https://issuer.test", "guards", [Algorithm::HS256])
        .build()
        .unwrap();
    let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap()]).unwrap();
    Arc::new(
        Authenticator::builder(policy())
            .issuer(Issuer::new(verifier, StaticKeys::new(keys)))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn every_form_allows_and_denies_before_the_body_is_read() {
    init_tracing();
    let app = Router::new()
        .route("/single", post(single))
        .route("/any", post(any_of))
        .route("/all-not", post(all_not))
        .route("/role", post(role))
        .route("/stacked", post(stacked))
        .layer(AuthLayer::new(authenticator()));
    let url = crate::common::serve(app).await;
    // (path, roles, allowed)
    let cases: &[(&str, &[&str], bool)] = &[
        ("/single", &["runner"], true),
        ("/single", &["viewer"], false),
        ("/any", &["admin"], true),
        ("/any", &["runner"], false),
        ("/all-not", &["viewer"], true),
        ("/all-not", &["exporter"], false),
        ("/all-not", &["runner"], false),
        ("/role", &["admin"], true),
        ("/role", &["viewer"], false),
        ("/stacked", &["viewer", "runner"], true),
        ("/stacked", &["viewer"], false),
        ("/stacked", &["runner"], false),
    ];
    for (path, roles, allowed) in cases {
        let (ran, read) = (RAN.load(Ordering::SeqCst), BODY_READ.load(Ordering::SeqCst));
        let r = http()
            .post(format!("{url}{path}"))
            .bearer_auth(token(roles))
            .body(vec![b'x'; 1024])
            .send()
            .await
            .unwrap();
        if *allowed {
            assert_eq!(r.status(), 200, "{path} as {roles:?}");
            assert_eq!(RAN.load(Ordering::SeqCst), ran + 1);
            assert_eq!(BODY_READ.load(Ordering::SeqCst), read + 1);
        } else {
            assert_eq!(r.status(), 403, "{path} as {roles:?}");
            assert_eq!(
                RAN.load(Ordering::SeqCst),
                ran,
                "{path}: the handler must not run"
            );
            assert_eq!(
                BODY_READ.load(Ordering::SeqCst),
                read,
                "{path}: the body must not be read"
            );
        }
    }
    // No token: 401 and nothing runs either.
    let (ran, read) = (RAN.load(Ordering::SeqCst), BODY_READ.load(Ordering::SeqCst));
    let r = http()
        .post(format!("{url}/single"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        (RAN.load(Ordering::SeqCst), BODY_READ.load(Ordering::SeqCst)),
        (ran, read)
    );
}

static RAN_UNLAYERED: AtomicUsize = AtomicUsize::new(0);

#[require_permission("model:run")]
async fn unlayered() {
    RAN_UNLAYERED.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn a_missing_auth_layer_is_a_clear_error_never_a_pass() {
    init_tracing();
    let app = Router::new().route("/single", post(unlayered));
    let url = crate::common::serve(app).await;
    let r = http()
        .post(format!("{url}/single"))
        .bearer_auth(token(&["runner"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("did you add the auth layer"));
    assert_eq!(RAN_UNLAYERED.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_403_names_a_role_as_a_role_and_a_permission_as_a_permission() {
    init_tracing();
    let app = Router::new()
        .route("/single", post(single))
        .route("/any", post(any_of))
        .route("/role", post(role))
        .layer(
            AuthLayer::new(authenticator())
                .with_rejections(authz_axum::RejectionConfig::default().disclose_requirements(true)),
        );
    let url = crate::common::serve(app).await;
    let cases = [
        (
            "/role",
            r#"the caller lacks the role this resource requires: "admin""#,
        ),
        (
            "/single",
            r#"the caller lacks the permission this resource requires: "model:run""#,
        ),
        (
            "/any",
            r#"the caller does not meet this resource's requirement: any("data:write", "model:deploy")"#,
        ),
    ];
    for (path, detail) in cases {
        let r = http()
            .post(format!("{url}{path}"))
            .bearer_auth(token(&["viewer"]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="api", error="insufficient_scope""#
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["detail"], detail, "{path}");
    }
}

#[tokio::test]
async fn by_default_a_403_does_not_disclose_the_requirement() {
    init_tracing();
    let app = Router::new()
        .route("/single", post(single))
        .route("/role", post(role))
        .layer(AuthLayer::new(authenticator()));
    let url = crate::common::serve(app).await;
    for path in ["/single", "/role"] {
        let r = http()
            .post(format!("{url}{path}"))
            .bearer_auth(token(&["viewer"]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let text = r.text().await.unwrap();
        assert!(text.ends_with('\n'), "bodies end with a newline");
        assert!(!text.contains("model:run") && !text.contains("admin"), "{text}");
    }
}
