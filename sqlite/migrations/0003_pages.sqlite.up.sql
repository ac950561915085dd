-- links: single-use, expiring links to a user's hosted pages. hash is the
-- SHA-256 of the token, which is never stored. A link is spent by setting
-- used_at (compare-and-set on used_at IS NULL); spent and expired links
-- stay until swept.
CREATE TABLE links (
	id         TEXT    NOT NULL PRIMARY KEY,
	hash       BLOB    NOT NULL UNIQUE,
	tenant     TEXT    NOT NULL,
	user_id    TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	created_at INTEGER,
	expires_at INTEGER,            -- NULL (the zero time) counts as long past
	used_at    INTEGER             -- NULL while unused
) STRICT;
-- For sweeping expired links.
CREATE INDEX links_expires_at ON links (expires_at);

-- tenants: each tenant's settings for the hosted prompt. prompt_key is
-- sealed under the master key key_id, NULL when the tenant has none;
-- return_urls is a JSON array of strings, never NULL (no URLs is '[]').
-- Each setting is written alone (SetPromptKey, SetReturnURLs).
CREATE TABLE tenants (
	id          TEXT    NOT NULL PRIMARY KEY,
	prompt_key  BLOB,
	key_id      INTEGER NOT NULL DEFAULT 0,
	return_urls TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(return_urls) AND json_type(return_urls) = 'array'),
	created_at  INTEGER,
	updated_at  INTEGER
) STRICT, WITHOUT ROWID;
-- Prompt keys by master key, for key rotation (SealedSecrets, CountSealed).
CREATE INDEX tenants_key_id ON tenants (key_id) WHERE prompt_key IS NOT NULL;
