//! The registry's domain — datasets, models, reports, payments — in a real database: the
//! SQLite file or PostgreSQL server `AUTHZ_DATABASE_URL` names (the same one as API keys and
//! the token service), or an in-memory SQLite database when none is named. Tables are created
//! on first use.
//!
//! Each type says which of its fields is the owner and the tenant (`#[derive(Resource)]`), and
//! how it is loaded by id ([`Load`]); the handlers declare their rules with `#[authorize]` and
//! never compare an owner or a tenant themselves.

use std::str::FromStr;
use std::time::Duration;

use authz_axum::core::Principal as CorePrincipal;
use authz_axum::resource::Load;
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::StartError;
use crate::handlers::AppState;

/// The tenant of principals whose credential names none (`AUTHZ_DEFAULT_TENANT` overrides).
pub const DEFAULT_TENANT: &str = "default";

/// A dataset.
#[derive(Clone, Debug, Serialize, authz_axum::Resource)]
#[resource(type = "dataset", owner = owner, tenant = tenant)]
pub struct Dataset {
    /// Random UUID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Who created it (`sub`).
    pub owner: String,
    /// Its tenant.
    pub tenant: String,
}

/// A model.
#[derive(Clone, Debug, Serialize, authz_axum::Resource)]
#[resource(type = "model", owner = owner, tenant = tenant)]
pub struct Model {
    /// Random UUID (the seeded demo models: `m1`, `m2`, `m3`, `acme-m1`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Who registered it.
    pub owner: String,
    /// Its tenant.
    pub tenant: String,
}

/// A report.
#[derive(Clone, Debug, Serialize, authz_axum::Resource)]
#[resource(type = "report", owner = owner, tenant = tenant)]
pub struct Report {
    /// Random UUID.
    pub id: String,
    /// Who wrote it.
    pub owner: String,
    /// Its title.
    pub title: String,
    /// Its tenant.
    pub tenant: String,
}

/// A payment: initiated by one person, approved by another (the two-person rule).
#[derive(Clone, Debug, Serialize, authz_axum::Resource)]
#[resource(type = "payment", tenant = tenant)]
pub struct Payment {
    /// Random UUID.
    pub id: String,
    /// Who initiated it.
    #[serde(rename = "initiator")]
    pub initiated_by: String,
    /// Amount in minor units.
    pub amount: u64,
    /// Who approved it, once approved.
    pub approved_by: Option<String>,
    /// Its tenant.
    pub tenant: String,
}

