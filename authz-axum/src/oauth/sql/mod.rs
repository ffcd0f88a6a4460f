//! The token service's state in SQLite (one instance, the default) or PostgreSQL (shared by
//! several instances), features `token-service` + `sqlx`. Same migrations directory and the
//! same fail-fast bounds as the API-key stores ([`crate::sql`]): every operation within the
//! store timeout, a SQLite file created only at start-up. Redeeming a code or a refresh token
//! is one conditional `UPDATE`, so of two concurrent redemptions exactly one wins.
//!
//! SQLite runs every statement on one connection owned by a thread of the store's, writes
//! group-committed ([`SqliteTokenStore`]); PostgreSQL through an sqlx pool
//! ([`PostgresTokenStore`]).

mod client_cache;
mod sqlite;
mod writer;

pub use sqlite::SqliteTokenStore;

use std::future::Future;
use std::time::Duration;

use authz_core::keystore::{StoreError, StoreFuture};
use authz_core::oauth::{
    AccessTokenRecord, AuthorizationCode, Client, ClientSecret, ClientType, CodeRedemption, GrantType,
    KeyHash, LoginSession, RefreshRedemption, RefreshRotation, RefreshToken, RotationDecision,
    SigningKeyRecord, TokenFamily, TokenStore, User,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row as _;

use crate::sql::{DEFAULT_STORE_TIMEOUT, bounded, db_err, from_i64, list_from, list_json, to_i64};

fn secrets_json(secrets: &[ClientSecret]) -> String {
    let v: Vec<serde_json::Value> = secrets
        .iter()
        .map(|s| {
            serde_json::json!({
                "hash": URL_SAFE_NO_PAD.encode(s.hash.as_bytes()),
                "created_at": s.created_at,
                "expires_at": s.expires_at,
            })
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

fn secrets_from(s: &str) -> Result<Vec<ClientSecret>, StoreError> {
    let corrupt = || StoreError("corrupt secrets column".into());
    let v: Vec<serde_json::Value> = serde_json::from_str(s).map_err(|_| corrupt())?;
    v.iter()
        .map(|s| {
            let hash = URL_SAFE_NO_PAD
                .decode(s["hash"].as_str().ok_or_else(corrupt)?)
                .ok()
                .and_then(|b| KeyHash::from_bytes(&b))
                .ok_or_else(corrupt)?;
            Ok(ClientSecret {
                hash,
                created_at: s["created_at"].as_u64().ok_or_else(corrupt)?,
                expires_at: s["expires_at"].as_u64(),
            })
        })
        .collect()
}

fn grants_json(g: &[GrantType]) -> String {
    list_json(&g.iter().map(|g| g.as_str().to_string()).collect::<Vec<_>>())
}

fn grants_from(s: &str) -> Result<Vec<GrantType>, StoreError> {
    list_from(s)?
        .iter()
        .map(|g| GrantType::parse(g).ok_or_else(|| StoreError(format!("unknown grant type {g:?} in store"))))
        .collect()
}

/// Records an issued access token (both databases; parameters in order, which SQLite's `$n`
/// numbering needs: it numbers them by first appearance).
const INSERT_ACCESS: &str = "INSERT INTO authz_oauth_access_tokens (jti, family_id, client_id, subject, expires_at, revoked_at) \
                             VALUES ($1, $2, $3, $4, $5, $6)";
/// Stores a refresh token, unspent (both databases; parameters in order).
const INSERT_REFRESH: &str = "INSERT INTO authz_oauth_refresh_tokens (hash, family_id, client_id, subject, roles, scope, issued_at, spent_at, dpop_jkt) \
                              VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)";

/// `record_in`'s one statement (PostgreSQL: data-modifying `WITH`, one snapshot, run
/// once each): the family's conditional update, then the access token and — when `$9` — the
/// refresh token, each inserted only for a live family.
const RECORD_ISSUED: &str = "WITH live AS ( \
       UPDATE authz_oauth_families SET last_used_at = CASE WHEN last_used_at < $2 THEN $2 ELSE last_used_at END \
       WHERE id = $1 AND revoked_at IS NULL RETURNING id), \
     access AS ( \
       INSERT INTO authz_oauth_access_tokens (jti, family_id, client_id, subject, expires_at, revoked_at) \
       SELECT $3, $4, $5, $6, $7, $8 FROM live), \
     refresh AS ( \
       INSERT INTO authz_oauth_refresh_tokens (hash, family_id, client_id, subject, roles, scope, issued_at, spent_at, dpop_jkt) \
       SELECT $10, $11, $12, $13, $14, $15, $16, NULL, $17 FROM live WHERE $9) \
     SELECT COUNT(*) AS live FROM live";

/// What `purge_expired` deletes, in order (`$1` is the time; both databases read `$1`).
const PURGE: [&str; 6] = [
    "DELETE FROM authz_oauth_codes WHERE expires_at <= $1",
    "DELETE FROM authz_oauth_sessions WHERE expires_at <= $1",
    "DELETE FROM authz_oauth_access_tokens WHERE expires_at <= $1",
    "DELETE FROM authz_oauth_refresh_tokens WHERE family_id IN \
     (SELECT id FROM authz_oauth_families WHERE expires_at <= $1)",
    "DELETE FROM authz_oauth_families WHERE expires_at <= $1",
    "DELETE FROM authz_oauth_signing_keys WHERE retire_after IS NOT NULL AND retire_after <= $1",
];

fn hash_from(b: Vec<u8>) -> Result<KeyHash, StoreError> {
    KeyHash::from_bytes(&b).ok_or_else(|| StoreError("corrupt hash column".into()))
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The token service's state in PostgreSQL, shared by every instance.
#[derive(Debug, Clone)]
pub struct PostgresTokenStore {
    pool: sqlx::PgPool,
    timeout: Duration,
}

impl PostgresTokenStore {
    /// Connects to `url` and applies the migrations; every operation bounded by
    /// [`DEFAULT_STORE_TIMEOUT`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, DEFAULT_STORE_TIMEOUT).await
    }

    /// Like [`connect`](Self::connect), bounding every operation by `timeout`.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let (pool, _) = crate::sql::open_postgres(url, timeout).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Self { pool, timeout })
    }

    /// The pool (tests, administration).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    fn op<'a, T: 'a>(
        &'a self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        bounded(self.timeout, None, f)
    }

    async fn put_access(c: &mut sqlx::PgConnection, a: &AccessTokenRecord) -> Result<(), StoreError> {
        sqlx::query(INSERT_ACCESS)
            .bind(a.jti.clone())
            .bind(a.family_id.clone())
            .bind(a.client_id.clone())
            .bind(a.subject.clone())
            .bind(to_i64(a.expires_at))
            .bind(a.revoked_at.map(to_i64))
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn put_refresh(c: &mut sqlx::PgConnection, t: &RefreshToken) -> Result<(), StoreError> {
        sqlx::query(INSERT_REFRESH)
            .bind(t.hash.as_bytes().to_vec())
            .bind(t.family_id.clone())
            .bind(t.client_id.clone())
            .bind(t.subject.clone())
            .bind(list_json(&t.roles))
            .bind(list_json(&t.scope))
            .bind(to_i64(t.issued_at))
            .bind(t.jkt.clone())
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// What a grant issued, only while the family is live (`false`, nothing written,
    /// otherwise): **one statement**, so one round trip, atomic on its own or inside the
    /// caller's transaction. The family's conditional update comes first in it and
    /// takes the row lock, so a concurrent revocation either happened already (then
    /// `live` is empty and neither insert writes a row) or waits for this commit and
    /// then sees the new access token. (Was three statements: three round trips.)
    async fn record_in(
        c: &mut sqlx::PgConnection,
        family_id: &str,
        a: &AccessTokenRecord,
        refresh: Option<&RefreshToken>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(RECORD_ISSUED)
            .bind(family_id)
            .bind(to_i64(now))
            .bind(a.jti.clone())
            .bind(a.family_id.clone())
            .bind(a.client_id.clone())
            .bind(a.subject.clone())
            .bind(to_i64(a.expires_at))
            .bind(a.revoked_at.map(to_i64))
            .bind(refresh.is_some())
            .bind(refresh.map(|t| t.hash.as_bytes().to_vec()))
            .bind(refresh.map(|t| t.family_id.clone()))
            .bind(refresh.map(|t| t.client_id.clone()))
            .bind(refresh.map(|t| t.subject.clone()))
            .bind(refresh.map(|t| list_json(&t.roles)))
            .bind(refresh.map(|t| list_json(&t.scope)))
            .bind(refresh.map(|t| to_i64(t.issued_at)))
            .bind(refresh.and_then(|t| t.jkt.clone()))
            .fetch_one(&mut *c)
            .await
            .map_err(db_err)?;
        let live: i64 = row.try_get("live").map_err(db_err)?;
        Ok(live > 0)
    }

    /// The refresh token whose hash is `h`, read on `c`.
    async fn refresh_in(c: &mut sqlx::PgConnection, h: &[u8]) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM authz_oauth_refresh_tokens WHERE hash = $1")
            .bind(h)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
        row.as_ref().map(Self::refresh_row).transpose()
    }

    /// The family `id`, read on `c`; `FOR UPDATE` (held until the transaction ends) when `lock`.
    async fn family_in(
        c: &mut sqlx::PgConnection,
        id: &str,
        lock: bool,
    ) -> Result<Option<TokenFamily>, StoreError> {
        let sql = if lock {
            "SELECT * FROM authz_oauth_families WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT * FROM authz_oauth_families WHERE id = $1"
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
        row.as_ref().map(Self::family_row).transpose()
    }

    /// Spends the refresh token whose hash is `h` at `now`, on `c`: `Ok((token, family))`
    /// when this call spent it (its family read with `lock`, as [`family_in`](Self::family_in));
    /// `Err` with what is there otherwise: the token already spent, or `None` for an unknown
    /// hash.
    async fn spend_in(
        c: &mut sqlx::PgConnection,
        h: &[u8],
        now: u64,
        lock: bool,
    ) -> Result<Result<(RefreshToken, TokenFamily), Option<RefreshToken>>, StoreError> {
        let won = sqlx::query(
            "UPDATE authz_oauth_refresh_tokens SET spent_at = $2 WHERE hash = $1 AND spent_at IS NULL RETURNING *",
        )
        .bind(h)
        .bind(to_i64(now))
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        let Some(won) = won else {
            return Ok(Err(Self::refresh_in(c, h).await?));
        };
        let token = Self::refresh_row(&won)?;
        let family = Self::family_in(c, &token.family_id, lock)
            .await?
            .ok_or_else(|| StoreError(format!("no family {:?}", token.family_id)))?;
        Ok(Ok((token, family)))
    }

    fn client_row(r: &sqlx::postgres::PgRow) -> Result<Client, StoreError> {
        let t: String = r.try_get("client_type").map_err(db_err)?;
        Ok(Client {
            id: r.try_get("id").map_err(db_err)?,
            client_type: ClientType::parse(&t)
                .ok_or_else(|| StoreError(format!("unknown client type {t:?}")))?,
            secrets: secrets_from(&r.try_get::<String, _>("secrets").map_err(db_err)?)?,
            redirect_uris: list_from(&r.try_get::<String, _>("redirect_uris").map_err(db_err)?)?,
            grant_types: grants_from(&r.try_get::<String, _>("grant_types").map_err(db_err)?)?,
            roles: list_from(&r.try_get::<String, _>("roles").map_err(db_err)?)?,
            created_at: u(r.try_get("created_at").map_err(db_err)?),
        })
    }

    fn user_row(r: &sqlx::postgres::PgRow) -> Result<User, StoreError> {
        Ok(User {
            username: r.try_get("username").map_err(db_err)?,
            password_hash: r.try_get("password_hash").map_err(db_err)?,
            roles: list_from(&r.try_get::<String, _>("roles").map_err(db_err)?)?,
            created_at: u(r.try_get("created_at").map_err(db_err)?),
        })
    }

    fn code_row(r: &sqlx::postgres::PgRow) -> Result<AuthorizationCode, StoreError> {
        Ok(AuthorizationCode {
            hash: hash_from(r.try_get("hash").map_err(db_err)?)?,
            client_id: r.try_get("client_id").map_err(db_err)?,
            redirect_uri: r.try_get("redirect_uri").map_err(db_err)?,
            code_challenge: r.try_get("code_challenge").map_err(db_err)?,
            subject: r.try_get("subject").map_err(db_err)?,
            roles: list_from(&r.try_get::<String, _>("roles").map_err(db_err)?)?,
            scope: list_from(&r.try_get::<String, _>("scope").map_err(db_err)?)?,
            family_id: r.try_get("family_id").map_err(db_err)?,
            issued_at: u(r.try_get("issued_at").map_err(db_err)?),
            expires_at: u(r.try_get("expires_at").map_err(db_err)?),
        })
    }

    fn family_row(r: &sqlx::postgres::PgRow) -> Result<TokenFamily, StoreError> {
        Ok(TokenFamily {
            id: r.try_get("id").map_err(db_err)?,
            client_id: r.try_get("client_id").map_err(db_err)?,
            subject: r.try_get("subject").map_err(db_err)?,
            created_at: u(r.try_get("created_at").map_err(db_err)?),
            expires_at: u(r.try_get("expires_at").map_err(db_err)?),
            last_used_at: u(r.try_get("last_used_at").map_err(db_err)?),
            revoked_at: from_i64(r.try_get("revoked_at").map_err(db_err)?),
        })
    }

    fn refresh_row(r: &sqlx::postgres::PgRow) -> Result<RefreshToken, StoreError> {
        Ok(RefreshToken {
            hash: hash_from(r.try_get("hash").map_err(db_err)?)?,
            family_id: r.try_get("family_id").map_err(db_err)?,
            client_id: r.try_get("client_id").map_err(db_err)?,
            subject: r.try_get("subject").map_err(db_err)?,
            roles: list_from(&r.try_get::<String, _>("roles").map_err(db_err)?)?,
            scope: list_from(&r.try_get::<String, _>("scope").map_err(db_err)?)?,
            issued_at: u(r.try_get("issued_at").map_err(db_err)?),
            spent_at: from_i64(r.try_get("spent_at").map_err(db_err)?),
            jkt: r.try_get("dpop_jkt").map_err(db_err)?,
        })
    }

    fn access_row(r: &sqlx::postgres::PgRow) -> Result<AccessTokenRecord, StoreError> {
        Ok(AccessTokenRecord {
            jti: r.try_get("jti").map_err(db_err)?,
            family_id: r.try_get("family_id").map_err(db_err)?,
            client_id: r.try_get("client_id").map_err(db_err)?,
            subject: r.try_get("subject").map_err(db_err)?,
            expires_at: u(r.try_get("expires_at").map_err(db_err)?),
            revoked_at: from_i64(r.try_get("revoked_at").map_err(db_err)?),
        })
    }

    fn key_row(r: &sqlx::postgres::PgRow) -> Result<SigningKeyRecord, StoreError> {
        Ok(SigningKeyRecord {
            kid: r.try_get("kid").map_err(db_err)?,
            alg: r.try_get("alg").map_err(db_err)?,
            private_pkcs8: r.try_get("private_pkcs8").map_err(db_err)?,
            public_jwk: r.try_get("public_jwk").map_err(db_err)?,
            created_at: u(r.try_get("created_at").map_err(db_err)?),
            signs_from: u(r.try_get("signs_from").map_err(db_err)?),
            retire_after: from_i64(r.try_get("retire_after").map_err(db_err)?),
        })
    }
}

impl TokenStore for PostgresTokenStore {
    /// `SELECT 1` within the bound (the default's lookup of an id with a NUL byte is an
    /// error in PostgreSQL, which made a healthy store look down).
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.op(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn insert_client(&self, c: Client) -> StoreFuture<'_, ()> {
        self.op(async move {
            sqlx::query(
                "INSERT INTO authz_oauth_clients (id, client_type, secrets, redirect_uris, grant_types, roles, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(c.id.clone())
            .bind(c.client_type.as_str())
            .bind(secrets_json(&c.secrets))
            .bind(list_json(&c.redirect_uris))
            .bind(grants_json(&c.grant_types))
            .bind(list_json(&c.roles))
            .bind(to_i64(c.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError(format!("client {:?}: {e}", c.id)))?;
            Ok(())
        })
    }

    fn client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>> {
        self.op(async move {
            let row = sqlx::query("SELECT * FROM authz_oauth_clients WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(Self::client_row).transpose()
        })
    }

    fn clients(&self) -> StoreFuture<'_, Vec<Client>> {
        self.op(async move {
            let rows = sqlx::query("SELECT * FROM authz_oauth_clients ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(Self::client_row).collect()
        })
    }

    fn set_client_secrets<'a>(&'a self, id: &'a str, secrets: Vec<ClientSecret>) -> StoreFuture<'a, bool> {
        self.op(async move {
            let done = sqlx::query("UPDATE authz_oauth_clients SET secrets = $2 WHERE id = $1")
                .bind(id)
                .bind(secrets_json(&secrets))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_client<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let done = sqlx::query("DELETE FROM authz_oauth_clients WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("UPDATE authz_oauth_families SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(to_i64(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("UPDATE authz_oauth_access_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(to_i64(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn insert_user(&self, user: User) -> StoreFuture<'_, ()> {
        self.op(async move {
            sqlx::query("INSERT INTO authz_oauth_users (username, password_hash, roles, created_at) VALUES ($1, $2, $3, $4)")
                .bind(user.username.clone())
                .bind(user.password_hash.clone())
                .bind(list_json(&user.roles))
                .bind(to_i64(user.created_at))
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError(format!("user {:?}: {e}", user.username)))?;
            Ok(())
        })
    }

    fn user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<User>> {
        self.op(async move {
            let row = sqlx::query("SELECT * FROM authz_oauth_users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(Self::user_row).transpose()
        })
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        self.op(async move {
            let rows = sqlx::query("SELECT * FROM authz_oauth_users ORDER BY username")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(Self::user_row).collect()
        })
    }

    fn delete_user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, bool> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query("DELETE FROM authz_oauth_sessions WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query("DELETE FROM authz_oauth_users WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn insert_code(&self, code: AuthorizationCode, f: TokenFamily) -> StoreFuture<'_, ()> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO authz_oauth_families (id, client_id, subject, created_at, expires_at, last_used_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(f.id.clone())
            .bind(f.client_id.clone())
            .bind(f.subject.clone())
            .bind(to_i64(f.created_at))
            .bind(to_i64(f.expires_at))
            .bind(to_i64(f.last_used_at))
            .bind(f.revoked_at.map(to_i64))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO authz_oauth_codes (hash, client_id, redirect_uri, code_challenge, subject, roles, scope, \
                 family_id, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
            )
            .bind(code.hash.as_bytes().to_vec())
            .bind(code.client_id.clone())
            .bind(code.redirect_uri.clone())
            .bind(code.code_challenge.clone())
            .bind(code.subject.clone())
            .bind(list_json(&code.roles))
            .bind(list_json(&code.scope))
            .bind(code.family_id.clone())
            .bind(to_i64(code.issued_at))
            .bind(to_i64(code.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    fn redeem_code<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, CodeRedemption> {
        self.op(async move {
            let h = hash.as_bytes().to_vec();
            // The winner gets the row back from its UPDATE; only a loser reads it.
            let won = sqlx::query(
                "UPDATE authz_oauth_codes SET used_at = $2 WHERE hash = $1 AND used_at IS NULL RETURNING *",
            )
            .bind(h.clone())
            .bind(to_i64(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            if let Some(row) = won {
                return Ok(CodeRedemption::Fresh(Self::code_row(&row)?));
            }
            let row = sqlx::query("SELECT * FROM authz_oauth_codes WHERE hash = $1")
                .bind(h)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(match row.as_ref().map(Self::code_row).transpose()? {
                None => CodeRedemption::Unknown,
                Some(c) => CodeRedemption::Replayed(c),
            })
        })
    }

    fn insert_refresh(&self, t: RefreshToken) -> StoreFuture<'_, ()> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            Self::put_refresh(&mut tx, &t).await?;
            sqlx::query(
                "UPDATE authz_oauth_families SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2",
            )
            .bind(t.family_id.clone())
            .bind(to_i64(t.issued_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
    }

    fn redeem_refresh<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, RefreshRedemption> {
        self.op(async move {
            let mut c = self.pool.acquire().await.map_err(db_err)?;
            Ok(match Self::spend_in(&mut c, hash.as_bytes(), now, false).await? {
                Ok((token, family)) => RefreshRedemption::Fresh(token, family),
                Err(Some(spent)) => RefreshRedemption::Spent(spent),
                Err(None) => RefreshRedemption::Unknown,
            })
        })
    }

    fn refresh<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<RefreshToken>> {
        self.op(async move {
            let mut c = self.pool.acquire().await.map_err(db_err)?;
            Self::refresh_in(&mut c, hash.as_bytes()).await
        })
    }

    fn family<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TokenFamily>> {
        self.op(async move {
            let mut c = self.pool.acquire().await.map_err(db_err)?;
            Self::family_in(&mut c, id, false).await
        })
    }

    fn revoke_family<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let done = sqlx::query("UPDATE authz_oauth_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(to_i64(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
            sqlx::query("UPDATE authz_oauth_access_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(to_i64(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done)
        })
    }

    /// One transaction: the spend, the family locked (`FOR UPDATE`: a concurrent
    /// revocation waits for this commit, or came first and is seen), the decision and
    /// the records, one commit.
    fn rotate_refresh<'a>(
        &'a self,
        hash: &'a KeyHash,
        now: u64,
        decide: RotationDecision,
    ) -> StoreFuture<'a, RefreshRotation> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let (token, family) = match Self::spend_in(&mut tx, hash.as_bytes(), now, true).await? {
                Ok(won) => won,
                Err(there) => {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(there.map_or(RefreshRotation::Unknown, RefreshRotation::Spent));
                }
            };
            // The family is locked: what `record_in` finds live stays live until the commit.
            let issued = match decide(&token, &family) {
                None => false,
                Some((a, t)) => Self::record_in(&mut tx, &family.id, &a, Some(&t), now).await?,
            };
            tx.commit().await.map_err(db_err)?;
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
        self.op(async move {
            // One statement, in a transaction all the same: a caller that gives up
            // before the commit leaves nothing behind (a write reported as failed must
            // not land later).
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            if !Self::record_in(&mut tx, family_id, &a, refresh.as_ref(), now).await? {
                return Ok(false);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    fn family_access<'a>(&'a self, family_id: &'a str) -> StoreFuture<'a, Vec<AccessTokenRecord>> {
        self.op(async move {
            let rows = sqlx::query("SELECT * FROM authz_oauth_access_tokens WHERE family_id = $1")
                .bind(family_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(Self::access_row).collect()
        })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, now: u64) -> StoreFuture<'a, u64> {
        self.op(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            // A stolen login session would mint new tokens: end them too.
            sqlx::query("DELETE FROM authz_oauth_sessions WHERE username = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            // The families first, as `revoke_family` does: their row locks wait for any
            // grant recording into them (`record_in` locks its family first) to commit;
            // the access tokens' update, a later statement, then sees what it recorded.
            // (Tokens first left one recorded meanwhile live: that statement's snapshot
            // predated it.)
            let families: Vec<String> = sqlx::query_scalar(
                "UPDATE authz_oauth_families SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(subject)
            .bind(to_i64(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "UPDATE authz_oauth_access_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = ANY($1)",
            )
            .bind(&families)
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(families.len() as u64)
        })
    }

    fn insert_access(&self, a: AccessTokenRecord) -> StoreFuture<'_, ()> {
        self.op(async move {
            let mut c = self.pool.acquire().await.map_err(db_err)?;
            Self::put_access(&mut c, &a).await
        })
    }

    fn access<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, Option<AccessTokenRecord>> {
        self.op(async move {
            let row = sqlx::query("SELECT * FROM authz_oauth_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(Self::access_row).transpose()
        })
    }

    fn revoke_access<'a>(&'a self, jti: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.op(async move {
            let done = sqlx::query(
                "UPDATE authz_oauth_access_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE jti = $1",
            )
            .bind(jti)
            .bind(to_i64(now))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn insert_session(&self, s: LoginSession) -> StoreFuture<'_, ()> {
        self.op(async move {
            sqlx::query("INSERT INTO authz_oauth_sessions (hash, username, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(s.hash.as_bytes().to_vec())
                .bind(s.username.clone())
                .bind(to_i64(s.created_at))
                .bind(to_i64(s.expires_at))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<LoginSession>> {
        self.op(async move {
            let row = sqlx::query("SELECT * FROM authz_oauth_sessions WHERE hash = $1")
                .bind(hash.as_bytes().to_vec())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.map(|r| {
                Ok(LoginSession {
                    hash: hash_from(r.try_get("hash").map_err(db_err)?)?,
                    username: r.try_get("username").map_err(db_err)?,
                    created_at: u(r.try_get("created_at").map_err(db_err)?),
                    expires_at: u(r.try_get("expires_at").map_err(db_err)?),
                })
            })
            .transpose()
        })
    }

    fn delete_session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, ()> {
        self.op(async move {
            sqlx::query("DELETE FROM authz_oauth_sessions WHERE hash = $1")
                .bind(hash.as_bytes().to_vec())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn insert_signing_key(&self, k: SigningKeyRecord) -> StoreFuture<'_, ()> {
        self.op(async move {
            sqlx::query(
                "INSERT INTO authz_oauth_signing_keys (kid, alg, private_pkcs8, public_jwk, created_at, signs_from, retire_after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(k.kid.clone())
            .bind(k.alg.clone())
            .bind(k.private_pkcs8.clone())
            .bind(k.public_jwk.clone())
            .bind(to_i64(k.created_at))
            .bind(to_i64(k.signs_from))
            .bind(k.retire_after.map(to_i64))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        self.op(async move {
            let rows = sqlx::query("SELECT * FROM authz_oauth_signing_keys ORDER BY created_at, kid")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(Self::key_row).collect()
        })
    }

    fn retire_signing_key<'a>(&'a self, kid: &'a str, after: u64) -> StoreFuture<'a, ()> {
        self.op(async move {
            sqlx::query("UPDATE authz_oauth_signing_keys SET retire_after = $2 WHERE kid = $1")
                .bind(kid)
                .bind(to_i64(after))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        self.op(async move {
            let now = to_i64(now);
            let mut n = 0;
            for q in PURGE {
                n += sqlx::query(q)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            }
            Ok(n)
        })
    }
}

/// Connects to the store a URL names: `sqlite:` or `postgres:` / `postgresql:` (the same URL
/// switch as the API-key stores, [`crate::sql::connect`]).
///
/// # Errors
/// Another scheme, or the database's.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn TokenStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteTokenStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PostgresTokenStore::connect(url).await?))
    } else {
        Err(StoreError(
            "database URL must start with sqlite: or postgres:".into(),
        ))
    }
}
