//! The API-key change feed (feature `sqlx`): keeps each instance's verified-key cache
//! ([`KeyCache`](authz_core::auth::KeyCache)) current when keys are revoked, rotated or edited
//! elsewhere — another instance, the CLI, plain SQL.
//!
//! ```text
//! any write to authz_api_keys except last_used_at (migration 0005, triggers):
//!   PostgreSQL: NOTIFY authz_api_keys, payload = key id   (same transaction as the write)
//!   SQLite:     INSERT INTO authz_api_key_changes (key_id) (same transaction as the write)
//! every instance: KeyFeed
//!   PostgreSQL: LISTEN, then resume the cache (emptied) → each notification evicts its key;
//!               the connection answers a SELECT 1 every heartbeat (5 s) or counts as lost
//!   SQLite:     read MAX(id), then resume the cache (emptied) → every poll interval (500 ms),
//!               rows with id > last seen evict their keys; rows older than an hour are purged
//!   a failure (connection lost, poll failed, store down) → the cache is suspended at once
//!   (emptied; every check reads the store, so 503 while the store is down) until the feed
//!   listens / polls again
//! ```
//!
//! Why SQLite polls a change table rather than relying on the TTL alone: several processes share
//! a SQLite file (the server and `model-registry keys revoke`), and a revocation by the CLI
//! must reach the server within a second, not within the TTL. One indexed `SELECT` every
//! 500 ms costs nothing next to the per-request read it replaces.
//!
//! ```no_run
//! use std::sync::Arc;
//! use authz_axum::ApiKeys;
//! use authz_axum::core::apikey::ApiKeyFormat;
//! use authz_axum::sql::{self, revocations::FeedConfig};
//!
//! # async fn run(policy: Arc<authz_axum::core::Policy>) -> Result<(), Box<dyn std::error::Error>> {
//! let db = sql::open("postgres://localhost/app").await?;
//! let keys = ApiKeys::new(ApiKeyFormat::default(), db.store(), policy);
//! // Before serving: once this returns, the cache answers (or the feed retries, and every
//! // check reads the store meanwhile).
//! let feed = db.follow(&keys, FeedConfig::default()).await;
//! // … Authenticator::builder(policy).api_keys(keys) …
//! feed.stop().await;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Weak};

use authz_core::auth::ApiKeys;
use authz_core::keystore::{KeyStore, StoreError, StoreFuture};
use sqlx::Row as _;

use super::revocations::{
    FeedConfig, FeedStatus, FeedTask, answers_heartbeat, heartbeat_ticks, stop_requested,
};
use super::{PostgresKeyStore, SqliteKeyStore, db_err};

/// The PostgreSQL channel every key change is announced on (payload: the key id).
pub const CHANNEL: &str = "authz_api_keys";

/// How long SQLite change rows are kept (seconds): far longer than any cache entry lives.
const KEEP_CHANGES_SECS: i64 = 3600;

fn status() -> FeedStatus {
    FeedStatus::named(
        "API-key change feed",
        "the verified-key cache is off (every key check reads the store) until it recovers",
    )
}

impl SqliteKeyStore {
    /// Key changes with a sequence number above `after`, in order: `(id, key id)`.
    ///
    /// # Errors
    /// The store's.
    pub fn key_changes_since(&self, after: i64) -> StoreFuture<'_, Vec<(i64, String)>> {
        self.op(async move {
            let rows = sqlx::query("SELECT id, key_id FROM authz_api_key_changes WHERE id > $1 ORDER BY id")
                .bind(after)
                .fetch_all(self.pool())
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("id").map_err(db_err)?,
                        r.try_get("key_id").map_err(db_err)?,
                    ))
                })
                .collect()
        })
    }

    /// The largest change sequence number (0 for none): where a poller starts.
    ///
    /// # Errors
    /// The store's.
    pub fn last_key_change(&self) -> StoreFuture<'_, i64> {
        self.op(async move {
            let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM authz_api_key_changes")
                .fetch_one(self.pool())
                .await
                .map_err(db_err)?;
            row.try_get::<i64, _>("id").map_err(db_err)
        })
    }

    /// Deletes change rows older than an hour (by the database's clock); returns how many.
    ///
    /// # Errors
    /// The store's.
    pub fn purge_key_changes(&self) -> StoreFuture<'_, u64> {
        self.op(async move {
            let done = sqlx::query(
                "DELETE FROM authz_api_key_changes WHERE changed_at < CAST(strftime('%s', 'now') AS INTEGER) - $1",
            )
            .bind(KEEP_CHANGES_SECS)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected())
        })
    }
}

