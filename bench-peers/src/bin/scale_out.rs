//! Scale-out figure (issue #18): throughput of ONE authz instance against TWO instances sharing
//! ONE PostgreSQL, for API keys and for JWTs. Run: `bench-peers/scale-out/run.sh`.
//!
//! `scale_out run [seconds] [runs]` (default 10 and 5; needs `AUTHZ_TEST_DATABASE_URL`, which
//! `.ci/postgres.sh` exports) starts three server processes of its own (`scale_out serve`), each
//! what a production instance runs against a shared PostgreSQL:
//! - API keys: the sqlx PostgreSQL store, the verified-key cache, the LISTEN/NOTIFY change feed,
//!   `last_used_at` flushed every 5 s;
//! - JWTs (HS256, token cache on) checked against the shared revocation list, loaded from
//!   PostgreSQL and kept current by its LISTEN/NOTIFY feed;
//! - a route guarded by `#[require_permission("data:read")]`.
//!
//! One instance has 2 Tokio workers (`one`), the other two 1 worker each (`two`). The load is the
//! same in both configurations: two `wrk -t1 -c8` processes started together — both against
//! `one`, or one against each of `two` — and the figure is the sum of their requests/s. Rounds
//! alternate the four configurations (API key / JWT × one / two) as `run-http.sh` does. Each run
//! also counts PostgreSQL transactions (`pg_stat_database`), to show that the request path does
//! not reach the database.
//!
//! What this can show on a 2-core machine shared with the load generator: whether two instances
//! on one database lose throughput against one instance with the same cores — i.e. whether
//! anything serialises across instances (a lock, a per-request database round trip). What it
//! cannot show: more throughput from more instances (the cores are saturated in both
//! configurations; that needs more cores or machines), a database across a network, or more than
//! two instances.
//!
//! Bounded: 127.0.0.1 only; every server exits when its driver's stdin pipe closes or after its
//! lifetime argument, whichever comes first, and the driver kills the servers it started.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::apikey::ApiKeyFormat;
use authz_axum::core::auth::KeyCacheConfig;
use authz_axum::core::clock;
use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet};
use authz_axum::core::revocation::RevocationList;
use authz_axum::core::{Policy, RoleSpec};
use authz_axum::sql::revocations::FeedConfig;
use authz_axum::{ApiKeys, AuthLayer, Authenticator, Issuer, StaticKeys};
use authz_bench_peers::{Sample, http_get, median, min_max, round_order, wrk_command, wrk_sample};
use authz_tests::signed_tokens::{Signed, signed_tokens};
use axum::Router;
use axum::routing::get;

const ISS: &str = "https://bench.test";
const AUD: &str = "bench";

authz_axum::catalog! {
    /// The benchmark's one permission.
    pub struct Catalog { permissions: ["data:read"] }
}

#[authz_axum::require_permission("data:read")]
async fn guarded() -> &'static str {
    "hello"
}

fn policy() -> Arc<Policy> {
    let catalog = Arc::new(<Catalog as authz_axum::core::Catalog>::catalog().clone());
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    )
}

/// The HS256 token (its key is the fixed benchmark secret, the same in every process).
fn hs256() -> Signed {
    let claims =
        serde_json::json!({"sub": "u", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "roles": ["viewer"]});
    let signed = signed_tokens(&claims).swap_remove(0);
    assert_eq!(signed.alg, Algorithm::HS256);
    signed
}

