//! Revocation that reaches every instance (issue #15): the SQLite and PostgreSQL revocation
//! stores, the feed that keeps each instance's deny-list current (polling; LISTEN/NOTIFY with
//! reconnect-and-reload), revoked tokens refused over HTTP, and two model-registry instances on
//! one PostgreSQL — a revocation at one is refused by the other within a second, and after a
//! restart of both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authz_axum::core::clock::{Clock, ManualClock};
use authz_axum::core::revocation::{Revocation, RevocationList, RevocationStore};
use authz_axum::sql::revocations::{self, FeedConfig, PostgresRevocationStore, SqliteRevocationStore};
use oauth2::{AuthorizationCode, TokenResponse as _};
use reqwest::StatusCode;

use crate::common::{PartitionProxy, demo_token, http, init_tracing, now, remember_secret};
use crate::token_service::{authorize_spa, no_redirects, spa_client};

/// The PostgreSQL server of the tests, or `None` (SKIPPED; never under CI).
pub fn pg_url(what: &str) -> Option<String> {
    match std::env::var("AUTHZ_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL revocation tests: .ci/run sets AUTHZ_TEST_DATABASE_URL"
            );
            eprintln!("SKIPPED: PostgreSQL {what} (set AUTHZ_TEST_DATABASE_URL=postgres://…)");
            None
        }
    }
}

