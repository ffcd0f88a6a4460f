//! The verified-key cache (issue #18): a cached key is refused the moment it is revoked, its
//! rotation overlap ends or it expires (manual clock); two instances on one database — a change
//! at one is refused by the other within a second on PostgreSQL (LISTEN/NOTIFY; also over HTTP
//! between two model-registry servers), after one poll on SQLite; a lost feed switches the cache off; the
//! TTL bounds what no feed delivered; a silent partition of the feed (a proxy that stops
//! forwarding without closing) is noticed by its heartbeat; nothing of a key in `Debug` or the logs.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::apikey::{self, ApiKeyError, ApiKeyFormat};
use authz_axum::core::auth::KeyCacheConfig;
use authz_axum::core::clock::{Clock, ManualClock};
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::sql::revocations::FeedConfig;
use authz_axum::sql::{self, KeyDatabase, SqliteKeyStore};
use authz_axum::{ApiKeys, AuthError};
use serde_json::{Value, json};

use crate::common::{PartitionProxy, captured_logs, demo_token, http, init_tracing, remember_secret};
use crate::revocation::{eventually, eventually_async, fresh_database, pg_url};

fn policy() -> Arc<Policy> {
    let catalog = Arc::new(PermissionCatalog::new(["data:read"]).unwrap());
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .build()
            .unwrap(),
    )
}

