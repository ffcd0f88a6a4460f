//! SQLite (embedded default) and PostgreSQL (shared by several instances) key stores, with
//! migrations applied on first use (feature `sqlx`).

use std::future::Future;

use authz_core::apikey::{ApiKeyRecord, KeyHash};
use authz_core::keystore::{KeyStore, StoreError, StoreFuture};

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_i64(v: Option<i64>) -> Option<u64> {
    v.map(|v| u64::try_from(v).unwrap_or(0))
}

fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn list_from(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError(format!("corrupt list column: {e}")))
}

fn box_fut<'a, T>(f: impl Future<Output = Result<T, StoreError>> + Send + 'a) -> StoreFuture<'a, T> {
    Box::pin(f)
}

const COLUMNS: &str = "id, owner, roles, scopes, key_hash, created_at, expires_at, last_used_at, revoked_at, description, rotated_from";

/// The same store over two databases: the SQL is shared (`$n` placeholders work in both).
macro_rules! sql_store {
    ($name:ident, $db:ty, $pool:ty, $options:ty, $prepare:expr, $migrations:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
        }

        impl $name {
            /// Connects to `url` and applies the migrations.
            pub async fn connect(url: &str) -> Result<Self, StoreError> {
                let options: $options = url.parse().map_err(db_err)?;
                let pool = <$pool>::connect_with($prepare(options)).await.map_err(db_err)?;
                Self::from_pool(pool).await
            }

            /// Uses an existing pool, applying the migrations.
            pub async fn from_pool(pool: $pool) -> Result<Self, StoreError> {
                sqlx::migrate!($migrations).run(&pool).await.map_err(|e| StoreError(e.to_string()))?;
                Ok(Self { pool })
            }

            /// The pool (for tests and administration).
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            fn row(row: &<$db as sqlx::Database>::Row) -> Result<ApiKeyRecord, StoreError> {
                use sqlx::Row;
                let hash: Vec<u8> = row.try_get("key_hash").map_err(db_err)?;
                Ok(ApiKeyRecord {
                    id: row.try_get("id").map_err(db_err)?,
                    owner: row.try_get("owner").map_err(db_err)?,
                    roles: list_from(&row.try_get::<String, _>("roles").map_err(db_err)?)?,
                    scopes: list_from(&row.try_get::<String, _>("scopes").map_err(db_err)?)?,
                    hash: KeyHash::from_bytes(&hash).ok_or_else(|| StoreError("corrupt key_hash column".into()))?,
                    created_at: from_i64(Some(row.try_get("created_at").map_err(db_err)?)).unwrap_or(0),
                    expires_at: from_i64(row.try_get("expires_at").map_err(db_err)?),
                    last_used_at: from_i64(row.try_get("last_used_at").map_err(db_err)?),
                    revoked_at: from_i64(row.try_get("revoked_at").map_err(db_err)?),
                    description: row.try_get("description").map_err(db_err)?,
                    rotated_from: row.try_get("rotated_from").map_err(db_err)?,
                })
            }
        }

        impl KeyStore for $name {
            fn insert(&self, r: ApiKeyRecord) -> StoreFuture<'_, ()> {
                box_fut(async move {
                    sqlx::query(&format!(
                        "INSERT INTO authz_api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .bind(&r.id)
                    .bind(&r.owner)
                    .bind(list_json(&r.roles))
                    .bind(list_json(&r.scopes))
                    .bind(r.hash.as_bytes().to_vec())
                    .bind(to_i64(r.created_at))
                    .bind(r.expires_at.map(to_i64))
                    .bind(r.last_used_at.map(to_i64))
                    .bind(r.revoked_at.map(to_i64))
                    .bind(&r.description)
                    .bind(&r.rotated_from)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(())
                })
            }

            fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
                box_fut(async move {
                    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM authz_api_keys WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db_err)?;
                    row.as_ref().map(Self::row).transpose()
                })
            }

            fn list(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>> {
                box_fut(async move {
                    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM authz_api_keys ORDER BY created_at DESC, id"))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db_err)?;
                    rows.iter().map(Self::row).collect()
                })
            }

            fn revoke<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool> {
                box_fut(async move {
                    let done = sqlx::query(
                        "UPDATE authz_api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                    )
                    .bind(id)
                    .bind(to_i64(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn expire_by<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool> {
                box_fut(async move {
                    let done = sqlx::query(
                        "UPDATE authz_api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $2 \
                         THEN $2 ELSE expires_at END WHERE id = $1",
                    )
                    .bind(id)
                    .bind(to_i64(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn touch<'a>(&'a self, used: &'a [(String, u64)]) -> StoreFuture<'a, ()> {
                box_fut(async move {
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
                    for (id, at) in used {
                        sqlx::query(
                            "UPDATE authz_api_keys SET last_used_at = $2 WHERE id = $1 \
                             AND (last_used_at IS NULL OR last_used_at < $2)",
                        )
                        .bind(id)
                        .bind(to_i64(*at))
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    }
                    tx.commit().await.map_err(db_err)
                })
            }
        }
    };
}

sql_store!(
    SqliteKeyStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteConnectOptions,
    |o: sqlx::sqlite::SqliteConnectOptions| o.create_if_missing(true),
    "./migrations/sqlite",
    "API keys in a SQLite file (created and migrated on first use: use `sqlite://path?mode=rwc`)."
);

sql_store!(
    PostgresKeyStore,
    sqlx::Postgres,
    sqlx::PgPool,
    sqlx::postgres::PgConnectOptions,
    |o: sqlx::postgres::PgConnectOptions| o,
    "./migrations/postgres",
    "API keys in PostgreSQL, shared by every instance of a service."
);

/// Connects to the store a URL names: `sqlite:` or `postgres:` / `postgresql:`.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn KeyStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteKeyStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PostgresKeyStore::connect(url).await?))
    } else {
        Err(StoreError(
            "database URL must start with sqlite: or postgres:".into(),
        ))
    }
}
