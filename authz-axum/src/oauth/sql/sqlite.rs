//! The token service's state in SQLite: every statement on one connection owned by a thread of
//! its own, writes group-committed ([`super::writer`]). The schema and its migrations are the
//! same as PostgreSQL's (applied through sqlx at `connect`, the bookkeeping every store of this
//! crate shares).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authz_core::keystore::{StoreError, StoreFuture};
use authz_core::oauth::{
    AccessTokenRecord, AuthorizationCode, Client, ClientSecret, ClientType, CodeRedemption, KeyHash,
    LoginSession, RefreshRedemption, RefreshRotation, RefreshToken, RotationDecision, SigningKeyRecord,
    TokenFamily, TokenStore, User,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Row, params};

use super::client_cache::ClientCache;
use super::writer::{Access, Writer, sql_err};
use super::{INSERT_ACCESS, INSERT_REFRESH, grants_from, grants_json, secrets_from, secrets_json, u};
use crate::sql::{DEFAULT_STORE_TIMEOUT, bounded, from_i64, list_from, list_json, to_i64};

fn hash_from(b: &[u8]) -> rusqlite::Result<KeyHash> {
    KeyHash::from_bytes(b).ok_or_else(|| corrupt("hash"))
}

/// A column that does not hold what this store wrote: a conversion failure of that column.
fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("corrupt {what} column").into(),
    )
}

fn store_err(what: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.0.into())
}

fn client_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    let t: String = r.get("client_type")?;
    Ok(Client {
        id: r.get("id")?,
        client_type: ClientType::parse(&t).ok_or_else(|| corrupt("client_type"))?,
        secrets: secrets_from(&r.get::<_, String>("secrets")?).map_err(store_err)?,
        redirect_uris: list_from(&r.get::<_, String>("redirect_uris")?).map_err(store_err)?,
        grant_types: grants_from(&r.get::<_, String>("grant_types")?).map_err(store_err)?,
        roles: list_from(&r.get::<_, String>("roles")?).map_err(store_err)?,
        created_at: u(r.get("created_at")?),
    })
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        username: r.get("username")?,
        password_hash: r.get("password_hash")?,
        roles: list_from(&r.get::<_, String>("roles")?).map_err(store_err)?,
        created_at: u(r.get("created_at")?),
    })
}

fn code_row(r: &Row<'_>) -> rusqlite::Result<AuthorizationCode> {
    Ok(AuthorizationCode {
        hash: hash_from(&r.get::<_, Vec<u8>>("hash")?)?,
        client_id: r.get("client_id")?,
        redirect_uri: r.get("redirect_uri")?,
        code_challenge: r.get("code_challenge")?,
        subject: r.get("subject")?,
        roles: list_from(&r.get::<_, String>("roles")?).map_err(store_err)?,
        scope: list_from(&r.get::<_, String>("scope")?).map_err(store_err)?,
        family_id: r.get("family_id")?,
        issued_at: u(r.get("issued_at")?),
        expires_at: u(r.get("expires_at")?),
    })
}

fn family_row(r: &Row<'_>) -> rusqlite::Result<TokenFamily> {
    Ok(TokenFamily {
        id: r.get("id")?,
        client_id: r.get("client_id")?,
        subject: r.get("subject")?,
        created_at: u(r.get("created_at")?),
        expires_at: u(r.get("expires_at")?),
        last_used_at: u(r.get("last_used_at")?),
        revoked_at: from_i64(r.get("revoked_at")?),
    })
}

fn refresh_row(r: &Row<'_>) -> rusqlite::Result<RefreshToken> {
    Ok(RefreshToken {
        hash: hash_from(&r.get::<_, Vec<u8>>("hash")?)?,
        family_id: r.get("family_id")?,
        client_id: r.get("client_id")?,
        subject: r.get("subject")?,
        roles: list_from(&r.get::<_, String>("roles")?).map_err(store_err)?,
        scope: list_from(&r.get::<_, String>("scope")?).map_err(store_err)?,
        issued_at: u(r.get("issued_at")?),
        spent_at: from_i64(r.get("spent_at")?),
        jkt: r.get("dpop_jkt")?,
    })
}

