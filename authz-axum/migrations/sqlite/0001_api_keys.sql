-- API key records. The key itself is never stored: only SHA-256(key) in key_hash.
CREATE TABLE IF NOT EXISTS authz_api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    owner        TEXT NOT NULL,
    roles        TEXT NOT NULL,   -- JSON array of role names
    scopes       TEXT NOT NULL,   -- JSON array of scopes
    key_hash     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    description  TEXT,
    rotated_from TEXT
);