/// One instance: `scale_out serve <workers> <lifetime seconds>`, database from
/// `AUTHZ_TEST_DATABASE_URL`. Prints `listening <addr>` once it serves.
fn serve(workers: usize, lifetime: u64) {
    let url = std::env::var("AUTHZ_TEST_DATABASE_URL").expect("AUTHZ_TEST_DATABASE_URL");
    // Exit when the driver goes (its end of our stdin closes) or after `lifetime`.
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(lifetime));
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let policy = policy();
        // API keys over PostgreSQL, with the verified-key cache kept current by LISTEN/NOTIFY.
        let db = authz_axum::sql::open(&url).await.unwrap();
        let keys = ApiKeys::with_cache(
            ApiKeyFormat::default(),
            db.store(),
            policy.clone(),
            clock::system(),
            KeyCacheConfig::default(),
        );
        keys.start_flusher(Duration::from_secs(5));
        let _key_feed = db.follow(&keys, FeedConfig::default()).await;
        assert!(keys.cache().is_serving());
        let stats = keys.clone();
        // The revocation list every instance shares, loaded and followed from PostgreSQL.
        let list = Arc::new(RevocationList::new());
        let rdb = authz_axum::sql::revocations::connect(&url).await.unwrap();
        let _revocation_feed = rdb
            .follow(list.clone(), clock::system(), FeedConfig::default())
            .await;
        let Signed { ours, .. } = hs256();
        let auth = Authenticator::builder(policy.clone())
            .issuer(Issuer::new(
                JwtVerifier::builder(ISS, AUD, [Algorithm::HS256])
                    .build()
                    .unwrap(),
                StaticKeys::new(KeySet::new(vec![ours]).unwrap()),
            ))
            .api_keys(keys)
            .revocations(list)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/", get(guarded))
            // The verified-key cache's counters: how often the store was read.
            .route(
                "/stats",
                get(move || async move {
                    let s = stats.cache().stats();
                    format!("{} {}", s.hits, s.misses)
                }),
            )
            .layer(AuthLayer::new(Arc::new(auth)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

/// A server process of ours, killed when dropped.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Instance {
    fn start(workers: usize, lifetime: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["serve", &workers.to_string(), &lifetime.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("the server did not start: {line:?}"));
        Self { child, addr }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Transactions committed or rolled back in the database so far (`pg_stat_database`; other
/// backends publish theirs within about 10 s of going idle, PostgreSQL 15).
async fn transactions(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

struct Config {
    name: String,
    /// The instances the two wrk processes load (the same one twice for `one`).
    targets: [SocketAddr; 2],
    credential: String,
}

/// Both wrk processes (`-t1 -c8`), started together; their samples.
fn pair(c: &Config, seconds: u32) -> [Sample; 2] {
    let children: Vec<_> = c
        .targets
        .iter()
        .map(|&addr| {
            wrk_command(addr, &c.credential, seconds, 8)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("wrk is installed (scale-out/run.sh installs it)")
        })
        .collect();
    let samples: Vec<Sample> = children
        .into_iter()
        .map(|ch| wrk_sample(&c.name, &ch.wait_with_output().unwrap()))
        .collect();
    [samples[0], samples[1]]
}

fn run(seconds: u32, runs: usize) {
    let url =
        std::env::var("AUTHZ_TEST_DATABASE_URL").expect("AUTHZ_TEST_DATABASE_URL (source .ci/postgres.sh)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The key every instance will check (the migrations run here, before any server starts).
    let (key, pool) = rt.block_on(async {
        let db = authz_axum::sql::open(&url).await.unwrap();
        let keys = ApiKeys::new(ApiKeyFormat::default(), db.store(), policy());
        let issued = keys
            .create("scale-out", vec!["viewer".into()], None, None)
            .await
            .unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        (issued.key.expose_raw().to_string(), pool)
    });
    let token = hs256().token;
    let lifetime = 120 + u64::from(seconds + 3) * 4 * (runs as u64 + 1);
    // One at a time: each connects and follows the database before the next starts.
    let one = Instance::start(2, lifetime);
    let two = [Instance::start(1, lifetime), Instance::start(1, lifetime)];
    let mut configs = Vec::new();
    for (what, credential) in [("API key", &key), ("JWT HS256", &token)] {
        configs.push(Config {
            name: format!("{what}: one instance, 2 workers"),
            targets: [one.addr, one.addr],
            credential: credential.clone(),
        });
        configs.push(Config {
            name: format!("{what}: two instances, 1 worker each"),
            targets: [two[0].addr, two[1].addr],
            credential: credential.clone(),
        });
    }
    let n = configs.len();
    eprintln!(
        "{n} configurations × {runs} runs × {seconds} s (+ 2 s warm-up each), two wrk -t1 -c8 \
         per run: about {} min",
        (n as u32 * (2 + runs as u32 * (seconds + 2))).div_ceil(60)
    );
    for c in &configs {
        let _ = pair(c, 2);
    }
    // Let the warm-up's statistics reach pg_stat_database, then count from here.
    std::thread::sleep(Duration::from_secs(11));
    let tx_before = rt.block_on(transactions(&pool));
    let misses_before = misses(&one, &two, &key);
    // samples[config][round] = (sum of requests/s, the two wrk's requests/s)
    let mut samples: Vec<Vec<(f64, [f64; 2])>> = vec![Vec::new(); n];
    let mut requests = 0.0;
    for round in 0..runs {
        for i in round_order(round, n) {
            let [a, b] = pair(&configs[i], seconds);
            eprintln!(
                "  round {}/{runs}  {:<40} {:>8.0} req/s ({:.0} + {:.0})",
                round + 1,
                configs[i].name,
                a.rps + b.rps,
                a.rps,
                b.rps,
            );
            requests += (a.rps + b.rps) * f64::from(seconds);
            samples[i].push((a.rps + b.rps, [a.rps, b.rps]));
        }
    }
    let misses_after = misses(&one, &two, &key);
    std::thread::sleep(Duration::from_secs(11));
    // Minus the statistics query itself.
    let tx = rt.block_on(transactions(&pool)) - tx_before - 1;
    drop((one, two));

    println!();
    println!(
        "Scale-out on 127.0.0.1, one PostgreSQL: two wrk -t1 -c8 per run (sum of requests/s), \
         {runs} alternating runs × {seconds} s"
    );
    println!();
    println!(
        "| configuration | requests/s, median (min–max) | two vs one (median) | the two wrk's shares (medians) |"
    );
    println!("|---|---|---|---|");
    for (i, (c, s)) in configs.iter().zip(&samples).enumerate() {
        let sums: Vec<f64> = s.iter().map(|x| x.0).collect();
        let (lo, hi) = min_max(&sums);
        let med = median(sums);
        let one_median = median(samples[i & !1].iter().map(|x| x.0).collect());
        let split = [
            median(s.iter().map(|x| x.1[0]).collect()),
            median(s.iter().map(|x| x.1[1]).collect()),
        ];
        println!(
            "| {} | {med:.0} ({lo:.0}–{hi:.0}) | {:.1}% | {:.0} / {:.0} |",
            c.name,
            100.0 * med / one_median,
            split[0],
            split[1],
        );
    }
    println!();
    println!(
        "During the measurement: {requests:.0} requests; {tx} PostgreSQL transactions in all \
         (last_used_at flushes every 5 s per instance, anything else); API-key store reads \
         (verified-key cache misses, three instances): {}.",
        misses_after - misses_before
    );
}

/// The verified-key cache misses of the three instances, summed.
fn misses(one: &Instance, two: &[Instance; 2], key: &str) -> u64 {
    [one, &two[0], &two[1]]
        .iter()
        .map(|i| {
            let (status, body) = http_get(i.addr, "stats", Some(key));
            assert_eq!(status, 200, "/stats: {body}");
            body.split_whitespace()
                .nth(1)
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap()
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(
            args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1),
            args.get(2).and_then(|s| s.parse().ok()).unwrap_or(600),
        ),
        Some("run") => run(
            args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10),
            args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5),
        ),
        _ => eprintln!("usage: scale_out run [seconds] [runs] | scale_out serve <workers> <lifetime>"),
    }
}
