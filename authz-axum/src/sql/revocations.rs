//! The revocation list shared through the database (feature `sqlx`): SQLite for one instance,
//! PostgreSQL for several, and the feed that keeps each instance's in-process
//! [`RevocationList`] current.
//!
//! ```text
//! POST /revoke ─▶ Revocations::revoke ─▶ local list (at once)
//!                                   └──▶ store.record: upsert into authz_revocations
//!                                          PostgreSQL: + NOTIFY authz_revocations (same transaction)
//! every instance: RevocationFeed
//!   start: LISTEN (PostgreSQL), then load every live row into the list (before serving)
//!   PostgreSQL: each notification → list; a lost connection, or one that does not answer its
//!               heartbeat (`SELECT 1` every 5 s) → reconnect, LISTEN, reload all
//!   SQLite: rows with id > last seen, every poll interval (500 ms)
//!   both: purge expired entries (list and table) every purge interval (60 s)
//! ```
//!
//! The table `authz_revocations` (migration `0003_revocations.sql`) holds one row per
//! (kind, issuer, jti-or-subject); recording the same revocation again keeps the larger
//! `issued_before` and `expires_at` and gives the row a new, larger `id`. Rows go once
//! `expires_at` has passed. The feed only ever *adds* to the list (a reload merges, it does not
//! replace): an entry applied locally whose store write failed stays refused here.
//!
//! ```no_run
//! use std::sync::Arc;
//! use authz_axum::core::clock;
//! use authz_axum::core::revocation::{RevocationList, Revocations};
//! use authz_axum::sql::revocations::{self, FeedConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let list = Arc::new(RevocationList::new());
//! let db = revocations::connect("postgres://localhost/app").await?;
//! // Before serving: the list holds every live revocation once this returns (or the feed
//! // reports not current and keeps retrying).
//! let feed = db.follow(list.clone(), clock::system(), FeedConfig::default()).await;
//! let shared = Arc::new(Revocations::shared(list.clone(), db.store()));
//! // … Authenticator::builder(policy).revocations(list), token_service.publish_revocations_to(shared) …
//! feed.stop().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_core::clock::Clock;
use authz_core::keystore::{StoreError, StoreFuture};
use authz_core::revocation::{Revocation, RevocationList, RevocationStore};
use sqlx::Row as _;

use super::{DEFAULT_STORE_TIMEOUT, bounded, db_err, open_postgres, open_sqlite, to_i64};

/// The PostgreSQL channel every write is announced on.
pub const CHANNEL: &str = "authz_revocations";

/// Largest NOTIFY payload sent (PostgreSQL's limit is 8000 bytes); a larger row is announced
/// with an empty object, and listeners reload everything.
const MAX_PAYLOAD: usize = 7000;

const KIND_TOKEN: &str = "token";
const KIND_SUBJECT: &str = "subject";

const COLUMNS: &str = "id, kind, issuer, value, issued_before, expires_at";

/// A row of `authz_revocations`: its `id` and the revocation.
fn parts(r: &Revocation) -> (&'static str, &str, &str, u64, u64) {
    match r {
        Revocation::Token {
            issuer,
            jti,
            expires_at,
        } => (KIND_TOKEN, issuer, jti, 0, *expires_at),
        Revocation::Subject {
            issuer,
            subject,
            issued_before,
            expires_at,
        } => (KIND_SUBJECT, issuer, subject, *issued_before, *expires_at),
    }
}

fn revocation(
    kind: &str,
    issuer: String,
    value: String,
    issued_before: i64,
    expires_at: i64,
) -> Result<Revocation, StoreError> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    match kind {
        KIND_TOKEN => Ok(Revocation::Token {
            issuer,
            jti: value,
            expires_at: u(expires_at),
        }),
        KIND_SUBJECT => Ok(Revocation::Subject {
            issuer,
            subject: value,
            issued_before: u(issued_before),
            expires_at: u(expires_at),
        }),
        other => Err(StoreError(format!(
            "unknown revocation kind {other:?} in authz_revocations"
        ))),
    }
}

/// The NOTIFY payload: the row as JSON.
fn payload(id: i64, r: &Revocation) -> String {
    let (kind, issuer, value, issued_before, expires_at) = parts(r);
    let p = serde_json::json!({
        "id": id,
        "kind": kind,
        "issuer": issuer,
        "value": value,
        "issued_before": issued_before,
        "expires_at": expires_at,
    })
    .to_string();
    if p.len() > MAX_PAYLOAD { "{}".into() } else { p }
}

