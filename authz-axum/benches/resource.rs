//! The declarative resource check (`#[authorize]`) against the same check written by hand in
//! a handler, both loading the resource from SQLite, in one run:
//! `cargo bench -p authz-axum --features sqlx --bench resource`.
//!
//! Both routers sit behind the same `AuthLayer` (HS256 token, verified-token cache hit) and
//! the same permission guard, load the same row by the path's id and answer the same JSON;
//! `load_only` is the query alone, so "overhead beyond the load" can be read off. The rule is
//! the IDOR one: same tenant, and the owner or `report:read_any`. The same three over an
//! in-memory map show the check's own cost without SQLite's thread hop and its noise.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authz_axum::Authenticator;
use authz_axum::core::jwt::ClaimMapping;
use authz_axum::core::{Catalog as _, Policy, Principal as CorePrincipal, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::resource::Load;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tower::ServiceExt as _;

authz_axum::catalog! { pub struct Catalog { permissions: ["report:read", "report:read_any"] } }

#[derive(Clone, serde::Serialize, authz_axum::Resource)]
#[resource(type = "report", owner = owner, tenant = tenant)]
struct Report {
    id: String,
    owner: String,
    tenant: String,
    title: String,
}

/// The same rows in SQLite, or in a map (to see the check's own cost without the I/O noise).
#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Memory(Arc<std::collections::HashMap<String, Report>>),
}

impl Db {
    async fn report(&self, id: &str) -> Result<Option<Report>, sqlx::Error> {
        let pool = match self {
            Db::Sqlite(pool) => pool,
            Db::Memory(map) => return Ok(map.get(id).cloned()),
        };
        sqlx::query("SELECT id, owner, tenant, title FROM reports WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| {
                Ok(Report {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    tenant: r.try_get("tenant")?,
                    title: r.try_get("title")?,
                })
            })
            .transpose()
    }
}

impl Load<Db> for Report {
    type Id = String;
    type Error = sqlx::Error;
    async fn load(db: &Db, id: String, _: &CorePrincipal) -> Result<Option<Self>, sqlx::Error> {
        db.report(&id).await
    }
}

#[require_permission("report:read")]
#[authorize(visible = owner_or("report:read_any"))]
async fn declarative(Authorized(report): Authorized<Report>) -> Json<Report> {
    Json(report)
}

/// The same rule, written in the handler the way the example did before `#[authorize]`.
#[require_permission("report:read")]
async fn handwritten(principal: Principal, State(db): State<Db>, Path(id): Path<String>) -> Response {
    match db.report(&id).await {
        Ok(Some(r))
            if Some(r.tenant.as_str()) == principal.tenant()
                && (r.owner == principal.subject() || principal.can(Catalog::REPORT_READ_ANY)) =>
        {
            Json(r).into_response()
        }
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn resource(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("authz-bench-resource-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("reports.db");
    let _ = std::fs::remove_file(&file);
    let db = rt.block_on(async {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE reports (id TEXT PRIMARY KEY, owner TEXT NOT NULL, tenant TEXT NOT NULL, title TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        for i in 0..1000 {
            sqlx::query("INSERT INTO reports (id, owner, tenant, title) VALUES ($1, $2, $3, $4)")
                .bind(format!("r{i}"))
                .bind(if i % 2 == 0 { "ada" } else { "bob" })
                .bind(if i % 3 == 0 { "acme" } else { "globex" })
                .bind(format!("report {i}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        Db::Sqlite(pool)
    });
    let memory = Db::Memory(Arc::new(
        (0..1000)
            .map(|i| {
                let r = Report {
                    id: format!("r{i}"),
                    owner: (if i % 2 == 0 { "ada" } else { "bob" }).into(),
                    tenant: (if i % 3 == 0 { "acme" } else { "globex" }).into(),
                    title: format!("report {i}"),
                };
                (r.id.clone(), r)
            })
            .collect(),
    ));

    let policy = Arc::new(
        Policy::builder(Arc::new(Catalog::catalog().clone()))
            .role(RoleSpec::new("member").grant("report:read"))
            .build()
            .unwrap(),
    );
    let issuer = support::issuer().with_mapping(ClaimMapping::default().tenant_from("tenant").unwrap());
    let auth = Arc::new(Authenticator::builder(policy).issuer(issuer).build().unwrap());
    // Ada, tenant acme: r0 is hers and in acme (i % 2 == 0, i % 3 == 0).
    let token = support::hs256(
        &serde_json::json!({"iss": "https://bench.test", "aud": "bench", "sub": "ada", "tenant": "acme",
                            "exp": 4_102_444_800u64, "roles": ["member"]}),
    );
    let routes = axum::Router::new()
        .route("/declarative/{id}", axum::routing::get(declarative))
        .route("/handwritten/{id}", axum::routing::get(handwritten))
        .layer(AuthLayer::new(auth));
    let router = routes.clone().with_state(db.clone());
    let in_memory = routes.with_state(memory.clone());
    let request = |path: &'static str| {
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Both answer the same: 200 for Ada's report, 404 for Bob's (r1) and another tenant's.
    for (path, want) in [
        ("/declarative/r0", 200),
        ("/handwritten/r0", 200),
        ("/declarative/r1", 404),
        ("/handwritten/r1", 404),
        ("/declarative/r4", 404),
        ("/handwritten/r4", 404),
    ] {
        let status = rt
            .block_on(router.clone().oneshot(request(path)))
            .unwrap()
            .status();
        assert_eq!(status, want, "{path}");
    }

    // Each measured request follows one request of the other kind (not measured), so the two
    // see the same history (SQLite's worker thread, the runtime's wake-ups): what differs is
    // the route alone.
    let interleaved = |r: &axum::Router, measured: &'static str, other: &'static str, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            rt.block_on(r.clone().oneshot(request(other))).unwrap();
            let start = Instant::now();
            let resp = rt
                .block_on(r.clone().oneshot(black_box(request(measured))))
                .unwrap();
            total += start.elapsed();
            black_box(resp);
        }
        total
    };
    for (group, r, store) in [
        ("resource/sqlite_owner_or_read_any", &router, &db),
        ("resource/memory_owner_or_read_any", &in_memory, &memory),
    ] {
        let mut g = c.benchmark_group(group);
        g.bench_function("load_only", |b| {
            b.iter(|| rt.block_on(store.report(black_box("r0"))).unwrap())
        });
        g.bench_function("handwritten_in_handler", |b| {
            b.iter_custom(|iters| interleaved(r, "/handwritten/r0", "/declarative/r0", iters))
        });
        g.bench_function("declarative_authorize", |b| {
            b.iter_custom(|iters| interleaved(r, "/declarative/r0", "/handwritten/r0", iters))
        });
        g.finish();
    }
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, resource);
criterion_main!(benches);
