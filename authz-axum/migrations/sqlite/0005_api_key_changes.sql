-- Every change to an API key that a verified-key cache must see (revocation, rotation, a moved
-- expiry, any edit except the batched last_used_at), whoever writes it (this service, another
-- process on the same file such as the CLI, or plain SQL): one row per change, written by the
-- triggers in the same transaction as the change. Each process polls id > last seen and evicts
-- key_id. Rows are purged an hour after changed_at (seconds since the Unix epoch), far longer
-- than any cache entry lives (the cache TTL).
CREATE TABLE IF NOT EXISTS authz_api_key_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id     TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS authz_api_key_changes_at ON authz_api_key_changes (changed_at);

CREATE TRIGGER IF NOT EXISTS authz_api_keys_changed
AFTER UPDATE OF id, owner, roles, scopes, key_hash, created_at, expires_at, revoked_at, tenant
ON authz_api_keys
BEGIN
    INSERT INTO authz_api_key_changes (key_id, changed_at)
    VALUES (OLD.id, CAST(strftime('%s', 'now') AS INTEGER));
END;

CREATE TRIGGER IF NOT EXISTS authz_api_keys_deleted
AFTER DELETE ON authz_api_keys
BEGIN
    INSERT INTO authz_api_key_changes (key_id, changed_at)
    VALUES (OLD.id, CAST(strftime('%s', 'now') AS INTEGER));
END;
