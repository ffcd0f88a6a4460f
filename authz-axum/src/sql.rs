//! SQLite (embedded default) and PostgreSQL (shared by several instances) key stores, with
//! migrations applied at start-up (feature `sqlx`).
//!
//! Both fail fast: every operation is bounded by the store timeout (default
//! [`DEFAULT_STORE_TIMEOUT`], 3 s: pool acquisition, SQLite's busy wait and the query itself), so
//! a store that cannot answer is a 503 within the bound, never a 30 s hang; the pool reconnects
//! by itself when the database is back. A SQLite file is created only by `connect` at start-up:
//! if it disappears later, every operation fails naming the file — nothing is recreated behind
//! the operator's back. Rotation is one transaction.
//!
//! Every change to a key except its batched `last_used_at` is announced by triggers (migration
//! `0005_api_key_changes.sql`: PostgreSQL `NOTIFY authz_api_keys`, SQLite a row in
//! `authz_api_key_changes`), so that each instance's verified-key cache hears of it:
//! [`open`] and [`KeyDatabase::follow`] (module [`key_changes`]).

pub mod key_changes;
pub mod revocations;

pub use key_changes::{KeyDatabase, KeyFeed, open};

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use authz_core::apikey::{ApiKeyRecord, KeyHash};
use authz_core::keystore::{KeyStore, StoreError, StoreFuture};

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_i64(v: Option<i64>) -> Option<u64> {
    v.map(|v| u64::try_from(v).unwrap_or(0))
}

pub(crate) fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn list_from(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError(format!("corrupt list column: {e}")))
}

/// How long one store operation may take by default (acquire, SQLite busy wait, query).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// `f`, bounded by `timeout`; for SQLite, refused at once if its file is gone.
pub(crate) fn bounded<'a, T: 'a>(
    timeout: Duration,
    file: Option<&'a PathBuf>,
    f: impl Future<Output = Result<T, StoreError>> + Send + 'a,
) -> StoreFuture<'a, T> {
    Box::pin(async move {
        if let Some(file) = file
            && !file.exists()
        {
            return Err(StoreError(format!(
                "the SQLite file {} is gone; restore it (it is not recreated while the service runs)",
                file.display()
            )));
        }
        // A safety net above the store's own bounds (acquire, SQLite busy wait, PostgreSQL
        // statement_timeout), which fail the statement itself: a write reported as failed must
        // not complete later.
        match tokio::time::timeout(timeout * 2, f).await {
            Ok(r) => r,
            Err(_) => Err(StoreError(format!("no answer within {} ms", timeout.as_millis()))),
        }
    })
}

const COLUMNS: &str = "id, owner, roles, scopes, key_hash, created_at, expires_at, last_used_at, revoked_at, description, rotated_from, tenant";
const INSERT: &str = "INSERT INTO authz_api_keys (id, owner, roles, scopes, key_hash, created_at, expires_at, \
                      last_used_at, revoked_at, description, rotated_from, tenant) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The same store over two databases: the SQL is shared (`$n` placeholders work in both).
