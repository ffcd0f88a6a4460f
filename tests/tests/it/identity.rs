//! Tokens and key sets as real identity providers publish them: odd JWKS entries beside good
//! keys, ID tokens and logout tokens presented as access tokens, several isolated issuers, and
//! the claim shapes of Keycloak, Auth0, Entra ID, Okta, Cognito and Google (built from each
//! provider's public documentation).

use std::sync::Arc;

use authz_axum::core::Policy;
use authz_axum::core::auth::{AuthError, Authenticator, Issuer, StaticKeys};
use authz_axum::core::jwt::{Algorithm, ClaimMapping, JwtErrorKind, JwtVerifier, Provider};
use authz_axum::jwks::{JwksOptions, RemoteJwks};
use authz_axum::{AuthLayer, Principal};
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use crate::common::{
    JwksServer, RsaSigningKey, SigningKey, captured_logs, claims, http, init_tracing, now, serve,
};

const AUD: &str = "api.example.com";

fn policy() -> Arc<Policy> {
    crate::common::payments_policy()
}

async fn whoami(p: Principal) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": p.subject(),
        "iss": p.issuer(),
        "roles": p.roles(),
        "scopes": p.scopes(),
        "tenant": p.tenant(),
    }))
}

/// Serves `/whoami` behind an authenticator.
async fn serve_auth(auth: Authenticator) -> String {
    init_tracing();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(Arc::new(auth)));
    format!("{}/whoami", serve(app).await)
}

async fn call(url: &str, token: &str) -> (u16, Value) {
    let r = http().get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The production pipeline, called directly (the claim shapes are not HTTP behaviour).
async fn authenticate(auth: &Authenticator, token: &str) -> Result<authz_axum::core::Principal, AuthError> {
    auth.authenticate(token).await
}

// ---- key sets --------------------------------------------------------------------------------

/// A 1024-bit modulus (not a real key: it only has to be refused as too weak).
fn rsa_1024_jwk(kid: &str) -> Value {
    use base64::Engine as _;
    let mut n = vec![0xc5u8; 128];
    n[127] |= 1;
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
           "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n), "e": "AQAB"})
}

#[tokio::test]
async fn one_unusable_key_never_takes_down_the_good_ones() {
    init_tracing();
    let good = SigningKey::es256("good");
    let rsa = RsaSigningKey::generate("rsa-no-alg");
    let mut short_x = good.jwk.clone();
    short_x["kid"] = "short-x".into();
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let x = b64.decode(good.jwk["x"].as_str().unwrap()).unwrap();
        short_x["x"] = b64.encode(&x[1..]).into(); // lost its leading octet
    }
    let mut enc_same_kid = rsa.jwk(Some("RSA-OAEP"));
    enc_same_kid["kid"] = "good".into();
    enc_same_kid["use"] = "enc".into();
    let cases: Vec<(&str, Value)> = vec![
        ("weak-1024", rsa_1024_jwk("weak-1024")),
        ("rsa-no-alg", rsa.jwk(None)),
        (
            "cert-only",
            json!({"kty": "RSA", "kid": "cert-only", "use": "sig",
                   "x5c": ["MIIBszCCAVmgAwIBAgIUJ0Y2k1S0d6kJYxuKJrVd1eXf5mIwCgYIKoZIzj0EAwIw"]}),
        ),
        ("null", Value::Null),
        ("short-x", short_x),
        ("enc-shares-kid", enc_same_kid),
        (
            "symmetric",
            json!({"kty": "oct", "kid": "symmetric", "alg": "HS256", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}),
        ),
    ];
    for (name, bad) in cases {
        let idp = JwksServer::start(vec![good.jwk.clone(), bad.clone()]).await;
        let iss = format!("https://idp.{name}.test");
        let jwks = RemoteJwks::new(
            &idp.url,
            [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256]
                .into_iter()
                .collect(),
            JwksOptions::default(),
        )
        .unwrap();
        jwks.start()
            .await
            .unwrap_or_else(|e| panic!("{name}: the set loads: {e}"));
        let verifier =
            JwtVerifier::builder(&iss, AUD, [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256])
                .build()
                .unwrap();
        let auth = Authenticator::builder(policy())
            .issuer(Issuer::new(verifier, jwks))
            .build()
            .unwrap();
        let url = serve_auth(auth).await;
        let (status, _) = call(&url, &good.sign(&claims(&iss, AUD, "u", &["viewer"]))).await;
        assert_eq!(status, 200, "{name}: the good key's tokens are accepted");
        if name == "rsa-no-alg" {
            // Without `alg`, an RSA key serves every allowed RSA algorithm, each bound to it.
            for alg in ["RS256", "PS256"] {
                let (status, _) = call(&url, &rsa.sign(alg, &claims(&iss, AUD, "u", &["viewer"]))).await;
                assert_eq!(status, 200, "{name}: {alg}");
            }
            continue;
        }
        let kid = match name {
            "null" => "kid=None".to_string(),
            "enc-shares-kid" => r#"kid=Some("good")"#.to_string(),
            other => format!("kid=Some({other:?})"),
        };
        let logs = captured_logs();
        let line = logs
            .lines()
            .find(|l| l.contains("JWKS key skipped") && l.contains(&idp.url) && l.contains(&kid))
            .unwrap_or_else(|| panic!("{name}: a log line names the skipped key\n{logs}"));
        assert!(line.contains("reason="), "{name}: the reason is logged: {line}");
    }
}

