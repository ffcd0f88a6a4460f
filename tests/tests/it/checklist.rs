//! The seed's JWT validation checklist, one test per row and per hardening item, over real HTTP
//! against a router on 127.0.0.1.

use std::sync::Arc;

use authz_axum::core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::{AuthLayer, Authenticator, Issuer, Principal, StaticKeys};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::common::{SigningKey, claims, http, init_tracing, now};

const ISS: &str = "https://issuer.checklist.test";
const AUD: &str = "checklist";

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Extra {
    department: String,
}

async fn whoami(p: Principal) -> String {
    let dept = p
        .claims::<Extra>()
        .map(|e| e.department.clone())
        .unwrap_or_default();
    format!("{}|{}|{}", p.subject(), p.roles().join(","), dept)
}

struct Harness {
    url: String,
    key: SigningKey,
    auth: Arc<Authenticator>,
}

async fn harness(
    configure: impl FnOnce(authz_axum::core::jwt::JwtVerifierBuilder) -> authz_axum::core::jwt::JwtVerifierBuilder,
) -> Harness {
    init_tracing();
    let key = SigningKey::es256("k1");
    let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let verifier = configure(JwtVerifier::builder(
        ISS,
        AUD,
        [Algorithm::ES256, Algorithm::ES384, Algorithm::HS256],
    ))
    .build()
    .unwrap();
    let jwk = VerificationKey::from_jwk(&key.jwk, Default::default())
        .unwrap()
        .unwrap();
    let keys = KeySet::new(vec![jwk]).unwrap();
    let issuer = Issuer::new(verifier, StaticKeys::new(keys))
        .with_mapping(ClaimMapping::default().custom_claims::<Extra>());
    let auth = Arc::new(Authenticator::builder(policy).issuer(issuer).build().unwrap());
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(auth.clone()));
    let url = format!("{}/whoami", crate::common::serve(app).await);
    Harness { url, key, auth }
}

fn good_claims() -> Value {
    let mut c = claims(ISS, AUD, "alice", &["viewer"]);
    c["department"] = "ml".into();
    c
}

impl Harness {
    async fn get(&self, token: &str) -> reqwest::Response {
        http().get(&self.url).bearer_auth(token).send().await.unwrap()
    }

    async fn status(&self, token: &str) -> u16 {
        self.get(token).await.status().as_u16()
    }

    fn with(&self, f: impl FnOnce(&mut Value)) -> String {
        let mut c = good_claims();
        f(&mut c);
        self.key.sign(&c)
    }

    fn header(&self, h: Value) -> String {
        self.key.sign_with_header(&h, &good_claims())
    }
}

async fn assert_invalid(h: &Harness, token: &str, why: &str) {
    let r = h.get(token).await;
    assert_eq!(r.status(), 401, "{why}");
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_token""#,
        "{why}"
    );
}

#[tokio::test]
async fn a_valid_token_passes_with_typed_custom_claims() {
    let h = harness(|b| b).await;
    let r = h.get(&h.key.sign(&good_claims())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "alice|viewer|ml");
}

#[tokio::test]
async fn row_signature_must_be_valid() {
    let h = harness(|b| b).await;
    let t = h.key.sign(&good_claims());
    let (rest, sig) = t.rsplit_once('.').unwrap();
    let (head, _) = rest.split_once('.').unwrap();
    let evil = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        claims(ISS, AUD, "mallory", &["viewer"]).to_string(),
    );
    assert_invalid(
        &h,
        &format!("{head}.{evil}.{sig}"),
        "payload swapped under the old signature",
    )
    .await;
    assert_invalid(
        &h,
        &SigningKey::es256("k1").sign(&good_claims()),
        "signed by another key with our kid",
    )
    .await;
    assert_invalid(&h, &format!("{rest}."), "signature stripped").await;
}

