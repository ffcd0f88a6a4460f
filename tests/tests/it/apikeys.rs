//! API keys: one store test suite run against memory, SQLite and PostgreSQL; the HTTP flow
//! through the model registry; no raw key material in the database.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::ApiKeys;
use authz_axum::core::apikey::{self, ApiKeyFormat, ApiKeyRecord};
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::sql::{PostgresKeyStore, SqliteKeyStore};
use model_registry::{Config, start};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{http, init_tracing, remember_secret};

fn temp_db(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("authz-keys-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.db");
    let url = format!("sqlite://{}", file.display());
    (file, url)
}

fn policy() -> Arc<Policy> {
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "data:write"]).unwrap());
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("writer").inherits("viewer").grant("data:write"))
            .build()
            .unwrap(),
    )
}

/// The same behaviour from every store.
async fn store_suite(store: Arc<dyn KeyStore>) {
    let format = ApiKeyFormat::default();
    let a = format.generate();
    let b = format.generate();
    let mut ra = ApiKeyRecord::new(&a, "alice", vec!["viewer".into()], Some(4_000_000_000));
    ra.scopes = vec!["read".into()];
    ra.description = Some("ci".into());
    let rb = ApiKeyRecord::new(&b, "bob", vec!["viewer".into(), "writer".into()], None);
    store.insert(ra.clone()).await.unwrap();
    store.insert(rb.clone()).await.unwrap();
    assert!(store.insert(ra.clone()).await.is_err(), "duplicate id");
    assert_eq!(store.get(&a.id).await.unwrap().as_ref(), Some(&ra));
    assert_eq!(store.get("nope").await.unwrap(), None);
    assert_eq!(store.list().await.unwrap().len(), 2);
    assert!(store.expire_by(&a.id, 3_000_000_000).await.unwrap());
    assert!(
        store.expire_by(&a.id, 3_500_000_000).await.unwrap(),
        "never moves expiry later"
    );
    assert_eq!(
        store.get(&a.id).await.unwrap().unwrap().expires_at,
        Some(3_000_000_000)
    );
    assert!(store.revoke(&b.id, 1_900_000_000).await.unwrap());
    assert!(store.revoke(&b.id, 1_950_000_000).await.unwrap());
    assert_eq!(
        store.get(&b.id).await.unwrap().unwrap().revoked_at,
        Some(1_900_000_000),
        "first revocation kept"
    );
    assert!(!store.revoke("nope", 1).await.unwrap());
    store
        .touch(&[(a.id.clone(), 100), (b.id.clone(), 50)])
        .await
        .unwrap();
    store.touch(&[(a.id.clone(), 90)]).await.unwrap();
    assert_eq!(
        store.get(&a.id).await.unwrap().unwrap().last_used_at,
        Some(100),
        "last use never goes back"
    );
    // The service on top: verify, revoke, rotate with overlap.
    let keys = ApiKeys::new(ApiKeyFormat::default(), store.clone(), policy());
    let issued = keys
        .create("carol", vec!["writer".into()], None, None)
        .await
        .unwrap();
    let p = keys.authenticate(issued.key.expose_raw()).await.unwrap();
    assert_eq!(p.subject(), "carol");
    assert_eq!(p.auth_method(), authz_axum::core::AuthMethod::ApiKey);
    assert!(
        keys.create("carol", vec!["root".into()], None, None)
            .await
            .is_err(),
        "unknown role"
    );
    assert_eq!(
        store.get(&issued.record.id).await.unwrap().unwrap().last_used_at,
        None,
        "no write on the request path"
    );
    keys.flush_last_used().await.unwrap();
    assert!(
        store
            .get(&issued.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some(),
        "batched write"
    );
    let rotated = keys
        .rotate(&issued.record.id, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rotated.record.rotated_from.as_deref(),
        Some(issued.record.id.as_str())
    );
    assert!(
        keys.authenticate(issued.key.expose_raw()).await.is_ok(),
        "old key valid during the overlap"
    );
    assert!(keys.authenticate(rotated.key.expose_raw()).await.is_ok());
    assert!(keys.revoke(&rotated.record.id).await.unwrap());
    assert!(keys.authenticate(rotated.key.expose_raw()).await.is_err());
    let zero = keys
        .rotate(&issued.record.id, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(
        keys.authenticate(issued.key.expose_raw()).await.is_err(),
        "overlap 0: the old key stops at once"
    );
    assert!(keys.authenticate(zero.key.expose_raw()).await.is_ok());
}

#[tokio::test]
async fn store_suite_memory() {
    store_suite(Arc::new(MemoryKeyStore::new())).await;
}

#[tokio::test]
async fn store_suite_sqlite() {
    let (file, url) = temp_db("suite");
    store_suite(Arc::new(SqliteKeyStore::connect(&url).await.unwrap())).await;
    assert!(file.exists(), "the SQLite file is created on first use");
    // Reopening applies the migrations again without harm and sees the data.
    let again = SqliteKeyStore::connect(&url).await.unwrap();
    assert!(again.list().await.unwrap().len() >= 2);
}

#[tokio::test]
async fn store_suite_postgres() {
    let Ok(url) = std::env::var("AUTHZ_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL store tests: .ci/run sets AUTHZ_TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: PostgreSQL key-store tests (set AUTHZ_TEST_DATABASE_URL=postgres://…)");
        return;
    };
    let store = PostgresKeyStore::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM authz_api_keys")
        .execute(store.pool())
        .await
        .unwrap();
    store_suite(Arc::new(store)).await;
    // A second instance shares the same table.
    let other = PostgresKeyStore::connect(&url).await.unwrap();
    assert!(other.list().await.unwrap().len() >= 2);
}

async fn call(
    server: &model_registry::Server,
    method: Method,
    path: &str,
    bearer: &str,
    body: Value,
) -> reqwest::Response {
    http()
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The status of `GET /datasets` with `credential`.
/// A new viewer API key made through `POST /api-keys` with `admin`'s token: (key, id).
async fn viewer_key(server: &model_registry::Server, admin: &str) -> (String, String) {
    let created: Value = call(
        server,
        Method::POST,
        "/api-keys",
        admin,
        json!({"roles": ["viewer"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    remember_secret(&key);
    (key, created["id"].as_str().unwrap().to_string())
}

async fn datasets(server: &model_registry::Server, credential: &str) -> u16 {
    call(server, Method::GET, "/datasets", credential, json!(null))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_over_http_create_use_rotate_revoke_expire() {
    init_tracing();
    let (file, url) = temp_db("http");
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(url.clone());
    // Expiry is decided by the injected clock: the test moves it instead of sleeping.
    let clock = authz_axum::core::clock::ManualClock::starting_now();
    config.clock = Some(Arc::new(clock.clone()));
    let server = start(config).await.unwrap();
    let admin = crate::common::demo_token(&server, "admin-client", None).await;

    let created = call(
        &server,
        Method::POST,
        "/api-keys",
        &admin,
        json!({"roles": ["analyst"], "owner": "ci-bot"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    remember_secret(&key);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("mr_"));

    // The key feeds the same principal, macros and policy as a JWT.
    let me: Value = call(&server, Method::GET, "/me", &key, json!(null))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["subject"], "ci-bot");
    assert_eq!(me["auth_method"], "api_key");
    assert_eq!(
        call(&server, Method::POST, "/models/m1/run", &key, json!({}))
            .await
            .status(),
        202
    );
    assert_eq!(
        call(&server, Method::POST, "/datasets", &key, json!({}))
            .await
            .status(),
        403
    );

    // Listing never shows secrets or hashes.
    let listed = call(&server, Method::GET, "/api-keys", &admin, json!(null))
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(&id) && !listed.contains(&key[key.len() - 20..]));
    assert!(!listed.contains("hash"));

    // A wrong secret under a valid id (with a correct checksum), a typo, another format, the
    // query string: all 401 with the same answer as a bad JWT.
    let other = ApiKeyFormat::new("mr").unwrap().generate();
    let body = format!("mr_{id}_{}", &other.expose_raw()[3 + 17..3 + 17 + 43]);
    let forged = format!("{body}{}", apikey::checksum(&body));
    let mut typo = key.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    for (name, bad) in [
        ("valid id, wrong secret", forged),
        ("typo", String::from_utf8(typo).unwrap()),
        (
            "another format",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".to_string(),
        ),
        ("truncated", key[..key.len() - 1].to_string()),
    ] {
        let r = call(&server, Method::GET, "/datasets", &bad, json!(null)).await;
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="model-registry", error="invalid_token""#,
            "{name}"
        );
    }
    let q = http()
        .get(format!(
            "{}/datasets?api_key={key}&access_token={key}",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 401);

    // Rotation with an overlap window: both work, then only the new one.
    let rotated: Value = call(
        &server,
        Method::POST,
        &format!("/api-keys/{id}/rotate"),
        &admin,
        json!({"overlap_seconds": 1}),
    )
    .await
    .json()
    .await
    .unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_string();
    remember_secret(&new_key);
    assert_eq!(rotated["replaces"], id.as_str());
    assert_eq!(datasets(&server, &key).await, 200);
    assert_eq!(datasets(&server, &new_key).await, 200);
    // A key that expires in one second.
    let short: Value = call(
        &server,
        Method::POST,
        "/api-keys",
        &admin,
        json!({"roles": ["viewer"], "expires_in": 1}),
    )
    .await
    .json()
    .await
    .unwrap();
    let short_key = short["key"].as_str().unwrap().to_string();
    remember_secret(&short_key);
    assert_eq!(datasets(&server, &short_key).await, 200);
    clock.advance(Duration::from_millis(2100));
    assert_eq!(datasets(&server, &key).await, 401, "overlap over");
    assert_eq!(datasets(&server, &short_key).await, 401, "expired");
    assert_eq!(datasets(&server, &new_key).await, 200);

    // Revocation takes effect on the next request.
    let new_id = rotated["id"].as_str().unwrap();
    assert_eq!(
        call(
            &server,
            Method::POST,
            &format!("/api-keys/{new_id}/revoke"),
            &admin,
            json!({})
        )
        .await
        .status(),
        200
    );
    assert_eq!(datasets(&server, &new_key).await, 401);
    assert_eq!(
        call(&server, Method::POST, "/api-keys/nope/revoke", &admin, json!({}))
            .await
            .status(),
        404
    );
    // Only admins manage keys.
    assert_eq!(
        call(&server, Method::GET, "/api-keys", &short_key, json!(null))
            .await
            .status(),
        401
    );
    server.stop().await;

    // Nothing in the database file, in any column or page, holds key material.
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for k in [&key, &new_key, &short_key] {
        let secret = &k[3 + 17..3 + 17 + 43];
        assert!(!text.contains(secret), "secret found in the SQLite file");
    }
    let store = SqliteKeyStore::connect(&url).await.unwrap();
    let rows = sqlx::query_as::<_, (String, String, String, String)>(
        "SELECT id, owner, roles, COALESCE(description, '') FROM authz_api_keys",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(rows.len() >= 3);
    for row in rows {
        let joined = format!("{row:?}");
        assert!(
            ![&key, &new_key, &short_key]
                .iter()
                .any(|k| joined.contains(&k[3 + 17..]))
        );
    }
}

#[tokio::test]
async fn a_handler_can_require_one_credential_kind() {
    use authz_axum::core::jwt::{Algorithm, JwtVerifier};
    use authz_axum::{AuthLayer, Authenticator, Issuer, Jwt, Principal, StaticKeys, Via};
    init_tracing();
    async fn any(p: Principal) -> String {
        p.subject().to_string()
    }
    async fn jwt_only(via: Via<Jwt>) -> String {
        via.0.subject().to_string()
    }
    let policy = policy();
    let keys = ApiKeys::new(
        ApiKeyFormat::default(),
        Arc::new(MemoryKeyStore::new()),
        policy.clone(),
    );
    let issued = keys
        .create("bot", vec!["viewer".into()], None, None)
        .await
        .unwrap();
    remember_secret(issued.key.expose_raw());
    let signing = crate::common::SigningKey::es256("k1");
    let verifier = JwtVerifier::builder("https://kind.test", "kind", [Algorithm::ES256])
        .build()
        .unwrap();
    let set = signing.key_set();
    let auth = Authenticator::builder(policy)
        .issuer(Issuer::new(verifier, StaticKeys::new(set)))
        .api_keys(keys)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/any", axum::routing::get(any))
        .route("/jwt", axum::routing::get(jwt_only))
        .layer(AuthLayer::new(Arc::new(auth)));
    let base = crate::common::serve(app).await;
    let jwt = signing.sign(&crate::common::claims(
        "https://kind.test",
        "kind",
        "person",
        &["viewer"],
    ));
    let key = issued.key.expose_raw();
    let get = |path: &str, t: &str| {
        http()
            .get(format!("{base}{path}"))
            .bearer_auth(t.to_string())
            .send()
    };
    assert_eq!(get("/any", key).await.unwrap().status(), 200);
    assert_eq!(get("/any", &jwt).await.unwrap().status(), 200);
    assert_eq!(get("/jwt", &jwt).await.unwrap().status(), 200);
    assert_eq!(get("/jwt", key).await.unwrap().status(), 403);
    // A credential with the key prefix is judged only as a key: a JWT-shaped one is not retried.
    assert_eq!(get("/any", &format!("azk_{jwt}")).await.unwrap().status(), 401);
}

// ---- faults: a store that cannot answer, a file that disappears, a rotation cut in half ----

fn sample_key() -> (apikey::GeneratedKey, ApiKeyRecord) {
    let key = ApiKeyFormat::default().generate();
    let record = ApiKeyRecord::new(&key, "owner", vec!["viewer".into()], None);
    (key, record)
}

#[tokio::test]
async fn a_rotation_cut_in_half_leaves_the_key_either_rotated_or_not() {
    let (_file, url) = temp_db("rotate-fault");
    let store = SqliteKeyStore::connect(&url).await.unwrap();
    let keys = ApiKeys::new(ApiKeyFormat::default(), Arc::new(store.clone()), policy());
    let issued = keys
        .create("owner", vec!["viewer".into()], None, None)
        .await
        .unwrap();
    // Fault injection: the second half of the rotation (the new key's insert) fails.
    sqlx::query(
        "CREATE TRIGGER fail_insert BEFORE INSERT ON authz_api_keys BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(
        keys.rotate(&issued.record.id, Duration::from_secs(60))
            .await
            .is_err()
    );
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 1, "no orphan new key");
    assert_eq!(
        all[0].expires_at, None,
        "the old key's expiry was rolled back with the insert"
    );
    sqlx::query("DROP TRIGGER fail_insert")
        .execute(store.pool())
        .await
        .unwrap();
    let rotated = keys
        .rotate(&issued.record.id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|r| r.id == rotated.record.id));
    assert!(
        all.iter()
            .any(|r| r.id == issued.record.id && r.expires_at.is_some())
    );
    // A revoked key is not rotated, and nothing is inserted.
    keys.revoke(&rotated.record.id).await.unwrap();
    assert!(
        keys.rotate(&rotated.record.id, Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list().await.unwrap().len(), 2);
    let (_k, r) = sample_key();
    assert!(!store.rotate(r, "no-such-key", 1).await.unwrap());
    assert_eq!(store.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_vanished_sqlite_file_is_reported_and_never_recreated() {
    let (file, url) = temp_db("vanish");
    let store = SqliteKeyStore::connect(&url).await.unwrap();
    assert!(file.exists(), "created at start-up");
    let (_key, record) = sample_key();
    store.insert(record.clone()).await.unwrap();
    let moved = file.with_extension("moved");
    std::fs::rename(&file, &moved).unwrap();
    for _ in 0..5 {
        let err = store.get(&record.id).await.unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
    assert!(!file.exists(), "nothing recreated behind the operator's back");
    std::fs::rename(&moved, &file).unwrap();
    assert!(
        store.get(&record.id).await.unwrap().is_some(),
        "recovers when the file is back"
    );
    // At start-up a missing file is created; a missing directory is an error naming the path.
    let err = SqliteKeyStore::connect("sqlite:///nonexistent-dir-authz/keys.db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nonexistent-dir-authz"), "{err}");
}

#[tokio::test]
async fn a_locked_sqlite_store_answers_within_the_bound() {
    use sqlx::Connection as _;
    let (file, url) = temp_db("locked");
    let store = SqliteKeyStore::connect_with_timeout(&url, Duration::from_millis(300))
        .await
        .unwrap();
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let (_key, record) = sample_key();
    let outcome = tokio::time::timeout(Duration::from_secs(10), store.insert(record.clone())).await;
    assert!(matches!(outcome, Ok(Err(_))), "an error, not a hang");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    // Once the lock is gone the store writes again. On a loaded machine its next try may still
    // queue behind the refused insert, which sqlx cannot cancel (it waits out SQLite's busy
    // handler) and which may itself land late: so the test asks for the record to be there,
    // within a bounded number of tries, not for one clean insert.
    let mut stored = false;
    for _ in 0..50 {
        if store.insert(record.clone()).await.is_ok() || matches!(store.get(&record.id).await, Ok(Some(_))) {
            stored = true;
            break;
        }
    }
    assert!(stored, "the store writes again once the lock is released");
}

#[tokio::test]
async fn api_keys_answer_503_while_the_store_is_gone_and_recover() {
    init_tracing();
    let (file, url) = temp_db("http-503");
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(url.clone());
    let server = start(config).await.unwrap();
    let admin = crate::common::demo_token(&server, "admin-client", None).await;
    let (key, _) = viewer_key(&server, &admin).await;
    assert_eq!(datasets(&server, &key).await, 200);
    assert_eq!(
        datasets(&server, &key).await,
        200,
        "now in the verified-key cache"
    );
    let moved = file.with_extension("moved");
    std::fs::rename(&file, &moved).unwrap();
    // The cached key keeps working until the change feed's next poll fails (500 ms), which
    // switches the cache off: from then on every check reads the store, and gets 503.
    let retry_after = std::cell::Cell::new(false);
    crate::revocation::eventually_async(
        "503 once the feed notices the outage",
        Duration::from_secs(3),
        || async {
            // `/me` reads no database: a 503 here is the key check's.
            let r = call(&server, Method::GET, "/me", &key, json!(null)).await;
            match r.status().as_u16() {
                503 => {
                    retry_after.set(r.headers().contains_key("retry-after"));
                    true
                }
                s => {
                    assert_eq!(s, 200, "a recently verified key, never a 401 or a 500");
                    false
                }
            }
        },
    )
    .await;
    assert!(retry_after.get());
    assert!(!server.api_keys.cache().is_serving(), "the cache is off");
    assert_eq!(
        datasets(&server, &key).await,
        503,
        "and stays off while the store is gone"
    );
    assert_eq!(
        datasets(&server, &admin).await,
        200,
        "JWTs do not need the key store"
    );
    std::fs::rename(&moved, &file).unwrap();
    assert_eq!(datasets(&server, &key).await, 200, "recovers without a restart");
    crate::revocation::eventually("the cache serves again", Duration::from_secs(3), || {
        server.api_keys.cache().is_serving()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn failed_checks_are_throttled_and_the_right_credential_still_works() {
    init_tracing();
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = None;
    let server = start(config).await.unwrap();
    let admin = crate::common::demo_token(&server, "admin-client", None).await;
    let (key, id) = viewer_key(&server, &admin).await;
    // A misspelt field is refused, not silently ignored (it would mint a viewer key).
    let typo = call(
        &server,
        Method::POST,
        "/api-keys",
        &admin,
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(typo.status(), 400);
    // Wrong secrets under the key's real id, each with a valid checksum.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..200 {
        let other = ApiKeyFormat::new("mr").unwrap().generate();
        let body = format!("mr_{id}_{}", &other.expose_raw()[3 + 17..3 + 17 + 43]);
        let forged = format!("{body}{}", apikey::checksum(&body));
        let r = call(&server, Method::GET, "/datasets", &forged, json!(null)).await;
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    assert_eq!(statuses[0], 401, "the first failures are plain 401s");
    assert_eq!(
        *statuses.last().unwrap(),
        429,
        "the 200th wrong secret is throttled"
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(datasets(&server, &key).await, 200, "the right key still works");
    assert_eq!(
        datasets(&server, &admin).await,
        200,
        "valid callers are unaffected"
    );

    // The token endpoint: wrong client secrets are throttled, the right one is not.
    let client = server.client("viewer-client").unwrap().clone();
    let token = |secret: String| {
        let url = format!("{}/oauth/token", server.url());
        let id = client.id.clone();
        async move {
            http()
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    let mut last = 0;
    for i in 0..200 {
        last = token(format!("wrong-{i}")).await.status().as_u16();
        assert!(last == 401 || last == 429);
    }
    assert_eq!(last, 429);
    assert_eq!(token(client.secret.clone()).await.status(), 200);
    server.stop().await;
}

/// A PostgreSQL server of this test's own (so stopping it disturbs no other test), run as the
/// `postgres` user from the binaries `.ci/postgres.sh` found (`AUTHZ_TEST_PG_BIN`).
struct OwnPostgres {
    bin: String,
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn pg(&self, args: &str) -> bool {
        std::process::Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", &format!("{}/{args}", self.bin)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn init(bin: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("authz-own-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let pg = Self { bin, dir, port };
        assert!(pg.pg(&format!(
            "initdb -D {}/data -A trust -U postgres -E UTF8",
            pg.dir.display()
        )));
        assert!(pg.start());
        pg
    }

    fn start(&self) -> bool {
        self.pg(&format!(
            "pg_ctl -D {0}/data -l {0}/log -w -o '-c listen_addresses=127.0.0.1 -p {1} -k {0}' start",
            self.dir.display(),
            self.port
        ))
    }

    fn stop(&self) -> bool {
        self.pg(&format!(
            "pg_ctl -D {}/data -m immediate -w stop",
            self.dir.display()
        ))
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn postgres_down_is_a_503_within_the_bound_and_recovers_without_a_restart() {
    let Ok(bin) = std::env::var("AUTHZ_TEST_PG_BIN") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL outage test: .ci/postgres.sh sets AUTHZ_TEST_PG_BIN"
        );
        eprintln!("SKIPPED: PostgreSQL outage test (set AUTHZ_TEST_PG_BIN, as .ci/postgres.sh does)");
        return;
    };
    init_tracing();
    let pg = OwnPostgres::init(bin);
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(pg.url());
    let server = start(config).await.unwrap();
    let admin = crate::common::demo_token(&server, "admin-client", None).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        keys.push(viewer_key(&server, &admin).await);
    }
    let (good, _) = keys[0].clone();
    let (revoked, revoked_id) = keys[1].clone();
    let r = call(
        &server,
        Method::POST,
        &format!("/api-keys/{revoked_id}/revoke"),
        &admin,
        json!({}),
    )
    .await;
    assert!(r.status().is_success());
    assert_eq!(datasets(&server, &good).await, 200);
    assert_eq!(datasets(&server, &revoked).await, 401);

    assert!(pg.stop(), "PostgreSQL stopped");
    // `good` is in the verified-key cache: it keeps working until the change feed notices the
    // lost LISTEN connection (at once when the server goes away), then 503 like every key.
    let status = |key: String| {
        let server = &server;
        async move {
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                // `/me` reads no database: a 503 here is the key check's.
                call(server, Method::GET, "/me", &key, json!(null)),
            )
            .await
            .expect("an answer within the store bound, not a hang");
            if r.status() == 503 {
                assert!(r.headers().contains_key("retry-after"));
            }
            r.status().as_u16()
        }
    };
    crate::revocation::eventually_async("503 for the cached key", Duration::from_secs(10), || async {
        match status(good.clone()).await {
            503 => true,
            s => {
                assert_eq!(s, 200, "a recently verified key, never anything else");
                false
            }
        }
    })
    .await;
    for key in [&good, &revoked] {
        assert_eq!(
            status(key.clone()).await,
            503,
            "the store is down: 503, never a pass"
        );
    }
    assert_eq!(
        call(&server, Method::GET, "/me", &admin, json!(null))
            .await
            .status(),
        200,
        "JWTs do not need the key store (`/me` reads no database; `/datasets` does)"
    );

    assert!(pg.start(), "PostgreSQL back");
    let mut status = 0;
    for _ in 0..20 {
        status = datasets(&server, &good).await;
        if status == 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, 200, "recovered without restarting the service");
    assert_eq!(
        datasets(&server, &revoked).await,
        401,
        "revoked stays revoked after the outage"
    );
    server.stop().await;
}
