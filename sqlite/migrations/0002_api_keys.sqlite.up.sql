-- api_keys: the keys of calling applications and administrators. hash is
-- the SHA-256 of the key, which is never stored; revoked keys stay, with
-- revoked_at set, so that the audit log's references to them resolve.
CREATE TABLE api_keys (
	id           TEXT    NOT NULL PRIMARY KEY,
	tenant       TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	scope        TEXT    NOT NULL,
	hash         BLOB    NOT NULL UNIQUE,
	created_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER
) STRICT;
-- A tenant's keys, oldest first, as APIKeys lists them.
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at, id);