/// The pool of either database.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite (a file, or memory).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// The same statement against whichever database `$db` is (`$n` placeholders work in both).
macro_rules! on {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS registry_datasets (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
     owner TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS registry_models (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
     owner TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS registry_reports (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
     owner TEXT NOT NULL, title TEXT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS registry_payments (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, \
     initiated_by TEXT NOT NULL, amount BIGINT NOT NULL, approved_by TEXT, created_at BIGINT NOT NULL)",
];

/// Every statement bounded like the authz stores (a store that does not answer is a 503).
const TIMEOUT: Duration = Duration::from_secs(3);

/// A database error, logged by the caller and answered with 503 (never sent).
#[derive(Debug)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError(e.to_string())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Db {
    /// Connects to `url` (`sqlite://file`, created if missing; `postgres://…`), or to a private
    /// in-memory SQLite database for `None`, and creates the tables and the demo rows.
    pub async fn connect(url: Option<&str>) -> Result<Db, StartError> {
        let err = |e: sqlx::Error| StartError(format!("AUTHZ_DATABASE_URL (registry tables): {e}"));
        let db = match url {
            None => {
                // One connection that never closes: each connection to `:memory:` is its own
                // database.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(TIMEOUT)
                    .connect("sqlite::memory:")
                    .await
                    .map_err(err)?;
                Db::Sqlite(pool)
            }
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(TIMEOUT)
                    .connect(u)
                    .await
                    .map_err(err)?,
            ),
            Some(u) if u.starts_with("sqlite:") => {
                let options = SqliteConnectOptions::from_str(u)
                    .map_err(err)?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(TIMEOUT);
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(8)
                        .acquire_timeout(TIMEOUT)
                        .connect_with(options)
                        .await
                        .map_err(err)?,
                )
            }
            Some(u) => {
                return Err(StartError(format!(
                    "AUTHZ_DATABASE_URL {u:?}: expected sqlite://… or postgres://…"
                )));
            }
        };
        for statement in SCHEMA {
            on!(&db, pool => sqlx::query(statement).execute(pool).await.map(|r| r.rows_affected()))
                .map_err(err)?;
        }
        db.seed()
            .await
            .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL (demo rows): {e}")))?;
        Ok(db)
    }

    /// The demo rows, in both demo tenants (kept if already there).
    async fn seed(&self) -> Result<(), DbError> {
        let t = now();
        for (id, name, tenant) in [
            ("iris", "iris", DEFAULT_TENANT),
            ("acme-sales", "acme sales", crate::issuer::ACME_TENANT),
        ] {
            on!(self, pool => sqlx::query(
                "INSERT INTO registry_datasets (id, tenant, owner, name, created_at) VALUES ($1, $2, 'seed', $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id).bind(tenant).bind(name).bind(t)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        }
        for (id, tenant) in [
            ("m1", DEFAULT_TENANT),
            ("m2", DEFAULT_TENANT),
            ("m3", DEFAULT_TENANT),
            ("acme-m1", crate::issuer::ACME_TENANT),
        ] {
            on!(self, pool => sqlx::query(
                "INSERT INTO registry_models (id, tenant, owner, name, created_at) VALUES ($1, $2, 'seed', $1, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id).bind(tenant).bind(t)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// `SELECT 1`, for readiness.
    pub async fn ping(&self) -> bool {
        on!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected())).is_ok()
    }

    /// Stores a new dataset.
    pub async fn insert_dataset(&self, d: &Dataset) -> Result<(), DbError> {
        on!(self, pool => sqlx::query(
            "INSERT INTO registry_datasets (id, tenant, owner, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&d.id).bind(&d.tenant).bind(&d.owner).bind(&d.name).bind(now())
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The datasets of `tenant`, oldest first.
    pub async fn datasets_in(&self, tenant: &str) -> Result<Vec<Dataset>, DbError> {
        let rows = on!(self, pool => {
            sqlx::query("SELECT id, tenant, owner, name FROM registry_datasets WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok(Dataset { id: r.try_get("id")?, tenant: r.try_get("tenant")?, owner: r.try_get("owner")?, name: r.try_get("name")? }))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })?;
        Ok(rows)
    }

    /// One dataset.
    pub async fn dataset(&self, id: &str) -> Result<Option<Dataset>, DbError> {
        Ok(on!(self, pool => {
            sqlx::query("SELECT id, tenant, owner, name FROM registry_datasets WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| Ok::<_, sqlx::Error>(Dataset { id: r.try_get("id")?, tenant: r.try_get("tenant")?, owner: r.try_get("owner")?, name: r.try_get("name")? }))
                .transpose()
        })?)
    }

    /// Stores a new model.
    pub async fn insert_model(&self, m: &Model) -> Result<(), DbError> {
        on!(self, pool => sqlx::query(
            "INSERT INTO registry_models (id, tenant, owner, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&m.id).bind(&m.tenant).bind(&m.owner).bind(&m.name).bind(now())
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The models of `tenant`, oldest first.
    pub async fn models_in(&self, tenant: &str) -> Result<Vec<Model>, DbError> {
        Ok(on!(self, pool => {
            sqlx::query("SELECT id, tenant, owner, name FROM registry_models WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok(Model { id: r.try_get("id")?, tenant: r.try_get("tenant")?, owner: r.try_get("owner")?, name: r.try_get("name")? }))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })?)
    }

    /// One model.
    pub async fn model(&self, id: &str) -> Result<Option<Model>, DbError> {
        Ok(on!(self, pool => {
            sqlx::query("SELECT id, tenant, owner, name FROM registry_models WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| Ok::<_, sqlx::Error>(Model { id: r.try_get("id")?, tenant: r.try_get("tenant")?, owner: r.try_get("owner")?, name: r.try_get("name")? }))
                .transpose()
        })?)
    }

    /// Stores a new report.
    pub async fn insert_report(&self, r: &Report) -> Result<(), DbError> {
        on!(self, pool => sqlx::query(
            "INSERT INTO registry_reports (id, tenant, owner, title, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.id).bind(&r.tenant).bind(&r.owner).bind(&r.title).bind(now())
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// One report.
    pub async fn report(&self, id: &str) -> Result<Option<Report>, DbError> {
        Ok(on!(self, pool => {
            sqlx::query("SELECT id, tenant, owner, title FROM registry_reports WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| Ok::<_, sqlx::Error>(Report { id: r.try_get("id")?, tenant: r.try_get("tenant")?, owner: r.try_get("owner")?, title: r.try_get("title")? }))
                .transpose()
        })?)
    }

    /// Stores a new payment.
    pub async fn insert_payment(&self, p: &Payment) -> Result<(), DbError> {
        let amount = i64::try_from(p.amount).map_err(|_| DbError("amount too large".into()))?;
        on!(self, pool => sqlx::query(
            "INSERT INTO registry_payments (id, tenant, initiated_by, amount, approved_by, created_at) \
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(&p.id).bind(&p.tenant).bind(&p.initiated_by).bind(amount).bind(now())
        .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// One payment.
    pub async fn payment(&self, id: &str) -> Result<Option<Payment>, DbError> {
        Ok(on!(self, pool => {
            sqlx::query("SELECT id, tenant, initiated_by, amount, approved_by FROM registry_payments WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|r| Ok::<_, sqlx::Error>(Payment {
                    id: r.try_get("id")?,
                    tenant: r.try_get("tenant")?,
                    initiated_by: r.try_get("initiated_by")?,
                    amount: u64::try_from(r.try_get::<i64, _>("amount")?).unwrap_or(0),
                    approved_by: r.try_get("approved_by")?,
                }))
                .transpose()
        })?)
    }

    /// Records `approver`'s approval, once: `false` if it was already approved. The initiator
    /// is excluded here too, so two racing requests cannot slip past the rule.
    pub async fn approve_payment(&self, id: &str, approver: &str) -> Result<bool, DbError> {
        let done = on!(self, pool => sqlx::query(
            "UPDATE registry_payments SET approved_by = $2 \
             WHERE id = $1 AND approved_by IS NULL AND initiated_by <> $2",
        )
        .bind(id).bind(approver)
        .execute(pool).await?.rows_affected());
        Ok(done == 1)
    }
}

// How each resource is loaded by the `{id}` of its route, bounded like every statement here.

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(DbError(format!("no answer within {} ms", TIMEOUT.as_millis()))))
}

impl Load<AppState> for Dataset {
    type Id = String;
    type Error = DbError;
    async fn load(app: &AppState, id: String, _: &CorePrincipal) -> Result<Option<Self>, DbError> {
        bounded(app.inner.db.dataset(&id)).await
    }
}

impl Load<AppState> for Model {
    type Id = String;
    type Error = DbError;
    async fn load(app: &AppState, id: String, _: &CorePrincipal) -> Result<Option<Self>, DbError> {
        bounded(app.inner.db.model(&id)).await
    }
}

impl Load<AppState> for Report {
    type Id = String;
    type Error = DbError;
    async fn load(app: &AppState, id: String, _: &CorePrincipal) -> Result<Option<Self>, DbError> {
        bounded(app.inner.db.report(&id)).await
    }
}

impl Load<AppState> for Payment {
    type Id = String;
    type Error = DbError;
    async fn load(app: &AppState, id: String, _: &CorePrincipal) -> Result<Option<Self>, DbError> {
        bounded(app.inner.db.payment(&id)).await
    }
}