#[tokio::test]
async fn row_exp_is_required_and_enforced() {
    let h = harness(|b| b).await;
    assert_invalid(
        &h,
        &h.with(|c| c["exp"] = (now() - 31).into()),
        "expired beyond the 30 s leeway",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        "no exp",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| c["exp"] = "tomorrow".into()),
        "exp of the wrong type",
    )
    .await;
    assert_eq!(
        h.status(&h.with(|c| c["exp"] = (now() - 5).into())).await,
        200,
        "inside the leeway"
    );
}

#[tokio::test]
async fn row_iss_must_match() {
    let h = harness(|b| b).await;
    assert_invalid(
        &h,
        &h.with(|c| c["iss"] = "https://evil.test".into()),
        "other issuer",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| {
            c.as_object_mut().unwrap().remove("iss");
        }),
        "no iss",
    )
    .await;
    assert_invalid(&h, &h.with(|c| c["iss"] = json!([ISS])), "iss of the wrong type").await;
}

#[tokio::test]
async fn row_aud_must_name_this_service() {
    let h = harness(|b| b).await;
    assert_invalid(
        &h,
        &h.with(|c| c["aud"] = "other-service".into()),
        "other audience",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        "no aud",
    )
    .await;
    assert_invalid(&h, &h.with(|c| c["aud"] = json!(["a", "b"])), "array without us").await;
    assert_eq!(
        h.status(&h.with(|c| c["aud"] = json!(["a", AUD]))).await,
        200,
        "array with us"
    );
}

#[tokio::test]
async fn row_algorithm_must_be_allowed_and_match_the_key() {
    let h = harness(|b| b).await;
    let c = good_claims();
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                json!({"alg": alg, "kid": "k1"}).to_string()
            ),
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, c.to_string())
        )
    };
    for alg in ["none", "None", "NONE", "nOnE"] {
        assert_invalid(&h, &unsigned(alg), alg).await;
    }
    assert_invalid(
        &h,
        &h.header(json!({"alg": "es256", "kid": "k1"})),
        "lower-case alg",
    )
    .await;
    assert_invalid(
        &h,
        &h.header(json!({"alg": "ES384", "kid": "k1"})),
        "allowed alg, but not the key's",
    )
    .await;
    assert_invalid(
        &h,
        &h.header(json!({"alg": "PS256", "kid": "k1"})),
        "alg outside the allowlist",
    )
    .await;
    assert_invalid(
        &h,
        &h.header(json!({"alg": ["ES256"], "kid": "k1"})),
        "alg as an array",
    )
    .await;
}

#[tokio::test]
async fn nbf_iat_typ_and_max_age() {
    let h = harness(|b| b).await;
    assert_invalid(&h, &h.with(|c| c["nbf"] = (now() + 120).into()), "not yet valid").await;
    assert_eq!(h.status(&h.with(|c| c["nbf"] = (now() - 10).into())).await, 200);
    assert_invalid(
        &h,
        &h.with(|c| c["iat"] = (now() + 3600).into()),
        "issued in the future",
    )
    .await;
    let strict = harness(|b| {
        b.require_type("at+jwt")
            .max_age(std::time::Duration::from_secs(60))
    })
    .await;
    let typed = |typ: &str, iat: u64| {
        strict
            .key
            .sign_with_header(&json!({"alg": "ES256", "kid": "k1", "typ": typ}), &{
                let mut c = good_claims();
                c["iat"] = iat.into();
                c
            })
    };
    assert_eq!(strict.status(&typed("at+jwt", now())).await, 200);
    assert_eq!(strict.status(&typed("application/at+jwt", now())).await, 200);
    assert_invalid(&strict, &typed("JWT", now()), "wrong typ").await;
    assert_invalid(&strict, &typed("at+jwt", now() - 600), "older than max age").await;
}

