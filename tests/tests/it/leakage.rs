//! Secrets never leak: no token, client secret or key material in the captured tracing output
//! of the whole test binary, in `Debug` output, or in response bodies.

use std::sync::Arc;

use authz_axum::core::jwt::{Algorithm, JwtVerifier};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::{AuthLayer, Authenticator, Issuer, Principal, StaticKeys};
use axum::Router;
use axum::routing::get;
use model_registry::{Config, start};

use crate::common::{
    SigningKey, captured_logs, claims, http, init_tracing, remember_secret, remembered_secrets,
};

async fn whoami(p: Principal) -> String {
    p.subject().to_string()
}

/// One ES256 issuer (`https://leak.test`, audience `leak`) trusting `key`; role `viewer` grants
/// `data:read`.
fn leak_authenticator(key: &SigningKey) -> Arc<Authenticator> {
    let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let verifier = JwtVerifier::builder("https://leak.test", "leak", [Algorithm::ES256])
        .build()
        .unwrap();
    Arc::new(
        Authenticator::builder(policy)
            .issuer(Issuer::new(verifier, StaticKeys::new(key.key_set())))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn no_credential_material_in_logs_debug_output_or_bodies() {
    init_tracing();
    // Produce every kind of rejection at debug level, with recognisable credentials.
    let key = SigningKey::es256("k1");
    let auth = leak_authenticator(&key);
    let app = Router::new()
        .route("/", get(whoami))
        .layer(AuthLayer::new(auth.clone()));
    let url = format!("{}/", crate::common::serve(app).await);

    let good = key.sign(&claims("https://leak.test", "leak", "u", &["viewer"]));
    let expired = key.sign(&{
        let mut c = claims("https://leak.test", "leak", "u", &["viewer"]);
        c["exp"] = 1.into();
        c
    });
    let wrong_aud = key.sign(&claims("https://leak.test", "other", "u", &["viewer"]));
    let garbage = "eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2lnbmF0dXJlLW1hdGVyaWFs";
    remember_secret(garbage);
    for t in [&good, &expired, &wrong_aud, &garbage.to_string()] {
        let r = http().get(&url).bearer_auth(t).send().await.unwrap();
        let body = r.text().await.unwrap();
        assert!(!body.contains(t.as_str()), "response body echoes the token");
    }
    // The model registry's own flows, including bad client secrets.
    let server = start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let c = server.client("admin-client").unwrap().clone();
    remember_secret(&c.secret);
    let r = http()
        .post(format!("{}/oauth/token", server.url()))
        .basic_auth(&c.id, Some(format!("{}x", c.secret)))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains(&c.secret));
    assert!(
        !format!("{:?}", server.clients).contains(&c.secret),
        "DemoClient Debug shows the secret"
    );
    let p = auth.authenticate(&good).await.unwrap();
    assert!(!format!("{p:?}").contains(&good));
    server.stop().await;

    let logs = captured_logs();
    assert!(
        logs.contains("bearer token refused"),
        "the capture works and saw the rejections"
    );
    for secret in remembered_secrets() {
        // Any 24-character window of a credential is enough to call it leaked.
        let probe: String = secret
            .chars()
            .rev()
            .take(24)
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        assert!(!logs.contains(&probe), "credential material found in the logs");
    }
}

/// Every value of a repeated credential header is marked sensitive, not only the first. A
/// repeated `Authorization` is refused as malformed, but a route without a guard still runs, and
/// a handler (or a layer inside `AuthLayer`) that logs its headers must print `Sensitive` for
/// each value.
#[tokio::test]
async fn every_value_of_a_repeated_credential_header_is_marked_sensitive() {
    async fn sensitivity(headers: axum::http::HeaderMap) -> String {
        ["authorization", "dpop"]
            .iter()
            .map(|name| {
                headers
                    .get_all(*name)
                    .iter()
                    .map(|v| if v.is_sensitive() { 's' } else { '-' })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    let auth = leak_authenticator(&SigningKey::es256("k1"));
    let app = Router::new()
        .route("/", get(sensitivity))
        .layer(AuthLayer::new(auth));
    let url = format!("{}/", crate::common::serve(app).await);
    let send = |headers: &'static [(&'static str, &'static str)]| {
        let mut r = http().get(&url);
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(
        send(&[
            ("authorization", "Bearer first-secret"),
            ("authorization", "Bearer second-secret"),
            ("dpop", "proof-one"),
            ("dpop", "proof-two"),
        ])
        .await,
        "ss ss"
    );
    assert_eq!(
        send(&[("authorization", "Bearer only-secret"), ("dpop", "proof")]).await,
        "s s"
    );
    assert_eq!(send(&[]).await, " ");
}