#[tokio::test]
async fn a_skipped_key_is_logged_once_not_at_every_refresh() {
    let good = SigningKey::es256("good");
    let idp = JwksServer::start(vec![good.jwk.clone(), rsa_1024_jwk("logged-once")]).await;
    let jwks = RemoteJwks::new(
        &idp.url,
        [Algorithm::ES256, Algorithm::RS256].into_iter().collect(),
        JwksOptions::default(),
    )
    .unwrap();
    init_tracing();
    for _ in 0..3 {
        jwks.refresh_now().await.unwrap();
    }
    let logs = captured_logs();
    let n = logs
        .lines()
        .filter(|l| l.contains("JWKS key skipped") && l.contains("logged-once"))
        .count();
    assert_eq!(n, 1, "{logs}");
}

// ---- token types -------------------------------------------------------------------------------

fn es256_issuer(
    iss: &str,
    key: &SigningKey,
    configure: impl FnOnce(authz_axum::core::jwt::JwtVerifierBuilder) -> authz_axum::core::jwt::JwtVerifierBuilder,
) -> Issuer {
    let verifier = configure(JwtVerifier::builder(iss, AUD, [Algorithm::ES256]))
        .build()
        .unwrap();
    let keys = key.key_set();
    Issuer::new(verifier, StaticKeys::new(keys))
}

