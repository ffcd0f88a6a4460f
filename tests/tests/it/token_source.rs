//! The outgoing half: `authz_axum::token_source::ClientCredentials` against the real
//! oidc-provider of `oidc.rs` (tokens by Basic and by post authentication, discovery, the cache,
//! one fetch for 20 concurrent callers, refresh inside the margin, the old token through an
//! outage, `invalid_client`), its reqwest helper against the model registry, and its tower layer
//! in front of hyper-util's client talking to a small axum server. Time moves on a
//! `ManualClock`; nothing sleeps on the real clock. A loopback token endpoint of our own covers
//! what the provider cannot be made to do (RFC 6749 §2.3.1 encoding, a missing `expires_in`,
//! broken responses).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_axum::core::clock::{Clock, ManualClock};
use authz_axum::token_source::{
    ClientAuth, ClientCredentials, ClientCredentialsLayer, Secret, TokenSourceError,
};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use model_registry::{Config, start};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::{captured_logs, http, init_tracing, remember_secret, serve};
use crate::oidc::{AUDIENCE, Idp, provider_dir};

/// The claims of a JWT access token (not verified: the model registry does that below).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn jti(token: &str) -> String {
    claims(token)["jti"].as_str().expect("jti").to_string()
}

async fn started_idp() -> Option<Idp> {
    let dir = provider_dir()?;
    init_tracing();
    let mut idp = Idp::new(dir);
    let k1 = idp.keygen("k1");
    idp.start(&[&k1]).await;
    Some(idp)
}

fn secret_of(client: &str) -> Secret {
    let s = Idp::secret(client);
    remember_secret(&s);
    Secret::new(s)
}

async fn token_of(source: &ClientCredentials) -> authz_axum::token_source::AccessToken {
    let t = source.token().await.unwrap();
    remember_secret(t.secret());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_credentials_against_a_real_provider() {
    let Some(mut idp) = started_idp().await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let token_endpoint = format!("{}/token", idp.issuer());

    // Basic authentication (the default), the endpoint found by discovery.
    let source = ClientCredentials::builder("analyst-svc", secret_of("analyst-svc"))
        .clock(Arc::new(clock.clone()))
        .http_client(http())
        .discover(&idp.issuer())
        .await
        .unwrap();
    assert_eq!(source.token_endpoint(), token_endpoint);
    let t1 = token_of(&source).await;
    let c = claims(t1.secret());
    assert_eq!(c["client_id"], "analyst-svc");
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["iss"], idp.issuer());
    assert!(t1.token_type().eq_ignore_ascii_case("bearer"));
    assert_eq!(
        t1.expires_at(),
        clock.unix_seconds() + 600,
        "expires_in 600 on our clock"
    );
    assert_eq!(source.fetch_count(), 1);
    assert!(!format!("{t1:?}").contains(t1.secret()));
    assert!(!format!("{source:?}").contains(&Idp::secret("analyst-svc")));

    // A resource server that verifies it against the provider's keys accepts it (and the
    // reqwest helper puts it on the request).
    let discovery: Value = http()
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.issuer = Some(idp.issuer());
    config.jwks_url = Some(discovery["jwks_uri"].as_str().unwrap().to_string());
    config.audience = AUDIENCE.into();
    let server = start(config).await.unwrap();
    let me = source
        .authorize(http().get(format!("{}/me", server.url())))
        .await
        .unwrap();
    let me: Value = me.send().await.unwrap().json().await.unwrap();
    assert_eq!(me["subject"], "analyst-svc");
    assert_eq!(me["roles"], json!(["analyst"]));
    server.stop().await;
    assert_eq!(source.fetch_count(), 1, "authorize used the cached token");

    // The cache: the same token (same jti) until the margin, min(60 s, 10 % of 600 s) = 60 s.
    clock.advance(Duration::from_secs(530));
    assert_eq!(jti(token_of(&source).await.secret()), jti(t1.secret()));
    assert_eq!(source.fetch_count(), 1);
    clock.advance(Duration::from_secs(15)); // 55 s left: inside the margin
    let t2 = token_of(&source).await;
    assert_ne!(
        jti(t2.secret()),
        jti(t1.secret()),
        "a new token inside the margin"
    );
    assert_eq!(source.fetch_count(), 2);
    assert_eq!(t2.expires_at(), clock.unix_seconds() + 600);

    // client_secret_post, a resource indicator (RFC 8707) and a scope.
    let other = ClientCredentials::builder("admin-svc", secret_of("admin-svc"))
        .token_endpoint(&token_endpoint)
        .auth(ClientAuth::ClientSecretPost)
        .resource("urn:authz:other-api")
        .scope("api")
        .clock(Arc::new(clock.clone()))
        .http_client(http())
        .build()
        .unwrap();
    let t = token_of(&other).await;
    let c = claims(t.secret());
    assert_eq!(c["client_id"], "admin-svc");
    assert_eq!(c["aud"], "urn:authz:other-api");
    assert_eq!(t.scope(), Some("api"));

    // 20 concurrent callers on an empty cache: one request, one token.
    let fresh = ClientCredentials::builder("viewer-svc", secret_of("viewer-svc"))
        .token_endpoint(&token_endpoint)
        .clock(Arc::new(clock.clone()))
        .http_client(http())
        .build()
        .unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = fresh.clone();
        callers.spawn(async move { s.token().await.map(|t| t.secret().to_string()) });
    }
    let tokens: Vec<String> = callers.join_all().await.into_iter().map(Result::unwrap).collect();
    remember_secret(&tokens[0]);
    assert_eq!(
        fresh.fetch_count(),
        1,
        "exactly one request to the token endpoint"
    );
    assert!(
        tokens.iter().all(|t| jti(t) == jti(&tokens[0])),
        "every caller got the same token"
    );
    assert_eq!(claims(&tokens[0])["client_id"], "viewer-svc");

    // A wrong secret: invalid_client, and the secret is nowhere in the error.
    for auth in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
        let wrong = "wrong-secret-5f0c8a2e91d64b7a";
        remember_secret(wrong);
        let bad = ClientCredentials::builder("analyst-svc", wrong)
            .token_endpoint(&token_endpoint)
            .auth(auth)
            .clock(Arc::new(clock.clone()))
            .http_client(http())
            .build()
            .unwrap();
        let e = bad.token().await.unwrap_err();
        assert_eq!(e.oauth_error(), Some("invalid_client"), "{auth:?}: {e}");
        assert!(
            matches!(e, TokenSourceError::Refused { status: 401, .. }),
            "{e:?}"
        );
        assert!(!format!("{e}{e:?}").contains(wrong));
        // Right away again: the same error from the back-off, no second request.
        assert_eq!(bad.token().await.unwrap_err(), e);
        assert_eq!(bad.fetch_count(), 1);
    }

    // The provider goes away. Inside the margin the refresh fails and the old token, still
    // valid, is returned (with a warning); once it has expired, the error.
    idp.stop();
    clock.advance(Duration::from_secs(545));
    let kept = token_of(&source).await;
    assert_eq!(jti(kept.secret()), jti(t2.secret()));
    assert_eq!(source.fetch_count(), 3);
    assert!(captured_logs().contains("token refresh failed; the current token stays in use"));
    assert_eq!(jti(token_of(&source).await.secret()), jti(t2.secret()));
    assert_eq!(source.fetch_count(), 3, "no new request during the back-off");
    clock.advance(Duration::from_secs(60)); // expired
    let e = source.token().await.unwrap_err();
    assert!(matches!(e, TokenSourceError::Http { .. }), "{e:?}");
    assert_eq!(source.fetch_count(), 4);
    assert!(!format!("{e}{e:?}").contains(&Idp::secret("analyst-svc")));
}

