//! The model-registry example end to end over real HTTP on 127.0.0.1: every route with every
//! role, the IDOR case, separation of duties, and the seed's attacks.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use model_registry::{Config, Server, start};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{JwksServer, SigningKey, claims, demo_token as token, http, init_tracing};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn registry() -> Server {
    init_tracing();
    start(Config::with_bind(any_port()))
        .await
        .expect("model-registry starts")
}

async fn call(server: &Server, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = http().request(method.clone(), format!("{}{path}", server.url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == Method::POST {
        req = req.header("content-type", "application/json").body("{}");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_route_with_every_role() {
    let server = registry().await;
    let roles = [
        "viewer-client",
        "analyst-client",
        "admin-client",
        "clerk-client",
        "approver-client",
    ];
    let mut tokens = Vec::new();
    for r in roles {
        tokens.push(token(&server, r, None).await);
    }
    // (method, path, expected status for viewer, analyst, admin, clerk, approver)
    let table: &[(Method, &str, [u16; 5])] = &[
        (Method::GET, "/healthz", [200; 5]),
        (Method::GET, "/me", [200; 5]),
        (Method::GET, "/datasets", [200, 200, 200, 403, 403]),
        (Method::POST, "/datasets", [403, 403, 201, 403, 403]),
        (Method::POST, "/models/m1/run", [403, 202, 202, 403, 403]),
        // Deploying needs DPoP (tests/it/dpop.rs): analyst's and admin's bearer tokens pass the
        // permission check, then are asked for a DPoP-bound token (the deploy policy decides
        // after that: tests/it/policy.rs).
        (
            Method::POST,
            "/models/m1/deploy",
            [
                403,
                crate::common::DEPLOY_PERMITTED,
                crate::common::DEPLOY_PERMITTED,
                403,
                403,
            ],
        ),
        (Method::POST, "/reports", [403, 201, 201, 403, 403]),
        (Method::POST, "/payments", [403, 403, 403, 201, 403]),
        (
            Method::POST,
            "/payments/00000000-0000-0000-0000-000000000000/approve",
            [403, 403, 403, 403, 404],
        ),
        (Method::GET, "/routes", [403, 403, 200, 403, 403]),
    ];
    for (method, path, expected) in table {
        for (i, t) in tokens.iter().enumerate() {
            let resp = call(&server, method.clone(), path, Some(t)).await;
            let status = resp.status();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            let content_type = resp.headers().get("content-type").cloned();
            assert_eq!(
                crate::common::deploy_status(resp).await,
                expected[i],
                "{method} {path} as {}",
                roles[i]
            );
            if status == 403 && *path != "/payments/00000000-0000-0000-0000-000000000000/approve" {
                assert_eq!(
                    www.unwrap(),
                    r#"Bearer realm="model-registry", error="insufficient_scope""#
                );
                assert_eq!(content_type.unwrap(), "application/problem+json");
            }
        }
        if *path != "/healthz" {
            let anon = call(&server, method.clone(), path, None).await;
            assert_eq!(anon.status(), 401, "{method} {path} without a token");
            assert_eq!(
                anon.headers()["www-authenticate"],
                r#"Bearer realm="model-registry""#
            );
        }
    }
    // /me tells who the caller is and what it may do.
    let me: Value = call(&server, Method::GET, "/me", Some(&tokens[1]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["subject"], "analyst-client");
    assert_eq!(me["roles"], serde_json::json!(["analyst"]));
    assert_eq!(
        me["permissions"],
        serde_json::json!([
            "data:read",
            "model:run",
            "model:deploy",
            "report:create",
            "model:create"
        ])
    );
    // /routes is the table the macros recorded.
    let routes: Value = call(&server, Method::GET, "/routes", Some(&tokens[2]))
        .await
        .json()
        .await
        .unwrap();
    let run = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/models/{id}/run")
        .unwrap();
    assert_eq!(run["requires"], "\"model:run\"");
    let health = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/healthz")
        .unwrap();
    assert_eq!(health["requires"], "public");
    server.stop().await;
}

#[tokio::test]
async fn reports_are_owner_only_and_ids_are_opaque() {
    let server = registry().await;
    let analyst = token(&server, "analyst-client", None).await;
    let admin = token(&server, "admin-client", None).await;
    let viewer = token(&server, "viewer-client", None).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = call(&server, Method::POST, "/reports", Some(&analyst)).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "opaque UUID id, got {id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    let path = format!("/reports/{}", ids[0]);
    assert_eq!(
        call(&server, Method::GET, &path, Some(&analyst)).await.status(),
        200
    );
    assert_eq!(
        call(&server, Method::GET, &path, Some(&admin)).await.status(),
        200,
        "report:read_any"
    );
    let other = call(&server, Method::GET, &path, Some(&viewer)).await;
    assert_eq!(
        other.status(),
        404,
        "another user's report is not even acknowledged"
    );
    let other_body = other.text().await.unwrap();
    let missing = call(
        &server,
        Method::GET,
        &format!("/reports/{}", uuid::Uuid::new_v4()),
        Some(&viewer),
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.unwrap(), other_body, "no existence leak");
    assert_eq!(call(&server, Method::GET, &path, None).await.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn separation_of_duties_static_and_dynamic() {
    let server = registry().await;
    let alice_clerk = token(&server, "alice", Some("payments_clerk")).await;
    let alice_approver = token(&server, "alice", Some("payments_approver")).await;
    let approver = token(&server, "approver-client", None).await;
    let created = call(&server, Method::POST, "/payments", Some(&alice_clerk)).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = format!("/payments/{id}/approve");
    let own = call(&server, Method::POST, &approve, Some(&alice_approver)).await;
    assert_eq!(own.status(), 403, "the initiator may not approve");
    assert!(own.text().await.unwrap().contains("separation of duties"));
    assert_eq!(
        call(&server, Method::POST, &approve, Some(&approver))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&server, Method::POST, &approve, Some(&approver))
            .await
            .status(),
        409
    );
    // One token with both payment roles: both sides are withheld.
    let both = token(&server, "alice", None).await;
    assert_eq!(
        call(&server, Method::POST, "/payments", Some(&both))
            .await
            .status(),
        403
    );
    let me: Value = call(&server, Method::GET, "/me", Some(&both))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["permissions"], serde_json::json!([]));
    // A client may not ask for a role it does not hold.
    let c = server.client("viewer-client").unwrap();
    let r = http()
        .post(format!("{}/oauth/token", server.url()))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    server.stop().await;
}

#[tokio::test]
async fn token_endpoint_is_rfc6749() {
    let server = registry().await;
    let c = server.client("viewer-client").unwrap().clone();
    let url = format!("{}/oauth/token", server.url());
    // Form-field client authentication works too.
    let r = http()
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &c.id),
            ("client_secret", &c.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Wrong secret, unknown client: 401 invalid_client, with a Basic challenge when Basic was used.
    let r = http()
        .post(&url)
        .basic_auth(&c.id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = http()
        .post(&url)
        .basic_auth("nobody", Some(&c.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Two authentication methods at once, an unsupported grant.
    let r = http()
        .post(&url)
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials"), ("client_secret", &c.secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http()
        .post(&url)
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Discovery and JWKS.
    let d: Value = http()
        .get(format!("{}/.well-known/openid-configuration", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], server.issuer);
    let jwks: Value = http()
        .get(d["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private material in the JWKS"
    );
    server.stop().await;
}

const OUTSIDE_ISSUER: &str = "https://idp.example.test";

/// The registry configured for an outside provider whose JWKS `idp` serves.
fn outside_idp_config(idp: &JwksServer) -> Config {
    let mut config = Config::with_bind(any_port());
    config.issuer = Some(OUTSIDE_ISSUER.into());
    config.jwks_url = Some(idp.url.clone());
    config
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn the_seeds_attacks_are_refused() {
    init_tracing();
    let key = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = OUTSIDE_ISSUER;
    let mut config = outside_idp_config(&idp);
    config.cors_origins = vec!["https://app.example.com".into()];
    let server = start(config).await.unwrap();
    assert!(
        server.clients.is_empty(),
        "no dev issuer with an outside provider"
    );
    let get = |t: String| {
        let url = format!("{}/datasets", server.url());
        async move { http().get(url).bearer_auth(t).send().await.unwrap() }
    };
    let good = key.sign(&claims(iss, "api.example.com", "u1", &["viewer"]));
    assert_eq!(get(good.clone()).await.status(), 200);

    let mut c = claims(iss, "api.example.com", "u1", &["admin"]);
    // alg: none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&c)
    );
    // RS256/ES256 → HS256 confusion: HMAC keyed with the public JWK's bytes.
    let header = b64(&serde_json::json!({"alg": "HS256", "kid": "k1"}));
    let input = format!("{header}.{}", b64(&c));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.jwk.to_string().as_bytes()),
        input.as_bytes(),
    );
    let confusion = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    // Expired, wrong issuer, wrong audience, and a forged signature.
    c["exp"] = (crate::common::now() - 120).into();
    let expired = key.sign(&c);
    let wrong_iss = key.sign(&claims(
        "https://evil.example",
        "api.example.com",
        "u1",
        &["admin"],
    ));
    let wrong_aud = key.sign(&claims(iss, "other-api", "u1", &["admin"]));
    let other_key = SigningKey::es256("k1");
    let forged = other_key.sign(&claims(iss, "api.example.com", "u1", &["admin"]));
    for (name, t) in [
        ("none", none),
        ("confusion", confusion),
        ("expired", expired),
        ("iss", wrong_iss),
        ("aud", wrong_aud),
        ("forged", forged),
    ] {
        let r = get(t).await;
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="model-registry", error="invalid_token""#,
            "{name}"
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("eyJ"), "{name}: nothing from the token is echoed");
    }
    // A token in the query string is never accepted.
    let r = http()
        .get(format!("{}/datasets?access_token={good}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // CORS: the configured origin is allowed, any other is never reflected, never `*`.
    let preflight = |origin: &'static str| {
        let url = format!("{}/datasets", server.url());
        async move {
            http()
                .request(Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://app.example.com").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let evil = preflight("https://evil.example").await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    assert_eq!(ok.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn misconfiguration_is_refused_at_start_with_the_setting_named() {
    let mut config = Config::with_bind(any_port());
    config.cors_origins = vec!["*".into()];
    let err = start(config).await.err().unwrap().to_string();
    assert!(
        err.contains("AUTHZ_CORS_ORIGINS") && err.contains("wildcard"),
        "{err}"
    );
    let mut config = Config::with_bind(any_port());
    config.jwks_url = Some("http://idp.example.com/jwks".into());
    config.issuer = Some("https://idp.example.com".into());
    let err = start(config).await.err().unwrap().to_string();
    assert!(err.contains("AUTHZ_JWKS_URL") && err.contains("https"), "{err}");
    let mut config = Config::with_bind(any_port());
    config.algorithms = vec!["none".into()];
    let err = start(config).await.err().unwrap().to_string();
    assert!(err.contains("AUTHZ_ALGORITHMS"), "{err}");
    let dir = std::env::temp_dir().join(format!("authz-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad-policy.toml");
    std::fs::write(&path, "[roles.auditor]\ngrants = [\"report:read_all\"]\n").unwrap();
    let mut config = Config::with_bind(any_port());
    config.policy = Some(path.clone());
    let err = start(config).await.err().unwrap().to_string();
    assert!(
        err.contains("bad-policy.toml:2") && err.contains("auditor") && err.contains("report:read_any"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn keys_rotated_at_the_provider_are_picked_up_while_requests_flow() {
    init_tracing();
    let old = SigningKey::es256("old");
    let idp = JwksServer::start(vec![old.jwk.clone()]).await;
    let iss = OUTSIDE_ISSUER;
    let server = start(outside_idp_config(&idp)).await.unwrap();
    let url = format!("{}/datasets", server.url());
    let old_token = old.sign(&claims(iss, "api.example.com", "u1", &["viewer"]));
    let new = SigningKey::es256("new");
    let new_token = new.sign(&claims(iss, "api.example.com", "u2", &["viewer"]));
    // Requests keep flowing from another task during the rotation.
    let flow_url = url.clone();
    let flow_token = old_token.clone();
    let flow = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..50 {
            statuses.push(
                http()
                    .get(&flow_url)
                    .bearer_auth(&flow_token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        statuses
    });
    idp.set_keys(vec![old.jwk.clone(), new.jwk.clone()]);
    let r = http().get(&url).bearer_auth(&new_token).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "an unknown kid triggers a refetch that finds the new key"
    );
    let statuses = flow.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    server.stop().await;
}