fn temp_sqlite(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("authz-keycache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("keys.db").display())
}

fn keys_over(store: Arc<dyn KeyStore>, clock: &ManualClock) -> Arc<ApiKeys> {
    ApiKeys::with_clock(ApiKeyFormat::default(), store, policy(), Arc::new(clock.clone()))
}

/// A new viewer key: (raw key, id).
async fn new_key(keys: &ApiKeys, expires_at: Option<u64>) -> (String, String) {
    let issued = keys
        .create("bot", vec!["viewer".into()], expires_at, None)
        .await
        .unwrap();
    remember_secret(issued.key.expose_raw());
    (issued.key.expose_raw().to_string(), issued.record.id)
}

fn refused(r: Result<authz_axum::core::Principal, AuthError>, why: ApiKeyError) -> bool {
    matches!(r, Err(AuthError::InvalidApiKey(e)) if e == why)
}

/// Presents `key` until a check is answered from memory (the first reads the store; with a
/// database, the feed's own announcement of an earlier change to the key may still arrive and
/// evict it once more).
async fn cached(keys: &ApiKeys, key: &str) {
    eventually_async("answered from the cache", Duration::from_secs(2), || async {
        let hits = keys.cache().stats().hits;
        keys.authenticate(key).await.unwrap();
        keys.cache().stats().hits == hits + 1
    })
    .await;
}

/// What every store must do with a serving cache: revocation, rotation overlap end and expiry
/// all refuse a cached key at once; a wrong secret under a cached id is refused; last use is
/// recorded for cached checks; the TTL sends a check back to the store.
async fn lifecycle(keys: Arc<ApiKeys>, clock: ManualClock) {
    assert!(keys.cache().is_serving());
    let t = clock.unix_seconds();

    let (key, id) = new_key(&keys, None).await;
    cached(&keys, &key).await;
    assert!(keys.revoke(&id).await.unwrap());
    assert!(
        refused(keys.authenticate(&key).await, ApiKeyError::Revoked),
        "refused at once after the revocation"
    );

    // A wrong secret under a cached id, with a valid checksum.
    let (good, gid) = new_key(&keys, None).await;
    cached(&keys, &good).await;
    let other = ApiKeyFormat::default().generate();
    let body = format!("azk_{gid}_{}", &other.expose_raw()[4 + 17..4 + 17 + 43]);
    let forged = format!("{body}{}", apikey::checksum(&body));
    assert!(refused(keys.authenticate(&forged).await, ApiKeyError::Mismatch));
    assert!(keys.authenticate(&good).await.is_ok());

    // Rotation: the old key works through the overlap (from the cache), then stops.
    let (old, old_id) = new_key(&keys, None).await;
    cached(&keys, &old).await;
    let rotated = keys
        .rotate(&old_id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    remember_secret(rotated.key.expose_raw());
    cached(&keys, &old).await;
    cached(&keys, rotated.key.expose_raw()).await;
    clock.advance(Duration::from_secs(9));
    cached(&keys, &old).await;
    clock.advance(Duration::from_secs(1));
    assert!(
        refused(keys.authenticate(&old).await, ApiKeyError::Expired),
        "the overlap is over"
    );
    assert!(keys.authenticate(rotated.key.expose_raw()).await.is_ok());

    // Expiry on the manual clock.
    let now = clock.unix_seconds();
    let (short, _) = new_key(&keys, Some(now + 5)).await;
    cached(&keys, &short).await;
    clock.advance(Duration::from_secs(4));
    cached(&keys, &short).await;
    clock.advance(Duration::from_secs(1));
    assert!(refused(keys.authenticate(&short).await, ApiKeyError::Expired));

    // Last use is recorded for cached checks too (the latest one).
    let (used, used_id) = new_key(&keys, None).await;
    cached(&keys, &used).await;
    clock.advance(Duration::from_secs(3));
    cached(&keys, &used).await;
    keys.flush_last_used().await.unwrap();
    let record = keys.store().get(&used_id).await.unwrap().unwrap();
    assert_eq!(record.last_used_at, Some(clock.unix_seconds()));

    // The TTL (30 s by default): after it the store is read again.
    let misses = keys.cache().stats().misses;
    clock.advance(Duration::from_secs(30));
    keys.authenticate(&used).await.unwrap();
    assert_eq!(
        keys.cache().stats().misses,
        misses + 1,
        "past the TTL: read again"
    );
    cached(&keys, &used).await;
    assert!(clock.unix_seconds() > t);
}

#[tokio::test]
async fn a_cached_key_stops_at_once_when_revoked_rotated_or_expired_in_memory() {
    let clock = ManualClock::starting_now();
    let keys = keys_over(Arc::new(MemoryKeyStore::new()), &clock);
    lifecycle(keys, clock).await;
}

#[tokio::test]
async fn a_cached_key_stops_at_once_when_revoked_rotated_or_expired_over_sqlite() {
    let clock = ManualClock::starting_now();
    let db = sql::open(&temp_sqlite("lifecycle")).await.unwrap();
    let keys = keys_over(db.store(), &clock);
    assert!(
        !keys.cache().is_serving(),
        "a shared store: no cache until a feed follows it"
    );
    let feed = db.follow(&keys, FeedConfig::default()).await;
    assert!(feed.is_current());
    lifecycle(keys.clone(), clock).await;
    feed.stop().await;
    assert!(!keys.cache().is_serving(), "nothing follows the store any more");
}

#[tokio::test]
async fn a_cached_key_stops_at_once_when_revoked_rotated_or_expired_over_postgres() {
    let Some(server) = pg_url("key-cache lifecycle") else {
        return;
    };
    let url = fresh_database(&server, "keycache_life").await;
    let clock = ManualClock::starting_now();
    let db = sql::open(&url).await.unwrap();
    let keys = keys_over(db.store(), &clock);
    let feed = db.follow(&keys, FeedConfig::default()).await;
    assert!(feed.is_current());
    lifecycle(keys, clock).await;
    feed.stop().await;
}

/// Two instances on one database: a revocation, a rotation with no overlap, the end of a
/// rotation's overlap (manual clock) and a plain SQL edit at one are refused by the other
/// `within`, each after being cached there.
async fn two_instances(
    a: Arc<ApiKeys>,
    b: Arc<ApiKeys>,
    clock: &ManualClock,
    within: Duration,
    edit: impl AsyncFn(&str),
) {
    let (key, id) = new_key(&a, None).await;
    cached(&b, &key).await;
    a.revoke(&id).await.unwrap();
    let took = eventually_async("B refuses a key revoked at A", within, || async {
        match b.authenticate(&key).await {
            Ok(_) => false,
            r => {
                assert!(refused(r, ApiKeyError::Revoked));
                true
            }
        }
    })
    .await;
    eprintln!("verified-key cache: B refused the key {took:?} after A's revoke returned");

    let (old, old_id) = new_key(&a, None).await;
    cached(&b, &old).await;
    let rotated = a.rotate(&old_id, Duration::ZERO).await.unwrap().unwrap();
    remember_secret(rotated.key.expose_raw());
    eventually_async("B refuses the rotated-out key", within, || async {
        b.authenticate(&old).await.is_err()
    })
    .await;
    assert!(b.authenticate(rotated.key.expose_raw()).await.is_ok());

    // A rotation with an overlap: B keeps the old key through it, and refuses it at its end.
    let (old, old_id) = new_key(&a, None).await;
    cached(&b, &old).await;
    let rotated = a.rotate(&old_id, Duration::from_secs(10)).await.unwrap().unwrap();
    remember_secret(rotated.key.expose_raw());
    assert!(b.authenticate(&old).await.is_ok(), "during the overlap");
    clock.advance(Duration::from_secs(10));
    eventually_async("B refuses it at the overlap's end", within, || async {
        b.authenticate(&old).await.is_err()
    })
    .await;

    // A write by anyone else (the CLI, plain SQL) reaches the cache too.
    let (edited, edited_id) = new_key(&a, None).await;
    cached(&b, &edited).await;
    edit(&edited_id).await;
    eventually_async("B refuses a key revoked by plain SQL", within, || async {
        b.authenticate(&edited).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_see_a_revocation_after_one_poll() {
    init_tracing();
    let url = temp_sqlite("two");
    let clock = ManualClock::starting_now();
    let (da, db) = (sql::open(&url).await.unwrap(), sql::open(&url).await.unwrap());
    let (a, b) = (keys_over(da.store(), &clock), keys_over(db.store(), &clock));
    let (fa, fb) = (
        da.follow(&a, FeedConfig::default()).await,
        db.follow(&b, FeedConfig::default()).await,
    );
    let cli = SqliteKeyStore::connect(&url).await.unwrap();
    let at = clock.unix_seconds();
    // One poll interval (500 ms) in practice; the bound leaves room for a loaded machine.
    two_instances(a, b.clone(), &clock, Duration::from_secs(2), async |id: &str| {
        sqlx::query("UPDATE authz_api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(at as i64)
            .bind(id)
            .execute(cli.pool())
            .await
            .unwrap();
    })
    .await;
    assert!(fb.status().applied() >= 3);
    fa.stop().await;
    fb.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_see_a_revocation_within_a_second_and_a_lost_feed_turns_the_cache_off()
{
    init_tracing();
    let Some(server) = pg_url("two-instance key-cache test") else {
        return;
    };
    let url = fresh_database(&server, "keycache_two").await;
    let clock = ManualClock::starting_now();
    let (da, db) = (sql::open(&url).await.unwrap(), sql::open(&url).await.unwrap());
    let (a, b) = (keys_over(da.store(), &clock), keys_over(db.store(), &clock));
    // A heartbeat every 50 ms: notifications keep arriving while the connection is checked.
    let config = FeedConfig::default()
        .retry_delay(Duration::from_millis(100))
        .heartbeat(Duration::from_millis(50));
    let (fa, fb) = (da.follow(&a, config).await, db.follow(&b, config).await);
    let KeyDatabase::Postgres(admin) = sql::open(&url).await.unwrap() else {
        unreachable!()
    };
    let at = clock.unix_seconds();
    two_instances(
        a.clone(),
        b.clone(),
        &clock,
        Duration::from_secs(1),
        async |id: &str| {
            sqlx::query("UPDATE authz_api_keys SET revoked_at = $1 WHERE id = $2")
                .bind(at as i64)
                .bind(id)
                .execute(admin.pool())
                .await
                .unwrap();
        },
    )
    .await;

    // Cut every LISTEN connection (the last statement on one is its LISTEN or a heartbeat's
    // `SELECT 1`; the stores' pools only ever ran other statements here): while the feeds are
    // down nothing is served from memory, so a revocation made meanwhile is refused.
    let (key, id) = new_key(&a, None).await;
    cached(&b, &key).await;
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1') \
         AND pid <> pg_backend_pid()",
    )
    .fetch_all(admin.pool())
    .await
    .unwrap();
    assert_eq!(killed.len(), 2, "one LISTEN connection per instance");
    eventually(
        "B's cache emptied by the lost feed",
        Duration::from_secs(3),
        || b.cache().stats().entries == 0,
    )
    .await;
    // Whether or not B has reconnected yet, it never serves the key once revoked.
    a.revoke(&id).await.unwrap();
    eventually_async("B refuses it", Duration::from_secs(1), || async {
        b.authenticate(&key).await.is_err()
    })
    .await;
    eventually("B follows again", Duration::from_secs(3), || {
        fb.is_current() && b.cache().is_serving()
    })
    .await;
    let (again, _) = new_key(&a, None).await;
    cached(&b, &again).await;
    fa.stop().await;
    fb.stop().await;
}

#[tokio::test]
async fn a_silent_partition_of_the_feed_is_noticed_by_its_heartbeat_and_the_cache_stops_serving() {
    init_tracing();
    let Some(server) = pg_url("key-feed partition test") else {
        return;
    };
    let url = fresh_database(&server, "keycache_partition").await;
    let clock = ManualClock::starting_now();
    let a = keys_over(sql::open(&url).await.unwrap().store(), &clock);
    // B reaches the database through a proxy that can go silent without closing anything.
    let (proxy, through) = PartitionProxy::in_front_of(&url).await;
    let db = KeyDatabase::Postgres(
        sql::PostgresKeyStore::connect_with_timeout(&through, Duration::from_millis(500))
            .await
            .unwrap(),
    );
    let b = keys_over(db.store(), &clock);
    let config = FeedConfig::default()
        .retry_delay(Duration::from_millis(100))
        .heartbeat(Duration::from_millis(100));
    let feed = db.follow(&b, config).await;
    let (key, id) = new_key(&a, None).await;
    cached(&b, &key).await;

    // No FIN, no RST, no notification: only the heartbeat can tell. Until it does the cache
    // would serve for its whole TTL (30 s) whatever A revokes.
    proxy.partition();
    eventually(
        "B's cache switched off by the silent feed",
        Duration::from_secs(5),
        || !b.cache().is_serving(),
    )
    .await;
    a.revoke(&id).await.unwrap();
    assert!(b.authenticate(&key).await.is_err(), "never served once revoked");
    eventually("B follows again", Duration::from_secs(10), || {
        feed.is_current() && b.cache().is_serving()
    })
    .await;
    let (again, _) = new_key(&a, None).await;
    cached(&b, &again).await;
    feed.stop().await;
}

#[tokio::test]
async fn a_shared_store_without_a_feed_is_never_served_from_memory_and_the_ttl_bounds_a_missed_change() {
    let url = temp_sqlite("nofeed");
    let clock = ManualClock::starting_now();
    let store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::connect(&url).await.unwrap());
    let other: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::connect(&url).await.unwrap());
    let keys = keys_over(store, &clock);
    let (key, id) = new_key(&keys, None).await;
    keys.authenticate(&key).await.unwrap();
    keys.authenticate(&key).await.unwrap();
    assert_eq!(
        keys.cache().stats().hits,
        0,
        "no feed: every check reads the store"
    );
    other.revoke(&id, clock.unix_seconds()).await.unwrap();
    assert!(refused(keys.authenticate(&key).await, ApiKeyError::Revoked));

    // A feed that missed a change (resumed by hand, nothing evicting): the entry is trusted
    // for the TTL at most.
    let keys = ApiKeys::with_cache(
        ApiKeyFormat::default(),
        Arc::new(SqliteKeyStore::connect(&url).await.unwrap()),
        policy(),
        Arc::new(clock.clone()),
        KeyCacheConfig::default().ttl(Duration::from_secs(5)),
    );
    keys.cache().resume();
    let (key, id) = new_key(&keys, None).await;
    cached(&keys, &key).await;
    other.revoke(&id, clock.unix_seconds()).await.unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(
        refused(keys.authenticate(&key).await, ApiKeyError::Revoked),
        "past the TTL the store decides"
    );

    // Disabled: nothing is cached.
    let keys = ApiKeys::with_cache(
        ApiKeyFormat::default(),
        Arc::new(MemoryKeyStore::new()),
        policy(),
        Arc::new(clock.clone()),
        KeyCacheConfig::disabled(),
    );
    let (key, _) = new_key(&keys, None).await;
    keys.authenticate(&key).await.unwrap();
    keys.authenticate(&key).await.unwrap();
    let stats = keys.cache().stats();
    assert_eq!((stats.hits, stats.entries, stats.serving), (0, 0, false));
}

#[tokio::test]
async fn nothing_of_a_key_in_debug_or_logs() {
    init_tracing();
    let clock = ManualClock::starting_now();
    let db = sql::open(&temp_sqlite("debug")).await.unwrap();
    let keys = keys_over(db.store(), &clock);
    let feed = db.follow(&keys, FeedConfig::default()).await;
    let (key, id) = new_key(&keys, None).await;
    cached(&keys, &key).await;
    keys.revoke(&id).await.unwrap();
    let secret = &key[4 + 17..];
    for shown in [
        format!("{keys:?}"),
        format!("{:?}", keys.cache()),
        format!("{:?}", keys.cache().stats()),
        format!("{feed:?}"),
        format!("{db:?}"),
        captured_logs(),
    ] {
        assert!(!shown.contains(secret), "key material in {shown}");
    }
    assert!(format!("{keys:?}").contains("hits"), "the counters are shown");
    feed.stop().await;
}

/// Two model-registry servers on one PostgreSQL, over HTTP: a key made and revoked at A is
/// refused by B — which had it cached — within one second.
#[tokio::test]
async fn two_servers_on_one_postgres_refuse_a_revoked_key_within_a_second_over_http() {
    init_tracing();
    let Some(pg) = pg_url("two-server key-cache test") else {
        return;
    };
    let url = fresh_database(&pg, "keycache_http").await;
    let mut ca = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    ca.database_url = Some(url.clone());
    let a = model_registry::start(ca).await.unwrap();
    let mut cb = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    cb.issuer = Some(a.url());
    cb.jwks_url = Some(format!("{}/.well-known/jwks.json", a.url()));
    cb.database_url = Some(url.clone());
    let b = model_registry::start(cb).await.unwrap();
    assert!(b.api_key_feed.as_ref().unwrap().is_current());
    let ready: Value = http()
        .get(format!("{}/readyz", b.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["api_key_cache"], "serving", "{ready}");
    let admin = demo_token(&a, "admin-client", None).await;
    let created: Value = http()
        .post(format!("{}/api-keys", a.url()))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["viewer"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    remember_secret(&key);
    let id = created["id"].as_str().unwrap().to_string();
    let get = |base: String| {
        let key = key.clone();
        async move {
            http()
                .get(format!("{base}/datasets"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(b.url()).await, 200);
    let hits = b.api_keys.cache().stats().hits;
    assert_eq!(get(b.url()).await, 200);
    assert!(b.api_keys.cache().stats().hits > hits, "B answers from its cache");
    let revoked = http()
        .post(format!("{}/api-keys/{id}/revoke", a.url()))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(get(a.url()).await, 401, "A: at once");
    let took = eventually_async("B refuses it within 1 s", Duration::from_secs(1), || async {
        match get(b.url()).await {
            401 => true,
            s => {
                assert_eq!(s, 200, "before the change arrives, the key still works");
                false
            }
        }
    })
    .await;
    eprintln!("two servers: B refused the revoked key {took:?} after A's revoke answered");
    b.stop().await;
    a.stop().await;
}

/// What the auth layer calls: a cached key is answered before the future is awaited (no
/// store read, no boxed future), and stops at once when revoked.
#[tokio::test]
async fn the_layer_path_answers_a_cached_key_at_once_and_stops_at_once() {
    let clock = ManualClock::starting_now();
    let keys = keys_over(Arc::new(MemoryKeyStore::new()), &clock);
    let auth = authz_axum::Authenticator::builder(policy())
        .clock(Arc::new(clock.clone()))
        .api_keys(keys.clone())
        .build()
        .unwrap();
    let (key, id) = new_key(&keys, None).await;
    let first = auth.authenticate(&key);
    assert_eq!(format!("{first:?}"), "Authentication(pending)", "not cached yet");
    assert_eq!(first.await.unwrap().subject(), "bot");
    let cached = auth.authenticate(&key);
    assert_eq!(format!("{cached:?}"), "Authentication(ready)");
    assert_eq!(cached.await.unwrap().subject(), "bot");
    keys.revoke(&id).await.unwrap();
    assert!(matches!(
        auth.authenticate(&key).await,
        Err(AuthError::InvalidApiKey(ApiKeyError::Revoked))
    ));
}
