//! HTTP throughput of a hello-world axum route on 127.0.0.1, side by side in one run: no auth,
//! a middleware calling bare `jsonwebtoken::decode`, authz with a JWT (each algorithm, cache on
//! and off) and authz with an API key. The load generator is `wrk` (1 thread, 16 connections,
//! fixed duration), a separate process. Run: `bench-peers/run-http.sh`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use authz_axum::core::apikey::ApiKeyFormat;
use authz_axum::core::jwt::{JwtVerifier, KeySet};
use authz_axum::core::keystore::MemoryKeyStore;
use authz_axum::core::{Policy, RoleSpec};
use authz_axum::{ApiKeys, AuthLayer, Authenticator, Issuer, StaticKeys};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

const ISS: &str = "https://bench.test";
const AUD: &str = "bench";

use authz_tests::signed_tokens::{Signed, jwt_alg, signed_tokens};

async fn hello() -> &'static str {
    "hello"
}

authz_axum::catalog! {
    /// The benchmark's one permission.
    pub struct Catalog { permissions: ["data:read"] }
}

/// What authz protects in a real service: a handler with a guard (authentication, then the
/// permission check), returning the same static body as the unauthenticated route.
#[authz_axum::require_permission("data:read")]
async fn guarded() -> &'static str {
    "hello"
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Result_ {
    name: String,
    rps: f64,
    p50: String,
    p99: String,
}

fn wrk(name: &str, addr: SocketAddr, token: Option<&str>, seconds: u32) -> Result_ {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", &format!("-d{seconds}s"), "--latency"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    cmd.arg(format!("http://{addr}/"));
    let out = cmd
        .output()
        .expect("wrk is installed (bench-peers/run-http.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let pct = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    assert!(
        !text.contains("Non-2xx"),
        "{name}: wrk saw non-2xx answers:\n{text}"
    );
    Result_ {
        name: name.to_string(),
        rps,
        p50: pct("50%"),
        p99: pct("99%"),
    }
}

fn main() {
    let seconds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let catalog = Arc::new(<Catalog as authz_axum::core::Catalog>::catalog().clone());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    );
    let mut results = Vec::new();
    let base = rt.block_on(serve(Router::new().route("/", get(hello))));
    // Warm up (connections, CPU frequency), then measure the baseline first and last.
    let _ = wrk("warm-up", base, None, 2);
    results.push(wrk("no auth (first)", base, None, seconds));
    let claims =
        serde_json::json!({"sub": "u", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "roles": ["viewer"]});
    for Signed {
        alg,
        token,
        ours,
        theirs,
    } in signed_tokens(&claims)
    {
        // A middleware calling bare jsonwebtoken, as a hand-written service would.
        let theirs = Arc::new(theirs);
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let validation = Arc::new(validation);
        let bare = Router::new().route("/", get(hello)).layer(middleware::from_fn(
            move |req: Request, next: Next| {
                let (key, validation) = (theirs.clone(), validation.clone());
                async move {
                    let token = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .ok_or(StatusCode::UNAUTHORIZED)?;
                    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
                        .map_err(|_| StatusCode::UNAUTHORIZED)?;
                    Ok::<Response, StatusCode>(next.run(req).await)
                }
            },
        ));
        let addr = rt.block_on(serve(bare));
        results.push(wrk(
            &format!("bare jsonwebtoken {alg}"),
            addr,
            Some(&token),
            seconds,
        ));
        let keys = StaticKeys::new(KeySet::new(vec![ours]).unwrap());
        for cache in [true, false] {
            let verifier = JwtVerifier::builder(ISS, AUD, [alg]).build().unwrap();
            let auth = Arc::new(
                Authenticator::builder(policy.clone())
                    .issuer(Issuer::new(verifier, keys.clone()))
                    .cache_entries(if cache { 10_000 } else { 0 })
                    .build()
                    .unwrap(),
            );
            let app = Router::new().route("/", get(guarded)).layer(AuthLayer::new(auth));
            let addr = rt.block_on(serve(app));
            let label = format!("authz {alg} cache {}", if cache { "on" } else { "off" });
            results.push(wrk(&label, addr, Some(&token), seconds));
        }
    }
    let (addr, key) = rt.block_on(async {
        let keys = ApiKeys::new(
            ApiKeyFormat::default(),
            Arc::new(MemoryKeyStore::new()),
            policy.clone(),
        );
        let issued = keys
            .create("bench", vec!["viewer".into()], None, None)
            .await
            .unwrap();
        let auth = Authenticator::builder(policy.clone())
            .api_keys(keys)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/", get(guarded))
            .layer(AuthLayer::new(Arc::new(auth)));
        (serve(app).await, issued.key.expose_raw().to_string())
    });
    results.push(wrk("authz API key (memory store)", addr, Some(&key), seconds));

    results.push(wrk("no auth (last)", base, None, seconds));
    // The baseline is the mean of the first and last no-auth runs.
    let base_rps = (results[0].rps + results[results.len() - 1].rps) / 2.0;
    println!("| configuration | requests/s | vs no auth | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {:.0} | {:.0}% | {} | {} |",
            r.name,
            r.rps,
            100.0 * r.rps / base_rps,
            r.p50,
            r.p99
        );
    }
}