fn access_row(r: &Row<'_>) -> rusqlite::Result<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        jti: r.get("jti")?,
        family_id: r.get("family_id")?,
        client_id: r.get("client_id")?,
        subject: r.get("subject")?,
        expires_at: u(r.get("expires_at")?),
        revoked_at: from_i64(r.get("revoked_at")?),
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.get("kid")?,
        alg: r.get("alg")?,
        private_pkcs8: r.get("private_pkcs8")?,
        public_jwk: r.get("public_jwk")?,
        created_at: u(r.get("created_at")?),
        signs_from: u(r.get("signs_from")?),
        retire_after: from_i64(r.get("retire_after")?),
    })
}

/// One row or none.
fn one<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(p, map).optional())
        .map_err(sql_err)
}

/// Every row.
fn all<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sql_err)?;
    let rows = s.query_map(p, map).map_err(sql_err)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(sql_err)
}

/// Rows changed.
fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(p))
        .map_err(sql_err)
}

fn insert_access(c: &Connection, a: &AccessTokenRecord) -> Result<(), StoreError> {
    exec(
        c,
        INSERT_ACCESS,
        params![
            a.jti,
            a.family_id,
            a.client_id,
            a.subject,
            to_i64(a.expires_at),
            a.revoked_at.map(to_i64)
        ],
    )
    .map(|_| ())
}

fn insert_refresh(c: &Connection, t: &RefreshToken) -> Result<(), StoreError> {
    exec(
        c,
        INSERT_REFRESH,
        params![
            t.hash.as_bytes(),
            t.family_id,
            t.client_id,
            t.subject,
            list_json(&t.roles),
            list_json(&t.scope),
            to_i64(t.issued_at),
            t.jkt
        ],
    )
    .map(|_| ())
}

/// Marks the token spent if it was not; the winner gets the row back from its `UPDATE`, only a
/// loser reads it.
fn redeem_refresh(c: &Connection, h: &[u8], now: u64) -> Result<RefreshRedemption, StoreError> {
    let Some(token) = one(
        c,
        "UPDATE authz_oauth_refresh_tokens SET spent_at = ?2 WHERE hash = ?1 AND spent_at IS NULL RETURNING *",
        params![h, to_i64(now)],
        refresh_row,
    )?
    else {
        return Ok(
            match one(
                c,
                "SELECT * FROM authz_oauth_refresh_tokens WHERE hash = ?1",
                [h],
                refresh_row,
            )? {
                None => RefreshRedemption::Unknown,
                Some(t) => RefreshRedemption::Spent(t),
            },
        );
    };
    let family = one(
        c,
        "SELECT * FROM authz_oauth_families WHERE id = ?1",
        [&token.family_id],
        family_row,
    )?
    .ok_or_else(|| StoreError(format!("no family {:?}", token.family_id)))?;
    Ok(RefreshRedemption::Fresh(token, family))
}

/// What a grant issued, only while the family is live (`false`, nothing written, otherwise).
/// The operations of a group commit run one after the other, so a revocation queued before
/// this one is seen here.
fn record_issued(
    c: &Connection,
    family_id: &str,
    a: &AccessTokenRecord,
    refresh: Option<&RefreshToken>,
    now: u64,
) -> Result<bool, StoreError> {
    let live = exec(
        c,
        "UPDATE authz_oauth_families SET last_used_at = CASE WHEN last_used_at < ?2 THEN ?2 ELSE last_used_at END \
         WHERE id = ?1 AND revoked_at IS NULL",
        params![family_id, to_i64(now)],
    )? > 0;
    if !live {
        return Ok(false);
    }
    insert_access(c, a)?;
    if let Some(t) = refresh {
        insert_refresh(c, t)?;
    }
    Ok(true)
}

