//! Regression tests for what an attack on the token service and DPoP found: the refresh and
//! code races, proofs that must not fill the replay cache, revocation reaching sessions and
//! introspection, error shapes, and htu checked against the service's own names.

use std::collections::HashMap;

use authz_axum::core::dpop::DpopKey;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{http, init_tracing};
use crate::token_service::no_redirects;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn registry() -> model_registry::Server {
    init_tracing();
    model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

fn now() -> u64 {
    crate::common::now()
}

/// Signs `ada` in once and returns her session cookie (`authz_session=…`).
async fn session(server: &model_registry::Server) -> String {
    let client = no_redirects();
    let url = format!(
        "{}/authorize?response_type=code&client_id=spa&code_challenge={CHALLENGE}&code_challenge_method=S256",
        server.url()
    );
    let page = client.get(&url).send().await.unwrap();
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("authz_csrf="))
        .unwrap();
    let html = page.text().await.unwrap();
    let mut form: HashMap<String, String> = HashMap::new();
    for input in html.split("<input").skip(1) {
        let attr = |a: &str| {
            input
                .split(&format!("{a}=\""))
                .nth(1)
                .map(|v| v.split('"').next().unwrap().to_string())
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            form.insert(n, v.replace("&amp;", "&"));
        }
    }
    form.insert("username".into(), "ada".into());
    form.insert("password".into(), server.users[0].password.clone());
    let resp = client
        .post(format!("{}/authorize", server.url()))
        .header("cookie", csrf)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("authz_session="))
        .unwrap()
}

