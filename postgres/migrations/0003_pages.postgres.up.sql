-- links: single-use, expiring links to a user's hosted pages. hash is the
-- SHA-256 of the token, which is never stored. A link is spent by setting
-- used_at (compare-and-set on used_at IS NULL); spent and expired links
-- stay until swept.
CREATE TABLE links (
	id         text COLLATE "C" PRIMARY KEY,
	hash       bytea NOT NULL UNIQUE,
	tenant     text COLLATE "C" NOT NULL,
	user_id    text COLLATE "C" NOT NULL,
	kind       text NOT NULL,
	created_at timestamptz,
	expires_at timestamptz,            -- NULL (the zero time) counts as long past
	used_at    timestamptz             -- NULL while unused
);
-- For sweeping expired links.
CREATE INDEX links_expires_at ON links (expires_at);

-- tenants: each tenant's settings for the hosted prompt. prompt_key is
-- sealed under the master key key_id, NULL when the tenant has none;
-- return_urls is never NULL (no URLs is the empty array).
CREATE TABLE tenants (
	id          text COLLATE "C" PRIMARY KEY,
	prompt_key  bytea,
	key_id      bigint NOT NULL DEFAULT 0,
	return_urls text[] NOT NULL DEFAULT '{}',
	created_at  timestamptz,
	updated_at  timestamptz
);
-- Prompt keys by master key, for key rotation (SealedSecrets, CountSealed).
CREATE INDEX tenants_key_id ON tenants (key_id) WHERE prompt_key IS NOT NULL;