#[tokio::test]
async fn header_never_chooses_the_key_and_crit_is_refused() {
    let h = harness(|b| b).await;
    let attacker = SigningKey::es256("k1");
    let mut evil = attacker.jwk.clone();
    evil.as_object_mut().unwrap().remove("kid");
    for (name, extra) in [
        ("jwk", json!({"jwk": evil})),
        ("jku", json!({"jku": "http://127.0.0.1:1/jwks.json"})),
        ("x5u", json!({"x5u": "http://127.0.0.1:1/cert.pem"})),
        ("x5c", json!({"x5c": ["MIIB"]})),
    ] {
        let mut header = json!({"alg": "ES256", "kid": "k1"});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_invalid(&h, &attacker.sign_with_header(&header, &good_claims()), name).await;
        // The same header on a token our key signed changes nothing: it is simply ignored.
        assert_eq!(
            h.status(&h.key.sign_with_header(&header, &good_claims())).await,
            200,
            "{name} ignored"
        );
    }
    assert_invalid(
        &h,
        &h.header(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1})),
        "crit",
    )
    .await;
    assert_invalid(
        &h,
        &h.header(json!({"alg": "ES256", "kid": "nope"})),
        "unknown kid",
    )
    .await;
}

#[tokio::test]
async fn size_limit_comes_first() {
    let h = harness(|b| b).await;
    let big = h.with(|c| c["padding"] = "x".repeat(9 * 1024).into());
    assert_invalid(&h, &big, "over 8 KiB").await;
    let junk = "a".repeat(9 * 1024);
    assert_invalid(&h, &junk, "over 8 KiB and not even a JWT").await;
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_401_never_a_grant() {
    let h = harness(|b| b).await;
    assert_invalid(&h, &h.with(|c| c["roles"] = 7.into()), "roles as a number").await;
    assert_invalid(
        &h,
        &h.with(|c| c["roles"] = json!({"admin": true})),
        "roles as an object",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| c["roles"] = json!(["viewer", 1])),
        "roles with a number",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| c["scope"] = json!(["a"])),
        "scope must be a string",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| c["department"] = 3.into()),
        "custom claim of the wrong type",
    )
    .await;
    assert_invalid(
        &h,
        &h.with(|c| {
            c.as_object_mut().unwrap().remove("sub");
        }),
        "no subject",
    )
    .await;
}

#[tokio::test]
async fn the_authorization_header_and_nothing_else() {
    let h = harness(|b| b).await;
    let t = h.key.sign(&good_claims());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = http()
            .get(&h.url)
            .header("authorization", format!("{scheme} {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let two = http()
        .get(&h.url)
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        two.status(),
        400,
        "RFC 6750 §3.1: a repeated credential is invalid_request"
    );
    assert_eq!(
        two.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_request""#
    );
    let basic = http()
        .get(&h.url)
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(
        basic.headers()["www-authenticate"],
        r#"Bearer realm="api""#,
        "RFC 6750 §3: another scheme gets the challenge without an error code"
    );
    for malformed in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b"] {
        let r = http()
            .get(&h.url)
            .header("authorization", malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "{malformed:?} is a malformed request (RFC 6750 §3.1)"
        );
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="api", error="invalid_request""#
        );
    }
    let query = http()
        .get(format!("{}?access_token={t}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 401);
    assert_eq!(
        query.headers()["www-authenticate"],
        r#"Bearer realm="api""#,
        "no credentials seen at all"
    );
    let body: Value = query.json().await.unwrap();
    assert_eq!(body["status"], 401);
}

#[tokio::test]
async fn verified_tokens_are_cached_and_counted() {
    let h = harness(|b| b).await;
    let t = h.key.sign(&good_claims());
    let before = h.auth.cache_stats();
    for _ in 0..3 {
        assert_eq!(h.status(&t).await, 200);
    }
    let after = h.auth.cache_stats();
    assert_eq!(after.misses - before.misses, 1);
    assert_eq!(after.hits - before.hits, 2);
}

#[tokio::test]
async fn claim_mapping_reads_nested_roles_scopes_and_permissions() {
    use authz_axum::core::jwt::ClaimMapping;
    init_tracing();
    let key = SigningKey::es256("k1");
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "data:write", "model:run"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog.clone())
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let verifier = JwtVerifier::builder(ISS, AUD, [Algorithm::ES256])
        .build()
        .unwrap();
    let keys = key.key_set();
    let mapping = ClaimMapping::default()
        .roles_from("/realm_access/roles")
        .unwrap()
        .permissions_from("perms")
        .unwrap()
        .tenant_from("tid")
        .unwrap();
    let auth = Authenticator::builder(policy)
        .issuer(Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping))
        .build()
        .unwrap();
    let mut c = claims(ISS, AUD, "svc", &[]);
    c["realm_access"] = json!({"roles": ["viewer", "offline_access"]});
    c["perms"] = json!(["model:run", "not:declared"]);
    c["scp"] = json!(["read", "write"]);
    c["tid"] = "tenant-1".into();
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert_eq!(p.roles(), ["viewer", "offline_access"]);
    assert_eq!(p.scopes(), ["read", "write"]);
    assert_eq!(p.tenant(), Some("tenant-1"));
    assert!(p.can(catalog.id("data:read").unwrap()) && p.can(catalog.id("model:run").unwrap()));
    assert!(!p.can(catalog.id("data:write").unwrap()));
    c["scope"] = "a b".into();
    c.as_object_mut().unwrap().remove("scp");
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert_eq!(p.scopes(), ["a", "b"]);
    c["realm_access"] = json!({"roles": "viewer admin"});
    let p = auth.authenticate(&key.sign(&c)).await.unwrap();
    assert_eq!(
        p.roles(),
        ["viewer admin"],
        "a string is one role, never split into grants"
    );
    assert!(!p.can(catalog.id("data:read").unwrap()));
}