/// A code for the SPA through the existing session (no password, no throttle).
async fn code(server: &model_registry::Server, session: &str) -> String {
    let resp = no_redirects()
        .get(format!(
            "{}/authorize?response_type=code&client_id=spa&code_challenge={CHALLENGE}&code_challenge_method=S256",
            server.url()
        ))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    loc.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

async fn exchange(server: &model_registry::Server, code: &str) -> reqwest::Response {
    http()
        .post(format!("{}/token", server.url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", code),
            ("redirect_uri", &format!("{}/app/spa/", server.url())),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

async fn refresh(server: &model_registry::Server, token: &str) -> reqwest::Response {
    http()
        .post(format!("{}/token", server.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", token),
        ])
        .send()
        .await
        .unwrap()
}

async fn me_status(server: &model_registry::Server, token: &str) -> u16 {
    crate::token_service::me(server, token).await.status().as_u16()
}

/// Two concurrent refreshes (or code redemptions) of one grant: one wins, the other is
/// reuse and revokes the grant — and the winner's new access token must not outlive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raced_refresh_or_code_never_leaves_a_live_token_behind() {
    let server = registry().await;
    let sso = session(&server).await;
    for round in 0..12 {
        let body: Value = exchange(&server, &code(&server, &sso).await)
            .await
            .json()
            .await
            .unwrap();
        let rt = body["refresh_token"].as_str().unwrap().to_string();
        let (a, b) = tokio::join!(refresh(&server, &rt), refresh(&server, &rt));
        for r in [a, b] {
            if r.status() == 200 {
                let t: Value = r.json().await.unwrap();
                assert_eq!(
                    me_status(&server, t["access_token"].as_str().unwrap()).await,
                    401,
                    "round {round}: the winner of a raced refresh kept a live token"
                );
            }
        }
        let c = code(&server, &sso).await;
        let (a, b) = tokio::join!(exchange(&server, &c), exchange(&server, &c));
        for r in [a, b] {
            if r.status() == 200 {
                let t: Value = r.json().await.unwrap();
                assert_eq!(
                    me_status(&server, t["access_token"].as_str().unwrap()).await,
                    401,
                    "round {round}: the winner of a raced code kept a live token"
                );
            }
        }
    }
    server.stop().await;
}

/// At /token a proof is recorded only once the grant checked out: proofs sent with worthless
/// grants cannot fill the replay cache, and the same proof still works for a real grant.
#[tokio::test]
async fn proofs_with_worthless_grants_are_not_recorded() {
    let server = registry().await;
    let key = DpopKey::generate();
    let token_url = format!("{}/token", server.url());
    let proof = key.proof("POST", &token_url, None, None, now());
    let resp = http()
        .post(&token_url)
        .header("DPoP", &proof)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", "worthless"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let admin = server.client("admin-client").unwrap();
    let cc = || {
        http()
            .post(&token_url)
            .basic_auth(&admin.id, Some(&admin.secret))
            .header("DPoP", &proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let resp = cc().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the proof was not spent by the worthless grant"
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["token_type"], "DPoP");
    let resp = cc().await.unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof",
        "now it is spent"
    );
    // An iat far in the future (u64::MAX) is refused, not a crash.
    let resp = http()
        .post(&token_url)
        .basic_auth(&admin.id, Some(&admin.secret))
        .header("DPoP", key.proof("POST", &token_url, None, None, u64::MAX))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    server.stop().await;
}

/// `htu` is checked against the service's own names, not a Host header the client picks.
#[tokio::test]
async fn htu_is_checked_against_the_service_not_the_host_header() {
    let server = registry().await;
    let key = DpopKey::generate();
    let admin = server.client("admin-client").unwrap();
    let token_url = format!("{}/token", server.url());
    let body: Value = http()
        .post(&token_url)
        .basic_auth(&admin.id, Some(&admin.secret))
        .header("DPoP", key.proof("POST", &token_url, None, None, now()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let deploy = |htu: String, host: Option<&'static str>| {
        let url = format!("{}/models/m1/deploy", server.url());
        let proof = key.proof("POST", &htu, Some(token), None, now());
        let mut req = http()
            .post(url)
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .json(&serde_json::json!({}));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        req.send()
    };
    assert_eq!(
        deploy(
            "http://evil.example/models/m1/deploy".into(),
            Some("evil.example")
        )
        .await
        .unwrap()
        .status(),
        401
    );
    let port = server.addr.port();
    assert_eq!(
        deploy(format!("http://localhost:{port}/models/m1/deploy"), None)
            .await
            .unwrap()
            .status(),
        202,
        "localhost is one of the service's names"
    );
    assert_eq!(
        deploy(format!("{}/models/m1/deploy", server.url()), None)
            .await
            .unwrap()
            .status(),
        202
    );
    server.stop().await;
}

/// Revoking a subject ends its login sessions and introspection agrees.
#[tokio::test]
async fn revoking_a_subject_ends_sessions_and_introspection_agrees() {
    let server = registry().await;
    let sso = session(&server).await;
    let body: Value = exchange(&server, &code(&server, &sso).await)
        .await
        .json()
        .await
        .unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();
    let svc = server.token_service.as_ref().unwrap();
    let rs = authz_axum::oauth::register_client(
        svc.store().as_ref(),
        authz_axum::oauth::ClientRegistration {
            id: "rs-hardening".into(),
            client_type: authz_axum::core::oauth::ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: vec![authz_axum::core::oauth::GrantType::ClientCredentials],
            roles: vec![],
        },
        now(),
    )
    .await
    .unwrap();
    let introspect = |token: String| {
        let secret = rs.secret.clone().unwrap();
        let url = format!("{}/introspect", server.url());
        async move {
            http()
                .post(url)
                .basic_auth("rs-hardening", Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(introspect(access.clone()).await["active"], true);
    svc.revoke_subject("ada").await.unwrap();
    assert_eq!(me_status(&server, &access).await, 401);
    assert_eq!(
        introspect(access.clone()).await["active"],
        false,
        "introspection sees the subject revocation"
    );
    // The session cookie no longer mints codes: the login page again.
    let resp = no_redirects()
        .get(format!(
            "{}/authorize?response_type=code&client_id=spa&code_challenge={CHALLENGE}&code_challenge_method=S256",
            server.url()
        ))
        .header("cookie", &sso)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a login page, not a silent code");
    // prompt=none without a session: login_required, redirected (OIDC Core §3.1.2.6).
    let resp = no_redirects()
        .get(format!(
            "{}/authorize?response_type=code&client_id=spa&code_challenge={CHALLENGE}&code_challenge_method=S256&prompt=none&state=s1",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.contains("error=login_required") && loc.contains("state=s1"),
        "{loc}"
    );
    // A DPoP-bound token is introspected as DPoP.
    let key = DpopKey::generate();
    let admin = server.client("admin-client").unwrap();
    let token_url = format!("{}/token", server.url());
    let bound: Value = http()
        .post(&token_url)
        .basic_auth(&admin.id, Some(&admin.secret))
        .header("DPoP", key.proof("POST", &token_url, None, None, now()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info = introspect(bound["access_token"].as_str().unwrap().to_string()).await;
    assert_eq!(info["token_type"], "DPoP");
    server.stop().await;
}

/// Error shapes at the token endpoint: a malformed Basic attempt still gets the Basic
/// challenge; a body over the limit and a wrong method answer in RFC 6749 §5.2 form, no-store.
#[tokio::test]
async fn token_endpoint_errors_keep_their_shape() {
    let server = registry().await;
    let url = format!("{}/token", server.url());
    for auth in ["Basic %%%", "Basic bm9jb2xvbg==", "Bearer abc"] {
        let resp = http()
            .post(&url)
            .header("authorization", auth)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{auth}");
        assert!(
            resp.headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().starts_with("Basic")),
            "{auth}: the Basic challenge"
        );
    }
    let resp = http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Client and user subjects never collide.
    let svc = server.token_service.as_ref().unwrap();
    let clash = authz_axum::oauth::register_client(
        svc.store().as_ref(),
        authz_axum::oauth::ClientRegistration {
            id: "ada".into(),
            client_type: authz_axum::core::oauth::ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: vec![authz_axum::core::oauth::GrantType::ClientCredentials],
            roles: vec![],
        },
        now(),
    )
    .await;
    assert!(clash.is_err(), "a client named like a user");
    server.stop().await;
}

/// Server nonces (RFC 9449 §8–9): a resource server that requires them answers a proof without
/// one `401 use_dpop_nonce` with a `DPoP-Nonce` header; the retry with that nonce passes.
#[tokio::test]
async fn a_resource_server_can_require_dpop_nonces() {
    use std::sync::Arc;

    use authz_axum::core::dpop::DpopVerifier;
    use authz_axum::core::jwt::{Algorithm, JwtVerifier};
    use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
    use authz_axum::{AuthLayer, Authenticator, DpopBound, DpopSettings, Issuer, StaticKeys};

    init_tracing();
    let signer = crate::common::SigningKey::es256("nonce-test");
    let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let verifier = JwtVerifier::builder("https://nonce.test", "api", [Algorithm::ES256])
        .build()
        .unwrap();
    let auth = Arc::new(
        Authenticator::builder(policy)
            .issuer(Issuer::new(verifier, StaticKeys::new(signer.key_set())))
            .build()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/bound",
            axum::routing::get(|DpopBound(p): DpopBound| async move { p.subject().to_string() }),
        )
        .layer(
            AuthLayer::new(auth).dpop(
                DpopSettings::new(DpopVerifier::default().with_nonces(
                    b"a secret the instances share",
                    std::time::Duration::from_secs(60),
                ))
                .with_origin(origin.clone()),
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let key = DpopKey::generate();
    let mut claims = crate::common::claims("https://nonce.test", "api", "holder", &["viewer"]);
    claims["cnf"] = serde_json::json!({ "jkt": key.thumbprint() });
    let token = signer.sign(&claims);
    let url = format!("{origin}/bound");
    let call = |nonce: Option<String>| {
        let proof = key.proof("GET", &url, Some(&token), nonce.as_deref(), now());
        http()
            .get(&url)
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
    };
    let resp = call(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(
        challenge.starts_with("DPoP") && challenge.contains("use_dpop_nonce"),
        "{challenge}"
    );
    let nonce = resp.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let resp = call(Some(nonce)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "holder");
    let resp = call(Some("forged".into())).await.unwrap();
    assert_eq!(resp.status(), 401, "a forged nonce");
}
