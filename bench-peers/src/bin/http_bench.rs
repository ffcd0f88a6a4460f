//! HTTP throughput of one hello-world route on 127.0.0.1, every configuration served by this
//! process at once (one Tokio runtime, 2 workers) and loaded in turn by `wrk` (a separate
//! process: 1 thread, 16 connections, fixed duration). Run: `bench-peers/run-http.sh`.
//!
//! `http_bench [seconds] [runs]` (default 10 and 5). Method:
//! - every request carries an `Authorization: Bearer …` header, the no-auth baseline's included:
//!   it sends the HS256 token the HS256 configurations send (the other algorithms send their own
//!   token, the API key configurations their key);
//! - before measuring, each configuration is checked (valid credential → 200, no header → 401,
//!   a credential without the role → 403) and warmed up (`HTTP_BENCH_WARMUP` seconds, default 2);
//! - then `runs` rounds; each round runs every configuration once (round-robin), and each round
//!   starts one configuration later than the previous one (the cyclic order stays), so that no
//!   configuration always sits at the same place in a round (first after a pause, last);
//! - the report gives, per configuration, the median requests/s with min–max, the median as a
//!   percentage of the no-auth median (and the range of the same ratio taken round by round) and
//!   the medians of wrk's p50 and p99 latencies, and the **server CPU time per request** (this
//!   process's user + system time over the run, from `/proc/self/stat`, divided by the requests
//!   wrk completed; only one configuration is loaded at a time) with its difference from the
//!   no-auth row, as a markdown table. Throughput on two shared cores swings ±10% from round to
//!   round; CPU per request is what authentication costs the server, and moves much less.
//!
//! `HTTP_BENCH_PIN=1` runs the servers on CPU 1 with one Tokio worker and wrk on CPU 0 (`taskset`),
//! so that a server is CPU-bound on its own core rather than sharing both cores with wrk (the
//! default, 2 workers and nothing pinned, is the method of the numbers in BENCHMARKS.md).
//!
//! `HTTP_BENCH_ONLY=a,b` keeps only the configurations whose name contains one of the given
//! substrings (the no-auth baseline is always kept).
//!
//! Only 127.0.0.1 is ever bound or loaded; every wrk run has a fixed duration; the SQLite file
//! lives in a temporary folder removed at the end.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::apikey::ApiKeyFormat;
use authz_axum::core::auth::KeyCacheConfig;
use authz_axum::core::clock;
use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet};
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::{Policy, RoleSpec};
use authz_axum::sql::revocations::FeedConfig;
use authz_axum::{ApiKeys, AuthLayer, Authenticator, Issuer, StaticKeys};
use authz_bench_peers::{
    Sample, http_get, latency, median, min_max, pinned, process_cpu_seconds, round_order, wrk_command,
    wrk_sample,
};
use authz_tests::signed_tokens::{HS256_SECRET, Signed, jwt_alg, signed_tokens};
use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

const ISS: &str = "https://bench.test";
const AUD: &str = "bench";
/// The role the valid credentials carry; it grants `data:read` in authz's policy.
const ROLE: &str = "viewer";

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

/// What the peers read from the token besides the registered claims (which `jsonwebtoken`
/// validates from the raw payload, whatever the target type).
#[derive(Clone, Deserialize)]
struct PeerClaims {
    #[serde(default)]
    roles: Vec<String>,
}

impl PeerClaims {
    fn has_role(&self) -> bool {
        self.roles.iter().any(|r| r == ROLE)
    }
}

/// One server under test.
struct Config {
    name: String,
    /// What it verifies, for the report.
    checks: &'static str,
    addr: SocketAddr,
    /// The valid credential (sent by wrk).
    credential: String,
    /// A credential that authenticates but lacks the role (expected: 403), where one exists.
    without_role: Option<String>,
    /// Whether a request without the header must be refused (not for the baseline).
    protected: bool,
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// jwt-authorizer is built on axum 0.7: its router is served by axum 0.7's own `serve`.
async fn serve07(app: axum07::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum07::serve(listener, app).await.unwrap() });
    addr
}

