-- The tenant an API key acts in (resource-level checks compare it with the resource's).
ALTER TABLE authz_api_keys ADD COLUMN tenant TEXT;