#[tokio::test]
async fn id_tokens_logout_tokens_and_other_types_are_not_access_tokens() {
    let key = SigningKey::es256("k1");
    let iss = "https://types.test";
    let url = serve_auth(
        Authenticator::builder(policy())
            .issuer(es256_issuer(iss, &key, |b| b))
            .build()
            .unwrap(),
    )
    .await;
    let c = claims(iss, AUD, "u", &["viewer"]);
    let typed = |typ: Option<&str>, c: &Value| {
        let mut h = json!({"alg": "ES256", "kid": "k1"});
        if let Some(t) = typ {
            h["typ"] = t.into();
        }
        key.sign_with_header(&h, c)
    };
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("at+jwt"),
        Some("application/at+jwt"),
        Some("AT+JWT"),
    ] {
        assert_eq!(
            call(&url, &typed(typ, &c)).await.0,
            200,
            "typ {typ:?} is an access token"
        );
    }
    for typ in [
        "id+jwt",
        "logout+jwt",
        "dpop+jwt",
        "secevent+jwt",
        "JOSE",
        "application/jwt+x",
    ] {
        assert_eq!(
            call(&url, &typed(Some(typ), &c)).await.0,
            401,
            "typ {typ} is refused (RFC 8725 §3.11)"
        );
    }
    for claim in ["at_hash", "c_hash", "s_hash"] {
        let mut id = c.clone();
        id[claim] = "aGFzaA".into();
        assert_eq!(
            call(&url, &typed(Some("JWT"), &id)).await.0,
            401,
            "{claim}: an OIDC ID token"
        );
    }
    // An OIDC back-channel logout token without a typ header still carries `events`.
    let mut logout = c.clone();
    logout["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    logout["sid"] = "s1".into();
    assert_eq!(call(&url, &typed(None, &logout)).await.0, 401);

    // The strict option: only RFC 9068 `at+jwt`.
    let strict = serve_auth(
        Authenticator::builder(policy())
            .issuer(es256_issuer(iss, &key, |b| b.require_type("at+jwt")))
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(call(&strict, &typed(Some("at+jwt"), &c)).await.0, 200);
    assert_eq!(call(&strict, &typed(Some("application/at+jwt"), &c)).await.0, 200);
    assert_eq!(call(&strict, &typed(Some("JWT"), &c)).await.0, 401);
    assert_eq!(call(&strict, &typed(None, &c)).await.0, 401);
}

// ---- several issuers ---------------------------------------------------------------------------

#[tokio::test]
async fn issuers_are_isolated_a_key_of_one_never_signs_for_another() {
    let key_a = SigningKey::es256("a1");
    let key_b = SigningKey::es256("b1");
    let (iss_a, iss_b) = ("https://a.example.com", "https://b.example.com");
    let idp_a = JwksServer::start(vec![key_a.jwk.clone()]).await;
    let idp_b = JwksServer::start(vec![key_b.jwk.clone()]).await;
    let remote = |idp: &JwksServer| {
        RemoteJwks::new(
            &idp.url,
            [Algorithm::ES256].into_iter().collect(),
            JwksOptions::default(),
        )
        .unwrap()
    };
    let a = Issuer::new(
        JwtVerifier::builder(iss_a, AUD, [Algorithm::ES256])
            .build()
            .unwrap(),
        remote(&idp_a),
    );
    let b = Issuer::new(
        JwtVerifier::builder(iss_b, AUD, [Algorithm::ES256])
            .build()
            .unwrap(),
        remote(&idp_b),
    )
    .with_mapping(ClaimMapping::none().also_roles_from("groups").unwrap());
    let url = serve_auth(
        Authenticator::builder(policy())
            .issuer(a)
            .issuer(b)
            .build()
            .unwrap(),
    )
    .await;

    let (status, me) = call(&url, &key_a.sign(&claims(iss_a, AUD, "alice", &["viewer"]))).await;
    assert_eq!(
        (status, &me["iss"], &me["roles"]),
        (200, &json!(iss_a), &json!(["viewer"]))
    );
    let mut cb = claims(iss_b, AUD, "bob", &["ignored"]);
    cb["groups"] = json!(["analyst"]);
    let (status, me) = call(&url, &key_b.sign(&cb)).await;
    assert_eq!(
        (status, &me["iss"], &me["roles"]),
        (200, &json!(iss_b), &json!(["analyst"])),
        "B's own mapping"
    );

    // Cross-issuer injection: A's key signs a token claiming to be from B.
    assert_eq!(call(&url, &key_a.sign(&cb)).await.0, 401);
    assert_eq!(
        call(&url, &key_b.sign(&claims(iss_a, AUD, "x", &["viewer"])))
            .await
            .0,
        401
    );
    // The same kid at both providers does not help either.
    let impostor = SigningKey::es256("b1");
    idp_a.set_keys(vec![key_a.jwk.clone(), impostor.jwk.clone()]);
    assert_eq!(call(&url, &impostor.sign(&cb)).await.0, 401);
    assert_eq!(
        call(&url, &key_a.sign(&claims("https://c.example.com", AUD, "x", &[])))
            .await
            .0,
        401,
        "unknown issuer"
    );
    let mut no_iss = claims(iss_a, AUD, "x", &[]);
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(call(&url, &key_a.sign(&no_iss)).await.0, 401, "no iss");
}

#[test]
fn two_issuers_with_one_iss_are_refused_at_build() {
    let key = SigningKey::es256("k");
    let err = Authenticator::builder(policy())
        .issuer(es256_issuer("https://same.test", &key, |b| b))
        .issuer(es256_issuer("https://same.test", &key, |b| b))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("https://same.test"), "{err}");
}

