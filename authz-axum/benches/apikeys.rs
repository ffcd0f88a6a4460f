//! API key verification: `cargo bench -p authz-axum --features sqlx --bench apikeys`
//! (with `AUTHZ_TEST_DATABASE_URL=postgres://…` set, PostgreSQL too).
//!
//! In one run, each through `ApiKeys::authenticate` (what the auth layer calls): the format and
//! hash check alone (no store); the in-memory store with and without the verified-key cache;
//! SQLite and PostgreSQL without the cache (every check reads the store — the behaviour before
//! the cache, and still what a shared store does while its change feed is down) and with it (the
//! change feed following the store: the steady state of a deployment); and, cached, through
//! `Authenticator::authenticate` — exactly what the auth layer calls (a cached key is answered
//! without a boxed future).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use authz_axum::core::apikey::{self, ApiKeyFormat, ApiKeyRecord};
use authz_axum::core::auth::KeyCacheConfig;
use authz_axum::core::clock;
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::sql::revocations::FeedConfig;
use authz_axum::sql::{self, KeyFeed};
use authz_axum::{ApiKeys, Authenticator};
use criterion::{Criterion, criterion_group, criterion_main};

/// The same key over `store`, uncached and cached (with the feed of `db`, if any).
struct Over {
    uncached: Arc<ApiKeys>,
    cached: Arc<ApiKeys>,
    /// Over `cached`.
    authenticator: Authenticator,
    _feed: Option<KeyFeed>,
}

async fn over(
    store: Arc<dyn KeyStore>,
    db: Option<&sql::KeyDatabase>,
    policy: &Arc<Policy>,
    record: &ApiKeyRecord,
) -> Over {
    let format = ApiKeyFormat::default();
    store.insert(record.clone()).await.unwrap();
    let make = |cache| {
        ApiKeys::with_cache(
            format.clone(),
            store.clone(),
            policy.clone(),
            clock::system(),
            cache,
        )
    };
    let uncached = make(KeyCacheConfig::disabled());
    let cached = make(KeyCacheConfig::default());
    let feed = match db {
        Some(db) => Some(db.follow(&cached, FeedConfig::default()).await),
        None => None,
    };
    assert!(cached.cache().is_serving());
    let authenticator = Authenticator::builder(policy.clone())
        .api_keys(cached.clone())
        .build()
        .unwrap();
    Over {
        uncached,
        cached,
        authenticator,
        _feed: feed,
    }
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
            .build()
            .unwrap(),
    );
    let format = ApiKeyFormat::default();
    let dir = std::env::temp_dir().join(format!("authz-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let generated = format.generate();
    let key = generated.expose_raw().to_string();
    let record = ApiKeyRecord::new(&generated, "bench", vec!["analyst".into()], None);
    let (memory, sqlite, postgres) = rt.block_on(async {
        let memory = over(Arc::new(MemoryKeyStore::new()), None, &policy, &record).await;
        let db = sql::open(&url).await.unwrap();
        let sqlite = over(db.store(), Some(&db), &policy, &record).await;
        let postgres = match std::env::var("AUTHZ_TEST_DATABASE_URL") {
            Ok(pg) => {
                let db = sql::open(&pg).await.unwrap();
                Some(over(db.store(), Some(&db), &policy, &record).await)
            }
            Err(_) => {
                eprintln!("PostgreSQL skipped: set AUTHZ_TEST_DATABASE_URL=postgres://…");
                None
            }
        };
        (memory, sqlite, postgres)
    });
    let mut g = c.benchmark_group("api_key_verify");
    g.bench_function("format_and_hash_only", |b| {
        b.iter(|| {
            let parsed = format.parse(black_box(&key)).unwrap();
            apikey::authenticate(parsed, Some(black_box(&record)), &policy, 1_800_000_000).unwrap()
        })
    });
    let mut stores = vec![("memory", &memory), ("sqlite", &sqlite)];
    if let Some(pg) = &postgres {
        stores.push(("postgres", pg));
    }
    for (name, over) in stores {
        g.bench_function(format!("{name}_store_uncached"), |b| {
            b.iter(|| rt.block_on(over.uncached.authenticate(black_box(&key))).unwrap())
        });
        g.bench_function(format!("{name}_store_cached"), |b| {
            b.iter(|| rt.block_on(over.cached.authenticate(black_box(&key))).unwrap())
        });
        g.bench_function(format!("{name}_store_cached_via_authenticator"), |b| {
            b.iter(|| {
                rt.block_on(over.authenticator.authenticate(black_box(&key)))
                    .unwrap()
            })
        });
        let stats = over.cached.cache().stats();
        eprintln!(
            "{name}: cache hits {} misses {} (serving: {})",
            stats.hits, stats.misses, stats.serving
        );
    }
    g.finish();
    drop((memory, sqlite, postgres));
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, verification);
criterion_main!(benches);