/// The revocation a NOTIFY payload carries; `None` if it carries none (reload everything).
fn from_payload(p: &str) -> Option<Revocation> {
    let v: serde_json::Value = serde_json::from_str(p).ok()?;
    let i = |k: &str| v.get(k)?.as_i64();
    let s = |k: &str| Some(v.get(k)?.as_str()?.to_string());
    revocation(
        v.get("kind")?.as_str()?,
        s("issuer")?,
        s("value")?,
        i("issued_before")?,
        i("expires_at")?,
    )
    .ok()
}

macro_rules! revocation_store {
    ($name:ident, $db:ty, $pool:ty, $open:path, $migrations:literal, $doc:literal) => {
        #[doc = $doc]
        ///
        /// Every operation is bounded by the store timeout (default [`DEFAULT_STORE_TIMEOUT`]);
        /// errors are [`StoreError`]s naming the cause.
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            timeout: Duration,
            file: Option<PathBuf>,
        }

        impl $name {
            /// Connects to `url` and applies the migrations (the same directory as the API-key
            /// and token stores), every operation bounded by [`DEFAULT_STORE_TIMEOUT`].
            ///
            /// # Errors
            /// The database cannot be reached or migrated.
            pub async fn connect(url: &str) -> Result<Self, StoreError> {
                Self::connect_with_timeout(url, DEFAULT_STORE_TIMEOUT).await
            }

            /// Like [`connect`](Self::connect), bounding every operation by `timeout`.
            ///
            /// # Errors
            /// The database cannot be reached or migrated.
            pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
                let (pool, file) = $open(url, timeout).await?;
                let mut store = Self::from_pool(pool).await?;
                store.timeout = timeout;
                store.file = file;
                Ok(store)
            }

            /// Uses an existing pool, applying the migrations.
            ///
            /// # Errors
            /// The migrations fail.
            pub async fn from_pool(pool: $pool) -> Result<Self, StoreError> {
                sqlx::migrate!($migrations)
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                Ok(Self {
                    pool,
                    timeout: DEFAULT_STORE_TIMEOUT,
                    file: None,
                })
            }

            /// The pool (for tests and administration).
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            fn op<'a, T: 'a>(
                &'a self,
                f: impl Future<Output = Result<T, StoreError>> + Send + 'a,
            ) -> StoreFuture<'a, T> {
                bounded(self.timeout, self.file.as_ref(), f)
            }

            /// Every row with an `id` above `after`, in `id` order, whose tokens have not all
            /// expired at `now`: `(id, revocation)`. `after = 0` reads everything.
            ///
            /// # Errors
            /// The store's.
            pub fn changes_since(&self, after: i64, now: u64) -> StoreFuture<'_, Vec<(i64, Revocation)>> {
                self.op(async move {
                    let rows = sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM authz_revocations WHERE id > $1 AND expires_at > $2 ORDER BY id"
                    ))
                    .bind(after)
                    .bind(to_i64(now))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    rows.iter()
                        .map(|row| {
                            let r = revocation(
                                &row.try_get::<String, _>("kind").map_err(db_err)?,
                                row.try_get("issuer").map_err(db_err)?,
                                row.try_get("value").map_err(db_err)?,
                                row.try_get("issued_before").map_err(db_err)?,
                                row.try_get("expires_at").map_err(db_err)?,
                            )?;
                            Ok((row.try_get("id").map_err(db_err)?, r))
                        })
                        .collect()
                })
            }

            /// The largest `id` ever used (0 for none): where a poller starts.
            ///
            /// # Errors
            /// The store's.
            pub fn last_id(&self) -> StoreFuture<'_, i64> {
                self.op(async move {
                    let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM authz_revocations")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db_err)?;
                    row.try_get::<i64, _>("id").map_err(db_err)
                })
            }
        }

        impl RevocationStore for $name {
            fn record(&self, r: Revocation) -> StoreFuture<'_, ()> {
                self.op(async move { self.upsert(&r).await.map(|_| ()) })
            }

            fn load(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>> {
                Box::pin(async move {
                    Ok(self.changes_since(0, now).await?.into_iter().map(|(_, r)| r).collect())
                })
            }

            fn purge(&self, now: u64) -> StoreFuture<'_, u64> {
                self.op(async move {
                    let done = sqlx::query("DELETE FROM authz_revocations WHERE expires_at <= $1")
                        .bind(to_i64(now))
                        .execute(&self.pool)
                        .await
                        .map_err(db_err)?;
                    Ok(done.rows_affected())
                })
            }
        }
    };
}

