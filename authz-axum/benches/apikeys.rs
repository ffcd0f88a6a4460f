//! API key verification: `cargo bench -p authz-axum --features sqlx --bench apikeys`.
//!
//! In one run: the format and hash check alone (no store), the full path over the in-memory
//! store, and the full path over a SQLite file (what a deployment does on every request, since
//! each request re-reads the record so that revocation is immediate).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use authz_axum::ApiKeys;
use authz_axum::core::apikey::{self, ApiKeyFormat};
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
use authz_axum::sql::SqliteKeyStore;
use criterion::{Criterion, criterion_group, criterion_main};

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
    let (memory, sqlite, key, record) = rt.block_on(async {
        let memory = ApiKeys::new(format.clone(), Arc::new(MemoryKeyStore::new()), policy.clone());
        let store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::connect(&url).await.unwrap());
        let sqlite = ApiKeys::new(format.clone(), store.clone(), policy.clone());
        let issued = memory
            .create("bench", vec!["analyst".into()], None, None)
            .await
            .unwrap();
        store.insert(issued.record.clone()).await.unwrap();
        (memory, sqlite, issued.key.expose_raw().to_string(), issued.record)
    });
    let mut g = c.benchmark_group("api_key_verify");
    g.bench_function("format_and_hash_only", |b| {
        b.iter(|| {
            let parsed = format.parse(black_box(&key)).unwrap();
            apikey::authenticate(parsed, Some(black_box(&record)), &policy, 1_800_000_000).unwrap()
        })
    });
    g.bench_function("full_path_memory_store", |b| {
        b.iter(|| rt.block_on(memory.authenticate(black_box(&key))).unwrap())
    });
    g.bench_function("full_path_sqlite_store", |b| {
        b.iter(|| rt.block_on(sqlite.authenticate(black_box(&key))).unwrap())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, verification);
criterion_main!(benches);