/// A database of its own on the test server (dropped and made afresh), so that purges and
/// deletions of one test never touch another's rows.
pub async fn fresh_database(server_url: &str, name: &str) -> String {
    let db = format!("authz_rev_{name}_{}", std::process::id());
    let admin = PostgresRevocationStore::connect(server_url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(admin.pool())
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(admin.pool())
        .await
        .unwrap();
    let mut url = url::Url::parse(server_url).unwrap();
    url.set_path(&format!("/{db}"));
    url.to_string()
}

fn temp_sqlite(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("authz-revocations-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("revocations.db").display())
}

/// Waits (polling every 10 ms) until `cond` holds; panics naming `what` after `within`.
/// What these tests wait for travels through real I/O — a poller, NOTIFY, another instance —
/// so there is no clock to move; expiry itself always follows the injected clock.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    eventually_async(what, within, || std::future::ready(cond())).await
}

/// [`eventually`] for a condition that needs I/O to evaluate (an HTTP call, a query).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> F,
) -> Duration {
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn token(issuer: &str, jti: &str, expires_at: u64) -> Revocation {
    Revocation::Token {
        issuer: issuer.into(),
        jti: jti.into(),
        expires_at,
    }
}

fn subject(issuer: &str, sub: &str, issued_before: u64, expires_at: u64) -> Revocation {
    Revocation::Subject {
        issuer: issuer.into(),
        subject: sub.into(),
        issued_before,
        expires_at,
    }
}

/// The same behaviour from both stores: record, load (live entries only), upsert keeping the
/// larger cut-off and expiry, purge.
async fn store_suite(store: &dyn RevocationStore) {
    let iss = "https://issuer.test";
    let t = 1_900_000_000;
    store.record(token(iss, "j1", t + 100)).await.unwrap();
    store.record(token(iss, "j1", t + 100)).await.unwrap(); // idempotent
    store
        .record(token("https://other.test", "j1", t + 100))
        .await
        .unwrap();
    store.record(subject(iss, "ada", t, t + 200)).await.unwrap();
    // An older, shorter revocation of the same subject changes nothing…
    store.record(subject(iss, "ada", t - 50, t + 150)).await.unwrap();
    // …a later cut-off moves it forward, the expiry stays the larger.
    store.record(subject(iss, "ada", t + 10, t + 120)).await.unwrap();
    let mut all = store.load(t).await.unwrap();
    all.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        all,
        vec![
            subject(iss, "ada", t + 10, t + 200),
            token(iss, "j1", t + 100),
            token("https://other.test", "j1", t + 100),
        ]
    );
    // Only what is still in force.
    assert_eq!(
        store.load(t + 100).await.unwrap(),
        vec![subject(iss, "ada", t + 10, t + 200)]
    );
    assert_eq!(store.purge(t + 100).await.unwrap(), 2);
    assert_eq!(store.purge(t + 100).await.unwrap(), 0);
    assert_eq!(store.load(0).await.unwrap().len(), 1);
    assert_eq!(store.purge(t + 200).await.unwrap(), 1);
    assert!(store.load(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn store_suite_sqlite() {
    let url = temp_sqlite("suite");
    let store = SqliteRevocationStore::connect(&url).await.unwrap();
    store_suite(&store).await;
    // Ids only grow, even after a purge emptied the table, and an upsert takes a new one.
    store.record(token("i", "a", u64::MAX / 4)).await.unwrap();
    let first = store.last_id().await.unwrap();
    assert!(first > 5, "AUTOINCREMENT ids are not reused: {first}");
    store.record(token("i", "a", u64::MAX / 4)).await.unwrap();
    assert_eq!(store.last_id().await.unwrap(), first + 1);
    assert_eq!(store.changes_since(first, 0).await.unwrap().len(), 1);
    // The URL switch.
    assert!(matches!(
        revocations::connect(&url).await.unwrap(),
        revocations::RevocationDatabase::Sqlite(_)
    ));
    assert!(revocations::connect("mysql://x").await.is_err());
}

#[tokio::test]
async fn store_suite_postgres() {
    let Some(server) = pg_url("revocation-store tests") else {
        return;
    };
    let url = fresh_database(&server, "suite").await;
    let store = PostgresRevocationStore::connect(&url).await.unwrap();
    store_suite(&store).await;
    let first = {
        store.record(token("i", "a", u64::MAX / 4)).await.unwrap();
        store.last_id().await.unwrap()
    };
    store.record(token("i", "a", u64::MAX / 4)).await.unwrap();
    assert!(store.last_id().await.unwrap() > first, "an upsert takes a new id");
    assert!(matches!(
        revocations::connect(&url).await.unwrap(),
        revocations::RevocationDatabase::Postgres(_)
    ));
}

#[tokio::test]
async fn sqlite_feed_loads_at_start_polls_another_writer_and_purges() {
    init_tracing();
    let url = temp_sqlite("feed");
    // Another process (the CLI) writing to the same file: a pool of its own.
    let writer = SqliteRevocationStore::connect(&url).await.unwrap();
    let clock = ManualClock::starting_now();
    let t = clock.unix_seconds();
    writer.record(token("iss", "before-start", t + 60)).await.unwrap();
    writer
        .record(token("iss", "already-expired", t - 1))
        .await
        .unwrap();

    let list = Arc::new(RevocationList::new());
    let db = revocations::connect(&url).await.unwrap();
    let feed = db
        .follow(
            list.clone(),
            Arc::new(clock.clone()),
            FeedConfig::default().purge_interval(Duration::from_millis(100)),
        )
        .await;
    // Loaded before `follow` returned: no window where a revoked token passes.
    assert!(feed.is_current());
    assert!(list.is_revoked("iss", Some("before-start"), "x", Some(t)));
    assert_eq!(list.len(), 1, "expired rows are not loaded");

    let written = Instant::now();
    writer.record(token("iss", "later", t + 60)).await.unwrap();
    let write = written.elapsed();
    let took = eventually("a row written by another pool", Duration::from_secs(2), || {
        list.is_revoked("iss", Some("later"), "x", Some(t))
    })
    .await;
    eprintln!("SQLite feed: applied {took:?} after the write ({write:?}) returned (poll interval 500 ms)");
    // An upsert (a later cut-off) is a new row for the poller.
    writer
        .record(subject("iss", "ada", t - 10, t + 120))
        .await
        .unwrap();
    eventually("a subject", Duration::from_secs(2), || {
        list.is_revoked("iss", None, "ada", Some(t - 10))
    })
    .await;
    writer.record(subject("iss", "ada", t, t + 120)).await.unwrap();
    eventually("a moved cut-off", Duration::from_secs(2), || {
        list.is_revoked("iss", None, "ada", Some(t))
    })
    .await;

    // Expiry follows the injected clock: list and table are purged.
    clock.advance(Duration::from_secs(121));
    eventually(
        "expired entries purged from the list",
        Duration::from_secs(2),
        || list.is_empty(),
    )
    .await;
    eventually_async(
        "expired rows purged from the table",
        Duration::from_secs(2),
        || async { writer.changes_since(0, 0).await.unwrap().is_empty() },
    )
    .await;
    assert!(feed.status().applied() >= 4);
    feed.stop().await;
}

#[tokio::test]
async fn postgres_feed_notices_a_silent_partition_by_its_heartbeat_and_catches_up() {
    init_tracing();
    let Some(server) = pg_url("revocation feed partition test") else {
        return;
    };
    let url = fresh_database(&server, "partition").await;
    let writer = PostgresRevocationStore::connect(&url).await.unwrap();
    let (proxy, through) = PartitionProxy::in_front_of(&url).await;

    let clock = ManualClock::starting_now();
    let t = clock.unix_seconds();
    let list = Arc::new(RevocationList::new());
    let store = PostgresRevocationStore::connect_with_timeout(&through, Duration::from_millis(500))
        .await
        .unwrap();
    let feed = revocations::RevocationDatabase::Postgres(store)
        .follow(
            list.clone(),
            Arc::new(clock.clone()),
            FeedConfig::default()
                .retry_delay(Duration::from_millis(100))
                .heartbeat(Duration::from_millis(200)),
        )
        .await;
    assert!(feed.is_current());
    writer.record(token("iss", "before", t + 60)).await.unwrap();
    eventually("a notified revocation", Duration::from_secs(1), || {
        list.is_revoked("iss", Some("before"), "x", Some(t))
    })
    .await;

    // Silence every connection the feed has, and revoke meanwhile: no notification can arrive
    // and the LISTEN connection reports nothing. Only the heartbeat notices; the feed then
    // connects again (a new connection passes) and reloads the list.
    proxy.partition();
    writer
        .record(token("iss", "during-partition", t + 60))
        .await
        .unwrap();
    // Nothing but the heartbeat can tell: the sockets stay open and silent.
    eventually(
        "the partition noticed (feed not current)",
        Duration::from_secs(5),
        || !feed.is_current(),
    )
    .await;
    eventually(
        "a revocation recorded during a silent partition",
        Duration::from_secs(15),
        || list.is_revoked("iss", Some("during-partition"), "x", Some(t)),
    )
    .await;
    eventually("current again", Duration::from_secs(5), || feed.is_current()).await;
    writer.record(token("iss", "after", t + 60)).await.unwrap();
    eventually(
        "a notification after the reconnect",
        Duration::from_secs(1),
        || list.is_revoked("iss", Some("after"), "x", Some(t)),
    )
    .await;
    feed.stop().await;
}

#[tokio::test]
async fn postgres_feed_follows_notifications_and_reloads_after_a_lost_connection() {
    init_tracing();
    let Some(server) = pg_url("revocation feed test") else {
        return;
    };
    let url = fresh_database(&server, "feed").await;
    let writer = PostgresRevocationStore::connect(&url).await.unwrap();
    let clock = ManualClock::starting_now();
    let t = clock.unix_seconds();
    writer.record(token("iss", "before-start", t + 60)).await.unwrap();

    let list = Arc::new(RevocationList::new());
    let db = revocations::connect(&url).await.unwrap();
    let feed = db
        .follow(
            list.clone(),
            Arc::new(clock.clone()),
            FeedConfig::default()
                .retry_delay(Duration::from_millis(100))
                .purge_interval(Duration::from_millis(100)),
        )
        .await;
    assert!(feed.is_current());
    assert!(list.is_revoked("iss", Some("before-start"), "x", Some(t)));

    writer.record(token("iss", "notified", t + 60)).await.unwrap();
    let took = eventually("a notified revocation", Duration::from_secs(1), || {
        list.is_revoked("iss", Some("notified"), "x", Some(t))
    })
    .await;
    eprintln!("PostgreSQL feed: applied {took:?} after the write returned");

    // Cut the LISTEN connection (its last statement is its LISTEN or a heartbeat's `SELECT 1`;
    // the pools here never run that), and revoke while it is down: the reload finds it.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1') \
         AND pid <> pg_backend_pid()",
    )
    .fetch_all(writer.pool())
    .await
    .unwrap();
    assert_eq!(killed, vec![(true,)], "one LISTEN connection");
    writer.record(token("iss", "while-down", t + 60)).await.unwrap();
    eventually(
        "a revocation recorded while disconnected",
        Duration::from_secs(3),
        || list.is_revoked("iss", Some("while-down"), "x", Some(t)),
    )
    .await;
    eventually("current again", Duration::from_secs(3), || feed.is_current()).await;
    // And it listens again.
    writer.record(token("iss", "after", t + 60)).await.unwrap();
    eventually(
        "a notification after the reconnect",
        Duration::from_secs(1),
        || list.is_revoked("iss", Some("after"), "x", Some(t)),
    )
    .await;

    clock.advance(Duration::from_secs(61));
    eventually("expired entries purged", Duration::from_secs(2), || {
        list.is_empty()
    })
    .await;
    feed.stop().await;
}

async fn get_me(base: &str, token: &str) -> StatusCode {
    http()
        .get(format!("{base}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn revoke_own(base: &str, server: &model_registry::Server, client: &str, token: &str) {
    let c = server.client(client).unwrap();
    let resp = http()
        .post(format!("{base}/revoke"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn revoked_tokens_are_refused_over_http() {
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = server.url();
    assert!(server.revocation_feed.is_none(), "no database: a local list");

    // One access token (RFC 7009), already in the verified-token cache.
    let cc = demo_token(&server, "viewer-client", None).await;
    assert_eq!(get_me(&base, &cc).await, 200);
    assert_eq!(get_me(&base, &cc).await, 200);
    revoke_own(&base, &server, "viewer-client", &cc).await;
    let resp = http()
        .get(format!("{base}/me"))
        .bearer_auth(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "refused right after /revoke, cache hit or not"
    );
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let other = demo_token(&server, "viewer-client", None).await;
    assert_eq!(get_me(&base, &other).await, 200, "another token of the client");

    // A refresh-token family: revoking the refresh token refuses its access token.
    let http_client = no_redirects();
    let spa = spa_client(&server);
    let (code, verifier) = authorize_spa(&server, &["viewer"]).await;
    let t = spa
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let access = t.access_token().secret().clone();
    remember_secret(&access);
    assert_eq!(get_me(&base, &access).await, 200);
    let resp = http()
        .post(format!("{base}/revoke"))
        .form(&[
            ("client_id", "spa"),
            ("token", t.refresh_token().unwrap().secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(get_me(&base, &access).await, 401, "the family's access token");

    // Every token of a subject.
    let (code, verifier) = authorize_spa(&server, &["viewer"]).await;
    let t = spa
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let ada = t.access_token().secret().clone();
    remember_secret(&ada);
    let analyst = demo_token(&server, "analyst-client", None).await;
    assert_eq!(get_me(&base, &ada).await, 200);
    assert_eq!(get_me(&base, &analyst).await, 200);
    let families = server
        .token_service
        .as_ref()
        .unwrap()
        .revoke_subject("ada")
        .await
        .unwrap();
    assert!(families >= 1);
    assert_eq!(get_me(&base, &ada).await, 401, "every token of ada");
    assert_eq!(get_me(&base, &analyst).await, 200, "other subjects untouched");
    let refresh = spa
        .exchange_refresh_token(t.refresh_token().unwrap())
        .request_async(&http_client)
        .await;
    assert!(refresh.is_err(), "ada's refresh token is revoked too");
    server.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_see_a_revocation_within_a_second_and_after_a_restart() {
    init_tracing();
    let Some(pg) = pg_url("two-instance revocation test") else {
        return;
    };
    let url = fresh_database(&pg, "instances").await;
    let config_a = |bind: &str| {
        let mut c = model_registry::Config::with_bind(bind.parse().unwrap());
        c.database_url = Some(url.clone());
        c
    };
    let config_b = |a: &model_registry::Server| {
        let mut c = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
        c.issuer = Some(a.url());
        c.jwks_url = Some(format!("{}/.well-known/jwks.json", a.url()));
        c.database_url = Some(url.clone());
        c
    };
    let a = model_registry::start(config_a("127.0.0.1:0")).await.unwrap();
    let b = model_registry::start(config_b(&a)).await.unwrap();
    assert!(b.token_service.is_none(), "B only verifies");
    assert!(b.revocation_feed.as_ref().unwrap().is_current());
    let ready: serde_json::Value = http()
        .get(format!("{}/readyz", b.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["revocations"], "current");
    assert_eq!(ready["ready"], true, "{ready}");

    let revoked = demo_token(&a, "viewer-client", None).await;
    let by_cli = demo_token(&a, "admin-client", None).await;
    let control = demo_token(&a, "analyst-client", None).await;
    for t in [&revoked, &by_cli, &control] {
        assert_eq!(get_me(&b.url(), t).await, 200, "A's token works at B");
    }

    // Revoked through A's /revoke: B refuses it within one second.
    revoke_own(&a.url(), &a, "viewer-client", &revoked).await;
    let took = eventually_async("B refuses it within 1 s", Duration::from_secs(1), || async {
        match get_me(&b.url(), &revoked).await {
            StatusCode::UNAUTHORIZED => true,
            s => {
                assert_eq!(s, 200, "before the revocation arrives, the token still works");
                false
            }
        }
    })
    .await;
    eprintln!("two instances: B refused the token {took:?} after A's /revoke answered");
    assert_eq!(get_me(&a.url(), &revoked).await, 401);

    // Every token of a subject, through the CLI's code path (same database, A's issuer).
    let families = model_registry::revoke_subject(&config_a(&a.addr.to_string()), "admin-client")
        .await
        .unwrap();
    assert_eq!(families, 0, "client-credentials tokens have no family");
    eventually_async(
        "B refuses the subject within 1 s",
        Duration::from_secs(1),
        || async { get_me(&b.url(), &by_cli).await == 401 },
    )
    .await;
    // The CLI wrote it, not A: A too learns of it through its feed, not at once.
    eventually_async(
        "A refuses the subject within 1 s",
        Duration::from_secs(1),
        || async { get_me(&a.url(), &by_cli).await == 401 },
    )
    .await;
    assert_eq!(get_me(&b.url(), &control).await, 200);

    // Both stop; both start again on the same database (A on the same address: same issuer).
    let a_addr = a.addr.to_string();
    b.stop().await;
    a.stop().await;
    let a = model_registry::start(config_a(&a_addr)).await.unwrap();
    let b = model_registry::start(config_b(&a)).await.unwrap();
    assert_eq!(get_me(&b.url(), &control).await, 200, "the same keys and issuer");
    assert_eq!(
        get_me(&b.url(), &revoked).await,
        401,
        "still refused after a restart"
    );
    assert_eq!(get_me(&b.url(), &by_cli).await, 401);
    assert_eq!(get_me(&a.url(), &revoked).await, 401);
    // Kept until the token's exp: the row's expiry is the token's.
    let exp = {
        use base64::Engine as _;
        let payload = revoked.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["exp"].as_u64().unwrap()
    };
    let store = PostgresRevocationStore::connect(&url).await.unwrap();
    let rows = store.load(now()).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| matches!(r, Revocation::Token { expires_at, .. } if *expires_at == exp)),
        "{rows:?}"
    );
    assert!(
        store
            .load(exp)
            .await
            .unwrap()
            .iter()
            .all(|r| r.expires_at() > exp)
    );
    b.stop().await;
    a.stop().await;
}