// ---- the tower layer ---------------------------------------------------------------------------

/// Says whether it saw a Bearer token, and which (by `jti`).
async fn echo(headers: HeaderMap) -> String {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(t) => format!("bearer {}", jti(t)),
        None => "none".into(),
    }
}

fn echo_app() -> Router {
    let challenge = |value: &'static str| {
        move || async move { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, value)]).into_response() }
    };
    Router::new()
        .route("/echo", get(echo))
        .route(
            "/refuse",
            get(challenge(
                r#"Bearer realm="echo", error="invalid_token", error_description="revoked""#,
            )),
        )
        .route("/refuse-plain", get(challenge(r#"Bearer realm="echo""#)))
}

#[tokio::test]
async fn the_tower_layer_authorizes_outgoing_requests() {
    let Some(idp) = started_idp().await else { return };
    let clock = ManualClock::starting_now();
    let source = ClientCredentials::builder("analyst-svc", secret_of("analyst-svc"))
        .token_endpoint(format!("{}/token", idp.issuer()))
        .clock(Arc::new(clock.clone()))
        .http_client(http())
        .build()
        .unwrap();
    let upstream = serve(echo_app()).await;

    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let svc = ServiceBuilder::new()
        .layer(ClientCredentialsLayer::new(source.clone()))
        .service(client.clone());
    let request = |path: &str| {
        http::Request::get(format!("{upstream}{path}"))
            .header(header::AUTHORIZATION, "Basic c3ZjOnNlY3JldA==")
            .body(String::new())
            .unwrap()
    };
    async fn text(r: http::Response<hyper::body::Incoming>) -> (StatusCode, String) {
        let status = r.status();
        let body = axum::body::to_bytes(axum::body::Body::new(r.into_body()), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    // Without the layer the upstream sees no Bearer token; with it, it does (the Basic header
    // the request came with is replaced).
    let (_, body) = text(client.clone().oneshot(request("/echo")).await.unwrap()).await;
    assert_eq!(body, "none");
    let (status, body) = text(svc.clone().oneshot(request("/echo")).await.unwrap()).await;
    assert_eq!(status, 200);
    let first = body.strip_prefix("bearer ").expect("a bearer token").to_string();
    let (_, body) = text(svc.clone().oneshot(request("/echo")).await.unwrap()).await;
    assert_eq!(body, format!("bearer {first}"), "the cached token");
    assert_eq!(source.fetch_count(), 1);

    // A 401 without error="invalid_token" leaves the cache alone.
    let (status, _) = text(svc.clone().oneshot(request("/refuse-plain")).await.unwrap()).await;
    assert_eq!(status, 401);
    let (_, body) = text(svc.clone().oneshot(request("/echo")).await.unwrap()).await;
    assert_eq!(body, format!("bearer {first}"));

    // 401 error="invalid_token": returned as it is, and the next request carries a new token.
    let (status, _) = text(svc.clone().oneshot(request("/refuse")).await.unwrap()).await;
    assert_eq!(status, 401);
    let (_, body) = text(svc.clone().oneshot(request("/echo")).await.unwrap()).await;
    let second = body.strip_prefix("bearer ").expect("a bearer token");
    assert_ne!(second, first);
    assert_eq!(source.fetch_count(), 2);

    // No token to be had: the request is not sent, the error says why.
    drop(idp);
    source.invalidate();
    let e = svc.clone().oneshot(request("/echo")).await.unwrap_err();
    let e = e
        .downcast_ref::<TokenSourceError>()
        .expect("a token source error");
    assert!(matches!(e, TokenSourceError::Http { .. }), "{e:?}");
}

// ---- a token endpoint of our own on loopback -----------------------------------------------------

const ODD_ID: &str = "svc:1";
const ODD_SECRET: &str = "s3cr3t with space+plus%/é";

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// RFC 6749 §2.3.1 on the server side: base64, split at the first ':', form-decode each half.
async fn odd_token(
    hits: axum::extract::State<Arc<AtomicUsize>>,
    headers: HeaderMap,
) -> axum::response::Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    };
    if form_decode(id) != ODD_ID || form_decode(secret) != ODD_SECRET {
        // A careless server that echoes what it got.
        let echo = json!({"error": "invalid_client", "error_description": format!("bad secret {}", form_decode(secret))});
        return (StatusCode::UNAUTHORIZED, axum::Json(echo)).into_response();
    }
    // No expires_in, no scope, a lower-case token type.
    axum::Json(json!({"access_token": "opaque-token.abc~+/=", "token_type": "bearer"})).into_response()
}

#[tokio::test]
async fn a_loopback_token_endpoint() {
    init_tracing();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/token", post(odd_token))
        .route(
            "/broken",
            post(|| async { (StatusCode::BAD_GATEWAY, "<html>upstream down</html>") }),
        )
        .route(
            "/empty",
            post(|| async { axum::Json(json!({"token_type": "Bearer"})) }),
        )
        .route(
            "/dpop",
            post(|| async {
                axum::Json(json!({"access_token": "t", "token_type": "DPoP", "expires_in": 60}))
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let clock = ManualClock::starting_now();
    let builder = |path: &str, secret: &str| {
        ClientCredentials::builder(ODD_ID, secret)
            .token_endpoint(format!("{base}{path}"))
            .scope("read write")
            .clock(Arc::new(clock.clone()))
            .http_client(http())
    };

    // Id and secret are form-urlencoded before base64; 20 concurrent callers, one request.
    let source = builder("/token", ODD_SECRET).build().unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = source.clone();
        callers.spawn(async move { s.token().await });
    }
    for t in callers.join_all().await {
        let t = t.unwrap();
        assert_eq!(t.secret(), "opaque-token.abc~+/=");
        // No expires_in: DEFAULT_LIFETIME (5 min); no scope in the response: the requested one.
        assert_eq!(t.expires_at(), clock.unix_seconds() + 300);
        assert_eq!(t.scope(), Some("read write"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(source.fetch_count(), 1);
    // The margin of a 300 s token is 30 s.
    clock.advance(Duration::from_secs(269));
    source.token().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(2));
    source.token().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // A server that echoes the secret in error_description: blanked out.
    let wrong = "echoed-secret-9d2f71c3";
    remember_secret(wrong);
    let e = builder("/token", wrong)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(e.oauth_error(), Some("invalid_client"));
    assert!(!format!("{e}{e:?}").contains(wrong), "{e}");
    assert!(e.to_string().contains("bad secret <redacted>"), "{e}");

    // Non-2xx without an RFC 6749 §5.2 body; 2xx without a token; a token type we cannot use.
    let e = builder("/broken", ODD_SECRET)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(
        e,
        TokenSourceError::Status {
            endpoint: format!("{base}/broken"),
            status: 502
        }
    );
    let e = builder("/empty", ODD_SECRET)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, TokenSourceError::InvalidResponse { reason, .. } if reason.contains("access_token"))
    );
    let e = builder("/dpop", ODD_SECRET)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(matches!(&e, TokenSourceError::InvalidResponse { reason, .. } if reason.contains("DPoP")));

    // Plain http off loopback is refused before anything is sent.
    let e = ClientCredentials::builder("svc", "secret")
        .token_endpoint("http://idp.example.com/token")
        .build()
        .unwrap_err();
    assert!(matches!(e, TokenSourceError::Config(_)));
}