/// The API-key store a URL names, with what its change feed needs.
#[derive(Debug, Clone)]
pub enum KeyDatabase {
    /// `sqlite:`: followed by polling `authz_api_key_changes`.
    Sqlite(SqliteKeyStore),
    /// `postgres:` / `postgresql:`: followed with LISTEN/NOTIFY on [`CHANNEL`].
    Postgres(PostgresKeyStore),
}

/// Connects to the API-key store a URL names (`sqlite:` or `postgres:` / `postgresql:`, as
/// [`connect`](super::connect)), applying the migrations, and keeps its type so that
/// [`KeyDatabase::follow`] can start its feed.
///
/// # Errors
/// Another scheme; the database cannot be reached or migrated.
pub async fn open(url: &str) -> Result<KeyDatabase, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(KeyDatabase::Sqlite(SqliteKeyStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(KeyDatabase::Postgres(PostgresKeyStore::connect(url).await?))
    } else {
        Err(StoreError(
            "database URL must start with sqlite: or postgres:".into(),
        ))
    }
}

impl KeyDatabase {
    /// The store, for [`ApiKeys`].
    pub fn store(&self) -> Arc<dyn KeyStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Starts the feed that keeps `keys`' verified-key cache current (see the module docs).
    /// Awaited: once this returns the cache serves, unless the store could not be reached —
    /// then the feed reports not current, the cache stays off (every check reads the store)
    /// and the feed retries every [`FeedConfig::retry_delay`]. SQLite polls every
    /// [`FeedConfig::poll_interval`] and purges old change rows every
    /// [`FeedConfig::purge_interval`]. The task ends with [`KeyFeed::stop`] or when `keys` is
    /// dropped.
    pub async fn follow(&self, keys: &Arc<ApiKeys>, config: FeedConfig) -> KeyFeed {
        let status = status();
        let (stop_tx, stop_rx) = FeedTask::signal();
        let feed = Feed {
            keys: Arc::downgrade(keys),
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
        KeyFeed(FeedTask::started(status, stop_tx, task))
    }
}

/// The running change feed of one instance's verified-key cache. Stop it with
/// [`stop`](Self::stop); dropping it leaves the task running (until the `ApiKeys` go).
#[derive(Debug)]
pub struct KeyFeed(FeedTask);

impl KeyFeed {
    /// The feed's status ([`FeedStatus::applied`] counts key changes evicted).
    pub fn status(&self) -> FeedStatus {
        self.0.status()
    }

    /// Whether the feed follows the store (and so the cache serves).
    pub fn is_current(&self) -> bool {
        self.0.is_current()
    }

    /// Stops the task and waits for it; the cache is suspended (every check reads the store),
    /// since nothing keeps it current any more.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

struct Feed {
    keys: Weak<ApiKeys>,
    config: FeedConfig,
    status: FeedStatus,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Why the loop ends.
enum Next {
    Continue,
    End,
}

impl Feed {
    /// Runs `f` on the keys' cache; `None` once the keys are dropped.
    fn with_cache(&self, f: impl FnOnce(&authz_core::auth::KeyCache)) -> Option<()> {
        let keys = self.keys.upgrade()?;
        f(keys.cache());
        Some(())
    }

    fn evict(&self, id: &str) -> Next {
        match self.with_cache(|c| c.evict(id)) {
            Some(()) => {
                self.status.applied_one();
                Next::Continue
            }
            None => Next::End,
        }
    }

    fn resume(&self) {
        self.with_cache(|c| c.resume());
        self.status.ok();
    }

    fn lost(&self, what: &str, e: &dyn std::fmt::Display) {
        // First stop serving (emptied), then say so.
        self.with_cache(|c| c.suspend());
        self.status.failed(what, e);
    }

