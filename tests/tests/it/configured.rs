//! The model registry configured for real providers by its settings alone (the fields behind
//! `AUTHZ_PROVIDER`, `AUTHZ_ROLES_CLAIMS`, `AUTHZ_SCOPE_PERMISSIONS`, `AUTHZ_REQUIRE_CLAIMS`,
//! `AUTHZ_AUDIENCE_CLAIM`, `AUTHZ_TOKEN_TYPES`, `AUTHZ_DISCOVERY`, `AUTHZ_ISSUERS_FILE`), over
//! HTTP against JWKS servers on 127.0.0.1.

use model_registry::{Config, Server, start};
use serde_json::{Value, json};

use crate::common::{JwksServer, SigningKey, http, init_tracing, now};

fn config(iss: &str, idp: &JwksServer) -> Config {
    let mut c = Config::with_bind("127.0.0.1:0".parse().unwrap());
    c.issuer = Some(iss.into());
    c.jwks_url = Some(idp.url.clone());
    c
}

fn timed(mut c: Value) -> Value {
    c["iat"] = now().into();
    c["exp"] = (now() + 300).into();
    c
}

async fn status(server: &Server, method: reqwest::Method, path: &str, token: &str) -> u16 {
    http()
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn run(server: &Server, token: &str) -> u16 {
    status(server, reqwest::Method::POST, "/models/m1/run", token).await
}

/// Deploying needs DPoP: with these bearer tokens a permitted caller gets `DEPLOY_PERMITTED`.
async fn deploy(server: &Server, token: &str) -> u16 {
    let resp = http()
        .post(format!("{}/models/m1/deploy", server.url()))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    crate::common::deploy_status(resp).await
}

#[tokio::test]
async fn keycloak_by_configuration_alone() {
    init_tracing();
    let key = SigningKey::es256("kc");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = "https://kc.example.com/realms/registry";
    let mut c = config(iss, &idp);
    c.provider = Some("keycloak".into());
    c.audience = "api.example.com".into();
    let server = start(c).await.unwrap();
    let token = |realm: &[&str], client: &[&str], typ: &str| {
        key.sign(&timed(json!({
            "iss": iss, "aud": ["api.example.com", "account"], "sub": "kc-user", "typ": typ, "azp": "web",
            "realm_access": {"roles": realm},
            "resource_access": {"api.example.com": {"roles": client}},
        })))
    };
    assert_eq!(run(&server, &token(&["analyst"], &[], "Bearer")).await, 202);
    assert_eq!(deploy(&server, &token(&["viewer"], &[], "Bearer")).await, 403);
    assert_eq!(
        deploy(&server, &token(&[], &["admin"], "Bearer")).await,
        crate::common::DEPLOY_PERMITTED,
        "client roles of the audience"
    );
    assert_eq!(
        run(&server, &token(&["analyst"], &[], "ID")).await,
        401,
        "a Keycloak ID token"
    );
    server.stop().await;
}

#[tokio::test]
async fn auth0_namespaced_roles_from_the_roles_claims_setting() {
    init_tracing();
    let key = SigningKey::es256("a0");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = "https://tenant.eu.auth0.com/";
    let mut c = config(iss, &idp);
    c.provider = Some("auth0".into());
    c.roles_claims = Some(" https://registry.example.com/roles ".into());
    let server = start(c).await.unwrap();
    let mut claims = timed(json!({
        "iss": iss, "aud": ["api.example.com", "https://tenant.eu.auth0.com/userinfo"], "sub": "auth0|1",
        "https://registry.example.com/roles": ["analyst"], "permissions": [],
    }));
    assert_eq!(run(&server, &key.sign(&claims)).await, 202);
    claims["https://registry.example.com/roles"] = json!([]);
    assert_eq!(run(&server, &key.sign(&claims)).await, 403);
    claims["permissions"] = json!(["model:run"]);
    assert_eq!(
        run(&server, &key.sign(&claims)).await,
        202,
        "Auth0 RBAC permissions"
    );
    server.stop().await;
}

#[tokio::test]
async fn cognito_access_token_deploys_its_id_token_does_not() {
    init_tracing();
    let key = SigningKey::es256("cg");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf";
    let mut c = config(iss, &idp);
    c.provider = Some("cognito".into());
    c.audience = "7abcdefghij1234567890".into();
    let server = start(c).await.unwrap();
    let access = timed(json!({
        "sub": "s", "iss": iss, "client_id": "7abcdefghij1234567890", "token_use": "access",
        "cognito:groups": ["admin"], "scope": "aws.cognito.signin.user.admin", "username": "ann",
    }));
    assert_eq!(
        deploy(&server, &key.sign(&access)).await,
        crate::common::DEPLOY_PERMITTED
    );
    let id = timed(json!({
        "sub": "s", "iss": iss, "aud": "7abcdefghij1234567890", "token_use": "id",
        "cognito:groups": ["admin"], "email": "ann@example.com",
    }));
    assert_eq!(deploy(&server, &key.sign(&id)).await, 401);
    server.stop().await;
}

#[tokio::test]
async fn scope_permissions_require_claims_token_types_and_a_trailing_newline() {
    init_tracing();
    let key = SigningKey::es256("gen");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = "https://generic.example.com";
    let mut c = config(iss, &idp);
    c.audience = "api.example.com\n".into();
    c.scope_permissions = Some("true".into());
    c.require_claims = Some("tenant=acme, env=prod".into());
    c.token_types = Some("at+jwt".into());
    c.algorithms = vec![" ES256 ".into()];
    let server = start(c).await.unwrap();
    let claims = timed(json!({
        "iss": iss, "aud": "api.example.com", "sub": "svc", "scope": "model:run openid",
        "tenant": "acme", "env": "prod",
    }));
    let at = |c: &Value| key.sign_with_header(&json!({"alg": "ES256", "kid": "gen", "typ": "at+jwt"}), c);
    assert_eq!(
        run(&server, &at(&claims)).await,
        202,
        "the scope names the permission"
    );
    assert_eq!(deploy(&server, &at(&claims)).await, 403);
    assert_eq!(
        run(&server, &key.sign(&claims)).await,
        401,
        "typ JWT is not accepted here"
    );
    let mut other = claims.clone();
    other["tenant"] = "globex".into();
    assert_eq!(run(&server, &at(&other)).await, 401, "required claim value");
    other.as_object_mut().unwrap().remove("tenant");
    assert_eq!(run(&server, &at(&other)).await, 401, "required claim missing");
    server.stop().await;
}

/// A discovery document for `iss` on 127.0.0.1 that points at `jwks_uri`.
async fn discovery_server(jwks_uri: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iss = format!("http://{}", listener.local_addr().unwrap());
    let doc = json!({"issuer": iss, "jwks_uri": jwks_uri});
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    iss
}

#[tokio::test]
async fn keys_from_the_discovery_document() {
    init_tracing();
    let key = SigningKey::es256("disc");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = discovery_server(&idp.url).await;
    let mut c = Config::with_bind("127.0.0.1:0".parse().unwrap());
    c.issuer = Some(iss.clone());
    c.discovery = Some("true".into());
    let server = start(c).await.unwrap();
    let token = key.sign(&timed(
        json!({"iss": iss, "aud": "api.example.com", "sub": "d", "roles": ["analyst"]}),
    ));
    assert_eq!(run(&server, &token).await, 202);
    server.stop().await;
    let mut both = Config::with_bind("127.0.0.1:0".parse().unwrap());
    both.issuer = Some(iss);
    both.discovery = Some("true".into());
    both.jwks_url = Some(idp.url.clone());
    let err = start(both).await.err().unwrap().to_string();
    assert!(
        err.contains("AUTHZ_JWKS_URL") && err.contains("AUTHZ_DISCOVERY"),
        "{err}"
    );
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authz-issuers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn several_isolated_issuers_from_an_issuers_file() {
    init_tracing();
    let (ka, kb) = (SigningKey::es256("a"), SigningKey::es256("b"));
    let (ia, ib) = (
        JwksServer::start(vec![ka.jwk.clone()]).await,
        JwksServer::start(vec![kb.jwk.clone()]).await,
    );
    let path = write(
        "issuers.toml",
        &format!(
            r#"
[[issuer]]
issuer = "https://a.example.com"
audience = "api.example.com"
jwks_url = "{}"
algorithms = ["ES256"]

[[issuer]]
issuer = "https://dev-1.okta.com/oauth2/default"
audience = ["api://default", "api.example.com"]
jwks_url = "{}"
algorithms = ["ES256"]
provider = "okta"
"#,
            ia.url, ib.url
        ),
    );
    let mut c = Config::with_bind("127.0.0.1:0".parse().unwrap());
    c.issuers_file = Some(path);
    let server = start(c).await.unwrap();
    let a = timed(
        json!({"iss": "https://a.example.com", "aud": "api.example.com", "sub": "a", "roles": ["analyst"]}),
    );
    let b = timed(
        json!({"iss": "https://dev-1.okta.com/oauth2/default", "aud": "api://default", "sub": "b",
                          "scp": ["openid"], "groups": ["admin"], "cid": "0oa1"}),
    );
    assert_eq!(run(&server, &ka.sign(&a)).await, 202);
    assert_eq!(
        deploy(&server, &kb.sign(&b)).await,
        crate::common::DEPLOY_PERMITTED,
        "Okta groups through the okta preset"
    );
    assert_eq!(
        deploy(&server, &ka.sign(&b)).await,
        401,
        "A's key never signs for B"
    );
    assert_eq!(run(&server, &kb.sign(&a)).await, 401, "B's key never signs for A");
    server.stop().await;

    for (text, says) in [
        (
            "[[issuer]]\nissuer = \"https://x\"\naudience = \"a\"\nalgorithms = [\"ES256\"]\njwks_url = \"https://x/jwks\"\nprovider = \"ping\"\n",
            ":2: `provider`",
        ),
        (
            "[[issuer]]\nissuer = \"https://x\"\naudience = \"a\"\nalgorithms = [\"ES256\"]\n",
            ":2: `jwks_url`",
        ),
        (
            "[[issuer]]\nissuer = \"https://x\"\naudience = \"a\"\nalgorithms = [\"ES256\"]\njwks_url = \"https://x/jwks\"\ncolour = 1\n",
            ":6",
        ),
        (
            "[[issuer]]\nissuer = \"https://x\"\naudience = \"a\"\nalgorithms = [\"HS1\"]\njwks_url = \"https://x/jwks\"\n",
            "`algorithms`",
        ),
    ] {
        let path = write("bad.toml", text);
        let mut c = Config::with_bind("127.0.0.1:0".parse().unwrap());
        c.issuers_file = Some(path.clone());
        let err = start(c).await.err().unwrap().to_string();
        assert!(
            err.contains("AUTHZ_ISSUERS_FILE") && err.contains("bad.toml") && err.contains(says),
            "{says}: {err}"
        );
    }
    let mut both = Config::with_bind("127.0.0.1:0".parse().unwrap());
    both.issuers_file = Some(write("x.toml", ""));
    both.issuer = Some("https://x".into());
    let err = start(both).await.err().unwrap().to_string();
    assert!(
        err.contains("AUTHZ_ISSUERS_FILE") && err.contains("AUTHZ_ISSUER"),
        "{err}"
    );
}
