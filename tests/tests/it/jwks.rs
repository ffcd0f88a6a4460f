//! Fault tests with a JWKS server on 127.0.0.1: slow, down, flapping, never up, rotating keys,
//! and 100 concurrent requests with an unknown `kid` sharing one fetch. Time is a
//! `ManualClock` the tests move: nothing waits for real time to pass.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::clock::{Clock, ManualClock};
use authz_axum::core::jwt::{Algorithm, JwtVerifier};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::jwks::{JwksOptions, RemoteJwks};
use authz_axum::{AuthLayer, Authenticator, Issuer, Principal};
use axum::Router;
use axum::routing::get;

use crate::common::{JwksServer, Mode, SigningKey, claims, http, init_tracing};

const ISS: &str = "https://idp.jwks.test";
const AUD: &str = "jwks-tests";

struct Fixture {
    url: String,
    jwks: RemoteJwks,
    clock: ManualClock,
    auth: Arc<Authenticator>,
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
    let clock = ManualClock::starting_now();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let options = JwksOptions {
        unknown_kid_cooldown: cooldown,
        min_ttl: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        clock: shared.clone(),
        ..JwksOptions::default()
    };
    let jwks = RemoteJwks::new(&idp.url, [Algorithm::ES256].into_iter().collect(), options).unwrap();
    if start {
        jwks.start().await.expect("first fetch");
    }
    let verifier = JwtVerifier::builder(ISS, AUD, [Algorithm::ES256])
        .build()
        .unwrap();
    let auth = Arc::new(
        Authenticator::builder(policy)
            .issuer(Issuer::new(verifier, jwks.clone()))
            .clock(shared)
            .build()
            .unwrap(),
    );
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(auth.clone()));
    let url = format!("{}/whoami", crate::common::serve(app).await);
    Fixture {
        url,
        jwks,
        clock,
        auth,
    }
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
    let fetches = f.jwks.fetch_count();
    for _ in 0..50 {
        assert_eq!(status(&f.url, &t).await, 503);
    }
    assert_eq!(
        f.jwks.fetch_count(),
        fetches,
        "no fetch storm while no keys are loaded: retries back off"
    );
    idp.set_mode(Mode::Up);
    assert_eq!(status(&f.url, &t).await, 503, "still within the 1 s back-off");
    f.clock.advance(Duration::from_millis(1100));
    assert_eq!(
        status(&f.url, &t).await,
        200,
        "recovers on the first request after the back-off"
    );
    assert_eq!(f.jwks.fetch_count(), fetches + 1);
}

#[tokio::test]
async fn back_off_grows_while_the_endpoint_stays_down_and_resets_on_success() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    idp.set_mode(Mode::Down);
    let f = fixture(&idp, Duration::from_secs(5), false).await;
    assert!(f.jwks.start().await.is_err());
    let t = k1.sign(&claims(ISS, AUD, "u1", &["viewer"]));
    // Back-off 1 s, 2 s, 4 s: one fetch per step however many requests arrive.
    let before = f.jwks.fetch_count();
    for (n, step) in [1100, 2100, 4100].into_iter().enumerate() {
        f.clock.advance(Duration::from_millis(step));
        for _ in 0..5 {
            assert_eq!(status(&f.url, &t).await, 503);
        }
        let expected = before + n as u64 + 1;
        assert_eq!(f.jwks.fetch_count(), expected, "one fetch after a {step} ms step");
    }
    idp.set_mode(Mode::Up);
    f.clock.advance(Duration::from_secs(9));
    assert_eq!(status(&f.url, &t).await, 200);
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
    idp.set_max_age(10);
    let f = fixture(&idp, Duration::from_secs(60), true).await;
    let k2 = SigningKey::es256("k2");
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    let t = k1.sign(&claims(ISS, AUD, "u1", &["viewer"]));
    let fetches = f.jwks.fetch_count();
    assert_eq!(status(&f.url, &t).await, 200);
    assert_eq!(f.jwks.fetch_count(), fetches, "fresh keys: no fetch");
    // Past 80% of max-age=10: the next request starts one background refresh and is served
    // with the current keys meanwhile.
    f.clock.advance(Duration::from_secs(9));
    let t = k1.sign(&claims(ISS, AUD, "u2", &["viewer"]));
    assert_eq!(status(&f.url, &t).await, 200);
    let refreshed = tokio::time::timeout(Duration::from_secs(10), async {
        while !f.jwks.current().unwrap().contains_kid("k2") {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refreshed.is_ok(), "the background refresh installed k2");
    assert_eq!(f.jwks.fetch_count(), fetches + 1);
}

#[tokio::test]
async fn same_kid_with_new_material_invalidates_cached_tokens() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    let f = fixture(&idp, Duration::from_millis(1), true).await;
    let t = k1.sign(&claims(ISS, AUD, "u1", &["viewer"]));
    assert_eq!(status(&f.url, &t).await, 200);
    assert_eq!(status(&f.url, &t).await, 200);
    assert_eq!(f.auth.cache_stats().hits, 1, "the second request was a cache hit");
    // The provider replaces the key behind "k1" (same kid, new material).
    let replaced = SigningKey::es256("k1");
    idp.set_keys(vec![replaced.jwk.clone()]);
    f.jwks.refresh_now().await.unwrap();
    assert_eq!(
        status(&f.url, &t).await,
        401,
        "a token cached under the old material is verified again, and fails"
    );
    let new = replaced.sign(&claims(ISS, AUD, "u2", &["viewer"]));
    assert_eq!(status(&f.url, &new).await, 200);
}

#[tokio::test]
async fn a_flood_of_random_kids_cannot_keep_a_new_key_out_for_long() {
    let k1 = SigningKey::es256("k1");
    let idp = JwksServer::start(vec![k1.jwk.clone()]).await;
    // The default cool-down (5 s).
    let f = fixture(
        &idp,
        authz_axum::jwks::JwksOptions::default().unknown_kid_cooldown,
        true,
    )
    .await;
    for i in 0..20 {
        let junk = SigningKey::es256(&format!("random-{i}")).sign(&claims(ISS, AUD, "x", &["viewer"]));
        assert_eq!(status(&f.url, &junk).await, 401);
    }
    // The provider rotates in a new key right after the flood used the cool-down.
    let k2 = SigningKey::es256("k2");
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    let t = k2.sign(&claims(ISS, AUD, "u2", &["viewer"]));
    assert_eq!(status(&f.url, &t).await, 401, "within the cool-down");
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(status(&f.url, &t).await, 200, "at most one cool-down (5 s) later");
    // That fetch found new keys: the budget is reset, so another new key needs no wait.
    let k3 = SigningKey::es256("k3");
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone(), k3.jwk.clone()]);
    let t3 = k3.sign(&claims(ISS, AUD, "u3", &["viewer"]));
    assert_eq!(status(&f.url, &t3).await, 200);
}
