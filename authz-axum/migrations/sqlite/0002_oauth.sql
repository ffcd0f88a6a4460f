-- The token service's state (authz_axum::oauth). Secrets are never stored: codes, refresh
-- tokens and session ids as SHA-256 (hash columns), client secrets as SHA-256 inside the
-- secrets JSON, passwords as Argon2id PHC strings. Times are seconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS authz_oauth_clients (
    id            TEXT PRIMARY KEY NOT NULL,
    client_type   TEXT NOT NULL,     -- public | confidential
    secrets       TEXT NOT NULL,     -- JSON [{"hash": base64url, "created_at", "expires_at"}]
    redirect_uris TEXT NOT NULL,     -- JSON array
    grant_types   TEXT NOT NULL,     -- JSON array
    roles         TEXT NOT NULL,     -- JSON array
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authz_oauth_users (
    username      TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authz_oauth_families (
    id           TEXT PRIMARY KEY NOT NULL,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX IF NOT EXISTS authz_oauth_families_client ON authz_oauth_families (client_id);
CREATE TABLE IF NOT EXISTS authz_oauth_codes (
    hash           BLOB PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    subject        TEXT NOT NULL,
    roles          TEXT NOT NULL,
    scope          TEXT NOT NULL,
    family_id      TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
CREATE TABLE IF NOT EXISTS authz_oauth_refresh_tokens (
    hash      BLOB PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    subject   TEXT NOT NULL,
    roles     TEXT NOT NULL,
    scope     TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    spent_at  INTEGER,
    dpop_jkt  TEXT
);
CREATE INDEX IF NOT EXISTS authz_oauth_refresh_family ON authz_oauth_refresh_tokens (family_id);
CREATE TABLE IF NOT EXISTS authz_oauth_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS authz_oauth_access_family ON authz_oauth_access_tokens (family_id);
CREATE TABLE IF NOT EXISTS authz_oauth_sessions (
    hash       BLOB PRIMARY KEY NOT NULL,
    username   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authz_oauth_signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    alg           TEXT NOT NULL,
    private_pkcs8 BLOB NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    signs_from    INTEGER NOT NULL,
    retire_after  INTEGER
);