macro_rules! sql_store {
    ($name:ident, $db:ty, $pool:ty, $open:path, $migrations:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            timeout: Duration,
            file: Option<PathBuf>,
        }

        impl $name {
            /// Connects to `url` and applies the migrations, every operation bounded by
            /// [`DEFAULT_STORE_TIMEOUT`].
            pub async fn connect(url: &str) -> Result<Self, StoreError> {
                Self::connect_with_timeout(url, DEFAULT_STORE_TIMEOUT).await
            }

            /// Like [`connect`](Self::connect), bounding every operation by `timeout`.
            pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
                let (pool, file) = $open(url, timeout).await?;
                let mut store = Self::from_pool(pool).await?;
                store.timeout = timeout;
                store.file = file;
                Ok(store)
            }

            /// Uses an existing pool, applying the migrations.
            pub async fn from_pool(pool: $pool) -> Result<Self, StoreError> {
                sqlx::migrate!($migrations).run(&pool).await.map_err(|e| StoreError(e.to_string()))?;
                Ok(Self {
                    pool,
                    timeout: DEFAULT_STORE_TIMEOUT,
                    file: None,
                })
            }

            fn op<'a, T: 'a>(
                &'a self,
                f: impl Future<Output = Result<T, StoreError>> + Send + 'a,
            ) -> StoreFuture<'a, T> {
                bounded(self.timeout, self.file.as_ref(), f)
            }

            /// The pool (for tests and administration).
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// The one INSERT of a record (creation and rotation).
            fn insert_query(r: &ApiKeyRecord) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments<'static>> {
                sqlx::query(INSERT)
                    .bind(r.id.clone())
                    .bind(r.owner.clone())
                    .bind(list_json(&r.roles))
                    .bind(list_json(&r.scopes))
                    .bind(r.hash.as_bytes().to_vec())
                    .bind(to_i64(r.created_at))
                    .bind(r.expires_at.map(to_i64))
                    .bind(r.last_used_at.map(to_i64))
                    .bind(r.revoked_at.map(to_i64))
                    .bind(r.description.clone())
                    .bind(r.rotated_from.clone())
                    .bind(r.tenant.clone())
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
                    tenant: row.try_get("tenant").map_err(db_err)?,
                })
            }
        }

        impl KeyStore for $name {
            /// `SELECT 1` within the bound (the default's lookup of an id with a NUL byte is an
            /// error in PostgreSQL, which made a healthy store look down).
            fn ping(&self) -> StoreFuture<'_, ()> {
                self.op(async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
                    Ok(())
                })
            }

            fn insert(&self, r: ApiKeyRecord) -> StoreFuture<'_, ()> {
                self.op(async move {
                    Self::insert_query(&r)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(())
                })
            }

            fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
                self.op(async move {
                    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM authz_api_keys WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db_err)?;
                    row.as_ref().map(Self::row).transpose()
                })
            }

            fn list(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>> {
                self.op(async move {
                    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM authz_api_keys ORDER BY created_at DESC, id"))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db_err)?;
                    rows.iter().map(Self::row).collect()
                })
            }

            fn revoke<'a>(&'a self, id: &'a str, at: u64) -> StoreFuture<'a, bool> {
                self.op(async move {
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
                self.op(async move {
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

            fn rotate<'a>(&'a self, new: ApiKeyRecord, old_id: &'a str, old_expires_by: u64) -> StoreFuture<'a, bool> {
                self.op(async move {
                    // One transaction: a crash leaves the key either rotated or not.
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
                    let moved = sqlx::query(
                        "UPDATE authz_api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $2 \
                         THEN $2 ELSE expires_at END WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(old_id)
                    .bind(to_i64(old_expires_by))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if moved.rows_affected() == 0 {
                        return Ok(false);
                    }
                    Self::insert_query(&new)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(true)
                })
            }

            fn touch<'a>(&'a self, used: &'a [(String, u64)]) -> StoreFuture<'a, ()> {
                self.op(async move {
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

/// Opens a SQLite pool: the file is created here (at start-up) if missing, and never by a
/// pooled connection later.
/// Whether a SQLite URL names an in-memory database, by what sqlx made of it: `sqlite::memory:`
/// (sqlx names it `file:sqlx-in-memory-N`) or any URL with `mode=memory`. Not by a substring
/// of the URL: `sqlite:///srv/memory/keys.db` is a file.
pub(crate) fn sqlite_in_memory(url: &str, filename: &std::path::Path) -> bool {
    let name = filename.to_string_lossy();
    name.is_empty()
        || name == ":memory:"
        || name.starts_with("file:sqlx-in-memory-")
        || url.split_once('?').is_some_and(|(_, query)| {
            url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "mode" && v == "memory")
        })
}

pub(crate) async fn open_sqlite(
    url: &str,
    timeout: Duration,
) -> Result<(sqlx::SqlitePool, Option<PathBuf>), StoreError> {
    use sqlx::ConnectOptions as _;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let options: SqliteConnectOptions = url.parse().map_err(db_err)?;
    // WAL: one sync per commit instead of two, and readers never wait for a writer
    // (`synchronous` stays FULL, so a committed write is durable). Measured in BENCHMARKS.md
    // ("Token endpoint vs oidc-provider"): 2.9× the refresh-rotation rate of the rollback
    // journal. In-memory databases keep their own journal.
    let options = options
        .busy_timeout(timeout)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let path = options.get_filename().to_path_buf();
    let on_disk = !sqlite_in_memory(url, &path);
    if on_disk && !path.exists() {
        let conn = options
            .clone()
            .create_if_missing(true)
            .connect()
            .await
            .map_err(|e| StoreError(format!("cannot create {}: {e}", path.display())))?;
        sqlx::Connection::close(conn).await.map_err(db_err)?;
    }
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(timeout)
        .connect_with(options.create_if_missing(false))
        .await
        .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
    Ok((pool, on_disk.then_some(path)))
}

pub(crate) async fn open_postgres(
    url: &str,
    timeout: Duration,
) -> Result<(sqlx::PgPool, Option<PathBuf>), StoreError> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(db_err)?;
    // The server aborts a statement that runs longer than the bound.
    let options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(db_err)?;
    Ok((pool, None))
}

sql_store!(
    SqliteKeyStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    open_sqlite,
    "./migrations/sqlite",
    "API keys in a SQLite file (created at start-up if missing, never afterwards)."
);

sql_store!(
    PostgresKeyStore,
    sqlx::Postgres,
    sqlx::PgPool,
    open_postgres,
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