#[tokio::test]
async fn one_hook_shapes_every_rejection_body_but_not_the_challenge() {
    use authz_axum::RejectionConfig;
    init_tracing();
    let h = harness(|b| b).await;
    let config = RejectionConfig::new("shaped").unwrap().shape_with(|info| {
        axum::Json(json!({"code": info.status.as_u16(), "error": info.error})).into_response()
    });
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(h.auth.clone()).with_rejections(config));
    let url = format!("{}/whoami", crate::common::serve(app).await);
    let r = http().get(&url).bearer_auth("not.a.token").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="shaped", error="invalid_token""#
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": 401, "error": "invalid_token"})
    );
    assert!(RejectionConfig::new("bad\"realm").is_err());
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks_and_checks_the_issuer() {
    use authz_axum::jwks::{JwksOptions, RemoteJwks};
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let all = Algorithm::ALL.into_iter().collect();
    let jwks = RemoteJwks::discover(&server.issuer, all, JwksOptions::default())
        .await
        .unwrap();
    assert_eq!(jwks.url(), format!("{}/.well-known/jwks.json", server.issuer));
    jwks.refresh_now().await.unwrap();
    assert_eq!(jwks.current().unwrap().len(), 1);
    // A discovery document that names another issuer is refused (OIDC Discovery §4.3).
    let other = format!("http://localhost:{}", server.addr.port());
    let err = RemoteJwks::discover(&other, all, JwksOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names issuer"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn required_custom_claims_are_enforced_without_dropping_other_checks() {
    let h = harness(|b| b.require_claim("tenant")).await;
    assert_invalid(&h, &h.key.sign(&good_claims()), "no tenant").await;
    assert_invalid(&h, &h.with(|c| c["tenant"] = Value::Null), "null tenant").await;
    assert_eq!(h.status(&h.with(|c| c["tenant"] = "t1".into())).await, 200);
    // Customising one check never drops another: a wrong audience still fails.
    assert_invalid(
        &h,
        &h.with(|c| {
            c["tenant"] = "t1".into();
            c["aud"] = "other".into();
        }),
        "tenant present, audience wrong",
    )
    .await;
}