fn status(addr: SocketAddr, credential: Option<&str>) -> u16 {
    http_get(addr, "", credential).0
}

/// One wrk run against `config` (on CPU 0 when pinned).
/// The server's CPU time during the run is measured too: this process serves every configuration,
/// and only this one is loaded while wrk runs.
fn run(config: &Config, seconds: u32, pin: bool) -> Sample {
    let cpu_before = process_cpu_seconds();
    let out = pinned(
        &wrk_command(config.addr, &config.credential, seconds, 16),
        pin.then_some("0"),
    )
    .output()
    .expect("wrk is installed (bench-peers/run-http.sh installs it)");
    let server_cpu_s = process_cpu_seconds() - cpu_before;
    Sample {
        server_cpu_s,
        ..wrk_sample(&config.name, &out)
    }
}

/// The "bare jsonwebtoken" and "axum-jwt-auth" role check, in the handler.
async fn role_checked(claims: PeerClaims) -> Result<&'static str, StatusCode> {
    if claims.has_role() {
        Ok("hello")
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

/// axum-jwt-auth's documented shape: the decoder in the state, `Claims<T>` in the handler.
#[derive(Clone, FromRef)]
struct JwtAuthState {
    decoder: axum_jwt_auth::Decoder<PeerClaims>,
}

async fn axum_jwt_auth_handler(
    claims: axum_jwt_auth::Claims<PeerClaims>,
) -> Result<&'static str, StatusCode> {
    role_checked(claims.claims).await
}

/// protect-axum's documented shape: the grants layer attaches the authorities, the macro
/// checks them (403 when missing).
#[protect_axum::protect("viewer")]
async fn protect_axum_handler() -> &'static str {
    "hello"
}

/// The SQLite file's folder, removed when the run ends (a panic too).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A protected configuration whose credential is a JWT.
fn jwt(
    name: String,
    checks: &'static str,
    addr: SocketAddr,
    token: &str,
    without_role: Option<&str>,
) -> Config {
    Config {
        name,
        checks,
        addr,
        credential: token.to_string(),
        without_role: without_role.map(str::to_string),
        protected: true,
    }
}

/// The `Config::checks` text of every authz JWT configuration.
const AUTHZ_JWT_CHECKS: &str = "size, structure, `alg` allowlist bound to the key, `kid`, `typ`, \
     `crit` refused, signature, `exp` (required), `nbf`, `iat`, `iss`, `aud`, ID/logout-token \
     claims refused; principal from `roles`; guard: permission `data:read` (role → permission \
     through the policy)";