/// The token service's state in a SQLite file (created at start-up if missing, never
/// afterwards), or in memory (`sqlite::memory:`).
///
/// Every write runs on one connection owned by a thread of the store's, in group commits: the
/// writes queued while a commit is under way share the next transaction (each in its own
/// savepoint) and its one durable sync, and each caller is answered once that commit is on
/// disk (`synchronous=FULL`, WAL). On a file, reads run on a second connection and thread, so
/// they never wait for a sync; in memory one connection does both. Redeeming a code or a
/// refresh token is one conditional `UPDATE … RETURNING`: of two concurrent redemptions, in
/// this process or another on the same file, exactly one wins. Another process writing the
/// file (the CLI) is waited for within the store timeout; an operation that could not start
/// within it is not run at all (its caller was told it failed).
///
/// In `sqlite::memory:`, clients are also kept in the process once read (no other process or
/// store can reach that database, and this store's own client operations evict them on the
/// store thread, so what is kept is never stale); statements run on [`pool`](Self::pool)
/// bypass that.
#[derive(Debug, Clone)]
pub struct SqliteTokenStore {
    pool: sqlx::SqlitePool,
    conn: Writer,
    timeout: Duration,
    file: Option<PathBuf>,
    /// In memory only (see `client_cache`).
    clients: Option<Arc<ClientCache>>,
}

impl SqliteTokenStore {
    /// Connects to `url` (`sqlite:…`, the sqlx URL syntax) and applies the migrations; every
    /// operation bounded by [`DEFAULT_STORE_TIMEOUT`].
    ///
    /// # Errors
    /// A malformed URL, a file that cannot be created or opened, a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, DEFAULT_STORE_TIMEOUT).await
    }

    /// Like [`connect`](Self::connect), bounding every operation by `timeout` (also SQLite's
    /// busy wait for another process's write lock).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let (pool, file) = crate::sql::open_sqlite(url, timeout).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        let options = pool.connect_options();
        let name = options.get_filename().to_path_buf();
        // `sqlite::memory:` is a named shared-cache database in sqlx (`file:sqlx-in-memory-N`):
        // the same name opens the same database, which the pool (kept here) keeps alive.
        let in_memory = crate::sql::sqlite_in_memory(url, &name);
        let private_memory = name.to_string_lossy().starts_with("file:sqlx-in-memory-");
        let mut flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if in_memory {
            flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        }
        let display = name.display().to_string();
        let open = move || -> Result<Connection, StoreError> {
            let conn = Connection::open_with_flags(&name, flags)
                .map_err(|e| StoreError(format!("{display}: {e}")))?;
            conn.busy_timeout(timeout).map_err(sql_err)?;
            if !in_memory {
                // As the pool's connections: WAL (one sync per commit, readers never wait for
                // the writer) and FULL (a commit is durable before anyone is answered).
                conn.pragma_update(None, "journal_mode", "WAL").map_err(sql_err)?;
                conn.pragma_update(None, "synchronous", "FULL").map_err(sql_err)?;
            }
            // Each operation of a group commit runs in a savepoint, whose statement journal
            // (the pages it changed, to undo it alone) is a temporary file by default: a write
            // syscall per page. Only this connection reads it back, and never after a crash.
            conn.pragma_update(None, "temp_store", "MEMORY")
                .map_err(sql_err)?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let (conn, reader) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let conn = open()?;
            // A file in WAL mode: a second connection answers the reads while the writer
            // waits for its sync. (A shared-cache memory database locks whole tables: one
            // connection does everything there.)
            let reader = if in_memory {
                None
            } else {
                let r = open()?;
                r.pragma_update(None, "query_only", true).map_err(sql_err)?;
                Some(r)
            };
            Ok((conn, reader))
        })
        .await
        .map_err(|e| StoreError(e.to_string()))??;
        let conn = Writer::spawn(conn, reader, timeout, "authz-sqlite")?;
        Ok(Self {
            pool,
            conn,
            timeout,
            file,
            // Only for the private database `sqlite::memory:` makes (a name no other store can
            // be given): a named in-memory database (`file:x?mode=memory&cache=shared`) can be
            // opened by a second store in this process, which would not evict this one's copies.
            clients: (in_memory && private_memory).then(Arc::default),
        })
    }

    /// The sqlx pool the migrations ran on (tests, administration). Statements run through it
    /// bypass the store's connection thread: they wait for its write lock like any other
    /// connection.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    fn read<'a, T, F>(&'a self, f: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        bounded(self.timeout, self.file.as_ref(), self.conn.call(Access::Read, f))
    }

    fn write<'a, T, F>(&'a self, f: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        bounded(self.timeout, self.file.as_ref(), self.conn.call(Access::Write, f))
    }
}