    /// Completes once [`KeyFeed::stop`] is called (never if the handle was dropped).
    async fn stopped(&mut self) {
        stop_requested(&mut self.stop).await;
    }

    fn end(&self) {
        self.with_cache(|c| c.suspend());
    }

    /// SQLite: the sequence to poll from, then the cache serves (`None`: store unreachable).
    async fn poll_start(&self, store: &SqliteKeyStore) -> Option<i64> {
        match store.last_key_change().await {
            Ok(last) => {
                // Every change up to `last` is older than anything cached from now on.
                self.resume();
                tracing::info!("API-key change feed: following (SQLite, polling)");
                Some(last)
            }
            Err(e) => {
                self.lost("reading the key change table", &e);
                None
            }
        }
    }

    async fn poll(mut self, store: SqliteKeyStore, start: Option<i64>) {
        let mut last = start;
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(self.config.purge_interval);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stopped() => return self.end(),
                _ = tick.tick() => {}
                _ = purge.tick() => {
                    if let Err(e) = store.purge_key_changes().await {
                        tracing::warn!(error = %e, "API-key change feed: purging old change rows failed");
                    }
                    continue;
                }
            }
            if self.keys.strong_count() == 0 {
                return;
            }
            match last {
                None => last = self.poll_start(&store).await,
                Some(after) => match store.key_changes_since(after).await {
                    Ok(rows) => {
                        for (id, key) in &rows {
                            if let Next::End = self.evict(key) {
                                return;
                            }
                            last = Some((*id).max(after));
                        }
                        if !rows.is_empty() {
                            tracing::debug!(changes = rows.len(), "API-key change feed: keys evicted");
                        }
                        self.status.ok();
                    }
                    Err(e) => {
                        // Changes may be missed: stop serving; start again from the current
                        // sequence (with an emptied cache) once the store answers.
                        self.lost("polling the key change table", &e);
                        last = None;
                    }
                },
            }
        }
    }

    /// PostgreSQL: LISTEN, then the cache serves (emptied: anything cached before may have
    /// missed a change). `None`: not connected (the task retries).
    async fn listen(&self, store: &PostgresKeyStore) -> Option<sqlx::postgres::PgListener> {
        let connect = async {
            let mut l = sqlx::postgres::PgListener::connect_with(store.pool())
                .await
                .map_err(db_err)?;
            l.ignore_pool_close_event(true);
            l.listen(CHANNEL).await.map_err(db_err)?;
            Ok::<_, StoreError>(l)
        };
        match tokio::time::timeout(store.timeout * 2, connect).await {
            Ok(Ok(l)) => {
                self.resume();
                tracing::info!("API-key change feed: following (PostgreSQL, LISTEN/NOTIFY)");
                Some(l)
            }
            Ok(Err(e)) => {
                self.lost("LISTEN on the key channel", &e);
                None
            }
            Err(_) => {
                self.lost("LISTEN on the key channel", &"no answer in time");
                None
            }
        }
    }

    async fn notifications(mut self, store: PostgresKeyStore, first: Option<sqlx::postgres::PgListener>) {
        let mut listener = first;
        let mut heartbeat = heartbeat_ticks(&self.config);
        loop {
            if self.keys.strong_count() == 0 {
                return;
            }
            let Some(l) = listener.as_mut() else {
                let delay = self.config.retry_delay;
                tokio::select! {
                    _ = self.stopped() => return self.end(),
                    _ = tokio::time::sleep(delay) => {}
                }
                listener = self.listen(&store).await;
                continue;
            };
            tokio::select! {
                _ = self.stopped() => return self.end(),
                _ = heartbeat.tick() => {
                    if !answers_heartbeat(l, store.timeout).await {
                        listener = None;
                        self.lost("the LISTEN connection did not answer its heartbeat", &"reconnecting");
                    }
                }
                n = l.try_recv() => match n {
                    Ok(Some(n)) => {
                        if let Next::End = self.evict(n.payload()) {
                            return;
                        }
                    }
                    Ok(None) => {
                        listener = None;
                        self.lost("the LISTEN connection was lost", &"reconnecting");
                    }
                    Err(e) => {
                        listener = None;
                        self.lost("the LISTEN connection failed", &db_err(e));
                    }
                },
            }
        }
    }
}
