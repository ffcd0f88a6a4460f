-- The revocation list (deny-list) shared by the instances of a service: revoked access tokens
-- (kind 'token', value = jti) and subjects (kind 'subject', value = sub, every token issued at
-- or before issued_before). Times are seconds since the Unix epoch; a row can go once
-- expires_at has passed. id only grows (AUTOINCREMENT: never reused, even after a purge), and
-- an upsert gives the row a new id, so a reader polling "id > last seen" misses nothing.
CREATE TABLE IF NOT EXISTS authz_revocations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,     -- token | subject
    issuer        TEXT NOT NULL,
    value         TEXT NOT NULL,     -- jti or subject
    issued_before INTEGER NOT NULL,  -- 0 for tokens
    expires_at    INTEGER NOT NULL,
    UNIQUE (kind, issuer, value)
);
CREATE INDEX IF NOT EXISTS authz_revocations_expires ON authz_revocations (expires_at);
