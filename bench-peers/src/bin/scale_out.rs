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
//! One instance has 2 Tokio workers, the other two 1 worker each. Each instance loaded gets one
//! `wrk -t1 -c8` process, all started together, and a configuration's figure is the sum of
//! their requests/s. Per credential (API key, JWT):
//! - one instance, 1 worker, 1 wrk: what one instance does alone, the reference of scale-out;
//! - one instance, 2 workers, 2 wrk: the same cores and load as the next row, in one process;
//! - two instances, 1 worker each, 2 wrk: two instances on the one database.
//!
//! Rounds alternate the six configurations as `run-http.sh` does. Over the whole measurement it
//! also counts PostgreSQL transactions (`pg_stat_database`) and API-key store reads (the
//! instances' verified-key cache misses, from a `/stats` route), to show that the request path
//! does not reach the database.
//!
//! What this can show on a 2-core machine shared with the load generator: whether a second
//! instance on the same database adds what the first does alone (each instance with its wrk
//! fits one core, so two can reach ~2× one) and whether two instances lose anything against one
//! process with the same cores — i.e. whether anything serialises across instances (a lock, a
//! per-request database round trip). What it cannot show: scaling past two cores or two
//! instances (the cores are saturated by two instances and their two wrk), a database across a
//! network, or a separate load-generator machine. Two 1-worker processes can also beat one
//! 2-worker process on the same cores for local reasons (no work stealing or cross-core wake-ups
//! between Tokio workers), which is not a property of authz.
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
use authz_bench_peers::{Sample, http_get, median, min_max, pinned, round_order, wrk_command, wrk_sample};
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
    fn start(workers: usize, lifetime: u64, cpus: Option<&str>) -> Self {
        let mut serve = Command::new(std::env::current_exe().unwrap());
        serve.args(["serve", &workers.to_string(), &lifetime.to_string()]);
        let mut child = pinned(&serve, cpus)
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
    /// The instance each wrk process loads (the same one twice for one instance, 2 workers),
    /// and the CPU that wrk runs on when pinning.
    targets: Vec<(SocketAddr, &'static str)>,
    /// Whether to pin (`taskset`).
    pin: bool,
    credential: String,
}

/// The wrk processes (`-t1 -c8`, one per target), started together; their samples.
fn load(c: &Config, seconds: u32) -> Vec<Sample> {
    let children: Vec<_> = c
        .targets
        .iter()
        .map(|&(addr, cpu)| {
            pinned(
                &wrk_command(addr, &c.credential, seconds, 8),
                c.pin.then_some(cpu),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrk is installed (scale-out/run.sh installs it)")
        })
        .collect();
    children
        .into_iter()
        .map(|ch| wrk_sample(&c.name, &ch.wait_with_output().unwrap()))
        .collect()
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
    let lifetime = 120 + u64::from(seconds + 3) * 6 * (runs as u64 + 1);
    // Pinned (default, with taskset and 2 CPUs or more): each 1-worker instance and its wrk share
    // one CPU (instance A and its wrk on CPU 0, B and its wrk on CPU 1), so one instance alone
    // uses one core and two use two; the 2-worker instance and its two wrk get CPUs 0 and 1.
    let pin = std::env::var("SCALE_OUT_PIN").map_or(true, |v| v != "0")
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    eprintln!(
        "{}",
        if pin {
            "pinned: instance A and its wrk on CPU 0, B and its wrk on CPU 1, the 2-worker \
             instance on CPUs 0-1 (SCALE_OUT_PIN=0: not pinned)"
        } else {
            "not pinned (SCALE_OUT_PIN=0, fewer than 2 CPUs, or no taskset)"
        }
    );
    // One at a time: each connects and follows the database before the next starts.
    let one = Instance::start(2, lifetime, pin.then_some("0,1"));
    let two = [
        Instance::start(1, lifetime, pin.then_some("0")),
        Instance::start(1, lifetime, pin.then_some("1")),
    ];
    let mut configs = Vec::new();
    // Per credential, in this order (the report relies on it): one instance of 1 worker under
    // one wrk (what one instance does alone: the reference of scale-out); one instance of 2
    // workers under two wrk (the same cores and load as the next row, in one process); two
    // instances of 1 worker, one wrk each.
    for (what, credential) in [("API key", &key), ("JWT HS256", &token)] {
        for (name, targets) in [
            ("one instance, 1 worker, 1 wrk", vec![(two[0].addr, "0")]),
            (
                "one instance, 2 workers, 2 wrk",
                vec![(one.addr, "0"), (one.addr, "1")],
            ),
            (
                "two instances, 1 worker each, 2 wrk",
                vec![(two[0].addr, "0"), (two[1].addr, "1")],
            ),
        ] {
            configs.push(Config {
                name: format!("{what}: {name}"),
                targets,
                pin,
                credential: credential.clone(),
            });
        }
    }
    let n = configs.len();
    eprintln!(
        "{n} configurations × {runs} runs × {seconds} s (+ 2 s warm-up each), wrk -t1 -c8 per \
         instance loaded: about {} min",
        (n as u32 * (2 + runs as u32 * (seconds + 2))).div_ceil(60)
    );
    for c in &configs {
        let _ = load(c, 2);
    }
    // Let the warm-up's statistics reach pg_stat_database, then count from here.
    std::thread::sleep(Duration::from_secs(11));
    let tx_before = rt.block_on(transactions(&pool));
    let misses_before = misses(&one, &two, &key);
    // samples[config][round] = (sum of requests/s, each wrk's requests/s)
    let mut samples: Vec<Vec<(f64, Vec<f64>)>> = vec![Vec::new(); n];
    let mut requests = 0.0;
    for round in 0..runs {
        for i in round_order(round, n) {
            let each: Vec<f64> = load(&configs[i], seconds).iter().map(|s| s.rps).collect();
            let sum: f64 = each.iter().sum();
            let shares: Vec<String> = each.iter().map(|r| format!("{r:.0}")).collect();
            eprintln!(
                "  round {}/{runs}  {:<50} {sum:>8.0} req/s ({})",
                round + 1,
                configs[i].name,
                shares.join(" + "),
            );
            requests += sum * f64::from(seconds);
            samples[i].push((sum, each));
        }
    }
    let misses_after = misses(&one, &two, &key);
    std::thread::sleep(Duration::from_secs(11));
    // Minus the statistics query itself.
    let tx = rt.block_on(transactions(&pool)) - tx_before - 1;
    drop((one, two));

    println!();
    println!(
        "Scale-out on 127.0.0.1, one PostgreSQL: wrk -t1 -c8 per instance loaded (the sum of \
         their requests/s), {runs} alternating runs × {seconds} s, {}",
        if pin {
            "pinned (each 1-worker instance and its wrk on one CPU)"
        } else {
            "not pinned"
        }
    );
    println!();
    println!(
        "| configuration | requests/s, median (min–max) | vs one instance, 1 worker | vs one instance, 2 workers | each wrk (medians) |"
    );
    println!("|---|---|---|---|---|");
    for (i, (c, s)) in configs.iter().zip(&samples).enumerate() {
        let sums: Vec<f64> = s.iter().map(|x| x.0).collect();
        let (lo, hi) = min_max(&sums);
        let med = median(sums);
        // The first two rows of this credential's three.
        let base = |k: usize| median(samples[i - i % 3 + k].iter().map(|x| x.0).collect());
        let shares: Vec<String> = (0..c.targets.len())
            .map(|w| format!("{:.0}", median(s.iter().map(|x| x.1[w]).collect())))
            .collect();
        println!(
            "| {} | {med:.0} ({lo:.0}–{hi:.0}) | {:.0}% | {:.0}% | {} |",
            c.name,
            100.0 * med / base(0),
            100.0 * med / base(1),
            shares.join(" / "),
        );
    }
    println!();
    println!(
        "During the measurement: {requests:.0} requests; {tx} PostgreSQL transactions in all \
         (last_used_at flushes every 5 s per instance, anything else); API-key store reads \
         (verified-key cache misses, three instances; each instance re-reads a key once its \
         30 s TTL has passed, once per request in flight at that moment): {}.",
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
