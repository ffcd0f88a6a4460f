//! Fault tests with a JWKS server on 127.0.0.1: slow, down, flapping, never up, rotating keys,
//! and 100 concurrent requests with an unknown `kid` sharing one fetch.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::jwt::{Algorithm, JwtAuthenticator, JwtVerifier};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::jwks::{JwksOptions, RemoteJwks};
use authz_axum::{AuthLayer, Authenticator, KeySource, Principal};
use axum::Router;
use axum::routing::get;

use crate::common::{JwksServer, Mode, SigningKey, claims, http, init_tracing};

const ISS: &str = "https://idp.jwks.test";
const AUD: &str = "jwks-tests";

struct Fixture {
    url: String,
    jwks: RemoteJwks,
}

async fn whoami(p: Principal) -> String {
    p.subject().to_string()
}

async fn fixture(idp: &JwksServer, cooldown: Duration, start: bool) -> Fixture {
    init_tracing();
    let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let options = JwksOptions {
        unknown_kid_cooldown: cooldown,
        min_ttl: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ..JwksOptions::default()
    };
    let jwks = RemoteJwks::new(&idp.url, [Algorithm::ES256].into_iter().collect(), options).unwrap();
    if start {
        jwks.start().await.expect("first fetch");
    }
    let verifier = JwtVerifier::builder(ISS, AUD, [Algorithm::ES256])
        .build()
        .unwrap();
    let auth = Authenticator::new(
        JwtAuthenticator::new(verifier, policy),
        KeySource::Remote(jwks.clone()),
    );
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(Arc::new(auth)));
    let url = format!("{}/whoami", crate::common::serve(app).await);
    Fixture { url, jwks }
}

async fn status(url: &str, token: &str) -> u16 {
    http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn down_endpoint_keeps_cached_keys_and_answers_503_only_without_a_usable_key() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_secs(60), true).await;
    let good = k1.sign(&claims(ISS, AUD, "u1", &["viewer"]));
    assert_eq!(status(&f.url, &good).await, 200);
    idp.set_mode(Mode::Down);
    let fresh = k1.sign(&claims(ISS, AUD, "u2", &["viewer"]));
    assert_eq!(
        status(&f.url, &fresh).await,
        200,
        "cached keys keep working while the endpoint is down"
    );
    let unknown = SigningKey::es256("k2").sign(&claims(ISS, AUD, "u3", &["viewer"]));
    let r = http().get(&f.url).bearer_auth(&unknown).send().await.unwrap();
    assert_eq!(
        r.status(),
        503,
        "unknown kid and the refetch failed: no usable key"
    );
    assert_eq!(r.headers()["retry-after"], "5");
    let again = SigningKey::es256("k3").sign(&claims(ISS, AUD, "u4", &["viewer"]));
    assert_eq!(
        status(&f.url, &again).await,
        401,
        "within the cool-down no refetch: just an unknown kid"
    );
}

#[tokio::test]
async fn never_reachable_endpoint_is_503_not_401_not_500() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    idp.set_mode(Mode::Down);
    let f = fixture(&idp, Duration::from_secs(60), false).await;
    assert!(f.jwks.start().await.is_err());
    let t = k1.sign(&claims(ISS, AUD, "u1", &["viewer"]));
    assert_eq!(status(&f.url, &t).await, 503);
    idp.set_mode(Mode::Up);
    assert_eq!(
        status(&f.url, &t).await,
        200,
        "recovers as soon as the endpoint answers"
    );
}

#[tokio::test]
async fn a_slow_endpoint_never_holds_up_requests_with_known_keys() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_millis(10), true).await;
    idp.set_mode(Mode::Slow(Duration::from_secs(6)));
    // An unknown kid starts a slow refetch that holds the fetch lock for six seconds…
    let unknown = SigningKey::es256("kx").sign(&claims(ISS, AUD, "ux", &["viewer"]));
    let url = f.url.clone();
    let slow = tokio::spawn(async move { status(&url, &unknown).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …while requests with a cached key go straight through (a 2 s client timeout would fire
    // if they queued behind the fetch).
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for i in 0..5 {
        let t = k1.sign(&claims(ISS, AUD, &format!("fast{i}"), &["viewer"]));
        let r = client
            .get(&f.url)
            .bearer_auth(t)
            .send()
            .await
            .expect("not held up by the slow fetch");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        slow.await.unwrap(),
        503,
        "the fetch timed out (2 s): no usable key for that kid"
    );
}

#[tokio::test]
async fn flapping_endpoint_never_breaks_known_keys() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_millis(1), true).await;
    for i in 0..20 {
        idp.set_mode(if i % 2 == 0 { Mode::Down } else { Mode::Up });
        let _ = f.jwks.refresh_now().await;
        let t = k1.sign(&claims(ISS, AUD, &format!("u{i}"), &["viewer"]));
        assert_eq!(status(&f.url, &t).await, 200, "round {i}");
    }
}

#[tokio::test]
async fn rotation_adds_new_keys_and_drops_removed_ones() {
    let old = SigningKey::es256("old");
    let idp = JwksServer::start(vec![old.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_millis(1), true).await;
    let old_token = old.sign(&claims(ISS, AUD, "u-old", &["viewer"]));
    assert_eq!(status(&f.url, &old_token).await, 200);
    let new = SigningKey::es256("new");
    idp.set_keys(vec![new.jwk.clone()]);
    let new_token = new.sign(&claims(ISS, AUD, "u-new", &["viewer"]));
    assert_eq!(
        status(&f.url, &new_token).await,
        200,
        "new kid fetched on first sight"
    );
    assert_eq!(
        status(&f.url, &old_token).await,
        401,
        "a removed key no longer verifies, even a cached token"
    );
}

#[tokio::test]
async fn unknown_kid_storm_causes_one_fetch() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_secs(60), true).await;
    let before = idp.hits();
    idp.set_mode(Mode::Slow(Duration::from_millis(300)));
    let attacker = SigningKey::es256("nope");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let t = attacker.sign(&claims(ISS, AUD, &format!("a{i}"), &["viewer"]));
        let url = f.url.clone();
        tasks.push(tokio::spawn(async move { status(&url, &t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(
        idp.hits() - before,
        1,
        "100 concurrent unknown-kid requests share one fetch"
    );
}

#[tokio::test]
async fn cache_control_max_age_drives_background_refresh() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    idp.set_max_age(1);
    let f = fixture(&idp, Duration::from_secs(60), true).await;
    let k2 = SigningKey::es256("k2");
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    // No request triggers it: the background task refreshes before max-age runs out.
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if f.jwks.current().unwrap().contains_kid("k2") {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "max-age=1 should have refreshed the keys within five seconds"
    );
}
