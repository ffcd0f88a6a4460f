-- Every change to an API key that a verified-key cache must see (revocation, rotation, a moved
-- expiry, any edit except the batched last_used_at), whoever writes it (this service, the CLI,
-- plain SQL), is announced with NOTIFY authz_api_keys (payload: the key's id) by this trigger,
-- in the same transaction as the change: listeners hear of it at commit, never of a write that
-- did not happen.
CREATE OR REPLACE FUNCTION authz_api_keys_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('authz_api_keys', OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS authz_api_keys_changed ON authz_api_keys;
CREATE TRIGGER authz_api_keys_changed
AFTER UPDATE OF id, owner, roles, scopes, key_hash, created_at, expires_at, revoked_at, tenant
    OR DELETE
ON authz_api_keys
FOR EACH ROW EXECUTE FUNCTION authz_api_keys_notify();