impl TokenStore for SqliteTokenStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.read(|c| one(c, "SELECT 1", [], |_| Ok(())).map(|_| ()))
    }

    fn insert_client(&self, cl: Client) -> StoreFuture<'_, ()> {
        let clients = self.clients.clone();
        self.write(move |c| {
            if let Some(cache) = &clients {
                cache.changed(&cl.id);
            }
            exec(
                c,
                "INSERT INTO authz_oauth_clients (id, client_type, secrets, redirect_uris, grant_types, roles, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    cl.id,
                    cl.client_type.as_str(),
                    secrets_json(&cl.secrets),
                    list_json(&cl.redirect_uris),
                    grants_json(&cl.grant_types),
                    list_json(&cl.roles),
                    to_i64(cl.created_at)
                ],
            )
            .map_err(|e| StoreError(format!("client {:?}: {}", cl.id, e.0)))
            .map(|_| ())
        })
    }

    fn client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>> {
        let seen = match self.clients.as_deref().map(|cache| cache.get(id)) {
            Some(Ok(client)) => return Box::pin(std::future::ready(Ok(Some(client)))),
            Some(Err(seen)) => Some(seen),
            None => None,
        };
        let key = id.to_string();
        let read = self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_clients WHERE id = ?1",
                [key],
                client_row,
            )
        });
        Box::pin(async move {
            let client = read.await?;
            if let (Some(cache), Some(seen), Some(client)) = (&self.clients, seen, &client) {
                cache.keep(seen, client);
            }
            Ok(client)
        })
    }

    fn clients(&self) -> StoreFuture<'_, Vec<Client>> {
        self.read(|c| all(c, "SELECT * FROM authz_oauth_clients ORDER BY id", [], client_row))
    }

    fn set_client_secrets<'a>(&'a self, id: &'a str, secrets: Vec<ClientSecret>) -> StoreFuture<'a, bool> {
        let id = id.to_string();
        let clients = self.clients.clone();
        self.write(move |c| {
            if let Some(cache) = &clients {
                cache.changed(&id);
            }
            exec(
                c,
                "UPDATE authz_oauth_clients SET secrets = ?2 WHERE id = ?1",
                params![id, secrets_json(&secrets)],
            )
            .map(|n| n > 0)
        })
    }

    fn delete_client<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        let id = id.to_string();
        let clients = self.clients.clone();
        self.write(move |c| {
            if let Some(cache) = &clients {
                cache.changed(&id);
            }
            let n = exec(c, "DELETE FROM authz_oauth_clients WHERE id = ?1", [&id])?;
            exec(
                c,
                "UPDATE authz_oauth_families SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
                params![id, to_i64(now)],
            )?;
            exec(
                c,
                "UPDATE authz_oauth_access_tokens SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
                params![id, to_i64(now)],
            )?;
            Ok(n > 0)
        })
    }

    fn insert_user(&self, user: User) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO authz_oauth_users (username, password_hash, roles, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    user.username,
                    user.password_hash,
                    list_json(&user.roles),
                    to_i64(user.created_at)
                ],
            )
            .map_err(|e| StoreError(format!("user {:?}: {}", user.username, e.0)))
            .map(|_| ())
        })
    }

    fn user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<User>> {
        let username = username.to_string();
        self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_users WHERE username = ?1",
                [username],
                user_row,
            )
        })
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        self.read(|c| {
            all(
                c,
                "SELECT * FROM authz_oauth_users ORDER BY username",
                [],
                user_row,
            )
        })
    }

    fn delete_user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, bool> {
        let username = username.to_string();
        self.write(move |c| {
            exec(
                c,
                "DELETE FROM authz_oauth_sessions WHERE username = ?1",
                [&username],
            )?;
            exec(
                c,
                "DELETE FROM authz_oauth_users WHERE username = ?1",
                [&username],
            )
            .map(|n| n > 0)
        })
    }

    fn insert_code(&self, code: AuthorizationCode, f: TokenFamily) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO authz_oauth_families (id, client_id, subject, created_at, expires_at, last_used_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    f.id,
                    f.client_id,
                    f.subject,
                    to_i64(f.created_at),
                    to_i64(f.expires_at),
                    to_i64(f.last_used_at),
                    f.revoked_at.map(to_i64)
                ],
            )?;
            exec(
                c,
                "INSERT INTO authz_oauth_codes (hash, client_id, redirect_uri, code_challenge, subject, roles, scope, \
                 family_id, issued_at, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)",
                params![
                    code.hash.as_bytes(),
                    code.client_id,
                    code.redirect_uri,
                    code.code_challenge,
                    code.subject,
                    list_json(&code.roles),
                    list_json(&code.scope),
                    code.family_id,
                    to_i64(code.issued_at),
                    to_i64(code.expires_at)
                ],
            )
            .map(|_| ())
        })
    }

    fn redeem_code<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, CodeRedemption> {
        let h = hash.as_bytes().to_vec();
        self.write(move |c| {
            // The winner gets the row back from its UPDATE; only a loser reads it.
            if let Some(code) = one(
                c,
                "UPDATE authz_oauth_codes SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL RETURNING *",
                params![h, to_i64(now)],
                code_row,
            )? {
                return Ok(CodeRedemption::Fresh(code));
            }
            Ok(
                match one(
                    c,
                    "SELECT * FROM authz_oauth_codes WHERE hash = ?1",
                    [&h],
                    code_row,
                )? {
                    None => CodeRedemption::Unknown,
                    Some(code) => CodeRedemption::Replayed(code),
                },
            )
        })
    }

    fn insert_refresh(&self, t: RefreshToken) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            insert_refresh(c, &t)?;
            exec(
                c,
                "UPDATE authz_oauth_families SET last_used_at = ?2 WHERE id = ?1 AND last_used_at < ?2",
                params![t.family_id, to_i64(t.issued_at)],
            )
            .map(|_| ())
        })
    }

    fn redeem_refresh<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, RefreshRedemption> {
        let h = hash.as_bytes().to_vec();
        self.write(move |c| redeem_refresh(c, &h, now))
    }

    fn refresh<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<RefreshToken>> {
        let h = hash.as_bytes().to_vec();
        self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_refresh_tokens WHERE hash = ?1",
                [h],
                refresh_row,
            )
        })
    }

    fn family<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TokenFamily>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_families WHERE id = ?1",
                [id],
                family_row,
            )
        })
    }

    fn revoke_family<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        let id = id.to_string();
        self.write(move |c| {
            let done = exec(
                c,
                "UPDATE authz_oauth_families SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, to_i64(now)],
            )? > 0;
            exec(
                c,
                "UPDATE authz_oauth_access_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
                params![id, to_i64(now)],
            )?;
            Ok(done)
        })
    }

    /// One operation, so one transaction and one commit: the spend, the decision and the
    /// records (each rotation of a group commit sees the ones before it).
    fn rotate_refresh<'a>(
        &'a self,
        hash: &'a KeyHash,
        now: u64,
        decide: RotationDecision,
    ) -> StoreFuture<'a, RefreshRotation> {
        let h = hash.as_bytes().to_vec();
        self.write(move |c| {
            let (token, family) = match redeem_refresh(c, &h, now)? {
                RefreshRedemption::Unknown => return Ok(RefreshRotation::Unknown),
                RefreshRedemption::Spent(t) => return Ok(RefreshRotation::Spent(t)),
                RefreshRedemption::Fresh(t, f) => (t, f),
            };
            let issued = match decide(&token, &family) {
                None => false,
                Some((access, next)) => record_issued(c, &family.id, &access, Some(&next), now)?,
            };
            Ok(RefreshRotation::Fresh {
                token,
                family,
                issued,
            })
        })
    }

    fn record_issued<'a>(
        &'a self,
        family_id: &'a str,
        a: AccessTokenRecord,
        refresh: Option<RefreshToken>,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        let family_id = family_id.to_string();
        self.write(move |c| record_issued(c, &family_id, &a, refresh.as_ref(), now))
    }

    fn family_access<'a>(&'a self, family_id: &'a str) -> StoreFuture<'a, Vec<AccessTokenRecord>> {
        let family_id = family_id.to_string();
        self.read(move |c| {
            all(
                c,
                "SELECT * FROM authz_oauth_access_tokens WHERE family_id = ?1",
                [family_id],
                access_row,
            )
        })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, now: u64) -> StoreFuture<'a, u64> {
        let subject = subject.to_string();
        self.write(move |c| {
            // A stolen login session would mint new tokens: end them too.
            exec(c, "DELETE FROM authz_oauth_sessions WHERE username = ?1", [&subject])?;
            exec(
                c,
                "UPDATE authz_oauth_access_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL AND family_id IN \
                 (SELECT id FROM authz_oauth_families WHERE subject = ?1 AND revoked_at IS NULL)",
                params![subject, to_i64(now)],
            )?;
            let n = exec(
                c,
                "UPDATE authz_oauth_families SET revoked_at = ?2 WHERE subject = ?1 AND revoked_at IS NULL",
                params![subject, to_i64(now)],
            )?;
            Ok(n as u64)
        })
    }

    fn insert_access(&self, a: AccessTokenRecord) -> StoreFuture<'_, ()> {
        self.write(move |c| insert_access(c, &a))
    }

    fn access<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, Option<AccessTokenRecord>> {
        let jti = jti.to_string();
        self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_access_tokens WHERE jti = ?1",
                [jti],
                access_row,
            )
        })
    }

    fn revoke_access<'a>(&'a self, jti: &'a str, now: u64) -> StoreFuture<'a, bool> {
        let jti = jti.to_string();
        self.write(move |c| {
            exec(
                c,
                "UPDATE authz_oauth_access_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE jti = ?1",
                params![jti, to_i64(now)],
            )
            .map(|n| n > 0)
        })
    }

    fn insert_session(&self, s: LoginSession) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO authz_oauth_sessions (hash, username, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    s.hash.as_bytes(),
                    s.username,
                    to_i64(s.created_at),
                    to_i64(s.expires_at)
                ],
            )
            .map(|_| ())
        })
    }

    fn session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<LoginSession>> {
        let h = hash.as_bytes().to_vec();
        self.read(move |c| {
            one(
                c,
                "SELECT * FROM authz_oauth_sessions WHERE hash = ?1",
                [h],
                |r| {
                    Ok(LoginSession {
                        hash: hash_from(&r.get::<_, Vec<u8>>("hash")?)?,
                        username: r.get("username")?,
                        created_at: u(r.get("created_at")?),
                        expires_at: u(r.get("expires_at")?),
                    })
                },
            )
        })
    }

    fn delete_session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, ()> {
        let h = hash.as_bytes().to_vec();
        self.write(move |c| exec(c, "DELETE FROM authz_oauth_sessions WHERE hash = ?1", [h]).map(|_| ()))
    }

    fn insert_signing_key(&self, k: SigningKeyRecord) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO authz_oauth_signing_keys (kid, alg, private_pkcs8, public_jwk, created_at, signs_from, retire_after) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    k.kid,
                    k.alg,
                    k.private_pkcs8,
                    k.public_jwk,
                    to_i64(k.created_at),
                    to_i64(k.signs_from),
                    k.retire_after.map(to_i64)
                ],
            )
            .map(|_| ())
        })
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        self.read(|c| {
            all(
                c,
                "SELECT * FROM authz_oauth_signing_keys ORDER BY created_at, kid",
                [],
                key_row,
            )
        })
    }

    fn retire_signing_key<'a>(&'a self, kid: &'a str, after: u64) -> StoreFuture<'a, ()> {
        let kid = kid.to_string();
        self.write(move |c| {
            exec(
                c,
                "UPDATE authz_oauth_signing_keys SET retire_after = ?2 WHERE kid = ?1",
                params![kid, to_i64(after)],
            )
            .map(|_| ())
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        self.write(move |c| {
            let now = to_i64(now);
            let mut n = 0;
            for q in super::PURGE {
                n += exec(c, q, [now])? as u64;
            }
            Ok(n)
        })
    }
}