revocation_store!(
    SqliteRevocationStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    open_sqlite,
    "./migrations/sqlite",
    "The revocation list in a SQLite file: one instance (or several processes on one host \
     sharing the file, such as the CLI and the server), followed by polling."
);

revocation_store!(
    PostgresRevocationStore,
    sqlx::Postgres,
    sqlx::PgPool,
    open_postgres,
    "./migrations/postgres",
    "The revocation list in PostgreSQL, shared by every instance: each write is announced with \
     `NOTIFY authz_revocations` (payload: the row as JSON) in the same transaction."
);

impl SqliteRevocationStore {
    /// One statement: `INSERT OR REPLACE` deletes the old row and inserts the merged one,
    /// which takes a new AUTOINCREMENT id (pollers see the change).
    async fn upsert(&self, r: &Revocation) -> Result<i64, StoreError> {
        let (kind, issuer, value, issued_before, expires_at) = parts(r);
        let row = sqlx::query(
            "INSERT OR REPLACE INTO authz_revocations (kind, issuer, value, issued_before, expires_at) \
             SELECT $1, $2, $3, \
               MAX($4, COALESCE((SELECT issued_before FROM authz_revocations WHERE kind = $1 AND issuer = $2 AND value = $3), 0)), \
               MAX($5, COALESCE((SELECT expires_at FROM authz_revocations WHERE kind = $1 AND issuer = $2 AND value = $3), 0)) \
             RETURNING id",
        )
        .bind(kind)
        .bind(issuer)
        .bind(value)
        .bind(to_i64(issued_before))
        .bind(to_i64(expires_at))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get("id").map_err(db_err)
    }
}

impl PostgresRevocationStore {
    /// The upsert and its NOTIFY, in one transaction: the announcement is delivered at commit,
    /// never for a write that did not happen.
    async fn upsert(&self, r: &Revocation) -> Result<i64, StoreError> {
        let (kind, issuer, value, issued_before, expires_at) = parts(r);
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(&format!(
            "INSERT INTO authz_revocations (kind, issuer, value, issued_before, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, issuer, value) DO UPDATE SET \
               issued_before = GREATEST(authz_revocations.issued_before, EXCLUDED.issued_before), \
               expires_at = GREATEST(authz_revocations.expires_at, EXCLUDED.expires_at), \
               id = nextval(pg_get_serial_sequence('authz_revocations', 'id')) \
             RETURNING {COLUMNS}"
        ))
        .bind(kind)
        .bind(issuer)
        .bind(value)
        .bind(to_i64(issued_before))
        .bind(to_i64(expires_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let id: i64 = row.try_get("id").map_err(db_err)?;
        let merged = revocation(
            kind,
            issuer.to_string(),
            value.to_string(),
            row.try_get("issued_before").map_err(db_err)?,
            row.try_get("expires_at").map_err(db_err)?,
        )?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(id, &merged))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }
}

/// The store a URL names, with what its feed needs.
#[derive(Debug, Clone)]
pub enum RevocationDatabase {
    /// `sqlite:`: followed by polling.
    Sqlite(SqliteRevocationStore),
    /// `postgres:` / `postgresql:`: followed with LISTEN/NOTIFY.
    Postgres(PostgresRevocationStore),
}

/// Connects to the revocation store a URL names: `sqlite:` or `postgres:` / `postgresql:` (the
/// same switch as [`crate::sql::connect`]), applying the migrations.
///
/// # Errors
/// Another scheme; the database cannot be reached or migrated.
pub async fn connect(url: &str) -> Result<RevocationDatabase, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(RevocationDatabase::Sqlite(
            SqliteRevocationStore::connect(url).await?,
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(RevocationDatabase::Postgres(
            PostgresRevocationStore::connect(url).await?,
        ))
    } else {
        Err(StoreError(
            "database URL must start with sqlite: or postgres:".into(),
        ))
    }
}

impl RevocationDatabase {
    /// The store, for [`Revocations::shared`](authz_core::revocation::Revocations::shared).
    pub fn store(&self) -> Arc<dyn RevocationStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Loads every live revocation into `list` (awaited: once this returns the list is
    /// complete, unless the store failed — then the feed reports not current and retries), and
    /// spawns the task that keeps it current (see the module docs). `clock` decides expiry.
    pub async fn follow(
        &self,
        list: Arc<RevocationList>,
        clock: Arc<dyn Clock>,
        config: FeedConfig,
    ) -> RevocationFeed {
        let status = FeedStatus::default();
        let (stop_tx, stop_rx) = FeedTask::signal();
        let feed = Feed {
            list,
            clock,
            config,
            status: status.clone(),
            stop: stop_rx,
        };
        let task = match self {
            Self::Sqlite(store) => {
                let store = store.clone();
                let start = feed.poll_start(&store).await;
                tokio::spawn(feed.poll(store, start))
            }
            Self::Postgres(store) => {
                let store = store.clone();
                let listener = feed.listen(&store).await;
                tokio::spawn(feed.notifications(store, listener))
            }
        };
        RevocationFeed(FeedTask::started(status, stop_tx, task))
    }
}

impl RevocationStore for RevocationDatabase {
    fn record(&self, r: Revocation) -> StoreFuture<'_, ()> {
        match self {
            Self::Sqlite(s) => s.record(r),
            Self::Postgres(s) => s.record(r),
        }
    }
    fn load(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>> {
        match self {
            Self::Sqlite(s) => s.load(now),
            Self::Postgres(s) => s.load(now),
        }
    }
    fn purge(&self, now: u64) -> StoreFuture<'_, u64> {
        match self {
            Self::Sqlite(s) => s.purge(now),
            Self::Postgres(s) => s.purge(now),
        }
    }
}

/// How a [`RevocationFeed`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedConfig {
    /// SQLite: how often new rows are read (default 500 ms).
    pub poll_interval: Duration,
    /// How often expired entries leave the list and the table (default 60 s).
    pub purge_interval: Duration,
    /// After a failure (store down, connection lost): the wait before the next attempt
    /// (default 1 s).
    pub retry_delay: Duration,
    /// PostgreSQL, this feed and the API-key change feed ([`crate::sql::KeyDatabase::follow`]):
    /// how often the `LISTEN` connection must answer a `SELECT 1` (within the store timeout)
    /// to count as alive (default 5 s). A connection that died without closing (a network
    /// partition) is then noticed within this plus the store timeout — the revocation feed
    /// reconnects and reloads the whole list, the key feed stops serving keys from memory —
    /// instead of never (revocations) or only by the cache TTL (keys).
    pub heartbeat: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            purge_interval: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
        }
    }
}

