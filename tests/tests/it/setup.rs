//! The few-lines setup (`authz_axum::setup::Setup`): JWKS URL or discovery, policy, API keys,
//! and `from_env`'s errors naming the variable.

use std::sync::Arc;

use authz_axum::core::PermissionCatalog;
use authz_axum::core::keystore::MemoryKeyStore;
use authz_axum::setup::Setup;
use axum::routing::get;

use crate::common::{http, init_tracing, serve};

fn catalog() -> Arc<PermissionCatalog> {
    Arc::new(PermissionCatalog::new(["data:read"]).unwrap())
}

async fn whoami(p: authz_axum::Principal) -> String {
    p.subject().to_string()
}

#[tokio::test]
async fn a_layer_from_a_jwks_url_a_policy_and_api_keys() {
    init_tracing();
    // The test kit's issuer (authz_axum::testing) serves the JWKS.
    let idp = authz_axum::testing::TestIssuer::start().await;
    let store = Arc::new(MemoryKeyStore::new());
    let layer = Setup::with_catalog(catalog())
        .issuer(idp.issuer())
        .jwks_url(idp.jwks_url())
        .audience("api")
        .algorithms([authz_axum::core::jwt::Algorithm::ES256])
        .policy_toml("[roles.viewer]\ngrants = [\"data:read\"]\n")
        .api_keys(store.clone(), "sk")
        .realm("setup-test")
        .build()
        .await
        .unwrap();
    let keys = layer.authenticator().api_keys().unwrap().clone();
    let url = serve(axum::Router::new().route("/", get(whoami)).layer(layer)).await;
    let token = idp.token().audience("api").subject("u1").roles(["viewer"]).sign();
    let resp = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "u1");
    let issued = keys
        .create("bot", vec!["viewer".into()], None, None)
        .await
        .unwrap();
    let resp = http()
        .get(&url)
        .bearer_auth(issued.key.expose_raw())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "bot");
    let resp = http().get(&url).bearer_auth("sk_nope").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("setup-test")
    );
}

/// Keys by OpenID Connect discovery: the model registry's own token service is the provider.
#[tokio::test]
async fn a_layer_by_discovery() {
    init_tracing();
    let registry = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let layer = Setup::with_catalog(catalog())
        .issuer(registry.issuer.clone())
        .audience("api.example.com")
        .algorithms([authz_axum::core::jwt::Algorithm::ES256])
        .policy_toml("[roles.viewer]\ngrants = [\"data:read\"]\n")
        .build()
        .await
        .unwrap();
    let url = serve(axum::Router::new().route("/", get(whoami)).layer(layer)).await;
    let token = crate::common::demo_token(&registry, "viewer-client", None).await;
    let resp = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "viewer-client");
    registry.stop().await;
}

#[tokio::test]
async fn misconfiguration_names_the_setting() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let e = Setup::from_lookup(catalog(), env(&[("AUTHZ_AUDIENCE", "  ")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("AUTHZ_AUDIENCE") && e.contains("empty"), "{e}");
    let e = Setup::from_lookup(catalog(), env(&[("AUTHZ_ALGORITHMS", "RS256,rs384")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("AUTHZ_ALGORITHMS") && e.contains("rs384"), "{e}");
    let e = Setup::from_lookup(catalog(), env(&[("AUTHZ_PROVIDER", "keycloack")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("AUTHZ_PROVIDER"), "{e}");
    let s = Setup::from_lookup(catalog(), env(&[("AUTHZ_ISSUER", "https://x.test")])).unwrap();
    let e = s.policy_toml("").build().await.unwrap_err().to_string();
    assert!(e.contains("audience") && e.contains("AUTHZ_AUDIENCE"), "{e}");
    let e = Setup::with_catalog(catalog())
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no policy") && e.contains("AUTHZ_POLICY"), "{e}");
    let e = Setup::with_catalog(catalog())
        .policy_toml("[roles.viewer]\ngrants = [\"data:raed\"]\n")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("data:raed"), "{e}");
}