// ---- provider presets: token shapes from each provider's documentation -------------------------

struct Preset {
    auth: Authenticator,
    key: SigningKey,
    iss: String,
}

fn preset(provider: Provider, iss: &str, audience: &str, extra_roles: Option<&str>) -> Preset {
    let key = SigningKey::es256("p1");
    let verifier = provider
        .verifier(iss, audience, [Algorithm::ES256])
        .build()
        .unwrap();
    let mut mapping = provider.mapping(&[audience.to_string()]).unwrap();
    if let Some(r) = extra_roles {
        mapping = mapping.also_roles_from(r).unwrap();
    }
    let keys = key.key_set();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping))
        .build()
        .unwrap();
    Preset {
        auth,
        key,
        iss: iss.into(),
    }
}

fn timed(mut c: Value) -> Value {
    let now = now();
    c["iat"] = now.into();
    c["exp"] = (now + 300).into();
    c
}

fn names(p: &authz_axum::core::Principal) -> Vec<String> {
    let catalog = [
        "data:read",
        "model:run",
        "model:deploy",
        "payment:initiate",
        "payment:approve",
    ];
    let policy = policy();
    catalog
        .iter()
        .filter(|n| p.can(policy.catalog().id(n).unwrap()))
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test]
async fn keycloak_realm_and_client_roles_and_its_id_tokens() {
    let p = preset(
        Provider::Keycloak,
        "https://kc.example.com/realms/demo",
        "api.example.com",
        None,
    );
    let access = timed(json!({
        "iss": p.iss, "aud": ["api.example.com", "account"], "sub": "f:1", "typ": "Bearer", "azp": "web",
        "realm_access": {"roles": ["analyst", "offline_access"]},
        "resource_access": {"api.example.com": {"roles": ["deployer"]}, "account": {"roles": ["manage-account"]}},
        "scope": "openid profile email", "session_state": "x",
    }));
    let principal = authenticate(&p.auth, &p.key.sign(&access)).await.unwrap();
    assert_eq!(principal.roles(), ["analyst", "offline_access", "deployer"]);
    assert_eq!(names(&principal), ["data:read", "model:run", "model:deploy"]);
    let mut id = access.clone();
    id["typ"] = "ID".into();
    id["at_hash"] = "x".into();
    assert_eq!(
        authenticate(&p.auth, &p.key.sign(&id)).await.unwrap_err(),
        AuthError::InvalidToken(JwtErrorKind::NotAnAccessToken)
    );
    id.as_object_mut().unwrap().remove("at_hash");
    assert_eq!(
        authenticate(&p.auth, &p.key.sign(&id)).await.unwrap_err(),
        AuthError::InvalidToken(JwtErrorKind::InvalidClaimValue)
    );
    let mut refresh = access.clone();
    refresh["typ"] = "Refresh".into();
    assert!(authenticate(&p.auth, &p.key.sign(&refresh)).await.is_err());
}