impl FeedConfig {
    /// Sets [`poll_interval`](Self::poll_interval).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets [`purge_interval`](Self::purge_interval).
    pub fn purge_interval(mut self, every: Duration) -> Self {
        self.purge_interval = every;
        self
    }

    /// Sets [`retry_delay`](Self::retry_delay).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
}

/// Whether a feed is current, shared with readiness probes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FeedStatus(Arc<StatusInner>);

impl Default for FeedStatus {
    /// The status of a revocation feed.
    fn default() -> Self {
        Self::named(
            "revocation feed",
            "revocations from other instances may be missed until it recovers",
        )
    }
}

#[derive(Debug)]
struct StatusInner {
    /// What the log lines call the feed.
    name: &'static str,
    /// What a failure means, for the log line.
    consequence: &'static str,
    current: AtomicBool,
    applied: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl FeedStatus {
    /// `true` once every live revocation was loaded and the feed follows the store (PostgreSQL:
    /// listening; SQLite: the last poll succeeded). `false` at start until the first load
    /// succeeds and after a failure until the reload that follows it: revocations recorded
    /// by other instances meanwhile may not be applied yet.
    pub fn is_current(&self) -> bool {
        self.0.current.load(Ordering::Acquire)
    }

    /// Changes applied since start (a revocation feed: revocations applied to the list, loads
    /// included; an API-key feed: key changes evicted from the cache).
    pub fn applied(&self) -> u64 {
        self.0.applied.load(Ordering::Relaxed)
    }

    /// The last failure (cleared when current again); names no token.
    pub fn last_error(&self) -> Option<String> {
        self.0
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A status for the feed `name`, whose failures mean `consequence` (both for the log).
    pub(crate) fn named(name: &'static str, consequence: &'static str) -> Self {
        Self(Arc::new(StatusInner {
            name,
            consequence,
            current: AtomicBool::new(false),
            applied: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    pub(crate) fn ok(&self) {
        if !self.0.current.swap(true, Ordering::AcqRel) {
            tracing::info!("{}: current", self.0.name);
        }
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Counts one applied change.
    pub(crate) fn applied_one(&self) {
        self.0.applied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        // Loud: while not current, changes from other instances may be missed.
        tracing::error!(error = %e, "{}: {what}; {}", self.0.name, self.0.consequence);
        self.0.current.store(false, Ordering::Release);
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{what}: {e}"));
    }
}

/// A running feed task as its handle keeps it: the status it reports, its stop signal and the
/// task. Shared by [`RevocationFeed`] and the API-key feed ([`crate::sql::KeyFeed`]).
#[derive(Debug)]
pub(crate) struct FeedTask {
    status: FeedStatus,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedTask {
    /// A new feed's stop signal: the sender for its handle ([`FeedTask::started`]), the
    /// receiver for its task ([`stop_requested`]).
    pub(crate) fn signal() -> (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::watch::Receiver<bool>,
    ) {
        tokio::sync::watch::channel(false)
    }

    /// The handle of a spawned feed `task`.
    pub(crate) fn started(
        status: FeedStatus,
        stop: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self { status, stop, task }
    }

    pub(crate) fn status(&self) -> FeedStatus {
        self.status.clone()
    }

    pub(crate) fn is_current(&self) -> bool {
        self.status.is_current()
    }

    /// Signals the task to stop and waits for it.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Completes once the feed's handle asks it to stop (never if the handle was dropped: the task
/// then runs on, as documented on both handles).
pub(crate) async fn stop_requested(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The heartbeat's ticks ([`FeedConfig::heartbeat`]); a late tick is not made up for.
pub(crate) fn heartbeat_ticks(config: &FeedConfig) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(config.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Whether a LISTEN connection answers a `SELECT 1` within `timeout`. A connection that died
/// without closing (a network partition) delivers nothing and reports nothing: only asking it
/// tells. Notifications that arrive meanwhile are buffered by the listener.
pub(crate) async fn answers_heartbeat(listener: &mut sqlx::postgres::PgListener, timeout: Duration) -> bool {
    let alive = tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&mut *listener)).await;
    matches!(alive, Ok(Ok(_)))
}

/// The running feed of one instance's [`RevocationList`] (see the module docs). Stop it with
/// [`stop`](Self::stop); dropping it leaves the task running.
#[derive(Debug)]
pub struct RevocationFeed(FeedTask);

impl RevocationFeed {
    /// The feed's status (for `/readyz`).
    pub fn status(&self) -> FeedStatus {
        self.0.status()
    }

    /// Whether the feed is current ([`FeedStatus::is_current`]).
    pub fn is_current(&self) -> bool {
        self.0.is_current()
    }

    /// Stops the task and waits for it (the LISTEN connection is closed).
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

struct Feed {
    list: Arc<RevocationList>,
    clock: Arc<dyn Clock>,
    config: FeedConfig,
    status: FeedStatus,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Feed {
    fn apply(&self, r: &Revocation) {
        self.list.insert(r);
        self.status.applied_one();
    }

    /// Completes once [`RevocationFeed::stop`] is called (never if the handle was dropped).
    async fn stopped(&mut self) {
        stop_requested(&mut self.stop).await;
    }

    fn purge_tick(&self) -> tokio::time::Interval {
        let mut t = tokio::time::interval(self.config.purge_interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    }

    async fn purge(&self, store: &dyn RevocationStore) {
        let now = self.clock.unix_seconds();
        let gone = self.list.purge(now);
        match store.purge(now).await {
            Ok(rows) if rows > 0 || gone > 0 => {
                tracing::debug!(entries = gone, rows, "revocation feed: expired entries purged")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "revocation feed: purging expired rows failed"),
        }
    }

    /// SQLite: the first load; returns the id to poll from (`None`: not loaded yet).
    async fn poll_start(&self, store: &SqliteRevocationStore) -> Option<i64> {
        match store.changes_since(0, self.clock.unix_seconds()).await {
            Ok(rows) => {
                // Rows that expired (not returned) may have larger ids: start after every id.
                let mut last = rows.last().map_or(0, |r| r.0);
                for (_, r) in &rows {
                    self.apply(r);
                }
                match store.last_id().await {
                    Ok(max) => last = last.max(max),
                    Err(e) => {
                        self.status.failed("reading the revocation table", &e);
                        return None;
                    }
                }
                tracing::info!(
                    entries = rows.len(),
                    "revocation feed: list loaded (SQLite, polling)"
                );
                self.status.ok();
                Some(last)
            }
            Err(e) => {
                self.status.failed("loading the revocation list at start", &e);
                None
            }
        }
    }

    async fn poll(mut self, store: SqliteRevocationStore, start: Option<i64>) {
        let mut last = start;
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = self.purge_tick();
        loop {
            tokio::select! {
                _ = self.stopped() => return,
                _ = tick.tick() => {}
                _ = purge.tick() => {
                    self.purge(&store).await;
                    continue;
                }
            }
            match last {
                None => last = self.poll_start(&store).await,
                Some(after) => match store.changes_since(after, self.clock.unix_seconds()).await {
                    Ok(rows) => {
                        for (id, r) in &rows {
                            self.apply(r);
                            last = Some((*id).max(after));
                        }
                        if !rows.is_empty() {
                            tracing::debug!(entries = rows.len(), "revocation feed: new revocations applied");
                        }
                        self.status.ok();
                    }
                    Err(e) => self.status.failed("polling the revocation table", &e),
                },
            }
        }
    }

    /// PostgreSQL: LISTEN first, then load everything, so nothing recorded in between is
    /// missed. `None`: not connected (the task retries).
    async fn listen(&self, store: &PostgresRevocationStore) -> Option<sqlx::postgres::PgListener> {
        let connect = async {
            let mut l = sqlx::postgres::PgListener::connect_with(store.pool())
                .await
                .map_err(db_err)?;
            l.ignore_pool_close_event(true);
            l.listen(CHANNEL).await.map_err(db_err)?;
            Ok::<_, StoreError>(l)
        };
        let listener = match tokio::time::timeout(store.timeout * 2, connect).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                self.status.failed("LISTEN on the revocation channel", &e);
                return None;
            }
            Err(_) => {
                self.status
                    .failed("LISTEN on the revocation channel", &"no answer in time");
                return None;
            }
        };
        match store.load(self.clock.unix_seconds()).await {
            Ok(all) => {
                for r in &all {
                    self.apply(r);
                }
                tracing::info!(
                    entries = all.len(),
                    "revocation feed: list loaded (PostgreSQL, LISTEN/NOTIFY)"
                );
                self.status.ok();
                Some(listener)
            }
            Err(e) => {
                self.status.failed("loading the revocation list", &e);
                None
            }
        }
    }

    async fn notifications(
        mut self,
        store: PostgresRevocationStore,
        first: Option<sqlx::postgres::PgListener>,
    ) {
        let mut listener = first;
        let mut purge = self.purge_tick();
        let mut heartbeat = heartbeat_ticks(&self.config);
        loop {
            let Some(l) = listener.as_mut() else {
                let delay = self.config.retry_delay;
                tokio::select! {
                    _ = self.stopped() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                listener = self.listen(&store).await;
                continue;
            };
            tokio::select! {
                _ = self.stopped() => return,
                _ = purge.tick() => self.purge(&store).await,
                _ = heartbeat.tick() => {
                    if !answers_heartbeat(l, store.timeout).await {
                        self.status.failed(
                            "the LISTEN connection did not answer its heartbeat",
                            &"reconnecting and reloading",
                        );
                        listener = None;
                    }
                }
                n = l.try_recv() => match n {
                    Ok(Some(n)) => match from_payload(n.payload()) {
                        Some(r) => self.apply(&r),
                        None => {
                            // A row too large to announce: read everything again.
                            match store.load(self.clock.unix_seconds()).await {
                                Ok(all) => all.iter().for_each(|r| self.apply(r)),
                                Err(e) => {
                                    self.status.failed("reloading the revocation list", &e);
                                    listener = None;
                                }
                            }
                        }
                    },
                    Ok(None) => {
                        self.status.failed("the LISTEN connection was lost", &"reconnecting and reloading");
                        listener = None;
                    }
                    Err(e) => {
                        self.status.failed("the LISTEN connection failed", &db_err(e));
                        listener = None;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_fallback() {
        let r = Revocation::Subject {
            issuer: "https://iss".into(),
            subject: "ada".into(),
            issued_before: 10,
            expires_at: 20,
        };
        assert_eq!(from_payload(&payload(7, &r)), Some(r));
        let big = Revocation::Token {
            issuer: "i".into(),
            jti: "x".repeat(MAX_PAYLOAD),
            expires_at: 1,
        };
        assert_eq!(payload(1, &big), "{}");
        assert_eq!(from_payload("{}"), None);
    }
}
