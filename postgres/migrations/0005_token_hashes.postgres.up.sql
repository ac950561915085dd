-- API keys and link tokens are stored as keyed hashes from now on: the
-- hash columns of api_keys and links hold HMAC-SHA-256, under the
-- Service's token key (the sealed setting token_hash_key), of the key's
-- or token's SHA-256. The rows that held a plain SHA-256 when this
-- migration ran are rehashed by the Service of the process that ran it,
-- right after, from the list the migration kept in that process's memory
-- (UpgradeKeyHashes, UpgradeLinkHashes). No row written later is ever
-- rehashed, so a plain hash written into the database never matches.

-- Used links are swept (DeleteStaleLinks), as expired ones are by
-- links_expires_at.
CREATE INDEX links_used ON links (used_at) WHERE used_at IS NOT NULL;