#[tokio::test]
async fn auth0_namespaced_roles_and_permissions_and_its_id_tokens() {
    let p = preset(
        Provider::Auth0,
        "https://tenant.eu.auth0.com/",
        "api.example.com",
        Some("https://registry.example.com/roles"),
    );
    let access = timed(json!({
        "iss": p.iss, "aud": ["api.example.com", "https://tenant.eu.auth0.com/userinfo"], "sub": "auth0|42",
        "azp": "spa-client", "scope": "openid profile model:deploy",
        "permissions": ["model:run", "not:in-catalog"],
        "https://registry.example.com/roles": ["viewer"],
    }));
    let principal = authenticate(&p.auth, &p.key.sign(&access)).await.unwrap();
    assert_eq!(principal.roles(), ["viewer"]);
    assert_eq!(
        names(&principal),
        ["data:read", "model:run"],
        "scopes grant nothing by default"
    );
    let id = timed(json!({
        "iss": p.iss, "aud": "api.example.com", "sub": "auth0|42", "nonce": "n-0S6_WzA2Mj", "name": "Ann",
        "https://registry.example.com/roles": ["viewer"],
    }));
    assert_eq!(
        authenticate(&p.auth, &p.key.sign(&id)).await.unwrap_err(),
        AuthError::InvalidToken(JwtErrorKind::NotAnAccessToken)
    );
}

#[tokio::test]
async fn entra_v1_and_v2_app_roles_scopes_and_tenant() {
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let v1 = preset(
        Provider::Entra,
        &format!("https://sts.windows.net/{tid}/"),
        "api://registry",
        None,
    );
    let token = timed(json!({
        "iss": v1.iss, "aud": "api://registry", "sub": "AAAA", "ver": "1.0", "tid": tid, "appid": "c0ffee",
        "scp": "Models.Read Models.Run", "roles": ["analyst"], "oid": "o-1",
    }));
    let principal = authenticate(&v1.auth, &v1.key.sign(&token)).await.unwrap();
    assert_eq!(principal.scopes(), ["Models.Read", "Models.Run"]);
    assert_eq!(principal.tenant(), Some(tid));
    assert_eq!(names(&principal), ["data:read", "model:run"]);
    let v2 = preset(
        Provider::Entra,
        &format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        None,
    );
    let token = timed(json!({
        "iss": v2.iss, "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "sub": "BBBB", "ver": "2.0", "tid": tid,
        "azp": "c0ffee", "roles": ["deployer"], "idtyp": "app",
    }));
    let principal = authenticate(&v2.auth, &v2.key.sign(&token)).await.unwrap();
    assert_eq!(names(&principal), ["model:deploy"]);
    let id = timed(json!({
        "iss": v2.iss, "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "sub": "BBBB", "ver": "2.0", "tid": tid,
        "nonce": "abc", "preferred_username": "ann@example.com", "roles": ["deployer"],
    }));
    assert!(
        authenticate(&v2.auth, &v2.key.sign(&id)).await.is_err(),
        "an Entra ID token"
    );
}

#[tokio::test]
async fn okta_scp_array_and_groups() {
    let p = preset(
        Provider::Okta,
        "https://dev-1.okta.com/oauth2/default",
        "api://default",
        None,
    );
    let token = timed(json!({
        "ver": 1, "jti": "AT.x", "iss": p.iss, "aud": "api://default", "sub": "ann@example.com",
        "cid": "0oa1", "uid": "00u1", "scp": ["openid", "models.read"], "groups": ["Everyone", "analyst"],
    }));
    let principal = authenticate(&p.auth, &p.key.sign(&token)).await.unwrap();
    assert_eq!(principal.scopes(), ["openid", "models.read"]);
    assert_eq!(principal.roles(), ["Everyone", "analyst"]);
    assert_eq!(names(&principal), ["data:read", "model:run"]);
    let id = timed(json!({
        "ver": 1, "iss": p.iss, "aud": "api://default", "sub": "00u1", "nonce": "n", "amr": ["pwd"], "idp": "00o1",
        "at_hash": "x", "groups": ["analyst"],
    }));
    assert!(authenticate(&p.auth, &p.key.sign(&id)).await.is_err());
}