#[allow(clippy::too_many_lines)] // one list of configurations, in the order of the report
fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let warmup: u32 = std::env::var("HTTP_BENCH_WARMUP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let only: Vec<String> = std::env::var("HTTP_BENCH_ONLY")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    // HTTP_BENCH_PIN=1: the servers on CPU 1 with one worker, wrk on CPU 0 — the servers are then
    // CPU-bound on their own core instead of sharing both with wrk (this program re-runs itself
    // under `taskset -c 1`; wrk is started under `taskset -c 0`).
    let pin = std::env::var("HTTP_BENCH_PIN").is_ok_and(|v| v == "1");
    if pin && std::env::var_os("HTTP_BENCH_PINNED").is_none() {
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(std::env::current_exe().unwrap())
            .args(std::env::args().skip(1))
            .env("HTTP_BENCH_PINNED", "1")
            .status()
            .expect("taskset (util-linux) is installed");
        std::process::exit(status.code().unwrap_or(1));
    }
    let workers = if pin { 1 } else { 2 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let catalog = Arc::new(<Catalog as authz_axum::core::Catalog>::catalog().clone());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new(ROLE).grant("data:read"))
            .build()
            .unwrap(),
    );
    let claims =
        serde_json::json!({"sub": "u", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "roles": [ROLE]});
    // HS256 first; its key is the fixed HS256_SECRET, the others are fresh in each call.
    let Signed {
        alg,
        token: hs256,
        theirs: hs256_theirs,
        ..
    } = signed_tokens(&claims).swap_remove(0);
    assert_eq!(alg, Algorithm::HS256);
    // The same token without the role (HS256: the only key that is the same in both calls).
    let no_role =
        serde_json::json!({"sub": "u", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "roles": []});
    let hs256_no_role = signed_tokens(&no_role).swap_remove(0).token;

    let mut configs: Vec<Config> = Vec::new();

    // The baseline: no authentication, the same header.
    configs.push(Config {
        name: "no auth".into(),
        checks: "nothing (the HS256 token is sent and ignored)",
        addr: rt.block_on(serve(Router::new().route("/", get(hello)))),
        credential: hs256.clone(),
        without_role: None,
        protected: false,
    });

    // authz, cache on, per algorithm (a client reusing its token), then HS256 with the cache off
    // (every request verifies the signature).
    let authz_jwt = |alg: Algorithm, keys: StaticKeys, cache: bool| {
        let verifier = JwtVerifier::builder(ISS, AUD, [alg]).build().unwrap();
        let auth = Authenticator::builder(policy.clone())
            .issuer(Issuer::new(verifier, keys))
            .cache_entries(if cache { 10_000 } else { 0 })
            .build()
            .unwrap();
        Router::new()
            .route("/", get(guarded))
            .layer(AuthLayer::new(Arc::new(auth)))
    };
    let mut hs256_keys = None;
    for Signed { alg, token, ours, .. } in signed_tokens(&claims) {
        let keys = StaticKeys::new(KeySet::new(vec![ours]).unwrap());
        if alg == Algorithm::HS256 {
            hs256_keys = Some(keys.clone());
        }
        let addr = rt.block_on(serve(authz_jwt(alg, keys, true)));
        let without_role = (alg == Algorithm::HS256).then_some(hs256_no_role.as_str());
        configs.push(jwt(
            format!("authz {alg} cache on"),
            "as cache off for a token's first use; then one cache lookup (token compared whole, \
             `exp` rechecked); guard: permission `data:read`",
            addr,
            &token,
            without_role,
        ));
    }
    let addr = rt.block_on(serve(authz_jwt(Algorithm::HS256, hs256_keys.unwrap(), false)));
    configs.push(jwt(
        "authz HS256 cache off".into(),
        AUTHZ_JWT_CHECKS,
        addr,
        &hs256,
        Some(&hs256_no_role),
    ));

    // A hand-written middleware over bare jsonwebtoken 12 (aws-lc-rs), as a service without a
    // framework would do it: signature, `alg` = HS256, `crit` (refused), `exp` (required, 60 s
    // leeway), `iss`, `aud`; then the role, in the middleware. No `typ`/`nbf`/`iat` policy beyond
    // jsonwebtoken's defaults, no size limit, no cache.
    let bare = {
        let key = Arc::new(hs256_theirs.clone());
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(Algorithm::HS256));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let validation = Arc::new(validation);
        Router::new()
            .route("/", get(hello))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let (key, validation) = (key.clone(), validation.clone());
                async move {
                    let token = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .ok_or(StatusCode::UNAUTHORIZED)?;
                    let data = jsonwebtoken::decode::<PeerClaims>(token, &key, &validation)
                        .map_err(|_| StatusCode::UNAUTHORIZED)?;
                    if !data.claims.has_role() {
                        return Err(StatusCode::FORBIDDEN);
                    }
                    Ok::<Response, StatusCode>(next.run(req).await)
                }
            }))
    };
    configs.push(jwt(
        "bare jsonwebtoken HS256".into(),
        "signature, `alg` = HS256, `crit`, `exp` (required), `iss`, `aud`; role `viewer` (hand-written \
         middleware)",
        rt.block_on(serve(bare)),
        &hs256,
        Some(&hs256_no_role),
    ));

    // axum-jwt-auth 0.7 (jsonwebtoken 10, RustCrypto backend, which it selects): `LocalDecoder`
    // with jsonwebtoken's `Validation`: signature, `alg` = HS256, `exp` (required, 60 s leeway),
    // `iss`, `aud` (the decoder refuses to be built without an audience). The bearer token is
    // read through axum-extra's typed `Authorization<Bearer>` and copied into a `String`; the
    // decode is a boxed future. It has no authorization: the role is checked in the handler, as
    // its README leaves it to the user. No size limit, no cache.
    let axum_jwt_auth = {
        let mut validation = jsonwebtoken10::Validation::new(jsonwebtoken10::Algorithm::HS256);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let decoder = axum_jwt_auth::LocalDecoder::builder()
            .keys(vec![jsonwebtoken10::DecodingKey::from_secret(&HS256_SECRET)])
            .validation(validation)
            .build()
            .unwrap();
        Router::new()
            .route("/", get(axum_jwt_auth_handler))
            .with_state(JwtAuthState {
                decoder: Arc::new(decoder),
            })
    };
    configs.push(jwt(
        "axum-jwt-auth 0.7 HS256".into(),
        "signature, `alg` = HS256, `exp` (required), `iss`, `aud` (jsonwebtoken 10); role \
         `viewer` in the handler (the crate has no authorization)",
        rt.block_on(serve(axum_jwt_auth)),
        &hs256,
        Some(&hs256_no_role),
    ));

    // protect-axum 0.2: authorization only; it leaves authentication to the user. Its
    // `GrantsLayer` runs an authority extractor of the user's own (its README's step 1) that
    // returns the request's authorities; here it decodes the token with jsonwebtoken 12
    // (signature, `alg` = HS256, `exp` required, `iss`, `aud`; 401 otherwise) and returns the
    // `roles` claim as a `HashSet<String>`; `#[protect("viewer")]` on the handler answers 403
    // without the role. The layer boxes a future per request; the extractor's future is a
    // ready one (the decode is synchronous).
    let protect = {
        let key = Arc::new(hs256_theirs.clone());
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(Algorithm::HS256));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let extract = move |req: &mut Request| {
            let grants = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| jsonwebtoken::decode::<PeerClaims>(t, &key, &validation).ok())
                .map(|d| {
                    d.claims
                        .roles
                        .into_iter()
                        .collect::<std::collections::HashSet<String>>()
                })
                .ok_or_else(|| StatusCode::UNAUTHORIZED.into_response());
            std::future::ready(grants)
        };
        Router::new()
            .route("/", get(protect_axum_handler))
            .layer(protect_axum::GrantsLayer::with_extractor(extract))
    };
    configs.push(jwt(
        "protect-axum 0.2 + jsonwebtoken HS256".into(),
        "signature, `alg` = HS256, `crit`, `exp` (required), `iss`, `aud` (jsonwebtoken 12, in the grants \
         extractor); authority `viewer` by `#[protect]`",
        rt.block_on(serve(protect)),
        &hs256,
        Some(&hs256_no_role),
    ));

    // jwt-authorizer 0.15 (axum 0.7, jsonwebtoken 9 over ring): `from_secret` (it takes the
    // secret as a `&str`), `Validation` with `iss` and `aud`; `exp` is required by default (60 s
    // leeway); `alg` may be any of HS256/384/512 (the default for a secret: the crate's
    // `Validation::algs` takes jsonwebtoken 9's type, so it is left to that default). The role is
    // its `check` (a claims predicate: 403 when false). It rebuilds jsonwebtoken's `Validation`
    // (two `HashSet`s) and copies the token into a `String` on every request.
    let jwt_authorizer = rt.block_on(async {
        use jwt_authorizer::IntoLayer as _;
        let secret = std::str::from_utf8(&HS256_SECRET).expect("the HS256 secret is UTF-8");
        let authorizer = jwt_authorizer::JwtAuthorizer::<PeerClaims>::from_secret(secret)
            .validation(jwt_authorizer::Validation::new().iss(&[ISS]).aud(&[AUD]))
            .check(PeerClaims::has_role)
            .build()
            .await
            .unwrap();
        let app = axum07::Router::new()
            .route("/", axum07::routing::get(hello))
            .layer(authorizer.into_layer());
        serve07(app).await
    });
    configs.push(jwt(
        "jwt-authorizer 0.15 HS256".into(),
        "signature, `alg` ∈ HS256/384/512, `exp` (required), `iss`, `aud` (jsonwebtoken 9); role \
         `viewer` by its `check`",
        jwt_authorizer,
        &hs256,
        Some(&hs256_no_role),
    ));
    // The same route without authentication on axum 0.7's server, so that the jwt-authorizer row
    // can be read against the stack it runs on, not only against axum 0.8's.
    configs.push(Config {
        name: "no auth (axum 0.7)".into(),
        checks: "nothing (the HS256 token is sent and ignored); axum 0.7's `serve`, as \
                 jwt-authorizer's row",
        addr: rt.block_on(serve07(
            axum07::Router::new().route("/", axum07::routing::get(hello)),
        )),
        credential: hs256.clone(),
        without_role: None,
        protected: false,
    });

    // authz API keys, as a service runs them: the verified-key cache (default: 10 000 keys, 30 s
    // TTL), `last_used_at` flushed every 5 s by a background task; over SQLite, the change feed
    // following the file (what keeps the cache serving: without it every check reads the store).
    let dir = TempDir(std::env::temp_dir().join(format!("authz-http-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let sqlite_url = format!("sqlite://{}", dir.0.join("keys.db").display());
    let (_feed, key_caches, key_configs) = rt.block_on(async {
        let db = authz_axum::sql::open(&sqlite_url).await.unwrap();
        let mut out = Vec::new();
        let mut caches = Vec::new();
        let mut feed = None;
        for (name, store) in [
            (
                "authz API key (memory store)",
                Arc::new(MemoryKeyStore::new()) as Arc<dyn KeyStore>,
            ),
            ("authz API key (SQLite file)", db.store()),
        ] {
            let keys = ApiKeys::with_cache(
                ApiKeyFormat::default(),
                store.clone(),
                policy.clone(),
                clock::system(),
                KeyCacheConfig::default(),
            );
            keys.start_flusher(Duration::from_secs(5));
            if store.is_shared() {
                feed = Some(db.follow(&keys, FeedConfig::default()).await);
            }
            assert!(keys.cache().is_serving(), "{name}: the key cache serves");
            let issued = keys.create("bench", vec![ROLE.into()], None, None).await;
            let denied = keys.create("nobody", vec![], None, None).await;
            caches.push((name, keys.clone()));
            let auth = Authenticator::builder(policy.clone())
                .api_keys(keys)
                .build()
                .unwrap();
            let app = Router::new()
                .route("/", get(guarded))
                .layer(AuthLayer::new(Arc::new(auth)));
            out.push(Config {
                name: name.into(),
                checks: "format and CRC, SHA-256 of the key, constant-time compare, expiry, \
                         revocation (cache evicted at once; SQLite: by the change feed); guard: \
                         permission `data:read`",
                addr: serve(app).await,
                credential: issued.unwrap().key.expose_raw().to_string(),
                without_role: Some(denied.unwrap().key.expose_raw().to_string()),
                protected: true,
            });
        }
        (feed, caches, out)
    });
    configs.extend(key_configs);

    configs.retain(|c| {
        c.name == "no auth" || only.is_empty() || only.iter().any(|o| c.name.contains(o.as_str()))
    });

    // Every configuration answers as it must before anything is timed.
    eprintln!("checking every configuration (valid → 200, no header → 401, without the role → 403)");
    for c in &configs {
        let ok = status(c.addr, Some(&c.credential));
        let none = status(c.addr, None);
        let denied = c.without_role.as_deref().map(|w| status(c.addr, Some(w)));
        eprintln!(
            "  {:<40} valid {ok}  no header {none}  without the role {}",
            c.name,
            denied.map_or("-".into(), |d| d.to_string())
        );
        assert_eq!(ok, 200, "{}: the valid credential is refused", c.name);
        assert_eq!(none, if c.protected { 401 } else { 200 }, "{}: no header", c.name);
        if let Some(d) = denied {
            assert_eq!(d, 403, "{}: a credential without the role", c.name);
        }
    }

    let n = configs.len();
    let total = n as u32 * (warmup + runs as u32 * seconds);
    eprintln!(
        "{n} configurations × {runs} runs × {seconds} s (+ {warmup} s warm-up each): about {} min {} s",
        total / 60,
        total % 60
    );
    for c in &configs {
        if warmup > 0 {
            let _ = run(c, warmup, pin);
        }
    }
    // samples[config][round]
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(runs); n];
    for round in 0..runs {
        for i in round_order(round, n) {
            let s = run(&configs[i], seconds, pin);
            eprintln!(
                "  round {}/{runs}  {:<40} {:>8.0} req/s  p50 {:>9}  p99 {:>9}  server CPU {:>6.2} µs/request",
                round + 1,
                configs[i].name,
                s.rps,
                latency(s.p50),
                latency(s.p99),
                s.cpu_per_request_us()
            );
            samples[i].push(s);
        }
    }

    let base = median(samples[0].iter().map(|s| s.rps).collect());
    println!();
    println!(
        "HTTP throughput, 127.0.0.1: wrk -t1 -c16 --latency, {runs} alternating runs × {seconds} s \
         per configuration, {warmup} s warm-up each; {}",
        if pin {
            "servers on CPU 1 with 1 Tokio worker, wrk on CPU 0 (HTTP_BENCH_PIN=1)"
        } else {
            "servers with 2 Tokio workers, nothing pinned"
        }
    );
    println!();
    println!(
        "| configuration | requests/s, median (min–max) | median vs no auth | per round vs no auth (min–max) | p50 | p99 | server CPU per request, median (min–max) | over no auth |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let base_cpu = median(samples[0].iter().map(Sample::cpu_per_request_us).collect());
    for (c, s) in configs.iter().zip(&samples) {
        let rps: Vec<f64> = s.iter().map(|x| x.rps).collect();
        let (lo, hi) = min_max(&rps);
        let ratios: Vec<f64> = s
            .iter()
            .zip(&samples[0])
            .map(|(x, b)| 100.0 * x.rps / b.rps)
            .collect();
        let (rlo, rhi) = min_max(&ratios);
        let med = median(rps);
        let cpu: Vec<f64> = s.iter().map(Sample::cpu_per_request_us).collect();
        let (clo, chi) = min_max(&cpu);
        let med_cpu = median(cpu);
        println!(
            "| {} | {med:.0} ({lo:.0}–{hi:.0}) | {:.1}% | {rlo:.0}–{rhi:.0}% | {} | {} | {med_cpu:.2} µs ({clo:.2}–{chi:.2}) | {:+.2} µs ({:+.1}%) |",
            c.name,
            100.0 * med / base,
            latency(median(s.iter().map(|x| x.p50).collect())),
            latency(median(s.iter().map(|x| x.p99).collect())),
            med_cpu - base_cpu,
            100.0 * (med_cpu - base_cpu) / base_cpu,
        );
    }
    println!();
    println!("| configuration | what it checks |");
    println!("|---|---|");
    for c in &configs {
        println!("| {} | {} |", c.name, c.checks);
    }
    println!();
    println!("Every run (requests/s), run 1 to run {runs}:");
    println!();
    println!("```");
    for (c, s) in configs.iter().zip(&samples) {
        let runs: Vec<String> = s.iter().map(|x| format!("{:.0}", x.rps)).collect();
        println!("{:<40} {}", c.name, runs.join(" "));
    }
    println!("```");
    println!();
    println!("Server CPU per request (µs), run 1 to run {runs}:");
    println!();
    println!("```");
    for (c, s) in configs.iter().zip(&samples) {
        let runs: Vec<String> = s
            .iter()
            .map(|x| format!("{:.2}", x.cpu_per_request_us()))
            .collect();
        println!("{:<40} {}", c.name, runs.join(" "));
    }
    println!("```");
    println!();
    // Evidence that the API key rows measure the steady state (cache hits), not the store.
    for (name, keys) in &key_caches {
        if !configs.iter().any(|c| c.name == *name) {
            continue;
        }
        let stats = keys.cache().stats();
        println!(
            "{name}: verified-key cache hits {}, misses {}, serving {}",
            stats.hits, stats.misses, stats.serving
        );
    }
    drop(dir);
}
