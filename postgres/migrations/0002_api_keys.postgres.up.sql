-- api_keys: the keys of calling applications and administrators. hash is
-- the SHA-256 of the key, which is never stored; revoked keys stay, with
-- revoked_at set, so that the audit log's references to them resolve.
CREATE TABLE api_keys (
	id           text COLLATE "C" PRIMARY KEY,
	tenant       text COLLATE "C" NOT NULL,
	name         text NOT NULL,
	scope        text NOT NULL,
	hash         bytea NOT NULL UNIQUE,
	created_at   timestamptz,
	revoked_at   timestamptz,          -- NULL while the key is valid
	last_used_at timestamptz
);
-- A tenant's keys, oldest first (the zero time, NULL, first), as APIKeys
-- lists them.
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at NULLS FIRST, id);