#[tokio::test]
async fn cognito_access_tokens_use_client_id_and_token_use() {
    let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf";
    let p = preset(Provider::Cognito, iss, "7abcdefghij1234567890", None);
    let access = timed(json!({
        "sub": "aaaa-bbbb", "cognito:groups": ["analyst"], "iss": iss, "version": 2,
        "client_id": "7abcdefghij1234567890", "origin_jti": "o", "token_use": "access",
        "scope": "aws.cognito.signin.user.admin", "auth_time": now(), "jti": "j", "username": "ann",
    }));
    let principal = authenticate(&p.auth, &p.key.sign(&access)).await.unwrap();
    assert_eq!(principal.roles(), ["analyst"]);
    assert_eq!(names(&principal), ["data:read", "model:run"]);
    // The ID token of the same app client: `aud` is the client id, `token_use` is `id`.
    let id = timed(json!({
        "sub": "aaaa-bbbb", "cognito:groups": ["analyst"], "iss": iss, "aud": "7abcdefghij1234567890",
        "token_use": "id", "auth_time": now(), "email": "ann@example.com", "cognito:username": "ann",
    }));
    assert!(
        authenticate(&p.auth, &p.key.sign(&id)).await.is_err(),
        "a Cognito ID token never deploys"
    );
    let mut other_client = access.clone();
    other_client["client_id"] = "another-client".into();
    assert_eq!(
        authenticate(&p.auth, &p.key.sign(&other_client))
            .await
            .unwrap_err(),
        AuthError::InvalidToken(JwtErrorKind::InvalidAudience)
    );
}

#[tokio::test]
async fn google_service_id_tokens_pass_sign_in_id_tokens_do_not() {
    let p = preset(
        Provider::Google,
        "https://accounts.google.com",
        "https://registry.example.com",
        None,
    );
    let service = timed(json!({
        "aud": "https://registry.example.com", "azp": "1008719970978", "email": "svc@proj.iam.gserviceaccount.com",
        "email_verified": true, "iss": p.iss, "sub": "1008719970978",
    }));
    let principal = authenticate(&p.auth, &p.key.sign(&service)).await.unwrap();
    assert_eq!(principal.subject(), "1008719970978");
    assert!(names(&principal).is_empty(), "no roles from Google by default");
    let mut sign_in = service.clone();
    sign_in["nonce"] = "n".into();
    assert!(authenticate(&p.auth, &p.key.sign(&sign_in)).await.is_err());
    let mut with_hash = service.clone();
    with_hash["at_hash"] = "h".into();
    assert!(authenticate(&p.auth, &p.key.sign(&with_hash)).await.is_err());
}

// ---- separation of duties on the final permission set -----------------------------------------

#[tokio::test]
async fn separation_of_duties_holds_whatever_grants_each_side() {
    let key = SigningKey::es256("k1");
    let iss = "https://sod.test";
    let verifier = JwtVerifier::builder(iss, AUD, [Algorithm::ES256])
        .build()
        .unwrap();
    let keys = key.key_set();
    let mapping = ClaimMapping::default()
        .permissions_from("permissions")
        .unwrap()
        .scope_permissions(true);
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping))
        .build()
        .unwrap();
    let mut c = claims(iss, AUD, "u", &[]);
    c["permissions"] = json!(["payment:initiate", "payment:approve", "model:run"]);
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert_eq!(
        names(&p),
        ["model:run"],
        "a permission claim listing both sides gets neither"
    );
    let mut c = claims(iss, AUD, "u", &["clerk"]);
    c["scope"] = "payment:approve".into();
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert!(
        names(&p).is_empty(),
        "role on one side, scope on the other: neither"
    );
    let mut c = claims(iss, AUD, "u", &["clerk"]);
    c["scope"] = "model:run".into();
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert_eq!(names(&p), ["model:run", "payment:initiate"]);
}
