//! The test kit (`authz_axum::testing`, feature `test-util`): one test per helper.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::{PermissionCatalog, Policy, Principal as CorePrincipal, RoleSpec};
use authz_axum::testing::{PrincipalLayer, TEST_AUDIENCE, TestIssuer, api_keys};
use axum::routing::get;

use crate::common::{http, serve};

fn catalog() -> PermissionCatalog {
    PermissionCatalog::new(["data:read", "data:write"]).unwrap()
}

const POLICY: &str = "[roles.viewer]\ngrants = [\"data:read\"]\n";

async fn whoami(p: authz_axum::Principal) -> String {
    format!("{} {}", p.subject(), p.roles().join(","))
}

#[tokio::test]
async fn the_test_issuer_and_its_token_variants() {
    let idp = TestIssuer::start().await;
    let layer = idp.setup(catalog()).policy_toml(POLICY).build().await.unwrap();
    let url = serve(axum::Router::new().route("/", get(whoami)).layer(layer)).await;
    let status = |t: String| {
        let url = url.clone();
        async move {
            http()
                .get(&url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let ok = idp
        .token()
        .subject("ada")
        .roles(["viewer"])
        .scopes(["read"])
        .sign();
    let resp = http().get(&url).bearer_auth(&ok).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "ada viewer");
    assert_eq!(status(idp.token().typ("at+jwt").sign()).await, 200);
    assert_eq!(
        status(idp.token().expires_in(Duration::from_secs(30)).sign()).await,
        200
    );
    assert_eq!(status(idp.token().expired().sign()).await, 401, "expired");
    assert_eq!(
        status(idp.token().signed_with_another_key().sign()).await,
        401,
        "forged"
    );
    assert_eq!(
        status(idp.token().audience("another-api").sign()).await,
        401,
        "audience"
    );
    assert_eq!(
        status(idp.token().issuer("https://elsewhere.test").sign()).await,
        401,
        "issuer"
    );
    assert_eq!(status(idp.token().typ("id+jwt").sign()).await, 401, "typ");
    assert_eq!(idp.token().claims()["aud"], TEST_AUDIENCE);
}

/// The test issuer also serves OpenID Connect discovery.
#[tokio::test]
async fn the_test_issuer_serves_discovery() {
    let idp = TestIssuer::start().await;
    let layer = authz_axum::setup::Setup::with_catalog(Arc::new(catalog()))
        .issuer(idp.issuer())
        .audience(TEST_AUDIENCE)
        .policy_toml(POLICY)
        .build()
        .await
        .unwrap();
    let url = serve(axum::Router::new().route("/", get(whoami)).layer(layer)).await;
    let resp = http()
        .get(&url)
        .bearer_auth(idp.token().sign())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A handler tested with an injected principal: no token, no issuer.
#[tokio::test]
async fn a_principal_injected_without_a_token() {
    let policy = Policy::builder(Arc::new(catalog()))
        .role(RoleSpec::new("viewer").grant("data:read"))
        .build()
        .unwrap();
    let principal = CorePrincipal::for_testing("grace", ["viewer"], &policy);
    let app = axum::Router::new()
        .route("/", get(whoami))
        .layer(PrincipalLayer::new(principal));
    let url = serve(app).await;
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "grace viewer");
}

/// API keys in memory for tests.
#[tokio::test]
async fn api_keys_in_memory() {
    let policy = Arc::new(
        Policy::builder(Arc::new(catalog()))
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let keys = api_keys("tk", policy);
    let issued = keys
        .create("bot", vec!["viewer".into()], None, None)
        .await
        .unwrap();
    assert!(issued.key.expose_raw().starts_with("tk_"));
    let p = keys.authenticate(issued.key.expose_raw()).await.unwrap();
    assert_eq!(p.subject(), "bot");
    assert!(keys.authenticate("tk_nope").await.is_err());
}
